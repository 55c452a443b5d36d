"""Export: the device bundle, its model card, the contract inside the .tflite read without TensorFlow, the C array
round trip in tflite-micro, the Edge TPU report, and atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_python

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("x")
    run = tiny_run
    calib = root / "calibration" / "tiny"
    # the run-folder form of calibrate, as the pipeline uses it; it must not need TensorFlow
    r = run_cli("calibrate", str(run), "--out", str(calib), "--count", "100", block_tf=True)
    assert r.returncode == 0, r.stderr
    assert "100 calibration items" in r.stdout
    out = root / "firmware_models" / "tiny"
    r = run_cli("export", str(run), "--calibration", str(calib), "--out", str(out), "--precision", "fp32",
                "--edgetpu", "--c-array")
    assert r.returncode == 0, r.stderr[-3000:]
    return {"root": root, "run": run, "calib": calib, "out": out, "stdout": r.stdout}


def test_bundle_files_and_model_card(bundle):
    out = bundle["out"]
    names = {p.name for p in out.iterdir()}
    assert {"model_int8.tflite", "model_fp32.tflite", "labels.txt", "model_card.json", "fidelity.csv",
            "edgetpu_report.json", "model_int8_data.h", "model_int8_data.cc"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temp leftovers
    card = json.loads((out / "model_card.json").read_text())
    for name, entry in card["files"].items():
        data = (out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["bytes"] == len(data)
    manifest = json.loads((bundle["calib"] / "MANIFEST.json").read_text())
    assert card["calibration"]["sha256"] == manifest["sha256"]
    assert card["precision"] == "int8" and card["input"]["dtype"] == "int8"
    assert card["metrics"]["float_keras"]["metric"] == "accuracy"
    assert card["metrics"]["model_int8.tflite"]["count"] == card["parity"]["test_images"] > 0
    assert card["parity"]["keras_vs_fp32_tflite_max_abs"] < 1e-4
    assert 0 <= card["parity"]["int8_vs_float_top1_agreement"] <= 1
    assert card["parity"]["calibration_test_overlap"] == 0
    assert {"tensorflow", "keras", "ai-edge-litert", "numpy"} <= set(card["versions"])
    assert card["created"].endswith("+00:00") and card["architecture"] == "compact"
    assert (out / "labels.txt").read_text().splitlines()[0] == "0 circle"


def test_bundle_loads_without_tensorflow(bundle):
    run = json.loads((bundle["run"] / "split.json").read_text())
    img = run["splits"]["test"][0][0]
    code = f"""
import numpy as np
from edgecnn.runtime.metadata import read_contract
from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.evaluate import predict
from edgecnn.labels import read_labels
from edgecnn.preprocess import load_image, prepare
data = open({str(bundle["out"] / "model_int8.tflite")!r}, 'rb').read()
c = read_contract(data)
info = read_model_info(data)
probs = predict(data, prepare(load_image({img!r}), c)[None])
labels = read_labels({str(bundle["out"] / "labels.txt")!r})
print(c.task, c.input_height, c.color_order, c.extra['precision'], info.precision, probs.shape, len(labels))
"""
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["classify", "32", "RGB", "int8", "int8", "(1,", "5)", "5"]


def test_c_array_round_trips_and_runs_in_tflite_micro(bundle):
    from edgecnn.export.c_array import parse_c_array

    out = bundle["out"]
    src = (out / "model_int8_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model_int8[]" in src
    assert parse_c_array(src) == (out / "model_int8.tflite").read_bytes()
    assert "extern const unsigned int g_model_int8_len;" in (out / "model_int8_data.h").read_text()
    micro = json.loads((out / "model_card.json").read_text())["reports"]["tflite_micro"]
    assert micro["ok"] and micro["arena_bytes"] > 0 and micro["max_abs_diff"] <= micro["tolerance"] == 1.0
    assert "tflite-micro: arena" in bundle["stdout"]


def test_edgetpu_report(bundle):
    rep = json.loads((bundle["out"] / "edgetpu_report.json").read_text())
    assert rep["static_batch1"] and rep["full_integer"] and rep["unsupported_ops"] == {} and rep["ready"]
    import shutil

    if shutil.which("edgetpu_compiler") is None:
        assert rep["compiler"] is None and any("not found" in n for n in rep["notes"])


def test_edgetpu_log_parser_and_unmappable_ops():
    from edgecnn.export.edgetpu import parse_compiler_log

    log = """Edge TPU Compiler version 16.0.384591198
Model compiled successfully in 273 ms.
On-chip memory used for caching model parameters: 1.30MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 25
Number of operations that will run on Edge TPU: 23
Number of operations that will run on CPU: 2

Operator                       Count      Status

