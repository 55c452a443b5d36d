"""The navigation data set: frames on road networks with junctions, each with its coarse map and route.

``edgecnn data roads OUT --networks``. Networks come from :func:`edgecnn.sim.network.make_network` (T-junctions,
crossroads, forks; stream :data:`~edgecnn.sim.network.NET_DATA_STREAM`, never the simulator's), each with
:data:`ROUTES_PER_NETWORK` routes from its start node chosen so that every junction's branches are taken equally
often (:func:`~edgecnn.sim.network.balanced_routes`): an unrouted model sees every branch of a junction, a routed
one learns to pick the one its map shows. Each route gets its own scene (:func:`build_network_scene`: the whole
network painted around it, own surfaces, markings, lighting, surroundings) and ``per_route`` frames, sampled as
``edgecnn data roads`` samples them (random lateral offset and heading error, camera height, pitch, roll and
field of view jittered, lighting per frame), a share :data:`JUNCTION_SHARE` of them drawn inside a junction zone
(2.5 m before its centre to 1.0 m after), a share :data:`APPROACH_SHARE` on a junction's approach around its
turn-in point (:data:`APPROACH_WINDOW`: 1.5 m before the point where the first route turning there starts its arc
to 0.3 m after), and the rest anywhere along the route. The label is pure pursuit on the route's driving line: the
ideal driver follows the route, looking :data:`JUNCTION_LOOKAHEAD` (1.6 m) ahead through a turn and 0.6 m on plain
road (:func:`lookahead`), so it begins a turn from the stretch of approach every branch shares: there the frame and
a roads-only map are the same whichever branch the route takes, and the labels of the branches differ. That is
where an unrouted model must show every branch as a mode.

Each frame's map is :func:`edgecnn.navmap.rasterise` of the network and route at the pose the car would
*believe* (:meth:`edgecnn.navmap.PoseEstimator.one_shot`: the true pose moved back by the pose delay, plus
position and heading noise, ``pose_noise`` x the :class:`~edgecnn.navmap.PoseNoise` defaults' errors, the delay
kept), drawn from the route file's own arrays, so re-rasterising from ``routes/`` and the ``est_*`` columns gives
the same map exactly.
The pose noise has its own random stream: the frames do not change with ``pose_noise``.

Layout (``OUT/``)::

    labels.csv     image,steering,map,network,route,junction,branch,options,to_turn,branch_steering,x,y,heading,
                   est_x,est_y,est_heading
    images/        NNNNNN.jpg (BGR, JPEG quality 95)
    maps/          NNNNNN.png (uint8 3 channels as cv2.imread returns them: 0 = roads, 1 = route, 2 = 0; 0/255)
    roads.json     provenance: format "edgecnn-networks-1", frames, size, seed, stream, map_spec, pose_noise, ...
    networks.json  every network (nodes, edges in local metres) and its routes (nodes, junctions, file)
    routes/        NET-ROUTE.json, one route file each (edgecnn.navmap.load_route reads them)

``junction`` is "" or the junction's kind ("T", "cross", "fork") when the frame is in its zone (from its turn-in
point + APPROACH_WINDOW[0], or 2.5 m before its centre if earlier, to 1.0 m after the centre), ``branch`` the
route's branch there, ``options`` the branches it offers ("left|right"), ``to_turn`` the arc length left to the
junction's turn-in point (m, negative once past it; :func:`node_turn_in`), ``branch_steering`` the driver's
steering from the same pose had the route taken each of the junction's branches ("left:-0.31|right:0.12",
:func:`branch_steering`; the route's own branch is the label); ``x, y, heading`` the true rear-axle
pose (heading not wrapped), ``est_*`` the believed one (metres, radians, heading in [-pi, pi)). :func:`edgecnn.data.steering.load_steering_dataset` reads the
folder as image,steering data (it ignores the other columns), so an image-only model trains on the same frames.
Rows are in network, route and arc-length order, so a time-block split keeps a route's frames together.

Speed (measured, 160x120, defaults): 8000 frames took 116 s of CPU (about 69 frames/s on an idle core; 5.5
minutes wall clock on 2 cores shared with 8 other jobs). Per frame the render, JPEG and PNG cost about 5 ms; a
route's scene (about 0.1 s, shared by its ``per_route`` frames) the rest; the ``branch_steering`` column adds about
12 % (300 frames: 7.0 s of CPU against 6.3 s without it, measured side by side). Networks render in
``workers`` processes (the CLI's default: one per core); on 2 idle cores 4000 frames took 26.7 s with 2 workers
against 42.7 s in one process (151 against 94 frames/s), the files identical; 64000 frames took 7 min 10 s.
At the defaults (16000 frames, seed 0) 75 % of the frames are junction frames, each kind's branches within 10 %
of each other (T 2223 left / 2028 right), and 782 T-junction frames lie in the last 0.5 m before the turn-in
point (369 left, 413 right).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.data.parallel import render_pieces
from edgecnn.data.roads import JPEG, random_view, write_image, write_labels
from edgecnn.errors import DataError
from edgecnn.junction import ROAD, JunctionLabel
from edgecnn.navmap import MapSpec, PoseEstimator, PoseNoise, rasterise, route_to_dict
from edgecnn.sim.bicycle import CarParams
from edgecnn.sim.network import (
    NET_DATA_STREAM,
    NET_SIM_STREAM,
    ZONE_AFTER,
    ZONE_BEFORE,
    balanced_routes,
    branch_routes,
    make_network,
    net_rng,
    route_road,
)
from edgecnn.sim.pursuit import LOOKAHEAD, pure_pursuit
from edgecnn.sim.render import build_network_scene, render

FORMAT = "edgecnn-networks-1"
COLUMNS = ("image", "steering", "map", "network", "route", "junction", "branch", "options", "to_turn",
           "branch_steering", "x", "y", "heading", "est_x", "est_y", "est_heading")
DEFAULT_FRAMES = 8000
DEFAULT_PER_ROUTE = 6
ROUTES_PER_NETWORK = 4
JUNCTION_SHARE = 0.25  # frames drawn inside a junction zone (2.5 m before its centre to 1.0 m after)
APPROACH_SHARE = 0.3  # frames drawn on a junction's approach, around its turn-in point (APPROACH_WINDOW)
APPROACH_WINDOW = (-1.5, 0.3)  # metres of arc around the turn-in point (negative = before it)
# The labelling driver's look-ahead (m) through a turn (the plain road's: 0.6). At 1.6 m rather than 1.2 m the
# branches' steering parts earlier on the shared approach (0.4-0.5 m before the turn-in point by a median 0.23
# instead of 0.15), far enough apart for an unrouted model to show them as two modes (README, navigation).
JUNCTION_LOOKAHEAD = 1.6


def route_file(network: int, route: int) -> str:
    """The route file of route ``route`` of network ``network``, relative to the data folder."""
    return f"routes/{network}-{route}.json"


def generate(
    out: str | Path,
    n: int = DEFAULT_FRAMES,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    per_route: int = DEFAULT_PER_ROUTE,
    pose_noise: float = 1.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    spec: MapSpec | None = None,
    workers: int = 1,
) -> Path:
    """Write ``n`` frames of ``size`` = (width, height) with their maps to ``out`` (layout in the module
    docstring); ``pose_noise`` scales the default :class:`~edgecnn.navmap.PoseNoise` (0 = perfect pose);
    ``spec`` the map (default :class:`~edgecnn.navmap.MapSpec`: 64x64, 8 m, roads + route).

    ``workers`` > 1 renders that many networks at once in separate processes. Each network has its own random
    streams and its frame budget is planned before any is rendered (:func:`plan_networks`), so the folder is
    byte-for-byte the same whatever ``workers`` is; ``progress`` then advances a network at a time.

    Built beside ``out`` and renamed into place at the end, so an interrupted run leaves nothing half-written.
    Raises DataError for bad arguments, OutputError when ``out`` exists (without ``overwrite``) or cannot be
    written.
    """
    out = Path(out)
    if n < 1:
        raise DataError(f"--n must be at least 1, got: {n}")
    if per_route < 1:
        raise DataError(f"frames per route must be at least 1, got: {per_route}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got: {workers}")
    if not (math.isfinite(pose_noise) and pose_noise >= 0):
        raise DataError(f"--pose-noise must be a scale >= 0 (1 = the default noise), got: {pose_noise}")
    job = _Job(seed=seed, size=tuple(size), per_route=per_route, noise=PoseNoise().scaled(pose_noise),
               noise_scale=pose_noise, spec=spec or MapSpec())
    plan = plan_networks(seed, n, per_route)
    with staged_dir(out, overwrite=overwrite) as tmp:
        for sub in ("images", "maps", "routes"):
            (tmp / sub).mkdir()
        done = render_pieces(_render_network, [(job, tmp, *p) for p in plan], workers, n, progress,
                             lambda net: len(net.rows))
        _write_tables(tmp, job, done)
    return out


@dataclass(frozen=True)
class _Job:
    """What every network of one :func:`generate` call shares (picklable, for the worker processes)."""

    seed: int
    size: tuple[int, int]
    per_route: int
    noise: PoseNoise
    noise_scale: float
    spec: MapSpec


@dataclass(frozen=True)
class _Network:
    """One rendered network: its labels.csv rows, its networks.json entry and its junction counts."""

    rows: list[list]
    doc: dict
    junction_frames: int
    branches: dict[str, Counter[str]]


def _network_routes(seed: int, k: int):
    """Network ``k`` of the data stream with its balanced routes and its rng, advanced past both (the state
    its scenes and frames are drawn from)."""
    rng = net_rng(seed, NET_DATA_STREAM, k)
    net = make_network(rng)
    return net, balanced_routes(net, ROUTES_PER_NETWORK, rng), rng


def plan_networks(seed: int, n: int, per_route: int) -> list[tuple[int, int, int]]:
    """``(network, first frame index, frames)`` for every network the ``n`` frames use, in order: each network
    gives ``per_route`` frames to each of its routes, the last one only what is left. Draws the networks and
    routes only (no rendering), so the budgets are known before any frame is rendered."""
    plan, first, k = [], 0, 0
    while first < n:
        _, routes, _ = _network_routes(seed, k)
        count = min(len(routes) * per_route, n - first)
        plan.append((k, first, count))
        first, k = first + count, k + 1
    return plan


def _render_network(job: _Job, tmp: Path, k: int, first: int, budget: int,
                    tick: Callable[[], None] | None = None) -> _Network:
    """Render network ``k``'s ``budget`` frames into ``tmp`` as frames ``first``, ``first + 1``, ... (their
    images, maps and route files); ``tick`` is called after each frame."""
    width, height = job.size
    car = CarParams()
    net, routes, rng = _network_routes(job.seed, k)
    estimator = PoseEstimator(job.noise, np.random.default_rng([int(job.seed) & 0xFFFFFFFF, NET_DATA_STREAM, k, 1]))
    geom = net.geometry
    turn_in = node_turn_in(routes)
    alternatives: dict[tuple[int, str], dict] = {}
    rows: list[list] = []
    doc_routes = []
    junction_frames = 0
    branches: dict[str, Counter[str]] = {}
    for ri, route in enumerate(routes):
        if len(rows) >= budget:
            break
        (tmp / route_file(k, ri)).write_text(
            json.dumps(route_to_dict(geom, route), separators=(",", ":"), allow_nan=False) + "\n", encoding="utf-8")
        doc_routes.append({"route": ri, "file": route_file(k, ri), "start": route.start, "goal": route.goal,
                           "nodes": list(route.nodes), "junctions": [dict(j) for j in route.junctions]})
        road = route_road(route, net.half_width)
        scene = build_network_scene(net, road, rng)
        count = min(job.per_route, budget - len(rows))
        for s in np.sort([_sample_s(rng, route, road.length, turn_in) for _ in range(count)]):
            pose, cam, light = random_view(rng, road, float(s), scene, width, height)  # as data roads
            frame = render(scene, pose, cam, car, rng=rng, light=light)
            true = (round(pose.x, 6), round(pose.y, 6), round(pose.yaw, 6))
            est = tuple(round(v, 6) for v in estimator.one_shot(true, car.speed))
            raster = rasterise(geom, route, est, job.spec)
            img = np.zeros((job.spec.size, job.spec.size, 3), np.uint8)
            img[..., : raster.shape[2]] = raster
            i = first + len(rows)
            name, map_name = f"images/{i:06d}.jpg", f"maps/{i:06d}.png"
            write_image(tmp, name, frame, JPEG)
            write_image(tmp, map_name, img)
            steering = pure_pursuit(road, pose, car, lookahead=lookahead(route, float(s)), hint_s=float(s))
            j = junction_zone(route, float(s), turn_in)
            commands = ""
            if j is not None:
                junction_frames += 1
                branches.setdefault(j["kind"], Counter())[j["branch"]] += 1
                if (ri, j["node"]) not in alternatives:  # built once per route and junction
                    alternatives[ri, j["node"]] = _branch_roads(net, route, j["node"])
                commands = branch_steering(alternatives[ri, j["node"]], pose, car, float(s))
            label = ROAD if j is None else JunctionLabel(j["kind"], j["branch"], "|".join(j["options"]),
                                                         round(turn_in[j["node"]] - float(s), 3), commands)
            rows.append([name, round(steering, 6), map_name, k, ri, *label.cells(), *true, *est])
            if tick:
                tick()
    return _Network(rows, _network_doc(k, net, geom, doc_routes), junction_frames, branches)


def _write_tables(tmp: Path, job: _Job, done: list[_Network]) -> None:
    """labels.csv, roads.json and networks.json of the rendered networks ``done`` (in network order)."""
    rows = [r for d in done for r in d.rows]
    junction_frames = sum(d.junction_frames for d in done)
    branches: dict[str, Counter[str]] = {}
    for d in done:
        for kind, c in d.branches.items():
            branches.setdefault(kind, Counter()).update(c)
    write_labels(tmp / "labels.csv", COLUMNS, rows)
    meta = {
        "format": FORMAT,
        "frames": len(rows),
        "size": list(job.size),
        "seed": job.seed,
        "stream": NET_DATA_STREAM,
        "networks": len(done),
        "routes_per_network": ROUTES_PER_NETWORK,
        "per_route": job.per_route,
        "map_spec": job.spec.to_dict(),
        "pose_noise": job.noise.to_dict(),
        "pose_noise_scale": job.noise_scale,
        "junction_zone_m": [ZONE_BEFORE, ZONE_AFTER],
        "approach_window_m": list(APPROACH_WINDOW),
        "junction_lookahead_m": JUNCTION_LOOKAHEAD,
        "junction_frames": junction_frames,
        "junction_share": round(junction_frames / len(rows), 4),
        "branches": {kind: dict(sorted(c.items())) for kind, c in sorted(branches.items())},
        "columns": list(COLUMNS),
        "note": (f"network k uses numpy default_rng([seed, {NET_DATA_STREAM}, k]); the simulator uses stream "
                 f"{NET_SIM_STREAM}, disjoint. maps/ channel 0 = roads, 1 = route (as cv2.imread returns them), "
                 "rasterised with edgecnn.navmap.rasterise at (est_x, est_y, est_heading) from the route file"),
    }
    (tmp / "roads.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    doc = {"format": FORMAT, "units": "m", "stream": NET_DATA_STREAM, "seed": job.seed,
           "networks": [d.doc for d in done]}
    (tmp / "networks.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")


def _sample_s(rng: np.random.Generator, route, length: float, turn_in: dict[str, float]) -> float:
    """Arc length (m) of one frame along the route: inside a junction zone with probability JUNCTION_SHARE, on a
    junction's approach around its turn-in point (APPROACH_WINDOW) with probability APPROACH_SHARE, else anywhere."""
    u = rng.random()
    if route.junctions and u < JUNCTION_SHARE + APPROACH_SHARE:
        j = route.junctions[int(rng.integers(len(route.junctions)))]
        if u < JUNCTION_SHARE:
            s = j["s"] + rng.uniform(-ZONE_BEFORE, ZONE_AFTER)
        else:
            s = turn_in[j["node"]] + rng.uniform(*APPROACH_WINDOW)
        return float(np.clip(s, 0.0, length))
    return float(rng.uniform(0.5, max(length - 1.5, 1.0)))


