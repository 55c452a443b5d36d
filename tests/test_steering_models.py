"""Steering architectures (pilotnet, donkey), the gmm head and its loss, int8 export, and the model as a
simulator policy through the device runtime."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn import mixture
from edgecnn.contract import Contract

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def keras():
    from edgecnn import tfimport  # noqa: F401  (quiet TensorFlow start-up, when available)

    import keras

    keras.utils.set_random_seed(0)
    return keras


def _convert(model, shape, int8: bool) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def rep():
            for _ in range(32):
                yield [rng.uniform(-1, 1, (1, *shape)).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def _save(tmp_path, name, model_bytes, contract) -> Path:
    from edgecnn.runtime.metadata import embed_contract

    p = tmp_path / name
    p.write_bytes(embed_contract(model_bytes, contract))
    return p


def _steer_contract(h, w, **kw) -> Contract:
    kw.setdefault("head", "regression")
    return Contract(task="steer", input_height=h, input_width=w, mean=(127.5,) * 3, std=(127.5,) * 3, **kw)


def test_registry_lists_the_steering_archs(keras):
    from edgecnn.models.registry import list_models

    names = {s.name for s in list_models("steer")}
    assert {"pilotnet", "donkey"} <= names


def test_pilotnet_matches_the_paper_size(keras):
    from edgecnn.models.registry import create_model

    m = create_model("pilotnet", (66, 200, 3), 1)
    assert m.count_params() == 252219  # NVIDIA's figure for 66x200
    assert [layer.filters for layer in m.layers if hasattr(layer, "filters")] == [24, 36, 48, 64, 64]


@pytest.mark.parametrize("arch, shape", [("pilotnet", (66, 200, 3)), ("donkey", (60, 80, 3))])
def test_regression_outputs_are_bounded(keras, arch, shape):
    from edgecnn.models.registry import create_model

    m = create_model(arch, shape, 2, throttle=True)
    x = np.random.default_rng(0).normal(0, 50, (4, *shape)).astype(np.float32)  # wildly out of range inputs
    y = m.predict(x, verbose=0)
    assert y.shape == (4, 2) and np.all(np.abs(y) <= 1.0)


def test_head_mismatches_are_clear_errors(keras):
    from edgecnn.errors import ModelError
    from edgecnn.models.registry import create_model

    with pytest.raises(ModelError, match="gmm head models steering only"):
        create_model("donkey", (60, 80, 3), 9, head="gmm", components=3, throttle=True)
    with pytest.raises(ModelError, match="has 9 outputs"):
        create_model("donkey", (60, 80, 3), 8, head="gmm", components=3)
    with pytest.raises(ModelError, match="regression steering head has 1"):
        create_model("pilotnet", (66, 200, 3), 3)


def test_gmm_loss_matches_the_numpy_mixture(keras):
    from edgecnn.models.gmm import gmm_nll

    rng = np.random.default_rng(1)
    k = 3
    out = np.concatenate(
        [rng.uniform(-3, 3, (5, k)), rng.uniform(-1, 1, (5, k)), rng.uniform(mixture.LOG_SIGMA_MIN, 0, (5, k))], 1
    ).astype(np.float32)
    y = rng.uniform(-1, 1, (5, 1)).astype(np.float32)
    got = keras.ops.convert_to_numpy(gmm_nll(y, out))
    want = [mixture.nll(out[i], float(y[i, 0])) for i in range(5)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_weighted_gmm_loss_is_the_weighted_numpy_nll(keras):
    from edgecnn.models.gmm import gmm_nll, gmm_nll_weighted

    rng = np.random.default_rng(2)
    k, m = 3, 3
    out = np.concatenate(
        [rng.uniform(-3, 3, (6, k)), rng.uniform(-1, 1, (6, k)), rng.uniform(mixture.LOG_SIGMA_MIN, 0, (6, k))], 1
    ).astype(np.float32)
    steer = rng.uniform(-1, 1, (6, m)).astype(np.float32)
    w = rng.dirichlet(np.ones(m), 6).astype(np.float32)
    w[0] = [1, 0, 0]  # one label only: the plain loss
    got = keras.ops.convert_to_numpy(gmm_nll_weighted(np.concatenate([steer, w], 1), out))
    want = [sum(w[i, j] * mixture.nll(out[i], float(steer[i, j])) for j in range(m)) for i in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    plain = keras.ops.convert_to_numpy(gmm_nll(steer[:1, :1], out[:1]))
    assert got[0] == pytest.approx(float(plain[0]), abs=1e-5)


def test_weighted_labels_teach_a_branch_the_route_never_took(keras):
    """Every frame's route went left (-0.6); the right branch (+0.6) is only known as the second label at weight
    0.5 (as `branch_targets` gives an unrouted model at a junction's approach). The route labels alone teach one
    mode; the weighted labels teach both."""
    from edgecnn.models.gmm import gmm_head, gmm_nll_weighted

    rng = np.random.default_rng(0)
    x = np.ones((512, 4), np.float32)
    left = -0.6 + rng.normal(0, 0.05, 512)
    right = 0.6 + rng.normal(0, 0.05, 512)
    found = {}
    for name, w in (("route", 0.0), ("branches", 0.5)):
        keras.utils.set_random_seed(0)
        inp = keras.Input((4,))
        model = keras.Model(inp, gmm_head(keras.layers.Dense(16, activation="relu")(inp), 2))
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss=gmm_nll_weighted)
        y = np.stack([left, right, np.full(512, 1 - w), np.full(512, w)], 1).astype(np.float32)
        model.fit(x, y, epochs=60, batch_size=128, verbose=0)
        found[name] = mixture.significant_modes(model.predict(x[:1], verbose=0)[0])
    assert [round(m.mean, 1) for m in found["route"]] == pytest.approx([-0.6], abs=0.11)
    assert sorted(round(m.mean, 1) for m in found["branches"]) == pytest.approx([-0.6, 0.6], abs=0.11)
    assert min(m.weight for m in found["branches"]) > 0.3


def test_mixture_maths():
    # Two equal components at -0.5 and +0.5 with sigma 0.1: mean 0, std sqrt(0.01 + 0.25).
    out = np.array([0, 0, -0.5, 0.5, math.log(0.1), math.log(0.1)])
    m, s = mixture.mixture_mean_std(out)
    assert m == pytest.approx(0.0, abs=1e-9) and s == pytest.approx(math.sqrt(0.26))
    assert abs(mixture.split(out).mode) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mixture.split(np.zeros(4))


def test_gmm_head_learns_a_two_way_choice(keras):
    """A fork: half the time the driver went left (-0.6), half right (+0.6). Regression would average to 0;
    the mixture keeps both modes, which is why the lecture's navigation model predicts a distribution."""
    from edgecnn.models.gmm import gmm_head, gmm_nll

    inp = keras.Input((4,))
    model = keras.Model(inp, gmm_head(keras.layers.Dense(16, activation="relu")(inp), 2))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=gmm_nll)
    rng = np.random.default_rng(0)
    x = np.ones((512, 4), np.float32)
    y = (np.where(rng.random(512) < 0.5, -0.6, 0.6) + rng.normal(0, 0.05, 512)).astype(np.float32)
    model.fit(x, y, epochs=60, batch_size=128, verbose=0)
    mix = mixture.split(model.predict(x[:1], verbose=0)[0])
    assert sorted(np.round(mix.means, 1)) == pytest.approx([-0.6, 0.6], abs=0.11)
    assert mix.weights.min() > 0.3
    assert abs(mix.mean) < 0.15 and mix.std > 0.5  # mean near 0 but the std says "it is a choice"


