"""The coarse map M: a road network, a route through it, a noisy pose, and the ONE rasteriser.

A route-conditioned model (task ``navigate``) sees two inputs: the camera frame and a small ego-centred,
heading-up raster of the roads (and, routed, the planned route) around the car's *estimated* pose. Data
generation, training, calibration, the simulator and the device all draw that raster with :func:`rasterise`, the
same rule as the one preprocessing (:mod:`edgecnn.preprocess`): training and serving cannot drift.

Core layer: numpy, OpenCV and the standard library only (the device reads route files and rasterises per frame).

Geometry (as :mod:`edgecnn.sim.road`): world metres, ``x``/``y``, heading in radians counter-clockwise from +x.
The car drives in the RIGHT lane of a two-lane road. An :class:`Edge` holds the road CENTRE line (the dashed
yellow line); its drivable surface spans ``4 * half_width`` (two lanes of ``2 * half_width``). A :class:`Route`
holds the DRIVING line (right-lane centre, ``half_width`` right of the road centre, with the turning arcs
through junctions).

The raster (:class:`MapSpec`): ``uint8 (size, size, C)``, values 0 or 255 (no anti-aliasing, so the int8
input is exact), channel ``"roads"`` = the drivable surface of every edge, ``"route"`` = the route's driving line
drawn one lane (``2 * half_width``) wide. The car sits at column ``size / 2`` and row
``size * (1 - behind_m / extent_m)``, its heading pointing up (row 0); its left is the image's left.

Route files (``edgecnn-route-1``, JSON, local metres) carry the network and one route; :func:`load_route` checks
them and says in one line what is wrong (:class:`~edgecnn.errors.DataError`).

Example::

    network, route = load_route("routes/net0-r1.json")
    spec = MapSpec()
    m = rasterise(network, route, (x, y, heading), spec)   # uint8 (64, 64, 2), 0/255
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.atomic import write_text
from edgecnn.errors import DataError

ROUTE_FORMAT = "edgecnn-route-1"
MAP_CHANNELS = ("roads", "route")
# What each channel means, for the contract and ``inspect``.
CHANNEL_MEANING = {
    "roads": "drivable surface of every road (both lanes, 4 x lane half-width), 255 = road",
    "route": "the planned route's driving line, one lane (2 x lane half-width) wide, 255 = route",
}
JUNCTION_KINDS = ("T", "cross", "fork")
BRANCHES = ("left", "straight", "right")
# A route file larger than this is not one (the biggest network we generate is a few hundred KiB).
MAX_ROUTE_FILE_BYTES = 64 * 1024 * 1024
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG); the local tangent-plane approximation below uses it
_SHIFT = 4  # fractional bits of the cv2 drawing coordinates (1/16 pixel)
_ONE = 1 << _SHIFT
# Pixels of margin drawn around the raster and cut off: OpenCV's fillPoly paints the part of a polygon that lies
# beyond the image's left or right edge onto the edge column (seen with OpenCV 5.0: a road 8 pixels left of the
# map painted its first column), so the polygons are drawn on a slightly larger canvas.
_PAD = 2


# ----------------------------------------------------------------------------------------------------- map spec


@dataclass(frozen=True)
class MapSpec:
    """The map input's geometry; travels in the model's contract (``contract.map["spec"]``).

    Attributes:
        size: raster side in pixels (square).
        extent_m: side of the square in metres.
        behind_m: metres of map behind the car; ``extent_m - behind_m`` ahead. The car is at column
            ``size / 2``, row ``size * (1 - behind_m / extent_m)``, heading up.
        channels: which channels, in order, from :data:`MAP_CHANNELS`: ``("roads", "route")`` for a routed
            model, ``("roads",)`` for an unrouted one.

    Why 8 m at 64 px, at Donkey Car scale (a 1:10 car about 0.25 m wide and 0.45 m long, lanes 0.7-1.0 m wide,
    turns of 1.7 m radius or more, junctions at least 5 m apart, 1.5-2.5 m/s):

    - 12.5 cm per pixel: a lane is 6-8 pixels wide and a road 11-16, so the map's branch shapes survive two or
      three stride-2 convolutions, while the map stays far coarser than the lane marks the camera sees: the map
      tells the model *which* way, the camera *where in the lane*.
    - 6 m ahead is 2.5-4 s of driving: the model sees a junction well before the junction zone (2.5 m before its
      centre) and the whole of a 90-degree turn (an arc of 1.7-2.5 m radius) inside the view; with junctions at
      least 5 m apart, rarely more than two junctions are in view at once.
    - 4 m either side holds a T-junction's two branches out to their turn arcs, and 2 m behind keeps the road
      under and just behind the car in view when the pose estimate is off by a metre (4 sigma at the default
      :class:`PoseNoise`).
    - 64 x 64 x 2 is 8 KiB of int8 input: the map branch costs a fraction of the camera branch on a Pi.
    """

    size: int = 64
    extent_m: float = 8.0
    behind_m: float = 2.0
    channels: tuple[str, ...] = ("roads", "route")

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and 8 <= self.size <= 1024):
            raise ValueError(f"map size must be an integer number of pixels in 8..1024, got: {self.size!r}")
        if not (math.isfinite(self.extent_m) and self.extent_m > 0):
            raise ValueError(f"map extent must be a positive number of metres, got: {self.extent_m!r}")
        if not (math.isfinite(self.behind_m) and 0 <= self.behind_m < self.extent_m):
            raise ValueError(f"map behind_m must be in [0, extent_m), got: {self.behind_m!r}")
        chans = tuple(self.channels)
        if not chans or len(set(chans)) != len(chans) or any(c not in MAP_CHANNELS for c in chans):
            raise ValueError(f"map channels must be distinct names from {MAP_CHANNELS}, got: {self.channels!r}")
        object.__setattr__(self, "channels", chans)

    @property
    def pixels_per_m(self) -> float:
        return self.size / self.extent_m

    @property
    def car_pixel(self) -> tuple[float, float]:
        """(row, col) of the car in continuous pixel coordinates (pixel ``(r, c)`` covers ``[r, r+1) x [c, c+1)``)."""
        return self.size * (1.0 - self.behind_m / self.extent_m), self.size / 2.0

    @property
    def routed(self) -> bool:
        return "route" in self.channels

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "extent_m": self.extent_m, "behind_m": self.behind_m,
                "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MapSpec:
        """Build from :meth:`to_dict`'s form; unknown keys are ignored. ValueError when malformed."""
        if not isinstance(d, dict):
            raise TypeError(f"a map spec must be a JSON object, got: {type(d).__name__}")
        kw: dict[str, Any] = {}
        try:
            if "size" in d:
                if isinstance(d["size"], bool) or float(d["size"]) != int(d["size"]):
                    raise ValueError(f"map size must be an integer, got: {d['size']!r}")
                kw["size"] = int(d["size"])
            for k in ("extent_m", "behind_m"):
                if k in d:
                    kw[k] = float(d[k])
            if "channels" in d:
                if not isinstance(d["channels"], (list, tuple)):
                    raise ValueError(f"map channels must be a list, got: {d['channels']!r}")
                kw["channels"] = tuple(str(c) for c in d["channels"])
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"map spec is malformed: {exc}") from exc
        return cls(**kw)


