"""The car configuration: the pulse mapping with plain numbers, the file formats, and one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

from edgecnn.errors import OptionError
from edgecnn.runtime.car_config import (
    CarConfig,
    SteeringConfig,
    ThrottleConfig,
    load_car_config,
    save_car_config,
)

pytestmark = pytest.mark.device


def test_steering_mapping_end_points_trim_and_sign_convention():
    car = CarConfig(steering=SteeringConfig(min_us=1000, max_us=2000, trim_us=40))
    # positive = right = the "max" end point; trim moves only the centre, the end points stay
    assert [car.steering_us(s) for s in (-1, -0.5, 0, 0.5, 1)] == [1000, 1270, 1540, 1770, 2000]
    assert car.steering_us(7) == 2000 and car.steering_us(float("nan")) == 1540
    flipped = car.replace(steering=SteeringConfig(min_us=1000, max_us=2000, trim_us=40, right="min"))
    assert flipped.steering_us(1) == 1000 and flipped.steering_us(-1) == 2000 and flipped.steering_us(0) == 1540


def test_throttle_limits_and_neutral():
    car = CarConfig(throttle=ThrottleConfig(min_us=1100, max_us=1900, stopped_us=1500, max_forward=0.25,
                                            max_reverse=0.1))
    assert car.throttle_us(0) == 1500 and car.throttle_us(0.2) == pytest.approx(1580)
    assert car.throttle_us(1) == pytest.approx(1600)  # clipped to max_forward 0.25 of the 400 us travel
    assert car.throttle_us(-1) == pytest.approx(1460)  # max_reverse 0.1
    assert car.neutral_us() == (1500, 1500)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_round_trip(tmp_path, suffix):
    car = CarConfig(frequency_hz=50, steering=SteeringConfig(channel=3, min_us=1100, max_us=1850, right="min",
                                                             trim_us=-12.5),
                    throttle=ThrottleConfig(channel=2, max_forward=0.4))
    path = save_car_config(car, tmp_path / f"car{suffix}")
    assert load_car_config(path) == car
    if suffix == ".json":
        assert json.loads(path.read_text())["steering"]["right"] == "min"


@pytest.mark.parametrize("text, message", [
    ("[steering]\nmin_us = 2000\nmax_us = 1000\n", "steering end points reversed: min_us 2000 >= max_us 1000"),
    ("[throttle]\nmin_us = 1600\nmax_us = 1400\nstopped_us = 1500\n", "throttle end points reversed"),
    ("[steering]\nmin_us = 290\nmax_us = 460\n", "is not an RC pulse"),  # donkeycar's tick counts, not us
    ("[steering]\ntrim_us = 600\n", "outside the end points"),
    ("[steering]\nchanel = 1\n", "unknown key(s) in [steering]: chanel"),
    ("[steering]\nchannel = 0\n", "same channel 0"),
    ("[steering]\nchannel = 16\n", "channel 0..15"),
    ("[steering]\nright = \"left\"\n", "steering.right must be"),
    ("[pwm]\nfrequency_hz = 2000\n", "pwm.frequency_hz must be in"),
    ("[pwm]\nfrequency_hz = 600\n", "does not fit in one period"),
    ("[throttle]\nstopped_us = 2000\n", "strictly between"),
    ("[throttle]\nmax_forward = 1.5\n", "max_forward must be a fraction"),
    ("[motor]\nx = 1\n", "unknown section(s) motor"),
    ("[steering\n", "not valid TOML"),
])
def test_bad_config_is_one_clear_line(tmp_path, text, message):
    path = tmp_path / "car.toml"
    path.write_text(text)
    with pytest.raises(OptionError) as err:
        load_car_config(path)
    assert message in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)


def test_missing_config_says_how_to_make_one(tmp_path):
    with pytest.raises(OptionError, match="edgecnn car calibrate"):
        load_car_config(tmp_path / "none.toml")


def test_steer_refuses_reversed_end_points_and_sends_nothing(tmp_path):
    """The config is checked when the sink opens, before the model or the camera: no command reaches any sink."""
    car = tmp_path / "car.toml"
    car.write_text("[steering]\nmin_us = 2000\nmax_us = 1000\n")
    dump = tmp_path / "regs.jsonl"
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", "--model", str(tmp_path / "m.tflite"),
                           "--source", "0", "--sink", "stdout", "--sink",
                           f"pca9685+emu://1/0x40?config={car}&dump={dump}"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "end points reversed" in errors[0]
    assert proc.stdout == "" and not dump.exists()  # nothing was sent, not even to the chip


def test_calibrate_step_by_step_on_the_emulated_board(tmp_path):
    """`edgecnn car calibrate` fed on stdin: every pulse typed is output at once, the file holds what was found,
    a servo mounted the other way (right = the shorter pulse) is recorded as such, and neutral goes out at the end."""
    from edgecnn.runtime.pca9685 import LED0_ON_L, replay_dump, ticks_for

    dump, out = tmp_path / "regs.jsonl", tmp_path / "car.toml"
    answers = ["2", "5",  # channels
               "1480", "",  # straight ahead: try 1480, keep it
               "1950", "",  # full left is the long pulse on this car
               "1050", "",  # full right
               "", "1800", "",  # ESC neutral 1500 (kept), full forward 1800
               "1200", "",  # full reverse
               "0.2", ""]  # limits
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "car", "calibrate", "--sink",
                           f"pca9685+emu://1/0x40?dump={dump}", "--out", str(out)],
                          input="\n".join(answers) + "\n", cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    car = load_car_config(out)
    assert (car.steering.channel, car.throttle.channel) == (2, 5)
    assert (car.steering.min_us, car.steering.max_us, car.steering.right) == (1050, 1950, "min")
    assert car.steering.trim_us == -20 and car.steering_us(0) == 1480 and car.steering_us(1) == 1050
    assert (car.throttle.min_us, car.throttle.max_us, car.throttle.stopped_us, car.throttle.forward) == (1200, 1800, 1500, "max")
    assert car.throttle.max_forward == 0.2 and car.throttle.max_reverse == 0.0
    steering_writes = [chip.off_ticks(2) for _, reg, chip in replay_dump(dump) if reg == LED0_ON_L + 4 * 2 + 3]
    tried = [ticks_for(us, 101) for us in (1480, 1950, 1050)]
    assert all(t in steering_writes for t in tried)  # each typed pulse reached the servo
    final = replay_dump(dump)[-1][2]
    assert (final.off_ticks(2), final.off_ticks(5)) == (ticks_for(1480, 101), ticks_for(1500, 101))


def test_calibrate_quit_writes_nothing(tmp_path):
    out = tmp_path / "car.toml"
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "car", "calibrate", "--sink", "pca9685+emu://1/0x40",
                           "--out", str(out)], input="1\n0\nq\n", cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "nothing written" in proc.stderr and not out.exists()