def test_int8_gmm_model_runs_on_the_device_runtime(keras, tmp_path):
    from edgecnn.models.registry import create_model
    from edgecnn.runtime.model_policy import ModelPolicy

    shape = (60, 80, 3)
    model = create_model("donkey", shape, 9, head="gmm", components=3)
    data = _convert(model, shape, int8=True)
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    assert it.get_output_details()[0]["dtype"] == np.int8 and it.get_input_details()[0]["dtype"] == np.int8
    path = _save(tmp_path, "gmm_int8.tflite", data, _steer_contract(60, 80, head="gmm", components=3, arch="donkey"))
    policy = ModelPolicy(path)
    rng = np.random.default_rng(0)
    from edgecnn.preprocess import prepare

    for _ in range(4):
        frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        steer, std = policy(frame)
        ref = model.predict(prepare(frame, policy.contract)[None], verbose=0)[0]
        ref_mean, ref_std = mixture.mixture_mean_std(ref)
        assert -1 <= steer <= 1 and std > 0
        assert steer == pytest.approx(ref_mean, abs=0.05) and std == pytest.approx(ref_std, abs=0.05)


def test_model_drives_in_the_simulator_float_and_int8(keras, tmp_path):
    from edgecnn.models.registry import create_model
    from edgecnn.runtime.model_policy import ModelPolicy
    from edgecnn.sim.simulate import SimConfig, simulate

    shape = (66, 200, 3)
    model = create_model("pilotnet", shape, 1)
    contract = _steer_contract(66, 200, arch="pilotnet")
    for name, int8 in (("f32.tflite", False), ("i8.tflite", True)):
        path = _save(tmp_path, name, _convert(model, shape, int8), contract)
        policy = ModelPolicy(path)
        r = simulate(policy, SimConfig(roads=1, road_length=4))
        assert r.time_s > 0 and 0 <= r.autonomy <= 1 and len(policy.invoke_ms) == r.per_road[0].steps
    # Through the CLI, JSON output, on a TensorFlow-free interpreter (as on the device).
    args = ["simulate", "--model", str(tmp_path / "i8.tflite"), "--roads", "1", "--road-length", "3", "--latency-ms", "50", "--json"]
    code = f"import sys\nsys.modules['tensorflow'] = None\nsys.modules['keras'] = None\nfrom edgecnn.cli import main\nmain({args!r})"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr
    assert '"latency_ms": 50.0' in p.stdout and '"model_ms_p50"' in p.stdout


