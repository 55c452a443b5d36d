"""Score a .tflite on prepared images with LiteRT (no TensorFlow: the device runtime does the running).

Used by ``quantize`` (selective quantization) and ``export`` (the bundle's test metrics); it lives in
the runtime, below all of them, because it only runs models.

Two-input models (``navigate``: a camera frame and a map raster) take their inputs as a dict ``{"image": float32
N x h x w x 3, "map": float32 N x S x S x C}``; each array is written into the model input of that name
(:func:`bind_inputs`: the signature name, or a tensor name containing ``map``), never by position.

Loading, input quantization with the tensor's own scale and zero point, and output dequantization are the device
runtime's (:mod:`edgecnn.runtime.interpreter`, :mod:`edgecnn.runtime.adapters`); this module only loops over a
batch and scores. Inputs come from :func:`edgecnn.preprocess.prepare` (the one preprocessing); steering outputs
are decoded by :func:`edgecnn.outputs.decode_steering`, as on the device.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError, ModelError
from edgecnn.metrics import segmentation_confusion, segmentation_metrics
from edgecnn.mixture import coverage, nll
from edgecnn.outputs import class_argmax, decode_steering
from edgecnn.preprocess import load_image, prepare_batch
from edgecnn.runtime.adapters import (
    TensorSpec,
    get_output,
    input_specs,
    output_specs,
    set_input,
)
from edgecnn.runtime.interpreter import make_interpreter

# Model inputs: one ``float32 N x ...`` array (single-input models), or ``{input name: float32 N x ...}``.
Inputs = np.ndarray | Mapping[str, np.ndarray]
MAP_INPUT = "map"  # the name of a navigation model's map input (contract.map["input"])
IMAGE_INPUT = "image"
# Channels of the map PNGs written by `edgecnn data roads --networks`, in file order (navmap.MAP_CHANNELS).
MAP_FILE_CHANNELS = ("roads", "route")


def tensor_input_name(name: str) -> str:
    """A converter tensor name without its signature decoration: ``serving_default_map:0`` -> ``map``."""
    base = name.split(":")[0]
    return base.removeprefix("serving_default_")


def bind_inputs(specs: Sequence[TensorSpec], names: Sequence[str]) -> list[tuple[TensorSpec, str]]:
    """Pair each model input with the named array that feeds it: an exact name (after
    :func:`tensor_input_name`), else the input whose tensor name contains ``map`` takes ``map`` and the other
    ``image``. ModelError when an input finds no array or the counts differ."""
    if len(specs) != len(names):
        raise ModelError(f"the model has {len(specs)} inputs ({', '.join(s.name for s in specs)}) but "
                         f"{len(names)} were given ({', '.join(names)})")
    pairs, left = [], set(names)
    for s in specs:
        base = tensor_input_name(s.name)
        if base in left:
            name = base
        elif MAP_INPUT in left and MAP_INPUT in s.name.lower():
            name = MAP_INPUT
        elif IMAGE_INPUT in left and MAP_INPUT not in s.name.lower():
            name = IMAGE_INPUT
        else:
            raise ModelError(f"model input {s.name!r} matches none of the inputs given ({', '.join(sorted(left))})")
        left.discard(name)
        pairs.append((s, name))
    return pairs


def count_items(inputs: Inputs) -> int:
    """Items (N) in ``inputs``."""
    if isinstance(inputs, Mapping):
        return len(next(iter(inputs.values()))) if inputs else 0
    return len(inputs)


def take(inputs: Inputs, start: int, stop: int | None = None) -> Inputs:
    """Items ``start:stop`` of ``inputs`` (every named array sliced alike)."""
    if isinstance(inputs, Mapping):
        return {k: v[start:stop] for k, v in inputs.items()}
    return inputs[start:stop]


def predict(model: bytes, inputs: Inputs, threads: int = 1) -> np.ndarray:
    """Run ``model`` (.tflite bytes) one item at a time on ``inputs`` (``float32 N x h x w x c`` normalised, or
    ``{name: float32 N x ...}`` for a two-input model) -> ``float32 N x K`` dequantized first outputs."""
    it = make_interpreter(model, threads=threads)
    outd = output_specs(it)[0]
    specs = input_specs(it)
    if isinstance(inputs, Mapping):
        pairs = bind_inputs(specs, list(inputs))
    else:
        pairs = [(specs[0], "")]
    out = []
    for i in range(count_items(inputs)):
        for spec, name in pairs:
            set_input(it, spec, inputs[name][i] if name else inputs[i])
        it.invoke()
        out.append(get_output(it, outd))
    return np.stack(out) if out else np.zeros((0, 0), np.float32)


def latency_us(model: bytes, runs: int = 50, warmup: int = 5, threads: int = 1) -> float:
    """Median single-frame invoke time in microseconds (warm-up runs excluded), on a zero input, in this process
    (a quick figure for choosing layers; ``edgecnn benchmark`` measures properly, in a sandboxed child)."""
    it = make_interpreter(model, threads=threads)
    for ind in input_specs(it):
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


def map_channels(contract: Contract) -> tuple[str, ...]:
    """The map channels a navigation model reads, in order (``("roads", "route")`` routed, ``("roads",)``
    unrouted), from its contract's ``map["spec"]``; ``()`` for a model without a map input."""
    spec = (getattr(contract, "map", None) or {}).get("spec") or {}
    return tuple(spec.get("channels", ()))


