"""Benchmark the live page's frame delivery: frame age at slow clients, and what clients cost the camera loop
(not a test; the test suite checks the order of frames, not timings).

A fake camera (640x480, a moving bar over noise, 20 FPS) runs behind the real ``CameraSource`` (reader thread,
newest frame); a capture loop reads it and publishes every frame to a real ``LiveView`` on 127.0.0.1, as
``record``/``classify --serve`` do. Phases:

1. ``none``: no client, ``--baseline`` seconds: the loop's capture FPS;
2. ``two``: ``--seconds`` (60) with two clients that each take 5 frames per second: ``pull`` (GET
   /frame.jpg?after=SEQ every 200 ms, the page's way) and ``mjpeg`` (/stream.mjpg, reading one part every 200 ms,
   with a small receive buffer, the model of a slow link); the loop's capture FPS again.

Frame age = (time the client has the whole JPEG) - (capture time in X-Frame-Time), same clock. Reported per
client over the whole phase and over its first and last 10 s (a growing delay would show there), in ms and in
camera frame periods (50 ms).

    .venv/bin/python benchmarks/live_lag.py [--seconds 60] [--baseline 20]

Prints a table on stderr and the JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import urllib.request

import numpy as np

from edgecnn.runtime.live.policy import parse_serve
from edgecnn.runtime.live.server import LiveView
from edgecnn.runtime.sources import CameraSource

FPS = 20.0


class FakeCapture:
    """``read() -> (ok, frame)`` at ``fps``, like cv2.VideoCapture on a camera: 640x480 BGR, a moving bar."""

    def __init__(self, fps: float = FPS) -> None:
        self.period = 1.0 / fps
        self.n = 0
        self.start = time.monotonic()
        rng = np.random.default_rng(0)
        self.noise = [rng.integers(0, 60, (480, 640, 3), dtype=np.uint8) for _ in range(8)]

    def read(self):
        due = self.start + self.n * self.period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        img = self.noise[self.n % 8].copy()
        x = (self.n * 8) % 600
        img[:, x:x + 40] = 230
        self.n += 1
        return True, img

    def release(self) -> None:
        pass


class Loop:
    """The capture loop: newest frame -> LiveView.publish; counts frames."""

    def __init__(self, view: LiveView) -> None:
        self.view = view
        self.src = CameraSource(lambda: FakeCapture(), "fake camera 20 FPS", give_up_s=30)
        self.times: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        for frame in self.src:
            self.view.publish(frame.image, {"label": "bench"}, timestamp=frame.timestamp, mono=frame.monotonic)
            self.times.append(time.monotonic())
            if self.stop.is_set():
                break
        self.src.close()

    def fps(self, t0: float, t1: float) -> float:
        n = sum(1 for t in self.times if t0 <= t < t1)
        return n / (t1 - t0)


def pull_client(base: str, seconds: float, out: list[tuple[float, float, int]]) -> None:
    seq = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        with urllib.request.urlopen(f"{base}/frame.jpg?after={seq}", timeout=10) as r:
            body = r.read()
            if r.status == 200 and body:
                seq = int(r.headers["X-Frame-Seq"])
                out.append((time.time(), time.time() - float(r.headers["X-Frame-Time"]), seq))
        time.sleep(max(0.0, 0.2 - (time.monotonic() - t)))


def mjpeg_client(port: int, seconds: float, out: list[tuple[float, float, int]], rcvbuf: int = 16384) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    buf = buf.partition(b"\r\n\r\n")[2]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.monotonic()
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, _, rest = buf.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        length = int(fields[b"Content-Length"])
        while len(rest) < length + 2:
            rest += sock.recv(65536)
        buf = rest[length + 2:]
        out.append((time.time(), time.time() - float(fields[b"X-Frame-Time"]), int(fields[b"X-Frame-Seq"])))
        time.sleep(max(0.0, 0.2 - (time.monotonic() - t)))
    sock.close()


def stats(rows: list[tuple[float, float, int]]) -> dict:
    if not rows:
        return {}
    ages = np.array([r[1] for r in rows]) * 1e3
    t0, t1 = rows[0][0], rows[-1][0]
    first = np.array([r[1] for r in rows if r[0] - t0 <= 10]) * 1e3
    last = np.array([r[1] for r in rows if t1 - r[0] <= 10]) * 1e3
    seqs = [r[2] for r in rows]
    period = 1e3 / FPS
    return {"frames": len(rows), "age_ms_p50": round(float(np.percentile(ages, 50)), 1),
            "age_ms_p95": round(float(np.percentile(ages, 95)), 1), "age_ms_max": round(float(ages.max()), 1),
            "first10s_age_ms_p50": round(float(np.percentile(first, 50)), 1),
            "last10s_age_ms_p50": round(float(np.percentile(last, 50)), 1),
            "last10s_age_ms_max": round(float(last.max()), 1),
            "last10s_max_in_periods": round(float(last.max()) / period, 2),
            "never_older": all(b > a for a, b in zip(seqs, seqs[1:])),
            "mean_seq_step": round((seqs[-1] - seqs[0]) / max(1, len(seqs) - 1), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--baseline", type=float, default=20.0)
    args = ap.parse_args()
    view = LiveView.start(parse_serve("127.0.0.1:0"), kind="classify", title="live_lag", announce=None)
    base = f"http://127.0.0.1:{view.port}"
    loop = Loop(view)
    time.sleep(2.0)  # warm-up
    t0 = time.monotonic()
    time.sleep(args.baseline)
    t1 = time.monotonic()
    fps_none = loop.fps(t0, t1)
    pulled: list = []
    streamed: list = []
    clients = [threading.Thread(target=pull_client, args=(base, args.seconds, pulled)),
               threading.Thread(target=mjpeg_client, args=(view.port, args.seconds, streamed))]
    t2 = time.monotonic()
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    t3 = time.monotonic()
    fps_two = loop.fps(t2 + 1.0, t3)
    loop.stop.set()
    view.close()
    result = {"camera_fps": FPS, "frame_period_ms": 1e3 / FPS, "capture_fps_no_client": round(fps_none, 3),
              "capture_fps_two_clients": round(fps_two, 3),
              "fps_change_pct": round(100 * (fps_two - fps_none) / fps_none, 2),
              "jpeg_encodes": view.slot.encoded, "frames_published": view.slot.seq,
              "pull_5fps": stats(pulled), "mjpeg_5fps_small_rcvbuf": stats(streamed), "seconds": args.seconds}
    print(f"capture FPS: no client {fps_none:.2f}, two clients {fps_two:.2f} ({result['fps_change_pct']:+.2f} %)",
          file=sys.stderr)
    print(f"{'client':26} {'frames':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'first10 p50':>11} "
          f"{'last10 p50':>10} {'last10 max':>10} {'periods':>7} {'step':>5} never-older", file=sys.stderr)
    for name in ("pull_5fps", "mjpeg_5fps_small_rcvbuf"):
        s = result[name]
        print(f"{name:26} {s['frames']:>6} {s['age_ms_p50']:>7} {s['age_ms_p95']:>7} {s['age_ms_max']:>7} "
              f"{s['first10s_age_ms_p50']:>11} {s['last10s_age_ms_p50']:>10} {s['last10s_age_ms_max']:>10} "
              f"{s['last10s_max_in_periods']:>7} {s['mean_seq_step']:>5} {s['never_older']}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
