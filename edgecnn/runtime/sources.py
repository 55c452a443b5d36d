"""Frame sources: cameras, streams, video files and images behind one small interface.

:func:`open_source` turns a ``--source`` string into a :class:`Source`:

- ``"0"``, ``"1"``: camera index; ``"/dev/video0"``: a V4L2 device;
- ``"rtsp://..."``, ``"http(s)://..."``: a network stream;
- ``"picamera2"``: the Raspberry Pi camera through the picamera2 library (imported only then);
- a video file (``.mp4``, ``.avi``, ...);
- an image file, a folder of images, or a glob (``"photos/*.jpg"``), in natural name order (``2.jpg`` before
  ``10.jpg``);
- a Donkey Car tub or a steering CSV: in recording order (catalog order, row order), each frame carrying its
  recorded capture time (a tub's ``_timestamp_ms``) so that ``steer``'s slew limit runs in the recording's time.

Live sources (cameras, streams, and video files unless ``every_frame``) are read on their own thread and keep
only the newest frame: the loop always works on the freshest image and a slow model drops frames instead of
falling behind. Images, and video files with ``every_frame=True``, deliver every frame in order, decoded by
:meth:`Source.read` on the caller's thread (nothing to gain from reading ahead of a loop that takes every frame,
and in CPython a decoding thread slows a CPU-bound loop down; see :class:`ImageSource`). Video files are read until the stream ends (their frame-count property is often wrong).

A camera or stream that disappears or stalls is reconnected with back-off, printing one line each time; after
``give_up_s`` seconds without a frame the source raises :class:`~edgecnn.errors.SourceError`.

Local cameras (OpenCV devices, picamera2) are opened at a size chosen on purpose (``capture_size``, see
:func:`choose_capture_size`): the camera's scaler shrinks the image for free, where a 640x480 default frame would
cost a large resize per frame. The size the camera really gave is read back (:attr:`Source.capture_size`).

Example::

    with open_source("0") as src:
        for frame in src:                  # Frame: uint8 HxWx3 BGR + index + capture time
            ...
"""

from __future__ import annotations

import glob as _glob
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError, SourceError
from edgecnn.preprocess import IMAGE_EXTENSIONS, load_image
from edgecnn.runtime.native_stderr import filtered_native_stderr
from edgecnn.runtime.recording import is_labelled_recording, natural_key, recorded_images

