"""Labelled snapshots from the live camera into an image folder (one sub-folder per class, the layout ``train``
reads): :func:`record_images` is the importable core of ``edgecnn record images``.

The page shows one button per class: a tap saves one snapshot of the newest frame, holding it saves a burst at
``burst_hz`` while held. The page repeats "held" every 100 ms; a burst ends when it says "released" or when those
repeats stop for longer than the deadline (a page that disconnects mid-burst does not fill the disk), the rule
:func:`burst_active` states with the clock passed in. Files are written under a temporary name and renamed, so a
crash never leaves a half-written image in the data set. Counts per class (files already there included) are in
the page's overlay and on stderr.

Example::

    session = ImageSession(["cat", "dog"])
    view = LiveView.start(parse_serve("8000"), kind="images", handlers=session.handlers, info={"classes": [...]})
    with open_source("0") as src:
        result = record_images(src, Path("data/pets"), session, ImagesConfig(), view=view)
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.errors import OptionError, OutputError
from edgecnn.runtime.adapters import top_k
from edgecnn.runtime.failsafe import is_stale
from edgecnn.runtime.live.server import LiveView
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.record.drive import NewestFrame
from edgecnn.runtime.record.loop import stop_reason, stored_image
from edgecnn.runtime.sources import IMAGE_EXTENSIONS, Source

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def parse_classes(text: str) -> list[str]:
    """``"cat,dog"`` -> ``["cat", "dog"]``; OptionError for an empty, repeated or unsafe folder name."""
    names = [c.strip() for c in str(text).split(",") if c.strip()]
    if not names:
        raise OptionError("--classes needs at least one class name, e.g. --classes cat,dog")
    for n in names:
        if not _NAME.match(n) or n in (".", ".."):
            raise OptionError(f"bad class name {n!r}: use letters, digits, '_', '-', '.', '+' (it becomes a folder name)")
    if len(set(names)) != len(names):
        raise OptionError(f"--classes repeats a name: {text}")
    return names


def burst_active(held_since: float | None, last_heartbeat: float | None, now_mono: float, deadline_s: float) -> bool:
    """True while a class button is held: it was pressed (``held_since``) and its last "held" repeat is at most
    ``deadline_s`` old; all ``time.monotonic()`` seconds."""
    if held_since is None or last_heartbeat is None:
        return False
    return not is_stale(last_heartbeat, last_heartbeat, now_mono, deadline_s)


@dataclass(frozen=True)
class ImagesConfig:
    """Settings of an image capture.

    Attributes:
        burst_hz: snapshots per second while a class is held.
        deadline_s: a hold whose repeats stop for longer than this ends.
        size: ``(width, height)`` to store (area interpolation), None = as captured.
        duration_s: stop after this many seconds, None = until stopped.
        jpeg_quality: 1..100.
    """

    burst_hz: float = 5.0
    deadline_s: float = 0.5
    size: tuple[int, int] | None = None
    duration_s: float | None = None
    jpeg_quality: int = 95


@dataclass(frozen=True)
class ImagesResult:
    """What a capture did: ``saved`` per class this run, ``counts`` per class in the folder at the end."""

    out: str
    saved: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stop_reason: str = ""

    def format(self) -> str:
        per = ", ".join(f"{k} +{self.saved.get(k, 0)} ({self.counts.get(k, 0)} in all)" for k in self.counts)
        return f"{self.out}: {sum(self.saved.values())} image(s) saved in {self.seconds:.1f} s: {per}; stopped by {self.stop_reason}"


class ImageSession:
    """The page's capture requests (server thread) for the loop (its thread); ``handlers`` for a LiveView."""

    def __init__(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self._lock = threading.Lock()
        self.pending: list[str] = []  # single snapshots asked for
        self.held: str | None = None
        self.held_since: float | None = None
        self.heartbeat: float | None = None
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"capture": self.on_capture}

    def on_capture(self, payload: dict[str, Any]) -> dict[str, Any]:
        label = payload.get("label")
        if label not in self.classes:
            raise ValueError(f"unknown class {label!r}; one of {', '.join(self.classes)}")
        now = time.monotonic()
        with self._lock:
            if payload.get("hold", False):
                if self.held != label:  # a new press: one snapshot now, a burst if it stays held
                    self.pending.append(label)
                    self.held, self.held_since = label, now
                self.heartbeat = now
            elif self.held == label:
                self.held = self.held_since = self.heartbeat = None
        return {"ok": True}

    def take(self, now_mono: float, deadline_s: float) -> tuple[list[str], str | None]:
        """(single snapshots asked for since the last call, the class held in a burst or None)."""
        with self._lock:
            pending, self.pending = self.pending, []
            if self.held is not None and not burst_active(self.held_since, self.heartbeat, now_mono, deadline_s):
                self.held = self.held_since = self.heartbeat = None  # the page stopped repeating: the burst ends
            return pending, self.held


