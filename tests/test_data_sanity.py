"""The first hour on your own data (issue 16): too little data is refused or loudly warned, a steering data set
given to classification says so, and the verdicts after training. The CLI cases fail before TensorFlow starts."""

from __future__ import annotations

import json
import shutil

import pytest

from edgecnn.train.datakind import steering_kind
from edgecnn.train.sanity import (
    MIN_PER_CLASS,
    MIN_TEST,
    baseline_warning,
    chance_warning,
    check_classes,
    check_steering,
)


def test_too_few_images_per_class_is_refused_and_missing_splits_warned():
    check = check_classes(["a", "b", "c"], {"train": [2, 30, 30], "val": [0, 3, 3], "test": [0, 3, 3]})
    assert len(check.refusals) == 1 and f"fewer than {MIN_PER_CLASS} images: a (2)" in check.refusals[0]
    text = " ".join(check.warnings)
    assert "no val image (a)" in text and "no test image (a)" in text and "only 6 images" in text
    assert check.counts[0] == "train: a=2, b=30, c=30"
    ok = check_classes(["a", "b"], {"train": [80, 80], "val": [10, 10], "test": [15, 15]})
    assert not ok.refusals and not ok.warnings


def test_small_steering_test_split_is_warned():
    assert "only 12 frames" in check_steering({"train": 100, "val": 12, "test": 12}).warnings[0]
    assert not check_steering({"train": 1000, "val": 100, "test": MIN_TEST}).warnings


def test_verdicts_after_training():
    assert "no better than chance (50.0%" in chance_warning({"test_accuracy": 0.5}, [10, 10])
    assert "no better than chance (75.0%" in chance_warning({"test_accuracy": 0.7}, [30, 10])  # majority class
    assert chance_warning({"test_accuracy": 0.9}, [10, 10]) is None
    assert "no better than predicting the mean" in baseline_warning({"mae": 0.3, "baseline_mae": 0.25})
    assert baseline_warning({"mae": 0.1, "baseline_mae": 0.25}) is None


def _photos(root, classes=8, total=20, src=None):
    """``total`` images spread over ``classes`` class folders (the issue's 20 photos in 8 classes)."""
    for i in range(total):
        d = root / f"class{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, d / f"{i}.png")
    return root


def test_twenty_photos_in_eight_classes_are_refused_in_one_line(cli, tiny_shapes, tmp_path):
    data = _photos(tmp_path / "photos", src=tiny_shapes / "x" / "x_00000.png")
    r = cli("train", data, "--out", tmp_path / "run", "--epochs", "1", block_tf=True)  # refused before TensorFlow
    assert r.clean_error, (r.returncode, r.stderr)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "8 of 8 classes have fewer than 5 images" in errors[0] and "--force" in errors[0]
    assert "train: class0=" in r.stderr  # the per-class counts were printed first
    assert not (tmp_path / "run" / "model.keras").exists()


@pytest.fixture(scope="module")
def roads(tmp_path_factory):
    from edgecnn.data.roads import generate

    return generate(tmp_path_factory.mktemp("roads") / "roads", n=12, size=(64, 48), seed=1)


def test_steering_layouts_are_recognised(roads, tiny_shapes, tmp_path):
    assert steering_kind(roads) == "`edgecnn data roads` output"
    assert steering_kind(roads / "labels.csv") == "a steering CSV"
    (tmp_path / "tub").mkdir()
    (tmp_path / "tub" / "manifest.json").write_text("{}")
    assert steering_kind(tmp_path / "tub") == "a Donkey Car tub"
    assert steering_kind(tmp_path) == "a folder of Donkey Car tubs"
    assert steering_kind(tiny_shapes) is None
    notes = tmp_path / "notes"
    shutil.copytree(tiny_shapes, notes)
    (notes / "sizes.csv").write_text("class,count\nx,24\n")  # an unrelated CSV beside the classes
    assert steering_kind(notes) is None


def test_steering_data_given_to_classification_says_so(cli, roads, shared_data, tmp_path):
    import tarfile

    with tarfile.open(shared_data / "donkeycar_tub" / "donkeycar_tub.tar.gz") as tar:
        tar.extractall(tmp_path / "tub", filter="data")
    tub = next(p.parent for p in (tmp_path / "tub").rglob("manifest.json"))
    for data, kind in ((tub, "a Donkey Car tub"), (roads, "`edgecnn data roads` output")):
        r = cli("train", data, "--out", tmp_path / "run", "--epochs", "1", block_tf=True)
        assert r.clean_error, r.stderr
        errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1 and kind in errors[0] and "--task steer" in errors[0], errors
    r = cli("calibrate", roads, "--out", tmp_path / "cal")
    assert r.clean_error, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "data roads` output" in errors[0] and "--task steer" in errors[0], errors
    assert not (tmp_path / "cal").exists()


@pytest.mark.host
def test_refused_then_forced_run_keeps_its_warnings(cli, tiny_shapes, tmp_path):
    data = _photos(tmp_path / "photos", classes=4, total=16, src=tiny_shapes / "x" / "x_00000.png")
    out = tmp_path / "run"
    r = cli("train", data, "--out", out, "--img-size", "16", "--epochs", "1", "--force")
    assert r.returncode == 0, r.stderr
    warnings = json.loads((out / "metrics.json").read_text())["warnings"]
    assert any("fewer than 5 images" in w for w in warnings) and any("test split" in w for w in warnings)
    assert "warning: 4 of 4 classes have fewer than 5 images" in r.stderr
