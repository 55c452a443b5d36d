"""Closed-loop navigation: a policy drives planned routes through road networks it has never seen.

Network ``i`` of the simulator's network stream (:data:`edgecnn.sim.network.NET_SIM_STREAM`, never the training
data's) is generated, a route is planned through it to a goal, and the car drives the route's driving line from
start to goal. Each control tick (:func:`edgecnn.sim.simulate.run_loop`, the loop the road simulator uses):

1. the camera frame is rendered from the true pose (the network scene: every edge painted);
2. a :class:`edgecnn.navmap.PoseEstimator` is fed the true rear-axle pose and asked what the car believes (noise,
   delay, update rate of :class:`edgecnn.navmap.PoseNoise`); the map is rasterised at that ESTIMATED pose with
   :func:`edgecnn.navmap.rasterise` and the policy's :class:`~edgecnn.navmap.MapSpec` (the one rasteriser);
3. the policy's steering is applied ``latency_ms`` later through the bicycle model;
4. leaving the route's lane (``|offset| > half_width`` from the route's driving line) is a departure: the car is
   re-centred on the route's driving line, as a safety driver would, and charged ``penalty_s`` seconds.

The estimator is primed with the start pose for :data:`PRIME_S` seconds before the drive (the car waited at the
start with its GPS on), so the first frames have a map.

Metrics (:class:`NavResult`):

- ``junctions``: the number of junctions on the routes driven (every route junction counts, reached or not).
- ``junction_success``: share of those junctions that succeeded (None when the routes hold none). Junction ``j`` at arc length ``s_j`` (its
  centre along the route) has the zone ``[s_j - JUNCTION_BEFORE_M, s_j + JUNCTION_AFTER_M]``; it succeeds when
  the car reaches ``s_j + JUNCTION_AFTER_M`` (capped at the goal) with no departure at any tick inside the zone.
  Staying within ``half_width`` of the route's driving line through the zone means the car left the junction on
  the route's branch: by ``JUNCTION_AFTER_M`` past the centre any other branch's lane is more than a lane width
  from it (turn radius >= 1.7 m). A wrong branch, a straight-on at a T, a wide turn all end in a departure in
  the zone, so they fail.
- ``route_completion``: share of routes completed; a route is completed when the car reached the goal within
  the time limit (twice the route's length at the car's speed, plus 5 s) and every junction on it succeeded
  (no wrong branch). A departure away from junctions is a lane-keeping intervention: it costs autonomy, not the
  route.
- ``autonomy = 1 - departures * penalty_s / elapsed_s`` (PilotNet's formula, as the road simulator).
- ``departures``, mean/max |offset|, distance, and per-route details.

A policy is called ``policy(frame)`` (image only: the map is not computed) or, when it has ``uses_map = True``,
``policy(frame, map_raster)`` with ``map_raster`` uint8 (S, S, C) 0/255 from :func:`edgecnn.navmap.rasterise`;
it returns ``(steering in [-1, 1] positive = right, uncertainty | None)``. ``observe(road, pose, s)`` and
``needs_frame = False`` work as in :mod:`edgecnn.sim.simulate`, so
:class:`~edgecnn.sim.simulate.PurePursuitPolicy` on the route's driving line is the ideal route follower.
A policy with ``map_spec`` (a :class:`MapSpec`) gets maps of that spec; otherwise :attr:`NavConfig.map_spec`.

Deterministic: network, route, scene, frame noise and pose noise of route ``i`` depend only on ``(seed, i)``,
so every policy drives the same routes with the same pose errors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.navmap import (
    MapSpec,
    PoseEstimator,
    PoseNoise,
    RoadNetwork,
    Route,
    rasterise,
)
from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.camera import Camera
from edgecnn.sim.network import (
    NET_SIM_STREAM,
    make_network,
    net_rng,
    plan_route,
    route_road,
)
from edgecnn.sim.render import build_network_scene, render
from edgecnn.sim.road import Road
from edgecnn.sim.simulate import PILOTNET_PENALTY_S, DriveTotals, LoopTrace, run_loop

JUNCTION_BEFORE_M = 2.5  # the zone starts where the data's junction frames start (2.5 m before the centre)
JUNCTION_AFTER_M = 3.0  # ... and ends where another branch's lane is clearly apart from the route's
PRIME_S = 1.0  # seconds of standing at the start the pose estimator is fed before the drive
MAX_ROUTES = 500  # safety bound when driving "until min_junctions"
JUNCTION_FREE_ROUTES = 20  # routes driven on "curve" networks (no junctions) when no count is given


@dataclass(frozen=True)
class NavConfig:
    """Navigation simulation settings.

    Attributes:
        routes: routes driven (one per network); None = as many networks as it takes to pass ``min_junctions``
            (:data:`JUNCTION_FREE_ROUTES` for ``kind="curve"``).
        min_junctions: with ``routes=None``, drive until the routes hold at least this many junctions.
        seed: seed of the network stream (never the training networks, for any seed).
        kind: network kind for every route ("T", "cross", "fork", "curve"), None = the generator's mix.
        control_hz, latency_ms, penalty_s, car, camera: as :class:`edgecnn.sim.simulate.SimConfig`.
        pose_noise: what the pose estimator does (noise, delay, rate); ``PoseNoise().scaled(0)`` = perfect.
        map_spec: raster of policies that do not say theirs (``policy.map_spec`` wins).
    """

    routes: int | None = None
    min_junctions: int = 40
    seed: int = 0
    kind: str | None = None
    control_hz: float = 20.0
    latency_ms: float = 0.0
    penalty_s: float = PILOTNET_PENALTY_S
    car: CarParams = field(default_factory=CarParams)
    camera: Camera = field(default_factory=Camera)
    pose_noise: PoseNoise = field(default_factory=PoseNoise)
    map_spec: MapSpec = field(default_factory=MapSpec)


@dataclass(frozen=True)
class JunctionResult:
    """One junction of a route.

    Attributes:
        number: 1-based position along its route (as printed and plotted).
        node: network node id; kind: "T", "cross" or "fork"; branch: the route's branch ("left", ...);
        options: the branches the junction offers.
        s: arc length of the junction centre along the route, metres.
        xy: float (2,) the node's position, world metres.
        reached: the car got to the end of the zone (``s + JUNCTION_AFTER_M``, capped at the goal).
        zone_departures: departures inside the zone.
        ok: reached and no departure in the zone.
    """

    number: int
    node: str
    kind: str
    branch: str
    options: tuple[str, ...]
    s: float
    xy: tuple[float, float]
    reached: bool
    zone_departures: int

    @property
    def ok(self) -> bool:
        return self.reached and self.zone_departures == 0


@dataclass(frozen=True)
class RouteResult:
    """One route's drive.

    Attributes:
        index: network/route index in the simulator's network stream (0-based; printed as index + 1).
        start, goal: node ids; nodes: the planned node path.
        length: route length (m); distance: metres driven along it; time_s: simulated seconds.
        reached_goal: the car got to the goal within the time limit.
        completed: reached the goal and every junction succeeded.
        departures, steps, in_lane_steps, mean_abs_offset, max_abs_offset, mean_uncertainty: as
            :class:`edgecnn.sim.simulate.RoadResult`.
        junctions: the route's junctions, in driving order.
        trajectory: float32 (T, 2) rear-axle positions (world m), NaN rows at re-centring jumps.
        departure_points: float32 (D, 2) where each departure happened.
        road: the route's driving line as a sim Road; network: the network (plain arrays); route: the route.
    """

    index: int
    start: str
    goal: str
    nodes: tuple[str, ...]
    length: float
    distance: float
    time_s: float
    reached_goal: bool
    departures: int
    steps: int
    in_lane_steps: int
    mean_abs_offset: float
    max_abs_offset: float
    mean_uncertainty: float | None
    junctions: tuple[JunctionResult, ...]
    trajectory: np.ndarray
    departure_points: np.ndarray
    road: Road
    network: RoadNetwork
    route: Route

    @property
    def completed(self) -> bool:
        return self.reached_goal and all(j.ok for j in self.junctions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "goal": self.goal,
            "nodes": list(self.nodes),
            "length": round(self.length, 2),
            "distance": round(self.distance, 2),
            "time_s": round(self.time_s, 2),
            "completed": self.completed,
            "reached_goal": self.reached_goal,
            "departures": self.departures,
            "mean_abs_offset": round(self.mean_abs_offset, 4),
            "max_abs_offset": round(self.max_abs_offset, 4),
            "junctions": [
                {
                    "number": j.number,
                    "node": j.node,
                    "kind": j.kind,
                    "branch": j.branch,
                    "options": list(j.options),
                    "s": round(j.s, 2),
                    "ok": j.ok,
                    "reached": j.reached,
                    "zone_departures": j.zone_departures,
                }
                for j in self.junctions
            ],
        }


@dataclass(frozen=True)
class NavResult(DriveTotals):
    """Aggregate over all routes (``to_dict`` gives the JSON that scripts read; see the module docstring)."""

    junctions: int
    junction_success: float | None
    route_completion: float
    config: NavConfig
    map_spec: MapSpec | None
    per_route: tuple[RouteResult, ...]

    @property
    def by_kind(self) -> dict[str, dict[str, float]]:
        """Junction success per junction kind: {kind: {"junctions": n, "success": share}}."""
        out: dict[str, list[bool]] = {}
        for r in self.per_route:
            for j in r.junctions:
                out.setdefault(j.kind, []).append(j.ok)
        return {k: {"junctions": len(v), "success": round(sum(v) / len(v), 4)} for k, v in sorted(out.items())}

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "mode": "networks",
            "junctions": self.junctions,
            "junction_success": None if self.junction_success is None else round(self.junction_success, 4),
            "route_completion": round(self.route_completion, 4),
            **self.totals_dict(),
            "routes": len(self.per_route),
            "junctions_by_kind": self.by_kind,
            "seed": c.seed,
            "latency_ms": c.latency_ms,
            "control_hz": c.control_hz,
            "speed": c.car.speed,
            "penalty_s": c.penalty_s,
            "pose_noise": c.pose_noise.to_dict(),
            "map_spec": None if self.map_spec is None else self.map_spec.to_dict(),
            "junction_zone_m": [JUNCTION_BEFORE_M, JUNCTION_AFTER_M],
            "per_route": [r.to_dict() for r in self.per_route],
        }


@dataclass(frozen=True)
class PlannedRoute:
    """Route ``index`` of the simulator's network stream, before driving (cheap: no scene)."""

    index: int
    network: Any  # edgecnn.sim.network.SimNetwork
    route: Route
    road: Road
    rng: np.random.Generator  # the network's generator, positioned for building its scene (drive_route copies it)


