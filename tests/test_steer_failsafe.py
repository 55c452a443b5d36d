"""The fail-safe rules and the sinks, with plain numbers and real sockets (no model, no TensorFlow)."""

from __future__ import annotations

import json
import math
import socket

import pytest

from edgecnn.errors import OutputError
from edgecnn.runtime.failsafe import (
    Command,
    CommandShaper,
    FailsafeConfig,
    is_stale,
    watchdog_expired,
)
from edgecnn.runtime.sinks import StdoutSink, UdpSink, open_sink, parse_udp

pytestmark = pytest.mark.device

KEYS = {"time", "frame_time", "steering", "throttle", "uncertainty", "state", "frame"}


def shape(shaper: CommandShaper, steering, mono, throttle=None, uncertainty=None) -> Command:
    return shaper.from_output(steering, throttle, uncertainty, frame_time=1000.0 + mono, frame=int(mono * 100),
                              now=2000.0 + mono, mono=mono)


def test_steering_is_clamped_and_throttle_defaults_to_zero():
    s = CommandShaper(FailsafeConfig(max_rate=None))
    assert shape(s, 3.0, 0.0).steering == 1.0
    assert shape(s, -7.5, 0.1).steering == -1.0
    cmd = shape(s, 0.25, 0.2)
    assert (cmd.steering, cmd.throttle, cmd.state, cmd.frame_time) == (0.25, 0.0, "ok", 1000.2)


