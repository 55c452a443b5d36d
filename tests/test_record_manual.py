"""The record fail-safe rules and the live page's bind policy, as pure functions with plain numbers."""

from __future__ import annotations

import pytest

from edgecnn.errors import OptionError
from edgecnn.runtime.live.policy import needs_token, parse_serve, token_matches
from edgecnn.runtime.record.images import ImageSession, burst_active, parse_classes
from edgecnn.runtime.record.manual import HumanInput, manual_command, parse_control, should_record


def test_fresh_input_drives_and_an_old_one_is_neutral_stale():
    inp = HumanInput(0.4, 0.5, "web", mono=100.0)
    assert manual_command(inp, 100.3, deadline_s=0.5) == (0.4, 0.5, "ok")
    assert manual_command(inp, 100.5, deadline_s=0.5) == (0.4, 0.5, "ok")  # exactly at the deadline: still ok
    assert manual_command(inp, 100.51, deadline_s=0.5) == (0.0, 0.0, "stale")
    assert manual_command(inp, 100.2, deadline_s=0.5, max_throttle=0.5) == (0.4, 0.25, "ok")


def test_no_input_yet_is_neutral_and_stale_after_the_deadline_from_start():
    assert manual_command(None, 10.2, 0.5, start_mono=10.0) == (0.0, 0.0, "ok")
    assert manual_command(None, 10.6, 0.5, start_mono=10.0) == (0.0, 0.0, "stale")
    assert manual_command(None, 10.0, 0.5) == (0.0, 0.0, "stale")


def test_record_only_while_throttle_is_on_and_fresh():
    assert should_record(0.3, "ok", "throttle")
    assert not should_record(0.0, "ok", "throttle")
    assert not should_record(0.3, "stale", "throttle")
    assert should_record(0.0, "stale", "always")
    with pytest.raises(ValueError):
        should_record(0.1, "ok", "sometimes")


@pytest.mark.parametrize("payload", [{}, {"angle": 0.1}, {"angle": "x", "throttle": 0}, {"angle": float("nan"), "throttle": 0},
                                     {"angle": 0, "throttle": float("inf")}, {"angle": None, "throttle": 0.1}])
def test_bad_control_payloads_are_refused(payload):
    with pytest.raises(ValueError):
        parse_control(payload)


def test_control_values_are_clamped():
    inp = parse_control({"angle": 3, "throttle": -2}, mono=1.0)
    assert (inp.angle, inp.throttle, inp.mono) == (1.0, -1.0, 1.0)


def test_burst_ends_when_the_page_stops_repeating():
    assert burst_active(1.0, 1.4, 1.8, 0.5)
    assert not burst_active(1.0, 1.4, 1.95, 0.5)
    assert not burst_active(None, None, 1.0, 0.5)
    s = ImageSession(["cat", "dog"])
    s.on_capture({"label": "cat", "hold": True})
    pending, held = s.take(s.heartbeat + 0.1, 0.5)
    assert pending == ["cat"] and held == "cat"
    pending, held = s.take(s.heartbeat + 0.6, 0.5)  # no repeat for longer than the deadline
    assert pending == [] and held is None
    with pytest.raises(ValueError):
        s.on_capture({"label": "bird", "hold": True})


def test_class_names_become_safe_folder_names():
    assert parse_classes("cat, dog,empty") == ["cat", "dog", "empty"]
    for bad in ("", "cat,cat", "../x", "a/b", ".."):
        with pytest.raises(OptionError):
            parse_classes(bad)


def test_bind_policy_loopback_default_and_token_elsewhere():
    assert parse_serve("8000").host == "127.0.0.1" and parse_serve("8000").token is None
    assert parse_serve(":8001").port == 8001
    assert parse_serve("localhost:8000").token is None
    assert parse_serve("[::1]:8000").host == "::1" and parse_serve("[::1]:8000").token is None
    for host in ("127.0.0.2", "0.0.0.0", "192.168.1.5", "::"):
        assert needs_token(host)
    spec = parse_serve("127.0.0.2:8000")
    assert spec.token and len(spec.token) >= 20 and "token=" + spec.token in spec.url()
    assert parse_serve("0.0.0.0:0").token != parse_serve("0.0.0.0:0").token  # a fresh secret every start
    for bad in ("", "x", "host:", "1.2.3.4:70000", "[::1]"):
        with pytest.raises(OptionError):
            parse_serve(bad)


def test_token_comparison():
    assert token_matches(None, None) and token_matches("anything", None)
    assert token_matches("abc", "abc")
    assert not token_matches(None, "abc") and not token_matches("abd", "abc") and not token_matches("", "abc")


def test_gamepad_axes_and_a_missing_gamepad():
    from edgecnn.runtime.record.gamepad import Gamepad, axis_value
    from edgecnn.runtime.record.manual import ManualControl

    assert axis_value(0, 0, 255) == -1.0 and axis_value(255, 0, 255) == 1.0
    assert axis_value(128, 0, 255) == 0.0  # inside the dead zone
    assert axis_value(-32768, -32768, 32767) == -1.0 and axis_value(32767, -32768, 32767) == 1.0
    assert axis_value(5, 5, 5) == 0.0
    # without evdev, or with it and no such device: one clear line either way
    with pytest.raises(OptionError, match="evdev|cannot open the gamepad"):
        Gamepad("/dev/input/no-such-event", ManualControl())
