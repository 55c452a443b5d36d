"""Quantization: every precision read back from the model, parity, per-layer report, keep-float, bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli, run_python

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def env(tiny_run, tiny_calibration):
    return {"root": tiny_run.parent, "run": tiny_run, "calib": tiny_calibration}


@pytest.fixture(scope="module")
def prep(env):
    from edgecnn.quantize.pipeline import prepare

    return prepare(env["run"], env["calib"])


@pytest.mark.parametrize("precision,io,expect", [
    ("fp32", "int8", ("fp32", "float32")), ("fp16", "int8", ("fp16", "float32")),
    ("dynamic", "int8", ("dynamic", "float32")), ("int8", "int8", ("int8", "int8")),
    ("int8", "uint8", ("int8", "uint8")), ("int16x8", "int8", ("int16x8", "float32")),
])
def test_precision_is_read_back_from_the_model(prep, precision, io, expect):
    from edgecnn.quantize.convert import convert
    from edgecnn.runtime.inspect import read_model_info

    info = read_model_info(convert(prep.model, precision, prep.calib_inputs, io))
    assert (info.precision, info.inputs[0].dtype) == expect
    assert info.outputs[0].dtype == expect[1]
    assert info.inputs[0].shape[0] == 1  # static batch 1
    if precision == "int8":
        assert not info.float_ops and info.inputs[0].scale > 0


def test_keras_and_fp32_tflite_agree_to_1e_4(prep):
    from edgecnn.runtime.evaluate import predict
    from edgecnn.quantize.convert import convert

    x = prep.calib_inputs[:32]
    ref = prep.model.predict(x, verbose=0)
    got = predict(convert(prep.model, "fp32"), x)
    assert np.abs(ref - got).max() < 1e-4


def test_quantize_cli_writes_int8_with_contract_and_report(env, tmp_path):
    out = tmp_path / "m_int8.tflite"
    r = run_cli("quantize", str(env["run"]), "--calibration", str(env["calib"]), "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "precision int8 (read from the model), input int8, output int8" in r.stdout
    assert "rmse/scale" in r.stdout
    rows = (tmp_path / "m_int8.fidelity.csv").read_text().splitlines()
    assert rows[0].startswith("index,op,layer,tensor,rmse_per_scale") and len(rows) > 5
    # the contract is read back from the .tflite alone, without TensorFlow
    code = ("from edgecnn.runtime.metadata import read_contract; import json; "
            f"c = read_contract(open({str(out)!r}, 'rb').read()); print(json.dumps(c.extra))")
    p = run_python(code)
    assert p.returncode == 0, p.stderr
    extra = json.loads(p.stdout)
    manifest = json.loads((env["calib"] / "MANIFEST.json").read_text())
    assert extra["precision"] == "int8" and extra["calibration_sha256"] == manifest["sha256"]
    assert extra["input_quantization"]["dtype"] == "int8" and extra["input_quantization"]["scale"] > 0


def test_fidelity_report_flags_worst_layers(prep):
    from edgecnn.quantize.fidelity import parse_statistics

    csv = ("op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,"
           "tensor_name\nCONV_2D,1,10,0,0,0.1,0.0001,0.1,0,m/a_1/conv\nCONV_2D,2,10,0,0,0.9,0.64,1.0,0,m/b_1/conv\n")
    rep = parse_statistics(csv, 8)
    assert [l.layer for l in rep.flagged] == ["b"]
    assert rep.worst(1)[0].rmse_per_scale == pytest.approx(0.8)
    assert "<-- suspect" in rep.table()


def test_keep_float_explicit_and_auto(prep, env):
    from edgecnn.quantize.convert import convert
    from edgecnn.quantize.fidelity import layer_report
    from edgecnn.quantize.pipeline import heldout
    from edgecnn.runtime.inspect import read_model_info
    from edgecnn.quantize.selective import keep_float

    int8 = convert(prep.model, "int8", prep.calib_inputs)
    rep = layer_report(prep.model_b1, prep.calib_inputs, samples=16)
    x, y = heldout(prep.run)
    res = keep_float(prep.model_b1, int8, prep.calib_inputs, rep, x, y, prep.run.contract, 0.5, ["stem"])
    info = read_model_info(res.model)
    assert res.kept_float and all("stem" in t for t in res.kept_float)
    assert info.precision == "mixed" and info.inputs[0].dtype == "int8" and info.outputs[0].dtype == "int8"
    assert "CONV_2D" in info.float_ops
    assert res.size_selected != res.size_int8 and "latency" in res.text()
    # auto: an impossible tolerance makes it move the worst layer to float and say it is still above tolerance
    auto = keep_float(prep.model_b1, int8, prep.calib_inputs, rep, x, y, prep.run.contract, -1000.0, "auto", max_layers=1)
    assert auto.kept_float == (rep.worst(1)[0].tensor,) and not auto.within_tolerance
    assert "still above tolerance" in auto.text()


# ------------------------------------------------------------------------------------------- bad input


def _assert_one_line_error(r, *fragments):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr, r.stderr
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def _assert_nothing_written(folder: Path):
    assert not folder.exists()


def test_bad_calibration_sets(env, tmp_path):
    from edgecnn.quantize import calibration as cal

    out = tmp_path / "out"
    other = cal.build(cal.source_from_data(env["root"] / "data", (16, 16)), tmp_path / "c16", count=20)[0]
    r = run_cli("quantize", str(env["run"]), "--calibration", str(other), "--out", str(out / "m.tflite"))
    _assert_one_line_error(r, "16x16", "32x32")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("quantize", str(env["run"]), "--calibration", str(empty), "--out", str(out / "m.tflite"))
    _assert_one_line_error(r, "no MANIFEST")
    bad = tmp_path / "corrupt"
    shutil.copytree(env["calib"], bad)
    (bad / "images.npy").write_bytes((bad / "images.npy").read_bytes()[:-100])
    r = run_cli("quantize", str(env["run"]), "--calibration", str(bad), "--out", str(out / "m.tflite"))
    _assert_one_line_error(r, "corrupt")
    _assert_nothing_written(out)


def test_bad_model_files(env, tmp_path):
    import keras

    out = tmp_path / "out"
    args = ["--calibration", str(env["calib"]), "--out", str(out / "m.tflite")]
    not_keras = tmp_path / "notkeras" / "model.keras"
    not_keras.parent.mkdir()
    not_keras.write_text("hello")
    shutil.copy(env["run"] / "contract.json", not_keras.parent)
    _assert_one_line_error(run_cli("quantize", str(not_keras.parent), *args), "not a Keras model")
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    _assert_one_line_error(run_cli("quantize", str(h5), *args), "legacy .h5")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"\0")
    _assert_one_line_error(run_cli("quantize", str(saved), *args), "SavedModel")
    # a .keras with a Lambda layer is refused before Keras deserialises it
    lam = tmp_path / "lam"
    lam.mkdir()
    inp = keras.Input((32, 32, 3))
    m = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp))
    m.save(lam / "model.keras")
    shutil.copy(env["run"] / "contract.json", lam)
    _assert_one_line_error(run_cli("quantize", str(lam), *args), "Lambda")
    _assert_nothing_written(out)


def test_unwritable_output(env, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder is needed: unwritable even for root
    r = run_cli("quantize", str(env["run"]), "--calibration", str(env["calib"]), "--out", str(blocker / "sub" / "m.tflite"))
    _assert_one_line_error(r, "cannot write")
    r = run_cli("quantize", str(env["run"]), "--calibration", str(env["calib"]), "--out", str(tmp_path / "m.onnx"))
    _assert_one_line_error(r, ".tflite")
