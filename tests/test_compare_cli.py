"""``edgecnn compare`` through the real CLI on a tiny trained run: the report's rows, the precision read back, Keras
against fp32 parity, the plot, the calibration/test overlap warning and bad inputs."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.host

ROW_KEYS = {"variant", "precision", "size_bytes", "metrics", "latency_ms", "agreement"}


@pytest.fixture(scope="module")
def compared(tiny_run, tiny_calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    r = run_cli("compare", tiny_run, "--calibration", tiny_calibration, "--out", out, "--runs", "20", "--warmup", "5",
                "--precisions", "fp32,int8")
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r


def test_report_rows(compared):
    out, r = compared
    rep = json.loads((out / "report.json").read_text())
    rows = {row["variant"]: row for row in rep["rows"]}
    assert list(rows) == ["keras", "fp32", "int8"]
    for row in rows.values():
        assert ROW_KEYS <= set(row)
        assert set(row["latency_ms"]) >= {"p50", "p90", "p99"}
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p90"] <= row["latency_ms"]["p99"]
        assert row["size_bytes"] > 0 and 0 <= row["metrics"]["top1"] <= 1
        assert row["metrics"]["count"] == rep["test"]["count"] > 0
    # the precision names the user typed in --precisions, read back from each file (not "float" or "16x8")
    assert [rows[v]["precision"] for v in ("keras", "fp32", "int8")] == ["fp32 (keras)", "fp32", "int8"]
    assert rows["int8"]["size_bytes"] < rows["fp32"]["size_bytes"]
    assert rows["fp32"]["agreement"]["max_abs_diff"] < 1e-4 and rows["fp32"]["agreement"]["top1_agreement"] == 1.0
    assert rep["test"]["disjoint_from_calibration"] is True
    assert "test frames are disjoint from the calibration set" in r.stdout
    assert "int8" in r.stdout and "p50 ms" in r.stdout


def test_int8_file_reads_back_as_int8(compared):
    from edgecnn.runtime.inspect import read_model_info

    out, _ = compared
    info = read_model_info((out / "variants" / "model_int8.tflite").read_bytes())
    assert (info.precision, info.inputs[0].dtype, info.outputs[0].dtype) == ("int8", "int8", "int8")


def test_plot_is_a_valid_png(compared):
    import cv2

    out, _ = compared
    png = out / "accuracy_latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert (out / "report.md").is_file() and (out / "report.csv").read_text().startswith("variant,")


def test_calibration_overlapping_the_test_data_is_reported(tiny_run, tmp_path):
    from edgecnn.quantize import calibration as cal
    from edgecnn.train.run import load_run

    run = load_run(tiny_run)
    src = cal.source_from_run(tiny_run)
    # a calibration set drawn from the run's *test* split: the worst case the report must flag
    leaky = cal.CalibrationSource("run", src.path, "classify", tuple((i.path, i.target) for i in run.splits["test"]),
                                  src.labels, src.input_height, src.input_width, src.resize, src.data_root)
    calib, _ = cal.build(leaky, tmp_path / "leaky", count=20, seed=0)
    r = run_cli("compare", tiny_run, "--calibration", calib, "--out", tmp_path / "cmp", "--runs", "5", "--warmup",
                "1", "--precisions", "fp32")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "WARNING: 20 test frames are also in the calibration set; the test is not disjoint" in r.stdout
    rep = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert rep["test"]["calibration_overlap"] == 20 and rep["test"]["disjoint_from_calibration"] is False


def test_bad_inputs_are_one_clean_line(tiny_run, tiny_calibration, tmp_path):
    r = run_cli("compare", tmp_path / "no_such_run", "--out", tmp_path / "a")
    assert r.clean_error and "run not found" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"definitely not a flatbuffer" * 10)
    r = run_cli("compare", tiny_run, garbage, "--calibration", tiny_calibration, "--out", tmp_path / "b",
                "--precisions", "fp32")
    assert r.clean_error and "not a TFLite model" in r.stderr, r.stderr
    assert not (tmp_path / "b").exists()