def plan(index: int, config: NavConfig) -> PlannedRoute:
    """Network ``index`` of the simulator's stream, its route and the route's driving line (no rendering)."""
    rng = net_rng(config.seed, NET_SIM_STREAM, index)
    net = make_network(rng, config.kind)
    route = plan_route(net, rng)
    road = route_road(route, net.half_width)
    return PlannedRoute(index=index, network=net, route=route, road=road, rng=rng)


def route_indexes(config: NavConfig) -> list[int]:
    """Which routes of the stream :func:`simulate_networks` drives: ``range(config.routes)``, or (routes=None)
    the first ones whose junctions add up to ``config.min_junctions``."""
    if config.routes is not None:
        return list(range(config.routes))
    if config.kind == "curve":  # no junctions to count: as many as the road simulator's default
        return list(range(JUNCTION_FREE_ROUTES))
    out, total = [], 0
    while total < config.min_junctions and len(out) < MAX_ROUTES:
        total += len(plan(len(out), config).route.junctions)
        out.append(len(out))
    return out


def _junctions(route: Route, network: RoadNetwork, road: Road, trace: LoopTrace) -> tuple[JunctionResult, ...]:
    out = []
    for k, j in enumerate(route.junctions):
        s_j = float(j["s"])
        lo, hi = s_j - JUNCTION_BEFORE_M, min(s_j + JUNCTION_AFTER_M, road.length)
        in_zone = (trace.s >= lo) & (trace.s <= hi)
        reached = bool(trace.distance >= hi - 1e-6 or (len(trace.s) and trace.s.max() >= hi))
        xy = network.nodes.get(j["node"], (float("nan"), float("nan")))
        out.append(
            JunctionResult(
                number=k + 1,
                node=str(j["node"]),
                kind=str(j.get("kind", "")),
                branch=str(j.get("branch", "")),
                options=tuple(j.get("options", ())),
                s=s_j,
                xy=(float(xy[0]), float(xy[1])),
                reached=reached,
                zone_departures=int((trace.departed & in_zone).sum()),
            )
        )
    return tuple(out)


