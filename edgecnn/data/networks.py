"""The navigation data set: frames on road networks with junctions, each with its coarse map and route.

``edgecnn data roads OUT --networks``. Networks come from :func:`edgecnn.sim.network.make_network` (T-junctions,
crossroads, forks; stream :data:`~edgecnn.sim.network.NET_DATA_STREAM`, never the simulator's), each with
:data:`ROUTES_PER_NETWORK` routes from its start node chosen so that every junction's branches are taken equally
often (:func:`~edgecnn.sim.network.balanced_routes`): an unrouted model sees every branch of a junction, a routed
one learns to pick the one its map shows. Each route gets its own scene (:func:`build_network_scene`: the whole
network painted around it, own surfaces, markings, lighting, surroundings) and ``per_route`` frames, sampled as
``edgecnn data roads`` samples them (random lateral offset and heading error, camera height, pitch, roll and
field of view jittered, lighting per frame), a share :data:`JUNCTION_SHARE` of them drawn inside a junction zone
(2.5 m before its centre to 1.0 m after) and the rest anywhere along the route, so about 57 % of the frames are
junction frames. The label is pure pursuit on the route's driving line: the ideal driver follows the route.

Each frame's map is :func:`edgecnn.navmap.rasterise` of the network and route at the pose the car would
*believe* (:meth:`edgecnn.navmap.PoseEstimator.one_shot`: the true pose moved back by the pose delay, plus
position and heading noise, ``pose_noise`` x the :class:`~edgecnn.navmap.PoseNoise` defaults' errors, the delay
kept), drawn from the route file's own arrays, so re-rasterising from ``routes/`` and the ``est_*`` columns gives
the same map exactly.
The pose noise has its own random stream: the frames do not change with ``pose_noise``.

Layout (``OUT/``)::

    labels.csv     image,steering,map,network,route,junction,branch,options,x,y,heading,est_x,est_y,est_heading
    images/        NNNNNN.jpg (BGR, JPEG quality 95)
    maps/          NNNNNN.png (uint8 3 channels as cv2.imread returns them: 0 = roads, 1 = route, 2 = 0; 0/255)
    roads.json     provenance: format "edgecnn-networks-1", frames, size, seed, stream, map_spec, pose_noise, ...
    networks.json  every network (nodes, edges in local metres) and its routes (nodes, junctions, file)
    routes/        NET-ROUTE.json, one route file each (edgecnn.navmap.load_route reads them)

``junction`` is "" or the junction's kind ("T", "cross", "fork") when the frame is in its zone, ``branch`` the
route's branch there, ``options`` the branches it offers ("left|right"); ``x, y, heading`` the true rear-axle
pose (heading not wrapped), ``est_*`` the believed one (metres, radians, heading in [-pi, pi)). :func:`edgecnn.data.steering.load_steering_dataset` reads the
folder as image,steering data (it ignores the other columns), so an image-only model trains on the same frames.
Rows are in network, route and arc-length order, so a time-block split keeps a route's frames together.

Speed (measured, 160x120, defaults): 8000 frames took 116 s of CPU (about 69 frames/s on an idle core; 5.5
minutes wall clock on 2 cores shared with 8 other jobs). Per frame the render, JPEG and PNG cost about 5 ms; a
route's scene (about 0.1 s, shared by its ``per_route`` frames) the rest. At the defaults about 57 % of the frames
are junction frames and each kind's branches are within 10 % of each other (T 768 left / 734 right).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.data.roads import JPEG, random_view, write_image, write_labels
from edgecnn.errors import DataError
from edgecnn.navmap import MapSpec, PoseEstimator, PoseNoise, rasterise, route_to_dict
from edgecnn.sim.bicycle import CarParams
from edgecnn.sim.network import (
    NET_DATA_STREAM,
    NET_SIM_STREAM,
    ZONE_AFTER,
    ZONE_BEFORE,
    balanced_routes,
    junction_at,
    make_network,
    net_rng,
    route_road,
)
from edgecnn.sim.pursuit import pure_pursuit
from edgecnn.sim.render import build_network_scene, render

FORMAT = "edgecnn-networks-1"
COLUMNS = ("image", "steering", "map", "network", "route", "junction", "branch", "options", "x", "y", "heading",
           "est_x", "est_y", "est_heading")
DEFAULT_FRAMES = 8000
DEFAULT_PER_ROUTE = 6
ROUTES_PER_NETWORK = 4
JUNCTION_SHARE = 0.3  # frames drawn inside a junction zone; the others, drawn along the route, add about 30 %


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
) -> Path:
    """Write ``n`` frames of ``size`` = (width, height) with their maps to ``out`` (layout in the module
    docstring); ``pose_noise`` scales the default :class:`~edgecnn.navmap.PoseNoise` (0 = perfect pose);
    ``spec`` the map (default :class:`~edgecnn.navmap.MapSpec`: 64x64, 8 m, roads + route).

    Built beside ``out`` and renamed into place at the end, so an interrupted run leaves nothing half-written.
    Raises DataError for bad arguments, OutputError when ``out`` exists (without ``overwrite``) or cannot be
    written.
    """
    out = Path(out)
    if n < 1:
        raise DataError(f"--n must be at least 1, got: {n}")
    if per_route < 1:
        raise DataError(f"frames per route must be at least 1, got: {per_route}")
    if not (math.isfinite(pose_noise) and pose_noise >= 0):
        raise DataError(f"--pose-noise must be a scale >= 0 (1 = the default noise), got: {pose_noise}")
    spec = spec or MapSpec()
    noise = PoseNoise().scaled(pose_noise)
    width, height = size
    car = CarParams()
    rows: list[list] = []
    junction_frames = 0
    branches: dict[str, Counter[str]] = {}
    networks_doc = []
    with staged_dir(out, overwrite=overwrite) as tmp:
        for sub in ("images", "maps", "routes"):
            (tmp / sub).mkdir()
        k = 0
        while len(rows) < n:
            rng = net_rng(seed, NET_DATA_STREAM, k)
            pose_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, NET_DATA_STREAM, k, 1])
            estimator = PoseEstimator(noise, pose_rng)
            net = make_network(rng)
            geom = net.geometry
            routes = balanced_routes(net, ROUTES_PER_NETWORK, rng)
            doc_routes = []
            for ri, route in enumerate(routes):
                if len(rows) >= n:
                    break
                (tmp / route_file(k, ri)).write_text(
                    json.dumps(route_to_dict(geom, route), separators=(",", ":"), allow_nan=False) + "\n",
                    encoding="utf-8")
                doc_routes.append({"route": ri, "file": route_file(k, ri), "start": route.start, "goal": route.goal,
                                   "nodes": list(route.nodes), "junctions": [dict(j) for j in route.junctions]})
                road = route_road(route, net.half_width)
                scene = build_network_scene(net, road, rng)
                count = min(per_route, n - len(rows))
                for s in np.sort([_sample_s(rng, route, road.length) for _ in range(count)]):
                    pose, cam, light = random_view(rng, road, float(s), scene, width, height)  # as data roads
                    frame = render(scene, pose, cam, car, rng=rng, light=light)
                    true = (round(pose.x, 6), round(pose.y, 6), round(pose.yaw, 6))
                    est = tuple(round(v, 6) for v in estimator.one_shot(true, car.speed))
                    raster = rasterise(geom, route, est, spec)
                    img = np.zeros((spec.size, spec.size, 3), np.uint8)
                    img[..., : raster.shape[2]] = raster
                    i = len(rows)
                    name, map_name = f"images/{i:06d}.jpg", f"maps/{i:06d}.png"
                    write_image(tmp, name, frame, JPEG)
                    write_image(tmp, map_name, img)
                    steering = pure_pursuit(road, pose, car, hint_s=float(s))
                    j = junction_at(route, float(s))
                    if j is not None:
                        junction_frames += 1
                        branches.setdefault(j["kind"], Counter())[j["branch"]] += 1
                    rows.append([name, round(steering, 6), map_name, k, ri,
                                 "" if j is None else j["kind"], "" if j is None else j["branch"],
                                 "" if j is None else "|".join(j["options"]), *true, *est])
                    if progress:
                        progress(len(rows), n)
            networks_doc.append(_network_doc(k, net, geom, doc_routes))
            k += 1
        write_labels(tmp / "labels.csv", COLUMNS, rows)
        meta = {
            "format": FORMAT,
            "frames": len(rows),
            "size": [width, height],
            "seed": seed,
            "stream": NET_DATA_STREAM,
            "networks": k,
            "routes_per_network": ROUTES_PER_NETWORK,
            "per_route": per_route,
            "map_spec": spec.to_dict(),
            "pose_noise": noise.to_dict(),
            "pose_noise_scale": pose_noise,
            "junction_zone_m": [ZONE_BEFORE, ZONE_AFTER],
            "junction_frames": junction_frames,
            "junction_share": round(junction_frames / len(rows), 4),
            "branches": {kind: dict(sorted(c.items())) for kind, c in sorted(branches.items())},
            "columns": list(COLUMNS),
            "note": (f"network k uses numpy default_rng([seed, {NET_DATA_STREAM}, k]); the simulator uses stream "
                     f"{NET_SIM_STREAM}, disjoint. maps/ channel 0 = roads, 1 = route (as cv2.imread returns them), "
                     "rasterised with edgecnn.navmap.rasterise at (est_x, est_y, est_heading) from the route file"),
        }
        (tmp / "roads.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        doc = {"format": FORMAT, "units": "m", "stream": NET_DATA_STREAM, "seed": seed, "networks": networks_doc}
        (tmp / "networks.json").write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    return out


def _sample_s(rng: np.random.Generator, route, length: float) -> float:
    """Arc length of one frame along the route: inside a junction zone with probability JUNCTION_SHARE."""
    if route.junctions and rng.random() < JUNCTION_SHARE:
        j = route.junctions[int(rng.integers(len(route.junctions)))]
        return float(np.clip(j["s"] + rng.uniform(-ZONE_BEFORE, ZONE_AFTER), 0.0, length))
    return float(rng.uniform(0.5, max(length - 1.5, 1.0)))


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
