"""Turn raw (dequantized) model outputs into what they mean, per the contract. numpy only (device side).

Every consumer (training evaluation, the device loops, simulate, compare) decodes outputs here, so a gmm head
or a throttle column is read the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

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