# Common camera modes, smallest first: without a recorded training size, a camera is asked for the first one
# that covers the model's input (V4L2 drivers snap a request to a mode they have; the size is read back).
CAMERA_MODES = ((160, 120), (320, 240), (640, 480), (800, 600), (1280, 720), (1920, 1080))
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".h264"}
STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    Attributes:
        image: ``uint8 HxWx3`` BGR (OpenCV's layout).
        index: position in the source, from 0; gaps mean frames the loop skipped to stay current.
        timestamp: wall-clock capture time, seconds since the epoch (``time.time()``).
        monotonic: capture time on ``time.monotonic()``, for staleness checks (seconds).
        capture_ms: time spent reading and decoding this frame, milliseconds.
        name: file name for images, else the source's description.
    """

    image: np.ndarray
    index: int
    timestamp: float
    monotonic: float
    capture_ms: float
    name: str

    @property
    def age_s(self) -> float:
        """Seconds since capture."""
        return time.monotonic() - self.monotonic


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Source:
    """A stream of :class:`Frame` objects; iterate it, or call :meth:`read` until it returns None.

    Attributes:
        description: what the user asked for, for messages.
        live: True when frames may be dropped to stay current (cameras, streams, paced video).
        fps: nominal frame rate when known (video files, some cameras), else None.
        capture_size: ``(width, height)`` a camera delivers, read back from it after asking; None for files and
            streams (their size is whatever they hold).
        decodes_inline: True when :meth:`read` decodes the frame itself (images, every-frame video): the time it
            takes is the frame's ``capture_ms``, not waiting; False when a reader thread decodes ahead.
    """

    description: str = "source"
    live: bool = False
    fps: float | None = None
    capture_size: tuple[int, int] | None = None
    decodes_inline: bool = False

    def read(self) -> Frame | None:
        """The next frame (the newest one for a live source), or None when the source has ended.

        Raises SourceError when the source fails for good (a camera gone for longer than the give-up time).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Stop reading and release the device or file; safe to call twice."""

    def join(self, timeout: float = 1.0) -> bool:
        """After :meth:`close`: wait up to ``timeout`` seconds for the reading thread to let go of the device;
        True when it did. A process that exits while OpenCV is still inside ``read()`` on another thread can
        abort ("terminate called without an active exception"), so a command that exits right after closing
        calls this."""
        return True

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


class _ThreadedSource(Source):
    """A producer thread feeding either a bounded queue (every frame) or a one-slot "newest frame" box."""

    def __init__(self, description: str, keep_every_frame: bool) -> None:
        self.description = description
        self.live = not keep_every_frame
        self._every = keep_every_frame
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=4)
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._count = 0
        self._thread = threading.Thread(target=self._run, name=f"source:{description}", daemon=True)

    def _start(self) -> None:
        self._thread.start()

    def _produce(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _emit(self, image: np.ndarray, capture_ms: float, name: str | None = None) -> bool:
        """Hand a frame to the consumer; False when the source was closed (stop producing)."""
        frame = Frame(image, self._count, time.time(), time.monotonic(), capture_ms, name or self.description)
        self._count += 1
        if self._every:
            while not self._stop.is_set():
                try:
                    self._queue.put(frame, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False
        with self._cond:
            self._latest = frame
            self._cond.notify_all()
        return not self._stop.is_set()

    def _run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # handed to the consumer thread, which raises it
            self._error = exc if isinstance(exc, SourceError) else SourceError(f"{self.description}: {exc}")
        finally:
            self._finish()

    def _finish(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        if self._every:
            while not self._stop.is_set():
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _wait_timeout(self) -> float | None:
        return None

    def read(self) -> Frame | None:
        if self._every:
            item = self._queue.get()
            if item is _END:
                self._queue.put(_END)  # later reads see the end too
                if self._error:
                    raise self._error
                return None
            return item
        with self._cond:
            while True:
                if self._latest is not None and self._latest.index > self._taken:
                    self._taken = self._latest.index
                    return self._latest
                if self._error:
                    raise self._error
                if self._ended:
                    return None
                if not self._cond.wait(timeout=self._wait_timeout()):
                    self._on_wait_timeout()

    def _on_wait_timeout(self) -> None:
        """Called (lock held) when no frame arrived within :meth:`_wait_timeout` seconds."""

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def join(self, timeout: float = 1.0) -> bool:
        thread = self._thread
        if thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()


class ImageSource(Source):
    """Image files, every one in order, decoded on the thread that calls :meth:`read`; an unreadable image is
    reported and skipped.

    Why not on a reader thread like cameras: files are never stale, so nothing is gained by reading ahead, and in
    CPython a decoding thread beside a CPU-bound loop costs more than it overlaps. Measured here (2 cores, shared
    tub, shapes model): the frame period was 4.4 ms with a reader thread (the loop's preprocess 0.84 ms instead
    of 0.24 ms, waiting for the GIL after each OpenCV call, and 1.8 ms waiting for frames) against 1.5 ms with
    the decode inline.
    """

    decodes_inline = True

    def __init__(self, paths: list[Path], description: str, warn: Callable[[str], None] = _stderr,
                 timestamps: list[float | None] | None = None) -> None:
        """``timestamps``: each image's recorded capture time (epoch seconds; a tub's), else None: read time."""
        if not paths:
            raise SourceError(f"no images found for {description}")
        self.description = description
        self.live = False
        self.paths = paths
        self.timestamps = timestamps
        self._warn = warn
        self._next = 0
        self._count = 0
        self._good = 0
        self._closed = False

    def read(self) -> Frame | None:
        while not self._closed and self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            t0 = time.perf_counter()
            try:
                image = load_image(path)
            except DataError as exc:
                self._warn(f"skipping {exc}")
                continue
            self._good += 1
            recorded = self.timestamps[self._next - 1] if self.timestamps else None
            frame = Frame(image, self._count, time.time() if recorded is None else recorded, time.monotonic(),
                          (time.perf_counter() - t0) * 1e3, path.name)
            self._count += 1
            return frame
        if not self._closed and not self._good:
            raise SourceError(f"none of the {len(self.paths)} image(s) of {self.description} could be decoded")
        return None

    def close(self) -> None:
        self._closed = True


class VideoFileSource(_ThreadedSource):
    """A video file read until the stream ends.

    With ``every_frame`` every frame is delivered, decoded inline by :meth:`read` (see :class:`ImageSource` for
    why); otherwise the file plays at its own frame rate on a reader thread, like a camera, and the loop takes
    the newest frame.
    """

    def __init__(self, path: Path, every_frame: bool = False) -> None:
        super().__init__(str(path), keep_every_frame=every_frame)
        if not path.is_file():
            raise SourceError(f"video file not found: {path}")
        # FFmpeg's "[mov,mp4,...] moov atom not found" would precede our own one-line error.
        with filtered_native_stderr(lambda line: line.startswith("[")):
            self._cap = cv2.VideoCapture(str(path))
            ok, first = self._cap.read() if self._cap.isOpened() else (False, None)
        if not ok or first is None:
            self._cap.release()
            raise SourceError(f"cannot decode video {path} (unsupported codec or damaged file)")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps <= 240 else None
        self._first: np.ndarray | None = first
        self.decodes_inline = every_frame
        # Inline reads happen on the loop's thread while close() may come from another one (steer's emitter):
        # the capture is only released by whoever holds this lock, never under a read.
        self._cap_lock = threading.Lock()
        if not every_frame:
            self._start()

    def read(self) -> Frame | None:
        if not self.decodes_inline:
            return super().read()
        with self._cap_lock:
            if self._stop.is_set() or self._cap is None:
                self._release_cap()
                return None
            t0 = time.perf_counter()
            if self._first is not None:
                image, self._first, capture_ms = self._first, None, 0.0
            else:
                ok, image = self._cap.read()
                capture_ms = (time.perf_counter() - t0) * 1e3
                if not ok or image is None:
                    self._release_cap()
                    return None
            frame = Frame(image, self._count, time.time(), time.monotonic(), capture_ms, self.description)
            self._count += 1
            return frame

    def _release_cap(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def close(self) -> None:
        super().close()
        if self.decodes_inline and self._cap_lock.acquire(blocking=False):  # else the reader releases it
            try:
                self._release_cap()
            finally:
                self._cap_lock.release()

    def join(self, timeout: float = 1.0) -> bool:
        if not self.decodes_inline:
            return super().join(timeout)
        if self._cap_lock.acquire(timeout=timeout):  # a read in progress on another thread ends first
            try:
                self._release_cap()
            finally:
                self._cap_lock.release()
            return True
        return False

    def _produce(self) -> None:
        period = 1.0 / (self.fps or 30.0)  # play at the file's rate, as a camera would deliver it
        start = time.monotonic()
        image, capture_ms, n = self._first, 0.0, 0
        try:
            while image is not None:
                delay = start + n * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not self._emit(image, capture_ms):
                    return
                n += 1
                t0 = time.perf_counter()
                ok, image = self._cap.read()
                capture_ms = (time.perf_counter() - t0) * 1e3
                if not ok:
                    image = None
        finally:
            self._cap.release()


def choose_capture_size(
    requested: tuple[int, int] | None, source_size: tuple[int, ...] | None, input_size: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The ``(width, height)`` to open a camera at.

    Args:
        requested: ``--capture-size``, which wins.
        source_size: the contract's ``source_size``: the size of the frames the model was trained on (a tub
            recorded at 160x120), so the camera does the shrinking the training data had.
        input_size: the model's input ``(width, height)``; without the two above, the smallest of
            :data:`CAMERA_MODES` that covers it (the largest mode when none does).

    Returns None when nothing is known (the camera's default size is used).
    """
    if requested:
        return (int(requested[0]), int(requested[1]))
    if source_size and len(source_size) == 2:
        return (int(source_size[0]), int(source_size[1]))
    if input_size:
        w, h = input_size
        return next((m for m in CAMERA_MODES if m[0] >= w and m[1] >= h), CAMERA_MODES[-1])
    return None


