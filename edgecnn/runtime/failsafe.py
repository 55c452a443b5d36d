"""The steering command and the fail-safe rules that shape it; pure logic, no threads, no clock of its own.

A :class:`Command` is what ``edgecnn steer`` sends: steering, throttle, the model's uncertainty, the capture time
of the frame it came from, and a state. :class:`CommandShaper` turns a decoded model output into a command
under the safety rules, and makes the neutral commands:

- steering is clamped to [-1, 1] (positive = right) and its change is slew-rate limited (units per second), so
  one bad frame cannot slam the steering from lock to lock. The limit runs in **frame time**: between two frames
  turned into commands the allowed change is ``max_rate`` times the difference of their capture times, so a
  recorded drive replayed faster or slower than real time gets the steering it got when driven (played as fast as
  possible against the wall clock, a limit in wall time lets the output only creep). After a neutral command (and
  from the start) the ramp runs on the command clock (``mono``), from straight ahead;
- a non-finite output (NaN, inf) becomes a neutral command (steering 0, throttle 0, state ``uncertain``);
- a high uncertainty (gmm head: the mixture's standard deviation) gives state ``uncertain`` and a reduced throttle;
- neutral commands (``stale``, ``stopped``, ``pose-stale``) are immediate: safety is never slew-limited;
- a route-conditioned model (``steer --route --pose``) draws its map from the newest pose: a pose older than the
  pose deadline is never used; the command is neutral (steering 0, throttle 0) in state ``pose-stale``, until
  fresh poses return (:func:`is_pose_stale`). Neutral rather than "lane keeping on the roads-only map with less
  throttle": a routed model has only ever seen maps with its route drawn, and a stale map at a junction would
  steer into the wrong branch with confidence; stopping is the one fallback that is safe without the map.

The deadline itself is enforced by the loop (:mod:`edgecnn.runtime.steer`), which asks :meth:`is_stale` and
emits :meth:`CommandShaper.neutral`. A receiver's watchdog (a microcontroller on a serial port that outputs neutral
when commands stop, see :mod:`edgecnn.runtime.serial_sink`) is :func:`watchdog_expired`. Every time is passed in,
so the rules are tested with plain numbers.

Example::

    shaper = CommandShaper(FailsafeConfig(max_rate=4.0))
    cmd = shaper.from_output(steering=0.8, throttle=None, uncertainty=None,
                             frame_time=frame.timestamp, frame=frame.index, now=time.time(), mono=time.monotonic())
    print(cmd.to_json())
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

STATES = ("ok", "stale", "uncertain", "stopped", "pose-stale")


@dataclass(frozen=True)
class Command:
    """One steering command.

    Attributes:
        time: when the command was made, seconds since the epoch (``time.time()``).
        frame_time: capture time of the frame it came from, seconds since the epoch; None when no frame was
            ever turned into a command (a stall from the start, or a stop before the first frame).
        steering: float in [-1, 1], positive = right; 0 is straight ahead.
        throttle: float in [-1, 1]; 0 is stop.
        uncertainty: the model's steering standard deviation (gmm head, steering units), else None.
        state: ``ok``, ``stale`` (no fresh frame within the deadline: neutral), ``uncertain`` (high
            uncertainty: reduced throttle; or a non-finite output: neutral), ``stopped`` (the loop ended: neutral)
            or ``pose-stale`` (route models: no pose younger than the pose deadline: neutral).
        frame: index of the frame in its source, or None.
        file: the image file the frame came from (folder, tub, CSV sources), else None; the JSON line has a
            ``file`` key only when it is known.
        pose_age_ms: route models: age of the newest pose when the command was made (milliseconds since it was
            received), None before the first pose; the JSON line has ``pose_age_ms`` and ``pose`` keys only for
            route models.
        pose: route models: the pose ``(x, y, heading)`` the map was drawn from (None when none was used).
    """

    time: float
    frame_time: float | None
    steering: float
    throttle: float
    uncertainty: float | None
    state: str
    frame: int | None = None
    file: str | None = None
    pose_age_ms: float | None = None
    pose: tuple[float, float, float] | None = None
    route: bool = False  # a route model's command: the JSON line carries pose_age_ms and pose

    @property
    def neutral(self) -> bool:
        return self.steering == 0.0 and self.throttle == 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's fields: ``time``, ``frame_time``, ``steering``, ``throttle``, ``uncertainty``,
        ``state``, ``frame``, ``file`` when known, and ``pose_age_ms``/``pose`` for a route model (scripts depend
        on these names)."""
        d = {
            "time": round(self.time, 6),
            "frame_time": None if self.frame_time is None else round(self.frame_time, 6),
            "steering": round(self.steering, 6),
            "throttle": round(self.throttle, 6),
            "uncertainty": None if self.uncertainty is None else round(self.uncertainty, 6),
            "state": self.state,
            "frame": self.frame,
        }
        if self.file is not None:
            d["file"] = self.file
        if self.route:
            d["pose_age_ms"] = None if self.pose_age_ms is None else round(self.pose_age_ms, 3)
            d["pose"] = None if self.pose is None else [round(v, 4) for v in self.pose]
        return d

    def to_json(self) -> str:
        """One line of strict JSON (never ``NaN``)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class FailsafeConfig:
    """The safety settings.

    Attributes:
        deadline_s: a command whose frame is older than this (seconds) is stale; neutral goes out instead.
        max_rate: steering slew-rate limit, steering units per second (2.0 = centre to full lock in 0.5 s);
            None or inf: no limit.
        throttle: constant throttle in [-1, 1] for a model without a throttle output (default 0: a tool must
            not drive a car forward unless told).
        max_uncertainty: steering standard deviation above which a command is ``uncertain``; None: never.
        uncertain_throttle: factor in [0, 1] applied to the throttle of an ``uncertain`` command.
    """

    deadline_s: float = 0.5
    max_rate: float | None = 4.0
    throttle: float = 0.0
    max_uncertainty: float | None = 0.35
    uncertain_throttle: float = 0.5

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and math.isfinite(self.deadline_s)):
            raise ValueError(f"deadline must be a positive number of seconds, got: {self.deadline_s}")
        if self.max_rate is not None and not self.max_rate > 0:
            raise ValueError(f"steering rate limit must be > 0 units/s, got: {self.max_rate}")
        if not (math.isfinite(self.throttle) and -1.0 <= self.throttle <= 1.0):
            raise ValueError(f"throttle must be in [-1, 1], got: {self.throttle}")
        if not 0.0 <= self.uncertain_throttle <= 1.0:
            raise ValueError(f"uncertain throttle factor must be in [0, 1], got: {self.uncertain_throttle}")


def _finite(x: float | None) -> bool:
    return x is None or math.isfinite(x)


def watchdog_expired(last_command: float | None, now: float, timeout_s: float) -> bool:
    """A receiver's rule: True when no command arrived for longer than ``timeout_s`` (or none ever did); seconds on
    the receiver's own clock."""
    return last_command is None or now - last_command > timeout_s