def _count(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _save(folder: Path, label: str, image: np.ndarray, quality: int, n: int) -> Path:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a frame as JPEG")
    dest = folder / f"{label}_{int(time.time() * 1000)}_{n:05d}.jpg"
    tmp = folder / f".{dest.name}.tmp"
    try:
        tmp.write_bytes(buf.tobytes())
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot save a snapshot in {folder}: {exc.strerror or exc}") from None
    return dest


def _top1(predictor: Predictor, image: np.ndarray) -> tuple[str, float]:
    scores = predictor.predict(image)
    labels = predictor.contract.labels
    (i, s), = top_k(scores, 1)
    return (labels[i] if i < len(labels) else str(i)), s


def record_images(
    source: Source,
    out: Path,
    session: ImageSession,
    config: ImagesConfig,
    view: LiveView | None = None,
    stop: Any = None,
    predictor: Predictor | None = None,
    on_saved: Callable[[str, dict[str, int]], None] | None = None,
) -> ImagesResult:
    """Capture until ``config.duration_s``, the source ends, ``stop.requested`` or an error.

    Args:
        source: the camera (closed by this function).
        out: the image folder; ``out/<class>/`` is created for every class.
        session: the page's requests.
        config: burst rate, deadline, size.
        view: the live page (frames with ``counts`` and, with a model, its ``label`` and ``score``).
        stop: an object whose ``requested`` attribute turns true to stop.
        predictor: a classifier whose top class is shown on the page.
        on_saved: called after each snapshot with (class, counts) (the CLI prints the counts).
    """
    out = Path(out)
    folders = {c: out / c for c in session.classes}
    try:
        for f in folders.values():
            f.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the image folder {out}: {exc.strerror or exc}") from None
    counts = {c: _count(f) for c, f in folders.items()}
    saved = dict.fromkeys(session.classes, 0)
    reader = NewestFrame(source)
    start = time.monotonic()
    last_seen = -1
    last_burst = 0.0
    n = 0
    reason = "error"
    try:
        while True:
            now = time.monotonic()
            ended = stop_reason(stop, start, now, config.duration_s)
            if ended is not None:
                reason = ended
                break
            if reader.error is not None:
                raise reader.error
            frame = reader.newest()
            if reader.ended and frame is None:
                reason = "end of stream"
                break
            pending, held = session.take(now, config.deadline_s)
            if held is not None and now - last_burst >= 1.0 / config.burst_hz and not pending:
                pending = [held]
            if frame is not None and pending:
                image = stored_image(frame.image, config.size)
                for label in pending:
                    n += 1
                    _save(folders[label], label, image, config.jpeg_quality, n)
                    counts[label] += 1
                    saved[label] += 1
                    if on_saved is not None:
                        on_saved(label, dict(counts))
                last_burst = now
            if frame is not None and frame.index != last_seen:
                last_seen = frame.index
                overlay: dict[str, Any] = {"counts": dict(counts), "held": held}
                if predictor is not None:
                    label, score = _top1(predictor, frame.image)
                    overlay.update(label=label, score=score)
                if view is not None:
                    view.publish(frame.image, overlay, timestamp=frame.timestamp, mono=frame.monotonic)
            time.sleep(0.01)
    finally:
        source.close()
        source.join(timeout=1.0)
    return ImagesResult(str(out), saved, counts, time.monotonic() - start, reason)
