"""Render the camera view of a road from a car pose, fast, by inverse perspective mapping.

Per road, :func:`build_scene` paints a top-down texture of the ground in world coordinates (surface colours and
low-frequency texture, edge lines, a dashed centre line, shadows, distractor decals) at a few resolutions, and a
panorama of the surroundings (sky, walls, furniture, trees). Per frame, :func:`render` takes each camera pixel's
ground point (see :mod:`edgecnn.sim.camera`), moves it to world coordinates by the car's pose, and samples the
texture level that matches the pixel's ground footprint (``cv2.remap``); pixels above the ground sample the
panorama by direction. Lighting (gain, colour cast, gamma), haze and sensor noise are applied last.
:func:`build_network_scene` paints a whole road network around one route the same way (every road, clean
junctions with rounded kerbs), for :mod:`edgecnn.sim.network`.

Deterministic: a scene depends only on its generator's state, a frame only on the scene, the pose, the camera and
the ``rng`` passed to :func:`render`. Output frames are ``uint8 HxWx3 BGR``, like a camera's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.camera import Camera, rays
from edgecnn.sim.road import Road

if TYPE_CHECKING:  # only for the annotation: networkx stays out of a plain scene's imports
    from edgecnn.sim.network import SimNetwork

RES = 0.025  # metres per texture pixel at the finest level
LEVELS = (1, 4, 16)  # texture pyramid: 2.5 cm, 10 cm, 40 cm per pixel
MARGIN = 4.0  # metres of ground painted around the road
PANO_W, PANO_H = 1024, 128
PANO_EL = (-0.15, 0.9)  # elevation range of the panorama rows, radians (top row = highest)

# (name, BGR) surfaces: floor, carpet, grass, concrete, dirt; roads are either the floor itself (tape tracks) or
# a distinct surface.
_GROUNDS = np.array(
    [[70, 110, 60], [60, 60, 60], [140, 140, 135], [60, 90, 120], [110, 90, 80], [40, 40, 45], [150, 160, 170]],
    np.float32,
)
_ROADS = np.array([[70, 70, 72], [45, 45, 48], [110, 110, 112], [90, 100, 110]], np.float32)
_WHITE = np.array([235, 235, 235], np.float32)
_YELLOW = np.array([40, 200, 235], np.float32)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one road.

    Attributes:
        road: the road.
        textures: uint8 BGR top-down ground images, finest first; pixel (row, col) of level ``i`` covers world
            ``x = x0 + col * RES * LEVELS[i]``, ``y = y0 + row * RES * LEVELS[i]``.
        x0, y0: world coordinates of the textures' (0, 0) pixel, metres.
        panorama: uint8 (PANO_H, PANO_W, 3) BGR surroundings; column = world azimuth (0..2 pi, counter-clockwise
            from +x), row 0 = elevation ``PANO_EL[1]``.
        haze: float32 (3,) BGR colour the ground fades to with distance.
        haze_distance: metres at which the ground is about 63 % haze.
        gain: float32 (3,) per-channel light gain; gamma: tone curve exponent.
        noise: float32 (N, N, 3) sensor noise tile sampled with a random offset per frame.
        labels: for segmentation (``build_scene(..., labels=True)``), float32 (h, w, 3) class coverage per texture
            level, finest first, aligned with ``textures``: channel 0 = everything else, 1 = road surface, 2 =
            lane marking (:data:`LABEL_CLASSES`); empty otherwise.
    """

    road: Road
    textures: tuple[np.ndarray, ...]
    x0: float
    y0: float
    panorama: np.ndarray
    haze: np.ndarray
    haze_distance: float
    gain: np.ndarray
    gamma: float
    noise: np.ndarray
    labels: tuple[np.ndarray, ...] = ()