def test_slew_rate_limits_each_step_and_ramps_from_neutral_at_start():
    s = CommandShaper(FailsafeConfig(max_rate=2.0), start_mono=0.0)
    got = [shape(s, 1.0, t).steering for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert shape(s, -1.0, 0.7).steering == pytest.approx(0.8)  # reversing is limited too


def test_neutral_is_immediate_and_the_next_command_ramps_from_zero():
    s = CommandShaper(FailsafeConfig(max_rate=1.0), start_mono=0.0)
    shape(s, 1.0, 1.0)  # reaches 1.0 after a second
    n = s.neutral("stale", now=5.0, mono=1.1)
    assert n.neutral and n.state == "stale" and n.frame_time == 1001.0  # carries the last frame's time
    assert shape(s, 1.0, 1.2).steering == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_output_becomes_neutral(bad):
    s = CommandShaper(FailsafeConfig(max_rate=None, throttle=0.3))
    shape(s, 0.5, 0.0)
    for kw in ({"steering": bad}, {"steering": 0.1, "throttle": bad}, {"steering": 0.1, "uncertainty": bad}):
        cmd = s.from_output(kw.get("steering"), kw.get("throttle"), kw.get("uncertainty"), 1.0, 1, 2.0, 0.5)
        assert cmd.neutral and cmd.state == "uncertain"
        json.loads(cmd.to_json())  # strict JSON: never NaN
    assert s.non_finite == 3


def test_high_uncertainty_reduces_throttle():
    s = CommandShaper(FailsafeConfig(max_rate=None, throttle=0.4, max_uncertainty=0.3, uncertain_throttle=0.5))
    assert shape(s, 0.1, 0.0, uncertainty=0.1).state == "ok"
    cmd = shape(s, 0.1, 0.1, uncertainty=0.6)
    assert cmd.state == "uncertain" and cmd.throttle == pytest.approx(0.2) and cmd.uncertainty == 0.6
    assert shape(s, 0.1, 0.2, throttle=0.8).throttle == 0.8  # the model's own throttle wins over the constant


def test_staleness_rule():
    assert not is_stale(10.0, 0.0, 10.5, 0.5)
    assert is_stale(10.0, 0.0, 10.51, 0.5)
    assert is_stale(None, 0.0, 0.6, 0.5)  # no frame at all since the start


@pytest.mark.parametrize("kw", [{"deadline_s": 0}, {"max_rate": -1.0}, {"throttle": 1.5}, {"throttle": math.nan},
                                {"uncertain_throttle": 2.0}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ValueError):
        FailsafeConfig(**kw)


def test_json_line_has_the_documented_keys():
    cmd = Command(1.5, None, -0.0, 0.0, None, "stale", None)
    d = json.loads(cmd.to_json())
    assert set(d) == KEYS and d["state"] == "stale" and d["frame_time"] is None


def test_udp_sink_sends_one_datagram_per_command_to_localhost_by_default():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2.0)
    port = rx.getsockname()[1]
    try:
        sink = open_sink(f"udp://:{port}")
        assert isinstance(sink, UdpSink) and sink.address == ("127.0.0.1", port)
        with sink:
            sink.send(Command(1.0, 0.9, 0.25, 0.0, None, "ok", 7))
            sink.send(Command(2.0, 0.9, 0.0, 0.0, None, "stopped", 7))
        got = [json.loads(rx.recv(4096)) for _ in range(2)]
    finally:
        rx.close()
    assert [g["state"] for g in got] == ["ok", "stopped"] and got[0]["steering"] == 0.25 and set(got[0]) == KEYS


def test_udp_sink_without_a_receiver_does_not_fail():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nobody listens there now
    lines: list[str] = []
    with UdpSink("127.0.0.1", port, warn=lines.append) as sink:
        for _ in range(3):
            sink.send(Command(1.0, None, 0.0, 0.0, None, "stale"))  # must not raise
    assert len(lines) <= 1  # a refused send (ICMP port unreachable) is reported once, not per command


def test_udp_spec_parsing_and_bad_sinks():
    assert parse_udp("udp://10.0.0.2:5005") == ("10.0.0.2", 5005)
    assert parse_udp("udp://5005") == ("127.0.0.1", 5005)
    assert parse_udp("udp://[::1]:6000") == ("::1", 6000)
    for bad, msg in [("udp://host:port", "expected udp://HOST:PORT"), ("tcp://x:1", "unknown sink"),
                     ("udp://127.0.0.1:70000", "1..65535")]:
        with pytest.raises(OutputError, match=msg):
            open_sink(bad)


def test_stdout_sink_writes_strict_json_lines(capsys):
    StdoutSink().send(Command(1.0, 0.5, 0.1, 0.0, 0.2, "ok", 3))
    line = capsys.readouterr().out
    assert line.endswith("\n") and json.loads(line)["uncertainty"] == 0.2


def test_slew_limit_runs_in_frame_time_not_wall_time():
    """A recording replayed as fast as possible (every command at the same wall instant) gets the steering it got
    when driven: the limit follows the frames' capture times."""
    frames = [(1000.0 + 0.05 * i, 1.0 if i >= 2 else 0.0) for i in range(8)]  # 20 FPS, a step to full right

    def run(mono_of):
        s = CommandShaper(FailsafeConfig(max_rate=4.0), start_mono=0.0)
        return [s.from_output(v, None, None, frame_time=t, frame=i, now=0.0, mono=mono_of(i)).steering
                for i, (t, v) in enumerate(frames)]

    real_time = run(lambda i: 0.05 * (i + 1))
    as_fast_as_possible = run(lambda i: 1e-6 * (i + 1))
    assert real_time == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0])  # 4 units/s x 50 ms per frame
    assert as_fast_as_possible == pytest.approx(real_time)


def test_frame_time_going_backwards_holds_the_steering():
    s = CommandShaper(FailsafeConfig(max_rate=1.0))
    shape(s, 0.5, 0.0)
    cmd = s.from_output(-1.0, None, None, frame_time=999.0, frame=1, now=0.0, mono=5.0)
    assert cmd.steering == 0.5  # a clock that jumps back allows no change


def test_file_name_is_in_the_json_only_when_known():
    s = CommandShaper(FailsafeConfig(max_rate=None))
    with_file = s.from_output(0.1, None, None, 1.0, 3, 2.0, 0.0, file="17_cam_image_array_.jpg")
    assert json.loads(with_file.to_json())["file"] == "17_cam_image_array_.jpg"
    assert set(json.loads(shape(s, 0.1, 0.1).to_json())) == KEYS


def test_receiver_watchdog_rule():
    assert watchdog_expired(None, 0.0, 0.5)  # nothing ever arrived
    assert not watchdog_expired(10.0, 10.5, 0.5)
    assert watchdog_expired(10.0, 10.501, 0.5)
