"""``edgecnn steer --route FILE --pose SOURCE`` with a route-conditioned (navigate) model, end to end: a recorded
video, a pose stream over real UDP from this test, the stale-pose fall-back, bad input; and the two-input
:class:`~edgecnn.runtime.predictor.Predictor` under it.

The model is :func:`nav_fixtures.tiny_navigate_tflite`: untrained, except that its steering mean follows the route
channel's lateral centre of mass ahead (right route in view -> about +0.8, straight -> 0), so "commands follow the
poses" is checkable. Built once per module with TensorFlow (a few seconds); every steer run is a TF-blocked child.
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

import numpy as np
import pytest
from conftest import REPO, run_cli, write_video
from nav_fixtures import sample_network, tiny_navigate_tflite
from test_device_line import BLOCKER

from edgecnn.errors import ModelError
from edgecnn.mixture import split
from edgecnn.navmap import rasterise, save_route
from edgecnn.runtime.predictor import Predictor

pytestmark = pytest.mark.host

HW = 0.42
DEADLINE_MS = 300.0


@pytest.fixture(scope="module")
def nav(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("steer_route")
    net, _left, right = sample_network()
    return {
        "int8": tiny_navigate_tflite(root, routed=True, int8=True),
        "float": tiny_navigate_tflite(root, routed=True, int8=False),
        "route": save_route(root / "right.json", net, right),
        "video": write_video(root / "drive.mp4", 300, size=(160, 120)),  # 12 s at 25 fps, played in real time
        "root": root,
    }


# ------------------------------------------------------------------------------------------- two-input predictor


@pytest.mark.parametrize("kind", ["int8", "float"])
def test_predictor_finds_inputs_by_name_and_feeds_the_map_exactly(nav, kind):
    p = Predictor(nav[kind])
    assert "map" in p.map_input.name and "image" in p.input.name and p.map_input.index != p.input.index
    assert p.map_spec.channels == ("roads", "route") and p.map_input.shape == (1, 64, 64, 2)
    net, left, right = sample_network()
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    means = {}
    for name, route in (("left", left), ("right", right), ("none", None)):
        raster = rasterise(net, route, (6.0, -HW, 0.0), p.map_spec)
        out = p.predict(frame, raster)
        view = p.interpreter.tensor(p.map_input.index)
        assert np.array_equal(view()[0], p.reference_map_input(raster))  # the table path = quantize(raster / 255)
        del view
        image = p.interpreter.tensor(p.input.index)
        assert np.array_equal(image()[0], p.reference_input(frame))  # the image path as for one-input models
        del image
        means[name] = split(out).mean
    assert means["right"] > 0.5 and means["left"] < -0.5 and abs(means["none"]) < 0.1


def test_predictor_refuses_a_navigate_model_without_its_map_and_a_map_for_an_image_model(nav):
    p = Predictor(nav["int8"])
    frame = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(ModelError, match="needs the map raster"):
        p.predict(frame)
    with pytest.raises(ModelError, match="must be uint8"):
        p.predict(frame, np.zeros((64, 64, 1), np.uint8))
    image_only = Predictor(REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite")
    assert image_only.map_spec is None and image_only.map_input is None
    with pytest.raises(ModelError, match="no map input"):
        image_only.predict(frame, np.zeros((64, 64, 2), np.uint8))


def test_inspect_shows_both_inputs_and_the_map(nav):
    r = run_cli("inspect", nav["int8"], block_tf=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "serving_default_map:0  [1, 64, 64, 2]" in out and "[map]" in out and "[image]" in out
    for text in ("map input 'map': 64x64x2", "routed", "extent 8.0 m square (12.5 cm/pixel)", "channel 0 roads",
                 "channel 1 route", "pose noise assumed in training: position 0.25 m", "delay 100.0 ms"):
        assert text in out, text


# ----------------------------------------------------------------------------------------------------- the loop


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Commands:
    """Reads the child's JSON lines as they come."""

    def __init__(self, stream) -> None:
        self.lines: list[dict] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 60.0) -> list[dict]:
        """Block until ``pred(lines)`` holds; the lines then."""
        end = time.monotonic() + timeout
        with self.cond:
            while not pred(self.lines):
                left = end - time.monotonic()
                assert left > 0, f"timed out; last commands: {self.lines[-5:]}"
                self.cond.wait(timeout=min(left, 0.2))
            return list(self.lines)


def _ok_near(lines, x0: float) -> int:
    return sum(1 for c in lines if c["state"] == "ok" and c["pose"] and abs(c["pose"][0] - x0) < 0.01)