# --------------------------------------------------------------------------------------------------- pose noise


@dataclass(frozen=True)
class PoseNoise:
    """What a GPS/odometry fusion gives the car as its pose; the defaults are a good RTK-GPS or a
    visual/wheel odometry on a Donkey Car.

    Attributes:
        position_m: 1-sigma position error per axis, metres: a slowly varying bias (three quarters of the
            variance, correlation time :data:`BIAS_TAU_S`) plus a white part (one quarter).
        heading_deg: 1-sigma heading error, degrees (split the same way).
        delay_ms: age of a pose when it reaches the car's software, milliseconds (fix computation, serial
            line, fusion).
        rate_hz: how often a new pose arrives (Hz); between updates the car keeps the last one.

    Why these figures, at Donkey Car scale (lane half-width 0.35-0.5 m, 1.5-2.5 m/s, junctions >= 5 m apart):

    - 0.25 m is about half a lane: an RTK fix with multipath under trees, or wheel odometry after a few tens of
      metres. It is too coarse to keep the lane from the map alone (the camera must do that, which is the
      point), and fine enough that the map never shows the wrong junction (5 m apart is 20 sigma). A plain
      consumer GPS (2-3 m) is too coarse for a 1:10 car; the docs say so.
    - 4 degrees shifts a point 6 m ahead (the map's top edge) sideways by 0.42 m, one lane half-width: a
      compass/IMU heading after fusion; at the junction itself (2-3 m ahead) it is 0.15-0.2 m.
    - 100 ms at 2 m/s is 0.2 m of travel: a 10 Hz receiver's fix latency plus a serial line; the model
      learns it because training draws it.
    - 10 Hz is the usual navigation rate of u-blox M8/M9/F9 receivers and of simple odometry publishers.
    """

    position_m: float = 0.25
    heading_deg: float = 4.0
    delay_ms: float = 100.0
    rate_hz: float = 10.0

    def __post_init__(self) -> None:
        for name in ("position_m", "heading_deg", "delay_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"pose noise {name} must be a finite number >= 0, got: {v!r}")
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"pose rate_hz must be > 0, got: {self.rate_hz!r}")

    def scaled(self, k: float) -> PoseNoise:
        """``k`` times the position and heading errors (0 = a perfect position and heading). The delay and the
        rate are kept: they are their own axis (``dataclasses.replace(noise, delay_ms=...)``)."""
        if not (math.isfinite(k) and k >= 0):
            raise ValueError(f"pose noise scale must be >= 0, got: {k!r}")
        return dataclasses.replace(self, position_m=self.position_m * k, heading_deg=self.heading_deg * k)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PoseNoise:
        """Build from :meth:`to_dict`'s form; unknown keys ignored, missing ones default. ValueError if malformed."""
        if not isinstance(d, dict):
            raise TypeError(f"pose noise must be a JSON object, got: {type(d).__name__}")
        try:
            return cls(**{f.name: float(d[f.name]) for f in dataclasses.fields(cls) if f.name in d})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pose noise is malformed: {exc}") from exc


