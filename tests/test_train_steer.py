"""Host tests: `edgecnn train --task steer` on generated roads and on the real Donkey Car tub."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def roads(tmp_path_factory):
    from edgecnn.data.roads import generate

    return generate(tmp_path_factory.mktemp("roads") / "roads", n=160, size=(160, 120), seed=3)


@pytest.fixture(scope="module")
def tub(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tub")
    with tarfile.open(shared_data / "donkeycar_tub" / "donkeycar_tub.tar.gz") as tar:
        tar.extractall(out, filter="data")
    return out


def test_steering_augment_flips_and_shifts_consistently():
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    from edgecnn.contract import Contract
    from edgecnn.train.tasks.steer import steering_augment

    c = Contract(task="steer", input_height=20, input_width=40, head="regression")
    # a frame whose left half is bright: after a flip the bright half is on the right
    img = np.zeros((64, 20, 40, 3), np.float32)
    img[:, :, :20] = 1.0
    target = np.full((64, 1), 0.5, np.float32)
    out_img, out_t = steering_augment(c, seed=1)(tf.constant(img), tf.constant(target))
    out_img, out_t = out_img.numpy(), out_t.numpy()[:, 0]
    flipped = out_img[:, :, :10].mean(axis=(1, 2, 3)) < out_img[:, :, 30:].mean(axis=(1, 2, 3))
    assert 10 < flipped.sum() < 54  # about half are flipped
    # flipped frames have the angle negated (up to the small shift correction)
    assert np.all(out_t[flipped] < 0) and np.all(out_t[~flipped] > 0)
    assert np.all(np.abs(np.abs(out_t) - 0.5) <= 0.8 * 0.08 + 1e-6)


def test_train_steer_on_roads_writes_steering_metrics(cli, roads, tmp_path):
    out = tmp_path / "run"
    r = cli("train", roads, "--task", "steer", "--img-size", "100x66", "--epochs", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    for key in ("mae", "rmse", "p95_abs_error", "sign_agreement", "baseline_mae"):
        assert np.isfinite(m[key]), key
    c = json.loads((out / "contract.json").read_text())
    assert c["task"] == "steer" and c["head"] == "regression" and c["input_width"] == 100
    assert "time-block split" in r.stderr


def test_donkey_trains_at_its_registered_160x120_unless_told(cli, roads, tmp_path):
    out = tmp_path / "run"
    r = cli("train", roads, "--task", "steer", "--arch", "donkey", "--epochs", "1", "--out", out)
    assert r.returncode == 0, r.stderr
    c = json.loads((out / "contract.json").read_text())
    assert (c["input_width"], c["input_height"]) == (160, 120)  # not pilotnet's 200x66
    assert json.loads((out / "config.json").read_text())["img_size"] == [160, 120]


def test_train_gmm_head_reports_nll_and_calibration(cli, roads, tmp_path):
    out = tmp_path / "run"
    r = cli("train", roads, "--task", "steer", "--arch", "donkey", "--img-size", "80x60", "--head", "gmm",
            "--components", "3", "--epochs", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["nll"]) and 0 <= m["within_1sigma"] <= m["within_2sigma"] <= 1
    assert json.loads((out / "contract.json").read_text())["components"] == 3


@pytest.mark.slow
def test_tub_training_loss_falls_below_0_6_of_first_epoch(cli, tub, tmp_path):
    """donkeycar's own training test: loss below 0.6x its first-epoch value within 6 epochs."""
    out = tmp_path / "run"
    r = cli("train", tub, "--task", "steer", "--arch", "donkey", "--img-size", "160x120", "--epochs", "6",
            "--patience", "100", "--out", out)
    assert r.returncode == 0, r.stderr
    losses = [e["loss"] for e in json.loads((out / "history.json").read_text())["epochs"]]
    assert min(losses[1:]) < 0.6 * losses[0], losses
    m = json.loads((out / "metrics.json").read_text())
    assert m["mae"] < m["baseline_mae"], m
