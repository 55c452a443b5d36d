"""``edgecnn compare`` without a calibration set builds the float variants, shows progress on stderr and carries the
run's training warnings into the report (issue 16); the model card carries them too."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
from conftest import run_cli

from edgecnn.export.model_card import ModelCard, run_warnings

pytestmark = pytest.mark.host

WARNING = "only 2 test images: the test accuracy cannot tell a good model from chance"


@pytest.fixture(scope="module")
def warned_run(tiny_run, tmp_path_factory):
    """A copy of the tiny run whose metrics.json holds a warning, with no calibration set remembered."""
    run = tmp_path_factory.mktemp("warned") / "run"
    run.mkdir()
    for name in ("model.keras", "contract.json", "split.json"):
        shutil.copy2(tiny_run / name, run / name)
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5, "warnings": [WARNING]}))
    return run


def test_fp32_without_calibration_is_built_measured_and_warned(warned_run, tmp_path):
    out = tmp_path / "cmp"
    r = run_cli("compare", warned_run, "--precisions", "fp32,int8", "--runs", "5", "--warmup", "1", "--limit", "20",
                "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    assert [row["variant"] for row in rep["rows"]] == ["keras", "fp32"]
    fp32 = rep["rows"][1]
    assert fp32["precision"] == "fp32" and fp32["latency_ms"]["p50"] > 0
    assert fp32["agreement"]["top1_agreement"] == 1.0  # the very network, converted
    assert "int8: not built (needs --calibration)" in rep["notes"]
    assert rep["warnings"] == [WARNING]
    assert f"WARNING (training): {WARNING}" in r.stdout
    assert WARNING in (out / "report.md").read_text()
    # progress on stderr, one bar per phase (off a terminal click prints each phase's label once)
    assert "building" in r.stderr and "measuring" in r.stderr
    assert "measuring keras" not in r.stderr  # the bars replace the per-variant lines


def test_compare_reports_progress_per_phase(warned_run, tmp_path, monkeypatch):
    import edgecnn.compare.compare as cmp

    monkeypatch.setattr(cmp.measure, "keras_latency", lambda *a, **k: _latency())
    monkeypatch.setattr(cmp.measure, "tflite_latency", lambda *a, **k: _latency())
    calls = []
    report = cmp.compare(warned_run, precisions=("fp32", "int8"), limit=8, variants_dir=tmp_path / "v",
                         progress=lambda *a: calls.append(a))
    assert calls == [("building", 0, 2, "fp32"), ("building", 1, 2, "int8"), ("building", 2, 2, ""),
                     ("measuring", 0, 2, "keras"), ("measuring", 1, 2, "fp32"), ("measuring", 2, 2, "")]
    assert report.warnings == (WARNING,)
    assert (tmp_path / "v" / "model_fp32.tflite").is_file()


def _latency():
    return {"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0, "throughput": 1000.0, "peak_memory_mb": 1.0}


def test_model_card_carries_the_run_warnings(tmp_path):
    from edgecnn.contract import Contract
    from edgecnn.export import bundle  # the card that export writes

    assert run_warnings({"warnings": [WARNING, ""]}) == [WARNING]
    assert run_warnings({}) == [] and run_warnings({"warnings": "oops"}) == []
    image = SimpleNamespace(name="serving_default_image:0", dtype="int8", scale=0.004, zero_point=-128)
    contract = Contract(task="classify", input_height=8, input_width=8, labels=("a", "b"))
    prep = SimpleNamespace(run=SimpleNamespace(contract=contract, metrics={"warnings": [WARNING]}), calib=_Calib())
    conv = SimpleNamespace(infos={"int8": SimpleNamespace(precision="int8", inputs=[image])}, fp32_reference=b"x",
                           models={"int8": b"yy"})
    card = bundle.model_card(prep, conv, SimpleNamespace(metrics={}), SimpleNamespace(figures={}), tmp_path, {})
    assert isinstance(card, ModelCard) and card.to_dict()["warnings"] == [WARNING]


class _Calib:
    root = "/calibration/x"
    sha256 = "0" * 64

    def __len__(self) -> int:
        return 3
