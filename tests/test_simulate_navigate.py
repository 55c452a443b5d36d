"""Closed-loop navigation on road networks: junction and route metrics, the map at the estimated pose, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from edgecnn.navmap import PoseNoise, rasterise
from edgecnn.sim.bicycle import CarParams
from edgecnn.sim.navigate import (
    NavConfig,
    drive_route,
    plan,
    route_indexes,
    simulate_networks,
)
from edgecnn.sim.network import plan_route, route_road
from edgecnn.sim.pursuit import pure_pursuit
from edgecnn.sim.simulate import PurePursuitPolicy, zero_policy

REPO = Path(__file__).resolve().parents[1]
CLASSIFIER = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"


class _OtherRoute:
    """Pure pursuit along another route's driving line: a perfect driver that takes the wrong branch."""

    needs_frame = False

    def __init__(self, road):
        self.road, self.s, self.cmd = road, 0.5, 0.0

    def observe(self, road, pose, s):
        self.s, _, _ = self.road.locate(pose.x, pose.y, hint_s=self.s)
        self.cmd = pure_pursuit(self.road, pose, CarParams(), hint_s=self.s)

    def __call__(self, frame):
        return self.cmd, None


class _MapRecorder(PurePursuitPolicy):
    """The ideal driver that also asks for frames and maps, and keeps what it was given."""

    uses_map = True
    needs_frame = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def __call__(self, frame, map_raster):
        self.seen.append((frame.copy(), map_raster.copy()))
        return super().__call__(frame)


def test_the_ideal_route_follower_takes_every_junction_and_completes_every_route():
    r = simulate_networks(PurePursuitPolicy(), NavConfig(routes=6))
    assert r.junctions >= 6
    assert r.junction_success == 1.0 and r.route_completion == 1.0 and r.autonomy == 1.0 and r.departures == 0
    assert all(j.ok and j.reached for pr in r.per_route for j in pr.junctions)
    d = r.to_dict()
    for key in ("junctions", "junction_success", "route_completion", "autonomy", "departures", "per_route"):
        assert key in d
    assert [j["number"] for j in d["per_route"][0]["junctions"]] == list(range(1, len(r.per_route[0].junctions) + 1))


def test_straight_ahead_fails_junctions_so_the_metric_can_fail():
    r = simulate_networks(zero_policy, NavConfig(routes=6))
    assert r.junction_success < 0.3 and r.route_completion < 0.5 and r.departures > 0


def test_a_perfect_driver_on_the_wrong_branch_fails_that_junction():
    cfg = NavConfig()
    tried = 0
    for i in range(20):
        p = plan(i, cfg)
        j0 = p.route.junctions[0] if p.route.junctions else None
        for leaf in p.network.leaves:
            other = plan_route(p.network, None, goal=leaf)
            if j0 is None or not other.junctions or other.junctions[0]["branch"] == j0["branch"]:
                continue
            if other.junctions[0]["node"] != j0["node"]:
                continue
            r = drive_route(_OtherRoute(route_road(other, p.network.half_width)), p, cfg)
            assert not r.junctions[0].ok and r.junctions[0].zone_departures > 0 and not r.completed
            tried += 1
            break
        if tried >= 3:
            break
    assert tried >= 3


def test_default_routes_hold_at_least_40_junctions():
    cfg = NavConfig()
    idx = route_indexes(cfg)
    assert sum(len(plan(i, cfg).route.junctions) for i in idx) >= 40
    assert route_indexes(replace(cfg, routes=3)) == [0, 1, 2]


def test_maps_are_drawn_at_the_estimated_pose_and_drives_are_deterministic():
    cfg = NavConfig(routes=1)
    a, b = _MapRecorder(), _MapRecorder()
    ra, rb = simulate_networks(a, cfg), simulate_networks(b, cfg)
    assert len(a.seen) == len(b.seen) > 20
    assert all(np.array_equal(fa, fb) and np.array_equal(ma, mb) for (fa, ma), (fb, mb) in zip(a.seen, b.seen))
    assert np.array_equal(ra.per_route[0].trajectory, rb.per_route[0].trajectory, equal_nan=True)
    frame, m = a.seen[0]
    assert frame.shape == (120, 160, 3) and m.shape == (64, 64, 2) and m.dtype == np.uint8
    assert set(np.unique(m)) <= {0, 255} and m[..., 0].any() and m[..., 1].any()
    assert ra.map_spec is not None and ra.map_spec.channels == ("roads", "route")

    # With a perfect pose (no noise, no delay) the first map is the one at the start pose; with noise it is not.
    p = plan(0, cfg)
    exact = rasterise(p.network.geometry, p.route, p.road.pose_at(0.5), cfg.map_spec)
    perfect = _MapRecorder()
    simulate_networks(perfect, replace(cfg, pose_noise=replace(PoseNoise().scaled(0), delay_ms=0)))
    assert np.array_equal(perfect.seen[0][1], exact)
    assert not np.array_equal(m, exact)


def test_latency_and_pose_settings_reach_the_result():
    cfg = NavConfig(routes=1, latency_ms=50, pose_noise=replace(PoseNoise().scaled(2), delay_ms=300))
    d = simulate_networks(PurePursuitPolicy(), cfg).to_dict()
    assert d["latency_ms"] == 50 and d["pose_noise"]["delay_ms"] == 300 and d["pose_noise"]["position_m"] == 0.5