def capture_note(source: Source, asked: tuple[int, int] | None, why: str = "") -> str | None:
    """One line saying at which size a camera delivers (and that it differs from what was asked); None for
    files and streams."""
    got = source.capture_size
    if got is None:
        return None
    line = f"{source.description}: capturing at {got[0]}x{got[1]}"
    if asked and tuple(asked) != tuple(got):
        line += f" (asked for {asked[0]}x{asked[1]}{', ' + why if why else ''}; the camera has no such mode)"
    elif why:
        line += f" ({why})"
    return line


def capture_reason(requested: tuple[int, int] | None, source_size: tuple[int, ...] | None) -> str:
    """Why :func:`choose_capture_size` chose its size, for :func:`capture_note`."""
    if requested:
        return "--capture-size"
    if source_size:
        return "the size of the model's training frames"
    return "the smallest common mode covering the model's input"


def _capture_size_of(cap: Any) -> tuple[int, int] | None:
    """The frame size an opened capture delivers: its ``size`` attribute, else OpenCV's properties."""
    size = getattr(cap, "size", None)
    if size:
        return (int(size[0]), int(size[1]))
    try:
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    except Exception:  # a capture without properties
        return None
    return (w, h) if w > 0 and h > 0 else None


def _opencv_opener(target: int | str, size: tuple[int, int] | None = None) -> Callable[[], Any]:
    def open_() -> Any:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            return None
        if size:  # a request: the driver picks its nearest mode, read back by _capture_size_of
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        return cap

    return open_


