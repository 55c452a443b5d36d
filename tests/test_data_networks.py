"""`edgecnn data roads OUT --networks`: layout, columns, maps, junction share, branch balance, route files,
steering reader, bad options, nothing half-written."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.cli.data_roads import roads as roads_cmd
from edgecnn.data import networks as netdata
from edgecnn.data.steering import load_steering_dataset
from edgecnn.junction import parse_branch_steering
from edgecnn.navmap import MapSpec, PoseNoise, load_route, rasterise
from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.network import NET_DATA_STREAM, balanced_routes, branch_routes, make_network, net_rng, route_road
from edgecnn.sim.pursuit import LOOKAHEAD, pure_pursuit
from edgecnn.train import datakind
from edgecnn.train.datakind import is_networks_data, is_roads_data, steering_kind

N_FRAMES = 96


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nav") / "d"
    res = CliRunner().invoke(roads_cmd, [str(out), "--networks", "--n", str(N_FRAMES), "--size", "64x48",
                                         "--seed", "3", "--per-route", "6"])
    assert res.exit_code == 0, res.output
    assert f"wrote {N_FRAMES} frames (64x48" in res.output
    return out


def _rows(folder: Path) -> list[dict]:
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_layout_and_columns(data):
    assert sorted(p.name for p in data.iterdir()) == ["images", "labels.csv", "maps", "networks.json", "roads.json",
                                                       "routes"]
    with open(data / "labels.csv", encoding="utf-8") as f:
        assert f.readline().strip().split(",") == list(netdata.COLUMNS)
    rows = _rows(data)
    assert len(rows) == N_FRAMES
    assert [r["image"] for r in rows] == [f"images/{i:06d}.jpg" for i in range(N_FRAMES)]
    assert [r["map"] for r in rows] == [f"maps/{i:06d}.png" for i in range(N_FRAMES)]
    assert len(list((data / "images").iterdir())) == len(list((data / "maps").iterdir())) == N_FRAMES
    img = cv2.imread(str(data / rows[0]["image"]))
    assert img.shape == (48, 64, 3)
    meta = json.loads((data / "roads.json").read_text())
    assert meta["format"] == netdata.FORMAT and meta["frames"] == N_FRAMES and meta["size"] == [64, 48]
    assert meta["stream"] == 2 and meta["seed"] == 3
    assert MapSpec.from_dict(meta["map_spec"]) == MapSpec()
    assert PoseNoise.from_dict(meta["pose_noise"]) == PoseNoise()
    for r in rows:
        assert -1.0 <= float(r["steering"]) <= 1.0
        assert (r["junction"] == "") == (r["branch"] == "") == (r["options"] == "")
        if r["junction"]:
            assert r["junction"] in ("T", "cross", "fork") and r["branch"] in r["options"].split("|")
    # The plain steering reader takes the same folder as image,steering data (for the image-only pilotnet).
    ds = load_steering_dataset(data)
    assert len(ds.samples) == N_FRAMES and not ds.faults
    assert [s.steering for s in ds.samples] == [float(r["steering"]) for r in rows]
    assert is_roads_data(data) and is_networks_data(data) and "--networks" in steering_kind(data)
    assert datakind.NETWORKS_FORMAT == netdata.FORMAT


def test_maps_are_binary_and_match_a_rerasterisation_from_the_route_files(data):
    rows = _rows(data)
    routes = {}
    spec = MapSpec()
    for r in rows:
        key = (r["network"], r["route"])
        if key not in routes:
            routes[key] = load_route(data / netdata.route_file(int(r["network"]), int(r["route"])))
        net, route = routes[key]
        m = cv2.imread(str(data / r["map"]), cv2.IMREAD_UNCHANGED)
        assert m.shape == (64, 64, 3) and m.dtype == np.uint8
        assert set(np.unique(m)) <= {0, 255} and not m[..., 2].any()
        pose = (float(r["est_x"]), float(r["est_y"]), float(r["est_heading"]))
        assert np.array_equal(m[..., :2], rasterise(net, route, pose, spec))
        assert m[..., 0].any()  # the road under the car is always in view
    # The estimated pose differs from the true one (noise and delay), by about the stated amounts.
    err = np.array([np.hypot(float(r["est_x"]) - float(r["x"]), float(r["est_y"]) - float(r["y"])) for r in rows])
    assert 0.05 < np.median(err) < 1.0


def test_junction_share_and_branch_balance(data):
    rows = _rows(data)
    share = sum(bool(r["junction"]) for r in rows) / len(rows)
    assert share >= 0.35
    meta = json.loads((data / "roads.json").read_text())
    assert meta["junction_share"] == round(share, 4)
    assert sum(sum(c.values()) for c in meta["branches"].values()) == sum(bool(r["junction"]) for r in rows)
    # Across the routes of a network, each junction's branches are taken equally often (within one).
    doc = json.loads((data / "networks.json").read_text())
    assert doc["format"] == netdata.FORMAT and doc["units"] == "m"
    checked = 0
    for net in doc["networks"]:
        taken: dict[str, Counter[str]] = {}
        for route in net["routes"]:
            for j in route["junctions"]:
                taken.setdefault(j["node"], Counter())[j["branch"]] += 1
        full = len(net["routes"]) == netdata.ROUTES_PER_NETWORK
        for node, counts in taken.items():
            options = next(j["options"] for r in net["routes"] for j in r["junctions"] if j["node"] == node)
            visits = sum(counts.values())
            if full and visits >= len(options):
                assert max(counts.values()) - min(counts.get(o, 0) for o in options) <= 1, (node, counts)
                checked += 1
    assert checked >= 3


def test_route_files_load_and_agree_with_networks_json(data):
    doc = json.loads((data / "networks.json").read_text())
    files = sorted(p.name for p in (data / "routes").iterdir())
    listed = sorted(Path(r["file"]).name for n in doc["networks"] for r in n["routes"])
    assert files == listed
    for n in doc["networks"][:3]:
        for r in n["routes"]:
            network, route = load_route(data / r["file"])
            assert list(route.nodes) == r["nodes"] and route.start == r["start"] and route.goal == r["goal"]
            assert set(network.nodes) == set(n["nodes"])
            assert [e.id for e in network.edges] == [e["id"] for e in n["edges"]]
    used = {(int(r["network"]), int(r["route"])) for r in _rows(data)}
    assert all((data / netdata.route_file(*k)).is_file() for k in used)


def test_deterministic_and_pose_noise_changes_only_the_maps(tmp_path):
    a = netdata.generate(tmp_path / "a", n=8, size=(48, 36), seed=1, per_route=4)
    b = netdata.generate(tmp_path / "b", n=8, size=(48, 36), seed=1, per_route=4)
    c = netdata.generate(tmp_path / "c", n=8, size=(48, 36), seed=1, per_route=4, pose_noise=0.0)
    assert (a / "labels.csv").read_bytes() == (b / "labels.csv").read_bytes()
    for sub in ("images", "maps"):
        for p in sorted((a / sub).iterdir()):
            assert p.read_bytes() == (b / sub / p.name).read_bytes()
    ra, rc = _rows(a), _rows(c)
    for x, y in zip(ra, rc):
        assert {k: x[k] for k in ("image", "steering", "x", "y", "heading")} == \
               {k: y[k] for k in ("image", "steering", "x", "y", "heading")}
        assert (a / x["image"]).read_bytes() == (c / y["image"]).read_bytes()
        # Without noise the believed heading is the true one; the position lags by the delay along it.
        assert abs(float(y["est_heading"]) - float(y["heading"])) < 1e-5


@pytest.mark.parametrize("args, message", [
    (["--networks", "--n", "0"], "--n must be at least 1"),
    (["--networks", "--per-route", "0"], "frames per route must be at least 1"),
    (["--networks", "--pose-noise", "-1"], "--pose-noise must be a scale >= 0"),
    (["--per-route", "3"], "--per-route needs --networks"),
    (["--pose-noise", "2"], "--pose-noise needs --networks"),
    (["--networks", "--masks"], "--masks is not available with --networks"),
    (["--networks", "--size", "12"], "--size"),
])
def test_bad_options_are_one_clear_line_and_write_nothing(tmp_path, capsys, args, message):
    from edgecnn.cli import main

    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["data", "roads", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2
    assert err.startswith("Error:") and len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_an_interrupted_run_leaves_nothing_half_written(tmp_path):
    def stop(done: int, total: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        netdata.generate(tmp_path / "out", n=20, size=(48, 36), progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_workers_write_the_same_folder_byte_for_byte(tmp_path):
    """Networks rendered in 3 processes against one: every file the same, the last network cut short alike."""
    assert [c for _, _, c in netdata.plan_networks(2, 53, 4)] == [16, 16, 16, 5]
    one = netdata.generate(tmp_path / "one", n=53, size=(48, 36), seed=2, per_route=4, workers=1)
    three = netdata.generate(tmp_path / "three", n=53, size=(48, 36), seed=2, per_route=4, workers=3)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(three) for p in three.rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "images"]) == 53
    for f in files:
        assert (one / f).read_bytes() == (three / f).read_bytes(), f


def test_an_interrupted_parallel_run_leaves_nothing_half_written(tmp_path):
    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        netdata.generate(tmp_path / "out", n=60, size=(48, 36), per_route=3, progress=stop, workers=2)
    assert list(tmp_path.iterdir()) == []


def _tee_siblings():
    """A data-stream network with a T-junction entered from its stem, and two of its balanced routes that turn
    there one left, one right."""
    for k in range(40):
        rng = net_rng(0, NET_DATA_STREAM, k)
        net = make_network(rng)
        routes = balanced_routes(net, netdata.ROUTES_PER_NETWORK, rng)
        by_branch: dict[tuple[str, str], object] = {}
        for route in routes:
            for j in route.junctions:
                if j["kind"] == "T" and j["options"] == ["left", "right"]:
                    by_branch.setdefault((j["node"], j["branch"]), route)
        for (node, b), route in by_branch.items():
            if b == "left" and (node, "right") in by_branch:
                return net, routes, node, route, by_branch[(node, "right")]
    raise AssertionError("no T-junction with both branches in 40 networks")


def test_turn_in_is_shared_by_every_branch_and_the_labels_part_there():
    net, routes, node, left, right = _tee_siblings()
    turn_in = netdata.node_turn_in(routes)
    jl = next(j for j in left.junctions if j["node"] == node)
    jr = next(j for j in right.junctions if j["node"] == node)
    assert turn_in[node] == min(jl["turn_in"], jr["turn_in"])
    assert jl["turn_in"] < jl["s"] < jl["turn_out"] and jr["turn_in"] < jr["s"] < jr["turn_out"]
    road_l, road_r = route_road(left, net.half_width), route_road(right, net.half_width)
    car = CarParams()
    for before in (0.5, 0.3, 0.1):
        s = turn_in[node] - before
        pose_l, pose_r = road_l.pose_at(s), road_r.pose_at(s)
        assert np.allclose(pose_l, pose_r, atol=1e-6)  # the same place, whichever branch the route takes
        pose = Pose(*pose_l)
        steer_l = pure_pursuit(road_l, pose, car, lookahead=netdata.lookahead(left, s), hint_s=s)
        steer_r = pure_pursuit(road_r, pose, car, lookahead=netdata.lookahead(right, s), hint_s=s)
        assert steer_l < -0.05 and steer_r > 0.05, (before, steer_l, steer_r)


def test_lookahead_is_longer_through_a_turn_and_ramps_without_jumps():
    _, _, node, left, _ = _tee_siblings()
    j = next(j for j in left.junctions if j["node"] == node)
    assert netdata.lookahead(left, j["turn_in"]) == netdata.JUNCTION_LOOKAHEAD
    assert netdata.lookahead(left, j["turn_out"]) == netdata.JUNCTION_LOOKAHEAD
    assert netdata.lookahead(left, j["turn_in"] - 3.0) == pytest.approx(LOOKAHEAD)
    s = np.arange(j["turn_in"] - 3.0, j["turn_out"] + 2.0, 0.01)
    la = np.array([netdata.lookahead(left, float(x)) for x in s])
    assert np.max(np.abs(np.diff(la))) <= 0.011  # ramps over 0.6 m: at most 0.01 m per 0.01 m


def test_to_turn_column_and_approach_frames(data):
    rows = _rows(data)
    for r in rows:
        assert (r["to_turn"] == "") == (r["junction"] == "")
    meta = json.loads((data / "roads.json").read_text())
    assert meta["approach_window_m"] == list(netdata.APPROACH_WINDOW)
    assert meta["junction_lookahead_m"] == netdata.JUNCTION_LOOKAHEAD
    before = [float(r["to_turn"]) for r in rows if r["to_turn"] and 0 <= float(r["to_turn"]) <= 1.5]
    assert len(before) >= 0.1 * len(rows)  # the approach share lands before the turn-in point


def test_branch_steering_column_gives_every_branch_and_the_own_one_is_the_label(data):
    rows = [r for r in _rows(data) if r["junction"]]
    assert rows
    for r in rows:
        cmds = parse_branch_steering(r["branch_steering"])
        assert list(cmds) == r["options"].split("|")
        assert cmds[r["branch"]] == pytest.approx(float(r["steering"]), abs=2e-6)
        assert all(-1.0 <= v <= 1.0 for v in cmds.values())
    assert all(r["branch_steering"] == "" for r in _rows(data) if not r["junction"])


def test_branch_routes_drive_as_the_sibling_route_that_takes_that_branch():
    net, _, node, left, right = _tee_siblings()
    alt = branch_routes(net, left, node)
    assert sorted(alt) == ["left", "right"]
    jr = next(j for j in right.junctions if j["node"] == node)
    road_alt, road_r = route_road(alt["right"], net.half_width), route_road(right, net.half_width)
    car = CarParams()
    for s in np.arange(jr["turn_in"] - 1.5, jr["turn_out"], 0.25):
        pose = Pose(*road_r.pose_at(float(s)))
        want = pure_pursuit(road_r, pose, car, lookahead=netdata.lookahead(right, float(s)), hint_s=float(s))
        got = pure_pursuit(road_alt, pose, car, lookahead=netdata.lookahead(alt["right"], float(s)), hint_s=float(s))
        assert got == pytest.approx(want, abs=1e-9), s
    with pytest.raises(ValueError, match="not a junction"):
        branch_routes(net, left, left.nodes[0])
