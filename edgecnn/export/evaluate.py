"""Run a .tflite over images with LiteRT and score it (no TensorFlow: compare reuses this).

Inputs go through :func:`edgecnn.preprocess.prepare` (the one preprocessing), are quantized with the input
tensor's own scale and zero point when the model takes integers, and outputs are always dequantized (an int8
steering value read as -128..127 is a bug others shipped).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError, ModelError


def make_interpreter(model: bytes, threads: int = 1):
    """A LiteRT interpreter for ``model`` (.tflite bytes), tensors allocated; ModelError when it will not load."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        it = Interpreter(model_content=model, num_threads=threads)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load the model: {str(exc).splitlines()[0][:200]}") from exc
    return it


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """``float32`` normalised input -> the input tensor's dtype, using its own scale/zero point."""
    dtype = detail["dtype"]
    if dtype in (np.float32, np.float16):
        return x.astype(dtype)
    scale, zp = detail["quantization"]
    info = np.iinfo(dtype)
    # Round to nearest, then clip: values outside the calibrated range saturate instead of wrapping around.
    return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """An output tensor -> ``float32``; integer outputs through their scale/zero point (zero point widened to
    int32 first so that ``q - zp`` cannot overflow int8)."""
    if y.dtype in (np.float32, np.float16):
        return y.astype(np.float32)
    scale, zp = detail["quantization"]
    return (y.astype(np.int32) - np.int32(zp)).astype(np.float32) * np.float32(scale)


def predict(model: bytes, inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run ``model`` one item at a time on ``inputs`` (``float32 N x h x w x c``, normalised) -> ``float32 N x K``
    dequantized first outputs (class probabilities or steering)."""
    it = make_interpreter(model, threads)
    ind, outd = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for i in range(len(inputs)):
        it.set_tensor(ind["index"], quantize_input(inputs[i : i + 1], ind))
        it.invoke()
        out.append(dequantize_output(it.get_tensor(outd["index"]), outd).reshape(-1))
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


def latency_us(model: bytes, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median single-frame invoke time in microseconds (warm-up runs excluded), on a zero input."""
    it = make_interpreter(model, threads)
    ind = it.get_input_details()[0]
    it.set_tensor(ind["index"], np.zeros(ind["shape"], ind["dtype"]))
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
        metric: ``"accuracy"`` (fraction in [0, 1], classify) or ``"mae"`` (steering mean absolute error, steer).
        value: the metric.
        count: images scored.
        predictions: ``int64 N`` predicted classes or ``float32 N`` predicted steering.
    """

    metric: str
    value: float
    count: int
    predictions: np.ndarray

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": round(float(self.value), 6), "count": self.count}


def load_inputs(paths: Sequence[str], contract: Contract) -> np.ndarray:
    """Image files -> ``float32 N x h x w x c`` model inputs through :func:`edgecnn.preprocess.prepare`."""
    from edgecnn.preprocess import load_image, prepare_batch

    if not paths:
        raise DataError("no images to evaluate on")
    return prepare_batch([load_image(p) for p in paths], contract)


def steering_of(outputs: np.ndarray, contract: Contract) -> np.ndarray:
    """Steering ``float32 N`` in [-1, 1] (positive = right) from raw outputs ``float32 N x K``: the first output of a
    regression head, or the mixture mean ``sum(softmax(logits) * means)`` of a ``gmm`` head (K logits, K means,
    K log-sigmas)."""
    if contract.head == "gmm":
        k = contract.components
        logits = outputs[:, :k] - outputs[:, :k].max(axis=1, keepdims=True)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        return (w * outputs[:, k : 2 * k]).sum(axis=1).astype(np.float32)
    return outputs[:, 0].astype(np.float32)


def score_outputs(outputs: np.ndarray, targets: np.ndarray, contract: Contract) -> Score:
    """Score ``outputs`` (``float32 N x K``) against ``targets`` (class indexes or steering values)."""
    if contract.task == "classify":
        pred = outputs.argmax(axis=1)
        return Score("accuracy", float((pred == targets.astype(np.int64)).mean()), len(pred), pred)
    pred = steering_of(outputs, contract)
    return Score("mae", float(np.abs(pred - targets.astype(np.float32)).mean()), len(pred), pred)


def evaluate_tflite(model: bytes, inputs: np.ndarray, targets: np.ndarray, contract: Contract) -> Score:
    """Score a .tflite on prepared ``inputs`` (``float32 N x h x w x c``) with ``targets``."""
    return score_outputs(predict(model, inputs), np.asarray(targets), contract)
