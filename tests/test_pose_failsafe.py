"""The stale-pose rule and the pose sources, with plain numbers and real sockets (no model, no TensorFlow)."""

from __future__ import annotations

import json
import math
import os
import socket
import time

import pytest

from edgecnn.errors import OptionError, SourceError
from edgecnn.navmap import latlon_to_local
from edgecnn.runtime.failsafe import (
    STATES,
    Command,
    CommandShaper,
    FailsafeConfig,
    is_pose_stale,
    pose_age_ms,
)
from edgecnn.runtime.pose import (
    NmeaTracker,
    NotAPose,
    PoseSource,
    open_pose,
    parse_json_pose,
    parse_nmea,
    parse_pose_spec,
)

pytestmark = pytest.mark.device

ORIGIN = (48.137, 11.575)


def nmea(body: str) -> str:
    """``$body*CS`` with the right checksum."""
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return f"${body}*{cs:02X}"


def gga(lat: float, lon: float, quality: int = 4, t: str = "123519.00") -> str:
    la, lo = abs(lat), abs(lon)
    lat_s = f"{int(la):02d}{(la - int(la)) * 60:09.6f}"
    lon_s = f"{int(lo):03d}{(lo - int(lo)) * 60:09.6f}"
    return nmea(f"GNGGA,{t},{lat_s},{'N' if lat >= 0 else 'S'},{lon_s},{'E' if lon >= 0 else 'W'},{quality},12,0.6,"
                "545.4,M,46.9,M,,")


def rmc(lat: float, lon: float, knots: float, course: float, status: str = "A") -> str:
    la, lo = abs(lat), abs(lon)
    lat_s = f"{int(la):02d}{(la - int(la)) * 60:09.6f}"
    lon_s = f"{int(lo):03d}{(lo - int(lo)) * 60:09.6f}"
    return nmea(f"GPRMC,123519.00,{status},{lat_s},N,{lon_s},E,{knots:.2f},{course:.1f},021226,,,A")


# ----------------------------------------------------------------------------------------------- the rule itself


def test_a_pose_older_than_the_deadline_is_stale():
    assert not is_pose_stale(10.0, 10.5, 0.5)  # exactly the deadline: still usable
    assert is_pose_stale(10.0, 10.5001, 0.5)
    assert not is_pose_stale(10.0, 10.01, 0.5)
    assert is_pose_stale(None, 0.0, 0.5)  # no pose ever: never a map from nothing
    assert pose_age_ms(10.0, 10.25) == pytest.approx(250.0) and pose_age_ms(None, 3.0) is None


def test_pose_stale_is_a_neutral_state_and_recovery_ramps_from_straight():
    assert "pose-stale" in STATES
    s = CommandShaper(FailsafeConfig(max_rate=2.0), start_mono=0.0)
    s.from_output(0.6, None, None, frame_time=100.0, frame=1, now=200.0, mono=1.0)
    n = s.neutral("pose-stale", now=200.2, mono=1.2, frame=2)
    assert n.neutral and n.state == "pose-stale"
    back = s.from_output(0.6, None, None, frame_time=100.3, frame=3, now=200.3, mono=1.3)
    assert back.state == "ok" and back.steering == pytest.approx(0.2)  # 2 units/s for 0.1 s, from 0


def test_route_commands_carry_pose_age_and_pose_and_others_do_not():
    plain = Command(1.0, 0.9, 0.1, 0.0, None, "ok", 3)
    assert "pose_age_ms" not in json.loads(plain.to_json())
    route = Command(1.0, 0.9, 0.1, 0.0, None, "ok", 3, pose_age_ms=42.123456, pose=(1.0, 2.0, 0.5), route=True)
    d = json.loads(route.to_json())
    assert d["pose_age_ms"] == 42.123 and d["pose"] == [1.0, 2.0, 0.5] and d["state"] == "ok"
    d = json.loads(Command(1.0, None, 0.0, 0.0, None, "pose-stale", route=True).to_json())
    assert d["pose_age_ms"] is None and d["pose"] is None


# ------------------------------------------------------------------------------------------------------ parsing


