"""The contract's ``crop`` (issue 16): rows removed before resizing, recorded in the contract, applied by the one
preprocessing everywhere (training, calibration, masks, the device's Predictor); ``edgecnn train --crop`` and
``--resize``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, run_cli

from edgecnn.contract import Contract, crop_rows
from edgecnn.data.masks import mask_for_model, resize_mask
from edgecnn.errors import ModelError, OptionError
from edgecnn.preprocess import Scratch, crop_frame, prepare, resize, to_model_pixels
from edgecnn.train.config import TrainConfig, parse_crop, resolve_config

SOURCE = (160, 120)  # width, height of the training frames


def _contract(**kw) -> Contract:
    base = {"task": "steer", "input_height": 30, "input_width": 40, "head": "regression", "source_size": SOURCE,
            "crop": (40, 0)}
    return Contract(**(base | kw))


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ the contract


def test_contract_round_trip_with_and_without_crop():
    c = _contract()
    d = c.to_dict()
    assert d["crop"] == [40, 0] and Contract.from_dict(d) == c and Contract.from_json(c.to_json()).crop == (40, 0)
    plain = c.replace(crop=())
    assert plain.to_dict()["crop"] == [] and Contract.from_json(plain.to_json()).crop == ()
    old = {k: v for k, v in c.to_dict().items() if k != "crop"}  # metadata written before the field existed
    assert Contract.from_dict(old).crop == ()
    assert Contract.from_dict(c.to_dict() | {"crop": None}).crop == ()
    assert c.replace(crop=(0, 0)).crop == ()  # no crop, one spelling
    assert c.replace(crop=[np.int64(3), 2]).crop == (3, 2)


@pytest.mark.parametrize("crop", [(-1, 0), (1,), (1, 2, 3), ("40", 0), (True, 0), (1.5, 0), 7])
def test_contract_refuses_a_malformed_crop(crop):
    with pytest.raises(ModelError, match=r"contract crop must be \(top, bottom\) whole rows >= 0"):
        _contract(crop=crop)


def test_contract_refuses_a_crop_that_leaves_no_row_of_its_source_frames():
    _contract(crop=(60, 59))  # one row left
    with pytest.raises(ModelError, match="removes all 120 rows of its 160x120 source frames"):
        _contract(crop=(60, 60))
    _contract(crop=(200, 0), source_size=())  # no source size: checked against each frame instead


def test_crop_rows_scale_with_the_frame_height():
    assert crop_rows((40, 0), SOURCE, 120) == (40, 0)
    assert crop_rows((40, 10), SOURCE, 240) == (80, 20)  # a camera at twice the size
    assert crop_rows((40, 10), SOURCE, 60) == (20, 5)
    assert crop_rows((3, 1), SOURCE, 60) == (2, 1)  # 1.5 and 0.5 round half up
    assert crop_rows((40, 0), (), 240) == (40, 0)  # no source size: rows of the frame as given
    assert crop_rows((), SOURCE, 240) == (0, 0)
    with pytest.raises(ModelError, match="leaves no row of a frame 40 rows tall"):
        crop_rows((40, 0), (), 40)


# ------------------------------------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("method", ["area", "linear", "area-pyramid"])
@pytest.mark.parametrize("height", [120, 240])
def test_to_model_pixels_is_the_row_slice_then_resize(method, height):
    c = _contract(crop=(40, 6), resize=method)
    frame = _frame(height, height * 4 // 3)
    k = height // 120
    manual = cv2.cvtColor(resize(np.ascontiguousarray(frame[40 * k: height - 6 * k]), 30, 40, method),
                          cv2.COLOR_BGR2RGB)
    assert np.array_equal(to_model_pixels(frame, c), manual)
    assert np.array_equal(to_model_pixels(frame, c, Scratch()), manual)
    uncropped = cv2.cvtColor(resize(frame, 30, 40, method), cv2.COLOR_BGR2RGB)
    assert not np.array_equal(to_model_pixels(frame, c), uncropped)
    # grey frames are cropped the same; the contract's BGR order
    grey = frame[..., 0].copy()
    assert np.array_equal(to_model_pixels(grey, c), to_model_pixels(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), c))
    assert np.array_equal(to_model_pixels(frame, c.replace(color_order="BGR")), manual[..., ::-1])


def test_crop_frame_is_a_view():
    frame = _frame(120, 160)
    view = crop_frame(frame, (40, 0), SOURCE)
    assert view.shape == (80, 160, 3) and np.shares_memory(view, frame) and view.base is frame
    assert crop_frame(frame, (), SOURCE) is frame
    # a frame at the model's input size after the crop: to_model_pixels only reorders the channels
    c = _contract(input_height=80, input_width=160, color_order="BGR")
    assert np.shares_memory(to_model_pixels(frame, c), frame)


def test_masks_are_cropped_like_their_images():
    """Row stripes: the image's stripe value and the mask's class agree at every model pixel after the crop."""
    c = _contract(crop=(40, 20), resize="nearest", input_height=30, input_width=40)
    rows = (np.arange(240) // 12).astype(np.uint8)  # 20 stripes of 12 rows, a frame twice the source height
    mask = np.repeat(rows[:, None], 320, axis=1)
    image = np.repeat(mask[..., None] * 10, 3, axis=2)
    got = mask_for_model(mask, c)
    assert got.shape == (30, 40) and np.array_equal(got, resize_mask(mask[80:200], 30, 40))
    assert np.array_equal(to_model_pixels(image, c)[..., 0], got * 10)
    assert got.min() == 80 // 12 and got.max() == 199 // 12


# ------------------------------------------------------------------------------------------------ calibration


def test_calibration_frames_are_cropped_once(tmp_path):
    from edgecnn.errors import DataError
    from edgecnn.quantize.calibration import (
        CalibrationSet,
        _load_frame,
        check_compatible,
        model_inputs,
    )

    c = _contract(crop=(40, 0), resize="area")
    frame = _frame(120, 160, seed=4)
    path = tmp_path / "f.png"
    cv2.imwrite(str(path), frame)
    stored, _ = _load_frame(str(path), 30, 40, c.resize, c.crop, c.source_size)
    assert np.array_equal(stored, resize(frame[40:], 30, 40, "area"))
    manifest = {"input_height": 30, "input_width": 40, "task": "steer", "crop": [40, 0], "sha256": "x"}
    calib = CalibrationSet(stored[None], np.zeros(1, np.float32), manifest, tmp_path)
    assert np.array_equal(model_inputs(calib, c)[0], prepare(frame, c))  # not cropped a second time
    check_compatible(calib, c)
    with pytest.raises(DataError, match=r"was cropped \[\] but the model crops \[40, 0\]"):
        check_compatible(CalibrationSet(stored[None], np.zeros(1, np.float32), manifest | {"crop": []}, tmp_path), c)
    old = {k: v for k, v in manifest.items() if k != "crop"}  # a set written before crop existed
    check_compatible(CalibrationSet(stored[None], np.zeros(1, np.float32), old, tmp_path), c.replace(crop=()))


# ------------------------------------------------------------------------------------------------ the device


PILOTNET = REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite"


@pytest.fixture(scope="module")
def cropped_model(tmp_path_factory) -> Path:
    """The shipped int8 PilotNet with a crop (40, 10) of 160x120 frames embedded in its contract."""
    from edgecnn.runtime.metadata import embed_contract, read_contract

    if not PILOTNET.is_file():
        pytest.skip(f"{PILOTNET} is not here")
    data = PILOTNET.read_bytes()
    contract = read_contract(data).replace(crop=(40, 10), source_size=SOURCE)
    out = tmp_path_factory.mktemp("cropped") / "model_int8.tflite"
    out.write_bytes(embed_contract(data, contract))
    return out


def test_predictor_feeds_the_cropped_frame(cropped_model):
    from edgecnn.runtime.adapters import quantize
    from edgecnn.runtime.predictor import Predictor

    pred = Predictor(str(cropped_model), threads=1)
    assert pred.contract.crop == (40, 10) and pred.contract.source_size == SOURCE
    plain = pred.contract.replace(crop=())
    for i, (h, w) in enumerate([(120, 160), (240, 320), (120, 160), (60, 80)]):  # sizes change: new scratch
        frame = _frame(h, w, seed=i)
        k = h / 120
        manual = frame[round(40 * k): h - round(10 * k)]
        want = quantize(prepare(manual, plain), pred.input)
        y = pred.predict(frame)
        written = pred.interpreter.get_tensor(pred.input.index)[0]
        assert written.tobytes() == want.tobytes() == pred.reference_input(frame).tobytes()
        assert pred.encode(frame).tobytes() == want.tobytes()
        assert np.array_equal(y, pred.invoke(prepare(frame, pred.contract)))


def test_inspect_shows_the_crop_and_the_resize_method(cropped_model):
    r = run_cli("inspect", cropped_model, block_tf=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "resize area crop 40,10 rows of 160x120 frames" in r.stdout
    r = run_cli("inspect", PILOTNET, block_tf=True, timeout=120)
    assert r.returncode == 0 and "resize area head" in r.stdout and " crop " not in r.stdout


# ------------------------------------------------------------------------------------------------ training


def test_parse_crop_and_resolve():
    assert parse_crop("40,0") == (40, 0) and parse_crop(" 3 , 4 ") == (3, 4) and parse_crop(None) == ()
    for bad in ("40", "a,b", "-1,0", "1,2,3", "4.5,0", "²,0"):
        with pytest.raises(OptionError, match=r"--crop expects TOP,BOTTOM rows, e\.g\. 40,0"):
            parse_crop(bad)
    assert resolve_config(TrainConfig("d", "o", task="steer", crop=(0, 0))).crop == ()
    with pytest.raises(OptionError, match="--resize must be one of area"):
        resolve_config(TrainConfig("d", "o", task="steer", resize="bicubic"))
    assert TrainConfig("d", "o", crop=(40, 0)).to_dict()["crop"] == [40, 0]  # JSON-shaped, as config.json holds


@pytest.mark.parametrize("crop", ["40", "a,b", "-1,0", "1,2,3", ""])
def test_train_refuses_a_bad_crop_in_one_line(crop, tmp_path):
    r = run_cli("train", tmp_path, "--task", "steer", "--crop", crop, "--out", tmp_path / "run", block_tf=True,
                timeout=120)
    if crop == "":  # an empty --crop is no crop; the (missing) data is what fails
        assert r.clean_error and "--crop" not in r.stderr
        return
    assert r.returncode == 2 and r.clean_error, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == [f"Error: --crop expects TOP,BOTTOM rows, e.g. 40,0; got: {crop!r}"]


@pytest.fixture(scope="module")
def roads(tmp_path_factory) -> Path:
    from edgecnn.data.roads import generate

    return generate(tmp_path_factory.mktemp("roads") / "roads", n=160, size=SOURCE, seed=5)


def test_train_refuses_a_crop_of_every_row_in_one_line(roads, tmp_path):
    r = run_cli("train", roads, "--task", "steer", "--crop", "60,60", "--out", tmp_path / "run", block_tf=True,
                timeout=300)
    assert r.returncode == 2 and r.clean_error, r.stderr
    assert "Error: --crop 60,60 removes all 120 rows of the data's 160x120 frames; crop fewer rows" in r.stderr


@pytest.mark.host
def test_train_records_crop_and_resize_in_the_contract(roads, tmp_path):
    out = tmp_path / "run"
    r = run_cli("train", roads, "--task", "steer", "--img-size", "100x66", "--epochs", "1", "--crop", "40,0",
                "--resize", "linear", "--out", out, timeout=600)
    assert r.returncode == 0, r.stderr
    c = Contract.load(out / "contract.json")
    assert c.crop == (40, 0) and c.resize == "linear" and c.source_size == SOURCE
    config = json.loads((out / "config.json").read_text())
    assert config["crop"] == [40, 0] and config["resize"] == "linear"
    # the same command resumes (the finished run is returned); another crop is another run
    r = run_cli("train", roads, "--task", "steer", "--img-size", "100x66", "--epochs", "1", "--crop", "40,0",
                "--resize", "linear", "--out", out, block_tf=True, timeout=300)
    assert r.returncode == 0 and "already trained" in r.stdout, r.stderr
    r = run_cli("train", roads, "--task", "steer", "--img-size", "100x66", "--epochs", "1", "--crop", "30,0",
                "--resize", "linear", "--out", out, block_tf=True, timeout=300)
    assert r.returncode == 2 and "different options (crop)" in r.stderr, r.stderr
