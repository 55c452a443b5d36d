"""Semantic segmentation end to end: masks data, the mask decoder, metrics, a toy model's int8 argmax, the
TensorFlow-free ``edgecnn segment`` command and its refusals, and a tiny ``train --task segment`` run."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, run_cli

from edgecnn.contract import Contract
from edgecnn.data import masks as maskdata
from edgecnn.errors import DataError, ModelError
from edgecnn.metrics import segmentation_confusion, segmentation_metrics
from edgecnn.outputs import class_argmax, decode_class_map

CLASSIFIER = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"
TOY_SIZE = 32


# ------------------------------------------------------------------------------------------------ pure parts


def test_argmax_on_int8_equals_argmax_of_dequantized():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (20, 30, 4)).astype(np.int8)
    scale, zp = 0.0123, -7
    real = (q.astype(np.int32) - zp) * scale
    assert np.array_equal(class_argmax(q, scale), real.argmax(-1))
    with pytest.raises(ValueError, match="positive scale"):
        class_argmax(q, 0.0)


def test_class_map_resized_with_nearest_neighbour_only_holds_real_classes():
    contract = Contract(task="segment", input_height=4, input_width=4, labels=("background", "a", "b"),
                        head="class-map")
    raw = np.zeros((4, 4, 3), np.float32)
    raw[:2, :, 2] = 1.0  # top half class 2, bottom half class 0: a blend would invent class 1
    decoded = decode_class_map(raw, contract, (37, 53))
    assert decoded.classes.shape == (37, 53) and decoded.classes.dtype == np.uint8
    assert set(np.unique(decoded.classes)) == {0, 2}
    assert abs(sum(decoded.shares) - 1.0) < 1e-9 and decoded.shares[1] == 0.0


def test_segmentation_metrics_from_a_known_confusion():
    target = np.array([[0, 0, 1, 1], [0, 255, 2, 2]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])
    cm = segmentation_confusion(pred, target, 3)
    assert cm.sum() == 7  # the ignored pixel is not counted
    m = segmentation_metrics(cm, ("background", "a", "b"))
    assert m["iou_per_class"] == {"background": pytest.approx(2 / 4), "a": pytest.approx(2 / 3),
                                  "b": pytest.approx(1 / 2)}
    assert m["test_mean_iou"] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
    assert m["test_pixel_accuracy"] == pytest.approx(5 / 7)
    assert m["dice_per_class"]["a"] == pytest.approx(0.8)
    assert m["confusion"] == cm.tolist()


# ------------------------------------------------------------------------------------------------ mask folders


def _mask_folder(root: Path, n: int = 3, classes: tuple[str, ...] = ("road", "marking")) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "labels.txt").write_text("".join(f"{c}\n" for c in classes))
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"{i}.png"), np.full((12, 16, 3), 30 * i, np.uint8))
        mask = np.zeros((12, 16), np.uint8)
        mask[6:, :] = 1
        mask[9:, 4:6] = 2
        cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
    return root


def test_mask_folder_reads_classes_with_background_first(tmp_path):
    folder = maskdata.scan(_mask_folder(tmp_path / "d"))
    assert folder.classes == ("background", "road", "marking")
    assert len(folder.samples) == 3 and not folder.skipped
    assert folder.samples[0].group == 2  # the rarest class it shows: marking
    assert folder.pixel_totals().sum() == 3 * 12 * 16


def test_a_mask_of_the_wrong_size_is_skipped_and_counted_or_one_clear_error(tmp_path):
    root = _mask_folder(tmp_path / "d")
    cv2.imwrite(str(root / "masks" / "1.png"), np.zeros((10, 16), np.uint8))
    folder = maskdata.scan(root)
    assert len(folder.samples) == 2 and folder.skipped == {"mask size differs from image": 1}
    with pytest.raises(DataError, match=r"1\.png: mask is 16x10 but its image is 16x12"):
        maskdata.scan(root, strict=True)


def test_a_mask_with_index_7_when_there_are_3_classes_is_refused(tmp_path):
    root = _mask_folder(tmp_path / "d")
    bad = np.zeros((12, 16), np.uint8)
    bad[0, 0] = 7
    cv2.imwrite(str(root / "masks" / "2.png"), bad)
    assert maskdata.scan(root).skipped == {"unknown class index": 1}
    with pytest.raises(DataError, match=r"class index 7 but labels.txt names only 3 classes"):
        maskdata.scan(root, strict=True)
    (root / "masks" / "0.png").unlink()
    assert maskdata.scan(root).skipped == {"unknown class index": 1, "no mask": 1}


def test_train_on_bad_masks_is_one_clear_line(tmp_path):
    root = _mask_folder(tmp_path / "d", n=2)
    for p in (root / "masks").iterdir():
        cv2.imwrite(str(p), np.full((12, 16), 7, np.uint8))
    r = run_cli("train", root, "--task", "segment", "--out", tmp_path / "run", "--epochs", "1", timeout=120)
    assert r.clean_error and "class index 7" in r.stderr, r.stderr[-800:]


def test_data_shapes_masks_layout_and_determinism(tmp_path):
    from edgecnn.data import shapes

    a = shapes.generate(tmp_path / "a", size=32, per_class=2, seed=3, masks=True)
    b = shapes.generate(tmp_path / "b", size=32, per_class=2, seed=3, masks=True)
    folder = maskdata.scan(a, strict=True)
    assert folder.classes == ("background", *shapes.CLASSES) and len(folder.samples) == 10
    for s in folder.samples:
        mask = cv2.imread(s.mask, cv2.IMREAD_UNCHANGED)
        cls = shapes.CLASSES.index(Path(s.image).stem.split("_")[0]) + 1
        assert set(np.unique(mask)) == {0, cls}  # background and the image's own shape only
        assert (b / "masks" / Path(s.mask).name).read_bytes() == Path(s.mask).read_bytes()


def test_data_roads_masks_label_road_and_markings(tmp_path):
    from edgecnn.data import roads

    out = roads.generate(tmp_path / "r", n=3, size=(64, 48), per_road=3, seed=1, masks=True)
    folder = maskdata.scan(out, strict=True)
    assert folder.classes == ("background", "road", "marking")
    tot = folder.pixel_totals()
    assert tot[1] > tot[2] > 0 and tot[0] > 0
    plain = roads.generate(tmp_path / "p", n=3, size=(64, 48), per_road=3, seed=1)
    for i in range(3):  # the frames are the same with or without masks
        assert (plain / "images" / f"{i:06d}.jpg").read_bytes() == (out / "images" / f"{i:06d}.jpg").read_bytes()


# ------------------------------------------------------------------------------------------------ a toy model


def _toy_contract() -> Contract:
    return Contract(task="segment", input_height=TOY_SIZE, input_width=TOY_SIZE, labels=("background", "red"),
                    head="class-map", arch="toy")


def _toy_images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = rng.integers(0, 256, (TOY_SIZE, TOY_SIZE, 3)).astype(np.uint8)
        cx, cy, r = (int(v) for v in rng.integers(6, 26, 3))
        cv2.circle(img, (cx, cy), max(r // 2, 3), (20, 20, 230), -1)  # BGR: red blob
        out.append(img)
    return out


def build_toy_models(root: Path) -> dict[str, Path]:
    """A two-class per-pixel model (class 1 where red exceeds green), fp32 and int8 with their contracts embedded,
    and three 50x40 images, under ``root``; also used by test_device_line.py."""
    import keras

    from edgecnn.preprocess import prepare_batch
    from edgecnn.quantize.convert import convert
    from edgecnn.runtime.metadata import embed_contract

    keras.utils.set_random_seed(0)
    inp = keras.Input((TOY_SIZE, TOY_SIZE, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    out = keras.layers.Conv2D(2, 1, activation="softmax")(hidden)
    model = keras.Model(inp, out)
    contract = _toy_contract()
    x = prepare_batch(_toy_images(64, 1), contract)  # RGB in [0, 1]
    y = (x[..., 0] - x[..., 1] > 0.3).astype(np.int32)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for precision in ("fp32", "int8"):
        data = convert(model, precision, x if precision == "int8" else None)
        paths[precision] = root / f"toy_{precision}.tflite"
        paths[precision].write_bytes(embed_contract(data, contract))
    images = root / "images"
    images.mkdir()
    for i, img in enumerate(_toy_images(3, 5)):
        cv2.imwrite(str(images / f"pic{i}.png"), cv2.resize(img, (50, 40), interpolation=cv2.INTER_NEAREST))
    paths["images"] = images
    return paths


@pytest.fixture(scope="module")
def toy_models(tmp_path_factory) -> dict[str, Path]:
    return build_toy_models(tmp_path_factory.mktemp("toy_seg"))


def test_toy_int8_argmax_equals_float_argmax_on_99_percent_of_pixels(toy_models):
    from edgecnn.preprocess import prepare_batch
    from edgecnn.runtime.evaluate import class_maps, predict

    contract = _toy_contract()
    x = prepare_batch(_toy_images(20, 9), contract)  # not the calibration images
    fp32 = class_maps(predict(toy_models["fp32"].read_bytes(), x), contract)
    int8 = class_maps(predict(toy_models["int8"].read_bytes(), x), contract)
    assert 0.05 < (fp32 == 1).mean() < 0.6  # the toy model really separates two classes
    assert (fp32 == int8).mean() >= 0.99


def test_segment_writes_masks_at_the_image_size_and_an_overlay_video(toy_models, tmp_path):
    images = sorted(toy_models["images"].iterdir())
    out = tmp_path / "masks"
    video = tmp_path / "overlay.mp4"
    r = run_cli("segment", "--model", toy_models["int8"], *images, "--out-masks", out, "--record", video,
                "--json", block_tf=True, timeout=180)
    assert r.returncode == 0, r.stderr[-1500:]
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [ln["name"] for ln in lines] == [p.name for p in images]
    for ln, img in zip(lines, images):
        assert set(ln["shares"]) == {"background", "red"} and abs(sum(ln["shares"].values()) - 1) < 1e-4
        mask = cv2.imread(str(out / f"{img.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (40, 50) and mask.dtype == np.uint8  # the image's size, one channel
        assert set(np.unique(mask)) <= {0, 1}
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == len(images)
    assert "invoke" in r.stderr  # the latency summary


def test_a_classifier_to_segment_names_the_task(tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((64, 64, 3), np.uint8))
    r = run_cli("segment", "--model", CLASSIFIER, img, block_tf=True)
    assert r.clean_error and "is a 'classify' model; segment needs a segmentation model" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["classify", "steer"])
def test_a_segmentation_model_to_classify_or_steer_is_one_clear_line(command, toy_models, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    args = [img] if command == "classify" else ["--source", img]
    r = run_cli(command, "--model", toy_models["int8"], *args, block_tf=True)
    assert r.clean_error and "'segment' model" in r.stderr, r.stderr[-800:]
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


def test_require_segmentation_checks_the_output_shape(toy_models):
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.runtime.segment import require_segmentation

    require_segmentation(Predictor(toy_models["int8"]))
    with pytest.raises(ModelError, match="segment needs a segmentation model"):
        require_segmentation(Predictor(CLASSIFIER))


# ------------------------------------------------------------------------------------------------ training


def test_tiny_segment_training_writes_the_metrics(tmp_path):
    data = tmp_path / "data"
    r = run_cli("data", "shapes", data, "--masks", "--size", "32", "--per-class", "6", timeout=120)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "run"
    r = run_cli("train", data, "--task", "segment", "--arch", "seg", "--out", run, "--epochs", "1", "--batch", "8",
                timeout=400)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((run / "metrics.json").read_text())
    classes = ["background", "circle", "plus", "square", "triangle", "x"]
    assert 0.0 <= m["test_mean_iou"] <= 1.0 and 0.0 <= m["test_pixel_accuracy"] <= 1.0
    assert 0.0 <= m["test_mean_dice"] <= 1.0
    assert list(m["iou_per_class"]) == classes and list(m["dice_per_class"]) == classes
    cm = np.asarray(m["confusion"])
    contract = Contract.load(run / "contract.json")
    assert (contract.input_width, contract.input_height) == (64, 64)  # seg's registered size, not the data's
    assert cm.shape == (6, 6) and cm.sum() == m["test_pixels"] == m["test_count"] * 64 * 64
    assert contract.task == "segment" and contract.head == "class-map" and contract.labels == tuple(classes)
