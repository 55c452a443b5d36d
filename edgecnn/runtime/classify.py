"""The classification loop: source -> predictor -> sinks, with per-stage latency statistics.

:func:`classify_stream` is the importable core of ``edgecnn classify``; it reads frames from a
:class:`~edgecnn.runtime.sources.Source`, runs a :class:`~edgecnn.runtime.predictor.Predictor`, hands each
:class:`Classification` to a callback, optionally shows and/or records an annotated video, and returns
:class:`~edgecnn.runtime.stats.RunStats` when the source ends, ``max_frames`` is reached, or the user presses
Ctrl-C / sends SIGTERM (the recording is then finalised, not lost).

The loop itself (:func:`run_loop`: read, process, sinks, :class:`Window`, :class:`VideoRecorder`, per-stage
statistics) is shared with ``segment`` (:mod:`edgecnn.runtime.segment`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from edgecnn.atomic import atomic_path
from edgecnn.errors import OutputError
from edgecnn.runtime.adapters import top_k as _top_k
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.sources import Frame, Source
from edgecnn.runtime.stats import LatencyRecorder, RunStats

STAGES = ("capture", "preprocess", "invoke", "postprocess")

R = TypeVar("R")  # a loop's per-frame result (Classification, Segmentation), with a ``latency_ms`` dict


@dataclass(frozen=True)
class Classification:
    """The result for one frame.

    Attributes:
        frame: the frame's index in its source.
        time: wall-clock capture time, seconds since the epoch.
        name: image file name, or the source description.
        top: ``((index, label, score), ...)`` best first; scores are the model's dequantized outputs
            (probabilities in [0, 1] for a softmax head).
        latency_ms: milliseconds per stage: ``capture`` (read + decode, on the reader thread),
            ``preprocess``, ``invoke``, ``postprocess``.
    """

    frame: int
    time: float
    name: str
    top: tuple[tuple[int, str, float], ...]
    latency_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` line: keys ``frame``, ``time``, ``name``, ``top``, ``latency_ms``."""
        return {
            "frame": self.frame,
            "time": round(self.time, 6),
            "name": self.name,
            "top": [{"index": i, "label": lab, "score": round(s, 6)} for i, lab, s in self.top],
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }

    def format(self) -> str:
        """One human-readable line: ``parrot.jpg  macaw 0.805  lorikeet 0.047``."""
        tops = "  ".join(f"{lab} {s:.3f}" for _, lab, s in self.top)
        return f"{self.name} #{self.frame}  {tops}" if self.name else f"#{self.frame}  {tops}"


