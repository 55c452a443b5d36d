"""The human's commands and the fail-safe rule for them; pure logic plus one small thread-safe holder.

A :class:`HumanInput` is what the page (joystick, keyboard arrows) or a gamepad last sent, with the monotonic time
it arrived. The page sends its state every 100 ms while it is visible; when the inputs stop (the tab is hidden,
the phone's screen goes off, the WiFi drops, the gamepad is unplugged), :func:`manual_command` turns the last input
into a neutral ``stale`` command once it is older than the deadline, the rule ``steer`` applies to frames
(:func:`edgecnn.runtime.failsafe.is_stale`). Every time is passed in, so the rule is tested with plain numbers.

Example::

    control = ManualControl()
    control.update(parse_control({"angle": 0.2, "throttle": 0.3}, mono=time.monotonic()))   # server thread
    angle, throttle, state = manual_command(control.latest(), time.monotonic(), deadline_s=0.5)  # loop thread
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

from edgecnn.runtime.failsafe import is_stale


@dataclass(frozen=True)
class HumanInput:
    """One input from the human.

    Attributes:
        angle: steering in [-1, 1], positive = right.
        throttle: in [-1, 1]; negative = reverse.
        origin: ``web`` or ``gamepad``.
        mono: when it arrived, ``time.monotonic()`` seconds.
    """

    angle: float
    throttle: float
    origin: str = "web"
    mono: float = 0.0


def _unit(value: Any, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [-1, 1], got: {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got: {value!r}")
    return min(1.0, max(-1.0, x))


def parse_control(payload: dict[str, Any], origin: str = "web", mono: float = 0.0) -> HumanInput:
    """``{"angle": a, "throttle": t}`` from the page -> HumanInput (clamped to [-1, 1]); ValueError when a
    value is missing, not a number or not finite (the request is refused and moves nothing)."""
    return HumanInput(_unit(payload.get("angle"), "angle"), _unit(payload.get("throttle"), "throttle"), origin, mono)


def manual_command(latest: HumanInput | None, now_mono: float, deadline_s: float,
                   start_mono: float | None = None, max_throttle: float = 1.0) -> tuple[float, float, str]:
    """(angle, throttle, state) to send now.

    ``ok`` with the human's values (throttle scaled by ``max_throttle``) while the newest input is at most
    ``deadline_s`` old; ``stale`` and neutral (0, 0) once it is older, or when nothing ever arrived (then the age
    counts from ``start_mono``, or it is stale at once when that is None).
    """
    if latest is None:
        if start_mono is None or is_stale(None, start_mono, now_mono, deadline_s):
            return 0.0, 0.0, "stale"
        return 0.0, 0.0, "ok"
    if is_stale(latest.mono, latest.mono, now_mono, deadline_s):
        return 0.0, 0.0, "stale"
    return latest.angle + 0.0, latest.throttle * max_throttle + 0.0, "ok"


def should_record(throttle: float, state: str, when: str) -> bool:
    """Whether a record is written this tick: ``when`` is ``throttle`` (only while the human's throttle is
    non-zero and fresh, donkeycar's auto-record-on-throttle) or ``always``."""
    if when == "always":
        return True
    if when != "throttle":
        raise ValueError(f"unknown record condition {when!r}; use throttle or always")
    return state == "ok" and throttle != 0.0


class ManualControl:
    """The newest :class:`HumanInput`, shared between the web server or gamepad thread and the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: HumanInput | None = None
        self.received = 0

    def update(self, value: HumanInput) -> None:
        with self._lock:
            self._latest = value
            self.received += 1

    def latest(self) -> HumanInput | None:
        with self._lock:
            return self._latest
