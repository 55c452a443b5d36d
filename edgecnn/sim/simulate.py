"""Closed-loop simulation: a policy drives a car on procedurally generated roads it has never seen.

Each control tick (``control_hz``): render the camera frame from the car's pose, ask the policy for a steering
command, and apply it ``latency_ms`` later through the kinematic bicycle model at constant speed. When the car's
reference point (rear axle) leaves its lane (``|offset| > half_width``) that is a departure: as in the PilotNet
evaluation, a human intervenes, re-centres the car on its lane and hands back, and the intervention is charged
``penalty_s`` seconds of manual driving.

Metrics (see :class:`SimResult`): ``autonomy = 1 - departures * penalty_s / elapsed_s`` (PilotNet's formula: the
share of time the car drove itself), ``departures``, mean and max absolute lateral offset (m), ``distance`` (m along
the roads), and ``in_lane_fraction`` (share of ticks inside the lane).

A policy is any callable ``policy(frame) -> (steering, uncertainty | None)`` with ``frame`` uint8 HxWx3 BGR and
``steering`` in [-1, 1], positive = right. A policy may also define ``observe(road, pose, s)`` (called before each
frame: privileged access, for the ideal controller) and ``needs_frame = False`` (skip rendering).

Roads come from :data:`edgecnn.sim.road.SIM_STREAM`, disjoint from the training data's stream.

:func:`run_loop` is the loop itself (tick, delayed command, bicycle model, departure and re-centring) over any
:class:`~edgecnn.sim.road.Road`; :func:`drive_road` and the route driver of :mod:`edgecnn.sim.navigate` (road
networks, maps at an estimated pose) both drive through it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.sim.bicycle import CarParams, Pose, step
from edgecnn.sim.camera import Camera
from edgecnn.sim.pursuit import pure_pursuit
from edgecnn.sim.render import build_scene, render
from edgecnn.sim.road import SIM_STREAM, Road, make_road, road_rng

Policy = Callable[[np.ndarray], tuple[float, float | None]]
PILOTNET_PENALTY_S = 6.0  # seconds charged per intervention in NVIDIA's autonomy metric


@dataclass(frozen=True)
class SimConfig:
    """Simulation settings.

    Attributes:
        roads: number of roads driven.
        seed: seed of the road stream (roads differ from the training data's for any seed).
        road_length: drivable metres per road.
        control_hz: control rate (frames per second given to the policy); Donkey Car's default is 20.
        latency_ms: delay between a frame and the moment its command reaches the wheels.
        penalty_s: seconds of manual driving charged per intervention (PilotNet: 6).
        car: car geometry and speed.
        camera: the camera the frames are rendered with (width x height = frame size).
    """

    roads: int = 20
    seed: int = 0
    road_length: float = 30.0
    control_hz: float = 20.0
    latency_ms: float = 0.0
    penalty_s: float = PILOTNET_PENALTY_S
    car: CarParams = field(default_factory=CarParams)
    camera: Camera = field(default_factory=Camera)


@dataclass(frozen=True)
class RoadResult:
    """One road's drive.

    Attributes:
        index: road index in the simulator's stream.
        length: drivable length (m); distance: metres driven along it; time_s: simulated seconds.
        departures: interventions; steps, in_lane_steps: control ticks, and those inside the lane.
        mean_abs_offset, max_abs_offset: |lateral offset| over ticks, metres.
        trajectory: float32 (T, 2) rear-axle positions (world m), one per tick, NaN rows at re-centring jumps.
        departure_points: float32 (D, 2) where each departure happened.
        road: the road (for plotting).
    """

    index: int
    length: float
    distance: float
    time_s: float
    departures: int
    steps: int
    in_lane_steps: int
    mean_abs_offset: float
    max_abs_offset: float
    mean_uncertainty: float | None
    trajectory: np.ndarray
    departure_points: np.ndarray
    road: Road


@dataclass(frozen=True)
class DriveTotals:
    """The aggregate of several drives (roads or routes), as :meth:`of` computes it.

    Attributes:
        autonomy: PilotNet's formula, ``1 - departures * penalty_s / time_s`` (0 when nothing was driven).
        departures: interventions in all. mean_abs_offset: tick-weighted mean |lateral offset| (m);
        max_abs_offset: the largest (m). distance: metres driven; time_s: simulated seconds.
        in_lane_fraction: share of control ticks inside the lane. mean_uncertainty: mean of the drives' own
            means (steering units), None when no drive had one.
    """

    autonomy: float
    departures: int
    mean_abs_offset: float
    max_abs_offset: float
    distance: float
    time_s: float
    in_lane_fraction: float
    mean_uncertainty: float | None

    @staticmethod
    def of(results, penalty_s: float) -> dict[str, Any]:
        """The fields (a dict, to pass on as keywords) over ``results``: anything with ``time_s``, ``steps``,
        ``departures``, ``in_lane_steps``, ``distance``, ``mean_abs_offset``, ``max_abs_offset`` and
        ``mean_uncertainty``; ``penalty_s`` seconds per intervention."""
        time_s = sum(r.time_s for r in results)
        steps = sum(r.steps for r in results)
        deps = sum(r.departures for r in results)
        unc = [r.mean_uncertainty for r in results if r.mean_uncertainty is not None]
        return {
            "autonomy": max(0.0, 1.0 - deps * penalty_s / time_s) if time_s > 0 else 0.0,
            "departures": deps,
            "mean_abs_offset": float(sum(r.mean_abs_offset * r.steps for r in results) / max(steps, 1)),
            "max_abs_offset": max((r.max_abs_offset for r in results), default=0.0),
            "distance": float(sum(r.distance for r in results)),
            "time_s": float(time_s),
            "in_lane_fraction": sum(r.in_lane_steps for r in results) / max(steps, 1),
            "mean_uncertainty": float(np.mean(unc)) if unc else None,
        }

    def totals_dict(self) -> dict[str, Any]:
        """The fields rounded for JSON (offsets and shares 4 decimals, distance and time 2)."""
        return {
            "autonomy": round(self.autonomy, 4),
            "departures": self.departures,
            "mean_abs_offset": round(self.mean_abs_offset, 4),
            "max_abs_offset": round(self.max_abs_offset, 4),
            "distance": round(self.distance, 2),
            "time_s": round(self.time_s, 2),
            "in_lane_fraction": round(self.in_lane_fraction, 4),
            "mean_uncertainty": None if self.mean_uncertainty is None else round(self.mean_uncertainty, 4),
        }


@dataclass(frozen=True)
class SimResult(DriveTotals):
    """Aggregate over all roads (``to_dict`` gives the JSON that scripts read)."""

    config: SimConfig
    per_road: tuple[RoadResult, ...]

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            **self.totals_dict(),
            "roads": c.roads,
            "seed": c.seed,
            "latency_ms": c.latency_ms,
            "control_hz": c.control_hz,
            "speed": c.car.speed,
            "penalty_s": c.penalty_s,
            "per_road": [
                {
                    "index": r.index,
                    "departures": r.departures,
                    "distance": round(r.distance, 2),
                    "mean_abs_offset": round(r.mean_abs_offset, 4),
                    "max_abs_offset": round(r.max_abs_offset, 4),
                }
                for r in self.per_road
            ],
        }


class PurePursuitPolicy:
    """The ideal controller as a policy (privileged: it reads the pose, not the frame)."""

    needs_frame = False

    def __init__(self, car: CarParams | None = None):
        self.car = car or CarParams()
        self._cmd = 0.0

    def observe(self, road: Road, pose: Pose, s: float) -> None:
        self._cmd = pure_pursuit(road, pose, self.car, hint_s=s)

    def __call__(self, frame: np.ndarray | None) -> tuple[float, float | None]:
        return self._cmd, None


def zero_policy(frame: np.ndarray) -> tuple[float, float | None]:
    """Always straight ahead: the baseline that leaves the lane on curvy roads."""
    return 0.0, None


zero_policy.needs_frame = False  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LoopTrace:
    """What one closed-loop drive along a road recorded, tick by tick (the shared core of every drive).

    Attributes:
        s: float64 (T,) arc length of the car's nearest driving-line point after each tick, metres (after a
            departure: where the car was when it left the lane, before re-centring).
        offsets: float64 (T,) |lateral offset| from the driving line after each tick, metres.
        departed: bool (T,) True at the ticks that ended in a departure (and a re-centring).
        trajectory: float32 (T + D, 2) rear-axle positions (world m), NaN rows at re-centring jumps.
        departure_points: float32 (D, 2) where each departure happened (world m).
        uncertainties: float64 (U,) the policy's uncertainties, for the ticks that gave one.
        distance: metres driven along the road (final ``s``, capped at the road's length).
        time_s: simulated seconds.
    """

    s: np.ndarray
    offsets: np.ndarray
    departed: np.ndarray
    trajectory: np.ndarray
    departure_points: np.ndarray
    uncertainties: np.ndarray
    distance: float
    time_s: float

    @property
    def steps(self) -> int:
        return len(self.offsets)

    @property
    def departures(self) -> int:
        return int(self.departed.sum())


# command(pose, t, s) -> (steering, uncertainty | None): what the car is told at tick time t (s), from pose.
Command = Callable[[Pose, float, float], tuple[float, float | None]]


def run_loop(
    road: Road,
    command: Command,
    car: CarParams,
    control_hz: float,
    latency_ms: float = 0.0,
    start_s: float = 0.5,
    time_limit: float | None = None,
) -> LoopTrace:
    """Drive ``road`` from arc length ``start_s`` to its end: every tick ask ``command(pose, t, s)``, apply it
    ``latency_ms`` later through the bicycle model, and re-centre the car on the driving line when it leaves
    its lane (``|offset| > road.half_width``).

    ``command`` gets the true rear-axle pose, the tick's time (s since the start) and the car's arc length
    along the road (m); it renders, estimates, rasterises as it needs. A non-finite command counts as 0
    (straight ahead). ``time_limit`` (s) defaults to twice the time the road takes at ``car.speed``, plus 5 s.
    """
    dt = 1.0 / control_hz
    latency = max(latency_ms, 0.0) / 1000.0
    if time_limit is None:
        time_limit = 2.0 * road.length / car.speed + 5.0
    x, y, h = road.pose_at(start_s)
    pose = Pose(x, y, h)
    s = start_s
    t = 0.0
    current = 0.0
    pending: deque[tuple[float, float]] = deque()  # (time it reaches the wheels, command)
    s_log: list[float] = []
    offsets: list[float] = []
    departed: list[bool] = []
    uncertainties: list[float] = []
    traj: list[tuple[float, float]] = []
    departures: list[tuple[float, float]] = []
    while s < road.length and t < time_limit:
        cmd, unc = command(pose, t, s)
        cmd = float(cmd)
        if not math.isfinite(cmd):
            cmd = 0.0  # a NaN command is treated as "no steering", and the drive goes on
        pending.append((t + latency, max(-1.0, min(1.0, cmd))))
        if unc is not None:
            uncertainties.append(float(unc))
        # Integrate to the next tick, switching the wheel angle exactly when each delayed command arrives.
        t_end = t + dt
        while pending and pending[0][0] <= t_end + 1e-9:
            t_apply, c = pending.popleft()
            if t_apply > t:
                pose = step(pose, current, t_apply - t, car)
                t = t_apply
            current = c
        pose = step(pose, current, t_end - t, car)
        t = t_end
        s, offset, _road_h = road.locate(pose.x, pose.y, hint_s=s)
        s_log.append(s)
        offsets.append(abs(offset))
        traj.append((pose.x, pose.y))
        out = abs(offset) > road.half_width
        departed.append(out)
        if out:
            departures.append((pose.x, pose.y))
            traj.append((math.nan, math.nan))  # breaks the plotted path at the re-centring jump
            # The intervention: back onto the lane centre, aligned, with a fresh command queue.
            x, y, h = road.pose_at(s)
            pose = Pose(x, y, h)
            pending.clear()
            current = 0.0
    return LoopTrace(
        s=np.asarray(s_log, np.float64),
        offsets=np.asarray(offsets, np.float64),
        departed=np.asarray(departed, bool),
        trajectory=np.asarray(traj, np.float32).reshape(-1, 2),
        departure_points=np.asarray(departures, np.float32).reshape(-1, 2),
        uncertainties=np.asarray(uncertainties, np.float64),
        distance=float(min(s, road.length)),
        time_s=t,
    )


def drive_road(
    policy: Policy, index: int, config: SimConfig, rng_frames: np.random.Generator | None = None
) -> RoadResult:
    """Drive road ``index`` of the simulator's stream with ``policy``."""
    rng = road_rng(config.seed, SIM_STREAM, index)
    road = make_road(rng, length=config.road_length)
    needs_frame = getattr(policy, "needs_frame", True)
    scene = build_scene(road, rng) if needs_frame else None
    frame_rng = rng_frames or np.random.default_rng([config.seed & 0xFFFFFFFF, SIM_STREAM, index, 1])
    observe = getattr(policy, "observe", None)
    car = config.car

    def command(pose: Pose, t: float, s: float) -> tuple[float, float | None]:
        if observe is not None:
            observe(road, pose, s)
        frame = render(scene, pose, config.camera, car, rng=frame_rng) if scene is not None else None
        return policy(frame)

    tr = run_loop(road, command, car, config.control_hz, config.latency_ms)
    off = tr.offsets if tr.steps else np.zeros(1)
    return RoadResult(
        index=index,
        length=road.length,
        distance=tr.distance,
        time_s=tr.time_s,
        departures=tr.departures,
        steps=tr.steps,
        in_lane_steps=tr.steps - tr.departures,
        mean_abs_offset=float(off.mean()),
        max_abs_offset=float(off.max()),
        mean_uncertainty=float(tr.uncertainties.mean()) if len(tr.uncertainties) else None,
        trajectory=tr.trajectory,
        departure_points=tr.departure_points,
        road=road,
    )


def simulate(
    policy: Policy,
    config: SimConfig | None = None,
    progress: Callable[[RoadResult], None] | None = None,
) -> SimResult:
    """Drive ``config.roads`` roads with ``policy`` (default :class:`SimConfig`: 20 roads) and aggregate."""
    config = config or SimConfig()
    results = []
    for i in range(config.roads):
        r = drive_road(policy, i, config)
        results.append(r)
        if progress:
            progress(r)
    return SimResult(**DriveTotals.of(results, config.penalty_s), config=config, per_road=tuple(results))
