"""Input and output adapters: the maths between float model inputs/outputs and any tensor type.

Pure numpy/OpenCV (no interpreter needed) so each function is testable with a plain array; the thin helpers at
the end read/write an interpreter's tensors with them. Handles float32, float16, int8, uint8, int16 tensors:
quantized tensors use their *own* scale and zero point (``real = scale * (q - zero_point)``), so third-party
models work, not only ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import ModelError
from edgecnn.preprocess import normalise


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output.

    Attributes:
        name: tensor name in the model.
        index: tensor index in the interpreter.
        shape: static shape (batch first), e.g. ``(1, 64, 64, 3)``.
        dtype: numpy dtype name: ``"float32"``, ``"int8"``, ``"uint8"``, ...
        scale: quantization scale (real units per step); 0.0 when the tensor is not quantized.
        zero_point: quantized value that represents real 0.
    """

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        """True for an integer tensor with a scale (the real value is ``scale * (q - zero_point)``)."""
        return self.scale > 0 and np.issubdtype(np.dtype(self.dtype), np.integer)

    @classmethod
    def from_details(cls, d: dict[str, Any]) -> TensorSpec:
        """Build from one entry of ``interpreter.get_input_details()`` / ``get_output_details()``."""
        scale, zero = d.get("quantization", (0.0, 0)) or (0.0, 0)
        qp = d.get("quantization_parameters") or {}
        scales = np.asarray(qp.get("scales", []))
        if scales.size > 1:
            # Per-channel quantization is for weights; an I/O tensor with it cannot be fed with one scale.
            raise ModelError(f"tensor {d.get('name')!r} is quantized per channel; edgecnn needs per-tensor I/O")
        return cls(
            name=str(d.get("name", "")),
            index=int(d["index"]),
            shape=tuple(int(v) for v in d["shape"]),
            dtype=np.dtype(d["dtype"]).name,
            scale=float(scale),
            zero_point=int(zero),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "shape": list(self.shape), "dtype": self.dtype,
                "scale": self.scale, "zero_point": self.zero_point}


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real-valued ``x`` (float32, any shape) -> the tensor's dtype.

    Quantized tensors: ``q = round(x / scale) + zero_point``, clipped to the dtype's range (values outside
    the calibrated range saturate, as the integer kernels would). Float tensors: a cast. Integer tensors
    without a scale take ``x`` as already-integer values (rounded and clipped).
    """
    dtype = np.dtype(spec.dtype)
    x = np.asarray(x, dtype=np.float32)
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x / np.float32(spec.scale)) + spec.zero_point if spec.quantized else np.round(x)
    return np.clip(q, info.min, info.max).astype(dtype)


def input_table(contract: Contract, spec: TensorSpec) -> np.ndarray:
    """The model input for every pixel value: ``(256, c)`` array of the tensor's dtype, row ``p`` holding what
    the reference path (:func:`edgecnn.preprocess.normalise`, then :func:`quantize` with the tensor's scale
    and zero point) gives a pixel of value ``p`` in each channel.

    Both steps act on each pixel value alone (``(p - mean[k]) / std[k]``, round, clip), so looking the result
    up in this table is the same computation, done once per value instead of once per pixel: the same bytes,
    for float32, float16, int8, uint8 and int16 inputs alike.
    """
    c = contract.channels
    values = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], c, axis=2)  # 1 x 256 x c, as an image
    return np.ascontiguousarray(quantize(normalise(values, contract), spec)[0])


def apply_table(pixels: np.ndarray, table: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``uint8 h x w x c`` pixels -> model input ``h x w x c`` of ``table``'s dtype, through :func:`input_table`.

    One cv2.LUT pass (any output dtype, one table per channel); ``out`` (``h x w x c``, contiguous) receives the
    result when given, e.g. a view of the interpreter's input tensor, so nothing is allocated per frame.
    """
    c = table.shape[1]
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != c:
        raise ValueError(f"expected uint8 h x w x {c} pixels, got {pixels.dtype} {pixels.shape}")
    fits = (out is not None and out.flags.c_contiguous and out.dtype == table.dtype
            and out.shape == pixels.shape)
    if c == 1:  # OpenCV sees an h x w x 1 array as a single-channel image and writes h x w
        dst = out.reshape(out.shape[:2]) if fits else None
        res = cv2.LUT(pixels.reshape(pixels.shape[:2]), table.reshape(1, 256), dst=dst)[:, :, None]
    else:
        res = cv2.LUT(pixels, table.reshape(1, 256, c), dst=out if fits else None)
    if out is None:
        return res
    if not np.shares_memory(res, out):  # OpenCV allocates a fresh array when ``out`` does not fit
        out[...] = res.reshape(out.shape)
    return out


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Tensor values (any dtype) -> real values, ``float32`` of the same shape.

    The zero point is subtracted in int32: in the tensor's own dtype ``uint8 3 - 128`` would wrap around.
    """
    q = np.asarray(q)
    if spec.quantized:
        return ((q.astype(np.int32) - spec.zero_point).astype(np.float32) * np.float32(spec.scale)).astype(np.float32)
    return q.astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` largest entries of a 1-D score vector as ``[(index, score), ...]``, best first.

    Ties keep the lower index first (a stable order, so outputs are reproducible); NaN scores come last. A short
    vector (a classifier's few classes, the usual case in the device loop) is ranked in plain Python: the same
    order as the numpy ranking used for long ones, without its per-call overhead (~15 us per frame in the loop).
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    k = max(0, min(int(k), scores.size))
    if scores.size <= _SHORT:
        values = scores.tolist()
        # (is NaN, -score): NaN last, as np.argsort puts it; sorted() is stable, so ties keep index order
        order = sorted(range(len(values)), key=lambda i: (math.isnan(values[i]), -values[i]))[:k]
        return [(i, values[i]) for i in order]
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]


_SHORT = 64  # top_k ranks vectors up to this length in plain Python


def input_specs(interpreter: Any) -> list[TensorSpec]:
    """Specs of an interpreter's inputs, in input order."""
    return [TensorSpec.from_details(d) for d in interpreter.get_input_details()]