def node_turn_in(routes) -> dict[str, float]:
    """Per junction node of a network, the arc length (m) of its turn-in point: where the first of the routes
    that turn there starts its arc (the centre, for a junction every route crosses straight on).

    The network is a tree and every route starts at its root, so every route reaches a node along the same
    path: arc lengths up to the node's approach are the same on all of them, and a frame before the turn-in point
    sees the same road whichever branch its route takes."""
    found: dict[str, float] = {}
    for route in routes:
        for j in route.junctions:
            at = j["s"] if j.get("turn_in") is None else j["turn_in"]
            found[j["node"]] = min(found.get(j["node"], math.inf), float(at))
    return found


def junction_zone(route, s: float, turn_in: dict[str, float]) -> dict | None:
    """The junction of ``route`` whose zone holds arc length ``s`` (m): from its node's turn-in point plus the
    start of APPROACH_WINDOW (or ZONE_BEFORE before its centre, whichever is earlier) to ZONE_AFTER after the
    centre; None on plain road."""
    for j in route.junctions:
        if min(j["s"] - ZONE_BEFORE, turn_in[j["node"]] + APPROACH_WINDOW[0]) <= s <= j["s"] + ZONE_AFTER:
            return j
    return None


def lookahead(route, s: float) -> float:
    """The labelling driver's look-ahead (m) at arc length ``s``: :data:`JUNCTION_LOOKAHEAD` from that far before
    a turn's arc to its end, the plain :data:`~edgecnn.sim.pursuit.LOOKAHEAD` elsewhere, ramped linearly over
    the difference on both sides (the look-ahead point stays on straight road while it changes, so the label of
    an on-line pose does not jump). A driver looking further into a turn starts it from the shared approach, so
    the branches' steering differs where the camera and a roads-only map cannot yet tell them apart."""
    extra = JUNCTION_LOOKAHEAD - LOOKAHEAD
    best = LOOKAHEAD
    for j in route.junctions:
        if j.get("turn_in") is None:
            continue
        start, end = j["turn_in"] - JUNCTION_LOOKAHEAD, j["turn_out"]
        if start <= s <= end:
            return JUNCTION_LOOKAHEAD
        ramp = max(0.0, 1.0 - (start - s) / extra) if s < start else max(0.0, 1.0 - (s - end) / extra)
        best = max(best, LOOKAHEAD + extra * ramp)
    return best


