"""The live steering loop: source -> predictor -> fail-safe -> sink, with a watchdog that never waits on the model.

:func:`steer_stream` is the importable core of ``edgecnn steer``. Two threads share the work:

- the **worker** reads the newest frame (the source reads and reconnects on its own thread), runs the model and
  decodes its output (:func:`edgecnn.outputs.decode_steering`); it may block for any time, in a stalled camera
  or a hung ``invoke()``;
- the **emitter** (the calling thread, normally the main one) waits on a condition with a timeout, never on the
  worker. It turns each fresh result into a command (:class:`~edgecnn.runtime.failsafe.CommandShaper`) and, when
  the newest frame turned into a command is older than the deadline, sends a neutral ``stale`` command, repeated
  every half deadline until fresh frames return. A result whose frame is already older than the deadline when it
  is ready is dropped (counted as late): an old frame must not steer. A camera that keeps delivering the very same
  image (a frozen driver) is treated the same way: a frame is only as fresh as its content.

On every way out (end of stream, ``max_frames``, Ctrl-C, SIGTERM, a source or model error, a sink error) a final
neutral ``stopped`` command is sent before anything else is cleaned up.

A route-conditioned model (task ``navigate``, ``steer --route FILE --pose SOURCE``) also needs the car's pose: the
worker draws the map for each frame from the newest pose (:func:`edgecnn.navmap.rasterise`, the model's
:class:`~edgecnn.navmap.MapSpec`) and runs the model on both. The stale-pose rule
(:func:`~edgecnn.runtime.failsafe.is_pose_stale`): a pose older than the pose deadline is never used; the
command is neutral in state ``pose-stale`` (the worker does not run the model on it, and the emitter re-checks
the pose's age when it sends, and on its own within the deadline when poses stop while frames still flow),
until a fresh pose arrives. Every command of a route model carries ``pose_age_ms`` and the ``pose`` it used.

Example::

    with open_source("0") as src:
        result = steer_stream(src, Predictor("steer.tflite"), FailsafeConfig(deadline_s=0.5),
                              on_command=StdoutSink().send)
    print(result.format(), file=sys.stderr)
"""

from __future__ import annotations

import math
import signal
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgecnn.errors import ModelError
from edgecnn.navmap import RoadNetwork, Route, rasterise
from edgecnn.outputs import decode_steering
from edgecnn.runtime.failsafe import (
    Command,
    CommandShaper,
    FailsafeConfig,
    is_pose_stale,
    is_stale,
    pose_age_ms,
)
from edgecnn.runtime.pose import Pose, PoseSource
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.sources import Frame, Source
from edgecnn.runtime.stats import LatencyRecorder, RunStats

# Longest the emitter sleeps at a time: how soon a stop request (signal flag) is noticed.
_POLL_S = 0.05


class StopRequest:
    """A stop flag set by SIGINT/SIGTERM (see :func:`stop_on_signals`) or by any caller.

    A plain attribute, not a threading.Event: a signal handler runs on the main thread between bytecodes and must
    not take a lock that thread may hold.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal: str | None = None

    def set(self, reason: str = "requested") -> None:
        self.signal = self.signal or reason
        self.requested = True


@contextmanager
def stop_on_signals(stop: StopRequest | None = None) -> Iterator[StopRequest]:
    """While active, the first SIGINT/SIGTERM only sets ``stop`` (the loop then stops cleanly and sends its
    final neutral command); a second one raises KeyboardInterrupt, for a start-up step that blocks (a camera
    that never opens). Outside the main thread this only yields the flag."""
    stop = stop or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.set(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class Stopped(Exception):
    """Raised by :func:`run_interruptibly` when a stop was requested before the step finished."""


def run_interruptibly(fn: Callable[[], Any], stop: StopRequest, what: str = "start-up") -> Any:
    """``fn()`` on a helper thread, returning its result or raising its exception; raises :class:`Stopped` as soon
    as ``stop`` is set (within 50 ms), leaving ``fn`` behind on its daemon thread.

    For start-up steps that may block in C code for a long time, where no Python signal handler can run (OpenCV
    opening an RTSP camera that does not answer waits up to 30 s)."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"steer:{what}", daemon=True).start()
    while not done.wait(_POLL_S):
        if stop.requested:
            raise Stopped(what)
    if "error" in box:
        raise box["error"]
    return box.get("value")


