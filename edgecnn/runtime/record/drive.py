"""The drive recorder: a fixed-rate loop that turns the human's commands into car commands and tub records.

:func:`record_drive` is the importable core of ``edgecnn record drive``. Every tick (``rate_hz``, 20 by default):

1. the human's newest input (page, keyboard, gamepad) becomes a :class:`~edgecnn.runtime.failsafe.Command` under
   the fail-safe rule of :func:`~edgecnn.runtime.record.manual.manual_command`: an input older than the deadline
   gives a neutral ``stale`` command (a page that stops sending stops the car), and it goes to the sinks;
2. the newest camera frame (read on the source's own thread) is written to the tub with that command, when
   recording is on (``record_when="throttle"``: only while the throttle is non-zero, donkeycar's default) and the
   frame is fresh (a stalled camera records nothing: a record must show what the human saw);
3. the live page, when there is one, gets every new frame with the overlay (human command, the model's steering
   when a model runs alongside, record counts).

"Drop the last N seconds" (page button, ``d`` key, gamepad) marks the records of the last N seconds deleted in the
manifest; nothing is rewritten. On every way out a final neutral ``stopped`` command goes to the sinks first, then
the tub is closed (flushed, fsync'ed): it is always readable.

Example::

    with open_source("0") as src, TubWriter.create(next_tub_path(Path("data"))) as tub:
        result = record_drive(src, tub, ManualControl(), DriveConfig(duration_s=60), send=sink.send)
    print(result.format())
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.data.tub_writer import TubSummary, TubWriter
from edgecnn.errors import SourceError
from edgecnn.outputs import decode_steering
from edgecnn.runtime.failsafe import Command
from edgecnn.runtime.live.server import LiveView
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.record.loop import stop_reason, stored_image
from edgecnn.runtime.record.manual import (
    ManualControl,
    manual_command,
    parse_control,
    should_record,
)
from edgecnn.runtime.sources import Frame, Source

_POLL_S = 0.05  # longest sleep at a time: how soon a stop request is noticed


@dataclass(frozen=True)
class DriveConfig:
    """Settings of a drive recording.

    Attributes:
        rate_hz: ticks (commands, and records while recording) per second.
        deadline_s: the human's input older than this (seconds) gives a neutral ``stale`` command.
        frame_deadline_s: a frame older than this is not recorded (a stalled camera).
        record_when: ``throttle`` (only while the throttle is non-zero) or ``always``.
        drop_seconds: what "drop the last seconds" removes, seconds.
        max_throttle: the human's throttle is scaled by this (a beginner's car: 0.3).
        size: ``(width, height)`` the frames are stored at (area interpolation), None = as captured.
        duration_s: stop cleanly after this many seconds; None = until stopped.
    """

    rate_hz: float = 20.0
    deadline_s: float = 0.5
    frame_deadline_s: float = 0.5
    record_when: str = "throttle"
    drop_seconds: float = 5.0
    max_throttle: float = 1.0
    size: tuple[int, int] | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.rate_hz <= 200:
            raise ValueError(f"rate must be in (0, 200] Hz, got: {self.rate_hz}")
        if self.record_when not in ("throttle", "always"):
            raise ValueError(f"record_when must be throttle or always, got: {self.record_when!r}")
        if not 0 < self.max_throttle <= 1:
            raise ValueError(f"max throttle must be in (0, 1], got: {self.max_throttle}")


@dataclass(frozen=True)
class DriveResult:
    """What a drive recording did.

    Attributes:
        tub: the tub's path and record counts.
        ticks: loop ticks (one command each).
        missed_ticks: ticks skipped because the loop fell behind (a slow disk or model).
        stale_frames: ticks whose frame was too old to record (camera stalled).
        repeated_frames: records whose frame was already recorded by the previous record (the camera is slower
            than the rate).
        states: commands sent per state (``ok``, ``stale``, ``stopped``).
        seconds: how long the loop ran.
        stop_reason: ``duration``, ``end of stream``, ``SIGINT``, ``SIGTERM``, ...
    """

    tub: TubSummary
    ticks: int
    missed_ticks: int = 0
    stale_frames: int = 0
    repeated_frames: int = 0
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"tub": self.tub.path, "records": self.tub.records, "deleted": self.tub.deleted,
                "kept": self.tub.kept, "ticks": self.ticks, "missed_ticks": self.missed_ticks,
                "stale_frames": self.stale_frames, "repeated_frames": self.repeated_frames,
                "states": dict(self.states), "seconds": round(self.seconds, 3), "stop_reason": self.stop_reason}

    def format(self) -> str:
        rate = self.ticks / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.tub.path}: {self.tub.records} records ({self.tub.deleted} marked deleted, {self.tub.kept} "
                f"kept) in {self.seconds:.1f} s; {self.ticks} ticks ({rate:.1f}/s, {self.missed_ticks} missed), "
                f"{self.stale_frames} with a stale camera frame, {self.repeated_frames} repeated frames; commands: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.states.items())) + f"; stopped by {self.stop_reason}")


class NewestFrame:
    """Reads a source on its own thread and keeps only the newest frame (for a loop that must not wait)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self.ended = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="record:frames", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source:
                with self._lock:
                    self._frame = frame
        except BaseException as exc:  # handed to the loop, which stops safely and raises it
            self.error = exc
        finally:
            self.ended = True

    def newest(self) -> Frame | None:
        with self._lock:
            return self._frame


