"""Measure one variant: task metrics and agreement on shared inputs, latency in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data.navigation import NavSample, navigation_metrics
from edgecnn.errors import ModelError
from edgecnn.metrics import (
    classification_metrics,
    segmentation_confusion,
    segmentation_metrics,
    steering_agreement,
    steering_metrics,
)
from edgecnn.outputs import decode_steering
from edgecnn.quantize.keras_model import load_keras_model
from edgecnn.runtime.adapters import input_specs
from edgecnn.runtime.benchmark import benchmark_model
from edgecnn.runtime.evaluate import (
    IMAGE_INPUT,
    MAP_INPUT,
    Inputs,
    bind_inputs,
    class_maps,
    count_items,
)
from edgecnn.runtime.interpreter import make_interpreter, read_model_bytes
from edgecnn.runtime.predictor import Predictor


def keras_outputs(model_path: Path, inputs: Inputs) -> np.ndarray:
    """Raw outputs of the Keras reference, float32 (N, D), batch inference (host side); ``inputs`` as in
    :class:`~edgecnn.compare.testdata.TestData` (one array, or ``{"image", "map"}`` fed by name)."""
    model = load_keras_model(model_path)
    feed = dict(inputs) if isinstance(inputs, dict) else inputs
    return np.asarray(model.predict(feed, batch_size=64, verbose=0), np.float32).reshape(count_items(inputs), -1)


def tflite_outputs(path: Path, inputs: Inputs, contract: Contract, threads: int | None) -> np.ndarray:
    """Dequantized outputs of a .tflite, float32 (N, D), one frame at a time as on the device (a navigate model
    gets each frame's image and map)."""
    pred = Predictor(str(path), threads=threads, contract=contract)
    if isinstance(inputs, dict):
        images, maps = inputs[IMAGE_INPUT], inputs[MAP_INPUT]
        return np.stack([pred.invoke(x, m) for x, m in zip(images, maps)]).astype(np.float32)
    return np.stack([pred.invoke(x) for x in inputs]).astype(np.float32)


def save_first_input(inputs: Inputs, folder: Path) -> dict[str, Path]:
    """Write the first frame's input(s) to ``folder`` as float32 .npy, one file per model input (``{"": file}``
    for a one-input model, ``{"image": file, "map": file}`` for a navigate model): every variant is timed on
    these same files."""
    if isinstance(inputs, dict):
        files = {}
        for name, arr in inputs.items():
            files[name] = folder / f"input_{name}.npy"
            np.save(files[name], np.asarray(arr[0], np.float32))
        return files
    np.save(folder / "input.npy", np.asarray(inputs[0], np.float32))
    return {"": folder / "input.npy"}


def input_files_for(path: Path, files: dict[str, Path]) -> list[Path]:
    """``files`` in the order of the .tflite ``path``'s inputs (matched by name, see
    :func:`edgecnn.runtime.evaluate.bind_inputs`), as the benchmark child takes them."""
    if list(files) == [""]:
        return [files[""]]
    specs = input_specs(make_interpreter(read_model_bytes(path)))
    return [files[name] for _, name in bind_inputs(specs, list(files))]


def task_metrics(raw: np.ndarray, targets: np.ndarray, contract: Contract,
                 samples: tuple[NavSample, ...] = ()) -> dict[str, Any]:
    """The task metric of raw outputs: top-1/top-5 (classify), MAE, RMSE, p95, sign agreement (steer), mean
    IoU, IoU per class and pixel accuracy (segment; ``targets`` are ``N x h x w`` masks, 255 = ignore), or for
    navigate the training metrics of :func:`~edgecnn.data.navigation.navigation_metrics` (MAE, NLL in nats,
    ``coverage`` ``{"1"|"2"|"3": share in [0, 1]}``, ``junctions``) on ``samples``."""
    if contract.task == "navigate":
        m = navigation_metrics(raw, samples, contract)
        return m | {"count": m["test_count"]}
    if contract.task == "segment":
        m = segmentation_metrics(segmentation_confusion(class_maps(raw, contract), targets, len(contract.labels)),
                                 contract.labels)
        return {"miou": m["test_mean_iou"], "pixel_accuracy": m["test_pixel_accuracy"],
                "iou_per_class": m["iou_per_class"], "count": len(targets)}
    if contract.task == "classify":
        m = classification_metrics(raw, targets, contract.labels)
        return {"top1": m["test_accuracy"], "top5": m["test_top5_accuracy"], "count": m["test_count"]}
    d = decode_steering(raw, contract)
    m = steering_metrics(d.steering, targets, d.std)
    return {k: m[k] for k in ("mae", "rmse", "p95_abs_error", "sign_agreement")} | {"count": m["test_count"]}


def agreement(ref: np.ndarray, raw: np.ndarray, targets: np.ndarray, contract: Contract) -> dict[str, Any]:
    """Agreement of a variant with the float reference on the same inputs."""
    diff = np.abs(ref - raw)
    out: dict[str, Any] = {"mean_abs_diff": float(diff.mean()), "max_abs_diff": float(diff.max())}
    if contract.task == "segment":
        out["pixel_agreement"] = float((class_maps(ref, contract) == class_maps(raw, contract)).mean())
    elif contract.task == "classify":
        out["top1_agreement"] = float((ref.argmax(1) == raw.argmax(1)).mean())
    else:
        a = steering_agreement(decode_steering(ref, contract).steering, decode_steering(raw, contract).steering, targets)
        out.update(steering_mean_abs_diff=a["mean_abs_diff"], steering_max_abs_diff=a["max_abs_diff"],
                   sign_flips=a["sign_flips"], per_bin=a["per_bin"])
    return out


def tflite_latency(path: Path, files: dict[str, Path], threads: int | None, runs: int, warmup: int) -> dict[str, Any]:
    """Latency of a .tflite in its own sandboxed child process (see :mod:`edgecnn.runtime.benchmark`), on the
    input ``files`` of :func:`save_first_input` (each fed to the model input of its name)."""
    r = benchmark_model(path, threads=threads, runs=runs, warmup=warmup,
                        inputs=[str(f) for f in input_files_for(path, files)])
    return {"p50": r.p50_ms, "p90": r.p90_ms, "p99": r.p99_ms, "mean": r.mean_ms, "throughput": r.throughput,
            "peak_memory_mb": r.peak_memory_mb}


def keras_latency(model_path: Path, files: dict[str, Path], runs: int, warmup: int,
                  timeout: float = 600) -> dict[str, Any]:
    """Latency of the Keras model called on one frame (the input ``files`` of :func:`save_first_input`), in a
    fresh Python process (host side)."""
    given = str(files[""]) if list(files) == [""] else ",".join(f"{k}={v}" for k, v in files.items())
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn.compare.keras_bench", str(model_path), given, str(runs), str(warmup)],
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise ModelError(f"timing the Keras model failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
