"""``edgecnn replay``: every frame in recording order, raw predictions with file names, the metrics ``train`` uses,
and a side-by-side video OpenCV reads back.

The model here outputs the mean pixel: ``mean(pixel) / 255 - 0.5`` (global average pooling, then a fixed Dense),
so each frame's prediction is known from its image and the recording order shows in the predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import write_video

from edgecnn.contract import Contract

pytestmark = pytest.mark.host

H, W = 24, 32
STEER = Contract(task="steer", input_height=H, input_width=W, head="regression")


@pytest.fixture(scope="module")
def mean_model(tmp_path_factory) -> Path:
    import keras
    from test_steer_loop import _tflite

    inp = keras.Input((H, W, 3))
    x = keras.layers.GlobalAveragePooling2D()(inp)
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(x))
    dense.set_weights([np.full((3, 1), 1 / 3, np.float32), np.array([-0.5], np.float32)])
    path = tmp_path_factory.mktemp("replay") / "mean.tflite"
    path.write_bytes(_tflite(model, STEER))
    from edgecnn.tfimport import import_tensorflow

    # the same model without an edgecnn contract: a third-party steering model
    (path.parent / "bare.tflite").write_bytes(import_tensorflow().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def image(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, np.uint8)


def expected(value: int) -> float:
    return value / 255 - 0.5


def write_tub(root: Path, values: list[int], labels: list[float], deleted: tuple[int, ...] = ()) -> Path:
    """A tub v2 with records written to the catalog out of order (the reader sorts by ``_index``)."""
    (root / "images").mkdir(parents=True)
    keys = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
    (root / "manifest.json").write_text("\n".join(json.dumps(x) for x in [
        keys, ["image_array", "float", "float", "str"], {}, {},
        {"paths": ["catalog_0.catalog"], "current_index": len(values), "max_len": 1000,
         "deleted_indexes": list(deleted)}]) + "\n")
    lines = []
    for i, (v, a) in enumerate(zip(values, labels)):
        cv2.imwrite(str(root / "images" / f"{i}_cam_image_array_.png"), image(v))
        lines.append(json.dumps({"_index": i, "_timestamp_ms": 1_600_000_000_000 + 50 * i,
                                 "cam/image_array": f"{i}_cam_image_array_.png", "user/angle": a,
                                 "user/throttle": 0.3, "user/mode": "user"}))
    order = list(range(len(lines)))[::-1]
    (root / "catalog_0.catalog").write_text("\n".join(lines[i] for i in order) + "\n")
    return root


def test_tub_in_catalog_order_with_labels_metrics_and_video(mean_model, tmp_path, cli):
    values = [10 * i + 5 for i in range(12)]  # 12 frames: names 0..11 sort as 0, 1, 10, 11, 2... alphabetically
    labels = [round(np.sin(i) * 0.8, 3) for i in range(12)]
    tub = write_tub(tmp_path / "tub", values, labels, deleted=(3,))
    video = tmp_path / "out" / "side.mp4"
    r = cli("replay", tub, "--model", mean_model, "--model", mean_model, "--out", tmp_path / "out", "--video", video,
            block_tf=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    keep = [i for i in range(12) if i != 3]
    assert report["frames"] == 11 and report["kind"] == "tub" and report["labelled"]
    assert list(report["models"]) == ["mean", "mean_2"]  # two models of the same name stay apart
    m = report["models"]["mean"]
    assert [p["file"] for p in m["predictions"]] == [f"{i}_cam_image_array_.png" for i in keep]
    assert [p["frame"] for p in m["predictions"]] == list(range(11))
    pred = np.array([p["steering"] for p in m["predictions"]])
    assert pred == pytest.approx([expected(values[i]) for i in keep], abs=1e-5)
    target = np.array([labels[i] for i in keep])
    assert m["mae"] == pytest.approx(np.abs(pred - target).mean(), abs=1e-6)
    assert m["p95_abs_error"] == pytest.approx(np.percentile(np.abs(pred - target), 95), abs=1e-6)
    turning = np.abs(target) > 0.05
    assert m["sign_agreement"] == pytest.approx((np.sign(pred[turning]) == np.sign(target[turning])).mean())
    assert sum(b["count"] for b in m["per_bin"]) == 11
    assert "mean" in r.stdout and "MAE" in r.stdout
    cap = cv2.VideoCapture(str(video))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 11  # one video frame per recorded frame, readable by OpenCV
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_image_folder_in_numeric_order_without_labels(mean_model, tmp_path, cli):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        cv2.imwrite(str(folder / f"{i}.png"), image(20 * i))
    r = cli("replay", folder, "--model", mean_model, "--out", tmp_path / "out", block_tf=True)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    m = report["models"]["mean"]
    assert not report["labelled"] and "mae" not in m
    assert [p["file"] for p in m["predictions"]] == [f"{i}.png" for i in range(12)]
    assert [p["steering"] for p in m["predictions"]] == pytest.approx([expected(20 * i) for i in range(12)], abs=1e-5)


def test_csv_row_order_and_video_source(mean_model, tmp_path):
    from edgecnn.runtime.replay import replay

    rows = [7, 2, 9, 0]
    for i in rows:
        cv2.imwrite(str(tmp_path / f"f{i}.png"), image(25 * i))
    csv = tmp_path / "labels.csv"
    csv.write_text("image,steering\n" + "".join(f"f{i}.png,{0.1 * i - 0.4:.2f}\n" for i in rows))
    rep = replay(csv, [mean_model])
    assert [p["file"] for p in rep.models["mean"]["predictions"]] == [f"f{i}.png" for i in rows]
    assert rep.models["mean"]["test_count"] == 4
    video = write_video(tmp_path / "clip.mp4", 6, size=(W, H))
    rep = replay(video, [mean_model], max_frames=5)
    assert rep.kind == "video" and rep.frames == 5 and not rep.labelled
    assert [p["file"] for p in rep.models["mean"]["predictions"]] == [None] * 5


@pytest.mark.slow
def test_replay_mae_equals_trains_metric_on_the_test_split(tmp_path, cli):
    """A small steer run: replay on its test frames gives train's MAE (fp32: the same number; int8: its own, near)."""
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(240):
        s = float(np.clip(np.sin(i / 9.0), -1, 1))
        img = np.full((H, W, 3), 128, np.uint8)
        col = int((s + 1) / 2 * (W - 6))
        img[:, col:col + 6] = 255  # a bright bar whose position tells the steering
        img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(data / f"{i}.png"), img)
        rows.append(f"{i}.png,{s:.4f}\n")
    (data / "labels.csv").write_text("image,steering\n" + "".join(rows))
    run = tmp_path / "run"
    for args in (["train", data, "--task", "steer", "--arch", "donkey", "--img-size", f"{W}x{H}", "--epochs", "3",
                  "--no-augment", "--out", run],
                 ["calibrate", run, "--out", tmp_path / "cal", "--count", "100"],
                 ["quantize", run, "--precision", "fp32", "--out", tmp_path / "fp32.tflite"],
                 ["quantize", run, "--precision", "int8", "--out", tmp_path / "int8.tflite"]):
        r = cli(*args)
        assert r.returncode == 0, r.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    test = json.loads((run / "split.json").read_text())["splits"]["test"]
    (tmp_path / "test.csv").write_text("image,steering\n" + "".join(f"{p},{s}\n" for p, s, *_ in test))
    r = cli("replay", tmp_path / "test.csv", "--model", tmp_path / "fp32.tflite", "--model", tmp_path / "int8.tflite",
            "--out", tmp_path / "rep", block_tf=True)
    assert r.returncode == 0, r.stderr
    models = json.loads((tmp_path / "rep" / "report.json").read_text())["models"]
    print(f"\ntrain MAE {metrics['mae']:.6f}; replay fp32 {models['fp32']['mae']:.6f}, int8 {models['int8']['mae']:.6f}")
    assert models["fp32"]["test_count"] == metrics["test_count"] == len(test)
    assert models["fp32"]["mae"] == pytest.approx(metrics["mae"], abs=1e-5)
    assert models["fp32"]["sign_agreement"] == pytest.approx(metrics["sign_agreement"])
    assert models["int8"]["mae"] == pytest.approx(metrics["mae"], abs=0.03)


