"""Where the car believes it is: pose sources for ``edgecnn steer --route FILE --pose SOURCE`` (no TensorFlow).

A route-conditioned model needs the car's pose for every frame, to draw its map (:func:`edgecnn.navmap.rasterise`).
A :class:`PoseSource` reads poses on a background thread and keeps only the newest one with the monotonic time it
was received; the steering loop asks :meth:`PoseSource.newest` per frame and applies the stale-pose rule
(:func:`edgecnn.runtime.failsafe.is_pose_stale`). Sources (``--pose``):

- ``udp://[HOST]:PORT``: JSON lines ``{"x": m, "y": m, "heading": rad, "time": s}`` in the route file's local
  metres, heading counter-clockwise from +x (odometry, or the simulator). One or more lines per datagram.
- ``nmea+udp://[HOST]:PORT``: NMEA 0183 sentences (a GPS bridged to UDP, e.g. by gpsd's ``gpspipe -r`` and socat).
- ``nmea+serial:///dev/ttyUSB0?baud=9600``: NMEA from a GPS receiver on a serial port (pyserial: the ``car`` extra).

UDP sockets bind 127.0.0.1 unless a host is given (``udp://0.0.0.0:5006`` listens on every interface).

NMEA: ``GGA`` and ``RMC`` sentences of any talker (``GP``, ``GN``, ...), checksum required; latitude/longitude go
to local metres around the route file's ``origin`` (:func:`edgecnn.navmap.latlon_to_local`; x east, y north). The
heading comes from RMC's course over ground while the car moves faster than :data:`COURSE_MIN_SPEED_MPS`
(a receiver's course is noise when standing), else from the direction between successive fixes at least
:data:`HEADING_MIN_TRAVEL_M` apart; until one of them is known, the ``initial_heading`` given to
:func:`open_pose` (``steer`` passes the route's direction at its start: a car standing at the start of its route
faces along it, and a GPS gives no heading before the car moves) is used, and without one the fix is not a pose.
A fix without a position (GGA quality 0, RMC status V) is no pose either.

A line that is not a pose (bad JSON, a wrong checksum, missing fields, a non-finite number) is counted in
:attr:`PoseSource.skipped` and skipped, never a traceback; the first few are reported through ``warn``.

Example::

    with open_pose("udp://127.0.0.1:5006") as poses:
        pose = poses.newest()          # Pose(x, y, heading, received=monotonic seconds, ...) or None
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from edgecnn.errors import OptionError, SourceError
from edgecnn.navmap import latlon_to_local, wrap_angle
from edgecnn.runtime.addresses import split_host_port

COURSE_MIN_SPEED_MPS = 0.5  # below this, RMC's course over ground is not trusted
HEADING_MIN_TRAVEL_M = 0.3  # successive fixes closer than this give no heading (GPS jitter would swing it)
KNOTS = 0.514444  # m/s per knot
_WARN_FIRST = 3  # garbage lines reported through warn (the rest are only counted)
_MAX_LINE = 4096  # a longer line is not a pose


@dataclass(frozen=True)
class Pose:
    """One pose as the car received it.

    Attributes:
        x, y: position in the route file's local metres (x east, y north for NMEA).
        heading: radians counter-clockwise from +x (east), in [-pi, pi).
        received: ``time.monotonic()`` when it arrived (the stale-pose rule's clock).
        time: the sender's timestamp in seconds (JSON ``time``; NMEA: seconds of the UTC day), or None.
    """

    x: float
    y: float
    heading: float
    received: float
    time: float | None = None

    @property
    def xyh(self) -> tuple[float, float, float]:
        return (self.x, self.y, self.heading)


# ---------------------------------------------------------------------------------------------- pure parsing


class NotAPose(ValueError):
    """A line that is not a pose (the source counts it as skipped)."""


def parse_json_pose(line: str | bytes) -> tuple[float, float, float, float | None]:
    """One JSON line ``{"x", "y", "heading"[, "time"]}`` -> ``(x, y, heading, time)``; ValueError when it is not
    one (not JSON, not an object, a missing or non-finite number)."""
    try:
        d = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAPose(f"not JSON ({exc})") from None
    if not isinstance(d, dict):
        raise NotAPose(f"expected a JSON object, got {type(d).__name__}")
    out = []
    for k in ("x", "y", "heading"):
        v = d.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise NotAPose(f"{k!r} must be a finite number, got {v!r}")
        out.append(float(v))
    t = d.get("time")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t)):
        raise NotAPose(f"'time' must be a finite number, got {t!r}")
    return out[0], out[1], wrap_angle(out[2]), None if t is None else float(t)


@dataclass(frozen=True)
class NmeaFix:
    """What one GGA or RMC sentence says.

    Attributes:
        kind: ``"GGA"`` or ``"RMC"``.
        time: seconds of the UTC day, or None.
        lat, lon: degrees (north and east positive), or None when the sentence has no valid position.
        speed_mps: speed over ground (RMC), or None.
        course_deg: course over ground, degrees clockwise from true north (RMC), or None.
    """

    kind: str
    time: float | None
    lat: float | None
    lon: float | None
    speed_mps: float | None = None
    course_deg: float | None = None


def _checksum_ok(sentence: str) -> bool:
    body, star, given = sentence[1:].partition("*")
    if not star or len(given.strip()) != 2:
        return False
    calc = 0
    for ch in body:
        calc ^= ord(ch)
    try:
        return calc == int(given.strip(), 16)
    except ValueError:
        return False


def _degrees(value: str, hemi: str, width: int) -> float:
    """``ddmm.mmmm`` (``width`` = 2 for latitude, 3 for longitude) and N/S/E/W -> signed degrees."""
    if len(value) < width + 2 or hemi not in ("N", "S", "E", "W"):
        raise NotAPose(f"bad coordinate {value!r} {hemi!r}")
    deg = int(value[:width]) + float(value[width:]) / 60.0
    limit = 90.0 if width == 2 else 180.0
    if not (0 <= deg <= limit) or float(value[width:]) >= 60:
        raise NotAPose(f"coordinate out of range: {value!r}")
    return -deg if hemi in ("S", "W") else deg


def _utc_seconds(value: str) -> float | None:
    if len(value) < 6:
        return None
    return int(value[0:2]) * 3600 + int(value[2:4]) * 60 + float(value[4:])


def parse_nmea(line: str | bytes) -> NmeaFix | None:
    """One NMEA 0183 sentence -> :class:`NmeaFix` for GGA and RMC; None for a valid sentence of another type (GSV,
    VTG, ...: not an error). ValueError when the line is not a valid sentence (no ``$``, a wrong or missing
    checksum, bad fields)."""
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    s = line.strip()
    if not s.startswith("$") or len(s) > 100:  # NMEA 0183 sentences are at most 82 characters
        raise NotAPose("not an NMEA sentence")
    if not _checksum_ok(s):
        raise NotAPose("bad or missing NMEA checksum")
    fields = s[1:].partition("*")[0].split(",")
    kind = fields[0][2:] if len(fields[0]) == 5 else fields[0]
    try:
        if kind == "GGA":
            if len(fields) < 7:
                raise NotAPose("short GGA sentence")
            t = _utc_seconds(fields[1])
            if not fields[6] or int(fields[6]) == 0 or not fields[2]:  # fix quality 0: no position
                return NmeaFix("GGA", t, None, None)
            return NmeaFix("GGA", t, _degrees(fields[2], fields[3], 2), _degrees(fields[4], fields[5], 3))
        if kind == "RMC":
            if len(fields) < 9:
                raise NotAPose("short RMC sentence")
            t = _utc_seconds(fields[1])
            if fields[2] != "A" or not fields[3]:
                return NmeaFix("RMC", t, None, None)
            speed = float(fields[7]) * KNOTS if fields[7] else None
            course = float(fields[8]) if fields[8] else None
            return NmeaFix("RMC", t, _degrees(fields[3], fields[4], 2), _degrees(fields[5], fields[6], 3), speed,
                           course)
    except (ValueError, IndexError) as exc:
        raise NotAPose(f"bad {kind} sentence ({exc})") from None
    return None


class NmeaTracker:
    """Turns NMEA fixes into poses in local metres: position from the route file's origin, heading from RMC's
    course while moving, else from successive fixes (see the module docstring). Pure: no clock, no I/O.

    Args:
        origin: ``(lat, lon)`` degrees of the local (0, 0) (the route file's ``origin``).
        initial_heading: radians, assumed until the fixes give a heading; None: no pose until then.
    """

    def __init__(self, origin: tuple[float, float], initial_heading: float | None = None) -> None:
        self.origin = origin
        self.heading: float | None = None if initial_heading is None else wrap_angle(float(initial_heading))
        self._anchor: tuple[float, float] | None = None  # the last fix a travel heading was measured from

    def update(self, fix: NmeaFix) -> tuple[float, float, float, float | None] | None:
        """``(x, y, heading, time)`` for a fix with a position once a heading is known; else None."""
        if fix.lat is None or fix.lon is None:
            return None
        x, y = latlon_to_local(fix.lat, fix.lon, self.origin)
        if fix.course_deg is not None and fix.speed_mps is not None and fix.speed_mps >= COURSE_MIN_SPEED_MPS:
            self.heading = wrap_angle(math.radians(90.0 - fix.course_deg))  # clockwise from north -> CCW from east
            self._anchor = (x, y)
        elif self._anchor is None:
            self._anchor = (x, y)
        else:
            dx, dy = x - self._anchor[0], y - self._anchor[1]
            if math.hypot(dx, dy) >= HEADING_MIN_TRAVEL_M:
                self.heading = math.atan2(dy, dx)
                self._anchor = (x, y)
        if self.heading is None:
            return None
        return x, y, self.heading, fix.time


# -------------------------------------------------------------------------------------------------- sources


class PoseSource:
    """Reads poses on a daemon thread; :meth:`newest` gives the latest one. Thread-safe to read.

    Attributes:
        description: what it reads (for messages).
        received: poses accepted so far.
        skipped: lines that were not poses (garbage, bad checksums, fixes without position), counted.
        error: why the reader stopped (a serial port unplugged), or None while it runs.
    """

    def __init__(self, description: str, parse: Callable[[str], tuple[float, float, float, float | None] | None],
                 warn: Callable[[str], None] | None = None) -> None:
        self.description = description
        self._parse = parse
        self._warn = warn or (lambda msg: None)
        self._lock = threading.Lock()
        self._newest: Pose | None = None
        self.received = 0
        self.skipped = 0
        self.ignored = 0  # valid lines that carry no pose (NMEA GSV, a fix before any heading is known)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def newest(self) -> Pose | None:
        """The latest pose received, or None before the first."""
        with self._lock:
            return self._newest

    def feed(self, line: str | bytes, now: float | None = None) -> Pose | None:
        """Handle one line (the reader thread calls this; tests may too): the new pose, or None when the line
        was counted as skipped or carried no pose."""
        now = time.monotonic() if now is None else now
        try:
            if isinstance(line, bytes):
                line = line.decode("utf-8")
            line = line.strip()
            if not line:
                return None
            if len(line) > _MAX_LINE:
                raise ValueError(f"a {len(line)}-character line")
            got = self._parse(line)
        except (ValueError, UnicodeDecodeError) as exc:
            self.skipped += 1
            if self.skipped <= _WARN_FIRST:
                more = " (further ones are only counted)" if self.skipped == _WARN_FIRST else ""
                self._warn(f"pose {self.description}: skipped a line that is not a pose: {exc}{more}")
            return None
        if got is None:
            self.ignored += 1
            return None
        pose = Pose(got[0], got[1], got[2], now, got[3])
        with self._lock:
            self._newest = pose
            self.received += 1
        return pose

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._guarded, name=f"pose:{self.description}", daemon=True)
        self._thread.start()
        return self

    def _guarded(self) -> None:
        try:
            self._run()
        except (OSError, ValueError, RuntimeError) as exc:  # the reader ends; the poses age: pose-stale (neutral)
            self.error = f"{type(exc).__name__}: {exc}"
            self._warn(f"pose {self.description}: the reader stopped ({self.error}); poses will go stale")

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.description, "received": self.received, "skipped": self.skipped,
                "ignored": self.ignored, "error": self.error}


class UdpPoseSource(PoseSource):
    """Lines from UDP datagrams on ``(host, port)`` (bound here; port 0 picks a free one: see :attr:`address`)."""

    def __init__(self, host: str, port: int, description: str, parse, warn=None) -> None:
        super().__init__(description, parse, warn)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise SourceError(f"--pose {description}: cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
        self.sock.settimeout(0.1)  # how soon close() is noticed
        self.address = self.sock.getsockname()[:2]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            for line in data.splitlines():
                self.feed(line)

    def close(self) -> None:
        super().close()
        self.sock.close()


class SerialPoseSource(PoseSource):
    """NMEA lines from a serial port (pyserial, imported only here)."""

    def __init__(self, port: str, baud: int, description: str, parse, warn=None) -> None:
        super().__init__(description, parse, warn)
        try:
            import serial  # lazy: optional
        except ImportError:
            raise SourceError("--pose nmea+serial:// needs pyserial: pip install 'edgecnn[car]'") from None
        try:
            self.port = serial.Serial(port, baudrate=baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceError(f"--pose {description}: cannot open {port} ({exc})") from exc

    def _run(self) -> None:
        while not self._stop.is_set():
            line = self.port.readline()
            if line:
                self.feed(line)

    def close(self) -> None:
        super().close()
        self.port.close()


def parse_pose_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``--pose`` -> ``(kind, params)``: kind ``"json-udp"``, ``"nmea-udp"`` (params host, port) or
    ``"nmea-serial"`` (params port, baud). OptionError (one line) for anything else."""
    example = ("udp://127.0.0.1:5006 (JSON lines {x, y, heading, time}), nmea+udp://127.0.0.1:5007 or "
               "nmea+serial:///dev/ttyUSB0?baud=9600")
    try:
        u = urlsplit(spec)
    except ValueError:
        raise OptionError(f"--pose {spec!r} is not a pose source; expected {example}") from None
    if u.scheme in ("udp", "nmea+udp"):
        host, port_s = split_host_port(spec.split("://", 1)[1].strip("/"))
        try:
            port = int(port_s)
            if not 0 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise OptionError(f"--pose {spec!r}: bad UDP port; expected {example}") from None
        return ("json-udp" if u.scheme == "udp" else "nmea-udp"), {"host": host or "127.0.0.1", "port": port}
    if u.scheme == "nmea+serial":
        port = (u.netloc + u.path) if u.netloc else u.path
        if not port:
            raise OptionError(f"--pose {spec!r}: no serial port; expected nmea+serial:///dev/ttyUSB0?baud=9600")
        q = parse_qs(u.query)
        try:
            baud = int(q.get("baud", ["9600"])[0])
            if baud <= 0:
                raise ValueError
        except ValueError:
            raise OptionError(f"--pose {spec!r}: baud must be a positive integer") from None
        return "nmea-serial", {"port": port, "baud": baud}
    raise OptionError(f"--pose {spec!r} is not a pose source; expected {example}")


def open_pose(spec: str, origin: tuple[float, float] | None = None, warn: Callable[[str], None] | None = None,
              initial_heading: float | None = None) -> PoseSource:
    """Open and start the pose source ``spec`` (see the module docstring). ``origin`` (the route file's) is needed
    for NMEA; ``initial_heading`` (radians) is NMEA's heading until the fixes give one. OptionError for a
    malformed spec or NMEA without an origin; SourceError when it cannot be opened."""
    kind, p = parse_pose_spec(spec)
    if kind == "json-udp":
        return UdpPoseSource(p["host"], p["port"], spec, parse_json_pose, warn).start()
    if origin is None:
        raise OptionError(f"--pose {spec}: NMEA gives latitude/longitude, but the route file has no origin "
                          "(set its \"origin\": [lat, lon] of the local (0, 0))")
    tracker = NmeaTracker(origin, initial_heading)

    def parse(line: str) -> tuple[float, float, float, float | None] | None:
        fix = parse_nmea(line)
        return None if fix is None else tracker.update(fix)

    if kind == "nmea-udp":
        return UdpPoseSource(p["host"], p["port"], spec, parse, warn).start()
    return SerialPoseSource(p["port"], p["baud"], spec, parse, warn).start()
