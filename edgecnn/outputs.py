"""Turn raw model outputs into what they mean, per the contract. numpy and OpenCV only (device side).

Every consumer (training evaluation, the device loops, simulate, compare) decodes outputs here, so a gmm head
or a throttle column is read the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.mixture import split as split_mixture


@dataclass(frozen=True)
class SteeringBatch:
    """Decoded steering outputs for N frames.

    Attributes:
        steering: float64 (N,), in [-1, 1], positive = right (the mixture mean for a gmm head).
        throttle: float64 (N,) in [-1, 1], or None when the model has no throttle output.
        std: float64 (N,) steering standard deviation (gmm head), or None.
    """

    steering: np.ndarray
    throttle: np.ndarray | None = None
    std: np.ndarray | None = None


def decode_steering(raw: np.ndarray, contract: Contract) -> SteeringBatch:
    """``raw``: float (N, D) dequantized outputs of a steering model -> :class:`SteeringBatch`.

    Non-finite values stay non-finite here; the live loop turns them into a neutral command.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
    lo, hi = contract.steering_range
    if contract.head == "gmm":
        mixtures = [split_mixture(r) for r in raw]
        steer = np.array([m.mean if np.all(np.isfinite(r)) else np.nan for m, r in zip(mixtures, raw)])
        std = np.array([m.std for m in mixtures])
        return SteeringBatch(np.clip(steer, lo, hi), None, std)
    steer = np.clip(raw[:, 0], lo, hi)
    throttle = np.clip(raw[:, 1], -1.0, 1.0) if contract.throttle and raw.shape[1] > 1 else None
    return SteeringBatch(steer, throttle, None)


@dataclass(frozen=True)
class ClassMap:
    """A decoded segmentation output for one frame.

    Attributes:
        classes: ``uint8 H x W`` class index per pixel of the *frame* (indexes into ``contract.labels``).
        shares: fraction of the frame's pixels in each class, ``float`` in [0, 1] per label, summing to 1.
    """

    classes: np.ndarray
    shares: tuple[float, ...]


def class_argmax(raw: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Per-pixel argmax of a segmentation output ``raw`` (``h x w x K`` or ``1 x h x w x K``; int8, uint8 or
    float) -> ``uint8 h x w`` class indexes.

    For a quantized output this runs on the integers directly, without dequantizing the map: the output
    tensor has one (per-tensor) scale and zero point, and ``real = scale * (q - zero_point)`` is strictly
    increasing in ``q`` when ``scale > 0``, so the largest ``q`` of a pixel is its largest real score. Pass
    the tensor's ``scale`` to have that checked (a non-positive scale would reverse or flatten the order).
    Ties go to the lower index, as ``numpy.argmax`` does.
    """
    if scale is not None and not scale > 0:
        raise ValueError(f"argmax on quantized outputs needs a positive scale, got {scale}")
    raw = np.asarray(raw)
    if raw.ndim == 4:
        raw = raw[0]
    if raw.ndim != 3:
        raise ValueError(f"expected a class map of shape (h, w, K), got {raw.shape}")
    if raw.shape[-1] > 255:
        raise ValueError(f"at most 255 classes fit a uint8 class map, got {raw.shape[-1]}")
    return raw.argmax(-1).astype(np.uint8)


def class_shares(classes: np.ndarray, num_classes: int) -> tuple[float, ...]:
    """Fraction of the pixels of ``classes`` (uint8 class indexes) in each of ``num_classes`` classes."""
    counts = np.bincount(classes.ravel(), minlength=num_classes)[:num_classes]
    total = max(int(classes.size), 1)
    return tuple(float(c) / total for c in counts)


def decode_class_map(raw: np.ndarray, contract: Contract, frame_size: tuple[int, int] | None = None,
                     scale: float | None = None) -> ClassMap:
    """A segmentation output (see :func:`class_argmax`) -> :class:`ClassMap` at ``frame_size`` = (height,
    width) of the frame (default: the model's input size).

    The class map is resized with nearest-neighbour: class indexes are labels, a blend of two is no class.
    """
    classes = class_argmax(raw, scale)
    k = len(contract.labels) or int(np.asarray(raw).shape[-1])
    if frame_size is not None and tuple(frame_size) != classes.shape:
        h, w = frame_size
        classes = cv2.resize(classes, (int(w), int(h)), interpolation=cv2.INTER_NEAREST)
    return ClassMap(classes, class_shares(classes, k))