BIAS_TAU_S = 5.0  # correlation time of the slowly varying part of the pose error (GPS multipath, odometry drift)
_BIAS_SHARE = 0.75  # share of the error variance that is the slow bias; the rest is white per update


def wrap_angle(a: float) -> float:
    """``a`` radians wrapped to [-pi, pi) (unchanged, bit for bit, when it already is)."""
    if -math.pi <= a < math.pi:
        return a
    return (a + math.pi) % (2 * math.pi) - math.pi


class PoseEstimator:
    """What the car believes its pose is, given the true pose each tick: delayed, sampled, noisy.

    The receiver takes a measurement at every multiple of ``1 / rate_hz`` seconds (an absolute time grid), of the
    newest true pose fed at or before that instant, plus noise (a Gauss-Markov bias of correlation time
    :data:`BIAS_TAU_S` plus a white part, per axis and for the heading); the car gets it ``delay_ms`` later and
    keeps it until the next. Deterministic given ``rng``'s state and the call sequence (each measurement's noise
    is drawn once, in time order).

    Args:
        noise: the error model.
        rng: the random stream (the caller's: data generation and the simulator use their own streams).
    """

    def __init__(self, noise: PoseNoise, rng: np.random.Generator) -> None:
        self.noise, self.rng = noise, rng
        self._times: list[float] = []
        self._poses: list[tuple[float, float, float]] = []
        self._noise: dict[int, np.ndarray] = {}  # measurement index -> its noise, in index order
        self._next_index: int | None = None  # next measurement index whose noise is not drawn yet
        self._bias = np.zeros(3)
        dt = 1.0 / noise.rate_hz
        self._a = math.exp(-dt / BIAS_TAU_S)
        sig = np.array([noise.position_m, noise.position_m, math.radians(noise.heading_deg)])
        self._sig_bias = sig * math.sqrt(_BIAS_SHARE)
        self._sig_white = sig * math.sqrt(1.0 - _BIAS_SHARE)

    def update(self, t: float, true_pose: tuple[float, float, float]) -> None:
        """Feed the true pose ``(x, y, heading)`` (metres, radians) at time ``t`` (seconds, non-decreasing)."""
        if self._times and t < self._times[-1]:
            raise ValueError(f"pose updates must come in time order: {t} after {self._times[-1]}")
        self._times.append(float(t))
        self._poses.append((float(true_pose[0]), float(true_pose[1]), float(true_pose[2])))
        # Keep what a measurement can still need: the delay plus two update periods, and a second of slack.
        horizon = self._times[-1] - self.noise.delay_ms / 1e3 - 2.0 / self.noise.rate_hz - 1.0
        if len(self._times) > 256 and self._times[128] < horizon:
            del self._times[:128], self._poses[:128]

    def _noise_for(self, k: int) -> np.ndarray:
        """The noise (dx, dy, dheading) of measurement ``k``, drawing every measurement up to it in order."""
        if self._next_index is None:  # the first measurement: the bias from its stationary distribution
            self._bias = self.rng.standard_normal(3) * self._sig_bias
            self._noise[k] = self._bias + self._sig_white * self.rng.standard_normal(3)
            self._next_index = k + 1
        while self._next_index <= k:
            step = math.sqrt(1.0 - self._a**2) * self._sig_bias * self.rng.standard_normal(3)
            self._bias = self._a * self._bias + step
            self._noise[self._next_index] = self._bias + self._sig_white * self.rng.standard_normal(3)
            self._next_index += 1
        while len(self._noise) > 4096:  # measurements far in the past are not asked for again
            self._noise.pop(next(iter(self._noise)))
        return self._noise.get(k, next(iter(self._noise.values())))

    def estimate(self, t: float) -> tuple[float, float, float] | None:
        """The pose ``(x, y, heading)`` the car believes at time ``t`` (seconds): the newest measurement taken at
        or before ``t - delay``, of the newest true pose fed at or before that instant, with its noise; None
        before the first. Repeated calls for the same measurement give the same pose."""
        rate = self.noise.rate_hz
        k = math.floor((t - self.noise.delay_ms / 1e3) * rate + 1e-9)
        i = bisect.bisect_right(self._times, k / rate + 1e-9) - 1
        if i < 0:
            return None
        n = self._noise_for(k)
        x, y, h = self._poses[i]
        return (x + float(n[0]), y + float(n[1]), wrap_angle(h + float(n[2])))

    def one_shot(self, true_pose: tuple[float, float, float], speed_mps: float) -> tuple[float, float, float]:
        """The believed pose for a single frame without a trajectory (data generation): the true pose moved back
        along its heading by ``speed * age`` (age = delay plus a uniform share of one update period), plus the
        whole error (bias and white part together: one draw of each axis at the full 1-sigma)."""
        x, y, h = (float(v) for v in true_pose)
        age = self.noise.delay_ms / 1e3 + float(self.rng.uniform(0.0, 1.0 / self.noise.rate_hz))
        back = max(0.0, float(speed_mps)) * age
        n = self.rng.standard_normal(3) * np.array(
            [self.noise.position_m, self.noise.position_m, math.radians(self.noise.heading_deg)])
        return (x - back * math.cos(h) + float(n[0]), y - back * math.sin(h) + float(n[1]), wrap_angle(h + float(n[2])))


