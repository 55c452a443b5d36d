"""A scripted fake network camera: a real MJPEG-over-HTTP stream on 127.0.0.1 that OpenCV reads like an IP camera.

The stream is ``multipart/x-mixed-replace`` JPEG frames, the format of most IP cameras and of ``mjpg-streamer``;
``cv2.VideoCapture("http://127.0.0.1:PORT/stream.mjpg")`` opens it through FFmpeg, so the code under test is
exactly the one a real camera exercises. The camera's behaviour is switched on cue with :meth:`FakeCamera.set`:

- ``stream``: distinct frames at ``fps``;
- ``stall``: open connections stay open and silent, new ones are accepted and stay silent (a stalled camera or
  network: OpenCV's ``read()`` blocks, by default for 30 s);
- ``same``: the same frame, byte for byte, forever (a frozen camera);
- ``drop``: every open connection is cut once, new ones stream normally (fails once, then recovers);
- ``gone``: the server stops listening and cuts everything (the camera disappears).

Standard library + numpy + OpenCV (to encode the frames).
"""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np

BOUNDARY = b"edgecnnframe"
MODES = ("stream", "stall", "same", "drop", "gone")


def _frames(n: int, size: int = 64, seed: int = 0) -> list[bytes]:
    """``n`` distinct JPEG frames (``size`` x ``size``, a bar moving left to right over noise)."""

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
        x = (i * 3) % size
        img[:, x : x + 6] = 230
        out.append(cv2.imencode(".jpg", img)[1].tobytes())
    return out


class FakeCamera:
    """An MJPEG HTTP camera on 127.0.0.1 whose behaviour is switched with :meth:`set`; a context manager.

    Attributes:
        url: what to give ``--source``.
        connections: connections accepted so far.
        changes: ``(mode, time.time())`` for every :meth:`set`, to measure from the moment the camera failed.
        last_frame_time: ``time.time()`` when the last frame was sent (on any connection).
    """

    def __init__(self, fps: float = 30.0) -> None:
        self.period = 1.0 / fps
        self.mode = "stream"
        self.changes: list[tuple[str, float]] = []
        self.connections = 0
        self.last_frame_time: float | None = None
        self._cut = 0  # connections numbered <= this close themselves ("drop")
        self._n = 0
        self._jpegs = _frames(32)
        self._closed = threading.Event()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(8)
        self.url = f"http://127.0.0.1:{self._srv.getsockname()[1]}/stream.mjpg"
        threading.Thread(target=self._accept, name="fakecam", daemon=True).start()

    def set(self, mode: str) -> float:
        """Switch to ``mode`` (see module docstring); returns the ``time.time()`` it took effect."""
        if mode not in MODES:
            raise ValueError(f"unknown camera mode {mode!r}; one of {', '.join(MODES)}")
        now = time.time()
        if mode == "drop":
            self._cut = self.connections
            mode = "stream"
        elif mode == "gone":
            try:
                self._srv.close()  # reconnections are refused from now on
            except OSError:
                pass
        self.mode = mode
        self.changes.append((mode, now))
        return now

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            try:
                conn.settimeout(10.0)
                conn.recv(65536)  # the HTTP request; its content does not matter
                while self.mode == "stall" and not self._closed.is_set():
                    time.sleep(0.005)
                conn.sendall(b"HTTP/1.0 200 OK\r\nCache-Control: no-cache\r\nConnection: close\r\n"
                             b"Content-Type: multipart/x-mixed-replace; boundary=" + BOUNDARY + b"\r\n\r\n")
                while self.mode != "gone" and number > self._cut and not self._closed.is_set():
                    if self.mode == "stall":
                        time.sleep(0.005)
                        continue
                    self._n += 1
                    jpeg = self._jpegs[0] if self.mode == "same" else self._jpegs[self._n % len(self._jpegs)]
                    conn.sendall(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    self.last_frame_time = time.time()
                    time.sleep(self.period)
            except OSError:
                pass

    def close(self) -> None:
        self._closed.set()
        self.mode = "gone"
        try:
            self._srv.close()
        except OSError:
            pass

    def __enter__(self) -> FakeCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
