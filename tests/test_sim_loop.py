"""The closed-loop simulator: bicycle model, road look-ups, reference policies, latency, metrics, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.sim.bicycle import CarParams, Pose, step
from edgecnn.sim.road import make_road
from edgecnn.sim.simulate import PurePursuitPolicy, SimConfig, simulate, zero_policy

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, env_block_matplotlib: bool = False) -> subprocess.CompletedProcess:
    code = "import sys\n"
    if env_block_matplotlib:
        code += "sys.modules['matplotlib'] = None\n"  # as on a device install without matplotlib
    code += f"from edgecnn.cli import main\nmain({list(args)!r})\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_bicycle_turns_right_for_positive_commands_on_the_right_circle():
    car = CarParams()
    p = step(Pose(0, 0, 0), 1.0, 0.5, car)
    assert p.yaw < 0 and p.y < 0  # positive = right = clockwise
    # Full lock for one lap returns to the start: radius = wheelbase / tan(max steer).
    r = car.wheelbase / math.tan(car.max_steer)
    lap = 2 * math.pi * r / car.speed
    q = Pose(0, 0, 0)
    for _ in range(100):
        q = step(q, -1.0, lap / 100, car)
    assert math.hypot(q.x, q.y) < 1e-6 and q.yaw == pytest.approx(2 * math.pi)
    # Splitting time does not change the result (exact arcs).
    assert step(step(Pose(0, 0, 0), 0.3, 0.1, car), 0.3, 0.1, car).x == pytest.approx(step(Pose(0, 0, 0), 0.3, 0.2, car).x)


def test_road_locate_signs():
    road = make_road(np.random.default_rng(0), length=20)
    x, y, h = road.pose_at(7.0)
    s, off, hd = road.locate(x - 0.2 * math.sin(h), y + 0.2 * math.cos(h), hint_s=6.5)
    assert s == pytest.approx(7.0, abs=0.03) and off == pytest.approx(0.2, abs=1e-3) and hd == pytest.approx(h, abs=0.01)
    assert np.abs(road.curvature).max() <= 0.6 + 1e-9


def test_ideal_controller_stays_in_lane():
    r = simulate(PurePursuitPolicy(), SimConfig(roads=5, road_length=20))
    assert r.departures == 0 and r.autonomy == 1.0
    assert r.mean_abs_offset < 0.02 and r.max_abs_offset < 0.1
    assert r.distance == pytest.approx(100.0, abs=0.5)


def test_zero_steering_leaves_the_lane_on_curvy_roads():
    r = simulate(zero_policy, SimConfig(roads=5, road_length=20))
    assert r.departures >= 5 and r.autonomy < 0.5
    assert r.max_abs_offset > 0.3
    assert all(len(pr.departure_points) == pr.departures for pr in r.per_road)


def test_latency_delays_commands_and_hurts_eventually():
    base = simulate(PurePursuitPolicy(), SimConfig(roads=3, road_length=20))
    late = simulate(PurePursuitPolicy(), SimConfig(roads=3, road_length=20, latency_ms=600))
    assert late.departures > base.departures
    assert late.mean_abs_offset > 5 * base.mean_abs_offset


def test_frame_policy_sees_camera_frames_and_is_deterministic():
    seen = []

    def policy(frame):
        seen.append(frame)
        return 0.0, 0.25

    cfg = SimConfig(roads=1, road_length=3)
    r = simulate(policy, cfg)
    assert seen and seen[0].shape == (120, 160, 3) and seen[0].dtype == np.uint8
    assert r.mean_uncertainty == pytest.approx(0.25)
    seen2 = []
    simulate(lambda f: (seen2.append(f), (0.0, None))[1], cfg)
    assert all(np.array_equal(a, b) for a, b in zip(seen, seen2))


def test_nan_commands_do_not_crash_the_loop():
    r = simulate(lambda f: (float("nan"), None), SimConfig(roads=1, road_length=3))
    assert r.time_s > 0


def test_cli_json_has_the_documented_keys():
    p = _run("simulate", "--policy", "ideal", "--roads", "2", "--road-length", "10", "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    for key in ("autonomy", "departures", "mean_abs_offset", "max_abs_offset", "distance"):
        assert key in d
    assert d["autonomy"] == 1.0 and d["departures"] == 0 and d["distance"] == pytest.approx(20.0, abs=0.5)


def test_cli_plot_writes_a_png(tmp_path):
    out = tmp_path / "plot.png"
    p = _run("simulate", "--policy", "zero", "--roads", "2", "--road-length", "10", "--plot", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "departures:" in p.stdout
    # with departures, the in-lane share never reads 100.0 % (issue 16), and roads are numbered from 1 as in the plot
    departures = int(next(line for line in p.stdout.splitlines() if line.startswith("departures:")).split()[1])
    assert departures > 0 and "in-lane time:     100.0 %" not in p.stdout
    assert "road 1/2" in p.stderr and "road 0" not in p.stderr


def test_percent_never_rounds_a_failure_to_100():
    from edgecnn.cli.cmd_simulate import _percent

    assert _percent(0.99996, departures=1) == "99.99 %"
    assert _percent(0.99996, departures=0) == "100.0 %"
    assert _percent(0.5, departures=3) == "50.0 %"


@pytest.mark.parametrize(
    "args, block, message",
    [
        (["simulate", "--policy", "ideal", "--plot", "x.png"], True, "needs matplotlib"),
        (["simulate", "--model", "/no/such/model.tflite"], False, "no model at"),
        (["simulate"], False, "--model"),
        (["simulate", "--policy", "ideal", "--roads", "0"], False, "--roads"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(args, block, message, tmp_path):
    p = _run(*args, env_block_matplotlib=block)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert message in p.stderr
    assert not (REPO / "x.png").exists()


def test_cli_rejects_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"not a model at all")
    p = _run("simulate", "--model", str(bad))
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.startswith("Error:")


def test_device_side_modules_never_import_tensorflow(tmp_path):
    """The simulator, the data readers and the mixture maths run on a TensorFlow-free install."""
    code = (
        "import sys\n"
        "sys.modules['tensorflow'] = None\nsys.modules['keras'] = None\n"
        "import edgecnn.sim.simulate, edgecnn.runtime.model_policy, edgecnn.sim.render, edgecnn.mixture\n"
        "import edgecnn.data.steering, edgecnn.data.tub, edgecnn.data.steering_csv, edgecnn.data.roads\n"
        "import edgecnn.cli.cmd_simulate, edgecnn.cli.data_roads\n"
        f"edgecnn.data.roads.generate({str(tmp_path / 'r')!r}, n=3, size=(64, 48))\n"
        "from edgecnn.cli import main\n"
        "main(['simulate', '--policy', 'ideal', '--roads', '1', '--road-length', '3', '--json'])\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["departures"] == 0
