"""The live page's server without a browser: the token rule, newest-frame delivery (pull and MJPEG), bad input.

Frames are synthetic, published by a thread the way a camera loop would; clients are plain sockets and urllib.
Every address is on this machine (127.0.0.1, and 127.0.0.2 as "not the default loopback host").
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from edgecnn.errors import OutputError
from edgecnn.runtime.live.policy import parse_serve
from edgecnn.runtime.live.server import BOUNDARY, LiveView


class Publisher:
    """Publishes a distinct 64x48 frame every ``period`` seconds until stopped."""

    def __init__(self, view: LiveView, period: float = 0.02, noise: bool = False) -> None:
        self.view, self.period, self.noise = view, period, noise
        self.rng = np.random.default_rng(0)
        self.stop = threading.Event()
        self.calls = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            img = (self.rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) if self.noise  # ~40 KB as JPEG
                   else np.full((48, 64, 3), i % 250, np.uint8))
            self.view.publish(img, {"label": "cat", "score": 0.9, "i": i})
            self.calls += 1
            i += 1
            time.sleep(self.period)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def served():
    calls = []

    def control(payload):
        calls.append(payload)
        return {"ok": True}

    views = []

    def start(serve="127.0.0.1:0", noise=False):
        view = LiveView.start(parse_serve(serve), kind="drive", title="test", handlers={"control": control},
                              announce=None)
        views.append(view)
        return view, Publisher(view, noise=noise)

    yield start, calls
    for v in views:
        v.close()


def get(url, headers=None, data=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def base(view: LiveView) -> str:
    return f"http://{view.spec.host}:{view.port}"


def test_non_loopback_bind_needs_the_token_on_every_request_and_moves_nothing(served):
    start, calls = served
    view, pub = start("127.0.0.2:0")
    token = view.spec.token
    assert token and f"token={token}" in view.url
    body = json.dumps({"angle": 1, "throttle": 1}).encode()
    js = {"Content-Type": "application/json"}
    for path in ("/", "/live.js", "/status.json", "/frame.jpg", "/stream.mjpg"):
        status, _, text = get(base(view) + path)
        assert status == 401, path
        assert get(base(view) + path + "?token=wrong")[0] == 401
    status, _, _ = get(base(view) + "/api/control", js, body)
    assert status == 401 and calls == []
    assert get(base(view) + "/status.json?token=" + token)[0] == 200
    assert get(base(view) + "/?token=" + token)[0] == 200
    status, _, answer = get(base(view) + "/api/control", {**js, "X-Edgecnn-Token": token}, body)
    assert status == 200 and json.loads(answer) == {"ok": True} and calls == [{"angle": 1, "throttle": 1}]
    pub.close()


def test_loopback_bind_has_no_token_but_refuses_foreign_pages_and_non_json(served):
    start, calls = served
    view, pub = start()
    assert view.spec.token is None
    status, _, page = get(base(view) + "/")
    assert status == 200 and b"live.js" in page
    body = json.dumps({"angle": 0.1, "throttle": 0}).encode()
    assert get(base(view) + "/api/control", {"Content-Type": "text/plain"}, body)[0] == 415
    assert get(base(view) + "/api/control", {"Content-Type": "application/json", "Origin": "http://evil.example"},
               body)[0] == 403
    assert get(base(view) + "/api/control", {"Content-Type": "application/json"}, b"[1]")[0] == 400
    assert get(base(view) + "/api/nothing", {"Content-Type": "application/json"}, b"{}")[0] == 404
    assert calls == []
    ok = get(base(view) + "/api/control", {"Content-Type": "application/json",
                                           "Origin": f"http://127.0.0.1:{view.port}"}, body)
    assert ok[0] == 200 and calls == [{"angle": 0.1, "throttle": 0}]
    status, _, raw = get(base(view) + "/status.json")
    s = json.loads(raw)
    assert status == 200 and s["kind"] == "drive" and s["overlay"]["label"] == "cat" and s["frame"] >= 1
    pub.close()


def test_port_in_use_is_one_clear_error(served):
    start, _ = served
    view, pub = start()
    with pytest.raises(OutputError, match="port is in use"):
        LiveView.start(parse_serve(f"127.0.0.1:{view.port}"), kind="drive", announce=None)
    pub.close()


def test_pulled_frames_are_always_newer_and_a_slow_client_skips(served):
    start, _ = served
    view, pub = start()
    seqs = []
    for i in range(12):
        status, headers, jpeg = get(f"{base(view)}/frame.jpg?after={seqs[-1] if seqs else 0}")
        assert status == 200 and jpeg[:2] == b"\xff\xd8"
        seqs.append(int(headers["X-Frame-Seq"]))
        if i % 3 == 2:
            time.sleep(0.25)  # a slow client: many frames are published meanwhile
    assert all(b > a for a, b in zip(seqs, seqs[1:])), seqs
    assert max(b - a for a, b in zip(seqs, seqs[1:])) > 1, seqs  # frames were skipped, not queued
    pub.close()


def read_parts(sock: socket.socket, buf: bytearray, n: int, pause: float = 0.0) -> list[int]:
    """Read ``n`` MJPEG parts from ``sock`` (HTTP headers already consumed); their X-Frame-Seq values."""
    seqs = []
    while len(seqs) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "stream closed"
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        assert head.startswith(b"--" + BOUNDARY.encode())
        length = int(fields[b"Content-Length"])
        while len(rest) < length + 2:
            chunk = sock.recv(65536)
            assert chunk, "stream closed"
            rest += chunk
        assert rest[:2] == b"\xff\xd8"
        seqs.append(int(fields[b"X-Frame-Seq"]))
        buf[:] = rest[length + 2:]
        if pause:
            time.sleep(pause)
    return seqs


def test_mjpeg_stream_sends_only_newer_frames_and_skips_for_a_slow_reader(served):
    """A reader with little buffering between it and the server (a slow link, or a small receive buffer): the
    server holds at most one frame for it and then sends the newest. (A reader that lets its own kernel buffer
    fill with megabytes reads old frames from that buffer whatever a server does: such clients pull
    /frame.jpg, as the page does.)"""
    start, _ = served
    view, pub = start(noise=True)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", view.port))
    raw.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")  # HTTP/1.0: no chunked framing
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += raw.recv(65536)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    assert b"multipart/x-mixed-replace" in head
    buf = bytearray(rest)
    fast = read_parts(raw, buf, 10)
    slow = read_parts(raw, buf, 6, pause=0.2)  # 5 reads per second of a 50-per-second stream
    seqs = fast + slow
    assert all(b > a for a, b in zip(seqs, seqs[1:])), seqs
    assert max(b - a for a, b in zip(slow, slow[1:])) > 1, slow  # skipped, not queued
    assert view.clients == 1
    # a second client that never reads does not stop the publisher or the first client
    stalled = socket.create_connection(("127.0.0.1", view.port), timeout=10)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    calls = pub.calls
    more = read_parts(raw, buf, 5)
    assert more[0] > seqs[-1] and pub.calls > calls
    assert view.slot.encoded <= view.slot.seq  # one JPEG per frame at most, whatever the number of clients
    stalled.close()
    raw.close()
    pub.close()


def test_frame_tap_puts_a_loops_results_on_the_page(served, tmp_path):
    """classify/steer --serve: the loop's own callback publishes the frame its result came from."""
    import cv2
    from types import SimpleNamespace

    from edgecnn.runtime.failsafe import Command
    from edgecnn.runtime.live.tap import FrameTap, publish_classification, publish_command
    from edgecnn.runtime.sources import open_source

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 30, 3), 60 * i, np.uint8))
    start, _ = served
    view, pub = start()
    pub.close()
    tap = FrameTap(open_source(str(tmp_path)), keep=2)
    frames = list(tap)
    assert [f.index for f in frames] == [0, 1, 2] and tap.get(0) is None and tap.get(2) is frames[2]
    publish_classification(view, tap, SimpleNamespace(frame=2, top=((1, "dog", 0.8), (0, "cat", 0.2)),
                                                      latency_ms={"invoke": 1.0}))
    s = json.loads(get(base(view) + "/status.json")[2])
    assert s["overlay"]["label"] == "dog" and s["overlay"]["score"] == 0.8 and s["overlay"]["latency_ms"] == {"invoke": 1.0}
    assert view.slot.newest().image is frames[2].image
    publish_command(view, tap, Command(0.0, 0.0, 0.0, 0.0, None, "stale", frame=None))
    s = json.loads(get(base(view) + "/status.json")[2])
    assert s["overlay"]["state"] == "stale" and s["overlay"]["steering"] == 0.0
    tap.close()


@pytest.mark.parametrize("command, model, key", [
    ("classify", "firmware_models/shapes_compact/model_int8.tflite", "label"),
    ("steer", "firmware_models/roads_pilotnet/model_int8.tflite", "steering"),
])
def test_classify_and_steer_serve_the_model_on_the_live_page(command, model, key):
    import re
    import subprocess
    import sys

    from conftest import REPO
    from edgecnn_robustness.fakecam import FakeCamera

    with FakeCamera(fps=20) as cam:
        proc = subprocess.Popen([sys.executable, "-m", "edgecnn", command, "--model", str(REPO / model), "--source",
                                 cam.url, "--serve", "127.0.0.1:0", "--trust-model"], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            while "live page:" not in line:
                line = proc.stderr.readline()
                assert line or proc.poll() is None, "exited before serving"
            url = re.search(r"(http://\S+/)", line).group(1)
            end = time.monotonic() + 30
            overlay = {}
            while key not in overlay and time.monotonic() < end:
                overlay = json.loads(get(url + "status.json")[2])["overlay"]
                time.sleep(0.2)
            assert key in overlay, overlay
            status, headers, jpeg = get(url + "frame.jpg?after=0")
            assert status == 200 and jpeg[:2] == b"\xff\xd8"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
