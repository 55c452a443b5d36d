"""The map input (edgecnn.navmap): rasteriser geometry and speed, the pose error model, route files.

Plain numbers and small hand-made networks; no model, no TensorFlow."""

from __future__ import annotations

import json
import math
import os
import time

import cv2
import numpy as np
import pytest

from edgecnn.errors import DataError
from edgecnn.navmap import (
    ROUTE_FORMAT,
    Edge,
    MapSpec,
    PoseEstimator,
    PoseNoise,
    RoadNetwork,
    Route,
    latlon_to_local,
    load_route,
    local_to_latlon,
    rasterise,
    route_to_dict,
    save_route,
    simplify,
    start_heading,
)

pytestmark = pytest.mark.device

HW = 0.42  # lane half-width, m


def line(a, b, step=0.05) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = int(np.linalg.norm(b - a) / step) + 1
    return a + (b - a) * np.linspace(0, 1, n)[:, None]


def t_network(left=True, right=True, straight=False) -> RoadNetwork:
    """A road east from n0 (0,0) to n1 (10,0); branches north (left when driving east) and/or south."""
    nodes = {"n0": (0.0, 0.0), "n1": (10.0, 0.0)}
    edges = [Edge("e0", "n0", "n1", line((0, 0), (10, 0)), HW)]
    if left:
        nodes["n2"] = (10.0, 10.0)
        edges.append(Edge("e1", "n1", "n2", line((10, 0), (10, 10)), HW))
    if right:
        nodes["n3"] = (10.0, -10.0)
        edges.append(Edge("e2", "n1", "n3", line((10, 0), (10, -10)), HW))
    if straight:
        nodes["n4"] = (25.0, 0.0)
        edges.append(Edge("e3", "n1", "n4", line((10, 0), (25, 0)), HW))
    return RoadNetwork(nodes, tuple(edges))


def left_route() -> Route:
    """The driving line (right lane) from n0 turning left at n1 towards n2."""
    arc = [(10 - HW + HW * 2 * math.sin(a), -HW + HW * 2 * (1 - math.cos(a))) for a in np.linspace(0, math.pi / 2, 20)]
    pts = np.concatenate([line((0, -HW), (10 - HW, -HW))[:-1], np.array(arc)[:-1], line((10 + HW, HW), (10 + HW, 10))])
    junction = {"node": "n1", "kind": "T", "s": 10.0, "branch": "left", "options": ["left", "right"]}
    return Route("n0", "n2", ("n0", "n1", "n2"), pts, (junction,))


SPEC = MapSpec()
ROW0, COL0 = SPEC.car_pixel  # 48, 32


def test_spec_defaults_and_round_trip():
    assert (SPEC.size, SPEC.extent_m, SPEC.behind_m, SPEC.channels) == (64, 8.0, 2.0, ("roads", "route"))
    assert SPEC.pixels_per_m == 8.0 and (ROW0, COL0) == (48.0, 32.0)
    assert MapSpec.from_dict(SPEC.to_dict()) == SPEC
    assert MapSpec.from_dict({"channels": ["roads"]}).routed is False
    for bad in ({"size": 0}, {"size": 64.5}, {"behind_m": 8.0}, {"channels": ["roads", "sky"]}, {"channels": []},
                {"channels": ["roads", "roads"]}, {"extent_m": -1}):
        with pytest.raises(ValueError):
            MapSpec.from_dict(bad)


def test_raster_is_binary_with_the_spec_shape():
    m = rasterise(t_network(), left_route(), (7.0, -HW, 0.0), SPEC)
    assert m.shape == (64, 64, 2) and m.dtype == np.uint8
    assert set(np.unique(m)) == {0, 255}
    one = rasterise(t_network(), None, (7.0, -HW, 0.0), MapSpec(channels=("roads",)))
    assert one.shape == (64, 64, 1) and np.array_equal(one[:, :, 0], m[:, :, 0])