def _branch_roads(net, route, node: str) -> dict:
    """``{branch: (Route, Road)}``: ``route`` up to junction ``node``, then each of its branches."""
    return {name: (r, route_road(r, net.half_width)) for name, r in branch_routes(net, route, node).items()}


def branch_steering(alternatives: dict, pose, car: CarParams, s: float) -> str:
    """The ``branch_steering`` cell: the labelling driver's steering at ``pose`` (arc length ``s``, m) had the
    route taken each branch of the junction, ``"left:-0.31|right:0.12"`` (steering in [-1, 1], the junction's
    options in order, 6 decimals). ``alternatives`` from :func:`_branch_roads`. On the shared approach these are
    the values an unrouted model must offer as modes; the route's own branch gives the frame's label."""
    return "|".join(f"{name}:{pure_pursuit(road, pose, car, lookahead=lookahead(r, s), hint_s=s):.6f}"
                    for name, (r, road) in alternatives.items())


def _network_doc(index: int, net, geom, routes: list[dict]) -> dict:
    g = net.graph
    return {
        "network": index,
        "half_width": round(net.half_width, 4),
        "nodes": {nid: {"xy": list(xy), "kind": g.nodes[nid]["kind"]} for nid, xy in geom.nodes.items()},
        "edges": [{"id": e.id, "a": e.a, "b": e.b, "half_width": e.half_width,
                   "points": [[float(p[0]), float(p[1])] for p in e.points]} for e in geom.edges],
        "routes": routes,
    }