class _Picamera2Capture:
    """picamera2 behind the ``read()/release()`` interface, at ``size`` (width, height; default 640x480)."""

    def __init__(self, size: tuple[int, int] | None = None) -> None:
        try:
            from picamera2 import Picamera2  # lazy: picamera2
        except ImportError as exc:
            raise SourceError(
                "--source picamera2 needs the picamera2 library (sudo apt install python3-picamera2, and create "
                "the venv with --system-site-packages)"
            ) from exc
        self._cam = Picamera2()
        # "RGB888" in libcamera's naming is B,G,R byte order in memory: exactly OpenCV's BGR. The ISP scales to
        # any size; libcamera may align it (align_configuration), so the size is read back after configuring.
        config = self._cam.create_video_configuration(main={"format": "RGB888", "size": tuple(size or (640, 480))})
        self._cam.align_configuration(config)
        self._cam.configure(config)
        self.size = tuple(self._cam.camera_configuration()["main"]["size"])
        self._cam.start()

    def read(self) -> tuple[bool, np.ndarray | None]:
        img = self._cam.capture_array()
        return (img is not None, img)

    def release(self) -> None:
        try:
            self._cam.stop()
            self._cam.close()
        except Exception:  # the camera may already be gone
            pass


class CameraSource(_ThreadedSource):
    """A camera or network stream: newest frame only, reconnected with back-off when it fails or stalls.

    Args:
        opener: returns an opened capture (``read() -> (ok, frame)``, ``release()``) or None when the device
            cannot be opened; called again on every reconnection.
        description: for messages, e.g. ``"camera 0"``.
        give_up_s: seconds without a frame after which :meth:`read` raises SourceError.
        stall_s: seconds without a new frame after which the camera is considered stalled and reopened.
        warn: receives one line per reconnection attempt (default: stderr).
    """

    def __init__(
        self,
        opener: Callable[[], Any],
        description: str,
        give_up_s: float = 10.0,
        stall_s: float = 2.0,
        warn: Callable[[str], None] = _stderr,
    ) -> None:
        super().__init__(description, keep_every_frame=False)
        self.live = True
        self._opener = opener
        self.give_up_s = give_up_s
        self.stall_s = stall_s
        self._warn = warn
        self._generation = 0
        self._last_frame_t = time.monotonic()
        self._blocked_since: float | None = None  # set while the current reader waits in cap.read()
        # Fail fast when the camera is not there at all: one clear line, not a minute of retries.
        cap = opener()
        if cap is None:
            raise SourceError(f"cannot open {description}; check that it is connected and not used by another program")
        self._cap = cap
        self.capture_size = _capture_size_of(cap)
        self._start()

    def _run(self) -> None:
        self._reader(self._generation, self._cap)

    def _reader(self, generation: int, cap: Any) -> None:
        """One reader thread's life; a reader superseded after a stall leaves quietly."""
        try:
            self._read_loop(generation, cap)
        except BaseException as exc:
            if generation == self._generation:
                self._error = exc if isinstance(exc, SourceError) else SourceError(f"{self.description}: {exc}")
        finally:
            if generation == self._generation or self._stop.is_set():
                self._finish()

    def _read_loop(self, generation: int, cap: Any) -> None:
        backoff = 0.5
        while not self._stop.is_set() and generation == self._generation:
            if cap is None:
                if time.monotonic() - self._last_frame_t > self.give_up_s:
                    raise SourceError(
                        f"{self.description}: no frame for {self.give_up_s:.0f} s, giving up "
                        "(raise --reconnect-timeout to wait longer)"
                    )
                cap = self._opener()
                if cap is None:
                    self._warn(f"{self.description}: cannot reopen, retrying in {backoff:.1f} s")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                self._warn(f"{self.description}: reconnected")
                backoff = 0.5
            t0 = time.perf_counter()
            self._blocked_since = time.monotonic()
            try:
                ok, image = cap.read()
            except Exception:  # some backends raise instead of returning False
                ok, image = False, None
            if generation == self._generation:
                self._blocked_since = None
            if generation != self._generation or self._stop.is_set():
                break  # a newer reader replaced this one while it was blocked
            if not ok or image is None or image.size == 0:
                self._warn(f"{self.description}: lost the stream, reconnecting")
                self._release(cap)
                cap = None
                continue
            self._last_frame_t = time.monotonic()
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            elif image.shape[2] == 4:
                image = image[:, :, :3]
            self._emit(image, (time.perf_counter() - t0) * 1e3)
        self._release(cap)

    @staticmethod
    def _release(cap: Any) -> None:
        if cap is not None:
            try:
                cap.release()
            except Exception:
                pass

    def _wait_timeout(self) -> float | None:
        return self.stall_s

    def _on_wait_timeout(self) -> None:
        # cap.read() can block for seconds when a USB camera is unplugged or a stream stalls: leave that reader
        # thread behind (it exits when its read returns) and start a fresh one with a fresh capture.
        silent = time.monotonic() - self._last_frame_t
        if silent > self.give_up_s:
            self._error = SourceError(
                f"{self.description}: no frame for {silent:.0f} s, giving up (raise --reconnect-timeout to wait longer)"
            )
            return
        blocked = self._blocked_since
        if self._ended or blocked is None or time.monotonic() - blocked < self.stall_s:
            return  # the reader is not stuck: it is reconnecting on its own (with its own messages)
        self._warn(f"{self.description}: no frame for {silent:.1f} s, reconnecting")
        self._blocked_since = None
        self._generation += 1
        gen = self._generation
        self._thread = threading.Thread(target=self._reader, args=(gen, None), name=f"source:{self.description}",
                                        daemon=True)
        self._thread.start()  # the current reader, for join(); the stuck one is left to its read()