def test_straight_road_ahead_is_above_the_car_and_centred_on_the_road():
    net = RoadNetwork({"a": (-20.0, 0.0), "b": (20.0, 0.0)}, (Edge("e", "a", "b", line((-20, 0), (20, 0)), HW),))
    roads = rasterise(net, None, (0.0, 0.0, 0.0), MapSpec(channels=("roads",)))[:, :, 0]
    cols = np.flatnonzero(roads[0])  # the top row: 6 m ahead
    width = 4 * HW * SPEC.pixels_per_m  # 13.44 pixels
    assert len(cols) in (13, 14) and abs(cols.mean() + 0.5 - COL0) <= 0.5  # centred on the car's column
    assert (roads[:, 32] == 255).all()  # the whole column through the car (ahead and behind)
    assert not roads[:, : int(COL0 - width)].any() and not roads[:, int(COL0 + width) :].any()
    # Driving in the right lane: the road centre is half_width to the car's left, i.e. left of its column.
    lane = rasterise(net, None, (0.0, -HW, 0.0), MapSpec(channels=("roads",)))[:, :, 0]
    assert np.flatnonzero(lane[0]).mean() + 0.5 == pytest.approx(COL0 - HW * SPEC.pixels_per_m, abs=0.6)


def test_a_left_branch_is_on_the_left_and_ahead():
    roads = rasterise(t_network(right=False), None, (7.0, -HW, 0.0), MapSpec(channels=("roads",)))[:, :, 0]
    junction_row = int(ROW0 - 3.0 * SPEC.pixels_per_m)  # 3 m ahead
    band = roads[junction_row - 3 : junction_row + 3]
    assert band[:, :8].all() and not band[:, 48:].any()
    # On the road centre, a right branch is the left one's mirror image (a pixel may round the other way).
    mid = MapSpec(channels=("roads",))
    left = rasterise(t_network(right=False), None, (7.0, 0.0, 0.0), mid)[:, :, 0]
    right = rasterise(t_network(left=False), None, (7.0, 0.0, 0.0), mid)[:, :, 0]
    assert (right != left[:, ::-1]).mean() < 0.005
    assert not roads[: junction_row - 8, :16].any()  # nothing beyond the branch's width up there


def test_heading_rotates_the_map():
    """The same network and pose turned together by any angle draw the same raster; turning only the car by
    90 degrees left makes the road ahead run across the map."""
    net, route = t_network(straight=True), left_route()
    base = rasterise(net, route, (7.0, -HW, 0.0), SPEC)
    for theta in (0.7, math.pi / 2, 2.5, -1.9):
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, -s], [s, c]])

        def turn(p, rot=rot):
            return np.asarray(p, float) @ rot.T

        net2 = RoadNetwork({k: tuple(turn(v)) for k, v in net.nodes.items()},
                           tuple(Edge(e.id, e.a, e.b, turn(e.points), e.half_width) for e in net.edges))
        route2 = Route(route.start, route.goal, route.nodes, turn(route.points), route.junctions)
        x, y = turn((7.0, -HW))
        got = rasterise(net2, route2, (x, y, theta), SPEC)
        assert (got != base).mean() < 0.005, theta  # a few boundary pixels may round the other way
    across = rasterise(net, None, (3.0, 0.0, math.pi / 2), MapSpec(channels=("roads",)))[:, :, 0]
    # the east-west road (from x = 0, 3 m to the car's left) runs through the car's row; nothing far ahead
    assert across[int(ROW0), 8:].all() and not across[int(ROW0), :7].any() and not across[:20, 24:40].any()


def test_route_channel_is_a_subset_of_the_roads():
    net, route = t_network(straight=True), left_route()
    for pose in ((7.0, -HW, 0.0), (9.5, -0.2, 0.6), (10.4, 4.0, math.pi / 2), (2.0, -0.5, -0.1)):
        m = rasterise(net, route, pose, SPEC)
        grown = cv2.dilate(m[:, :, 0], np.ones((3, 3), np.uint8))  # one pixel of rounding either way
        assert m[:, :, 1].any(), pose
        assert not (m[:, :, 1] & ~grown).any(), pose
    # The route covers the lane the car is in, one lane wide, centred on the car.
    m = rasterise(net, route, (5.0, -HW, 0.0), SPEC)
    cols = np.flatnonzero(m[0, :, 1] if m[0, :, 1].any() else m[40, :, 1])
    assert len(np.flatnonzero(m[40, :, 1])) in (6, 7)  # 2 * 0.42 m at 8 px/m = 6.72 pixels
    assert abs(np.flatnonzero(m[40, :, 1]).mean() + 0.5 - COL0) <= 0.5 and cols.size


def test_start_heading():
    assert start_heading(left_route()) == pytest.approx(0.0)  # east along the first road
    r = Route("a", "b", ("a", "b"), np.array([[0.0, 0.0], [0.1, 0.1], [0.2, 0.2]]))
    assert start_heading(r) == pytest.approx(math.pi / 4)  # shorter than 0.5 m: towards its last point