def test_cli_networks_json_and_plot_with_the_ideal_policy(tmp_path):
    out = tmp_path / "routes.png"
    r = run_cli("simulate", "--policy", "ideal", "--networks", "--routes", "2", "--json", "--plot", out, block_tf=True)
    assert r.returncode == 0, r.stderr[-1500:]
    d = json.loads(r.stdout)
    for key in ("junctions", "junction_success", "route_completion", "autonomy", "departures"):
        assert key in d
    assert d["junction_success"] == 1.0 and d["route_completion"] == 1.0 and d["routes"] == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "route 1/2: junctions" in r.stderr and "route 0" not in r.stderr
    text = run_cli("simulate", "--policy", "zero", "--networks", "--routes", "1", block_tf=True)
    assert text.returncode == 0 and "junctions:" in text.stdout and "route completion:" in text.stdout
    assert "NOT completed" in text.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "ideal", "--routes", "2"], "--routes applies to road networks"),
        (["--policy", "ideal", "--pose-noise", "2"], "--pose-noise applies to road networks"),
        (["--policy", "ideal", "--networks", "--roads", "3"], "--roads applies to plain roads"),
        (["--model", "/no/such/nav.tflite", "--networks"], "no model at"),
        (["--model", str(CLASSIFIER), "--networks"], "is a 'classify' model"),
        (["--policy", "ideal", "--networks", "--pose-noise", "-1"], "--pose-noise"),
    ],
)
def test_cli_bad_input_is_one_line(args, message):
    r = run_cli("simulate", *args, block_tf=True)
    assert r.clean_error, r.stderr[-800:]
    assert message in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) <= 3  # click's usage line + the error


PILOTNET = REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite"


def _gmm(weights, means, sigmas) -> np.ndarray:
    return np.r_[np.log(weights), means, np.log(sigmas)]


def test_branch_steering_takes_the_heavier_branch_never_the_average():
    from edgecnn.mixture import split
    from edgecnn.runtime.model_policy import branch_steering

    one = _gmm([0.5, 0.3, 0.2], [0.1, 0.15, 0.05], [0.1, 0.1, 0.1])  # one mode: the mixture mean
    assert branch_steering(one)[0] == pytest.approx(split(one).mean, abs=1e-9)
    left = branch_steering(_gmm([0.55, 0.35, 0.1], [-0.7, 0.7, 0.6], [0.1, 0.1, 0.1]))
    right = branch_steering(_gmm([0.45, 0.45, 0.1], [-0.7, 0.7, 0.6], [0.1, 0.1, 0.1]))
    assert left[0] == pytest.approx(-0.7, abs=0.02) and right[0] == pytest.approx(0.68, abs=0.03)
    assert left[1] > 0.5  # the uncertainty is the whole mixture's
    assert all(np.isnan(branch_steering(np.full(9, np.nan))))


@pytest.fixture(scope="module")
def tiny_nav(tmp_path_factory) -> Path:
    from nav_fixtures import tiny_navigate_tflite

    return tiny_navigate_tflite(tmp_path_factory.mktemp("nav"), routed=True, int8=True)


def test_nav_model_policy_reads_the_map_and_steers_towards_the_route(tiny_nav):
    from nav_fixtures import sample_network

    from edgecnn.runtime.model_policy import NavModelPolicy, load_policy

    policy = load_policy(tiny_nav)
    assert isinstance(policy, NavModelPolicy) and policy.uses_map and policy.routed
    assert policy.map_spec.channels == ("roads", "route") and policy.pose_noise == PoseNoise()
    net, left, right = sample_network()
    frame = np.zeros((120, 160, 3), np.uint8)
    pose = (9.0, -0.42, 0.0)  # 1 m before the T
    s_left, std = policy(frame, rasterise(net, left, pose, policy.map_spec))
    s_right, _ = policy(frame, rasterise(net, right, pose, policy.map_spec))
    assert s_left < -0.2 < 0.2 < s_right and std is not None and std > 0
    assert len(policy.invoke_ms) == 2 and policy.steering == "mean"
    branch = load_policy(tiny_nav, nav_steering="branch")
    assert branch.steering == "branch" and branch(frame, rasterise(net, right, pose, policy.map_spec))[0] > 0.2


def test_cli_navigate_model_prints_the_route_metrics(tiny_nav):
    r = run_cli("simulate", "--model", tiny_nav, "--routes", "1", "--json", block_tf=True)
    assert r.returncode == 0, r.stderr[-1500:]
    d = json.loads(r.stdout)
    for key in ("junctions", "junction_success", "route_completion", "autonomy", "departures", "per_route"):
        assert key in d
    assert 0 <= d["junction_success"] <= 1 and 0 <= d["route_completion"] <= 1 and d["junctions"] >= 1
    assert d["map_spec"]["channels"] == ["roads", "route"] and "navigate, routed" in d["driver"]
    assert d["nav_steering"] == "mean"  # auto: a routed model drives with the mixture mean, as `steer` does
    assert d["model_ms_p50"] > 0 and d["pose_noise"] == PoseNoise().to_dict()


def test_cli_image_only_model_drives_the_same_routes_without_a_map():
    r = run_cli("simulate", "--model", PILOTNET, "--networks", "--routes", "1", "--json", block_tf=True)
    assert r.returncode == 0, r.stderr[-1500:]
    d = json.loads(r.stdout)
    assert "image only" in d["driver"] and d["map_spec"] is None and d["routes"] == 1
    ideal = json.loads(run_cli("simulate", "--policy", "ideal", "--networks", "--routes", "1", "--json").stdout)
    assert [p["nodes"] for p in d["per_route"]] == [p["nodes"] for p in ideal["per_route"]]
