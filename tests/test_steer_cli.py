"""``edgecnn steer`` as users run it: a real process, a real OpenCV-readable camera that misbehaves on cue, signals.

:class:`edgecnn_robustness.fakecam.FakeCamera` is an MJPEG-over-HTTP camera (``multipart/x-mixed-replace``, what cheap IP cameras and
``mjpg-streamer`` serve) bound to 127.0.0.1; OpenCV's FFmpeg backend reads it as ``http://127.0.0.1:PORT/``, so
the whole real path runs: FFmpeg, ``CameraSource`` with its reconnection, the loop, the sink. The test scripts
its behaviour: ``stream``, ``stall`` (connections stay open, no bytes), ``same`` (one identical image forever),
``drop`` (every open connection is cut once; new ones work) and ``gone`` (the camera disappears: refused).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO, write_video

from edgecnn_robustness.fakecam import FakeCamera
from test_steer_loop import STEER, _constant_model, _tflite

pytestmark = pytest.mark.host

KEYS = {"time", "frame_time", "steering", "throttle", "uncertainty", "state", "frame"}


class SteerProcess:
    """``python -m edgecnn steer ...`` with stdout read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecnn", "steer", *map(str, args)], cwd=REPO,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, state: str, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(json.loads(ln)["state"] == state for ln in list(self.lines)):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no {state!r} command; stderr: {self.proc.stderr.read() if self.proc.poll() else ''}")

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 20.0) -> tuple[int, list[dict], str]:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            err = self.proc.stderr.read()
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(timeout=5)
        return rc, [json.loads(ln) for ln in self.lines], err  # json.loads fails on anything but pure JSON lines


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("steer_cli") / "steer.tflite"
    path.write_bytes(_tflite(_constant_model([0.7]), STEER))
    return path


def first_stale_after(commands: list[dict], t: float) -> dict:
    return next(c for c in commands if c["state"] == "stale" and c["time"] >= t)


def test_fake_camera_stall_frozen_drop_then_sigterm(model, scheduler):
    """One run through every recoverable failure: stall (longer than the reopen time), frozen image, cut stream."""
    cam = FakeCamera(fps=50)
    deadline = 0.2
    p = SteerProcess("--model", model, "--source", cam.url, "--deadline-ms", deadline * 1e3, "--stall-timeout", 0.6,
                     "--reconnect-timeout", 5, "--max-steering-rate", 0, "--trust-model")
    p.wait_for("ok")
    script = [("stall", 1.0), ("stream", 0.8), ("same", 0.6), ("stream", 0.8), ("stall", 0.4), ("stream", 0.6),
              ("drop", 0.8)]
    for mode, seconds in script:
        cam.set(mode)
        time.sleep(seconds)
    rc, commands, err = p.finish(signal.SIGTERM)
    assert rc == 0, err
    assert all(set(c) == KEYS for c in commands)
    assert commands[-1]["state"] == "stopped" and commands[-1]["steering"] == 0 and commands[-1]["throttle"] == 0
    assert "frames" in err and "stopped by SIGTERM" in err  # the summary, on stderr
    delays = []
    for i, (mode, t) in enumerate(cam.changes):
        if mode in ("stall", "same"):
            stale = first_stale_after(commands, t)
            # a frozen image is fresh once, when it first arrives (up to one frame period after the switch)
            delays.append(stale["time"] - t - (cam.period if mode == "same" else 0.0))
            resumed_at = cam.changes[i + 1][1]
            assert any(c["state"] == "ok" and c["time"] > resumed_at for c in commands), f"no recovery after {mode}"
    print(f"\nfake IP camera: stall/frozen-to-neutral {[round(d * 1e3) for d in delays]} ms (deadline 200 ms)")
    assert max(delays) <= deadline + scheduler.margin(0.05), scheduler.worst
    assert "reconnecting" in err and cam.connections >= 3  # the long stall and the cut were both reopened
    # during the recoverable failures the loop was never silent beyond the deadline
    times = [c["time"] for c in commands]
    assert max(b - a for a, b in zip(times, times[1:])) <= deadline + scheduler.margin(0.05)


