"""The newest-frame slot between a camera loop and the live page's clients.

The camera loop calls :meth:`FrameSlot.publish` with a frame and its overlay: a few assignments under a lock, no
copy, no encoding, no waiting for anyone. The server encodes a JPEG only when a client asks for a frame it has
not seen, once per frame whatever the number of clients, and always the newest one: a slow client skips frames,
it never receives an older frame than one it already got, and nothing queues up for it.

Example::

    slot = FrameSlot()
    slot.publish(frame_bgr, {"label": "cat", "score": 0.93})   # camera thread
    newest = slot.newest()                                        # server thread
    jpeg = slot.jpeg(newest)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class Published:
    """One published frame.

    Attributes:
        seq: 1, 2, 3, ... in publishing order (a client asks for "newer than seq").
        image: ``uint8 HxWx3`` BGR, the publisher's array (not copied: the publisher must not modify it after).
        overlay: what the page draws over the image (label, score, steering, counts, ...): JSON-able values.
        timestamp: capture time, epoch seconds.
        mono: capture time on ``time.monotonic()`` seconds.
    """

    seq: int
    image: np.ndarray
    overlay: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0
    mono: float = 0.0


class FrameSlot:
    """Thread-safe newest-frame box with a one-entry JPEG cache.

    Args:
        jpeg_quality: 1..100.
        max_width: frames wider than this are shrunk (area interpolation) before encoding, to spare a phone's
            WiFi; 0 = never.
        on_publish: called after every publish, on the publishing thread; it must not block (the server passes
            ``loop.call_soon_threadsafe``-based wake-ups).
    """

    def __init__(self, jpeg_quality: int = 80, max_width: int = 640,
                 on_publish: Callable[[], None] | None = None) -> None:
        self.jpeg_quality = int(jpeg_quality)
        self.max_width = int(max_width)
        self.on_publish = on_publish
        self._lock = threading.Lock()
        self._newest: Published | None = None
        self._seq = 0
        self._times: deque[float] = deque(maxlen=41)
        self._jpeg_lock = threading.Lock()
        self._jpeg_seq = 0
        self._jpeg: bytes = b""
        self.encoded = 0  # JPEG encodings done (at most one per published frame)

    def publish(self, image: np.ndarray, overlay: dict[str, Any] | None = None, timestamp: float | None = None,
                mono: float | None = None) -> int:
        """Make ``image`` (``uint8 HxWx3`` BGR) the newest frame; returns its seq. Never waits for a client."""
        now = time.monotonic()
        with self._lock:
            self._seq += 1
            self._newest = Published(self._seq, image, dict(overlay or {}),
                                     time.time() if timestamp is None else timestamp, now if mono is None else mono)
            self._times.append(now)
            seq = self._seq
        if self.on_publish is not None:
            self.on_publish()
        return seq

    def newest(self) -> Published | None:
        with self._lock:
            return self._newest

    @property
    def seq(self) -> int:
        """The newest frame's seq (0 before the first)."""
        return self._seq

    def fps(self) -> float | None:
        """Frames published per second over the last 40 frames (None before 2 frames)."""
        with self._lock:
            times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def jpeg(self, frame: Published) -> bytes:
        """``frame`` as JPEG bytes, encoded once (a second client asking for the same frame gets the cache)."""
        with self._jpeg_lock:
            if self._jpeg_seq == frame.seq:
                return self._jpeg
            image = frame.image
            h, w = image.shape[:2]
            if self.max_width and w > self.max_width:
                size = (self.max_width, max(1, round(h * self.max_width / w)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError("OpenCV could not encode a frame as JPEG")
            self._jpeg_seq, self._jpeg = frame.seq, buf.tobytes()
            self.encoded += 1
            return self._jpeg