@dataclass(frozen=True)
class RouteInputs:
    """What a route-conditioned model needs besides frames.

    Attributes:
        network, route: from the route file (:func:`edgecnn.navmap.load_route`).
        poses: where the car believes it is (:func:`edgecnn.runtime.pose.open_pose`; not closed by the loop).
        deadline_s: a pose older than this (seconds since it was received) is stale: neutral ``pose-stale``.
    """

    network: RoadNetwork
    route: Route
    poses: PoseSource
    deadline_s: float = 0.5

    def __post_init__(self) -> None:
        if not (self.deadline_s > 0 and math.isfinite(self.deadline_s)):
            raise ValueError(f"pose deadline must be a positive number of seconds, got: {self.deadline_s}")


@dataclass(frozen=True)
class SteerResult:
    """What a steering run did.

    Attributes:
        stats: per-stage latency (``capture``, ``wait``, ``preprocess``, ``invoke``, ``postprocess``, ``sink``)
            over the frames turned into commands, warm-up excluded.
        states: commands sent per state (``ok``, ``stale``, ``uncertain``, ``stopped``).
        late: model results dropped because their frame was older than the deadline when they were ready.
        frozen: results dropped because their image had not changed for longer than the deadline.
        non_finite: model outputs that were NaN or infinite (each sent as a neutral ``uncertain`` command).
        worst_neutral_ms: the longest time from the capture of the newest frame turned into a command (or the
            start, before the first) to the first ``stale`` command after it, milliseconds; None if never stale.
        longest_gap_ms: the longest time between two consecutive commands, milliseconds.
        deadline_ms: the deadline in force.
        stop_reason: ``end of stream``, ``max frames``, ``SIGINT``, ``SIGTERM`` or ``error``.
        pose: route models only (else None): ``source``, ``received`` and ``skipped`` (lines that were not
            poses) counts, ``deadline_ms``, ``worst_neutral_ms`` (longest time from the newest pose's arrival
            to the first ``pose-stale`` command after it; None if never) and ``oldest_used_ms`` (the oldest pose
            a map was drawn from when its command went out: never above the deadline).
    """

    stats: RunStats
    states: dict[str, int] = field(default_factory=dict)
    late: int = 0
    frozen: int = 0
    non_finite: int = 0
    worst_neutral_ms: float | None = None
    longest_gap_ms: float = 0.0
    deadline_ms: float = 0.0
    stop_reason: str = ""
    pose: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"stats": self.stats.to_dict(), "states": dict(self.states), "late": self.late, "frozen": self.frozen,
             "non_finite": self.non_finite,
             "worst_neutral_ms": None if self.worst_neutral_ms is None else round(self.worst_neutral_ms, 3),
             "longest_gap_ms": round(self.longest_gap_ms, 3), "deadline_ms": self.deadline_ms,
             "stop_reason": self.stop_reason}
        if self.pose is not None:
            d["pose"] = dict(self.pose)
        return d

    def format(self) -> str:
        """The latency table plus two lines on commands and the fail-safe (three for a route model)."""
        names = ("ok", "uncertain", "stale", "pose-stale", "stopped") if self.pose else ("ok", "uncertain", "stale",
                                                                                         "stopped")
        counts = ", ".join(f"{s} {self.states.get(s, 0)}" for s in names)
        neutral = ("never stale" if self.worst_neutral_ms is None
                   else f"worst frame-to-neutral {self.worst_neutral_ms:.0f} ms")
        text = (f"{self.stats.format()}\ncommands: {counts}; dropped {self.late} late and {self.frozen} frozen "
                f"frame(s); {self.non_finite} non-finite output(s) made neutral\n"
                f"fail-safe: {neutral} (deadline {self.deadline_ms:.0f} ms); longest gap between commands "
                f"{self.longest_gap_ms:.0f} ms; stopped by {self.stop_reason}")
        if self.pose is not None:
            p = self.pose
            worst = ("never stale" if p["worst_neutral_ms"] is None
                     else f"worst pose-to-neutral {p['worst_neutral_ms']:.0f} ms")
            used = "no pose used" if p["oldest_used_ms"] is None else f"oldest pose used {p['oldest_used_ms']:.0f} ms"
            text += (f"\npose ({p['source']}): {p['received']} received, {p['skipped']} line(s) skipped (not poses); "
                     f"fallback: {self.states.get('pose-stale', 0)} neutral 'pose-stale' command(s), {worst} "
                     f"(pose deadline {p['deadline_ms']:.0f} ms); {used}"
                     + (f"; reader stopped: {p['error']}" if p.get("error") else ""))
        return text