# Per-pixel classes of :func:`render_labels` (index order; 0 is everything that is neither road nor marking).
LABEL_CLASSES = ("background", "road", "marking")
_ROAD, _MARKING = 1, 2


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int, amp: float) -> np.ndarray:
    """float32 (h, w) noise of about ``cell`` pixels' feature size and ``amp`` standard deviation."""
    small = rng.standard_normal((max(h // cell, 2) + 1, max(w // cell, 2) + 1)).astype(np.float32) * amp
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _offset_line(road: Road, offset: float) -> np.ndarray:
    """float64 (N, 2) points ``offset`` metres to the left of the centre line."""
    n = np.stack([-np.sin(road.heading), np.cos(road.heading)], 1)
    return road.xy + offset * n


def _canvas(lo: np.ndarray, hi: np.ndarray) -> tuple[int, int, Callable[[np.ndarray], np.ndarray]]:
    """Texture size (w, h) in fine pixels for the world box ``lo``..``hi`` (whole coarse pixels) and the world ->
    cv2 point converter (4 fractional bits, for sub-pixel accurate lines)."""
    w = math.ceil((hi[0] - lo[0]) / RES / LEVELS[-1]) * LEVELS[-1]
    h = math.ceil((hi[1] - lo[1]) / RES / LEVELS[-1]) * LEVELS[-1]

    def px(points: np.ndarray) -> np.ndarray:
        return np.round((points - lo) / RES * 16).astype(np.int32).reshape(-1, 1, 2)

    return w, h, px


def _floor(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The floor: float32 (h, w, 3) BGR texture and the (h, w) blotch field it was tinted with."""
    ground = _GROUNDS[rng.integers(len(_GROUNDS))] + rng.normal(0, 15, 3).astype(np.float32)
    # Floor texture: two scales of blotches, one grey-level field (cheap), tinted per channel.
    blotch = _smooth_noise(rng, h, w, 40, rng.uniform(4, 18)) + _smooth_noise(rng, h, w, 8, rng.uniform(2, 8))
    return ground + blotch[..., None] * rng.uniform(0.8, 1.2, 3).astype(np.float32), blotch


def _surface(rng: np.random.Generator, tex: np.ndarray, blotch: np.ndarray, cls: np.ndarray | None,
             centres: list[np.ndarray], hw: float,
             corners: Callable[[float], list[np.ndarray]] | None = None) -> None:
    """The drivable surface (both lanes) along each road centre line in ``centres`` (cv2 points), in place;
    ``corners(extra)`` gives the junction corners to fill (cv2 polygons) for a surface ``extra`` m wider than the
    edge lines on each side."""
    road_width = int(4 * hw / RES)  # the drivable surface: both lanes, between the outer edge lines
    extra = 0.0
    if rng.random() < 0.6:  # a distinct road surface; otherwise tape lines on the floor
        surface = (_ROADS[rng.integers(len(_ROADS))] + rng.normal(0, 10, 3)).tolist()
        extra = rng.uniform(0.05, 0.3)
        road_width = int(4 * hw / RES + 2 * extra / RES)
        cv2.polylines(tex, centres, False, surface, road_width, cv2.LINE_AA, shift=4)
        if corners is not None:
            cv2.fillPoly(tex, corners(extra), surface, cv2.LINE_AA, shift=4)
        tex += blotch[..., None] * 0.3  # keep some texture on the road too
    if cls is not None:
        cv2.polylines(cls, centres, False, _ROAD, road_width, cv2.LINE_8, shift=4)
        if corners is not None:
            cv2.fillPoly(cls, corners(extra), _ROAD, cv2.LINE_8, shift=4)


def _decals(rng: np.random.Generator, tex: np.ndarray, road: Road, lo: np.ndarray) -> None:
    """Distractor decals (leaves, papers, stains, tape scraps, cones' footprints), mostly off the road."""
    hw = road.half_width
    for _ in range(int(rng.integers(5, 40))):
        s = rng.uniform(0, road.length + 10)
        on_road = rng.random() < 0.25
        side = rng.uniform(-hw, 3 * hw) if on_road else rng.choice([-1, 1]) * rng.uniform(2 * hw + 0.2, 2 * hw + MARGIN - 0.5) + hw
        cx, cy, hd = road.pose_at(s)
        c = np.array([cx - side * math.sin(hd), cy + side * math.cos(hd)])
        col = rng.uniform(0, 255, 3).tolist()
        centre = tuple(int(v) for v in ((c - lo) / RES * 16))
        axes = tuple(int(v) for v in rng.uniform(0.03, 0.25 if on_road else 0.5, 2) / RES * 16)
        cv2.ellipse(tex, centre, axes, float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA, shift=4)


def _lines(tex: np.ndarray, cls: np.ndarray | None, lines: list[np.ndarray], col: list[float], line_w: int) -> None:
    """Painted lines (cv2 points) on the texture and, as markings, on the class image."""
    cv2.polylines(tex, lines, False, col, line_w, cv2.LINE_AA, shift=4)
    if cls is not None:
        cv2.polylines(cls, lines, False, _MARKING, line_w, cv2.LINE_8, shift=4)


def _dashes(line: np.ndarray, on: int, period: int, phase: int) -> list[np.ndarray]:
    """The dashes of a centre line sampled every ``ds``: ``on`` samples painted every ``period`` from ``phase``."""
    return [line[i : min(i + on, len(line) - 1) + 1] for i in range(phase, len(line) - 1, period)]


def _finish(rng: np.random.Generator, tex: np.ndarray, road: Road, lo: np.ndarray, px, cls: np.ndarray | None) -> Scene:
    """Shadows, blur, the texture pyramid, surroundings, lighting and sensor noise: the rest of a scene."""
    h, w = tex.shape[:2]
    # Soft shadows (trees, furniture, people) painted on the ground.
    n_shadows = int(rng.integers(0, 7))
    if n_shadows:
        shade = np.ones((h, w), np.float32)
        for _ in range(n_shadows):
            cx, cy, _hd = road.pose_at(rng.uniform(0, road.length + 5))
            c = np.array([cx, cy]) + rng.normal(0, 1.0, 2)
            k = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            rad = rng.uniform(0.2, 1.2, k)
            poly = c + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
            cv2.fillPoly(shade, [px(poly)], float(rng.uniform(0.35, 0.75)), cv2.LINE_AA, shift=4)
        tex *= cv2.blur(shade, (5, 5))[..., None]

    # A slight blur: anti-aliased lines still show texture-pixel steps when the near field magnifies them.
    fine = cv2.GaussianBlur(np.clip(tex, 0, 255, out=tex).astype(np.uint8), (3, 3), 0.8)
    textures = [fine]
    for f in LEVELS[1:]:
        textures.append(cv2.resize(fine, (w // f, h // f), interpolation=cv2.INTER_AREA))

    haze = np.clip(rng.uniform(120, 230) + rng.normal(0, 15, 3), 0, 255).astype(np.float32)
    pano = _panorama(rng, haze)
    gain = (rng.uniform(0.55, 1.35) * rng.uniform(0.85, 1.15, 3)).astype(np.float32)
    noise = rng.normal(0, rng.uniform(1.0, 7.0), (256, 256, 3)).astype(np.float32)  # sensor noise, 8-bit units
    return Scene(
        road=road,
        textures=tuple(textures),
        x0=float(lo[0]),
        y0=float(lo[1]),
        panorama=pano,
        haze=haze,
        haze_distance=float(rng.uniform(5.0, 14.0)),
        gain=gain,
        gamma=float(rng.uniform(0.75, 1.3)),
        noise=noise,
        labels=_label_pyramid(cls) if cls is not None else (),
    )


def build_scene(road: Road, rng: np.random.Generator, labels: bool = False) -> Scene:
    """Paint the textures, panorama and lighting of one road (about 20-60 ms).

    ``labels``: also paint the class of every ground point (road surface, lane marking, everything else) with
    the same geometry, for :func:`render_labels`. It draws nothing from ``rng``, so the frames are the same
    either way.
    """
    # The road (both lanes) lies within 3 half-widths of the driving line.
    lo = road.xy.min(0) - MARGIN - 3 * road.half_width
    hi = road.xy.max(0) + MARGIN + 3 * road.half_width
    w, h, px = _canvas(lo, hi)
    tex, blotch = _floor(rng, h, w)

    # The car drives in the right-hand lane of a two-lane track (as on Donkey Car tracks): a white edge line on
    # its right, the dashed yellow centre line on its left, and the other lane's white edge beyond.
    hw = road.half_width
    # Class of each fine texture pixel (segmentation labels): drawn without anti-aliasing, same geometry.
    cls = np.zeros((h, w), np.uint8) if labels else None
    _surface(rng, tex, blotch, cls, [px(_offset_line(road, hw))], hw)
    _decals(rng, tex, road, lo)

    # Lane markings, with occasional dropouts of one line.
    line_w = max(round(rng.uniform(0.04, 0.07) / RES), 1)
    edge_col = (_WHITE if rng.random() < 0.85 else _YELLOW) * rng.uniform(0.75, 1.0)
    for off in (-hw, 3 * hw):
        if rng.random() < 0.95:
            _lines(tex, cls, [px(_offset_line(road, off))], edge_col.tolist(), line_w)
    if rng.random() < 0.9:
        centre_col = (_YELLOW if rng.random() < 0.8 else _WHITE) * rng.uniform(0.75, 1.0)
        dash = rng.uniform(0.15, 0.5)
        gap = rng.uniform(0.15, 0.5) if rng.random() < 0.85 else 0.0
        period = max(round((dash + gap) / road.ds), 1)
        on = max(round(dash / road.ds), 1)
        left = _offset_line(road, hw)
        segs = [px(seg) for seg in _dashes(left, on, period, int(rng.integers(0, period)))]
        _lines(tex, cls, segs, centre_col.tolist(), line_w)
    return _finish(rng, tex, road, lo, px, cls)


def build_network_scene(net: SimNetwork, route_road: Road, rng: np.random.Generator, labels: bool = False) -> Scene:
    """Paint a road network around one route: like :func:`build_scene` (floor, surfaces, distractors, markings,
    shadows, surroundings, lighting), but every road of ``net`` is painted with its surface, white edge lines and
    dashed centre line, and junctions are clean (no edge line across the road that meets it; see
    :attr:`edgecnn.sim.network.SimNetwork.markings`), so the camera sees each junction and all its branches.

    The textures cover ``route_road`` (the route's driving line, :func:`edgecnn.sim.network.route_road`) and
    :data:`MARGIN` metres around it; ``scene.road`` is ``route_road``. About 0.1-0.3 s. ``labels`` as for
    :func:`build_scene`. Deterministic for a given ``rng`` state; frames with :func:`render` as for any scene.
    """
    hw = net.half_width
    lo = route_road.xy.min(0) - MARGIN - 3 * hw
    hi = route_road.xy.max(0) + MARGIN + 3 * hw
    w, h, px = _canvas(lo, hi)
    tex, blotch = _floor(rng, h, w)
    cls = np.zeros((h, w), np.uint8) if labels else None
    edges = [d for _u, _v, d in sorted(net.graph.edges(data=True), key=lambda e: int(e[2]["id"][1:]))]
    def corners(extra: float) -> list[np.ndarray]:  # the rounded junction corners of a surface extra m wider
        return [px(k.polygon()) for k in net.corners(extra)]

    _surface(rng, tex, blotch, cls, [px(d["points"]) for d in edges], hw, corners)
    _decals(rng, tex, route_road, lo)
    line_w = max(round(rng.uniform(0.04, 0.07) / RES), 1)
    edge_col = ((_WHITE if rng.random() < 0.85 else _YELLOW) * rng.uniform(0.75, 1.0)).tolist()
    marks = net.markings
    for left, right, _centre in marks:
        for runs in (left, right):
            if rng.random() < 0.95:
                _lines(tex, cls, [px(r) for r in runs], edge_col, line_w)
    _lines(tex, cls, [px(a) for a in net.kerbs], edge_col, line_w)
    if rng.random() < 0.9:
        centre_col = ((_YELLOW if rng.random() < 0.8 else _WHITE) * rng.uniform(0.75, 1.0)).tolist()
        dash = rng.uniform(0.15, 0.5)
        gap = rng.uniform(0.15, 0.5) if rng.random() < 0.85 else 0.0
        ds = float(np.hypot(*(edges[0]["points"][1] - edges[0]["points"][0])))
        period = max(round((dash + gap) / ds), 1)
        on = max(round(dash / ds), 1)
        segs = [px(seg) for _l, _r, centre in marks for run in centre
                for seg in _dashes(run, on, period, int(rng.integers(0, period)))]
        _lines(tex, cls, segs, centre_col, line_w)
    return _finish(rng, tex, route_road, lo, px, cls)


def _label_pyramid(cls: np.ndarray) -> tuple[np.ndarray, ...]:
    """Class coverage (float32 h x w x K one-hot, then area-averaged) at every texture level, like the image's
    pyramid, so a far marking thinner than a pixel is labelled as what covers most of that pixel."""
    onehot = (cls[..., None] == np.arange(len(LABEL_CLASSES), dtype=np.uint8)).astype(np.float32)
    h, w = cls.shape
    return tuple([onehot] + [cv2.resize(onehot, (w // f, h // f), interpolation=cv2.INTER_AREA) for f in LEVELS[1:]])


def _panorama(rng: np.random.Generator, haze: np.ndarray) -> np.ndarray:
    """Surroundings as an azimuth x elevation image: a sky or ceiling gradient, and walls, furniture and trees."""
    el = np.linspace(PANO_EL[1], PANO_EL[0], PANO_H, dtype=np.float32)[:, None, None]
    top = rng.uniform(60, 255, 3).astype(np.float32)
    t = np.clip(el / PANO_EL[1], 0, 1)
    pano = np.broadcast_to(haze * (1 - t) + top * t, (PANO_H, PANO_W, 3)).copy()
    horizon_row = int(PANO_H * PANO_EL[1] / (PANO_EL[1] - PANO_EL[0]))
    for _ in range(int(rng.integers(4, 30))):
        x = int(rng.integers(0, PANO_W))
        wdt = int(rng.integers(8, 160))
        height = int(rng.integers(4, horizon_row))
        col = rng.uniform(20, 240, 3).tolist()
        y1 = horizon_row + int(rng.integers(0, 6))
        for xs in (x, x - PANO_W):  # wrap around 2 pi
            if rng.random() < 0.3:  # a tree: a trunk and a blob
                cv2.rectangle(pano, (xs + wdt // 2 - 2, y1 - height // 2), (xs + wdt // 2 + 2, y1), col, -1)
                cv2.ellipse(pano, (xs + wdt // 2, y1 - height // 2), (wdt // 2, max(height // 2, 2)), 0, 0, 360, col, -1)
            else:
                cv2.rectangle(pano, (xs, y1 - height), (xs + wdt, y1), col, -1)
    for _ in range(int(rng.integers(0, 40))):  # ceiling lights / bright windows
        c = (int(rng.integers(0, PANO_W)), int(rng.integers(0, horizon_row - 8)))
        cv2.ellipse(pano, c, (int(rng.integers(2, 8)), int(rng.integers(1, 4))), 0, 0, 360, (250, 250, 250), -1)
    pano += rng.normal(0, 4, pano.shape).astype(np.float32)
    return np.clip(pano, 0, 255).astype(np.uint8)


def render(
    scene: Scene,
    pose: Pose,
    camera: Camera | None = None,
    car: CarParams | None = None,
    rng: np.random.Generator | None = None,
    light: tuple[np.ndarray, float] | None = None,
) -> np.ndarray:
    """The camera frame seen from ``pose``: ``uint8 (camera.height, camera.width, 3) BGR``.

    ``camera`` defaults to :class:`Camera` (160x120), ``car`` to :class:`CarParams` (camera 0.2 m ahead of the
    rear axle).
    ``rng`` draws the per-frame sensor noise offset (no noise when None). ``light`` overrides the scene's
    ``(gain, gamma)``, so data generation can vary lighting per frame on a shared scene.
    """
    camera = camera or Camera()
    car = car or CarParams()
    r = rays(camera)
    border = tuple(float(v) for v in scene.textures[0][0, 0])
    ground = _sample_ground(scene, scene.textures, border, pose, camera, car)

    # Haze: the ground fades to the horizon colour with distance.
    fade = (1.0 - np.exp(-r.dist / scene.haze_distance))[..., None]
    ground = ground * (1 - fade) + scene.haze * fade

    az = (pose.yaw + r.azimuth) % (2 * math.pi)
    px = (az / (2 * math.pi) * PANO_W).astype(np.float32)
    py = ((PANO_EL[1] - r.elevation) / (PANO_EL[1] - PANO_EL[0]) * (PANO_H - 1)).astype(np.float32)
    sky = cv2.remap(scene.panorama, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP).astype(np.float32)
    img = np.where(r.ground[..., None], ground, sky)

    gain, gamma = light if light is not None else (scene.gain, scene.gamma)
    # Exposure and tone curve as one per-channel look-up table on 8-bit values (much cheaper than a power).
    v = np.arange(256, dtype=np.float32)[:, None] / 255.0
    lut = (255.0 * np.power(np.clip(v * gain[None, :], 0, 1), gamma)).astype(np.uint8).reshape(256, 1, 3)
    out = cv2.LUT(np.clip(img, 0, 255).astype(np.uint8), lut)
    if rng is None:
        return out
    n = scene.noise
    oy = int(rng.integers(0, n.shape[0] - camera.height + 1)) if n.shape[0] >= camera.height else 0
    ox = int(rng.integers(0, n.shape[1] - camera.width + 1)) if n.shape[1] >= camera.width else 0
    tile = n[oy : oy + camera.height, ox : ox + camera.width]
    if tile.shape[:2] != out.shape[:2]:  # a camera larger than the noise tile: tile it
        reps = (-(-camera.height // n.shape[0]), -(-camera.width // n.shape[1]), 1)
        tile = np.tile(n, reps)[: camera.height, : camera.width]
    return np.clip(out + tile, 0, 255).astype(np.uint8)


def _sample_ground(scene: Scene, levels: tuple[np.ndarray, ...], border: tuple[float, ...], pose: Pose,
                   camera: Camera, car: CarParams) -> np.ndarray:
    """float32 (H, W, C): what each camera pixel's ground point sees in the pyramid ``levels`` (the textures or
    the class coverage, finest first), ``border`` outside them.

    The texture level comes from the pixel's ground footprint (LEVELS grow 4x): a hat-weighted blend of the two
    levels that bracket it, trilinear-style, so the far field does not alias. The weights depend only on the
    camera.
    """
    r = rays(camera)
    cos_y, sin_y = math.cos(pose.yaw), math.sin(pose.yaw)
    cam_x = pose.x + car.camera_forward * cos_y
    cam_y = pose.y + car.camera_forward * sin_y
    wx = cam_x + r.fwd * cos_y - r.left * sin_y
    wy = cam_y + r.fwd * sin_y + r.left * cos_y
    col0 = (wx - scene.x0) / RES
    row0 = (wy - scene.y0) / RES
    weights = _level_weights(camera)
    out = None
    for i, f in enumerate(LEVELS):
        # Pixel centres of a coarser level sit at (k + 0.5) * f - 0.5 fine pixels.
        mx = ((col0 + 0.5) / f - 0.5).astype(np.float32)
        my = ((row0 + 0.5) / f - 0.5).astype(np.float32)
        sample = cv2.remap(levels[i], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        part = sample * weights[i]
        out = part if out is None else out + part
    return out


@functools.lru_cache(maxsize=64)
def _level_weights(camera: Camera) -> tuple[np.ndarray, ...]:
    """float32 (H, W, 1) blend weight of each texture level for every pixel of ``camera`` (they sum to 1)."""
    r = rays(camera)
    level = np.clip(np.log(np.maximum(r.footprint / RES, 1.0)) / math.log(4.0), 0, len(LEVELS) - 1)
    return tuple(np.maximum(0.0, 1.0 - np.abs(level - i)).astype(np.float32)[..., None] for i in range(len(LEVELS)))


def render_labels(scene: Scene, pose: Pose, camera: Camera | None = None, car: CarParams | None = None) -> np.ndarray:
    """The class of every pixel of the frame :func:`render` shows from ``pose``: ``uint8 (H, W)`` indexes into
    :data:`LABEL_CLASSES` (0 everything else, including the sky and surroundings; 1 road surface; 2 lane marking).

    Exact from the scene's own geometry: each pixel samples the class coverage of the texture level that
    :func:`render` blends for it (the same weights), and takes the class covering most of it. Needs a scene
    built with ``labels=True``.
    """
    if not scene.labels:
        raise ValueError("render_labels needs a scene built with build_scene(..., labels=True)")
    camera = camera or Camera()
    car = car or CarParams()
    r = rays(camera)
    cover = _sample_ground(scene, scene.labels, (1.0, 0.0, 0.0), pose, camera, car)
    out = cover.argmax(-1).astype(np.uint8)
    out[~r.ground] = 0
    return out