class DriveFlags:
    """State the page's handlers change on the server thread and the loop reads."""

    def __init__(self) -> None:
        self.paused = False
        self.drops: queue.SimpleQueue[float] = queue.SimpleQueue()


def drive_handlers(control: ManualControl, flags: DriveFlags) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The page's ``/api/control``, ``/api/drop`` and ``/api/record`` handlers (run on the server thread)."""

    def on_control(payload: dict[str, Any]) -> dict[str, Any]:
        control.update(parse_control(payload, "web", time.monotonic()))
        return {"ok": True}

    def on_drop(payload: dict[str, Any]) -> dict[str, Any]:
        flags.drops.put(time.time())
        return {"ok": True}

    def on_record(payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("toggle"):
            flags.paused = not flags.paused
        elif "paused" in payload:
            flags.paused = bool(payload["paused"])
        return {"paused": flags.paused}

    return {"control": on_control, "drop": on_drop, "record": on_record}


class DriveSession:
    """The wiring of one drive recording: the control holder and the page's flags; ``handlers`` for a LiveView.

    ``drop()`` and ``toggle_pause()`` are for other inputs (a gamepad's buttons), from any thread.
    """

    def __init__(self) -> None:
        self.control = ManualControl()
        self.flags = DriveFlags()
        self.handlers = drive_handlers(self.control, self.flags)

    def drop(self) -> None:
        self.flags.drops.put(time.time())

    def toggle_pause(self) -> None:
        self.flags.paused = not self.flags.paused


def _model_steering(predictor: Predictor, image: np.ndarray) -> float | None:
    raw = predictor.predict(image)
    batch = decode_steering(raw[None], predictor.contract)
    value = float(batch.steering[0])
    return value if np.isfinite(value) else None


def record_drive(
    source: Source,
    tub: TubWriter,
    session: DriveSession,
    config: DriveConfig,
    send: Callable[[Command], None] | None = None,
    view: LiveView | None = None,
    stop: Any = None,
    predictor: Predictor | None = None,
) -> DriveResult:
    """Record until ``config.duration_s``, the source ends, ``stop.requested``, or an error.

    Args:
        source: the camera (closed by this function).
        tub: where records go (closed by this function).
        session: the human's input and the page's flags (see :class:`DriveSession`).
        config: rate, deadlines, recording condition.
        send: receives every command on this thread (the sinks); the last one is always neutral ``stopped``.
        view: the live page, or None.
        stop: an object whose ``requested`` attribute turns true to stop (``edgecnn.runtime.steer.StopRequest``).
        predictor: a steering model shown beside the human's command on the page (it does not drive).

    Raises:
        SourceError (camera gone for good) after the ``stopped`` command went out and the tub was closed; its
        message says where the recording so far was kept.
    """
    send = send or (lambda cmd: None)
    reader = NewestFrame(source)
    period = 1.0 / config.rate_hz
    states: Counter[str] = Counter()
    flags, control = session.flags, session.control
    start = time.monotonic()
    ticks = missed = stale_frames = repeated = 0
    last_recorded = last_published = -1
    last_frame: Frame | None = None
    model_value: float | None = None
    latency: dict[str, float] = {}  # the last tick's stage times for the page, milliseconds
    reason = "error"

    def emit(cmd: Command) -> None:
        states[cmd.state] += 1
        send(cmd)

    try:
        next_t = start
        while True:
            now = time.monotonic()
            ended = stop_reason(stop, start, now, config.duration_s)
            if ended is not None:
                reason = ended
                break
            if reader.error is not None:
                break
            if reader.ended:  # a video or image folder ran out (a camera that fails sets reader.error instead)
                reason = "end of stream"
                break
            if now < next_t:
                time.sleep(min(_POLL_S, next_t - now))
                continue
            behind = int((now - next_t) / period)
            if behind:  # fell behind (slow disk, slow model): skip ticks, never burst to catch up
                missed += behind
                next_t += behind * period
            next_t += period
            ticks += 1
            angle, throttle, state = manual_command(control.latest(), now, config.deadline_s, start,
                                                    config.max_throttle)
            frame = reader.newest()
            emit(Command(time.time(), frame.timestamp if frame else None, angle, throttle, None, state,
                         frame.index if frame else None))
            while not flags.drops.empty():
                tub.delete_since(flags.drops.get() - config.drop_seconds)
            fresh = frame is not None and now - frame.monotonic <= config.frame_deadline_s
            if frame is not None and not fresh:
                stale_frames += 1
            recording = (not flags.paused) and should_record(throttle, state, config.record_when)
            if recording and fresh and frame is not None:
                image = stored_image(frame.image, config.size)
                if frame.index == last_recorded:
                    repeated += 1
                t_write = time.perf_counter()
                tub.write(image, angle, throttle, "user")
                latency["record"] = (time.perf_counter() - t_write) * 1e3
                last_recorded = frame.index
            if frame is not None and frame.index != last_published:
                last_published = frame.index
                if predictor is not None:
                    t_model = time.perf_counter()
                    model_value = _model_steering(predictor, frame.image)
                    latency["model"] = (time.perf_counter() - t_model) * 1e3
                latency["capture"] = frame.capture_ms
                if view is not None:
                    view.publish(frame.image, {
                        "human": {"angle": angle, "throttle": throttle, "state": state},
                        "steering": model_value, "recording": recording and fresh, "paused": flags.paused,
                        "records": tub.index, "deleted": len(tub.deleted), "camera_stale": not fresh,
                        "latency_ms": dict(latency)},
                        timestamp=frame.timestamp, mono=frame.monotonic)
            last_frame = frame
            if last_frame is not None and view is not None and not fresh and ticks % 5 == 0:
                # keep the page's counters and the stall banner current while the camera is silent
                view.publish(last_frame.image, {
                    "human": {"angle": angle, "throttle": throttle, "state": state}, "steering": model_value,
                    "recording": False, "paused": flags.paused, "records": tub.index, "deleted": len(tub.deleted),
                    "camera_stale": True}, timestamp=last_frame.timestamp, mono=last_frame.monotonic)
    finally:
        seconds = time.monotonic() - start
        try:  # safety first: the neutral stop goes out before anything else is cleaned up
            emit(Command(time.time(), None, 0.0, 0.0, None, "stopped"))
        finally:
            source.close()
            try:
                summary = tub.close()
            except OSError:  # the disk failed: what was flushed before stays readable
                summary = tub.summary()
            source.join(timeout=1.0)
    if reader.error is not None:
        exc = reader.error
        msg = str(exc) if isinstance(exc, SourceError) else f"{source.description}: {exc}"
        kept = (f"the recording so far is kept: {summary.path} ({summary.records} records)" if summary.records
                else "nothing was recorded")
        raise SourceError(f"{msg}; {kept}") from exc
    return DriveResult(tub=summary, ticks=ticks, missed_ticks=missed, stale_frames=stale_frames,
                       repeated_frames=repeated, states=dict(states), seconds=seconds, stop_reason=reason)
