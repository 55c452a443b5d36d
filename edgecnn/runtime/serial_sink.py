"""Steering commands to a microcontroller on a serial port, with a watchdog the microcontroller enforces.

The edgecnn serial protocol, version 1 (``examples/arduino_steer/arduino_steer.ino`` implements it): ASCII lines
ending in ``\\n``, host to microcontroller, pulse widths in integer microseconds (the car configuration,
:mod:`edgecnn.runtime.car_config`, turns steering/throttle into pulses on the host, so the sketch needs no
calibration of its own):

- ``N <steer_us> <throttle_us> <timeout_ms>*<XX>``: the neutral pulses and the watchdog timeout. Sent when the
  port opens and again every second (an Arduino resets when the port opens and misses the first line).
  Outputs neutral at once.
- ``D <steer_us> <throttle_us>*<XX>``: drive: output these pulses now and restart the watchdog.
- ``XX``: two upper-case hex digits, the XOR of every byte before ``*`` (NMEA's checksum). A line that does not
  parse, fails its checksum or holds a pulse outside 400..2600 us is ignored, never acted on.

The microcontroller outputs the neutral pulses at power-up, on an ``N`` line, and whenever no valid ``D`` line
arrived for ``timeout_ms`` (default 500 ms; before any ``N`` line it uses its own default of 1500/1500 us and
500 ms). That last rule is what makes a killed host safe: ``kill -9`` of ``edgecnn steer`` sends nothing at all,
and the car stops by itself ``timeout_ms`` later. While ``steer`` runs it sends a line for every frame and, when
frames stop, a neutral ``stale`` line every half deadline, so a timeout above half the deadline never fires on a
healthy host.

:class:`WatchdogParser` is the sketch's logic in Python (the same parser and the same timeout, clock passed in):
the tests run it on the other end of a pseudo-terminal.

The sink itself is :class:`edgecnn.runtime.sinks.SerialSink` (``--sink serial:///dev/ttyUSB0?baud=115200``).

Example::

    port.write(encode_config(1500, 1500, 500)); port.write(encode_drive(1750, 1500))
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import OutputError
from edgecnn.runtime.car_config import MAX_PULSE_US, MIN_PULSE_US
from edgecnn.runtime.failsafe import watchdog_expired

DEFAULT_TIMEOUT_MS = 500
DEFAULT_BAUD = 115200
# What the sketch outputs before it has heard an N line.
SKETCH_DEFAULT_NEUTRAL_US = (1500, 1500)
# The sketch's line buffer: a longer line is dropped whole.
LINE_MAX = 64
# How often the N line (neutral pulses and timeout) is repeated, seconds.
CONFIG_REPEAT_S = 1.0


def checksum(body: str) -> str:
    """NMEA-style: two upper-case hex digits, the XOR of the bytes of ``body``."""
    x = 0
    for b in body.encode("ascii"):
        x ^= b
    return f"{x:02X}"


def encode_drive(steer_us: float, throttle_us: float) -> bytes:
    """The ``D`` line for two pulse widths (microseconds, rounded to integers)."""
    body = f"D {round(steer_us)} {round(throttle_us)}"
    return f"{body}*{checksum(body)}\n".encode("ascii")


def encode_config(neutral_steer_us: float, neutral_throttle_us: float, timeout_ms: int) -> bytes:
    """The ``N`` line: neutral pulses (microseconds) and the watchdog timeout (milliseconds)."""
    body = f"N {round(neutral_steer_us)} {round(neutral_throttle_us)} {int(timeout_ms)}"
    return f"{body}*{checksum(body)}\n".encode("ascii")


def parse_line(line: str) -> tuple[str, tuple[int, ...]] | None:
    """``"D 1500 1600*XX"`` -> ``("D", (1500, 1600))``; None for anything the sketch would ignore."""
    body, star, cs = line.strip().partition("*")
    if not star or not body.isascii() or cs != checksum(body):
        return None
    parts = body.split()
    if not parts or parts[0] not in ("D", "N"):
        return None
    if not all(p.isdigit() and len(p) <= 6 for p in parts[1:]):
        return None
    values = tuple(int(p) for p in parts[1:])
    if parts[0] == "D" and len(values) == 2 or parts[0] == "N" and len(values) == 3:
        if all(MIN_PULSE_US <= v <= MAX_PULSE_US for v in values[:2]) and (parts[0] == "D" or values[2] > 0):
            return parts[0], values
    return None


@dataclass(frozen=True)
class Output:
    """What the microcontroller outputs: pulse widths (microseconds) and why (``drive``, ``neutral`` after an
    ``N`` line or at power-up, ``timeout`` when the watchdog fired)."""

    steer_us: int
    throttle_us: int
    state: str


class WatchdogParser:
    """The sketch's logic: bytes in, pulses out, neutral after ``timeout_ms`` without a valid ``D`` line.

    Every time is passed in (seconds on any monotonic clock), so it is tested with plain numbers.
    """

    def __init__(self) -> None:
        self.neutral = SKETCH_DEFAULT_NEUTRAL_US
        self.timeout_s = DEFAULT_TIMEOUT_MS / 1000.0
        self.current: tuple[int, int] = self.neutral
        self.last_drive: float | None = None
        self.buffer = b""
        self.overflow = False
        self.lines = 0
        self.ignored = 0
        self.state = "neutral"

    def feed(self, data: bytes, now: float) -> None:
        """Bytes received at ``now``."""
        self.buffer += data
        while b"\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n", 1)
            self.lines += 1
            overflow, self.overflow = self.overflow or len(raw) > LINE_MAX, False
            parsed = None if overflow else parse_line(raw.decode("ascii", errors="replace"))
            if parsed is None:
                self.ignored += 1
                continue
            kind, values = parsed
            if kind == "N":
                self.neutral, self.timeout_s = (values[0], values[1]), values[2] / 1000.0
                self.current, self.last_drive, self.state = self.neutral, None, "neutral"
            else:
                self.current, self.last_drive, self.state = (values[0], values[1]), now, "drive"
        if len(self.buffer) > LINE_MAX:  # no valid line is this long: drop it up to its newline, as the sketch does
            self.buffer, self.overflow = b"", True

    def output(self, now: float) -> Output:
        """The pulses at ``now`` (the watchdog applied)."""
        if self.state == "drive" and watchdog_expired(self.last_drive, now, self.timeout_s):
            self.current, self.state = self.neutral, "timeout"
        return Output(self.current[0], self.current[1], self.state)


def check_timeout_ms(timeout_ms: int) -> int:
    """``timeout_ms`` when it is a usable watchdog timeout (10..60000 ms), else OutputError."""
    if not 10 <= timeout_ms <= 60000:
        raise OutputError(f"serial watchdog timeout_ms must be 10..60000, got: {timeout_ms}")
    return timeout_ms


def is_write_timeout(exc: BaseException) -> bool:
    """True for pyserial's SerialTimeoutException: a write that would have blocked (``write_timeout=0``)."""
    serial = sys.modules.get("serial")
    return serial is not None and isinstance(exc, serial.SerialTimeoutException)


def open_serial_port(port: str, baud: int = DEFAULT_BAUD) -> Any:
    """A pyserial ``Serial`` on ``port`` that never blocks a write (``write_timeout=0``: a line the driver cannot
    take at once raises ``serial.SerialTimeoutException``); OutputError (one line) when the port does not exist or
    cannot be opened."""
    try:
        import serial  # lazy: optional
    except ImportError:
        raise OutputError("the serial sink needs pyserial: pip install 'edgecnn[car]' (or pip install pyserial)") from None
    try:
        return serial.Serial(port, baudrate=baud, timeout=0, write_timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        errno_ = getattr(exc, "errno", None)
        detail = "no such device" if errno_ == 2 or "No such file" in str(exc) else str(exc).split(": ", 1)[-1]
        raise OutputError(f"cannot open serial port {port}: {detail} (plugged in? `ls /dev/ttyUSB* /dev/ttyACM*` "
                          "lists the ports)") from None
