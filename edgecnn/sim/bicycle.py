"""Kinematic bicycle model of a small car (Donkey Car scale), referenced at the rear axle."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pose:
    """Car pose: rear-axle centre ``x``, ``y`` in world metres and ``yaw`` in radians counter-clockwise from +x."""

    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class CarParams:
    """Car geometry and speed.

    Attributes:
        wheelbase: metres between the axles.
        max_steer_deg: front-wheel angle reached at steering command +-1, degrees.
        speed: constant forward speed, m/s (throttle is not simulated).
        camera_forward: camera position ahead of the rear axle, metres.
    """

    wheelbase: float = 0.26
    max_steer_deg: float = 25.0
    speed: float = 1.5
    camera_forward: float = 0.2

    @property
    def max_steer(self) -> float:
        return math.radians(self.max_steer_deg)


def step(pose: Pose, command: float, dt: float, car: CarParams) -> Pose:
    """Advance ``pose`` by ``dt`` seconds under a steering ``command`` in [-1, 1] (positive = right).

    Exact integration for a constant wheel angle over the step (a circular arc), so the result does not depend on
    how finely the caller splits time.
    """
    delta = -max(-1.0, min(1.0, command)) * car.max_steer  # right turn = clockwise = negative yaw rate
    dist = car.speed * dt
    yaw_rate_per_m = math.tan(delta) / car.wheelbase
    dyaw = yaw_rate_per_m * dist
    if abs(dyaw) < 1e-9:
        return Pose(pose.x + dist * math.cos(pose.yaw), pose.y + dist * math.sin(pose.yaw), pose.yaw)
    r = 1.0 / yaw_rate_per_m
    yaw = pose.yaw + dyaw
    return Pose(pose.x + r * (math.sin(yaw) - math.sin(pose.yaw)), pose.y - r * (math.cos(yaw) - math.cos(pose.yaw)), yaw)