def annotate(image: np.ndarray, result: Classification, fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` (``uint8 HxWx3 BGR``) with the top classes (and FPS) drawn in the top-left corner."""
    out = image.copy()
    scale = max(0.4, out.shape[0] / 640)
    lines = [f"{lab} {s:.2f}" for _, lab, s in result.top]
    if fps:
        lines.append(f"{fps:.1f} FPS")
    for i, text in enumerate(lines):
        y = int((i + 1) * 24 * scale)
        cv2.putText(out, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoRecorder:
    """Writes annotated frames to an .mp4, atomically: the file appears complete on :meth:`close`, or not at all.

    The size is taken from the first frame; later frames of another size are resized to it.
    """

    def __init__(self, dest: str | Path, fps: float) -> None:
        self.dest = Path(dest)
        self.fps = fps if fps and fps > 0 else 15.0
        self._ctx = atomic_path(self.dest, suffix=self.dest.suffix or ".mp4")
        self._tmp = self._ctx.__enter__()
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self._writer is None:
            h, w = image.shape[:2]
            self._size = (w, h)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                self.abort()
                raise OutputError(f"cannot record to {self.dest}: OpenCV has no mp4v encoder here; try an .avi name")
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (nothing is written when no frame was recorded)."""
        if self._writer is not None:
            self._writer.release()
        if self.frames == 0:
            self.abort()
            return
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        """Discard the partial recording."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        with contextlib.suppress(BaseException):
            self._ctx.__exit__(OutputError, OutputError("aborted"), None)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while the loop runs, so ``kill`` ends it as cleanly as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class Window:
    """An OpenCV window titled ``name``; ``q`` or Esc closes it and stops the loop (``classify``, ``segment``).

    Raises OutputError (one line) when OpenCV has no GUI support or there is no display.
    """

    def __init__(self, name: str = "edgecnn") -> None:
        self.name = name
        try:
            cv2.namedWindow(self.name, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise OutputError(
                "--show needs OpenCV with GUI support (pip install opencv-python instead of the headless build) "
                "and a display"
            ) from exc

    def show(self, image: np.ndarray) -> bool:
        """Display ``image`` (``uint8 HxWx3 BGR``); False when the user asked to quit."""
        cv2.imshow(self.name, image)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            cv2.destroyWindow(self.name)


def classify_frame(predictor: Predictor, frame: Frame, k: int) -> Classification:
    """Classify one frame; ``latency_ms`` holds this frame's stage times."""
    scores = predictor.predict(frame.image)
    t0 = time.perf_counter()
    labels = predictor.contract.labels
    top = tuple((i, labels[i] if i < len(labels) else str(i), s) for i, s in _top_k(scores, k))
    post_extra = (time.perf_counter() - t0) * 1e3
    t = predictor.last_timings
    assert t is not None  # set by predict()
    return Classification(
        frame=frame.index,
        time=frame.timestamp,
        name=frame.name,
        top=top,
        latency_ms={"capture": frame.capture_ms, "preprocess": t.preprocess_ms, "invoke": t.invoke_ms,
                    "postprocess": t.postprocess_ms + post_extra},
    )


def classify_stream(
    source: Source,
    predictor: Predictor,
    top_k: int = 3,
    max_frames: int | None = None,
    on_result: Callable[[Classification], None] | None = None,
    show: bool = False,
    record: str | Path | None = None,
    warmup: int = 5,
) -> RunStats:
    """Run the loop until the source ends, ``max_frames`` frames are done, or Ctrl-C/SIGTERM.

    Args:
        source: where frames come from (closed by this function).
        predictor: the model.
        top_k: classes per result.
        max_frames: stop after this many frames (None: until the source ends).
        on_result: called with each :class:`Classification` (printing, JSON, steering a robot...).
        show: display an annotated window (needs a GUI build of OpenCV).
        record: write the annotated video to this .mp4 path (atomically; finalised on Ctrl-C too).
        warmup: leading frames excluded from the statistics.

    Returns:
        RunStats with stages ``capture`` (read + decode, on the source's thread or inline), ``wait`` (time the
        loop waited for a frame, beyond decoding it), ``preprocess``,
        ``invoke``, ``postprocess``, ``sink`` (callback, display, recording).
    """
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    return run_loop(source, lambda frame: classify_frame(predictor, frame, top_k), STAGES, max_frames=max_frames,
                    on_result=on_result, draw=annotate, show=show, record=record, warmup=warmup)


def run_loop(
    source: Source,
    process: Callable[[Frame], R],
    stages: tuple[str, ...],
    max_frames: int | None = None,
    on_result: Callable[[R], None] | None = None,
    draw: Callable[[np.ndarray, R, float | None], np.ndarray] | None = None,
    show: bool = False,
    record: str | Path | None = None,
    warmup: int = 5,
    window_name: str = "edgecnn",
) -> RunStats:
    """The frame loop of ``classify`` and ``segment``: read a frame, ``process`` it, hand the result to the sinks,
    until the source ends, ``max_frames`` frames are done, the window is closed, or Ctrl-C/SIGTERM.

    Args:
        source: where frames come from (closed, and its reader joined, by this function).
        process: frame -> result whose ``latency_ms`` holds a time (ms) for each of ``stages``.
        stages: the stages ``process`` times (``capture`` first: the frame's read + decode).
        max_frames, warmup: stop after this many frames; leading frames excluded from the statistics.
        on_result: called with each result (printing, JSON, mask files...).
        draw: ``(frame image, result, fps or None) -> annotated uint8 HxWx3 BGR`` for ``show`` and ``record``.
        show: display the drawing in a :class:`Window` titled ``window_name`` (needs a GUI build of OpenCV).
        record: write the drawing to this .mp4 (atomically; finalised on Ctrl-C too, discarded on an error).

    Returns:
        RunStats with ``stages`` and ``wait`` (time the loop waited for a frame, beyond decoding it) and ``sink``
        (callback, display, recording).
    """
    rec = LatencyRecorder(warmup=warmup)
    window = Window(window_name) if show else None
    recorder = VideoRecorder(record, source.fps or 15.0) if record else None
    ok = False
    fps_ema: float | None = None  # smoothed FPS for the overlay
    last_end: float | None = None
    try:
        with sigterm_as_interrupt():
            try:
                while max_frames is None or rec.frames < max_frames:
                    rec.start_frame()
                    t0 = time.perf_counter()
                    frame = source.read()
                    if frame is None:
                        break
                    wait_ms = (time.perf_counter() - t0) * 1e3
                    if source.decodes_inline:  # read() decoded the frame: that is its capture time, not a wait
                        wait_ms = max(0.0, wait_ms - frame.capture_ms)
                    result = process(frame)
                    for stage in stages:
                        rec.add(stage, result.latency_ms[stage])
                    rec.add("wait", wait_ms)
                    t1 = time.perf_counter()
                    if on_result:
                        on_result(result)
                    keep_going = True
                    if draw is not None and (window or recorder):
                        image = draw(frame.image, result, fps_ema)
                        if recorder:
                            recorder.write(image)
                        if window:
                            keep_going = window.show(image)
                    rec.add("sink", (time.perf_counter() - t1) * 1e3)
                    rec.end_frame()
                    now = time.perf_counter()
                    if last_end is not None and now > last_end:
                        inst = 1.0 / (now - last_end)
                        fps_ema = inst if fps_ema is None else 0.9 * fps_ema + 0.1 * inst
                    last_end = now
                    if not keep_going:
                        break
            except KeyboardInterrupt:
                pass  # a normal way to stop a live loop: fall through to the summary
        ok = True
    finally:
        source.close()
        # Let OpenCV out of read() on the reader thread: a process that exits while a daemon thread is inside
        # VideoCapture.read() dies with SIGABRT/SIGSEGV at shutdown (seen on every live stream with --max-frames).
        source.join(timeout=1.0)
        if window:
            window.close()
        if recorder:
            recorder.close() if ok else recorder.abort()
    return rec.summary()
