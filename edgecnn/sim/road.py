"""Road geometry: a centre line with smoothly varying curvature, a lane width, and pose look-ups.

A road is sampled every ``ds`` metres along its centre line. Curvature is a sum of a few random sinusoids (bounded
by ``max_curvature``), with a weak pull back towards the start heading so a road never loops onto itself. The first
metre is straight so a car starts aligned. The car drives on the centre line (a Donkey Car track: white edge lines,
a dashed yellow centre line); it has left its lane when the reference point's lateral offset exceeds
``half_width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Random streams: road r of a stream depends only on (seed, stream, r). Training data (`edgecnn data roads`) draws
# from DATA_STREAM and the simulator from SIM_STREAM, so test roads are never training roads, whatever the seeds.
DATA_STREAM = 0
SIM_STREAM = 1


def road_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator for road ``index`` of ``stream`` (DATA_STREAM or SIM_STREAM)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, stream, index])


# Donkey Car scale: lanes about 0.7-1.0 m wide, turns of 1.7 m radius or more.
MAX_CURVATURE = 0.6  # 1/m
TAIL = 10.0  # metres of road beyond the drivable length, so look-ahead and camera view stay on the road


@dataclass(frozen=True)
class Road:
    """A road centre line.

    Attributes:
        xy: float64 (N, 2), centre-line points in world metres, one every ``ds`` metres of arc length.
        heading: float64 (N,), tangent direction at each point, radians counter-clockwise from +x.
        curvature: float64 (N,), 1/m, positive = turning left.
        ds: spacing of the samples in metres.
        half_width: half the lane width in metres (distance from the centre line to each edge line).
        length: drivable length in metres (the samples run ``TAIL`` metres further).
    """

    xy: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray
    ds: float
    half_width: float
    length: float

    def pose_at(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) of the centre line at arc length ``s`` metres (clamped to the samples)."""
        i = min(max(s / self.ds, 0.0), len(self.xy) - 1.000001)
        i0 = int(i)
        f = i - i0
        x, y = self.xy[i0] * (1 - f) + self.xy[i0 + 1] * f
        h0, h1 = self.heading[i0], self.heading[i0 + 1]
        return float(x), float(y), float(h0 + f * (h1 - h0))

    def locate(self, x: float, y: float, hint_s: float | None = None) -> tuple[float, float, float]:
        """Where a point is relative to the road: ``(s, offset, heading)``.

        ``s`` is the arc length of the nearest centre-line point (m), ``offset`` the signed lateral distance (m,
        positive = left of the centre line), ``heading`` the road's direction there (rad). ``hint_s`` (the last
        known ``s``) restricts the search to the nearby stretch, which is both faster and right where a road
        passes close to itself.
        """
        if hint_s is None:
            lo, hi = 0, len(self.xy)
        else:
            i = int(hint_s / self.ds)
            lo, hi = max(i - int(3.0 / self.ds), 0), min(i + int(3.0 / self.ds), len(self.xy))
        seg = self.xy[lo:hi]
        d2 = (seg[:, 0] - x) ** 2 + (seg[:, 1] - y) ** 2
        k = lo + int(np.argmin(d2))
        h = self.heading[k]
        dx, dy = x - self.xy[k, 0], y - self.xy[k, 1]
        along = dx * math.cos(h) + dy * math.sin(h)
        offset = -dx * math.sin(h) + dy * math.cos(h)
        s = min(max(k * self.ds + along, 0.0), (len(self.xy) - 1) * self.ds)
        return s, offset, float(h)


def make_road(
    rng: np.random.Generator,
    length: float = 30.0,
    curviness: float | None = None,
    half_width: float | None = None,
    ds: float = 0.05,
) -> Road:
    """A random road of ``length`` drivable metres.

    ``curviness`` in [0, 1] scales the curvature bound (random in [0.35, 1] when None); ``half_width`` in metres
    (random in [0.35, 0.5] when None). Deterministic for a given ``rng`` state.
    """
    curviness = float(rng.uniform(0.35, 1.0)) if curviness is None else float(curviness)
    half_width = float(rng.uniform(0.35, 0.5)) if half_width is None else float(half_width)
    total = length + TAIL
    n = int(round(total / ds)) + 1
    s = np.arange(n) * ds
    kappa = np.zeros(n)
    for _ in range(3):
        wavelength = rng.uniform(5.0, 20.0)
        kappa += rng.uniform(0.4, 1.0) * np.sin(2 * math.pi * s / wavelength + rng.uniform(0, 2 * math.pi))
    kappa *= MAX_CURVATURE * curviness / max(np.abs(kappa).max(), 1e-9)
    ramp = np.clip((s - 1.0) / 1.5, 0.0, 1.0)  # straight first metre, then ease in
    kappa *= ramp * ramp * (3 - 2 * ramp)
    heading = np.empty(n)
    curv = np.empty(n)
    h = 0.0
    bound = MAX_CURVATURE * max(curviness, 1e-3)
    for i in range(n):
        # Pull the heading back towards 0 (about 0.08 rad/m per rad) so that long roads wander but never loop.
        k = float(np.clip(kappa[i] - 0.08 * h, -bound, bound))
        curv[i] = k
        heading[i] = h
        h += k * ds
    xy = np.zeros((n, 2))
    xy[1:, 0] = np.cumsum(np.cos(heading[:-1]) * ds)
    xy[1:, 1] = np.cumsum(np.sin(heading[:-1]) * ds)
    return Road(xy=xy, heading=heading, curvature=curv, ds=ds, half_width=half_width, length=float(length))