def test_json_pose_lines():
    assert parse_json_pose('{"x": 1, "y": -2.5, "heading": 0.5, "time": 12.0}') == (1.0, -2.5, 0.5, 12.0)
    assert parse_json_pose(b'{"x": 0, "y": 0, "heading": 7.0}')[2] == pytest.approx(7.0 - 2 * math.pi)
    for bad in ("", "nope", "[1, 2]", '{"x": 1, "y": 2}', '{"x": "1", "y": 2, "heading": 0}',
                '{"x": NaN, "y": 2, "heading": 0}', '{"x": true, "y": 2, "heading": 0}',
                '{"x": 1, "y": 2, "heading": 0, "time": "noon"}'):
        with pytest.raises(NotAPose):
            parse_json_pose(bad)


def test_nmea_gga_and_rmc():
    fix = parse_nmea(gga(48.1375, 11.5761))
    assert fix.kind == "GGA" and fix.lat == pytest.approx(48.1375, abs=1e-9) and fix.lon == pytest.approx(11.5761)
    assert fix.time == pytest.approx(12 * 3600 + 35 * 60 + 19)
    r = parse_nmea(rmc(48.1375, 11.5761, knots=3.0, course=90.0))
    assert r.kind == "RMC" and r.speed_mps == pytest.approx(3.0 * 0.514444) and r.course_deg == 90.0
    assert parse_nmea(gga(48.1, 11.5, quality=0)).lat is None  # no fix: no position
    assert parse_nmea(rmc(48.1, 11.5, 1.0, 10.0, status="V")).lat is None
    assert parse_nmea(nmea("GPGSV,3,1,11,03,03,111,00")) is None  # another sentence: not an error
    assert parse_nmea(gga(-33.9, -70.6)).lat == pytest.approx(-33.9) and parse_nmea(gga(-33.9, -70.6)).lon < 0