def _expand_images(spec: str) -> list[Path] | None:
    """Image paths for a file, folder or glob; None when ``spec`` is not an image source."""
    if any(ch in spec for ch in "*?["):
        return sorted((Path(p) for p in _glob.glob(spec) if Path(p).suffix.lower() in IMAGE_EXTENSIONS),
                      key=lambda p: natural_key(str(p)))
    path = Path(spec)
    if path.is_dir():  # natural order: 0, 1, 2, ..., 10, as recorded, not 0, 1, 10, 100
        return sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                      key=lambda p: natural_key(str(p.relative_to(path))))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return [path]
    return None


def open_source(
    spec: str,
    every_frame: bool = False,
    give_up_s: float = 10.0,
    stall_s: float = 2.0,
    warn: Callable[[str], None] = _stderr,
    capture_size: tuple[int, int] | None = None,
) -> Source:
    """Open what ``spec`` names (see the module docstring); SourceError with a fix when it cannot.

    Args:
        spec: camera index, ``/dev/videoN``, URL, ``picamera2``, video file, image file, folder or glob.
        every_frame: deliver every frame of a video file instead of playing it in real time.
        give_up_s: cameras/streams: seconds without a frame before giving up.
        stall_s: cameras/streams: seconds without a new frame before reconnecting.
        warn: receives one line per reconnection or skipped file.
        capture_size: local cameras: ``(width, height)`` to ask for (see :func:`choose_capture_size`); the
            size they gave is the source's :attr:`~Source.capture_size`. Ignored for streams and files.
    """
    spec = str(spec).strip()
    if not spec:
        raise SourceError("empty --source; give a camera index, /dev/videoN, a URL, a video, images or a folder")
    camera_kw = {"give_up_s": give_up_s, "stall_s": stall_s, "warn": warn}
    if spec.isdigit() or spec.startswith("/dev/video"):
        device = f"/dev/video{spec}" if spec.isdigit() else spec
        if sys.platform.startswith("linux") and not os.path.exists(device):
            raise SourceError(f"camera {spec} not found ({device} does not exist); check the cable, `ls /dev/video*`")
        target: int | str = int(spec) if spec.isdigit() else spec
        return CameraSource(_opencv_opener(target, capture_size), f"camera {spec}", **camera_kw)
    if spec.lower().startswith(STREAM_SCHEMES):
        return CameraSource(_opencv_opener(spec), f"stream {spec}", **camera_kw)
    if spec.lower() in ("picamera2", "picam", "picamera"):
        return CameraSource(lambda: _Picamera2Capture(capture_size), "picamera2", **camera_kw)
    recording = Path(spec)
    if recording.exists() and is_labelled_recording(recording):  # a tub or a steering CSV: recording order
        try:
            _, recorded = recorded_images(recording)
        except DataError as exc:
            raise SourceError(str(exc)) from None
        return ImageSource([r.path for r in recorded], spec, warn=warn, timestamps=[r.timestamp for r in recorded])
    images = _expand_images(spec)
    if images is not None:
        for p in images[:1]:
            if not p.exists():
                raise SourceError(f"image not found: {p}")
        return ImageSource(images, spec, warn=warn)
    path = Path(spec)
    if not path.exists():
        raise SourceError(
            f"source not found: {spec} (expected a camera index, /dev/videoN, a URL, a video file, images or a folder)"
        )
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        warn(f"{spec}: unknown extension {path.suffix!r}, trying it as a video")
    return VideoFileSource(path, every_frame=every_frame)


