"""Host test: `edgecnn pipeline` end to end on tiny built-in data, resuming stage by stage."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.host, pytest.mark.slow]


def test_pipeline_runs_then_skips_every_stage(cli, tmp_path):
    cfg = tmp_path / "p.toml"
    out = tmp_path / "pipe"
    cfg.write_text(f'[pipeline]\ntask = "classify"\nout = "{out}"\nimg-size = "32"\nper-class = 24\nepochs = 2\n'
                   'calib-count = 40\ncompare-runs = 10\nprecisions = ["fp32", "int8"]\nresize = "supersample"\n')
    r = cli("pipeline", "--config", cfg, timeout=600)
    assert r.returncode == 0, r.stderr
    for stage in ("data", "train", "calibrate", "quantize+export", "compare"):
        assert f"{stage}: done" in r.stderr, stage
    report = json.loads((out / "compare" / "report.json").read_text())
    assert [row["variant"] for row in report["rows"]] == ["keras", "fp32", "int8"]
    assert report["test"]["disjoint_from_calibration"] is True
    assert (out / "bundle" / "model_int8.tflite").is_file() and (out / "compare" / "accuracy_latency.png").is_file()
    assert "device bundle:" in r.stdout and "top1 %" in r.stdout
    assert json.loads((out / "run" / "contract.json").read_text())["resize"] == "supersample"  # the TOML's method

    again = cli("pipeline", "--config", cfg, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("up to date, skipped") == 5

    # a changed compare option re-runs compare only
    third = cli("pipeline", "--config", cfg, "--compare-runs", "11", timeout=600)
    assert third.returncode == 0, third.stderr
    assert third.stderr.count("up to date, skipped") == 4 and "compare: done" in third.stderr

    # a changed training option retrains from scratch (not "already trained"), and everything after it re-runs
    fourth = cli("pipeline", "--config", cfg, "--compare-runs", "11", "--epochs", "3", timeout=600)
    assert fourth.returncode == 0, fourth.stderr
    assert fourth.stderr.count("up to date, skipped") == 1 and "train: done" in fourth.stderr
    history = json.loads((out / "run" / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]


def test_pipeline_bad_config(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline]\nepoks = 3\n")
    r = cli("pipeline", "--config", bad)
    assert r.clean_error and "unknown option 'epoks'" in r.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[pipeline\n")
    r = cli("pipeline", "--config", broken)
    assert r.clean_error and "not a valid TOML" in r.stderr
    for line, message in (('resize = "bilinear"', "resize must be one of"), ('crop = "a,b"', "--crop expects")):
        bad.write_text(f"[pipeline]\n{line}\n")
        r = cli("pipeline", "--config", bad)
        assert r.clean_error and message in r.stderr, r.stderr
    r = cli("pipeline", "--config", tmp_path / "missing.toml")
    assert r.returncode != 0 and "Traceback" not in r.stderr