@dataclass(frozen=True)
class _Result:
    """One frame's model output, handed from the worker to the emitter."""

    frame: Frame
    steering: float
    throttle: float | None
    uncertainty: float | None
    stages_ms: dict[str, float]
    started: float  # perf_counter when the worker began waiting for this frame
    content_mono: float  # capture time (monotonic) of the first frame with this exact image: a frozen camera
    # that repeats one image has fresh timestamps but old content, and must not keep steering
    pose: Pose | None = None  # route models: the pose the map was drawn from (or the stale one that was refused)
    pose_stale: bool = False  # route models: the pose was stale, the model did not run: a neutral command


class _Worker:
    """Reads frames and runs the model on its own thread; the newest result waits in ``pending``."""

    def __init__(self, source: Source, predictor: Predictor, cond: threading.Condition, detect_frozen: bool,
                 nav: RouteInputs | None = None) -> None:
        self.source, self.predictor, self.cond = source, predictor, cond
        self.detect_frozen = detect_frozen
        self.nav = nav
        spec = getattr(predictor, "map_spec", None)  # None for image-only models (and duck-typed predictors)
        self.map_buf = None if spec is None else np.zeros((spec.size, spec.size, len(spec.channels)), np.uint8)
        self.pending: _Result | None = None
        self.done = False
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="steer:model", daemon=True)

    def _result(self, frame: Frame, raw: np.ndarray, wait_ms: float, t0: float, content_mono: float,
                map_ms: float | None = None, pose: Pose | None = None) -> _Result:
        t1 = time.perf_counter()
        batch = decode_steering(raw[None], self.predictor.contract)
        post_ms = (time.perf_counter() - t1) * 1e3
        t = self.predictor.last_timings
        stages = {"capture": frame.capture_ms, "wait": wait_ms}
        if map_ms is not None:
            stages["map"] = map_ms
        stages.update({"preprocess": t.preprocess_ms if t else 0.0, "invoke": t.invoke_ms if t else 0.0,
                       "postprocess": (t.postprocess_ms if t else 0.0) + post_ms})
        return _Result(frame, float(batch.steering[0]), None if batch.throttle is None else float(batch.throttle[0]),
                       None if batch.std is None else float(batch.std[0]), stages, t0, content_mono, pose)

    def _route_step(self, frame: Frame, wait_ms: float, t0: float, content_mono: float) -> _Result:
        """The newest pose; stale: a neutral result without running the model; fresh: its map, then the model."""
        nav = self.nav
        pose = nav.poses.newest()
        if is_pose_stale(None if pose is None else pose.received, time.monotonic(), nav.deadline_s):
            return _Result(frame, 0.0, None, None, {}, t0, content_mono, pose, pose_stale=True)
        tm = time.perf_counter()
        raster = rasterise(nav.network, nav.route, pose.xyh, self.predictor.map_spec, out=self.map_buf)
        map_ms = (time.perf_counter() - tm) * 1e3
        raw = self.predictor.predict(frame.image, raster)
        return self._result(frame, raw, wait_ms, t0, content_mono, map_ms, pose)

    def _run(self) -> None:
        last_print: int | None = None
        content_mono = 0.0
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None or self.stop.is_set():
                    break
                wait_ms = (time.perf_counter() - t0) * 1e3
                if self.source.decodes_inline:  # read() decoded the frame: that is its capture time, not a wait
                    wait_ms = max(0.0, wait_ms - frame.capture_ms)
                # A sub-sampled checksum is enough: a live sensor's noise changes it on every real frame.
                fingerprint = zlib.crc32(frame.image[::4, ::4].tobytes()) if self.detect_frozen else None
                if fingerprint is None or fingerprint != last_print:
                    content_mono, last_print = frame.monotonic, fingerprint
                if self.nav is not None:
                    result = self._route_step(frame, wait_ms, t0, content_mono)
                else:
                    raw = self.predictor.predict(frame.image)
                    result = self._result(frame, raw, wait_ms, t0, content_mono)
                with self.cond:
                    if not self.source.live:  # every frame counts (images, --every-frame video): wait our turn
                        while self.pending is not None and not self.stop.is_set():
                            self.cond.wait(timeout=0.1)
                    self.pending = result  # live: newest wins, the emitter never acts on an older frame
                    self.cond.notify_all()
        except BaseException as exc:  # handed to the emitter, which stops safely and re-raises it
            self.error = exc
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()


