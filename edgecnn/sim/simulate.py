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
class SimResult:
    """Aggregate over all roads (``to_dict`` gives the JSON that scripts read)."""

    autonomy: float
    departures: int
    mean_abs_offset: float
    max_abs_offset: float
    distance: float
    time_s: float
    in_lane_fraction: float
    mean_uncertainty: float | None
    config: SimConfig
    per_road: tuple[RoadResult, ...]

    def to_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "autonomy": round(self.autonomy, 4),
            "departures": self.departures,
            "mean_abs_offset": round(self.mean_abs_offset, 4),
            "max_abs_offset": round(self.max_abs_offset, 4),
            "distance": round(self.distance, 2),
            "time_s": round(self.time_s, 2),
            "in_lane_fraction": round(self.in_lane_fraction, 4),
            "mean_uncertainty": None if self.mean_uncertainty is None else round(self.mean_uncertainty, 4),
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
    dt = 1.0 / config.control_hz
    latency = max(config.latency_ms, 0.0) / 1000.0
    time_limit = 2.0 * road.length / car.speed + 5.0

    x, y, h = road.pose_at(0.5)
    pose = Pose(x, y, h)
    s = 0.5
    t = 0.0
    current = 0.0
    pending: deque[tuple[float, float]] = deque()  # (time it reaches the wheels, command)
    offsets: list[float] = []
    uncertainties: list[float] = []
    traj: list[tuple[float, float]] = []
    departures: list[tuple[float, float]] = []
    in_lane = 0
    while s < road.length and t < time_limit:
        if observe is not None:
            observe(road, pose, s)
        frame = render(scene, pose, config.camera, car, rng=frame_rng) if scene is not None else None
        cmd, unc = policy(frame)
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
        s, offset, road_h = road.locate(pose.x, pose.y, hint_s=s)
        offsets.append(abs(offset))
        traj.append((pose.x, pose.y))
        if abs(offset) > road.half_width:
            departures.append((pose.x, pose.y))
            traj.append((math.nan, math.nan))  # breaks the plotted path at the re-centring jump
            # The intervention: back onto the lane centre, aligned, with a fresh command queue.
            x, y, h = road.pose_at(s)
            pose = Pose(x, y, h)
            pending.clear()
            current = 0.0
        else:
            in_lane += 1
    off = np.asarray(offsets) if offsets else np.zeros(1)
    return RoadResult(
        index=index,
        length=road.length,
        distance=float(min(s, road.length)),
        time_s=t,
        departures=len(departures),
        steps=len(offsets),
        in_lane_steps=in_lane,
        mean_abs_offset=float(off.mean()),
        max_abs_offset=float(off.max()),
        mean_uncertainty=float(np.mean(uncertainties)) if uncertainties else None,
        trajectory=np.asarray(traj, np.float32).reshape(-1, 2),
        departure_points=np.asarray(departures, np.float32).reshape(-1, 2),
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
    time_s = sum(r.time_s for r in results)
    steps = sum(r.steps for r in results)
    deps = sum(r.departures for r in results)
    unc = [r.mean_uncertainty for r in results if r.mean_uncertainty is not None]
    return SimResult(
        autonomy=max(0.0, 1.0 - deps * config.penalty_s / time_s) if time_s > 0 else 0.0,
        departures=deps,
        mean_abs_offset=float(sum(r.mean_abs_offset * r.steps for r in results) / max(steps, 1)),
        max_abs_offset=max((r.max_abs_offset for r in results), default=0.0),
        distance=float(sum(r.distance for r in results)),
        time_s=float(time_s),
        in_lane_fraction=sum(r.in_lane_steps for r in results) / max(steps, 1),
        mean_uncertainty=float(np.mean(unc)) if unc else None,
        config=config,
        per_road=tuple(results),
    )
