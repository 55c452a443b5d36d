"""``edgecnn record drive`` end to end in a real process: a fake IP camera (MJPEG over HTTP on 127.0.0.1, read by
OpenCV/FFmpeg), the live page's HTTP API as the human, a UDP sink as the car.

What must hold: fixed-rate records while the throttle is on, readable by ``edgecnn``'s reader; the page going
silent gives neutral commands within the deadline; kill -9 loses at most the last second; a camera that
vanishes, a port in use, an unwritable OUT -> one clear line and an intact tub.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO

from edgecnn.data.tub import read_tubs
from edgecnn_robustness.fakecam import FakeCamera


class RecordProcess:
    """``python -m edgecnn record ...`` with stderr collected as it comes and the live page's URL parsed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "record", *map(str, args)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, dest: list[str]) -> None:
        for line in stream:
            dest.append(line)

    def wait_line(self, pattern: str, timeout: float = 60.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.err):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not any(re.search(pattern, ln) for ln in self.err):
                time.sleep(0.2)
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}: {''.join(self.err)}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s: {''.join(self.err)}")

    def url(self) -> str:
        return self.wait_line(r"live page: (http://\S+)").group(1)

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str]:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self._threads:
            t.join(timeout=5)
        return rc, "".join(self.err)


def post(base: str, name: str, body: dict, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["X-Edgecnn-Token"] = token
    req = urllib.request.Request(base + "api/" + name, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def drive_for(base: str, seconds: float, angle: float, throttle: float, token: str | None = None) -> None:
    """Send the page's command every 100 ms for ``seconds``, as the page does."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert post(base, "control", {"angle": angle, "throttle": throttle}, token) == 200
        time.sleep(0.1)


def udp_listener() -> tuple[socket.socket, list[tuple[float, dict]]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    got: list[tuple[float, dict]] = []

    def run() -> None:
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            got.append((time.time(), json.loads(data)))

    threading.Thread(target=run, daemon=True).start()
    return sock, got


@pytest.fixture
def camera():
    with FakeCamera(fps=20) as cam:
        yield cam


def test_drive_records_at_a_fixed_rate_and_the_silent_page_goes_neutral(camera, tmp_path):
    sock, commands = udp_listener()
    out = tmp_path / "data"
    rec = RecordProcess("drive", out, "--source", camera.url, "--serve", "127.0.0.1:0", "--duration", "30",
                        "--sink", f"udp://127.0.0.1:{sock.getsockname()[1]}", "--deadline-ms", "300")
    base = rec.url()
    rec.wait_line("recording to")
    time.sleep(0.5)
    t0 = time.time()
    drive_for(base, 3.0, 0.25, 0.5)
    silent = time.time()  # the page stops sending here
    time.sleep(1.5)
    rc, err = rec.finish()
    sock.close()
    assert rc == 0, err
    assert "Traceback" not in err
    data = read_tubs(out)
    assert len(data.sources) == 1 and Path(data.sources[0]).name == "tub_1"
    n = len(data.samples)
    # 20 Hz while the throttle was on: 3 s + up to the 0.3 s deadline; generous bounds for a loaded machine
    assert 40 <= n <= 3.5 * 20 + 5, (n, err)
    assert {s.steering for s in data.samples} == {0.25} and {s.throttle for s in data.samples} == {0.5}
    lines = (Path(data.sources[0]) / "catalog_0.catalog").read_text().splitlines()
    stamps = [json.loads(ln)["_timestamp_ms"] / 1000 for ln in lines]
    assert stamps[0] >= t0 - 0.2 and stamps[-1] <= silent + 0.3 + 0.2  # nothing recorded once stale
    # the car got the human's commands, then neutral within the deadline, then a final stopped
    driving = [c for t, c in commands if c["state"] == "ok" and c["throttle"] == 0.5]
    assert driving and driving[0]["steering"] == 0.25
    first_stale = next(t for t, c in commands if c["state"] == "stale" and t > silent)
    assert first_stale - silent <= 0.3 + 0.25, first_stale - silent
    assert all(c["throttle"] == 0 for t, c in commands if t > first_stale)
    assert commands[-1][1]["state"] == "stopped"


def test_kill_9_loses_at_most_the_last_second(camera, tmp_path):
    out = tmp_path / "data"
    rec = RecordProcess("drive", out, "--source", camera.url, "--serve", "127.0.0.1:0", "--record-when", "always")
    rec.url()
    rec.wait_line("recording to")
    time.sleep(3.0)
    killed = time.time()
    rec.proc.send_signal(signal.SIGKILL)
    rec.finish(sig=None)
    tub = out / "tub_1"
    data = read_tubs(tub)
    assert len(data.samples) >= 20
    lines = (tub / "catalog_0.catalog").read_text().splitlines()
    last = json.loads(lines[-1]) if lines[-1].endswith("}") else json.loads(lines[-2])
    assert killed - last["_timestamp_ms"] / 1000 <= 1.0
    assert data.faults.get("bad JSON line", 0) <= 1


def test_camera_vanishing_mid_recording_is_one_line_and_the_tub_is_intact(camera, tmp_path):
    out = tmp_path / "data"
    rec = RecordProcess("drive", out, "--source", camera.url, "--record-when", "always",
                        "--reconnect-timeout", "1.5", "--stall-timeout", "0.5")
    rec.wait_line("recording to")
    time.sleep(1.5)
    camera.set("gone")
    rc, err = rec.finish(sig=None, timeout=60)
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "kept" in errors[0] and "tub_1" in errors[0]
    assert len(read_tubs(out / "tub_1").samples) >= 5


def test_port_in_use_and_unwritable_out_are_one_clear_line(camera, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    rec = RecordProcess("drive", tmp_path / "data", "--source", camera.url, "--serve",
                        f"127.0.0.1:{busy.getsockname()[1]}")
    rc, err = rec.finish(sig=None)
    busy.close()
    assert rc == 2 and "Traceback" not in err and "port is in use" in err, err
    assert [ln for ln in err.splitlines() if ln.startswith("Error:")].__len__() == 1
    assert not (tmp_path / "data" / "tub_1").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = RecordProcess("drive", blocker / "data", "--source", camera.url)
    rc, err = rec.finish(sig=None)
    assert rc == 2 and "Traceback" not in err and err.startswith("Error: cannot create"), err


def test_non_loopback_bind_prints_a_token_and_refuses_commands_without_it(camera, tmp_path):
    sock, commands = udp_listener()
    out = tmp_path / "data"
    rec = RecordProcess("drive", out, "--source", camera.url, "--serve", "127.0.0.2:0", "--duration", "20",
                        "--sink", f"udp://127.0.0.1:{sock.getsockname()[1]}")
    url = rec.url()
    m = re.match(r"(http://127\.0\.0\.2:\d+/)\?token=(\S+)", url)
    assert m, url
    base, token = m.group(1), m.group(2)
    rec.wait_line("recording to")
    for _ in range(10):
        assert post(base, "control", {"angle": 1.0, "throttle": 1.0}) == 401
        time.sleep(0.05)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(base + "status.json", timeout=5)
    assert info.value.code == 401
    drive_for(base, 1.0, -0.5, 0.2, token=token)
    rc, err = rec.finish()
    sock.close()
    assert rc == 0, err
    assert all(c["throttle"] in (0.0, 0.2) for _, c in commands)  # nothing ever moved at 1.0
    assert {s.steering for s in read_tubs(out).samples} == {-0.5}


def test_record_images_snapshot_burst_and_a_page_that_vanishes_mid_burst(camera, tmp_path):
    out = tmp_path / "pets"
    (out / "cat").mkdir(parents=True)
    (out / "cat" / "old.jpg").write_bytes(b"")  # counts include what is already there
    rec = RecordProcess("images", out, "--source", camera.url, "--classes", "cat,dog", "--serve", "127.0.0.1:0",
                        "--burst-rate", "5")
    base = rec.url()
    rec.wait_line(r"live page")
    time.sleep(1.0)
    assert post(base, "capture", {"label": "dog", "hold": True}) == 200  # a tap: press ...
    assert post(base, "capture", {"label": "dog", "hold": False}) == 200  # ... and release
    rec.wait_line(r"saved dog: cat 1  dog 1")
    assert post(base, "capture", {"label": "bird", "hold": True}) == 400
    end = time.monotonic() + 1.2
    while time.monotonic() < end:  # hold 'cat' (the page repeats every 100 ms) ...
        assert post(base, "capture", {"label": "cat", "hold": True}) == 200
        time.sleep(0.1)
    gone = time.time()  # ... then the page vanishes without a release
    time.sleep(1.5)
    rc, err = rec.finish()
    assert rc == 0 and "Traceback" not in err, err
    cats = sorted((out / "cat").glob("cat_*.jpg"))
    assert 4 <= len(cats) <= 9, (len(cats), err)  # ~5 per second for 1.2 s, then the burst ended on its deadline
    assert max(p.stat().st_mtime for p in cats) <= gone + 0.5 + 0.3  # the 0.5 s deadline, and some slack
    assert len(list((out / "dog").glob("*.jpg"))) == 1
    assert not list(out.rglob(".*.tmp"))