def drive_route(policy: Callable, planned: PlannedRoute, config: NavConfig) -> RouteResult:
    """Drive one planned route with ``policy`` (see the module docstring for the policy protocol)."""
    seed = config.seed & 0xFFFFFFFF
    net, route, road = planned.network, planned.route, planned.road
    geometry: RoadNetwork = net.geometry
    needs_frame = getattr(policy, "needs_frame", True)
    uses_map = bool(getattr(policy, "uses_map", False))
    spec: MapSpec = getattr(policy, "map_spec", None) or config.map_spec
    # A copy: the same planned route gives the same scene however often it is driven.
    scene = build_network_scene(net, road, copy.deepcopy(planned.rng)) if needs_frame else None
    frame_rng = np.random.default_rng([seed, NET_SIM_STREAM, planned.index, 1])
    estimator = PoseEstimator(config.pose_noise, np.random.default_rng([seed, NET_SIM_STREAM, planned.index, 2]))
    observe = getattr(policy, "observe", None)
    car = config.car
    dt = 1.0 / config.control_hz
    start = road.pose_at(0.5)
    for i in range(round(PRIME_S / dt)):
        estimator.update(i * dt, start)
    raster = np.zeros((spec.size, spec.size, len(spec.channels)), np.uint8)

    def command(pose: Pose, t: float, s: float) -> tuple[float, float | None]:
        # Every policy drives with the same estimator draws (it is fed whether or not a map is drawn).
        t_est = PRIME_S + t
        estimator.update(t_est, (pose.x, pose.y, pose.yaw))
        if observe is not None:
            observe(road, pose, s)
        frame = render(scene, pose, config.camera, car, rng=frame_rng) if scene is not None else None
        if not uses_map:
            return policy(frame)
        believed = estimator.estimate(t_est)
        if believed is None:  # cannot happen after priming; an empty map rather than the true pose
            raster.fill(0)
        else:
            rasterise(geometry, route, believed, spec, out=raster)
        return policy(frame, raster)

    tr = run_loop(road, command, car, config.control_hz, config.latency_ms)
    off = tr.offsets if tr.steps else np.zeros(1)
    return RouteResult(
        index=planned.index,
        start=str(route.start),
        goal=str(route.goal),
        nodes=tuple(str(n) for n in route.nodes),
        length=road.length,
        distance=tr.distance,
        time_s=tr.time_s,
        reached_goal=bool(tr.distance >= road.length - 1e-6),
        departures=tr.departures,
        steps=tr.steps,
        in_lane_steps=tr.steps - tr.departures,
        mean_abs_offset=float(off.mean()),
        max_abs_offset=float(off.max()),
        mean_uncertainty=float(tr.uncertainties.mean()) if len(tr.uncertainties) else None,
        junctions=_junctions(route, geometry, road, tr),
        trajectory=tr.trajectory,
        departure_points=tr.departure_points,
        road=road,
        network=geometry,
        route=route,
    )


def simulate_networks(
    policy: Callable,
    config: NavConfig | None = None,
    progress: Callable[[RouteResult, int], None] | None = None,
) -> NavResult:
    """Drive the routes of :func:`route_indexes` with ``policy`` and aggregate (see the module docstring).

    ``progress(result, total)`` is called after each route.
    """
    config = config or NavConfig()
    indexes = route_indexes(config)
    results = []
    for i in indexes:
        r = drive_route(policy, plan(i, config), config)
        results.append(r)
        if progress:
            progress(r, len(indexes))
    junctions = [j for r in results for j in r.junctions]
    spec = (getattr(policy, "map_spec", None) or config.map_spec) if getattr(policy, "uses_map", False) else None
    return NavResult(
        junctions=len(junctions),
        junction_success=sum(j.ok for j in junctions) / len(junctions) if junctions else None,
        route_completion=sum(r.completed for r in results) / len(results) if results else 0.0,
        **DriveTotals.of(results, config.penalty_s),
        config=config,
        map_spec=spec,
        per_route=tuple(results),
    )
