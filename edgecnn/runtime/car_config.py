"""The car configuration: which output drives what, and how a command becomes a servo/ESC pulse.

A hobby car's steering servo and speed controller (ESC) both read an RC pulse, typically 1000-2000 microseconds
repeated 50-60 times a second. This file says, for one car, which PWM channel drives each, the pulse widths at the
steering end points and at throttle stop, the trim, the throttle limits and which way is right, so that edgecnn's
command convention (steering in [-1, 1], **positive = right**; throttle in [-1, 1], positive = forward) becomes the
right pulse on any board: a PCA9685 (:mod:`edgecnn.runtime.pca9685`) or a microcontroller on a serial port
(:mod:`edgecnn.runtime.serial_sink`). ``edgecnn car calibrate`` writes it step by step.

Pulses are stored in microseconds, not in board ticks, so one file works on every board and at any PWM frequency.

The file is TOML (``car.toml``) or JSON (``car.json``)::

    [pwm]
    frequency_hz = 60            # PCA9685 output frequency (servos: 50-60 Hz)
    oscillator_hz = 25000000     # PCA9685 clock; measure and adjust if pulses come out a few percent off

    [steering]
    channel = 1
    min_us = 1000                # the two end points of the servo's travel, min_us < max_us
    max_us = 2000
    right = "max"                # which end point turns the wheels right ("min" for a servo mounted the other way)
    trim_us = 0                  # shifts the straight-ahead pulse from (min_us + max_us) / 2

    [throttle]
    channel = 0
    min_us = 1000                # full reverse or full forward, per `forward`
    max_us = 2000
    stopped_us = 1500            # the ESC's neutral
    forward = "max"
    max_forward = 0.3            # throttle commands are clipped to [-max_reverse, max_forward]
    max_reverse = 0.0

Mapping: steering 0 gives the centre pulse ``(min_us + max_us) / 2 + trim_us``; +1 the ``right`` end point, -1 the
other, linear on each side (so trim never pushes a full-lock command past an end point). Throttle works the same way
around ``stopped_us``. Neutral is steering 0 and throttle 0.

Example::

    car = load_car_config("car.toml")
    car.steering_us(0.5), car.neutral_us()      # -> (1750.0, 1500.0) pulses in microseconds
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.atomic import write_text
from edgecnn.errors import OptionError

# The PCA9685's prescale register (3..255) limits its output frequency to about 24..1526 Hz.
MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ = 24.0, 1526.0
# Wider than any RC servo or ESC accepts; a value outside is a typo (ticks or milliseconds instead of microseconds).
MIN_PULSE_US, MAX_PULSE_US = 400.0, 2600.0
CHANNELS = 16


@dataclass(frozen=True)
class SteeringConfig:
    """The steering servo. Pulses in microseconds; see the module docstring for the mapping."""

    channel: int = 1
    min_us: float = 1000.0
    max_us: float = 2000.0
    right: str = "max"
    trim_us: float = 0.0

    @property
    def center_us(self) -> float:
        """The straight-ahead pulse, microseconds."""
        return (self.min_us + self.max_us) / 2.0 + self.trim_us

    @property
    def right_us(self) -> float:
        return self.max_us if self.right == "max" else self.min_us

    @property
    def left_us(self) -> float:
        return self.min_us if self.right == "max" else self.max_us


@dataclass(frozen=True)
class ThrottleConfig:
    """The speed controller. Pulses in microseconds; throttle limits are fractions of full travel in [0, 1]."""

    channel: int = 0
    min_us: float = 1000.0
    max_us: float = 2000.0
    stopped_us: float = 1500.0
    forward: str = "max"
    max_forward: float = 0.3
    max_reverse: float = 0.0

    @property
    def forward_us(self) -> float:
        return self.max_us if self.forward == "max" else self.min_us

    @property
    def reverse_us(self) -> float:
        return self.min_us if self.forward == "max" else self.max_us


@dataclass(frozen=True)
class CarConfig:
    """One car: PWM frequency and clock, steering and throttle (see the module docstring).

    Attributes:
        frequency_hz: PWM frequency of a PCA9685 (24..1526 Hz; servos want 50-60).
        oscillator_hz: the PCA9685's internal clock, nominally 25 MHz (individual chips run a few percent off).
        steering, throttle: the two outputs.

    Raises OptionError (one line naming the field) when a value is out of range or inconsistent.
    """

    frequency_hz: float = 60.0
    oscillator_hz: float = 25_000_000.0
    steering: SteeringConfig = SteeringConfig()
    throttle: ThrottleConfig = ThrottleConfig()

    def __post_init__(self) -> None:
        validate(self)

    def steering_us(self, steering: float) -> float:
        """Steering in [-1, 1] (positive = right; clipped; NaN -> 0) -> pulse width, microseconds."""
        s = self.steering
        x = _unit(steering)
        end = s.right_us if x >= 0 else s.left_us
        return s.center_us + abs(x) * (end - s.center_us)

    def throttle_us(self, throttle: float) -> float:
        """Throttle in [-1, 1] (positive = forward) -> pulse width, microseconds, after clipping to
        ``[-max_reverse, max_forward]`` (NaN -> stop)."""
        t = self.throttle
        x = min(t.max_forward, max(-t.max_reverse, _unit(throttle)))
        end = t.forward_us if x >= 0 else t.reverse_us
        return t.stopped_us + abs(x) * (end - t.stopped_us)

    def neutral_us(self) -> tuple[float, float]:
        """(steering, throttle) pulses for neutral: straight ahead, stopped."""
        return self.steering.center_us, self.throttle.stopped_us

    def replace(self, **changes: Any) -> CarConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"pwm": {"frequency_hz": self.frequency_hz, "oscillator_hz": self.oscillator_hz},
                "steering": dataclasses.asdict(self.steering), "throttle": dataclasses.asdict(self.throttle)}

    def to_toml(self) -> str:
        """The configuration as a commented TOML document (what ``edgecnn car calibrate`` writes)."""
        def fmt(v: Any) -> str:
            if isinstance(v, str):
                return json.dumps(v)
            if isinstance(v, float) and v.is_integer():
                return str(int(v))
            return repr(v)

        lines = ["# edgecnn car configuration: pulses in microseconds; edgecnn steering is positive = right.",
                 "# Written by `edgecnn car calibrate`; read by `edgecnn steer --sink pca9685://...?config=FILE`."]
        for section, values in self.to_dict().items():
            lines.append(f"\n[{section}]")
            lines.extend(f"{k} = {fmt(v)}" for k, v in values.items())
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "car config") -> CarConfig:
        """Build from the file's sections (``pwm``, ``steering``, ``throttle``); unknown keys are refused (a
        misspelled key must not silently keep its default on a car)."""
        if not isinstance(d, dict):
            raise OptionError(f"{where}: expected a table with [pwm], [steering] and [throttle] sections")
        unknown = set(d) - {"pwm", "steering", "throttle"}
        if unknown:
            raise OptionError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
                              "expected pwm, steering, throttle")
        pwm = _section(d, "pwm", {"frequency_hz", "oscillator_hz"}, where)
        steering = _section(d, "steering", {f.name for f in dataclasses.fields(SteeringConfig)}, where)
        throttle = _section(d, "throttle", {f.name for f in dataclasses.fields(ThrottleConfig)}, where)
        try:
            return cls(steering=SteeringConfig(**steering), throttle=ThrottleConfig(**throttle), **pwm)
        except OptionError as exc:
            raise OptionError(f"{where}: {exc}") from None


def _unit(x: float) -> float:
    x = float(x)
    return 0.0 if math.isnan(x) else min(1.0, max(-1.0, x))


def _section(d: dict[str, Any], name: str, known: set[str], where: str) -> dict[str, Any]:
    sec = d.get(name, {})
    if not isinstance(sec, dict):
        raise OptionError(f"{where}: [{name}] must be a table")
    unknown = set(sec) - known
    if unknown:
        raise OptionError(f"{where}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(known))}")
    return dict(sec)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OptionError(f"{name} must be a finite number, got: {value!r}")
    return float(value)


def _channel(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < CHANNELS:
        raise OptionError(f"{name} must be a PCA9685 channel 0..{CHANNELS - 1}, got: {value!r}")
    return value


def _end_points(lo: Any, hi: Any, name: str) -> None:
    lo, hi = _number(lo, f"{name}.min_us"), _number(hi, f"{name}.max_us")
    for v, key in ((lo, "min_us"), (hi, "max_us")):
        if not MIN_PULSE_US <= v <= MAX_PULSE_US:
            raise OptionError(f"{name}.{key} = {v:g} us is not an RC pulse ({MIN_PULSE_US:g}..{MAX_PULSE_US:g} us); "
                              "pulses are in microseconds")
    if lo >= hi:
        raise OptionError(f"{name} end points reversed: min_us {lo:g} >= max_us {hi:g}; put the smaller pulse in "
                          f"min_us and say which end is {'right' if name == 'steering' else 'forward'} with "
                          f"{'right' if name == 'steering' else 'forward'} = \"min\" or \"max\"")


def validate(car: CarConfig) -> None:
    """OptionError (one line) unless every value is in range and consistent."""
    f = _number(car.frequency_hz, "pwm.frequency_hz")
    if not MIN_FREQUENCY_HZ <= f <= MAX_FREQUENCY_HZ:
        raise OptionError(f"pwm.frequency_hz must be in {MIN_FREQUENCY_HZ:g}..{MAX_FREQUENCY_HZ:g} (a PCA9685's "
                          f"range), got: {f:g}")
    osc = _number(car.oscillator_hz, "pwm.oscillator_hz")
    if not 20e6 <= osc <= 30e6:
        raise OptionError(f"pwm.oscillator_hz must be near 25000000 (20-30 MHz), got: {osc:g}")
    s, t = car.steering, car.throttle
    _channel(s.channel, "steering.channel")
    _channel(t.channel, "throttle.channel")
    if s.channel == t.channel:
        raise OptionError(f"steering and throttle use the same channel {s.channel}; give each its own")
    _end_points(s.min_us, s.max_us, "steering")
    _end_points(t.min_us, t.max_us, "throttle")
    period_us = 1e6 / f
    if max(s.max_us, t.max_us) >= period_us:
        raise OptionError(f"a {max(s.max_us, t.max_us):g} us pulse does not fit in one period at {f:g} Hz "
                          f"({period_us:.0f} us); lower pwm.frequency_hz")
    if s.right not in ("min", "max"):
        raise OptionError(f"steering.right must be \"min\" or \"max\" (the end point that turns right), got: {s.right!r}")
    if t.forward not in ("min", "max"):
        raise OptionError(f"throttle.forward must be \"min\" or \"max\", got: {t.forward!r}")
    trim = _number(s.trim_us, "steering.trim_us")
    half = (s.max_us - s.min_us) / 2.0
    if abs(trim) >= half:
        raise OptionError(f"steering.trim_us = {trim:g} puts straight ahead outside the end points "
                          f"({s.min_us:g}..{s.max_us:g} us); |trim_us| must be below {half:g}")
    stop = _number(t.stopped_us, "throttle.stopped_us")
    if not t.min_us < stop < t.max_us:
        raise OptionError(f"throttle.stopped_us = {stop:g} must lie strictly between min_us {t.min_us:g} and "
                          f"max_us {t.max_us:g}")
    for key in ("max_forward", "max_reverse"):
        v = _number(getattr(t, key), f"throttle.{key}")
        if not 0.0 <= v <= 1.0:
            raise OptionError(f"throttle.{key} must be a fraction in [0, 1], got: {v:g}")


def load_car_config(path: str | Path) -> CarConfig:
    """Read a ``.toml`` or ``.json`` car configuration; OptionError (one line) when missing, unreadable or invalid."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OptionError(f"no car configuration at {p}; write one with `edgecnn car calibrate --out {p}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionError(f"{p}: cannot read the car configuration ({exc})") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise OptionError(f"{p}: not valid {kind} ({' '.join(str(exc).split())})") from None
    return CarConfig.from_dict(data, where=str(p))


def save_car_config(car: CarConfig, path: str | Path) -> Path:
    """Write ``car`` to ``path`` atomically, as TOML (or JSON for a ``.json`` name)."""
    p = Path(path)
    text = json.dumps(car.to_dict(), indent=2) + "\n" if p.suffix.lower() == ".json" else car.to_toml()
    write_text(p, text)
    return p


class CalibrationAborted(Exception):
    """The user quit calibration (``q``); nothing was written."""


def _ask_pulse(ask: Callable[[str], str], say: Callable[[str], None], output: Callable[[float], None],
               prompt: str, current: float) -> float:
    """One step: output ``current``; the user types pulse widths to try (each is output at once), Enter keeps the
    last one tried, ``q`` quits. Returns the accepted pulse, microseconds."""
    output(current)
    while True:
        answer = ask(f"{prompt} [{current:g} us; a pulse to try, Enter to keep it, q to quit]: ").strip().lower()
        if answer == "":
            return current
        if answer in ("q", "quit"):
            raise CalibrationAborted
        try:
            value = float(answer)
        except ValueError:
            say(f"  not a number: {answer!r}; type a pulse width in microseconds, e.g. 1500")
            continue
        if not (math.isfinite(value) and MIN_PULSE_US <= value <= MAX_PULSE_US):
            say(f"  {answer} us is not an RC pulse; stay within {MIN_PULSE_US:g}..{MAX_PULSE_US:g} us")
            continue
        current = value
        output(current)


def _ask_number(ask: Callable[[str], str], say: Callable[[str], None], prompt: str, current: float, lo: float,
                hi: float, integer: bool = False) -> float:
    while True:
        answer = ask(f"{prompt} [{current:g}]: ").strip().lower()
        if answer == "":
            return current
        if answer in ("q", "quit"):
            raise CalibrationAborted
        try:
            value = int(answer) if integer else float(answer)
        except ValueError:
            say(f"  not a{'n integer' if integer else ' number'}: {answer!r}")
            continue
        if lo <= value <= hi:
            return value
        say(f"  must be in {lo:g}..{hi:g}")


def calibrate(ask: Callable[[str], str], say: Callable[[str], None],
              open_output: Callable[[int, int, float], Any], start: CarConfig | None = None) -> CarConfig:
    """Find a car's configuration step by step, the way donkeycar's ``calibrate`` does, each pulse tried on the
    car as it is typed: channels, straight ahead, full left, full right, ESC neutral, full forward, full reverse,
    throttle limits.

    Args:
        ask: shows a prompt and returns the user's line (``input``).
        say: prints a line.
        open_output: ``(steering_channel, throttle_channel, frequency_hz)`` -> an object with
            ``pulse(steer_us, throttle_us)`` and ``close()`` (neutral is output before close).
        start: the values to start from (an existing file), else the defaults.

    Returns the validated configuration. Raises CalibrationAborted on ``q``, OptionError when the values found
    are inconsistent (say, left and right the same pulse).
    """
    car = start or CarConfig()
    s, t = car.steering, car.throttle
    say("Car calibration. Put the car on a stand, wheels off the ground: the throttle steps spin the motor.")
    steer_ch = int(_ask_number(ask, say, "Steering channel (PCA9685 0..15)", s.channel, 0, CHANNELS - 1, True))
    thr_ch = int(_ask_number(ask, say, "Throttle channel (PCA9685 0..15)", t.channel, 0, CHANNELS - 1, True))
    if steer_ch == thr_ch:
        raise OptionError(f"steering and throttle use the same channel {steer_ch}; give each its own")
    out = open_output(steer_ch, thr_ch, car.frequency_hz)
    pulses = {"steer": s.center_us, "throttle": t.stopped_us}
    neutral = dict(pulses)  # what goes out when calibration ends, however it ends

    def steer(us: float) -> None:
        pulses["steer"] = us
        out.pulse(us, pulses["throttle"])

    def throttle(us: float) -> None:
        pulses["throttle"] = us
        out.pulse(pulses["steer"], us)

    try:
        say("Steering. Type pulse widths until the wheels are where the step asks.")
        center = neutral["steer"] = _ask_pulse(ask, say, steer, "1/6 wheels STRAIGHT AHEAD", s.center_us)
        left = _ask_pulse(ask, say, steer, "2/6 wheels at full LEFT", s.left_us)
        right = _ask_pulse(ask, say, steer, "3/6 wheels at full RIGHT", s.right_us)
        steer(center)
        if left == right:
            raise OptionError(f"full left and full right are the same pulse ({left:g} us); the servo did not move?")
        say("Throttle. Start at the ESC's neutral; small steps.")
        stopped = neutral["throttle"] = _ask_pulse(ask, say, throttle, "4/6 motor STOPPED (ESC neutral)",
                                                   t.stopped_us)
        forward = _ask_pulse(ask, say, throttle, "5/6 full FORWARD", t.forward_us)
        throttle(stopped)
        reverse = _ask_pulse(ask, say, throttle, "6/6 full REVERSE (or the neutral value if it has none)",
                             t.reverse_us)
        throttle(stopped)
        if forward == stopped:
            raise OptionError(f"full forward is the stop pulse ({stopped:g} us); the motor did not turn?")
        if reverse == stopped:  # no reverse: mirror the forward travel so stopped_us stays strictly inside
            reverse = 2 * stopped - forward
        max_forward = _ask_number(ask, say, "Throttle limit forward, a fraction of full (0..1)", t.max_forward, 0, 1)
        max_reverse = _ask_number(ask, say, "Throttle limit reverse, a fraction of full (0..1)", t.max_reverse, 0, 1)
    finally:
        try:
            out.pulse(neutral["steer"], neutral["throttle"])
        finally:
            out.close()
    lo, hi = min(left, right), max(left, right)
    steering = SteeringConfig(channel=steer_ch, min_us=lo, max_us=hi, right="max" if right > left else "min",
                              trim_us=center - (lo + hi) / 2.0)
    tlo, thi = min(forward, reverse), max(forward, reverse)
    throttle_cfg = ThrottleConfig(channel=thr_ch, min_us=tlo, max_us=thi, stopped_us=stopped,
                                  forward="max" if forward > stopped else "min", max_forward=max_forward,
                                  max_reverse=max_reverse)
    return car.replace(steering=steering, throttle=throttle_cfg)
