"""The steering loop on real .tflite models through the real interpreter, with sources that really stall.

Models are tiny Keras graphs converted here; a zero kernel plus a chosen bias makes the output an exact constant
(0.7 steering, a wide gmm mixture, steering + throttle), a NaN kernel makes it NaN, and three 64-channel
convolutions on a 640x480 input make a model slow enough (~0.3 s per invoke here) to stand in for a hung one.

The stalling source is :class:`ScriptedCapture` behind the real :class:`CameraSource` (its reader thread, newest
frame, reconnection): its ``read()`` blocks mid-run exactly as OpenCV's does when a camera stalls.
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import numpy as np
from conftest import write_video
import pytest

from edgecnn.contract import Contract
from edgecnn.errors import SourceError
from edgecnn.runtime.failsafe import FailsafeConfig
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.sources import CameraSource, open_source
from edgecnn.runtime.steer import StopRequest, steer_stream

pytestmark = pytest.mark.host

STEER = Contract(task="steer", input_height=24, input_width=32, head="regression")


def _tflite(model, contract: Contract) -> bytes:
    from edgecnn.runtime.metadata import embed_contract
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    return embed_contract(tf.lite.TFLiteConverter.from_keras_model(model).convert(), contract)


def _constant_model(bias, h=24, w=32, kernel=0.0, convs=((4, 3),)):
    import keras

    inp = keras.Input((h, w, 3))
    x = inp
    for filters, k in convs:
        x = keras.layers.Conv2D(filters, k, padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(bias))
    out = dense(x)
    model = keras.Model(inp, out)
    k, _ = dense.get_weights()
    k[:] = kernel
    dense.set_weights([k, np.asarray(bias, np.float32)])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("steer_models")
    specs = {
        "const": (_constant_model([0.7]), STEER),
        "nan": (_constant_model([0.0], kernel=math.nan), STEER),
        "throttle": (_constant_model([-0.4, 0.5]), STEER.replace(throttle=True)),
        # gmm, 2 components: equal weights, means -0.8 and 0.8, sigma 0.1: mean 0, std about 0.81 (uncertain)
        "gmm": (_constant_model([0, 0, -0.8, 0.8, math.log(0.1), math.log(0.1)]),
                STEER.replace(head="gmm", components=2)),
        "classify": (_constant_model([0.1, 0.9]), STEER.replace(task="classify", head="softmax", labels=("a", "b"))),
        "slow": (_constant_model([0.7], h=480, w=640, convs=((64, 3), (64, 3), (64, 3))),
                 STEER.replace(input_height=480, input_width=640)),
    }
    paths = {}
    for name, (model, contract) in specs.items():
        paths[name] = root / f"{name}.tflite"
        paths[name].write_bytes(_tflite(model, contract))
    return paths


class ScriptedCapture:
    """An OpenCV-like capture (``read() -> (ok, frame)``) delivering distinct frames every ``period`` seconds and
    blocking inside ``read()`` for ``stall_s`` after every ``every`` frames; ``stalls`` holds each stall's start
    (epoch seconds)."""

    def __init__(self, every: int, stall_s: float, period: float = 0.02) -> None:
        self.every, self.stall_s, self.period = every, stall_s, period
        self.n = 0
        self.stalls: list[float] = []

    def read(self):
        self.n += 1
        if self.n % self.every == 0:
            self.stalls.append(time.time())
            time.sleep(self.stall_s)  # a stalled camera: read() just does not return
        else:
            time.sleep(self.period)
        img = np.full((24, 32, 3), self.n % 251, np.uint8)
        return True, img

    def release(self) -> None:
        pass


def run_loop(source, model, config, stop_after: float | None = None, after_a_result: bool = False, **kw):
    """Run steer_stream and return (commands as dicts, SteerResult).

    ``stop_after`` seconds, or, with ``after_a_result``, that long and then as soon as the model has produced a
    result (plus 0.3 s for the emitter to see it): a slow model's invoke takes 0.3 s on a quiet box and several
    seconds on a loaded one."""
    commands = []
    stop = StopRequest()
    predictor = Predictor(str(model))  # loaded before the stop timer starts: on a loaded box loading takes a while
    if stop_after is not None and after_a_result:
        def stop_when_a_result_came() -> None:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60 and (time.monotonic() - t0 < stop_after or predictor.last_timings is None):
                time.sleep(0.05)
            time.sleep(0.3)
            stop.set("test")

        threading.Thread(target=stop_when_a_result_came, daemon=True).start()
    elif stop_after is not None:
        threading.Timer(stop_after, stop.set, args=("test",)).start()
    result = steer_stream(source, predictor, config, on_command=lambda c: commands.append(c.to_dict()),
                          stop=stop, **kw)
    return commands, result


def stale_episodes(commands):
    """(last ok command, first stale command) for every transition from ok to stale."""
    out, last_ok = [], None
    for c in commands:
        if c["state"] == "ok":
            last_ok = c
        elif c["state"] == "stale" and last_ok is not None:
            out.append((last_ok, c))
            last_ok = None
    return out


def test_stalling_source_gets_neutral_within_deadline_and_recovers(models, scheduler):
    deadline = 0.2
    cap = ScriptedCapture(every=12, stall_s=0.45)
    src = CameraSource(lambda: cap, "scripted camera", give_up_s=10, stall_s=5.0)  # no reopen: a pure stall
    commands, result = run_loop(src, models["const"], FailsafeConfig(deadline_s=deadline, max_rate=None),
                                stop_after=5 * 12 * 0.02 + 5 * 0.45 + 0.3)
    episodes = stale_episodes(commands)
    assert len(episodes) >= 4, [c["state"] for c in commands]
    frame_to_neutral = [stale["time"] - ok["frame_time"] for ok, stale in episodes]
    stall_to_neutral = [stale["time"] - t for (_, stale), t in zip(episodes, cap.stalls)]
    print(f"\nstall trials: {len(episodes)}, deadline {deadline * 1e3:.0f} ms; worst frame-to-neutral "
          f"{max(frame_to_neutral) * 1e3:.1f} ms; worst stall-to-neutral {max(stall_to_neutral) * 1e3:.1f} ms")
    assert max(frame_to_neutral) <= deadline + scheduler.margin(0.05)
    assert all(stale["steering"] == 0 and stale["throttle"] == 0 for _, stale in episodes)
    # every stall is followed by ok commands again (recovery), and the stale ones repeat during the stall
    states = [c["state"] for c in commands]
    assert states[-1] == "stopped" and states.count("ok") > 40
    for _, stale in episodes:
        after = states[commands.index(stale):]
        assert "ok" in after[:-1]
    assert result.worst_neutral_ms <= (deadline + scheduler.margin(0.05)) * 1e3
    # the loop never went silent beyond the deadline
    assert result.longest_gap_ms <= (deadline + scheduler.margin(0.05)) * 1e3, scheduler.worst


def test_nan_model_output_becomes_neutral(models, tmp_path):
    video = write_video(tmp_path / "v.mp4", 8)
    commands, result = run_loop(open_source(str(video), every_frame=True), models["nan"],
                                FailsafeConfig(deadline_s=1.0, throttle=0.3))
    assert [c["state"] for c in commands] == ["uncertain"] * 8 + ["stopped"]
    assert all(c["steering"] == 0.0 and c["throttle"] == 0.0 for c in commands)
    assert result.non_finite == 8


def test_slew_rate_and_constant_throttle_on_a_real_model(models, tmp_path):
    video = write_video(tmp_path / "v.mp4", 30)
    commands, _ = run_loop(open_source(str(video)), models["const"],  # plays at 25 FPS like a camera
                           FailsafeConfig(deadline_s=0.5, max_rate=1.0, throttle=0.2))
    ok = [c for c in commands if c["state"] == "ok"]
    steer = [c["steering"] for c in ok]
    assert steer == sorted(steer) and 0 < steer[0] < 0.1 and steer[-1] == pytest.approx(0.7)
    # never faster than 1 unit/s of frame time: the limit runs on the frames' capture times (a recorded drive
    # replays as it was driven), so that is the clock to check it against
    for a, b in zip(ok, ok[1:]):
        assert b["steering"] - a["steering"] <= 1.0 * (b["frame_time"] - a["frame_time"]) + 2e-5  # JSON rounding
    assert {c["throttle"] for c in ok} == {0.2}


def test_model_throttle_and_gmm_uncertainty(models, tmp_path):
    video = write_video(tmp_path / "v.mp4", 4)
    cmds, _ = run_loop(open_source(str(video), every_frame=True), models["throttle"],
                       FailsafeConfig(deadline_s=1.0, max_rate=None))
    assert cmds[0]["steering"] == pytest.approx(-0.4) and cmds[0]["throttle"] == pytest.approx(0.5)
    cmds, _ = run_loop(open_source(str(video), every_frame=True), models["gmm"],
                       FailsafeConfig(deadline_s=1.0, max_rate=None, throttle=0.4, max_uncertainty=0.35))
    first = cmds[0]
    assert first["state"] == "uncertain" and first["uncertainty"] == pytest.approx(0.806, abs=0.01)
    assert first["throttle"] == pytest.approx(0.2) and abs(first["steering"]) < 1e-6


def test_slow_model_never_steers_on_old_frames(models, tmp_path, scheduler):
    """A model slower than the deadline (a stand-in for a hung invoke()): every result is late, neutral goes out."""
    video = write_video(tmp_path / "v.mp4", 100, size=(160, 120))
    deadline = 0.1
    commands, result = run_loop(open_source(str(video)), models["slow"], FailsafeConfig(deadline_s=deadline),
                                stop_after=1.2, after_a_result=True, warmup=0)
    states = [c["state"] for c in commands]
    assert "ok" not in states and states.count("stale") >= 10 and states[-1] == "stopped"
    assert result.late >= 1
    assert result.worst_neutral_ms <= (deadline + scheduler.margin(0.05)) * 1e3, result.format()
    # the neutral heartbeat (every deadline / 2) does not wait for the model; the margin adds the machine's measured
    # scheduling delay (conftest.SchedulerProbe), so load cannot fail the test but a loop that waits would
    gaps = [b["time"] - a["time"] for a, b in zip(commands, commands[1:-1])]
    assert max(gaps) <= deadline + scheduler.margin(0.05), (gaps, scheduler.worst)


def test_source_that_gives_up_raises_after_a_final_neutral(models):
    class Dying(ScriptedCapture):
        def read(self):
            return (False, None) if self.n >= 5 else super().read()

    caps = [Dying(every=10**9, stall_s=0)]
    src = CameraSource(lambda: caps.pop(0) if caps else None, "camera dying", give_up_s=0.8, stall_s=0.3,
                       warn=(lines := []).append)
    commands = []
    with pytest.raises(SourceError, match="giving up"):
        steer_stream(src, Predictor(str(models["const"])), FailsafeConfig(deadline_s=0.2),
                     on_command=lambda c: commands.append(c.to_dict()))
    assert commands[-1]["state"] == "stopped" and "stale" in [c["state"] for c in commands]
    assert any("retrying in" in ln for ln in lines)


def test_results_are_json_lines_with_the_documented_keys(models, tmp_path):
    video = write_video(tmp_path / "v.mp4", 3)
    commands, result = run_loop(open_source(str(video), every_frame=True), models["const"], FailsafeConfig())
    for c in commands:
        assert set(c) == {"time", "frame_time", "steering", "throttle", "uncertainty", "state", "frame"}
        assert c["frame_time"] <= c["time"]
        json.dumps(c, allow_nan=False)
    assert result.stop_reason == "end of stream" and result.stats.frames == 3


class FrozenCapture:
    """A camera driver that keeps returning the very same image (new timestamps, old content)."""

    def read(self):
        time.sleep(0.02)
        return True, np.full((24, 32, 3), 99, np.uint8)

    def release(self) -> None:
        pass


@pytest.mark.parametrize("detect", [True, False])
def test_frozen_camera_goes_stale_unless_allowed(models, detect):
    src = CameraSource(lambda: FrozenCapture(), "frozen camera", give_up_s=10, stall_s=5.0)
    commands, result = run_loop(src, models["const"], FailsafeConfig(deadline_s=0.15), stop_after=0.8,
                                detect_frozen=detect)
    states = [c["state"] for c in commands]
    if detect:  # the first frames are fresh, then only neutral
        first_stale = states.index("stale")
        assert "ok" not in states[first_stale:] and result.frozen > 5
        assert commands[first_stale]["time"] - commands[0]["frame_time"] <= 0.15 + 0.05
    else:
        assert "stale" not in states and states.count("ok") > 20