def open_images(paths: list[str | os.PathLike], warn: Callable[[str], None] = _stderr) -> Source:
    """A source over image files given one by one (``edgecnn classify --model M a.jpg b.png``)."""
    expanded: list[Path] = []
    for p in paths:
        found = _expand_images(str(p))
        if found is None:
            raise SourceError(f"not an image file: {p} (use --source for videos and cameras)")
        if len(found) == 1 and not found[0].exists():
            raise SourceError(f"image not found: {p}")
        expanded.extend(found)
    return ImageSource(expanded, " ".join(str(p) for p in paths) if len(paths) < 4 else f"{len(paths)} images", warn)


def open_for_model(
    contract: Contract,
    source: str | None = None,
    images: Sequence[str | os.PathLike] = (),
    every_frame: bool = False,
    give_up_s: float = 10.0,
    warn: Callable[[str], None] = _stderr,
    capture_size: tuple[int, int] | None = None,
) -> Source:
    """The frames a model's loop reads (``classify``, ``segment``): the ``images`` given one by one, else what
    ``source`` names (:func:`open_source`), a camera opened at the size :func:`choose_capture_size` picks for
    ``contract`` (``capture_size``, i.e. ``--capture-size``, wins; then the contract's ``source_size``; then the
    smallest common mode covering its input), with one line to ``warn`` saying at which size a camera captures
    (:func:`capture_note`). Give ``images`` or ``source``, not both."""
    if images:
        return open_images(list(images), warn=warn)
    if not source:
        raise SourceError("no source: give --source S or image files")
    asked = choose_capture_size(capture_size, contract.source_size, (contract.input_width, contract.input_height))
    src = open_source(source, every_frame=every_frame, give_up_s=give_up_s, warn=warn, capture_size=asked)
    note = capture_note(src, asked, capture_reason(capture_size, contract.source_size))
    if note:
        warn(note)
    return src