def _steer(*args) -> tuple[int, list[dict], str]:
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.run([sys.executable, "-m", "edgecnn", "steer", *map(str, args), "--trust-model"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, [json.loads(ln) for ln in proc.stdout.splitlines()], proc.stderr


def test_steer_plays_a_tub_in_recording_order_with_file_names_and_raw_predictions(mean_model, tmp_path):
    values = [10 * i + 5 for i in range(12)]
    tub = write_tub(tmp_path / "tub", values, [0.0] * 12, deleted=(3,))
    rc, commands, err = _steer("--model", mean_model, "--source", tub, "--max-steering-rate", 0, "--allow-frozen")
    assert rc == 0, err
    ok = [c for c in commands if c["state"] == "ok"]
    keep = [i for i in range(12) if i != 3]
    assert [c["file"] for c in ok] == [f"{i}_cam_image_array_.png" for i in keep]  # catalog order, not 0, 1, 10
    assert [c["steering"] for c in ok] == pytest.approx([expected(values[i]) for i in keep], abs=1e-5)  # raw
    assert [c["frame_time"] for c in ok] == pytest.approx([1_600_000_000 + 0.05 * i for i in keep])  # recorded
    assert commands[-1]["state"] == "stopped" and "file" not in commands[-1]


def test_steer_slew_limit_runs_in_the_recordings_frame_time(mean_model, tmp_path):
    """Played as fast as the machine goes, a 20 FPS recording still gets 4 units/s x 50 ms = 0.2 per frame."""
    values = [5] * 6 + [250] * 8  # steering -0.48 for six frames, then +0.48
    tub = write_tub(tmp_path / "tub", values, [0.0] * len(values))
    rc, commands, err = _steer("--model", mean_model, "--source", tub, "--max-steering-rate", 4, "--allow-frozen")
    assert rc == 0, err
    s = [c["steering"] for c in commands if c["state"] == "ok"]
    lo, hi = expected(5), expected(250)
    assert s[5] == pytest.approx(lo, abs=1e-5)  # reached within the first frames, whatever the first step was
    assert s[6:] == pytest.approx([lo + 0.2, lo + 0.4, lo + 0.6, lo + 0.8, hi, hi, hi, hi], abs=1e-5)


def test_third_party_steering_model_with_options(mean_model, tmp_path, cli):
    bare = mean_model.parent / "bare.tflite"
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), image(60 * i))
    r = cli("replay", folder, "--model", bare, "--out", tmp_path / "a", block_tf=True)
    assert r.clean_error and "no edgecnn contract and is not a donkeycar pilot" in r.stderr and "--input-range" in r.stderr
    # a model whose positive steering is left: --steering-range 1,-1 flips it into edgecnn's positive = right
    r = cli("replay", folder, "--model", bare, "--out", tmp_path / "b", "--input-range", "0,1", "--steering-range",
            "1,-1", block_tf=True)
    assert r.returncode == 0, r.stderr
    got = [p["steering"] for p in json.loads((tmp_path / "b" / "report.json").read_text())["models"]["bare"]["predictions"]]
    assert got == pytest.approx([-expected(60 * i) for i in range(3)], abs=1e-5)
    r = cli("replay", folder, "--model", bare, "--out", tmp_path / "c", "--input-range", "0,1", "--steering-output",
            "nope", block_tf=True)
    assert r.clean_error and "no output 'nope'" in r.stderr
