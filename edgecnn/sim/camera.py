"""A pinhole camera on the car: for every pixel, where its ray meets the ground (inverse perspective mapping).

The per-pixel geometry depends only on the camera, not on the car's pose, so it is computed once per camera
(:func:`rays`, cached) and each frame is then a rotation, a translation and a texture look-up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Camera intrinsics and mounting.

    Attributes:
        width, height: image size in pixels.
        hfov_deg: horizontal field of view, degrees (Donkey Car cameras are wide: about 100-160).
        mount_height: lens height above the ground, metres.
        pitch_deg: downward tilt, degrees.
        roll_deg: roll, degrees (positive = clockwise as seen from behind).
        max_distance: ground farther than this (metres) is left to the horizon haze.
    """

    width: int = 160
    height: int = 120
    hfov_deg: float = 120.0
    mount_height: float = 0.2
    pitch_deg: float = 12.0
    roll_deg: float = 0.0
    max_distance: float = 10.0

    @property
    def focal(self) -> float:
        """Focal length in pixels."""
        return (self.width / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)


@dataclass(frozen=True)
class Rays:
    """Per-pixel ray geometry, all ``float32 (height, width)`` unless stated.

    Attributes:
        ground: bool (height, width), the ray meets the ground within ``max_distance``.
        fwd, left: where the ray meets the ground, metres ahead of and to the left of the camera (0 off-ground).
        dist: horizontal distance of that ground point, metres (``max_distance`` off-ground).
        footprint: size of the pixel on the ground, metres (for choosing a texture resolution, against aliasing).
        azimuth: ray direction, radians to the left of the car's heading.
        elevation: ray direction, radians above the horizon.
    """

    ground: np.ndarray
    fwd: np.ndarray
    left: np.ndarray
    dist: np.ndarray
    footprint: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray


@functools.lru_cache(maxsize=64)
def rays(cam: Camera) -> Rays:
    """The ray geometry of ``cam`` (cached: cameras are frozen, hashable values)."""
    f = cam.focal
    v, u = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
    xc = (u - (cam.width - 1) / 2.0) / f  # right
    yc = (v - (cam.height - 1) / 2.0) / f  # down
    r = math.radians(cam.roll_deg)
    xc, yc = xc * math.cos(r) - yc * math.sin(r), xc * math.sin(r) + yc * math.cos(r)
    p = math.radians(cam.pitch_deg)
    fwd = math.cos(p) - yc * math.sin(p)
    up = -yc * math.cos(p) - math.sin(p)
    left = -xc
    horiz = np.hypot(fwd, left)
    azimuth = np.arctan2(left, fwd)
    elevation = np.arctan2(up, horiz)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(up < -1e-6, cam.mount_height / -up, np.inf)
    gx, gy = t * fwd, t * left
    dist = np.hypot(gx, gy)
    ground = np.isfinite(dist) & (dist < cam.max_distance) & (gx > 0)
    norm = np.sqrt(fwd**2 + left**2 + up**2)
    rng_m = np.where(ground, t * norm, 0.0)
    sin_depr = np.where(ground, -up / norm, 1.0)
    # A pixel spans 1/f rad: rng/f across the ray, stretched by 1/sin(depression) along the ground.
    footprint = rng_m / f / np.sqrt(np.maximum(sin_depr, 1e-3))
    f32 = np.float32
    return Rays(
        ground=ground,
        fwd=np.where(ground, gx, 0.0).astype(f32),
        left=np.where(ground, gy, 0.0).astype(f32),
        dist=np.where(ground, dist, cam.max_distance).astype(f32),
        footprint=footprint.astype(f32),
        azimuth=azimuth.astype(f32),
        elevation=elevation.astype(f32),
    )