def check_steering_model(predictor: Predictor, route: bool = False) -> None:
    """ModelError (one line) unless the predictor is a steering model and ``route`` (a route file and a pose
    source given) matches it: a ``navigate`` model needs them, an image-only ``steer`` model takes neither."""
    task = predictor.contract.task
    if task == "navigate" and not route:
        raise ModelError(f"{predictor.name} is a route-conditioned (navigate) model: it steers from the camera and a "
                         "map, so give --route FILE (the network and the route) and --pose SOURCE (where the car is)")
    if task == "steer" and route:
        raise ModelError(f"--route/--pose need a route-conditioned model (trained with --task navigate); "
                         f"{predictor.name} is an image-only steering model")
    if task not in ("steer", "navigate"):
        raise ModelError(
            f"{predictor.name} is a {task!r} model; steer needs a steering model exported by "
            "edgecnn (trained with --task steer, or --task navigate with --route and --pose)"
        )


def steer_stream(
    source: Source,
    predictor: Predictor,
    config: FailsafeConfig | None = None,
    on_command: Callable[[Command], None] | None = None,
    max_frames: int | None = None,
    stop: StopRequest | None = None,
    warmup: int = 5,
    detect_frozen: bool = True,
    route: RouteInputs | None = None,
) -> SteerResult:
    """Drive until the source ends, ``max_frames`` commands came from frames, ``stop`` is set, or an error.

    Args:
        source: where frames come from (closed by this function).
        predictor: a steering model (its contract's task must be ``steer``).
        config: deadline, slew-rate limit, throttle and uncertainty settings.
        on_command: receives every :class:`Command`, on the calling thread (a sink's ``send``).
        max_frames: stop after this many frames turned into commands (None: until the source ends).
        stop: a flag to stop on (set by :func:`stop_on_signals`); checked at least every 50 ms.
        warmup: leading frames excluded from the latency statistics.
        detect_frozen: treat a frame identical to the previous ones as only as fresh as the first of them
            (a frozen camera driver repeating one image goes ``stale``); turn off for synthetic still scenes.
        route: the network, route, pose source and pose deadline for a ``navigate`` model (required for one,
            refused for an image-only model).

    Returns:
        SteerResult; the last command sent is always a neutral ``stopped`` one.

    Raises:
        the source's or model's error (SourceError, ModelError, ...) after the ``stopped`` command went out.
    """
    check_steering_model(predictor, route is not None)
    config = config or FailsafeConfig()
    stop = stop or StopRequest()
    send = on_command or (lambda cmd: None)
    rec = LatencyRecorder(warmup=warmup)
    states: Counter[str] = Counter()
    cond = threading.Condition()
    worker = _Worker(source, predictor, cond, detect_frozen, route)
    deadline, heartbeat = config.deadline_s, config.deadline_s / 2
    start_mono = time.monotonic()
    shaper = CommandShaper(config, start_mono)  # the car is assumed neutral at the start: ramp from straight
    fresh_mono: float | None = None  # capture time (monotonic) of the newest frame turned into a command
    last_frame: int | None = None
    stale_next: float | None = None  # while stale: when the next repeated neutral is due
    worst_neutral: float | None = None
    last_sent: float | None = None
    longest_gap = 0.0
    late = frozen = 0
    reason = "error"
    frames_done = 0  # frames turned into commands (model ones, and pose-stale neutral ones)
    pose_neutral = False  # route models: a pose-stale neutral went out since the newest fresh pose was used
    worst_pose_neutral: float | None = None
    oldest_used: float | None = None  # the oldest pose (s) a command that used a map went out with

    def newest_pose() -> Pose | None:
        return None if route is None else route.poses.newest()

    def with_pose(cmd: Command, pose: Pose | None, used: bool, mono: float) -> Command:
        if route is None:
            return cmd
        age = pose_age_ms(None if pose is None else pose.received, mono)
        return replace(cmd, route=True, pose_age_ms=age, pose=pose.xyh if (used and pose is not None) else None)

    def pose_stale_neutral(frame: int | None, pose: Pose | None, mono: float) -> None:
        nonlocal pose_neutral, worst_pose_neutral
        if not pose_neutral:  # first neutral of this pose outage: how long after the newest pose arrived
            ref = start_mono if pose is None else pose.received
            worst_pose_neutral = max(worst_pose_neutral or 0.0, mono - ref)
        pose_neutral = True
        emit(with_pose(shaper.neutral("pose-stale", time.time(), mono, frame=frame), pose, False, mono))

    def emit(cmd: Command) -> None:
        nonlocal last_sent, longest_gap
        mono = time.monotonic()
        if last_sent is not None:
            longest_gap = max(longest_gap, mono - last_sent)
        last_sent = mono
        states[cmd.state] += 1
        send(cmd)

    worker.thread.start()
    try:
        while True:
            with cond:
                if worker.pending is None and not worker.done and not stop.requested:
                    fresh = start_mono if fresh_mono is None else fresh_mono
                    due = stale_next if stale_next is not None else fresh + deadline
                    if route is not None and not pose_neutral:  # wake when the newest pose goes stale
                        p = newest_pose()
                        due = min(due, (start_mono if p is None else p.received) + route.deadline_s)
                    cond.wait(timeout=min(_POLL_S, max(0.0, due - time.monotonic())))
                result, worker.pending = worker.pending, None
                done = worker.done
                cond.notify_all()  # a worker on an every-frame source waits for the slot to empty
            if stop.requested:
                reason = stop.signal or "stop request"
                break
            now_mono = time.monotonic()
            if result is not None:
                frame = result.frame
                if now_mono - result.content_mono > deadline:
                    if now_mono - frame.monotonic > deadline:
                        late += 1
                    else:
                        frozen += 1
                elif route is not None and (result.pose_stale or is_pose_stale(
                        result.pose.received, time.monotonic(), route.deadline_s)):
                    # Never the stale pose's map: neutral, counted as pose-stale (re-checked here, at sending).
                    pose_stale_neutral(frame.index, result.pose if result.pose_stale else newest_pose(),
                                       time.monotonic())
                    fresh_mono, last_frame, stale_next = result.content_mono, frame.index, None
                    frames_done += 1
                    if max_frames is not None and frames_done >= max_frames:
                        reason = "max frames"
                        break
                    continue
                else:
                    # wall and monotonic clocks read together: the slew limit runs on the one, the command's
                    # time is the other, and a thread descheduled between two distant reads would skew them
                    now_mono, now_wall = time.monotonic(), time.time()
                    cmd = shaper.from_output(result.steering, result.throttle, result.uncertainty,
                                             frame.timestamp, frame.index, now_wall, now_mono,
                                             file=frame.name if frame.name != source.description else None)
                    if route is not None:
                        cmd = with_pose(cmd, result.pose, True, now_mono)
                        oldest_used = max(oldest_used or 0.0, now_mono - result.pose.received)
                        pose_neutral = False
                    t_send = time.perf_counter()
                    emit(cmd)
                    end = time.perf_counter()
                    rec.add_frame({**result.stages_ms, "sink": (end - t_send) * 1e3}, result.started, end)
                    fresh_mono, last_frame, stale_next = result.content_mono, frame.index, None
                    frames_done += 1
                    if max_frames is not None and frames_done >= max_frames:
                        reason = "max frames"
                        break
                    continue  # another result may already be waiting
            if done:
                if worker.error is None:
                    reason = "end of stream"
                break
            now_mono = time.monotonic()
            if route is not None and not pose_neutral:
                p = newest_pose()
                if is_pose_stale(start_mono if p is None else p.received, now_mono, route.deadline_s):
                    pose_stale_neutral(last_frame, p, now_mono)  # poses stopped while frames still flow
                    continue
            if is_stale(fresh_mono, start_mono, now_mono, deadline) and (stale_next is None or now_mono >= stale_next):
                if stale_next is None:  # first neutral of this stall: how long after the last fresh frame
                    fresh = start_mono if fresh_mono is None else fresh_mono
                    worst_neutral = max(worst_neutral or 0.0, now_mono - fresh)
                emit(with_pose(shaper.neutral("stale", time.time(), now_mono, frame=last_frame), newest_pose(), False,
                               now_mono))
                stale_next = now_mono + heartbeat
    finally:
        # Safety first: the neutral stop goes out before anything else is cleaned up.
        try:
            mono = time.monotonic()
            emit(with_pose(shaper.neutral("stopped", time.time(), mono, frame=last_frame), newest_pose(), False, mono))
        finally:
            worker.stop.set()
            source.close()
            worker.thread.join(timeout=0.5)  # a hung invoke or read is left behind (daemon thread)
            source.join(timeout=1.0)  # let OpenCV out of read() before the process may exit
    if worker.error is not None and reason in ("error", "end of stream"):
        raise worker.error
    pose = None
    if route is not None:
        p = route.poses
        pose = {"source": p.description, "received": p.received, "skipped": p.skipped, "error": p.error,
                "deadline_ms": route.deadline_s * 1e3,
                "worst_neutral_ms": None if worst_pose_neutral is None else round(worst_pose_neutral * 1e3, 3),
                "oldest_used_ms": None if oldest_used is None else round(oldest_used * 1e3, 3)}
    return SteerResult(
        stats=rec.summary(), states=dict(states), late=late, frozen=frozen, non_finite=shaper.non_finite,
        worst_neutral_ms=None if worst_neutral is None else worst_neutral * 1e3,
        longest_gap_ms=longest_gap * 1e3, deadline_ms=deadline * 1e3, stop_reason=reason, pose=pose,
    )