def is_stale(frame_mono: float | None, start_mono: float, now_mono: float, deadline_s: float) -> bool:
    """True when the newest frame turned into a command (captured at ``frame_mono``, or the loop start when
    none) is older than ``deadline_s``; all on ``time.monotonic()`` seconds."""
    return now_mono - (start_mono if frame_mono is None else frame_mono) > deadline_s


def is_pose_stale(pose_mono: float | None, now_mono: float, deadline_s: float) -> bool:
    """The stale-pose rule: True when the newest pose (received at ``pose_mono``, None when none ever was) is older
    than ``deadline_s``; ``time.monotonic()`` seconds. A stale pose is never used to draw the map: the command is
    neutral, state ``pose-stale``, until a fresh pose arrives."""
    return pose_mono is None or now_mono - pose_mono > deadline_s


def pose_age_ms(pose_mono: float | None, now_mono: float) -> float | None:
    """Age of the newest pose in milliseconds (None when none was received)."""
    return None if pose_mono is None else max(0.0, now_mono - pose_mono) * 1e3


class CommandShaper:
    """Applies :class:`FailsafeConfig` to decoded outputs; remembers the last steering for the slew limit.

    Not thread-safe: one emitting thread owns it.
    """

    def __init__(self, config: FailsafeConfig, start_mono: float | None = None) -> None:
        """``start_mono``: when the car is known to be neutral (the loop's start, ``time.monotonic()``), so the
        first command ramps from straight ahead; None: the first command is not slew-limited."""
        self.config = config
        self._last_steering = 0.0
        self._last_mono: float | None = start_mono
        self._slew_frame_time: float | None = None  # capture time of the last frame-made command since a neutral
        self.last_frame_time: float | None = None
        self.non_finite = 0  # outputs that were NaN or infinite (each became a neutral command)

    def neutral(self, state: str, now: float, mono: float, frame_time: float | None = None,
                frame: int | None = None) -> Command:
        """A neutral command (steering 0, throttle 0) in ``state`` (``stale``, ``stopped``, ``uncertain``,
        ``pose-stale``)."""
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        self._last_steering, self._last_mono, self._slew_frame_time = 0.0, mono, None
        return Command(now, frame_time if frame_time is not None else self.last_frame_time, 0.0, 0.0, None,
                       state, frame)

    def from_output(self, steering: float, throttle: float | None, uncertainty: float | None,
                    frame_time: float, frame: int | None, now: float, mono: float, file: str | None = None) -> Command:
        """The command for one decoded model output.

        Args:
            steering: decoded steering (any float; NaN/inf allowed: they give a neutral command).
            throttle: the model's throttle, or None to use ``config.throttle``.
            uncertainty: steering standard deviation (gmm head) or None.
            frame_time: the frame's capture time, epoch seconds (the recording's clock for a recorded drive):
                the slew limit's clock between frames.
            frame: the frame's index.
            now: epoch seconds now; mono: ``time.monotonic()`` now (the slew limit's clock after a neutral).
            file: the image file the frame came from, or None.
        """
        cfg = self.config
        self.last_frame_time = frame_time
        if not (_finite(steering) and _finite(throttle) and _finite(uncertainty)):
            self.non_finite += 1
            return self.neutral("uncertain", now, mono, frame_time, frame)
        target = min(1.0, max(-1.0, float(steering)))
        if cfg.max_rate is not None and math.isfinite(cfg.max_rate):
            if self._slew_frame_time is not None:
                dt: float | None = frame_time - self._slew_frame_time
            else:
                dt = None if self._last_mono is None else mono - self._last_mono
            if dt is not None:
                step = cfg.max_rate * max(0.0, dt)
                target = min(self._last_steering + step, max(self._last_steering - step, target))
        thr = cfg.throttle if throttle is None else min(1.0, max(-1.0, float(throttle)))
        state = "ok"
        if uncertainty is not None and cfg.max_uncertainty is not None and uncertainty > cfg.max_uncertainty:
            state, thr = "uncertain", thr * cfg.uncertain_throttle
        self._last_steering, self._last_mono, self._slew_frame_time = target, mono, frame_time
        return Command(now, frame_time, target + 0.0, thr + 0.0, None if uncertainty is None else float(uncertainty),
                       state, frame, file)
