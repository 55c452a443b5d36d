"""Measure one variant: task metrics and agreement on shared inputs, latency in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract
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
from edgecnn.runtime.benchmark import benchmark_model
from edgecnn.runtime.evaluate import class_maps
from edgecnn.runtime.predictor import Predictor


def keras_outputs(model_path: Path, inputs: np.ndarray) -> np.ndarray:
    """Raw outputs of the Keras reference, float32 (N, D), batch inference (host side)."""
    model = load_keras_model(model_path)
    return np.asarray(model.predict(inputs, batch_size=64, verbose=0), np.float32).reshape(len(inputs), -1)


def tflite_outputs(path: Path, inputs: np.ndarray, contract: Contract, threads: int | None) -> np.ndarray:
    """Dequantized outputs of a .tflite, float32 (N, D), one frame at a time as on the device."""
    pred = Predictor(str(path), threads=threads, contract=contract)
    return np.stack([pred.invoke(x) for x in inputs]).astype(np.float32)


def task_metrics(raw: np.ndarray, targets: np.ndarray, contract: Contract) -> dict[str, Any]:
    """The task metric of raw outputs: top-1/top-5 (classify), MAE, RMSE, p95, sign agreement (steer), or mean
    IoU, IoU per class and pixel accuracy (segment; ``targets`` are ``N x h x w`` masks, 255 = ignore)."""
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


def tflite_latency(path: Path, input_file: Path, threads: int | None, runs: int, warmup: int) -> dict[str, Any]:
    """Latency of a .tflite in its own sandboxed child process (see :mod:`edgecnn.runtime.benchmark`)."""
    r = benchmark_model(path, threads=threads, runs=runs, warmup=warmup, inputs=[str(input_file)])
    return {"p50": r.p50_ms, "p90": r.p90_ms, "p99": r.p99_ms, "mean": r.mean_ms, "throughput": r.throughput,
            "peak_memory_mb": r.peak_memory_mb}


def keras_latency(model_path: Path, input_file: Path, runs: int, warmup: int, timeout: float = 600) -> dict[str, Any]:
    """Latency of the Keras model called on one frame, in a fresh Python process (host side)."""
    proc = subprocess.run(
        [sys.executable, "-m", "edgecnn.compare.keras_bench", str(model_path), str(input_file), str(runs), str(warmup)],
        capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise ModelError(f"timing the Keras model failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
