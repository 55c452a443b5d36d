"""A run remembers the calibration set built from it (issue 16: `compare RUN` without --calibration showed only
the Keras row). Real CLI subprocesses on a copy of the tiny trained run."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli

pytestmark = pytest.mark.host


@pytest.fixture()
def run_with_set(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cal = tmp_path / "cal"
    r = run_cli("calibrate", run, "--out", cal, "--count", "60", block_tf=True)
    assert r.returncode == 0, r.stderr
    assert "remembers this set" in r.stdout
    return run, cal


def test_calibrate_records_the_set_in_the_run(run_with_set):
    run, cal = run_with_set
    doc = json.loads((run / "calibration.json").read_text())
    assert doc["path"] == str(cal.resolve()) and doc["count"] == 60
    assert doc["sha256"] == json.loads((cal / "MANIFEST.json").read_text())["sha256"]


def test_compare_and_quantize_use_the_remembered_set(run_with_set, tmp_path):
    run, cal = run_with_set
    r = run_cli("compare", run, "--precisions", "fp32,int8", "--runs", "5", "--warmup", "1", "--limit", "20",
                "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert [row["variant"] for row in rep["rows"]] == ["keras", "fp32", "int8"]
    assert rep["test"]["calibration"] == str(cal.resolve()) and f"remembered by {run}" in r.stderr
    out = tmp_path / "m.tflite"
    r = run_cli("quantize", run, "--precision", "int8", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert out.is_file() and "remembered by" in r.stderr
    # and TensorFlow starts quietly (issue 16: quantize and export printed absl/CUDA start-up noise)
    assert not [line for line in r.stderr.splitlines() if "absl" in line or "cuda" in line.lower()], r.stderr


def test_a_vanished_or_missing_set_is_one_clear_line(run_with_set, tiny_run, tmp_path):
    run, cal = run_with_set
    shutil.rmtree(cal)
    r = run_cli("quantize", run, "--precision", "int8", "--out", tmp_path / "m.tflite")
    assert r.clean_error and "is gone" in r.stderr and not (tmp_path / "m.tflite").exists()
    bare = tmp_path / "bare"
    shutil.copytree(tiny_run, bare)
    (bare / "calibration.json").unlink(missing_ok=True)  # another test may have calibrated the shared run
    r = run_cli("quantize", bare, "--precision", "int8", "--out", tmp_path / "n.tflite")
    assert r.returncode == 2 and "--calibration is needed" in r.stderr and "Traceback" not in r.stderr