def map_shape(contract: Contract) -> tuple[int, int, int] | None:
    """``(S, S, C)`` of a navigation model's map input, from its contract; None without a map input."""
    spec = (getattr(contract, "map", None) or {}).get("spec") or {}
    if not spec:
        return None
    size = int(spec.get("size", 64))
    return size, size, len(map_channels(contract))


def load_map_raster(path: str, channels: Sequence[str]) -> np.ndarray:
    """A map PNG of ``edgecnn data roads --networks`` (``uint8 S x S x 3``: roads, route, 0) -> the channels a
    model reads, ``uint8 S x S x len(channels)`` (0 or 255), in ``channels`` order. DataError when unreadable."""
    raster = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raster is None:
        raise DataError(f"{path}: cannot read the map raster (missing or not a PNG)")
    if raster.ndim == 2:
        raster = raster[:, :, None]
    try:
        idx = [MAP_FILE_CHANNELS.index(c) for c in channels]
    except ValueError as exc:
        raise DataError(f"map channels must be among {MAP_FILE_CHANNELS}, got: {tuple(channels)}") from exc
    if max(idx) >= raster.shape[2]:
        raise DataError(f"{path}: the map raster has {raster.shape[2]} channel(s), the model needs {tuple(channels)}")
    return np.ascontiguousarray(raster[:, :, idx])


def load_map_input(path: str, channels: Sequence[str]) -> np.ndarray:
    """A map PNG -> the model's map input, ``float32 S x S x C`` = raster / 255 (0 or 1)."""
    return load_map_raster(path, channels).astype(np.float32) / np.float32(255.0)


def load_model_inputs(paths: Sequence[str], contract: Contract, map_paths: Sequence[str] | None = None) -> Inputs:
    """Model inputs for ``paths``: the images through :func:`load_inputs`; for a model with a map input
    (``contract.map``), ``{"image": ..., "map": float32 N x S x S x C}`` with the maps of ``map_paths``."""
    images = load_inputs(paths, contract)
    channels = map_channels(contract)
    if not channels:
        return images
    if map_paths is None or len(map_paths) != len(paths):
        raise DataError("a navigation model needs one map raster per frame (the run's split.json has them)")
    return {IMAGE_INPUT: images, MAP_INPUT: np.stack([load_map_input(p, channels) for p in map_paths])}


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
    details: dict[str, Any] = {}
    t = targets.astype(np.float32)
    if contract.head == "gmm" and len(pred):
        details = {"nll": float(np.mean([nll(o, y) for o, y in zip(outputs, t)])), "coverage": coverage(outputs, t)}
    return Score("mae", float(np.abs(pred - t).mean()), len(pred), pred, details)


def evaluate_tflite(model: bytes, inputs: Inputs, targets: np.ndarray, contract: Contract) -> Score:
    """Score a .tflite on prepared ``inputs`` (``float32 N x h x w x c``, or named arrays) with ``targets``."""
    return score_outputs(predict(model, inputs), np.asarray(targets), contract)