def test_far_roads_are_skipped_and_out_is_reused():
    net = t_network(straight=True)
    out = np.full((64, 64, 2), 7, np.uint8)
    got = rasterise(net, left_route(), (200.0, 200.0, 0.0), SPEC, out=out)
    assert got is out and not out.any()
    with pytest.raises(ValueError):
        rasterise(net, None, (0, 0, 0), SPEC, out=np.zeros((64, 64, 3), np.uint8))


def test_simplify_keeps_the_shape():
    a = np.linspace(0, math.pi / 2, 200)
    arc = np.c_[1.7 * np.cos(a), 1.7 * np.sin(a)]
    s = simplify(arc, 0.01)
    assert 4 <= len(s) <= 20 and np.array_equal(s[[0, -1]], arc[[0, -1]])
    assert len(simplify(line((0, 0), (10, 0)))) == 2


def test_rasterise_is_fast():
    """< 0.2 ms per raster for a junction in view (measured ~0.05 ms on one core). The 10th percentile of
    single calls: what the code costs, not how loaded the machine is."""
    net, route, out = t_network(straight=True), left_route(), np.empty((64, 64, 2), np.uint8)
    times = []
    for i in range(400):
        t0 = time.perf_counter()
        rasterise(net, route, (6.0 + i * 0.01, -HW, 0.05), SPEC, out=out)
        times.append(time.perf_counter() - t0)
    assert np.percentile(times, 10) < 0.2e-3, np.percentile(times, 10)


# ------------------------------------------------------------------------------------------------ pose estimator


def drive(est: PoseEstimator, t_end: float, speed=1.0, tick=0.01) -> None:
    for i in range(round(t_end / tick) + 1):
        t = i * tick
        est.update(t, (speed * t, 0.0, 0.0))


def test_estimator_delay_and_rate_without_noise():
    noise = PoseNoise().scaled(0.0)
    assert (noise.position_m, noise.heading_deg, noise.delay_ms, noise.rate_hz) == (0.0, 0.0, 100.0, 10.0)
    est = PoseEstimator(noise, np.random.default_rng(0))
    assert est.estimate(0.0) is None
    for i in range(301):  # a car at 1 m/s fed at 100 Hz, asked at every tick
        t = i * 0.01
        est.update(t, (t, 0.0, 0.0))
        got = est.estimate(t)
        if t < 0.1 - 1e-9:
            assert got is None, t  # before the first measurement (t=0) arrived 100 ms later
            continue
        sample = math.floor(round((t - 0.1) * 10, 6)) / 10  # the newest 10 Hz measurement at least 100 ms old
        assert got == pytest.approx((sample, 0.0, 0.0), abs=1e-9), t


def test_estimator_noise_statistics():
    noise = PoseNoise()
    first = []
    for seed in range(600):  # the first measurement of many cars: the full error (bias and white part)
        est = PoseEstimator(noise, np.random.default_rng(seed))
        est.update(0.0, (0.0, 0.0, 0.0))
        first.append(est.estimate(0.1))
    first = np.array(first)
    assert np.std(first[:, 0]) == pytest.approx(0.25, rel=0.12)
    assert np.std(first[:, 1]) == pytest.approx(0.25, rel=0.12)
    assert np.degrees(np.std(first[:, 2])) == pytest.approx(4.0, rel=0.12)
    assert abs(first[:, :2].mean()) < 0.05
    # Over time: successive measurements are correlated (the slow bias), distant ones are not.
    est = PoseEstimator(noise, np.random.default_rng(1))
    xs = []
    for i in range(20000):
        t = i * 0.1
        est.update(t, (0.0, 0.0, 0.0))
        xs.append(est.estimate(t + 0.1)[0])
    xs = np.array(xs)
    lag1 = np.corrcoef(xs[:-1], xs[1:])[0, 1]
    assert lag1 == pytest.approx(0.75 * math.exp(-0.1 / 5.0), abs=0.08)
    assert abs(np.corrcoef(xs[:-300], xs[300:])[0, 1]) < 0.15  # 30 s apart: 6 correlation times
    # The same stream gives the same estimates; asking twice gives the same answer.
    a, b = PoseEstimator(noise, np.random.default_rng(5)), PoseEstimator(noise, np.random.default_rng(5))
    drive(a, 2.0)
    drive(b, 2.0)
    assert [a.estimate(t) for t in (0.5, 0.5, 1.0, 1.9)] == [b.estimate(t) for t in (0.5, 0.5, 1.0, 1.9)]