def test_cli_refuses_classifiers_and_models_without_contract(keras, tmp_path):
    import keras as k

    inp = k.Input((8, 8, 3))
    model = k.Model(inp, k.layers.Dense(2, activation="softmax")(k.layers.Flatten()(inp)))
    data = _convert(model, (8, 8, 3), int8=False)
    (tmp_path / "bare.tflite").write_bytes(data)
    _save(tmp_path, "cls.tflite", data, Contract(task="classify", input_height=8, input_width=8, labels=("a", "b")))
    for name, message in (("bare.tflite", "no edgecnn contract"), ("cls.tflite", "needs a steering model")):
        p = subprocess.run(
            [sys.executable, "-m", "edgecnn", "simulate", "--model", str(tmp_path / name)],
            capture_output=True, text=True, cwd=REPO, timeout=120,
        )
        assert p.returncode == 2 and "Traceback" not in p.stderr and message in p.stderr, p.stderr


@pytest.mark.parametrize("arch", ["pilotnet", "navnet", "lecture"])
def test_min_size_is_the_smallest_input_the_architecture_builds_at(keras, arch):
    from edgecnn.models.registry import create_model, get_spec

    h, w = get_spec(arch).min_size
    assert (h, w) > (1, 1)
    kw = {"head": "gmm", "components": 3} if arch == "navnet" else {}
    n = {"navnet": 9, "pilotnet": 1, "lecture": 2}[arch]
    create_model(arch, (h, w, 3), n, **kw)  # builds at the minimum
    for shape in ((h - 1, w, 3), (h, w - 1, 3)):
        with pytest.raises(ValueError):
            create_model(arch, shape, n, **kw)


def test_too_small_img_size_is_one_clear_line():
    from edgecnn.errors import OptionError
    from edgecnn.train.config import TrainConfig, resolve_config

    with pytest.raises(OptionError, match=r"--img-size 64x32 is too small for pilotnet: .* at least 61x61 .*200x66"):
        resolve_config(TrainConfig(data="d", out="o", task="steer", arch="pilotnet", img_size=(64, 32)))
    assert resolve_config(TrainConfig(data="d", out="o", task="steer", arch="pilotnet", img_size=(61, 61))).img_size