# ------------------------------------------------------------------------------------------------ network, route


def _points(value: Any) -> np.ndarray:
    pts = np.asarray(value, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2 or not np.isfinite(pts).all():
        raise ValueError("points must be a list of at least two finite [x, y] pairs")
    return np.ascontiguousarray(pts)


def _distinct(pts: np.ndarray) -> np.ndarray:
    """``pts`` without consecutive repeats (a zero-length segment has no direction to widen it by)."""
    keep = np.ones(len(pts), bool)
    keep[1:] = np.hypot(*np.diff(pts, axis=0).T) > 1e-9
    out = pts[keep]
    return out if len(out) >= 2 else np.array([pts[0], pts[0] + (1e-6, 0.0)])


DRAW_TOLERANCE_M = 0.01  # a line is drawn through fewer points, none further than this from the original


def simplify(pts: np.ndarray, tolerance: float = DRAW_TOLERANCE_M) -> np.ndarray:
    """Ramer-Douglas-Peucker: a subset of ``pts`` (float64 (N, 2), first and last kept) whose polyline is nowhere
    further than ``tolerance`` metres from the original. A road sampled every 5 cm draws with a handful of
    segments instead of hundreds (what makes :func:`rasterise` fast), at 1/12 of a pixel of error."""
    keep = np.zeros(len(pts), bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, seg = pts[i], pts[j] - pts[i]
        rel = pts[i + 1 : j] - a
        norm = math.hypot(seg[0], seg[1])
        if norm < 1e-12:
            dist = np.hypot(rel[:, 0], rel[:, 1])
        else:
            dist = np.abs(rel[:, 0] * seg[1] - rel[:, 1] * seg[0]) / norm
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            m = i + 1 + k
            keep[m] = True
            stack += [(i, m), (m, j)]
    return np.ascontiguousarray(pts[keep])


@dataclass(frozen=True, eq=False)
class Edge:
    """One road between two nodes.

    Attributes:
        id: the edge's name.
        a, b: node ids at its ends.
        points: float64 (N, 2), the road CENTRE line from ``a`` to ``b``, world metres (N >= 2).
        half_width: lane half-width, metres (the drivable surface is ``4 * half_width`` wide).
    """

    id: str
    a: str
    b: str
    points: np.ndarray
    half_width: float

    _draw: np.ndarray = field(init=False, repr=False, compare=False)  # simplify(points), what rasterise draws

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", _points(self.points))
        if not (math.isfinite(self.half_width) and self.half_width > 0):
            raise ValueError(f"edge {self.id}: half_width must be > 0 metres, got: {self.half_width!r}")
        object.__setattr__(self, "_draw", simplify(_distinct(self.points)))


@dataclass(frozen=True, eq=False)
class RoadNetwork:
    """What the device needs of a road network: plain arrays, no graph library.

    Attributes:
        nodes: node id -> (x, y) world metres.
        edges: the roads (:class:`Edge`).
        origin: ``(lat, lon)`` in degrees of the local (0, 0), for NMEA poses (x = east, y = north); None when
            the network is in local metres only.
    """

    nodes: dict[str, tuple[float, float]]
    edges: tuple[Edge, ...]
    origin: tuple[float, float] | None = None
    _bounds: np.ndarray = field(init=False, repr=False, compare=False)  # (E, 4): min x, min y, max x, max y
    _by_pair: dict[frozenset, Edge] = field(init=False, repr=False, compare=False)
    _disks: np.ndarray = field(init=False, repr=False, compare=False)  # (K, 3): x, y, radius of junction areas
    _cache: dict = field(init=False, repr=False, compare=False)  # rasterise's outlines, per map scale

    def __post_init__(self) -> None:
        object.__setattr__(self, "edges", tuple(self.edges))
        if self.edges:
            b = np.array([[*e.points.min(0) - 2 * e.half_width, *e.points.max(0) + 2 * e.half_width]
                          for e in self.edges])
        else:
            b = np.zeros((0, 4))
        object.__setattr__(self, "_bounds", b)
        object.__setattr__(self, "_by_pair", {frozenset((e.a, e.b)): e for e in self.edges})
        # Where two or more roads meet, a disk of the road's width fills the corners between their strips.
        meet: dict[str, list[float]] = {}
        for e in self.edges:
            for end in (e.a, e.b):
                meet.setdefault(end, []).append(e.half_width)
        disks = [(*self.nodes[k], 2 * max(w)) for k, w in meet.items() if len(w) >= 2 and k in self.nodes]
        object.__setattr__(self, "_disks", np.array(disks, np.float64).reshape(-1, 3))
        object.__setattr__(self, "_cache", {})

    def edge_between(self, a: str, b: str) -> Edge | None:
        """The edge joining nodes ``a`` and ``b`` (either direction), or None."""
        return self._by_pair.get(frozenset((a, b)))

    def distance_to_road(self, x: float, y: float) -> float:
        """Metres from ``(x, y)`` to the nearest road centre line (0 with no edges... inf)."""
        best = math.inf
        p = np.array([x, y])
        for e in self.edges:
            a, b = e.points[:-1], e.points[1:]
            d = b - a
            ll = np.maximum((d * d).sum(1), 1e-18)
            t = np.clip(((p - a) * d).sum(1) / ll, 0.0, 1.0)
            q = a + t[:, None] * d
            best = min(best, float(np.sqrt(((q - p) ** 2).sum(1)).min()))
        return best


@dataclass(frozen=True, eq=False)
class Route:
    """A planned path through a :class:`RoadNetwork`.

    Attributes:
        start, goal: node ids (the goal may also be a point: ``"x,y"`` as given in the file, see :func:`load_route`).
        nodes: node path ``start .. goal``; consecutive nodes share an edge.
        points: float64 (M, 2), the DRIVING line along the route (right-lane centre, with the junction turns).
        junctions: one dict per junction passed: ``node``, ``kind`` (``"T"``, ``"cross"``, ``"fork"``), ``s``
            (arc length of the junction centre along ``points``, m), ``branch`` (``"left"``, ``"straight"``,
            ``"right"``), ``options`` (the branches that junction offers), and in routes planned by
            :mod:`edgecnn.sim.network` ``turn_in``, ``turn_out`` (arc length where the route's turning arc there
            starts and ends, m; None when it goes straight on).
    """

    start: str
    goal: str
    nodes: tuple[str, ...]
    points: np.ndarray
    junctions: tuple[dict, ...] = ()
    _draw: np.ndarray = field(init=False, repr=False, compare=False)  # simplify(points), what rasterise draws
    _cache: dict = field(init=False, repr=False, compare=False)  # rasterise's outline, per width and map scale

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cache", {})
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "points", _points(self.points))
        object.__setattr__(self, "_draw", simplify(_distinct(self.points)))
        object.__setattr__(self, "junctions", tuple(dict(j) for j in self.junctions))


def start_heading(route: Route, over_m: float = 0.5) -> float:
    """The route's direction at its start, radians CCW from +x: from its first point to the first one at least
    ``over_m`` metres away (the last one when the route is shorter)."""
    d = np.hypot(*(route.points - route.points[0]).T)
    far = np.flatnonzero(d >= over_m)
    p = route.points[far[0] if len(far) else -1] - route.points[0]
    return math.atan2(float(p[1]), float(p[0]))


def route_half_width(network: RoadNetwork, route: Route) -> float:
    """The lane half-width the route channel is drawn with: the mean over the route's edges (metres)."""
    widths = [e.half_width for a, b in itertools.pairwise(route.nodes)
              if (e := network.edge_between(a, b)) is not None]
    if widths:
        return float(sum(widths) / len(widths))
    return float(np.mean([e.half_width for e in network.edges])) if network.edges else 0.4


# ----------------------------------------------------------------------------------------------------- geodesy


def latlon_to_local(lat: float, lon: float, origin: tuple[float, float]) -> tuple[float, float]:
    """Degrees -> local metres ``(x east, y north)`` around ``origin`` (lat, lon): a tangent-plane
    (equirectangular) approximation, good to millimetres over the few hundred metres of a Donkey Car course."""
    lat0, lon0 = origin
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
    x = math.radians(dlon) * EARTH_RADIUS_M * math.cos(math.radians(lat0))
    y = math.radians(lat - lat0) * EARTH_RADIUS_M
    return x, y


def local_to_latlon(x: float, y: float, origin: tuple[float, float]) -> tuple[float, float]:
    """The inverse of :func:`latlon_to_local`."""
    lat0, lon0 = origin
    lat = lat0 + math.degrees(y / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(x / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return lat, lon


# ---------------------------------------------------------------------------------------------------- rasterise


def _to_pixels(pts: np.ndarray, pose: tuple[float, float, float], spec: MapSpec) -> np.ndarray:
    """World points (N, 2) -> cv2 pixel coordinates ``float64 (N, 2)`` (column, row).

    Continuous pixel coordinates put pixel ``(r, c)`` over ``[r, r+1) x [c, c+1)``; cv2's coordinate ``v`` is the
    centre of pixel ``v``, hence the half-pixel shift."""
    x, y, h = pose
    c, s = math.cos(h), math.sin(h)
    dx, dy = pts[:, 0] - x, pts[:, 1] - y
    ppm = spec.pixels_per_m
    row0, col0 = spec.car_pixel
    out = np.empty((len(pts), 2), np.float64)
    out[:, 0] = col0 - 0.5 - (-dx * s + dy * c) * ppm  # left of the car = left of the image
    out[:, 1] = row0 - 0.5 - (dx * c + dy * s) * ppm  # ahead = up
    return out


def _fixed(px: np.ndarray) -> np.ndarray:
    """Float cv2 coordinates -> int32 with ``_SHIFT`` fractional bits (far points clipped into cv2's range)."""
    return np.rint(np.clip(px * _ONE, -(1 << 26), 1 << 26)).astype(np.int32)


def _outline(pts: np.ndarray, half: float) -> np.ndarray:
    """The outline of the polyline ``pts`` (float64 (N, 2), N >= 2) widened by ``half`` either side with mitred
    joins (mitres capped at twice ``half`` for sharp corners): float64 (2N, 2), one side then the other back."""
    seg = np.diff(pts, axis=0)
    seg /= np.maximum(np.hypot(seg[:, 0], seg[:, 1]), 1e-12)[:, None]
    normal = np.c_[-seg[:, 1], seg[:, 0]]
    vn = np.empty_like(pts)
    vn[0], vn[-1] = normal[0], normal[-1]
    if len(pts) > 2:
        mid = normal[:-1] + normal[1:]
        mid /= np.maximum(np.hypot(mid[:, 0], mid[:, 1]), 1e-12)[:, None]
        vn[1:-1] = mid / np.maximum((mid * normal[1:]).sum(1), 0.5)[:, None]
    off = vn * half
    return np.concatenate([pts + off, (pts - off)[::-1]])


def _inset(half_m: float, ppm: float) -> float:
    """The outline's half-width for a strip ``2 * half_m`` wide: OpenCV's fillPoly paints the pixels whose centre is
    inside the outline and those of the outline's own 8-connected line, so a strip ``w`` pixels wide would paint
    about ``w + 1``; drawn half a pixel narrower on each side it paints about ``w``, its edges good to about a pixel
    (a thick cv2 polyline would instead round its width to an odd number of pixels and its position to a whole
    pixel)."""
    return max(half_m - 0.5 / ppm, 0.0)


def _road_outlines(network: RoadNetwork, ppm: float) -> tuple[np.ndarray, np.ndarray]:
    """Every edge's drivable-surface outline in world metres, concatenated, and each edge's ``(start, stop)`` rows;
    computed once per network and map scale (the outline does not depend on the pose)."""
    got = network._cache.get(("roads", ppm))
    if got is None:
        outlines = [_outline(e._draw, _inset(2 * e.half_width, ppm)) for e in network.edges]
        stops = np.cumsum([len(o) for o in outlines])
        spans = np.c_[stops - [len(o) for o in outlines], stops]
        got = network._cache[("roads", ppm)] = (np.concatenate(outlines) if outlines else np.zeros((0, 2)), spans)
    return got


def _route_outline(network: RoadNetwork, route: Route, ppm: float) -> np.ndarray:
    half = route_half_width(network, route)
    got = route._cache.get((half, ppm))
    if got is None:
        got = route._cache[(half, ppm)] = _outline(route._draw, _inset(half, ppm))
    return got


def _view_circle(pose: tuple[float, float, float], spec: MapSpec) -> tuple[float, float, float]:
    """Centre (x, y) and radius (m) of the circle around the raster square, in the world."""
    x, y, h = pose
    ahead = spec.extent_m / 2 - spec.behind_m
    return x + ahead * math.cos(h), y + ahead * math.sin(h), spec.extent_m / math.sqrt(2.0)


def rasterise(network: RoadNetwork, route: Route | None, pose: tuple[float, float, float], spec: MapSpec,
              out: np.ndarray | None = None) -> np.ndarray:
    """The map input around ``pose``: ``uint8 (size, size, len(spec.channels))``, each value 0 or 255.

    Args:
        network: the roads.
        route: the planned route (needed when ``spec.channels`` has ``"route"``; None leaves that channel empty).
        pose: ``(x, y, heading)``, world metres and radians: where the car believes it is.
        spec: size, extent, position of the car and channels.
        out: ``uint8 (size, size, C)`` C-contiguous to draw into (no allocation), or None.

    ``"roads"``: every edge's centre line widened to ``4 * half_width`` (the drivable surface, both lanes), plus
    a disk of that diameter at each node where roads meet (junction areas without notches); ``"route"``: the
    route's driving line widened to ``2 * half_width`` (the right lane). Heading up, the car at
    :attr:`MapSpec.car_pixel`, left on the left. No anti-aliasing: values are exactly 0 or 255, so the int8 model
    input is exact. Lines are drawn through their :func:`simplify` points at sub-pixel precision (OpenCV fixed
    point, 1/16 pixel); only edges whose bounding box meets the view are drawn.
    """
    n, shape = spec.size, (spec.size, spec.size, len(spec.channels))
    if out is None:
        out = np.zeros(shape, np.uint8)
    elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous uint8 array of shape {shape}, got {out.dtype} {out.shape}")
    cx, cy, radius = _view_circle(pose, spec)
    ppm = spec.pixels_per_m
    canvas = n + 2 * _PAD
    planes = [np.zeros((canvas, canvas), np.uint8) for _ in spec.channels]
    for k, name in enumerate(spec.channels):
        img = planes[k]
        if name == "roads":
            b = network._bounds
            hit = np.flatnonzero((b[:, 0] <= cx + radius) & (b[:, 2] >= cx - radius)
                                 & (b[:, 1] <= cy + radius) & (b[:, 3] >= cy - radius))
            if not len(hit):
                continue
            outline, spans = _road_outlines(network, ppm)
            if len(hit) < len(spans):  # only the edges in view
                parts = [outline[a:z] for a, z in spans[hit]]
                outline = np.concatenate(parts)
                stops = np.cumsum([len(p) for p in parts])
                spans = np.c_[stops - [len(p) for p in parts], stops]
            px = _fixed(_to_pixels(outline, pose, spec) + _PAD)  # one transform for every edge in view
            for a, z in spans:  # one fillPoly each: OpenCV fills overlapping polygons of one call even-odd
                cv2.fillPoly(img, [px[a:z]], 255, cv2.LINE_8, _SHIFT)
            disks = network._disks
            if len(disks):
                near = (disks[:, 0] - cx) ** 2 + (disks[:, 1] - cy) ** 2 <= (radius + disks[:, 2]) ** 2
                if near.any():
                    centres = _fixed(_to_pixels(disks[near, :2], pose, spec) + _PAD)
                    for (u, v), r in zip(centres, disks[near, 2]):
                        cv2.circle(img, (int(u), int(v)), max(round((r * ppm - 0.5) * _ONE), 0), 255, -1,
                                   cv2.LINE_8, _SHIFT)
        elif name == "route" and route is not None:
            px = _fixed(_to_pixels(_route_outline(network, route, ppm), pose, spec) + _PAD)
            cv2.fillPoly(img, [px], 255, cv2.LINE_8, _SHIFT)
    crops = [p[_PAD : _PAD + n, _PAD : _PAD + n] for p in planes]
    if len(crops) == 1:
        out.reshape(n, n)[...] = crops[0]
    else:
        cv2.merge(crops, dst=out)
    return out


# -------------------------------------------------------------------------------------------------- route files


def route_to_dict(network: RoadNetwork, route: Route) -> dict[str, Any]:
    """The ``edgecnn-route-1`` JSON object for ``network`` and ``route`` (floats exact: they read back bit for bit,
    so a map drawn from the file equals the one drawn from memory)."""
    def pts(a: np.ndarray) -> list[list[float]]:
        return [[float(p[0]), float(p[1])] for p in a]

    return {
        "format": ROUTE_FORMAT,
        "units": "m",
        "origin": None if network.origin is None else [float(network.origin[0]), float(network.origin[1])],
        "nodes": {k: [float(v[0]), float(v[1])] for k, v in network.nodes.items()},
        "edges": [{"id": e.id, "a": e.a, "b": e.b, "half_width": float(e.half_width), "points": pts(e.points)}
                  for e in network.edges],
        "route": {"start": route.start, "goal": _goal_out(route.goal), "nodes": list(route.nodes),
                  "points": pts(route.points), "junctions": [dict(j) for j in route.junctions]},
    }


def _goal_out(goal: str) -> Any:
    if goal.startswith("@"):  # a point goal, kept as "@x,y" in memory
        x, y = goal[1:].split(",")
        return [float(x), float(y)]
    return goal


def save_route(path: str | os.PathLike, network: RoadNetwork, route: Route) -> Path:
    """Write a route file atomically (the user's umask modes); returns the path."""
    return write_text(path, json.dumps(route_to_dict(network, route), separators=(",", ":"), allow_nan=False) + "\n")


class _Bad(ValueError):
    """What is wrong with a route file (one line); :func:`load_route` turns it into a DataError."""


def _xy(value: Any, what: str) -> tuple[float, float]:
    try:
        if isinstance(value, (str, bytes, bool)) or len(value) != 2:
            raise ValueError
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise _Bad(f"{what} must be [x, y] in metres, got: {json.dumps(value)[:60]}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise _Bad(f"{what} must be finite, got: {json.dumps(value)[:60]}")
    return x, y


def _parse(d: Any) -> tuple[RoadNetwork, Route]:
    """The checks of :func:`load_route`; ValueError with the one-line reason."""
    if not isinstance(d, dict):
        raise _Bad(f"not an edgecnn route file (a JSON {type(d).__name__}, expected an object)")
    if d.get("format") != ROUTE_FORMAT:
        got = d.get("format")
        raise _Bad(f"not an edgecnn route file (format {got!r}, expected {ROUTE_FORMAT!r})")
    if d.get("units", "m") != "m":
        raise _Bad(f"units must be 'm' (local metres), got: {d.get('units')!r}")
    origin = d.get("origin")
    if origin is not None:
        lat, lon = _xy(origin, "origin")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise _Bad(f"origin must be [lat, lon] in degrees, got: {origin}")
        origin = (lat, lon)
    nodes_in = d.get("nodes")
    if not isinstance(nodes_in, dict) or not nodes_in:
        raise _Bad("'nodes' must be an object of node id -> [x, y]")
    nodes = {str(k): _xy(v, f"node {k}") for k, v in nodes_in.items()}
    edges_in = d.get("edges")
    if not isinstance(edges_in, list) or not edges_in:
        raise _Bad("'edges' must be a non-empty list")
    edges, seen = [], set()
    for i, e in enumerate(edges_in):
        if not isinstance(e, dict):
            raise _Bad(f"edge #{i} must be an object")
        eid = str(e.get("id", f"#{i}"))
        if eid in seen:
            raise _Bad(f"edge {eid} appears twice")
        seen.add(eid)
        for end in ("a", "b"):
            if end not in e:
                raise _Bad(f"edge {eid} has no '{end}' node")
            if str(e[end]) not in nodes:
                raise _Bad(f"edge {eid} names unknown node {str(e[end])!r}")
        try:
            hw = float(e.get("half_width"))
        except (TypeError, ValueError):
            raise _Bad(f"edge {eid}: half_width must be a number of metres, got: {e.get('half_width')!r}") \
                from None
        if not (math.isfinite(hw) and hw > 0):
            raise _Bad(f"edge {eid}: half_width must be > 0 metres, got: {e.get('half_width')!r}")
        try:
            pts = _points(e.get("points"))
        except (TypeError, ValueError):
            raise _Bad(f"edge {eid}: points must be a list of at least two finite [x, y] pairs") from None
        edges.append(Edge(eid, str(e["a"]), str(e["b"]), pts, hw))
    network = RoadNetwork(nodes, tuple(edges), origin)
    r = d.get("route")
    if not isinstance(r, dict):
        raise _Bad("no 'route' object (the network alone is not a route file)")
    start = str(r.get("start"))
    if start not in nodes:
        raise _Bad(f"route start {r.get('start')!r} is not a node of the network")
    path = r.get("nodes")
    if not isinstance(path, list) or not path:
        raise _Bad("route 'nodes' must be a non-empty list of node ids")
    path = [str(p) for p in path]
    for p in path:
        if p not in nodes:
            raise _Bad(f"route node {p!r} is not a node of the network")
    if path[0] != start:
        raise _Bad(f"route nodes begin at {path[0]!r}, not at its start {start!r}")
    for a, b in itertools.pairwise(path):
        if network.edge_between(a, b) is None:
            raise _Bad(f"route {a} -> {b}: no road joins them")
    goal_in = r.get("goal")
    if isinstance(goal_in, (list, tuple)):
        gx, gy = _xy(goal_in, "goal")
        dist = network.distance_to_road(gx, gy)
        reach = 2 * max(e.half_width for e in edges)
        if dist > reach:
            raise _Bad(f"goal [{gx}, {gy}] is {dist:.1f} m from the nearest road")
        goal = f"@{gx!r},{gy!r}"
    else:
        goal = str(goal_in)
        if goal not in nodes:
            raise _Bad(f"route goal {goal_in!r} is not a node of the network (give a node id or [x, y])")
        if path[-1] != goal:
            raise _Bad(f"route nodes end at {path[-1]!r}, not at its goal {goal!r}")
    try:
        points = _points(r.get("points"))
    except (TypeError, ValueError):
        raise _Bad("route points must be a list of at least two finite [x, y] pairs") from None
    junctions = r.get("junctions", [])
    if not isinstance(junctions, list) or not all(isinstance(j, dict) for j in junctions):
        raise _Bad("route 'junctions' must be a list of objects")
    for j in junctions:
        if j.get("kind") not in JUNCTION_KINDS or j.get("branch") not in BRANCHES:
            raise _Bad(f"route junction {json.dumps(j)[:80]}: kind must be one of {JUNCTION_KINDS} and "
                             f"branch one of {BRANCHES}")
    return network, Route(start, goal, tuple(path), points, tuple(junctions))


def load_route(path: str | os.PathLike) -> tuple[RoadNetwork, Route]:
    """Read and check a route file (``edgecnn-route-1``): the network and its route.

    Raises DataError (one line, naming the file) when it is missing, not JSON, not a route file, has an edge
    naming an unknown node, a route whose consecutive nodes no road joins (``n3 -> n5: no road joins them``),
    or a goal off the network (``goal [12.0, 3.0] is 4.2 m from the nearest road``; a goal is a node id or a
    point ``[x, y]`` within the drivable surface).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_ROUTE_FILE_BYTES:
            raise DataError(f"{path}: {size / 2**20:.0f} MiB is too large for a route file")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such route file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a route file (.json)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a route file (not UTF-8 text)") from None
    try:
        d = json.loads(text)
    except ValueError as exc:
        raise DataError(f"{path}: not a route file (not JSON: {exc})") from None
    try:
        return _parse(d)
    except _Bad as exc:
        raise DataError(f"{path}: {exc}") from None