FULLY_CONNECTED                1          Mapped to Edge TPU
SOFTMAX                        1          Operation is working on an unsupported data type
"""
    p = parse_compiler_log(log)
    assert (p.ops_on_tpu, p.ops_on_cpu, p.on_chip_memory, p.off_chip_memory) == (23, 2, "1.30MiB", "0.00B")
    assert p.version == "16.0.384591198" and ("SOFTMAX", 1, "Operation is working on an unsupported data type") in p.operators


def test_float_model_is_not_edgetpu_ready(bundle):
    from edgecnn.export.edgetpu import readiness

    rep, _ = readiness((bundle["out"] / "model_fp32.tflite").read_bytes(), compile=False)
    assert not rep.ready and not rep.full_integer


def test_existing_bundle_is_kept_and_bad_inputs_are_one_line(bundle, tmp_path):
    out = bundle["out"]
    before = (out / "model_card.json").read_bytes()
    r = run_cli("export", str(bundle["run"]), "--calibration", str(bundle["calib"]), "--out", str(out))
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (out / "model_card.json").read_bytes() == before
    blocker = tmp_path / "f"
    blocker.write_text("x")
    r = run_cli("export", str(bundle["run"]), "--calibration", str(bundle["calib"]), "--out", str(blocker / "b"))
    assert r.returncode != 0 and r.stderr.strip().startswith("Error:") and "Traceback" not in r.stderr
    h5 = tmp_path / "m.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n")
    r = run_cli("export", str(h5), "--calibration", str(bundle["calib"]), "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "legacy .h5" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_staged_dir_leaves_destination_untouched_on_failure(tmp_path):
    from edgecnn.atomic import staged_dir

    dest = tmp_path / "bundle"
    dest.mkdir()
    (dest / "model_int8.tflite").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with staged_dir(dest, overwrite=True) as tmp:
            (tmp / "model_int8.tflite").write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert (dest / "model_int8.tflite").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    with staged_dir(dest, overwrite=True) as tmp:
        (tmp / "model_int8.tflite").write_bytes(b"new")
    assert (dest / "model_int8.tflite").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_test_images_found_in_the_calibration_set_are_not_scored(bundle):
    from types import SimpleNamespace

    from edgecnn.export.bundle import load_test_split
    from edgecnn.quantize.calibration import load_calibration
    from edgecnn.train.run import load_run

    run = load_run(bundle["run"])
    calib = load_calibration(bundle["calib"])
    test = run.splits["test"]
    # pretend the first test image had slipped into the calibration set (same bytes)
    leaked = hashlib.sha256(Path(test[0].path).read_bytes()).hexdigest()
    manifest = dict(calib.manifest, items=list(calib.manifest["items"]) + [{"source": "elsewhere.png", "sha256": leaked}])
    prep = SimpleNamespace(run=run, calib=SimpleNamespace(manifest=manifest, root=calib.root))
    messages = []
    split = load_test_split(prep, messages.append)
    assert split.excluded == 1 and len(split.inputs) == len(test) - 1 == len(split.paths) == len(split.targets)
    assert any("left out of the test metrics" in m for m in messages)


def test_parity_check_is_truthy_within_tolerance_and_shows_the_worst_inputs_beyond_it():
    from edgecnn.export.bundle import parity_check

    ref = np.array([[0.7, 0.3], [0.2, 0.8], [0.5, 0.5]], np.float32)
    close = parity_check(ref, ref + np.float32(1e-6), ["a.png", "b.png", "c.png"], 1e-4)
    assert close and close.count == 3 and "within tolerance" in close.text() and "test image 0 (" not in close.text()
    drifted = ref.copy()
    drifted[1] = [0.25, 0.75]
    far = parity_check(ref, drifted, ["a.png", "b.png", "c.png"], 1e-4)
    assert not far and far.max_abs == pytest.approx(0.05, abs=1e-6)
    text = far.text()
    assert "BEYOND tolerance" in text and "test image 1 (b.png): max |diff| 5.00e-02" in text
    assert "+0.200000, +0.800000" in text and "+0.250000, +0.750000" in text and "+0.050000, -0.050000" in text
    assert far.worst[0].index == 1 and not parity_check(ref, ref * np.nan, ["a", "b", "c"], 1e-4)


# Every TFLite output drifts by 0.01 from Keras, as a conversion that changed the model would.
_DRIFT = """
import sys
import numpy as np
import edgecnn.export.bundle as b
real = b.predict
b.predict = lambda model, inputs, threads=1: real(model, inputs, threads) + np.float32(0.01)
from edgecnn.cli import main
main(sys.argv[1:])
"""


def test_export_enforces_the_parity_tolerance_unless_drift_is_allowed(bundle, tmp_path):
    args = ["export", str(bundle["run"]), "--calibration", str(bundle["calib"])]
    refused = tmp_path / "refused"
    r = run_python(_DRIFT.replace("sys.argv[1:]", repr(args + ["--out", str(refused)])), block_tf=False,
                   timeout=600)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "differs from the Keras model by 1.00e-02" in errors[0] and "--allow-parity-drift" in errors[0]
    assert "BEYOND tolerance" in r.stderr and "test image" in r.stderr  # the worst inputs were shown
    assert not refused.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    allowed = tmp_path / "allowed"
    r = run_python(_DRIFT.replace("sys.argv[1:]", repr(args + ["--out", str(allowed), "--allow-parity-drift"])),
                   block_tf=False, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    parity = json.loads((allowed / "model_card.json").read_text())["parity"]
    assert parity["keras_vs_fp32_tflite_within_tolerance"] is False and parity["parity_drift_allowed"] is True
    assert parity["keras_vs_fp32_tflite_max_abs"] == pytest.approx(0.01, rel=1e-3)
    assert "BEYOND tolerance" in r.stdout


def test_a_c_array_that_does_not_round_trip_is_an_internal_error(monkeypatch):
    import edgecnn.export.bundle as b

    monkeypatch.setattr(b, "parse_c_array", lambda source: b"")
    with pytest.raises(RuntimeError, match="does not round-trip"):
        b.c_array_step(b"TFL3 model bytes", np.zeros((1, 4, 4, 3), np.float32), lambda m: None)
