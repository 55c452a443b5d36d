"""``edgecnn compare`` on a navigate run (two inputs: camera frame + map raster), through the real CLI: rows for
Keras, fp32 and int8 with the navigate metrics (MAE, NLL, coverage, junction figures), fp32 agreeing with Keras,
the report files, and another data set whose map spec differs refused in one line. Tiny data (tests/nav_synth.py,
16x16 maps, 66x66 frames, 1 epoch) as in tests/test_navigate_task.py."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from nav_synth import make_nav_data

pytestmark = pytest.mark.host

MAP_SIZE = 16


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    """(run folder, calibration folder) of a navnet trained one epoch on the tiny networks data set."""
    from edgecnn.quantize import calibration as cal
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.trainer import train

    base = tmp_path_factory.mktemp("navcmp")
    data = make_nav_data(base / "data", frames=120, map_size=MAP_SIZE)
    cfg = TrainConfig(data=str(data), out=str(base / "run"), task="navigate", img_size=(66, 66), epochs=1, batch=16)
    run_dir = train(cfg, log=lambda m: None, verbose=0).run_dir
    calib, _ = cal.build(cal.source_from_run(run_dir), base / "cal", count=30)
    return run_dir, calib


@pytest.fixture(scope="module")
def compared(nav_run, tmp_path_factory):
    run_dir, calib = nav_run
    out = tmp_path_factory.mktemp("navcmp_out") / "cmp"
    r = run_cli("compare", run_dir, "--calibration", calib, "--out", out, "--runs", "10", "--warmup", "2",
                "--precisions", "fp32,int8", "--closed-loop", "1", "--json", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_rows_have_the_navigate_metrics(compared):
    out, r = compared
    rep = json.loads((out / "report.json").read_text())
    assert json.loads(r.stdout)["rows"] == rep["rows"]  # --json: stdout is the report
    assert rep["task"] == "navigate" and rep["primary_metric"] == "mae"
    rows = {row["variant"]: row for row in rep["rows"]}
    assert list(rows) == ["keras", "fp32", "int8"]
    assert [rows[v]["precision"] for v in rows] == ["fp32 (keras)", "fp32", "int8"]
    for row in rows.values():
        m = row["metrics"]
        assert {"mae", "nll", "coverage", "coverage_ideal", "junctions"} <= set(m), sorted(m)
        assert set(m["coverage"]) == {"1", "2", "3"}
        assert all(0 <= v <= 1 for v in m["coverage"].values())
        assert m["coverage"]["1"] <= m["coverage"]["2"] <= m["coverage"]["3"]
        assert {"route_mode_share", "junction_frames"} <= set(m["junctions"])
        assert m["count"] == rep["test"]["count"] > 0 and m["junctions"]["junction_frames"] > 0
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"] and row["size_bytes"] > 0
    # the same frames through the same model: fp32 is the Keras model to float rounding
    assert rows["fp32"]["agreement"]["steering_max_abs_diff"] < 1e-4
    assert rows["fp32"]["metrics"]["nll"] == pytest.approx(rows["keras"]["metrics"]["nll"], abs=1e-3)
    assert rows["int8"]["size_bytes"] < rows["fp32"]["size_bytes"]
    assert rows["int8"]["agreement"]["steering_max_abs_diff"] > 0  # int8 really ran (it is not the float model)
    # --closed-loop 1: each exported model drove one planned route through an unseen network (Keras does not)
    assert rows["keras"]["closed_loop"] is None
    for v in ("fp32", "int8"):
        loop = rows[v]["closed_loop"]
        assert loop["junctions"] >= 1 and 0 <= loop["junction_success"] <= 1, loop
        assert 0 <= loop["route_completion"] <= 1 and 0 <= loop["autonomy"] <= 1 and loop["distance"] > 0


def test_report_files_and_table(compared):
    out, _ = compared
    for name in ("report.json", "report.md", "report.csv", "accuracy_latency.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "accuracy_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    head = (out / "report.csv").read_text().splitlines()[0]
    assert "NLL" in head and "cov2 %" in head and "junctions ok %" in head and "routes done %" in head
    assert "navigate" in (out / "report.md").read_text()


def test_other_data_with_another_map_spec_is_one_clean_line(nav_run, tmp_path):
    run_dir, _ = nav_run
    other = make_nav_data(tmp_path / "other", frames=20, map_size=MAP_SIZE * 2)
    r = run_cli("compare", run_dir, "--data", other, "--out", tmp_path / "o", "--precisions", "fp32")
    assert r.returncode == 2 and r.clean_error, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "map" in r.stderr and "32 px" in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_other_data_with_the_same_map_spec_is_compared(nav_run, tmp_path):
    run_dir, _ = nav_run
    other = make_nav_data(tmp_path / "other", frames=24, map_size=MAP_SIZE, seed=5)
    r = run_cli("compare", run_dir, "--data", other, "--out", tmp_path / "o", "--precisions", "fp32", "--runs", "5",
                "--warmup", "1", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["test"]["count"] == 24 and [row["variant"] for row in rep["rows"]] == ["keras", "fp32"]
