"""The ideal controller: pure pursuit of a point on the centre line, as a steering command in [-1, 1].

It labels the generated training frames (the steering an ideal driver would apply from that pose) and is the
reference policy of the simulator (autonomy close to 1.0).
"""

from __future__ import annotations

import math

from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.road import Road

LOOKAHEAD = 0.6  # metres of arc ahead of the car's nearest centre-line point


def pure_pursuit(road: Road, pose: Pose, car: CarParams, lookahead: float = LOOKAHEAD, hint_s: float | None = None) -> float:
    """Steering command in [-1, 1] (positive = right) that steers the rear axle onto the arc through the
    centre-line point ``lookahead`` metres ahead."""
    s, _, _ = road.locate(pose.x, pose.y, hint_s)
    tx, ty, _ = road.pose_at(s + lookahead)
    dx, dy = tx - pose.x, ty - pose.y
    # Target in the car frame (forward, left).
    fwd = dx * math.cos(pose.yaw) + dy * math.sin(pose.yaw)
    left = -dx * math.sin(pose.yaw) + dy * math.cos(pose.yaw)
    dist2 = fwd * fwd + left * left
    if dist2 < 1e-9:
        return 0.0
    curvature = 2.0 * left / dist2  # arc through the rear axle tangent to the heading and through the target
    delta = math.atan(curvature * car.wheelbase)
    if fwd < 0:  # target behind: turn fully towards it
        delta = math.copysign(car.max_steer, left if left else 1.0)
    return max(-1.0, min(1.0, -delta / car.max_steer))
