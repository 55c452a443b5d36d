"""Donkey Car pilots: recognised by themselves (input ``img_in``, their outputs), decoded as donkeycar decodes them,
and, with donkeycar 5.3 in its own venv, the same steering as donkeycar's ``KerasLinear.run`` on the same frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from edgecnn.errors import ModelError

pytestmark = pytest.mark.host

DONKEY_PYTHON = REPO / ".venv-donkey" / "bin" / "python"
H, W = 24, 32


def _pilot(heads: list[tuple[str, int, list[float] | None]], h: int = H, w: int = W) -> bytes:
    """A tiny donkeycar-shaped model: input ``img_in``, one Dense head per ``(name, width, bias)`` (a zero
    kernel plus the bias makes the output exactly the bias; None keeps random weights)."""
    import keras

    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    keras.utils.set_random_seed(0)
    inp = keras.Input((h, w, 3), name="img_in")
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    outs = []
    for name, width, bias in heads:
        dense = keras.layers.Dense(width, activation="softmax" if width > 1 else "linear", name=name)
        outs.append(dense(x))
        if bias is not None:
            k, _ = dense.get_weights()
            dense.set_weights([np.zeros_like(k), np.asarray(bias, np.float32)])
    return tf.lite.TFLiteConverter.from_keras_model(keras.Model(inp, outs)).convert()


def _one_hot_bias(n: int, hot: int) -> list[float]:
    b = [0.0] * n
    b[hot] = 5.0
    return b


@pytest.fixture(scope="module")
def pilots(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pilots")
    models = {
        "linear": _pilot([("n_outputs0", 1, [0.25]), ("n_outputs1", 1, [0.6])]),
        "categorical": _pilot([("angle_out", 15, _one_hot_bias(15, 11)), ("throttle_out", 20, _one_hot_bias(20, 7))]),
        "bad_bins": _pilot([("angle_out", 7, None), ("throttle_out", 20, None)]),
    }
    paths = {}
    for name, data in models.items():
        paths[name] = d / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


def test_linear_pilot_is_recognised_and_read_in_signature_order(pilots):
    from edgecnn.runtime.interpreter import make_interpreter
    from edgecnn.runtime.pilots import detect_pilot, open_pilot, output_specs

    data = pilots["linear"].read_bytes()
    spec = detect_pilot(data)
    assert spec is not None and spec.kind == "donkey-linear"
    # Keras 3 exports list the output tensors in the other order: reading them by index would swap
    # steering and throttle. The signature says which is which, as donkeycar's TfLite reads it.
    tensor_order = [o.index for o in output_specs(make_interpreter(data))]
    assert tensor_order != [spec.steering.index, spec.throttle.index]
    y = open_pilot(pilots["linear"]).predict(np.zeros((H, W, 3), np.uint8))
    assert y.tolist() == pytest.approx([0.25, 0.6])


def test_categorical_pilot_decodes_like_donkeycars_linear_unbin(pilots):
    from edgecnn.runtime.pilots import open_pilot, unbin_steering, unbin_throttle

    p = open_pilot(pilots["categorical"])
    assert p.pilot.kind == "donkey-categorical" and p.pilot.throttle_bins == 20
    steering, throttle = p.predict(np.zeros((H, W, 3), np.uint8))
    # donkeycar: linear_unbin(arr) = argmax * (2 / (15 - 1)) - 1; throttle: argmax * (0.5 / 20)
    assert steering == pytest.approx(11 * 2 / 14 - 1) and throttle == pytest.approx(7 * 0.5 / 20)
    assert unbin_steering(np.eye(15)[0]) == -1.0 and unbin_steering(np.eye(15)[14]) == 1.0
    assert unbin_steering(np.eye(15)[7]) == 0.0 and unbin_throttle(np.eye(20)[19], 1.0) == 19 * (1.0 / 20)  # bit for bit


def test_unknown_bin_count_and_wrong_kind_are_one_clear_line(pilots):
    from edgecnn.runtime.pilots import detect_pilot, open_pilot

    for kind in (None, "donkey-categorical"):
        with pytest.raises(ModelError, match=r"outputs have \[7, 20\] bins: an unknown bin count"):
            detect_pilot(pilots["bad_bins"].read_bytes(), kind)
    with pytest.raises(ModelError, match="donkey-linear pilot outputs steering and throttle, one value each"):
        open_pilot(pilots["categorical"], kind="donkey-linear")


def test_cli_refuses_a_bad_pilot_and_a_classifier(pilots, tmp_path, cli):
    from test_steer_loop import _constant_model, _tflite

    from edgecnn.contract import Contract

    clf = tmp_path / "clf.tflite"
    clf.write_bytes(_tflite(_constant_model([0.1, 0.9]), Contract(task="classify", input_height=24, input_width=32,
                                                                 labels=("a", "b"))))
    images = tmp_path / "imgs"
    images.mkdir()
    import cv2

    cv2.imwrite(str(images / "0.png"), np.zeros((H, W, 3), np.uint8))
    for model, message in [(pilots["bad_bins"], "unknown bin count"), (clf, "is a 'classify' model")]:
        r = cli("replay", images, "--model", model, "--out", tmp_path / "rep", block_tf=True)
        assert r.clean_error, r.stderr
        assert message in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]) == 1
        assert not (tmp_path / "rep" / "report.json").exists()


def test_model_kind_for_inspect(pilots, tmp_path):
    from test_steer_loop import STEER, _constant_model, _tflite

    from edgecnn.runtime.pilots import model_kind

    assert model_kind(pilots["linear"].read_bytes()).startswith("donkey-linear pilot")
    assert model_kind(pilots["categorical"].read_bytes()).startswith("donkey-categorical pilot")
    assert "unknown bin count" in model_kind(pilots["bad_bins"].read_bytes())
    assert model_kind(_tflite(_constant_model([0.5]), STEER)) == "edgecnn steer (regression head)"


# --- donkeycar itself, in its own venv ---

DONKEY_RUN = r"""
import contextlib, io, json, sys
import numpy as np
with contextlib.redirect_stdout(io.StringIO()):
    from donkeycar.parts.interpreter import TfLite
    from donkeycar.parts.keras import KerasCategorical, KerasLinear
    from donkeycar.parts.tub_v2 import Tub