@pytest.mark.parametrize("line", [
    "", "hello", "$GPGGA,garbage*00", gga(48.1, 11.5)[:-2] + "00",  # wrong checksum
    gga(48.1, 11.5).split("*")[0],  # no checksum
    nmea("GPGGA,123519,4807.038,N"),  # short
    nmea("GPGGA,123519,48xx.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
    nmea("GPGGA,123519,4867.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),  # 67 minutes
    "$" + "A" * 200,
])
def test_nmea_garbage_is_not_a_pose(line):
    with pytest.raises(NotAPose):
        parse_nmea(line)


def test_nmea_tracker_heading_from_course_then_from_travel():
    tr = NmeaTracker(ORIGIN)
    assert tr.update(parse_nmea(gga(*ORIGIN))) is None  # a position, but no heading yet
    lat1 = ORIGIN[0] + 1e-6  # 0.11 m north: too short a hop for a heading
    assert tr.update(parse_nmea(gga(lat1, ORIGIN[1]))) is None
    lat2 = ORIGIN[0] + 5e-6  # 0.56 m north of the first fix: heading north = +pi/2
    x, y, h, _ = tr.update(parse_nmea(gga(lat2, ORIGIN[1])))
    assert (x, y) == pytest.approx(latlon_to_local(lat2, ORIGIN[1], ORIGIN), abs=1e-3) and h == pytest.approx(
        math.pi / 2, abs=0.01)
    # RMC moving east (course 90 deg clockwise from north) wins over travel: heading 0 (east)
    assert tr.update(parse_nmea(rmc(lat2, ORIGIN[1], knots=2.0, course=90.0)))[2] == pytest.approx(0.0, abs=1e-9)
    # standing still, the course is noise and is ignored: the heading is kept
    assert tr.update(parse_nmea(rmc(lat2, ORIGIN[1], knots=0.1, course=270.0)))[2] == pytest.approx(0.0, abs=1e-9)


def test_nmea_tracker_uses_the_initial_heading_until_the_fixes_give_one():
    tr = NmeaTracker(ORIGIN, initial_heading=0.3)  # steer passes the route's direction at its start
    x, y, h, _ = tr.update(parse_nmea(gga(*ORIGIN)))
    assert (x, y, h) == pytest.approx((0.0, 0.0, 0.3), abs=1e-6)
    north = ORIGIN[0] + 5e-6  # 0.56 m north: the fixes now say where it goes
    assert tr.update(parse_nmea(gga(north, ORIGIN[1])))[2] == pytest.approx(math.pi / 2, abs=0.01)


def test_pose_specs():
    assert parse_pose_spec("udp://127.0.0.1:5006") == ("json-udp", {"host": "127.0.0.1", "port": 5006})
    assert parse_pose_spec("udp://:5006") == ("json-udp", {"host": "127.0.0.1", "port": 5006})  # loopback
    assert parse_pose_spec("udp://5006")[1]["host"] == "127.0.0.1"
    assert parse_pose_spec("nmea+udp://0.0.0.0:5007") == ("nmea-udp", {"host": "0.0.0.0", "port": 5007})
    assert parse_pose_spec("nmea+serial:///dev/ttyUSB0?baud=4800") == ("nmea-serial",
                                                                       {"port": "/dev/ttyUSB0", "baud": 4800})
    assert parse_pose_spec("nmea+serial:///dev/ttyACM1")[1]["baud"] == 9600
    for bad in ("gps", "tcp://1.2.3.4:5", "udp://host:port", "udp://:70000", "nmea+serial://",
                "nmea+serial:///dev/ttyUSB0?baud=fast"):
        with pytest.raises(OptionError):
            parse_pose_spec(bad)
    with pytest.raises(OptionError, match="no origin"):
        open_pose("nmea+udp://127.0.0.1:0", origin=None)


def test_feed_counts_garbage_and_keeps_the_newest():
    warnings = []
    src = PoseSource("test", parse_json_pose, warn=warnings.append)
    assert src.feed('{"x": 1, "y": 2, "heading": 0}', now=5.0).received == 5.0
    for line in ("garbage", "{", b"\xff\xfe", "[]", "x" * 10000):
        assert src.feed(line, now=6.0) is None
    assert src.feed("", now=6.0) is None  # an empty line is neither
    assert (src.received, src.skipped) == (1, 5) and src.newest().xyh == (1.0, 2.0, 0.0)
    assert len(warnings) == 3 and "only counted" in warnings[-1]  # the first few, then quiet


# ------------------------------------------------------------------------------------------------- real sockets


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def test_udp_json_pose_source_binds_loopback_and_skips_garbage():
    with open_pose("udp://:0") as src:
        host, port = src.address
        assert host == "127.0.0.1"
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(b'{"x": 1.5, "y": 2, "heading": 0.1, "time": 3}\nnot json\n{"x": 2.5, "y": 2, "heading": 0.2}',
                  (host, port))
        assert _wait(lambda: src.received == 2)
        p = src.newest()
        assert (p.x, p.heading, p.time) == (2.5, 0.2, None) and src.skipped == 1
        assert time.monotonic() - p.received < 5.0
        tx.close()


def test_nmea_over_udp_gives_local_metres():
    with open_pose("nmea+udp://127.0.0.1:0", origin=ORIGIN) as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        north = ORIGIN[0] + 9e-6  # 1.0 m north
        for line in (gga(*ORIGIN), "$GPGGA,garbage*00", gga(north, ORIGIN[1])):
            tx.sendto((line + "\r\n").encode(), src.address)
        assert _wait(lambda: src.received == 1 and src.skipped == 1)
        p = src.newest()
        assert p.y == pytest.approx(1.0, abs=0.01) and abs(p.x) < 1e-6 and p.heading == pytest.approx(math.pi / 2)
        tx.close()


def test_a_port_in_use_is_one_clear_error():
    with open_pose("udp://127.0.0.1:0") as src, pytest.raises(SourceError, match="cannot listen"):
        open_pose(f"udp://127.0.0.1:{src.address[1]}")


def test_a_missing_serial_gps_is_one_clear_error():
    with pytest.raises(SourceError, match="cannot open /dev/edgecnn-no-such-gps|needs pyserial"):
        open_pose("nmea+serial:///dev/edgecnn-no-such-gps?baud=9600", origin=ORIGIN)


def test_nmea_over_a_serial_port():
    """A pseudo-terminal stands in for the GPS's USB serial port (pyserial opens it like /dev/ttyUSB0)."""
    pytest.importorskip("serial")
    master, slave = os.openpty()
    try:
        with open_pose(f"nmea+serial://{os.ttyname(slave)}?baud=9600", origin=ORIGIN) as src:
            east = ORIGIN[1] + 1e-5  # 0.74 m east
            for line in (gga(*ORIGIN), "garbage", rmc(ORIGIN[0], east, knots=2.0, course=90.0)):
                os.write(master, (line + "\r\n").encode())
            assert _wait(lambda: src.received == 1 and src.skipped == 1)
            p = src.newest()
            assert p.x == pytest.approx(0.74, abs=0.01) and p.heading == pytest.approx(0.0, abs=1e-9)
    finally:
        os.close(master)
        os.close(slave)
