"""Score a .tflite on prepared images with LiteRT (no TensorFlow: the device runtime does the running).

Used by ``quantize`` (selective quantization) and ``export`` (the bundle's test metrics); it lives in
the runtime, below all of them, because it only runs models.

Loading, input quantization with the tensor's own scale and zero point, and output dequantization are the device
runtime's (:mod:`edgecnn.runtime.interpreter`, :mod:`edgecnn.runtime.adapters`); this module only loops over a
batch and scores. Inputs come from :func:`edgecnn.preprocess.prepare` (the one preprocessing); steering outputs
are decoded by :func:`edgecnn.outputs.decode_steering`, as on the device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError
from edgecnn.metrics import segmentation_confusion, segmentation_metrics
from edgecnn.outputs import class_argmax, decode_steering
from edgecnn.preprocess import load_image, prepare_batch
from edgecnn.runtime.adapters import get_output, input_specs, output_specs, set_input
from edgecnn.runtime.interpreter import make_interpreter


def predict(model: bytes, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run ``model`` (.tflite bytes) one item at a time on ``inputs`` (``float32 N x h x w x c``, normalised)
    -> ``float32 N x K`` dequantized first outputs (class probabilities or steering)."""
    it = make_interpreter(model, threads=threads)
    ind, outd = input_specs(it)[0], output_specs(it)[0]
    out = []
    for x in inputs:
        set_input(it, ind, x)
        it.invoke()
        out.append(get_output(it, outd))
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


def latency_us(model: bytes, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median single-frame invoke time in microseconds (warm-up runs excluded), on a zero input, in this process
    (a quick figure for choosing layers; ``edgecnn benchmark`` measures properly, in a sandboxed child)."""
    it = make_interpreter(model, threads=threads)
    ind = input_specs(it)[0]
    it.set_tensor(ind.index, np.zeros(ind.shape, ind.dtype))
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        it.invoke()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e6)


@dataclass(frozen=True)
class Score:
    """A model's score on labelled images.

    Attributes:
        metric: ``"accuracy"`` (fraction in [0, 1], classify), ``"mae"`` (steering mean absolute error, steer) or
            ``"mean_iou"`` (fraction in [0, 1], segment).
        value: the metric.
        count: images scored.
        predictions: ``int64 N`` predicted classes, ``float32 N`` predicted steering or ``uint8 N x h x w``
            class maps.
        details: further figures (segment: IoU per class, pixel accuracy).
    """

    metric: str
    value: float
    count: int
    predictions: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": round(float(self.value), 6), "count": self.count, **self.details}


def load_inputs(paths: Sequence[str], contract: Contract) -> np.ndarray:
    """Image files -> ``float32 N x h x w x c`` model inputs through :func:`edgecnn.preprocess.prepare`."""
    if not paths:
        raise DataError("no images to evaluate on")
    return prepare_batch([load_image(p) for p in paths], contract)


def steering_of(outputs: np.ndarray, contract: Contract) -> np.ndarray:
    """Steering ``float32 N`` in the contract's ``steering_range`` (positive = right) from raw outputs
    ``float32 N x K``, decoded as on the device (:func:`edgecnn.outputs.decode_steering`: the first output of a
    regression head, the mixture mean of a ``gmm`` head)."""
    return decode_steering(outputs, contract).steering.astype(np.float32)


def class_maps(outputs: np.ndarray, contract: Contract) -> np.ndarray:
    """``uint8 N x h x w`` per-pixel argmax of segmentation outputs (``N x h x w x K`` or flattened ``N x hwK``)."""
    h, w, k = contract.input_height, contract.input_width, len(contract.labels)
    maps = np.asarray(outputs).reshape(len(outputs), h, w, k)
    return np.stack([class_argmax(m) for m in maps]) if len(maps) else np.zeros((0, h, w), np.uint8)


def score_outputs(outputs: np.ndarray, targets: np.ndarray, contract: Contract) -> Score:
    """Score ``outputs`` (``float32 N x K``; segment: ``N x h x w x K`` or flattened) against ``targets``
    (class indexes, steering values, or ``N x h x w`` class masks with 255 = ignore)."""
    if contract.task == "segment":
        pred = class_maps(outputs, contract)
        m = segmentation_metrics(segmentation_confusion(pred, targets, len(contract.labels)), contract.labels)
        return Score("mean_iou", m["test_mean_iou"], len(pred), pred,
                     {"iou_per_class": m["iou_per_class"], "pixel_accuracy": m["test_pixel_accuracy"]})
    if contract.task == "classify":
        pred = outputs.argmax(axis=1)
        return Score("accuracy", float((pred == targets.astype(np.int64)).mean()), len(pred), pred)
    pred = steering_of(outputs, contract)
    return Score("mae", float(np.abs(pred - targets.astype(np.float32)).mean()), len(pred), pred)


def evaluate_tflite(model: bytes, inputs: np.ndarray, targets: np.ndarray, contract: Contract) -> Score:
    """Score a .tflite on prepared ``inputs`` (``float32 N x h x w x c``) with ``targets``."""
    return score_outputs(predict(model, inputs), np.asarray(targets), contract)