model, tub, n, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pilot = (KerasLinear if kind == "linear" else KerasCategorical)(interpreter=TfLite(), input_shape=(120, 160, 3))
pilot.load(model)
out = []
with contextlib.redirect_stdout(io.StringIO()):
    records = list(Tub(tub, read_only=True))[:n]
import PIL.Image
for r in records:
    rgb = np.asarray(PIL.Image.open(f"{tub}/images/{r['cam/image_array']}"))  # donkeycar's own image loading
    angle, throttle = pilot.run(rgb)
    out.append({"file": r["cam/image_array"], "angle": float(angle), "throttle": float(throttle)})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tub(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tub")
    with tarfile.open(shared_data / "donkeycar_tub" / "donkeycar_tub.tar.gz") as tar:
        tar.extractall(root, filter="data")
    return root / "tub"


@pytest.mark.skipif(not DONKEY_PYTHON.is_file(), reason=f"no donkeycar venv at {DONKEY_PYTHON} (see README: "
                    "Donkey Car pilots)")
def test_same_steering_as_donkeycars_keras_linear(tub, tmp_path, cli):
    """donkeycar 5.3's own KerasLinear architecture (rebuilt layer for layer in benchmarks/donkey_pilot.py), seeded
    random weights, exported to .tflite: edgecnn's replay gives donkeycar's steering on the same tub frames."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from donkey_pilot import build_keras_linear
    finally:
        sys.path.pop(0)
    import keras

    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    keras.utils.set_random_seed(1)
    model = tmp_path / "linear.tflite"
    model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(build_keras_linear()).convert())
    n = 40
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(DONKEY_PYTHON), "-c", DONKEY_RUN, str(model), str(tub), str(n), "linear"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    donkey = json.loads(proc.stdout.strip().splitlines()[-1])
    r = cli("replay", tub, "--model", model, "--out", tmp_path / "rep", "--max-frames", n, block_tf=True)
    assert r.returncode == 0, r.stderr
    ours = json.loads((tmp_path / "rep" / "report.json").read_text())["models"]["linear"]["predictions"]
    assert [p["file"] for p in ours] == [d["file"] for d in donkey]  # the same frames, in catalog order
    diff = max(abs(p["steering"] - d["angle"]) for p, d in zip(ours, donkey))
    print(f"\nmax |edgecnn replay - donkeycar KerasLinear.run| over {n} tub frames: {diff:.2e}")
    assert diff <= 1e-4
    assert np.std([d["angle"] for d in donkey]) > 1e-3  # not a constant model: the frames matter
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", "--model", str(model), "--source", str(tub),
                           "--max-steering-rate", "0", "--max-frames", str(n), "--trust-model"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    steered = {c["file"]: c["steering"] for c in map(json.loads, proc.stdout.splitlines()) if c["state"] == "ok"}
    assert len(steered) == n
    diff_steer = max(abs(steered[d["file"]] - d["angle"]) for d in donkey)
    print(f"max |edgecnn steer - donkeycar KerasLinear.run|: {diff_steer:.2e} (steer rounds to 1e-6)")
    assert diff_steer <= 1e-4


def test_steer_refuses_a_bad_pilot_in_one_line_after_only_a_neutral(pilots):
    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", "--model", str(pilots["bad_bins"]), "--source",
                           "0", "--pilot", "donkey-categorical", "--trust-model"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "unknown bin count" in errors[0]
    sent = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert [(c["state"], c["steering"], c["throttle"]) for c in sent] == [("stopped", 0.0, 0.0)]


def test_classify_refuses_steering_models_in_one_line(pilots, tmp_path):
    import cv2
    from test_steer_loop import STEER, _constant_model, _tflite

    steer = tmp_path / "steer.tflite"
    steer.write_bytes(_tflite(_constant_model([0.5]), STEER))
    img = tmp_path / "0.png"
    cv2.imwrite(str(img), np.zeros((H, W, 3), np.uint8))
    for model, kind in [(steer, "edgecnn steer"), (pilots["linear"], "donkey-linear")]:
        proc = subprocess.run([sys.executable, "-m", "edgecnn", "classify", "--model", str(model), str(img),
                               "--trust-model"], cwd=REPO, capture_output=True, text=True, timeout=120)
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
        assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"is a steering model ({kind})" in errors[0] and "edgecnn steer --model" in errors[0]


@pytest.mark.skipif(not DONKEY_PYTHON.is_file(), reason=f"no donkeycar venv at {DONKEY_PYTHON}")
def test_same_steering_and_throttle_as_donkeycars_keras_categorical(tub, tmp_path, cli):
    """A categorical pilot (15 steering bins, 20 throttle bins; seeded random weights, so the winning bin changes
    from frame to frame): edgecnn decodes it to exactly donkeycar's values."""
    model = tmp_path / "categorical.tflite"
    model.write_bytes(_pilot([("angle_out", 15, None), ("throttle_out", 20, None)], h=120, w=160))
    n = 40
    proc = subprocess.run([str(DONKEY_PYTHON), "-c", DONKEY_RUN, str(model), str(tub), str(n), "categorical"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    donkey = json.loads(proc.stdout.strip().splitlines()[-1])
    r = cli("replay", tub, "--model", model, "--out", tmp_path / "rep", "--max-frames", n, block_tf=True)
    assert r.returncode == 0, r.stderr
    ours = json.loads((tmp_path / "rep" / "report.json").read_text())["models"]["categorical"]["predictions"]
    assert [p["steering"] for p in ours] == pytest.approx([d["angle"] for d in donkey], abs=1e-6)
    assert [p["throttle"] for p in ours] == pytest.approx([d["throttle"] for d in donkey], abs=1e-6)
    assert len({d["angle"] for d in donkey}) > 1  # several bins won: the decoding was exercised