def test_fake_camera_disappears_neutral_then_gives_up(model):
    cam = FakeCamera(fps=50)
    p = SteerProcess("--model", model, "--source", cam.url, "--deadline-ms", 200, "--reconnect-timeout", 2,
                     "--stall-timeout", 0.5, "--trust-model")
    p.wait_for("ok")
    cam.set("gone")
    rc, commands, err = p.finish(sig=None)
    t_gone = cam.changes[-1][1]
    assert rc == 2 and "Traceback" not in err
    assert any(ln.startswith("Error:") and "giving up" in ln for ln in err.splitlines())
    assert "retrying in" in err  # reconnection with back-off while it was gone
    assert first_stale_after(commands, t_gone)["time"] - t_gone <= 0.25
    assert commands[-1]["state"] == "stopped"
    after = [c for c in commands if c["time"] > t_gone + 0.25]
    assert after and all(c["steering"] == 0 and c["throttle"] == 0 for c in after)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_stops_cleanly(model, tmp_path, sig):
    video = write_video(tmp_path / "long.mp4", 250)  # 10 s at 25 FPS, played in real time
    p = SteerProcess("--model", model, "--source", video, "--throttle", "0.1")
    p.wait_for("ok")
    time.sleep(0.3)
    rc, commands, err = p.finish(sig)
    assert rc == 0, err
    assert commands[-1]["state"] == "stopped" and commands[-1]["throttle"] == 0
    assert all(c["throttle"] == pytest.approx(0.1) for c in commands if c["state"] == "ok")
    assert f"stopped by {signal.Signals(sig).name}" in err and "p50" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_camera_does_not_answer_stops_at_once(model, sig):
    """OpenCV's open() blocks in C on a camera that accepts but never answers: the signal must still work."""
    cam = FakeCamera(fps=50)
    cam.set("stall")
    p = SteerProcess("--model", model, "--source", cam.url)
    while cam.connections == 0 and p.proc.poll() is None:  # past the model check, now blocked opening the camera
        time.sleep(0.02)
    time.sleep(0.2)
    t0 = time.monotonic()
    rc, commands, err = p.finish(sig)
    assert time.monotonic() - t0 < 3.0
    assert rc == 0, err
    assert [c["state"] for c in commands] == ["stopped"] and commands[0]["frame_time"] is None
    assert f"stopped by {signal.Signals(sig).name} before the first frame" in err


def test_video_to_udp_sink(model, tmp_path):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5.0)
    port = rx.getsockname()[1]
    video = write_video(tmp_path / "v.mp4", 10)
    try:
        proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", "--model", str(model), "--source",
                               str(video), "--every-frame", "--sink", f"udp://:{port}", "--trust-model"],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        got = []
        while not got or got[-1]["state"] != "stopped":
            got.append(json.loads(rx.recv(4096)))
    finally:
        rx.close()
    assert proc.returncode == 0 and proc.stdout == ""  # only the chosen sink gets commands
    assert [c["state"] for c in got] == ["ok"] * 10 + ["stopped"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "{missing}", "--source", "{video}"], "model not found"),
        (["--model", "{classify}", "--source", "{video}"], "steer needs a steering model"),
        (["--model", "{model}", "--source", "{video}", "--sink", "tcp://x:1"], "unknown sink"),
        (["--model", "{model}", "--source", "{dir}/nothing.mp4"], "source not found"),
    ],
)
def test_bad_input_is_one_line_and_still_neutral(model, tmp_path, args, message):
    from edgecnn.contract import Contract

    video = write_video(tmp_path / "v.mp4", 3)
    classify = tmp_path / "c.tflite"
    classify.write_bytes(_tflite(_constant_model([0.1, 0.9]),
                                 Contract(task="classify", input_height=24, input_width=32, labels=("a", "b"))))
    subs = {"missing": tmp_path / "none.tflite", "classify": classify, "model": model, "video": video,
            "dir": tmp_path}
    argv = [a.format(**subs) for a in args]
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", *argv, "--trust-model"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert any(ln.startswith("Error:") and message in ln for ln in proc.stderr.splitlines()), proc.stderr
    if "sink" not in message:  # with a usable sink, the car is told to stop even when start-up fails
        assert json.loads(proc.stdout.splitlines()[-1])["state"] == "stopped"
