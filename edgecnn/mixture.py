"""The Gaussian-mixture steering output, in numpy only (device side: no TensorFlow).

A ``gmm`` model with K components outputs one flat vector of 3K floats (dequantized):
``[K logits, K means, K log-sigmas]``. The means are tanh-bounded to [-1, 1] (steering units, positive = right),
the logits to [-LOGIT_BOUND, LOGIT_BOUND] and the log-sigmas to [LOG_SIGMA_MIN, LOG_SIGMA_MAX] by the network
itself (bounded outputs keep one int8 scale fine enough for all three parts of the concatenated vector).

Example::

    mean, std = mixture_mean_std(output_vector)   # float, float
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LOGIT_BOUND = 3.0
LOG_SIGMA_MIN = math.log(0.02)  # a component narrower than 1 % of the steering range is not believable
LOG_SIGMA_MAX = 0.0  # sigma 1 = half the steering range: "no idea"


@dataclass(frozen=True)
class Mixture:
    """A 1-D Gaussian mixture over steering.

    Attributes:
        weights: float64 (K,), component probabilities, summing to 1.
        means: float64 (K,), component means, steering units.
        sigmas: float64 (K,), component standard deviations, steering units (> 0).
    """

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray

    @property
    def mean(self) -> float:
        """Mean of the mixture, clipped to [-1, 1]."""
        return float(np.clip(np.sum(self.weights * self.means), -1.0, 1.0))

    @property
    def std(self) -> float:
        """Standard deviation of the mixture (law of total variance)."""
        m = np.sum(self.weights * self.means)
        var = np.sum(self.weights * (self.sigmas**2 + self.means**2)) - m * m
        return float(math.sqrt(max(var, 0.0)))

    @property
    def mode(self) -> float:
        """Mean of the most probable component (a steering that avoids averaging "left" and "right")."""
        return float(self.means[int(np.argmax(self.weights))])


def split(output: np.ndarray, components: int | None = None) -> Mixture:
    """Parse a model output vector of 3K floats (any leading batch dims of size 1 are squeezed).

    Raises ValueError when the length is not a multiple of 3 or disagrees with ``components``.
    """
    v = np.asarray(output, dtype=np.float64).reshape(-1)
    if v.size == 0 or v.size % 3:
        raise ValueError(f"a gmm output has 3K values, got {v.size}")
    k = v.size // 3
    if components is not None and components != k:
        raise ValueError(f"expected {3 * components} values for {components} components, got {v.size}")
    logits, means, log_sigmas = v[:k], v[k : 2 * k], v[2 * k :]
    z = logits - logits.max()  # softmax, stable
    w = np.exp(z)
    w /= w.sum()
    return Mixture(weights=w, means=np.clip(means, -1.0, 1.0), sigmas=np.exp(np.clip(log_sigmas, LOG_SIGMA_MIN, LOG_SIGMA_MAX)))


def mixture_mean_std(output: np.ndarray, components: int | None = None) -> tuple[float, float]:
    """(mean steering in [-1, 1], its standard deviation) of a gmm output vector of 3K floats."""
    m = split(output, components)
    return m.mean, m.std


def nll(output: np.ndarray, target: float) -> float:
    """Negative log-likelihood of ``target`` under the mixture (nats); matches the training loss."""
    m = split(output)
    z = (target - m.means) / m.sigmas
    log_p = np.log(m.weights) - 0.5 * z * z - np.log(m.sigmas) - 0.5 * math.log(2 * math.pi)
    top = log_p.max()
    return float(-(top + math.log(np.sum(np.exp(log_p - top)))))
