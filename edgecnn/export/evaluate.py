"""Score a .tflite on prepared images with LiteRT (no TensorFlow: the device runtime does the running).

Loading, input quantization with the tensor's own scale and zero point, and output dequantization are the device
runtime's (:mod:`edgecnn.runtime.interpreter`, :mod:`edgecnn.runtime.adapters`); this module only loops over a
batch and scores. Inputs come from :func:`edgecnn.preprocess.prepare` (the one preprocessing); steering outputs
are decoded by :func:`edgecnn.outputs.decode_steering`, as on the device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError
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
    """Steering ``float32 N`` in the contract's ``steering_range`` (positive = right) from raw outputs
    ``float32 N x K``, decoded as on the device (:func:`edgecnn.outputs.decode_steering`: the first output of a
    regression head, the mixture mean of a ``gmm`` head)."""
    from edgecnn.outputs import decode_steering

    return decode_steering(outputs, contract).steering.astype(np.float32)


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