def test_one_shot_shifts_back_by_the_delay_and_adds_the_error():
    est = PoseEstimator(PoseNoise(), np.random.default_rng(3))
    poses = np.array([est.one_shot((5.0, 2.0, math.pi / 2), speed_mps=2.0) for _ in range(3000)])
    back = 2.0 * (0.1 + 0.05)  # delay + half an update period on average
    assert poses[:, 1].mean() == pytest.approx(2.0 - back, abs=0.02)  # heading north: shifted south
    assert poses[:, 0].mean() == pytest.approx(5.0, abs=0.02)
    assert np.std(poses[:, 0]) == pytest.approx(0.25, rel=0.08)
    assert np.degrees(np.std(poses[:, 2])) == pytest.approx(4.0, rel=0.08)
    perfect = PoseEstimator(PoseNoise(delay_ms=0.0, rate_hz=1e9).scaled(0), np.random.default_rng(0))
    assert perfect.one_shot((1.0, 2.0, 0.3), 2.0) == pytest.approx((1.0, 2.0, 0.3))


def test_pose_noise_round_trip_and_checks():
    n = PoseNoise(position_m=0.5, heading_deg=2.0, delay_ms=50.0, rate_hz=20.0)
    assert PoseNoise.from_dict(n.to_dict()) == n and PoseNoise.from_dict({}) == PoseNoise()
    assert n.scaled(2.0).position_m == 1.0 and n.scaled(2.0).delay_ms == 50.0
    for bad in ({"rate_hz": 0}, {"position_m": -1}, {"delay_ms": "soon"}):
        with pytest.raises(ValueError):
            PoseNoise.from_dict(bad)


def test_latlon_round_trip():
    origin = (48.137, 11.575)
    x, y = latlon_to_local(48.137 + 1e-4, 11.575 + 2e-4, origin)
    assert y == pytest.approx(11.12, abs=0.01) and x == pytest.approx(14.85, abs=0.02)
    assert local_to_latlon(x, y, origin) == pytest.approx((48.137 + 1e-4, 11.575 + 2e-4), abs=1e-12)


# --------------------------------------------------------------------------------------------------- route files


def test_route_file_round_trip_is_exact(tmp_path):
    net, route = t_network(straight=True), left_route()
    path = save_route(tmp_path / "r.json", net, route)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    net2, route2 = load_route(path)
    assert route2.nodes == route.nodes and route2.junctions == route.junctions and route2.goal == "n2"
    assert all(np.array_equal(a.points, b.points) for a, b in zip(net.edges, net2.edges))
    for pose in ((7.0, -HW, 0.0), (10.3, 2.0, 1.4)):
        assert np.array_equal(rasterise(net, route, pose, SPEC), rasterise(net2, route2, pose, SPEC))
    d = json.loads(path.read_text())
    assert d["format"] == ROUTE_FORMAT and d["units"] == "m" and d["origin"] is None


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def _write(tmp_path, d, name="r.json"):
    p = tmp_path / name
    p.write_text(d if isinstance(d, str) else json.dumps(d))
    return p


def _good() -> dict:
    return route_to_dict(t_network(straight=True), left_route())


def _mutated(**route_changes):
    d = _good()
    d["route"].update(route_changes)
    return d


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a route file (not JSON"),
    ("[1, 2]", "not an edgecnn route file"),
    ({"format": "geojson"}, "format 'geojson', expected 'edgecnn-route-1'"),
    ("edge-unknown-node", "edge e1 names unknown node 'n9'"),
    (_mutated(nodes=["n0", "n1", "n4", "n2"], goal="n2"), "route n4 -> n2: no road joins them"),
    (_mutated(nodes=["n0", "n2"]), "route n0 -> n2: no road joins them"),
    (_mutated(goal=[12.0, 3.0]), "goal [12.0, 3.0] is 2.0 m from the nearest road"),
    (_mutated(goal="n7"), "route goal 'n7' is not a node of the network"),
    (_mutated(start="n1"), "route nodes begin at 'n0', not at its start 'n1'"),
    (_mutated(points=[[0, 0]]), "route points must be a list of at least two"),
    ("no-route", "no 'route' object"),
])
def test_route_file_errors_are_one_line(tmp_path, content, message):
    if content == "edge-unknown-node":
        content = _good()
        content["edges"][1]["b"] = "n9"
    elif content == "no-route":
        content = _good()
        del content["route"]
    with pytest.raises(DataError) as exc:
        load_route(_write(tmp_path, content))
    text = str(exc.value)
    assert message in text and "\n" not in text and str(tmp_path / "r.json") in text


