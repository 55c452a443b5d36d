"""Put the live page on an existing loop without touching it: :class:`FrameTap` wraps the loop's source and keeps
its last frames by index, and the loop's own result callback publishes the frame a result came from.

Example (``classify --serve``)::

    tap = FrameTap(open_source("0"))
    view = LiveView.start(parse_serve("8000"), kind="classify", title="shapes_int8.tflite")
    classify_stream(tap, predictor, on_result=lambda r: publish_classification(view, tap, r))
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from edgecnn.runtime.live.server import LiveView
from edgecnn.runtime.sources import Frame, Source


class FrameTap(Source):
    """A :class:`~edgecnn.runtime.sources.Source` that passes every frame through and remembers the last ``keep``
    of them by index (thread-safe: the steering loop reads on one thread and emits on another)."""

    def __init__(self, source: Source, keep: int = 16) -> None:
        self.source = source
        self.description = source.description
        self.live = source.live
        self.fps = source.fps
        self.keep = keep
        self._frames: OrderedDict[int, Frame] = OrderedDict()
        self._lock = threading.Lock()

    def read(self) -> Frame | None:
        frame = self.source.read()
        if frame is not None:
            with self._lock:
                self._frames[frame.index] = frame
                while len(self._frames) > self.keep:
                    self._frames.popitem(last=False)
        return frame

    def get(self, index: int | None) -> Frame | None:
        """The frame with this index, if it is still among the last ``keep``."""
        if index is None:
            return None
        with self._lock:
            return self._frames.get(index)

    def close(self) -> None:
        self.source.close()

    def join(self, timeout: float = 1.0) -> bool:
        return self.source.join(timeout)


def publish_classification(view: LiveView, tap: FrameTap, result: Any) -> None:
    """Publish the frame of ``result`` (a :class:`~edgecnn.runtime.classify.Classification`: ``frame``, ``top``,
    ``latency_ms``) with its top classes as the overlay."""
    frame = tap.get(result.frame)
    if frame is None:
        return
    top = [[label, score] for _, label, score in result.top]
    overlay = {"label": top[0][0], "score": top[0][1], "top": top, "latency_ms": dict(result.latency_ms)} if top \
        else {"latency_ms": dict(result.latency_ms)}
    view.publish(frame.image, overlay, timestamp=frame.timestamp, mono=frame.monotonic)


def publish_command(view: LiveView, tap: FrameTap, command: Any) -> None:
    """Publish the frame of a steering ``command`` (:class:`~edgecnn.runtime.failsafe.Command`) with its steering,
    throttle and state; a neutral command without a new frame re-publishes the last frame with the new state."""
    frame = tap.get(command.frame)
    if frame is None:
        newest = view.slot.newest()
        if newest is None:
            return
        view.publish(newest.image, {"steering": command.steering, "throttle": command.throttle,
                                    "state": command.state}, timestamp=newest.timestamp, mono=newest.mono)
        return
    view.publish(frame.image, {"steering": command.steering, "throttle": command.throttle, "state": command.state,
                               "uncertainty": command.uncertainty}, timestamp=frame.timestamp, mono=frame.monotonic)
