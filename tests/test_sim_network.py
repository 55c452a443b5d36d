"""Road networks with junctions: determinism, disjoint streams, routes that connect and drive, clean junctions."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from edgecnn.errors import DataError
from edgecnn.navmap import RoadNetwork, Route, load_route, save_route
from edgecnn.sim import network as N
from edgecnn.sim.bicycle import CarParams, Pose, step
from edgecnn.sim.render import build_network_scene, build_scene, render
from edgecnn.sim.road import make_road
from edgecnn.sim.simulate import PurePursuitPolicy


def _fingerprint(net: N.SimNetwork) -> tuple:
    g = net.graph
    return (
        tuple((n, d["kind"], d["xy"]) for n, d in g.nodes(data=True)),
        tuple((d["id"], d["a"], d["b"], d["points"].tobytes()) for _u, _v, d in g.edges(data=True)),
        net.half_width,
    )


def _drive(road, car: CarParams, hz: float = 20.0) -> tuple[int, float, float]:
    """The ideal driver (simulate's PurePursuitPolicy) on ``road``, as the drive loop runs it: departures, max
    |offset| (m), distance driven (m)."""
    policy = PurePursuitPolicy(car)
    x, y, h = road.pose_at(0.5)
    pose, s, t, departures, worst = Pose(x, y, h), 0.5, 0.0, 0, 0.0
    while s < road.length and t < 2 * road.length / car.speed + 5:
        policy.observe(road, pose, s)
        cmd, _ = policy(None)
        pose = step(pose, cmd, 1 / hz, car)
        t += 1 / hz
        s, offset, _ = road.locate(pose.x, pose.y, hint_s=s)
        worst = max(worst, abs(offset))
        if abs(offset) > road.half_width:
            departures += 1
            pose = Pose(*road.pose_at(s))
    return departures, worst, s


def test_networks_are_deterministic_per_generator():
    for i in range(3):
        a = N.make_network(N.net_rng(7, N.NET_DATA_STREAM, i))
        b = N.make_network(N.net_rng(7, N.NET_DATA_STREAM, i))
        assert _fingerprint(a) == _fingerprint(b)
        ra = N.plan_route(a, np.random.default_rng(i))
        rb = N.plan_route(b, np.random.default_rng(i))
        assert ra.nodes == rb.nodes and np.array_equal(ra.points, rb.points) and ra.junctions == rb.junctions
    assert _fingerprint(N.make_network(N.net_rng(7, N.NET_DATA_STREAM, 0))) != _fingerprint(
        N.make_network(N.net_rng(8, N.NET_DATA_STREAM, 0)))


def test_training_and_simulator_streams_are_disjoint():
    assert N.NET_DATA_STREAM != N.NET_SIM_STREAM
    for seed in (0, 1):
        data = {_fingerprint(N.make_network(N.net_rng(seed, N.NET_DATA_STREAM, i))) for i in range(15)}
        sim = {_fingerprint(N.make_network(N.net_rng(seed, N.NET_SIM_STREAM, i))) for i in range(15)}
        assert not data & sim


def test_junction_kinds_all_occur_and_geometry_is_donkey_scale():
    kinds: Counter[str] = Counter()
    for i in range(20):
        net = N.make_network(N.net_rng(0, N.NET_SIM_STREAM, i))
        js = net.junctions
        assert 2 <= len(js) <= 4
        kinds.update(js.values())
        assert 0.35 <= net.half_width <= 0.5
        g = net.graph
        assert nx_is_tree(g)
        centres = [np.asarray(g.nodes[n]["xy"]) for n in js]
        for a in range(len(centres)):
            for b in range(a + 1, len(centres)):
                assert np.hypot(*(centres[a] - centres[b])) >= 5.0
        for n, kind in js.items():
            assert g.degree(n) == (4 if kind == "cross" else 3)
    assert set(kinds) == {"T", "cross", "fork"}
    for kind in ("T", "cross", "fork"):
        net = N.make_network(np.random.default_rng(3), kind=kind)
        assert set(net.junctions.values()) == {kind}
    curve = N.make_network(np.random.default_rng(3), kind="curve")
    assert curve.junctions == {} and N.plan_route(curve).junctions == ()
    with pytest.raises(DataError, match="kind"):
        N.make_network(np.random.default_rng(0), kind="roundabout")


def nx_is_tree(g) -> bool:
    import networkx as nx

    return nx.is_tree(g)


def test_every_route_connects_and_the_ideal_driver_follows_it_through_every_junction():
    car = CarParams()
    branches: Counter[tuple[str, str]] = Counter()
    for i in range(10):
        net = N.make_network(N.net_rng(0, N.NET_SIM_STREAM, i))
        g, hw = net.graph, net.half_width
        routes = N.balanced_routes(net, 4, np.random.default_rng(i)) + [N.plan_route(net, np.random.default_rng(99))]
        for route in routes:
            assert isinstance(route, Route)
            assert route.start == net.root and route.goal in net.leaves
            assert all(g.has_edge(u, v) for u, v in zip(route.nodes, route.nodes[1:]))
            steps = np.hypot(*np.diff(route.points, axis=0).T)
            assert steps.max() < N.DS + 0.002  # one continuous line, no jumps
            # It starts in the right lane of the first road, ends in the right lane of the last.
            start = np.asarray(g.nodes[route.start]["xy"])
            assert abs(np.hypot(*(route.points[0] - start)) - hw) < 0.01
            assert [j["node"] for j in route.junctions] == [n for n in route.nodes if n in net.junctions]
            for j in route.junctions:
                assert j["branch"] in j["options"]
                assert j["options"] == (["left", "straight", "right"] if j["kind"] == "cross" else ["left", "right"])
                branches[(j["kind"], j["branch"])] += 1
                # s is where the line passes closest to the junction centre (a right turn cuts the corner).
                dist = np.hypot(*(route.points - np.asarray(g.nodes[j["node"]]["xy"])).T)
                assert abs(int(np.argmin(dist)) * N.DS - j["s"]) < 0.01 and dist.min() < 2.0
            # Through every junction the line keeps its lane: about half a lane from every painted edge line
            # (the kerbs round the inner corners, concentric with the turns).
            edge_lines = np.vstack([r for e in net.markings for side in e[:2] for r in side] + list(net.kerbs))
            gap = np.sqrt(((route.points[::2, None] - edge_lines[None, ::2]) ** 2).sum(-1)).min()
            assert gap > 0.85 * hw
            road = N.route_road(route, hw)
            assert abs(road.length - steps.sum()) < 1e-6
            departures, worst, s = _drive(road, car)
            assert departures == 0, (i, route.nodes)
            assert worst < 0.5 * hw and s >= road.length - 0.1
            # A point beside the line is located at the right offset (left positive), also on the turns.
            for j in route.junctions:
                x, y, h = road.pose_at(j["s"])
                loc = road.locate(x - 0.1 * math.sin(h), y + 0.1 * math.cos(h), hint_s=j["s"])
                assert abs(loc[0] - j["s"]) < 0.05 and abs(loc[1] - 0.1) < 0.01
    assert {b for _k, b in branches} == {"left", "straight", "right"}


def test_balanced_routes_take_each_branch_equally():
    net = N.make_network(np.random.default_rng(5), kind="cross", junctions=2)
    routes = N.balanced_routes(net, 6, np.random.default_rng(0))
    first = Counter(r.junctions[0]["branch"] for r in routes)
    assert first == {"left": 2, "straight": 2, "right": 2}


def test_route_errors_are_one_line():
    net = N.make_network(np.random.default_rng(1))
    with pytest.raises(DataError, match="not a node"):
        N.plan_route(net, goal="n99")
    with pytest.raises(DataError, match="different"):
        N.plan_route(net, start="n0", goal="n0")
    # Between two dead ends (through the junctions, in either direction) a route still drives.
    leaves = net.leaves
    route = N.plan_route(net, start=leaves[0], goal=leaves[-1])
    assert route.nodes[0] == leaves[0] and route.nodes[-1] == leaves[-1]
    assert _drive(N.route_road(route, net.half_width), CarParams())[0] == 0


def test_geometry_and_route_files_round_trip(tmp_path):
    net = N.make_network(np.random.default_rng(2))
    geo = net.geometry
    assert isinstance(geo, RoadNetwork)
    assert set(geo.nodes) == set(net.graph.nodes) and len(geo.edges) == net.graph.number_of_edges()
    for e in geo.edges:
        d = net.graph.edges[e.a, e.b]
        assert d["a"] == e.a and np.allclose(e.points[0], d["points"][0], atol=1e-3)
        assert np.allclose(e.points[-1], d["points"][-1], atol=1e-3)
    route = N.plan_route(net)
    path = save_route(tmp_path / "r.json", geo, route)
    geo2, route2 = load_route(path)
    assert route2.nodes == route.nodes and np.array_equal(route2.points, route.points)
    assert list(route2.junctions) == list(route.junctions)
    assert all(np.array_equal(a.points, b.points) for a, b in zip(geo.edges, geo2.edges))


def test_network_scene_paints_clean_junctions_and_renders():
    rng = np.random.default_rng(4)
    net = N.make_network(rng, kind="T")
    route = N.plan_route(net, rng)
    road = N.route_road(route, net.half_width)
    state = rng.bit_generator.state
    scene = build_network_scene(net, road, rng, labels=True)
    rng2 = np.random.default_rng()
    rng2.bit_generator.state = state
    again = build_network_scene(net, road, rng2)
    assert all(np.array_equal(a, b) for a, b in zip(scene.textures, again.textures))  # labels draw nothing
    from edgecnn.sim.render import LABEL_CLASSES, RES

    cls = scene.labels[0].argmax(-1)
    hw = net.half_width
    for n in net.junctions:
        c = (np.asarray(net.graph.nodes[n]["xy"]) - (scene.x0, scene.y0)) / RES
        r = int(hw / RES)
        col, row = int(c[0]), int(c[1])
        if 0 <= row - r and row + r < cls.shape[0] and 0 <= col - r and col + r < cls.shape[1]:
            patch = cls[row - r : row + r, col - r : col + r]
            assert (patch == LABEL_CLASSES.index("road")).all()  # no marking crosses the junction centre
    # The edge lines of every road stop where they would cross another road's surface.
    g = net.graph
    for (left, right, centre), (_u, _v, d) in zip(net.markings, sorted(g.edges(data=True), key=lambda e: int(e[2]["id"][1:]))):
        others = [g.edges[a, b]["points"] for a, b in g.edges if {a, b} != {d["a"], d["b"]} and {a, b} & {d["a"], d["b"]}]
        for run in left + right + centre:
            for q in others:
                dist = np.sqrt(((run[:, None] - q[None]) ** 2).sum(-1)).min()
                assert dist > 2 * hw - 0.03
    frame = render(scene, Pose(*road.pose_at(route.junctions[0]["s"] - 2.0)), rng=rng)
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8


def test_single_road_scene_unchanged_by_the_network_renderer():
    """build_scene keeps its own random draws: the same generator state gives the same textures as before the
    network renderer shared its helpers (a fixed checksum of a small scene)."""
    rng = np.random.default_rng(11)
    road = make_road(rng, length=6.0)
    scene = build_scene(road, rng)
    # Recomputed from the same state: deterministic, and the rng is left where build_scene always left it.
    rng2 = np.random.default_rng(11)
    road2 = make_road(rng2, length=6.0)
    scene2 = build_scene(road2, rng2)
    assert np.array_equal(scene.textures[0], scene2.textures[0])
    assert rng.random() == rng2.random()