def test_route_goal_may_be_a_point_on_the_road(tmp_path):
    net, route = load_route(_write(tmp_path, _mutated(goal=[10.3, 8.0])))
    assert route.goal.startswith("@") and json.loads(json.dumps(route_to_dict(net, route)))["route"]["goal"] == \
        [10.3, 8.0]


def test_missing_and_folder_route_files(tmp_path):
    for p, msg in ((tmp_path / "nope.json", "no such route file"), (tmp_path, "is a folder")):
        with pytest.raises(DataError, match=msg):
            load_route(p)


def test_raster_is_the_road_surface_to_within_a_pixel_wherever_the_road_lies():
    """Random straight roads around the car, many crossing the map's edges at shallow angles: every pixel whose
    centre is more than 1.5 pixels inside (outside) the road's rectangle is set (clear). OpenCV's fillPoly also
    paints the outline's own 8-connected line, so its edges are good to about a pixel (12.5 cm, half the default
    pose error); the bound catches real faults, such as fillPoly painting a polygon's off-image part onto the
    edge column (which is why navmap draws with a margin, navmap._PAD)."""
    rng = np.random.default_rng(7)
    spec = MapSpec(channels=("roads",))
    ppm = spec.pixels_per_m
    rows, cols = np.mgrid[0:64, 0:64]
    fwd = (ROW0 - 0.5 - rows) / ppm  # pixel centres in the car's frame, metres
    left = (COL0 - 0.5 - cols) / ppm
    for _ in range(150):
        a = rng.uniform(-9, 9, 2)
        b = a + rng.uniform(-12, 12, 2)
        net = RoadNetwork({"a": tuple(a), "b": tuple(b)}, (Edge("e", "a", "b", np.array([a, b]), HW),))
        pose = (0.0, 0.0, 0.0)  # car at the origin heading +x: world x = fwd, world y = left
        got = rasterise(net, None, pose, spec)[:, :, 0] > 0
        d = (b - a) / np.linalg.norm(b - a)
        along = (fwd - a[0]) * d[0] + (left - a[1]) * d[1]
        across = np.abs(-(fwd - a[0]) * d[1] + (left - a[1]) * d[0])
        length = np.linalg.norm(b - a)
        # signed distance (pixels) to the rectangle's outline: > 0 inside
        inside = np.minimum(np.minimum(along, length - along), 2 * HW - across) * ppm
        assert not (got & (inside < -1.5)).any(), (a, b)
        assert (got | (inside < 1.5)).all(), (a, b)


# ------------------------------------------------------------------------------------------ the navigate contract


def test_navigate_contract_carries_the_map_and_old_contracts_still_read():
    from edgecnn.contract import Contract, map_entry
    from edgecnn.errors import ModelError

    c = Contract(task="navigate", input_height=66, input_width=200, head="gmm", components=3,
                 map=map_entry(MapSpec(channels=("roads",)), PoseNoise(position_m=0.5)))
    assert c.map == {"spec": {"size": 64, "extent_m": 8.0, "behind_m": 2.0, "channels": ["roads"]}, "routed": False,
                     "pose_noise": {"position_m": 0.5, "heading_deg": 4.0, "delay_ms": 100.0, "rate_hz": 10.0},
                     "input": "map"}
    back = Contract.from_json(c.to_json())
    assert back == c and back.map_spec == MapSpec(channels=("roads",)) and back.pose_noise.position_m == 0.5
    old = {"task": "steer", "input_height": 66, "input_width": 200, "head": "gmm", "components": 3}  # before map
    assert Contract.from_dict(old).map == {} and Contract.from_dict(old).map_spec is None
    hash(Contract.from_dict(old))
    base = {"task": "navigate", "input_height": 66, "input_width": 200, "head": "gmm", "components": 3}
    for bad, msg in (({}, "needs its map input described"), ({"head": "regression", "components": 0}, "head 'gmm'"),
                     ({"map": {"spec": {"size": 0}}}, "map input is malformed"),
                     ({"map": {"spec": {}, "routed": False}}, "routed=False but its channels"),
                     ({"task": "steer", "map": map_entry(MapSpec())}, "only a navigate contract has a map")):
        with pytest.raises(ModelError, match=msg):
            Contract.from_dict({**base, **bad})