def output_specs(interpreter: Any) -> list[TensorSpec]:
    """Specs of an interpreter's outputs, in output order."""
    return [TensorSpec.from_details(d) for d in interpreter.get_output_details()]


def set_input(interpreter: Any, spec: TensorSpec, x: np.ndarray) -> None:
    """Quantize real-valued ``x`` (float32, the input shape without or with its batch axis) and set it."""
    value = quantize(x, spec)
    if value.shape != spec.shape:
        if int(np.prod(spec.shape)) != value.size:
            raise ModelError(f"input {spec.name!r} expects shape {spec.shape}, got {value.shape}")
        value = value.reshape(spec.shape)
    interpreter.set_tensor(spec.index, value)


def get_output(interpreter: Any, spec: TensorSpec) -> np.ndarray:
    """An output tensor dequantized to real values: ``float32``, flattened to 1-D.

    An 8-bit quantized tensor is looked up in a 256-entry table built by :func:`dequantize` (the same values,
    one numpy call instead of five: in the device loop the output read is otherwise a sizeable share of a small
    model's frame).
    """
    q = interpreter.get_tensor(spec.index)
    if spec.quantized and q.dtype.itemsize == 1:
        return _byte_table(spec.dtype, spec.scale, spec.zero_point)[q.reshape(-1).view(np.uint8)]
    return dequantize(q, spec).reshape(-1)


@lru_cache(maxsize=32)
def _byte_table(dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """``float32 (256,)``: the real value of every 8-bit tensor value, indexed by its byte (``uint8`` view)."""
    spec = TensorSpec("", 0, (256,), dtype, scale, zero_point)
    table = dequantize(np.arange(256, dtype=np.uint8).view(np.dtype(dtype)), spec)
    table.setflags(write=False)
    return table