def test_commands_follow_the_pose_stream_and_a_stopped_stream_is_neutral_within_the_deadline(nav, scheduler):
    """Poses where the map shows a straight route (x = 0.5) steer straight, poses before the right turn (x = 6)
    steer right; a garbage NMEA line is counted and skipped; when the stream stops, a neutral 'pose-stale'
    command goes out within the pose deadline (and for every frame after), never the stale pose; when it
    resumes, steering comes back."""
    port = _free_udp_port()
    code = BLOCKER + "import runpy, sys; sys.argv[0] = 'edgecnn'; runpy.run_module('edgecnn', run_name='__main__')"
    argv = ["steer", "--model", str(nav["int8"]), "--source", str(nav["video"]), "--route", str(nav["route"]),
            "--pose", f"udp://127.0.0.1:{port}", "--pose-deadline-ms", str(DEADLINE_MS), "--trust-model",
            "--max-steering-rate", "0"]
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    commands = Commands(proc.stdout)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sending = {"x": 0.5}
    last_sent = {"t": 0.0}
    pause, paused = threading.Event(), threading.Event()  # the test stops the stream; the sender says it did

    def sender() -> None:
        while proc.poll() is None:
            if pause.is_set():
                paused.set()
            else:
                paused.clear()
                pose = {"x": sending["x"], "y": -HW, "heading": 0.0, "time": time.time()}
                tx.sendto(json.dumps(pose).encode(), ("127.0.0.1", port))
                last_sent["t"] = time.time()
            time.sleep(0.02)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        lines = commands.wait_for(lambda ls: _ok_near(ls, 0.5) >= 5)
        sending["x"] = 6.0
        lines = commands.wait_for(lambda ls: _ok_near(ls, 6.0) >= 5)
        tx.sendto(b"$GPGGA,this is not a pose*00\n", ("127.0.0.1", port))
        pause.set()
        assert paused.wait(10)  # no pose leaves after this
        stopped_at = last_sent["t"]
        lines = commands.wait_for(lambda ls: sum(c["state"] == "pose-stale" for c in ls[-3:]) == 3)
        pause.clear()  # the stream comes back
        lines = commands.wait_for(lambda ls: ls[-1]["state"] == "ok" and len(ls) > len(lines))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        pause.set()
        if proc.poll() is None:
            proc.kill()
    thread.join(timeout=2)
    tx.close()
    commands.thread.join(timeout=5)
    err = proc.stderr.read()
    lines = commands.lines
    assert proc.returncode == 0, err[-2000:]
    assert all("pose_age_ms" in c and "pose" in c for c in lines)
    straight = [c["steering"] for c in lines if c["state"] == "ok" and abs(c["pose"][0] - 0.5) < 0.01]
    right = [c["steering"] for c in lines if c["state"] == "ok" and abs(c["pose"][0] - 6.0) < 0.01]
    assert max(abs(s) for s in straight) < 0.15 and min(right) > 0.4, (straight, right)
    # never a stale pose's map: every command that used a pose got it within the deadline
    assert all(c["pose_age_ms"] <= DEADLINE_MS for c in lines if c["state"] == "ok")
    # the stream stopped: the first pose-stale after it, within the deadline (+ 50 ms and this machine's load)
    after = [c for c in lines if c["time"] > stopped_at]
    first = next(c for c in after if c["state"] == "pose-stale")
    assert all(c["state"] == "ok" for c in after[: after.index(first)])  # ok until then (poses still fresh)
    assert first["time"] - stopped_at <= DEADLINE_MS / 1e3 + scheduler.margin(0.05), first
    assert first["steering"] == 0.0 and first["throttle"] == 0.0 and first["pose"] is None
    assert lines[-1]["state"] == "stopped"
    summary = err[err.index("commands: ok"):]
    assert "pose-stale" in summary and "1 line(s) skipped (not poses)" in summary, summary
    assert "worst pose-to-neutral" in summary and "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), [
    (["--route", "{route}"], "--route and --pose go together"),
    (["--route", "{bad}", "--pose", "udp://:0"], "not a route file (not JSON"),
    (["--route", "{geojson}", "--pose", "udp://:0"], "not an edgecnn route file (format 'FeatureCollection'"),
    (["--route", "{route}", "--pose", "gps://here"], "is not a pose source"),
    ([], "route-conditioned (navigate) model"),  # a map model without --route
])
def test_bad_route_input_is_one_line(nav, args, message):
    bad = nav["root"] / "notes.json"
    bad.write_text("these are my notes, not a route")
    geo = nav["root"] / "roads.geojson"
    geo.write_text(json.dumps({"type": "FeatureCollection", "format": "FeatureCollection", "features": []}))
    args = [a.format(route=nav["route"], bad=bad, geojson=geo) for a in args]
    r = run_cli("steer", "--model", nav["int8"], "--source", nav["video"], "--max-frames", "2", "--trust-model",
                *args, block_tf=True, timeout=120)
    assert r.clean_error, (r.returncode, r.stderr[-1500:])
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], r.stderr[-1500:]
    if not args or "--pose" in args:  # whatever stopped it, the car got a final neutral
        assert json.loads(r.stdout.splitlines()[-1])["state"] == "stopped"


def test_route_with_an_image_only_model_is_one_line(nav):
    image_only = REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite"
    r = run_cli("steer", "--model", image_only, "--source", nav["video"], "--route", nav["route"], "--pose",
                "udp://:0", "--trust-model", block_tf=True, timeout=120)
    assert r.clean_error, r.stderr[-1500:]
    assert "need a route-conditioned model" in r.stderr and "image-only" in r.stderr
