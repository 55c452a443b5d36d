"""A Linux gamepad (or joystick) as the human's input, through the ``evdev`` library (optional:
``pip install edgecnn[gamepad]``; Linux only).

The left stick's X axis steers (positive = right), the right stick's Y axis (or the left one's, on a joystick
without a right stick) is the throttle (up = forward). Buttons: ``Y``/triangle (BTN_NORTH) drops the last
seconds, ``Start`` pauses/resumes recording. evdev reports only changes, so the reader repeats the current state
every 100 ms while the device is open: an unplugged gamepad stops the repeats and the car goes neutral within the
deadline, the same rule as a page that stops sending.
"""

from __future__ import annotations

import select
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from edgecnn.errors import OptionError
from edgecnn.runtime.record.manual import HumanInput, ManualControl

REPEAT_S = 0.1


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def axis_value(value: int, lo: int, hi: int, dead: float = 0.05) -> float:
    """An absolute axis reading in ``[lo, hi]`` -> [-1, 1] with a small dead zone around the centre."""
    if hi <= lo:
        return 0.0
    x = (2.0 * (value - lo) / (hi - lo)) - 1.0
    x = min(1.0, max(-1.0, x))
    return 0.0 if abs(x) < dead else x


class Gamepad:
    """Reads one evdev device on a daemon thread and feeds ``control``; :meth:`close` stops it."""

    def __init__(self, path: str, control: ManualControl, on_drop: Callable[[], None] | None = None,
                 on_pause: Callable[[], None] | None = None, warn: Callable[[str], None] = _stderr) -> None:
        try:
            import evdev  # lazy: optional
        except ImportError as exc:
            raise OptionError("--gamepad needs the evdev library: pip install 'edgecnn[gamepad]' (Linux only)") from exc
        try:
            self.device: Any = evdev.InputDevice(path)
        except OSError as exc:
            raise OptionError(f"cannot open the gamepad {path}: {exc.strerror or exc}; see `ls /dev/input/by-id`") from None
        self.ecodes = evdev.ecodes
        caps = self.device.capabilities(absinfo=True).get(evdev.ecodes.EV_ABS, [])
        self.ranges = {code: (info.min, info.max) for code, info in caps}
        e = evdev.ecodes
        self.steer_axis = e.ABS_X
        self.throttle_axis = e.ABS_RY if e.ABS_RY in self.ranges else e.ABS_Y
        self.control, self.on_drop, self.on_pause, self.warn = control, on_drop, on_pause, warn
        self.angle = self.throttle = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gamepad", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        e = self.ecodes
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.device.fd], [], [], REPEAT_S)
                if ready:
                    for ev in self.device.read():
                        if ev.type == e.EV_ABS and ev.code in self.ranges:
                            v = axis_value(ev.value, *self.ranges[ev.code])
                            if ev.code == self.steer_axis:
                                self.angle = v
                            elif ev.code == self.throttle_axis:
                                self.throttle = -v  # stick up reads negative
                        elif ev.type == e.EV_KEY and ev.value == 1:
                            if ev.code == e.BTN_NORTH and self.on_drop:
                                self.on_drop()
                            elif ev.code == e.BTN_START and self.on_pause:
                                self.on_pause()
                self.control.update(HumanInput(self.angle, self.throttle, "gamepad", time.monotonic()))
        except OSError as exc:  # unplugged: the repeats stop, the loop goes neutral on its deadline
            self.warn(f"gamepad {self.device.path}: {exc.strerror or exc}; commands are neutral from now on")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=0.5)
        try:
            self.device.close()
        except OSError:
            pass
