"""The serial sink and its line protocol: the parser (the Arduino sketch's logic) with plain numbers, the sink over a
real pseudo-terminal pair, and ``kill -9`` of a real ``edgecnn steer``: the far end reaches neutral by its own
watchdog."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from edgecnn.errors import OutputError
from edgecnn.runtime.car_config import CarConfig, SteeringConfig, save_car_config
from edgecnn.runtime.failsafe import Command
from edgecnn.runtime.serial_sink import (
    WatchdogParser,
    checksum,
    encode_config,
    encode_drive,
    parse_line,
)
from edgecnn.runtime.sinks import SerialSink, open_sink

CAR = CarConfig(steering=SteeringConfig(channel=1, min_us=1000, max_us=2000, trim_us=40))


def cmd(steering: float, throttle: float = 0.0) -> Command:
    return Command(0.0, 0.0, steering, throttle, None, "ok", 0)


@pytest.mark.device
def test_line_format_and_checksum():
    assert encode_drive(1862.4, 1600) == f"D 1862 1600*{checksum('D 1862 1600')}\n".encode()
    assert checksum("D 1500 1500") == "44"  # XOR of the bytes (NMEA): the two equal fields cancel, "D" = 0x44 is left
    assert parse_line(encode_config(1540, 1500, 300).decode()) == ("N", (1540, 1500, 300))
    for bad in ["D 1500 1500*00", "D 1500 1500", "D 1500*" + checksum("D 1500"), "X 1 2*" + checksum("X 1 2"),
                "D 9000 1500*" + checksum("D 9000 1500"), "D -1500 1500*" + checksum("D -1500 1500"),
                "N 1500 1500 0*" + checksum("N 1500 1500 0"), ""]:
        assert parse_line(bad) is None, bad


@pytest.mark.device
def test_parser_watchdog_with_plain_numbers():
    p = WatchdogParser()
    assert p.output(0.0).state == "neutral" and (p.output(0.0).steer_us, p.output(0.0).throttle_us) == (1500, 1500)
    p.feed(encode_config(1540, 1500, 300), now=0.0)
    p.feed(encode_drive(1862, 1600)[:5], now=1.0)  # a line split across reads
    p.feed(encode_drive(1862, 1600)[5:] + b"garbage*00\n", now=1.0)
    assert p.output(1.2).state == "drive" and p.output(1.3) == p.output(1.0)
    assert p.ignored == 1
    out = p.output(1.301)
    assert out.state == "timeout" and (out.steer_us, out.throttle_us) == (1540, 1500)
    p.feed(b"x" * 100 + encode_drive(1000, 1500), now=2.0)  # an over-long line is dropped whole
    assert p.output(2.0).state == "timeout"
    p.feed(encode_drive(1000, 1500), now=2.0)
    assert p.output(2.0).steer_us == 1000


class PtyReader:
    """The far end of a pseudo-terminal pair: every byte fed to a :class:`WatchdogParser` as it arrives."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.parser = WatchdogParser()
        self.received: list[tuple[float, bytes]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            now = time.monotonic()
            with self.lock:
                self.received.append((now, data))
                self.parser.feed(data, now)

    def lines(self) -> list[str]:
        with self.lock:
            raw = b"".join(d for _, d in self.received)
        return [ln.strip() for ln in raw.decode().splitlines() if ln.strip()]

    def wait(self, predicate, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if predicate(self.parser):
                    return
            time.sleep(0.01)
        raise AssertionError(f"timed out; received {self.lines()[-5:]}")

    def close(self) -> None:
        os.close(self.slave)
        os.close(self.master)


@pytest.mark.device
def test_sink_over_a_pseudo_terminal(tmp_path):
    pty = PtyReader()
    try:
        config = save_car_config(CAR, tmp_path / "car.toml")
        sink = open_sink(f"serial://{pty.path}?baud=115200&config={config}&timeout_ms=250")
        assert isinstance(sink, SerialSink)
        sink.send(cmd(1.0, 0.2))
        pty.wait(lambda p: p.state == "drive")
        assert (pty.parser.current, pty.parser.timeout_s) == ((2000, 1600), 0.25)
        sink.send(cmd(float("nan")))
        sink.close()
        pty.wait(lambda p: p.lines >= 4)
        assert pty.lines() == [encode_config(1540, 1500, 250).decode().strip(), encode_drive(2000, 1600).decode().strip(),
                               encode_drive(1540, 1500).decode().strip(), encode_drive(1540, 1500).decode().strip()]
        assert pty.parser.ignored == 0
    finally:
        pty.close()


@pytest.mark.device
def test_port_that_does_not_exist_is_one_line(tmp_path):
    config = save_car_config(CAR, tmp_path / "car.toml")
    with pytest.raises(OutputError) as err:
        open_sink(f"serial:///dev/ttyNOPE9?baud=115200&config={config}")
    assert "cannot open serial port /dev/ttyNOPE9" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.host
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_steer_the_far_end_reaches_neutral(tmp_path, sig):
    """SIGTERM: ``steer`` sends its final neutral. ``kill -9``: it sends nothing more, and the microcontroller's
    watchdog (here the same logic in Python) outputs neutral ``timeout_ms`` after the last line."""
    from conftest import write_video
    from test_steer_cli import SteerProcess
    from test_steer_loop import STEER, _constant_model, _tflite

    model = tmp_path / "steer.tflite"
    model.write_bytes(_tflite(_constant_model([0.7]), STEER))
    video = write_video(tmp_path / "long.mp4", 750)  # 30 s at 25 FPS, played in real time
    config = save_car_config(CAR, tmp_path / "car.toml")
    pty = PtyReader()
    drive = (round(CAR.steering_us(0.7)), round(CAR.throttle_us(0.2)))
    try:
        p = SteerProcess("--model", model, "--source", video, "--throttle", 0.2, "--max-steering-rate", 0,
                         "--trust-model", "--sink", f"serial://{pty.path}?config={config}&timeout_ms=300")
        pty.wait(lambda par: par.state == "drive" and par.current == drive and par.lines >= 5)
        p.proc.send_signal(sig)
        p.proc.wait(timeout=20)
        time.sleep(0.2)  # anything still in the pty arrives
        with pty.lock:
            last_rx = pty.received[-1][0]
            last = pty.parser.output(last_rx)
        if sig == signal.SIGKILL:
            assert (last.steer_us, last.throttle_us, last.state) == (*drive, "drive")  # no goodbye was sent
            pty.wait(lambda par: par.output(time.monotonic()).state == "timeout", timeout=5)
            with pty.lock:
                out = pty.parser.output(time.monotonic())
        else:
            out = last
            assert pty.lines()[-1] == encode_drive(1540, 1500).decode().strip()
        assert (out.steer_us, out.throttle_us) == (1540, 1500)
        assert pty.parser.ignored == 0
    finally:
        if p.proc.poll() is None:
            p.proc.kill()
        pty.close()


@pytest.mark.device
def test_calibration_output_over_serial_sends_raw_pulses():
    from edgecnn.runtime.sinks import open_pulse_output

    pty = PtyReader()
    try:
        out = open_pulse_output(f"serial://{pty.path}", steering_channel=1, throttle_channel=0)
        out.pulse(1234, 1500)
        out.close()
        pty.wait(lambda p: p.lines >= 2)
        # a long watchdog while a human types; the pulses exactly as typed
        assert pty.lines() == [encode_config(1500, 1500, 60000).decode().strip(),
                               encode_drive(1234, 1500).decode().strip()]
    finally:
        pty.close()
