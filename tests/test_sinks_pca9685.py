"""The PCA9685 sink against an emulated chip (its registers as the datasheet defines them), in process and under a
real ``edgecnn steer`` process; the real smbus2 on a bus that does not exist."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO

from edgecnn.errors import OutputError
from edgecnn.runtime.car_config import CarConfig, SteeringConfig, save_car_config
from edgecnn.runtime.failsafe import Command
from edgecnn.runtime.pca9685 import (
    AI,
    LED0_ON_L,
    MODE1,
    PCA9685,
    PRESCALE,
    SLEEP,
    EmulatedPCA9685,
    prescale_for,
    replay_dump,
    ticks_for,
)
from edgecnn.runtime.sinks import Pca9685Sink, open_sink

# 60 Hz on a 25 MHz clock: prescale round(25e6 / (4096 * 60)) - 1 = 101, one tick = 102 / 25 MHz = 4.08 us.
# Pulses of the test car (1000..2000 us, trim +40) in ticks, computed by hand: 1000 / 4.08 = 245.1 -> 245;
# centre 1540 / 4.08 = 377.45 -> 377; 2000 / 4.08 = 490.2 -> 490; throttle stop 1500 / 4.08 = 367.6 -> 368.
LEFT, CENTRE, RIGHT, STOP = 245, 377, 490, 368
CAR = CarConfig(steering=SteeringConfig(channel=1, min_us=1000, max_us=2000, trim_us=40))


def cmd(steering: float, throttle: float = 0.0, state: str = "ok") -> Command:
    return Command(0.0, 0.0, steering, throttle, None, state, 0)


@pytest.mark.device
def test_prescale_and_ticks_follow_the_datasheet():
    assert prescale_for(200) == 0x1E  # the datasheet's example: 200 Hz -> 30
    assert prescale_for(60) == 101 and prescale_for(50) == 121
    assert prescale_for(1) == 255 and prescale_for(5000) == 3  # the register's limits
    assert ticks_for(1540, 101) == CENTRE


@pytest.mark.device
def test_emulated_chip_behaves_like_the_datasheet():
    chip = EmulatedPCA9685(0x40)
    assert chip.sleeping and chip.pulse_us(0) is None  # power-on: asleep, outputs full off
    chip.write_byte_data(0x40, PRESCALE, 50)
    assert chip.prescale == 50  # asleep: PRESCALE is writable
    chip.write_byte_data(0x40, MODE1, 0x01)  # wake, no auto-increment
    chip.write_byte_data(0x40, PRESCALE, 77)
    assert chip.prescale == 50  # awake: the write is blocked (datasheet 7.3.5)
    chip.write_i2c_block_data(0x40, LED0_ON_L, [0, 0, 100, 1])
    assert chip.regs[LED0_ON_L] == 1 and chip.regs[LED0_ON_L + 2] == 0  # no AI: every byte hit one register
    with pytest.raises(OSError):
        chip.write_byte_data(0x41, MODE1, 0)  # nothing answers at another address


@pytest.mark.device
def test_driver_init_and_exact_pulses_for_minus_one_zero_plus_one_and_trim():
    bus = EmulatedPCA9685(0x40)
    sink = Pca9685Sink(bus, 0x40, CAR)
    assert not bus.sleeping and bus.regs[MODE1] & AI and bus.prescale == 101
    assert (bus.off_ticks(1), bus.off_ticks(0)) == (CENTRE, STOP)  # neutral as soon as it opens
    got = []
    for s in (-1.0, 0.0, 1.0):
        sink.send(cmd(s))
        got.append(bus.off_ticks(1))
    assert got == [LEFT, CENTRE, RIGHT]
    sink.send(cmd(0.5, 0.2))
    assert bus.off_ticks(1) == ticks_for(1770, 101) == 434 and bus.off_ticks(0) == ticks_for(1600, 101) == 392
    assert bus.pulse_us(1) == pytest.approx(1770, abs=4.08 / 2)
    sink.send(cmd(float("nan"), 0.2, "uncertain"))
    assert (bus.off_ticks(1), bus.off_ticks(0)) == (CENTRE, STOP)
    sink.send(cmd(1.0, 1.0))
    assert bus.off_ticks(0) == ticks_for(1650, 101)  # throttle clipped to max_forward 0.3
    sink.close()
    assert (bus.off_ticks(1), bus.off_ticks(0)) == (CENTRE, STOP) and bus.closed
    flipped = EmulatedPCA9685(0x40)
    s2 = Pca9685Sink(flipped, 0x40, CAR.replace(steering=SteeringConfig(channel=1, trim_us=40, right="min")))
    s2.send(cmd(1.0))
    assert flipped.off_ticks(1) == LEFT  # a servo mounted the other way: +1 (right) is the short pulse


@pytest.mark.device
def test_driver_sets_prescale_while_asleep():
    bus = EmulatedPCA9685(0x40)
    PCA9685(bus, 0x40, frequency_hz=50)
    modes = [v for r, v in bus.writes if r == MODE1]
    i_pre = bus.writes.index((PRESCALE, 121))
    assert any(r == MODE1 and v & SLEEP for r, v in bus.writes[:i_pre])  # asleep when the prescale was written
    assert not modes[-1] & SLEEP and bus.prescale == 121


@pytest.mark.device
def test_missing_bus_and_missing_chip_are_one_line(tmp_path):
    car = save_car_config(CAR, tmp_path / "car.toml")
    if os.path.exists("/dev/i2c-7"):
        pytest.skip("this machine has an I2C bus 7")
    with pytest.raises(OutputError, match=r"no I2C bus 7: /dev/i2c-7 does not exist"):
        open_sink(f"pca9685://7/0x40?config={car}")  # the real smbus2
    with pytest.raises(OutputError, match="no PCA9685 answers at I2C address 0x41"):
        Pca9685Sink(EmulatedPCA9685(0x40), 0x41, CAR)
    with pytest.raises(Exception, match="needs the car configuration"):
        open_sink("pca9685://1/0x40")


@pytest.mark.host
def test_steer_process_writes_neutral_on_stale_and_on_sigterm(tmp_path):
    """A real ``edgecnn steer`` on a fake IP camera that stalls, with the emulated chip dumping every register write;
    the dump, replayed into a fresh emulated chip, shows the pulses the car would have seen."""
    from edgecnn_robustness.fakecam import FakeCamera
    from test_steer_cli import SteerProcess
    from test_steer_loop import STEER, _constant_model, _tflite

    model = tmp_path / "steer.tflite"
    model.write_bytes(_tflite(_constant_model([0.7]), STEER))
    car = save_car_config(CAR, tmp_path / "car.toml")
    dump = tmp_path / "regs.jsonl"
    cam = FakeCamera(fps=50)
    p = SteerProcess("--model", model, "--source", cam.url, "--deadline-ms", 200, "--throttle", 0.2,
                     "--max-steering-rate", 0, "--trust-model", "--sink", "stdout",
                     "--sink", f"pca9685+emu://1/0x40?config={car}&dump={dump}")
    p.wait_for("ok")
    cam.set("stall")
    p.wait_for("stale")
    cam.set("stream")
    time.sleep(1.0)
    rc, commands, err = p.finish(signal.SIGTERM)
    assert rc == 0, err
    assert "EMULATED PCA9685" in err
    # Each command writes throttle (channel 0) then steering (channel 1): look at the chip after each steering write.
    states = [(chip.off_ticks(1), chip.off_ticks(0)) for _, reg, chip in replay_dump(dump)
              if reg == LED0_ON_L + 4 * 1 + 3]
    drive = (ticks_for(CAR.steering_us(0.7), 101), ticks_for(CAR.throttle_us(0.2), 101))
    neutral = (CENTRE, STOP)
    assert drive == (456, 392)  # 1862 us and 1600 us
    assert set(states) == {neutral, drive}
    assert states[0] == neutral and states[-2:] == [neutral, neutral]  # open; the 'stopped' command and close
    runs = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert runs[:4] == [neutral, drive, neutral, drive]  # drive, neutral while stale, drive again, neutral at the end
    assert len(states) == len(commands) + 2  # one chip write per command, plus open and close
    sent = [neutral if c["steering"] == 0 and c["throttle"] == 0 else drive for c in commands]
    assert states[1:-1] == sent
    assert json.loads(dump.read_text().splitlines()[0])["reg"] is not None


@pytest.mark.device
@pytest.mark.parametrize("sink, message", [
    ("pca9685://7/0x40?config={car}", "no I2C bus 7: /dev/i2c-7 does not exist"),
    ("serial:///dev/ttyNOPE9?baud=115200&config={car}", "cannot open serial port /dev/ttyNOPE9"),
    ("pca9685://1/0x40?config={car}&speed=9", "unknown option(s) speed"),
    ("pca9685+emu://1/0x40", "needs the car configuration"),
])
def test_steer_with_a_board_that_is_not_there_is_one_line_and_sends_nothing(tmp_path, sink, message):
    if os.path.exists("/dev/i2c-7"):
        pytest.skip("this machine has an I2C bus 7")
    car = save_car_config(CAR, tmp_path / "car.toml")
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", "--model", str(tmp_path / "m.tflite"),
                           "--source", "0", "--sink", "stdout", "--sink", sink.format(car=car)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(errors) == 1, proc.stderr
    assert message in errors[0] and proc.stdout == ""
