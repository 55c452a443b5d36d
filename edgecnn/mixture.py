"""The Gaussian-mixture steering output, in numpy only (device side: no TensorFlow).

A ``gmm`` model with K components outputs one flat vector of 3K floats (dequantized):
``[K logits, K means, K log-sigmas]``. The means are tanh-bounded to [-1, 1] (steering units, positive = right),
the logits to [-LOGIT_BOUND, LOGIT_BOUND] and the log-sigmas to [LOG_SIGMA_MIN, LOG_SIGMA_MAX] by the network
itself (bounded outputs keep one int8 scale fine enough for all three parts of the concatenated vector).

Example::

    mean, std = mixture_mean_std(output_vector)   # float, float
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.junction import JunctionLabel

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


# ------------------------------------------------------------------------------- coverage and modes (batched)
#
# Used by training's metrics (navigate, steer with a gmm head), export and the device-side evaluations. Plain
# arrays in, plain numbers out; ``outputs`` are always the raw model vectors ``float (N, 3K)`` described above.

# The probability inside +-k sigma of a Gaussian, k = 1, 2, 3: the ideal coverage of a calibrated model.
IDEAL_COVERAGE: dict[str, float] = {str(k): math.erf(k / math.sqrt(2.0)) for k in (1, 2, 3)}
# A density mode counts as significant when its basin holds at least this much probability.
SIGNIFICANT_WEIGHT = 0.2
_GRID = np.linspace(-5.0, 5.0, 8001)  # steering grid for densities: 1.25e-3 steps, 16 per narrowest sigma


def _params(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``float (N, 3K)`` outputs -> (weights, means, sigmas), each ``float64 (N, K)``, parsed as :func:`split`."""
    v = np.asarray(outputs, dtype=np.float64)
    v = v.reshape(len(v), -1)
    if v.shape[1] == 0 or v.shape[1] % 3:
        raise ValueError(f"a gmm output has 3K values, got {v.shape[1]}")
    k = v.shape[1] // 3
    logits = v[:, :k] - v[:, :k].max(axis=1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(axis=1, keepdims=True)
    means = np.clip(v[:, k : 2 * k], -1.0, 1.0)
    sigmas = np.exp(np.clip(v[:, 2 * k :], LOG_SIGMA_MIN, LOG_SIGMA_MAX))
    return w, means, sigmas


def nll_many(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Batched :func:`nll`: ``outputs`` float (N, 3K) raw gmm vectors, ``targets`` float (N,) or (N, M) steering
    (M candidate labels per frame). Returns float64 of the targets' shape, nats; equal to :func:`nll` element by
    element."""
    w, mu, s = _params(outputs)
    t = np.asarray(targets, dtype=np.float64)
    one = t.ndim == 1
    t = t.reshape(len(w), -1)
    z = (t[:, :, None] - mu[:, None, :]) / s[:, None, :]
    log_p = np.log(w)[:, None, :] - 0.5 * z * z - np.log(s)[:, None, :] - 0.5 * math.log(2 * math.pi)
    top = log_p.max(axis=2, keepdims=True)
    out = -(top[..., 0] + np.log(np.exp(log_p - top).sum(axis=2)))
    return out[:, 0] if one else out


def _density(w: np.ndarray, means: np.ndarray, sigmas: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mixture density of one frame (``(K,)`` parameters) at points ``x`` ``(G,)`` -> ``(G,)``."""
    z = (x[:, None] - means[None, :]) / sigmas[None, :]
    return (w[None, :] * np.exp(-0.5 * z * z) / (sigmas[None, :] * math.sqrt(2 * math.pi))).sum(axis=1)


def hdr_level(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each frame, the probability mass of the mixture where its density is higher than at the target.

    ``outputs`` float (N, 3K) raw gmm vectors, ``targets`` float (N,) true steering. Returns float64 (N,) in
    [0, 1]: the smallest highest-density region that contains the target holds this much probability. For a
    single Gaussian it is the mass of mu +- |t - mu|, so ``level <= erf(k / sqrt 2)`` is exactly "the target lies
    within k sigma"; for a multimodal mixture (left or right at a junction) the region is a union of intervals
    and excludes the improbable middle, which a mean +- k std interval would not.
    """
    w, mu, s = _params(outputs)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if len(t) != len(w):
        raise ValueError(f"{len(w)} outputs but {len(t)} targets")
    dx = _GRID[1] - _GRID[0]
    out = np.empty(len(t))
    for i in range(len(t)):
        f = _density(w[i], mu[i], s[i], _GRID)
        ft = _density(w[i], mu[i], s[i], t[i : i + 1])[0]
        out[i] = min(1.0, float(f[f > ft].sum() * dx))
    return out


def coverage(outputs: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (1, 2, 3)) -> dict[str, float]:
    """Share of frames whose true steering lies inside the k-sigma region of the predicted mixture, k in ``ks``.

    The k-sigma region is the highest-density region holding ``erf(k / sqrt 2)`` of the probability (68.3 %,
    95.4 %, 99.7 %; see :func:`hdr_level`), so a calibrated model scores :data:`IDEAL_COVERAGE`. Returns
    ``{"1": share, "2": share, "3": share}``, shares in [0, 1] (NaN when there are no frames).
    """
    level = hdr_level(outputs, targets)
    return {str(k): (float((level <= math.erf(k / math.sqrt(2.0))).mean()) if len(level) else float("nan"))
            for k in ks}


@dataclass(frozen=True)
class Mode:
    """One mode of a mixture density: its location (steering units) and the probability of its basin."""

    mean: float
    weight: float


def _cdf(x: float, w: np.ndarray, mu: np.ndarray, s: np.ndarray) -> float:
    if x == -math.inf:
        return 0.0
    if x == math.inf:
        return 1.0
    return float(sum(wk * 0.5 * (1.0 + math.erf((x - m) / (sk * math.sqrt(2.0)))) for wk, m, sk in zip(w, mu, s)))


def modes(output: np.ndarray, grid_step: float = 0.005) -> tuple[Mode, ...]:
    """The modes of one frame's mixture density, heaviest first.

    ``output`` float (3K,) raw gmm vector. A mode is a local maximum of the density (found on a grid of
    ``grid_step`` over [-1.2, 1.2], where every mean lies); its ``weight`` is the probability between the
    density minima on either side (the outermost basins extend to infinity), so the weights sum to 1. Two
    components closer than their widths form one mode, as the density shows. ``weight`` is in [0, 1].
    """
    w, mu, s = (a[0] for a in _params(np.asarray(output).reshape(1, -1)))
    x = np.arange(-1.2, 1.2 + grid_step / 2, grid_step)
    f = _density(w, mu, s, x)
    # local maxima (plateaus count once), minima between them
    d = np.sign(np.diff(f))
    for i in range(1, len(d)):  # carry the last slope over flat stretches
        if d[i] == 0:
            d[i] = d[i - 1]
    peaks = [i + 1 for i in range(len(d) - 1) if d[i] > 0 and d[i + 1] < 0]
    if d[0] < 0:
        peaks.insert(0, 0)
    if d[-1] > 0:
        peaks.append(len(x) - 1)
    if not peaks:
        peaks = [int(np.argmax(f))]
    bounds = [-math.inf]
    for a, b in itertools.pairwise(peaks):
        bounds.append(float(x[a + int(np.argmin(f[a : b + 1]))]))
    bounds.append(math.inf)
    found = [Mode(float(x[p]), _cdf(bounds[j + 1], w, mu, s) - _cdf(bounds[j], w, mu, s))
             for j, p in enumerate(peaks)]
    return tuple(sorted(found, key=lambda m: -m.weight))


def significant_modes(output: np.ndarray, min_weight: float = SIGNIFICANT_WEIGHT) -> tuple[Mode, ...]:
    """The modes of ``output`` (float (3K,)) whose weight is at least ``min_weight``, heaviest first."""
    return tuple(m for m in modes(output) if m.weight >= min_weight)


def side(steering: float, neutral: float = 0.0, band: float = 0.05) -> str:
    """``"left"`` (below ``neutral - band``), ``"right"`` (above ``neutral + band``) or ``"straight"``."""
    if steering < neutral - band:
        return "left"
    if steering > neutral + band:
        return "right"
    return "straight"


def has_both_sides(found: tuple[Mode, ...], neutral: float = 0.0) -> bool:
    """True when ``found`` holds a mode left of ``neutral`` and another right of it (the two branches of a T)."""
    return any(m.mean < neutral for m in found) and any(m.mean > neutral for m in found)


DECISION_WINDOW = 0.5  # metres before a junction's turn-in point where its branches' steering already differs
# Bins of the branches' steering gap (steering units) for ``t_decision_by_separation``: two equal Gaussians show
# two density peaks only when their means are more than 2 sigma apart, and a compact model's sigma is about
# 0.075 (an unrouted navnet on 64000 frames), so below 0.15 two modes are out of its reach.
SEPARATION_EDGES = (0.15, 0.25)


def junction_metrics(outputs: np.ndarray, targets: np.ndarray, labels: Sequence[JunctionLabel], routed: bool,
                     neutral: float = 0.0, band: float = 0.05, min_weight: float = SIGNIFICANT_WEIGHT,
                     decision_window: float = DECISION_WINDOW) -> dict[str, object]:
    """The junction figures of a navigation model on N labelled frames.

    Args:
        outputs: float (N, 3K) raw gmm vectors. targets: float (N,) true steering (positive = right).
        labels: per frame its :class:`~edgecnn.junction.JunctionLabel` (kind ``""`` on plain road; the
            route's branch; the options, ``to_turn`` and each branch's steering where the data has them: data
            written before ``to_turn`` existed has no decision frames, so its decision figures are None).
        routed: the model sees the route: score the heaviest mode against the branch; else count modes.
        decision_window: metres before the turn-in point that count as the decision (see below).
        neutral: the route-neutral steering (the straight-on command), steering units. band: half-width of
            "straight" around it when judging a mode's side (:func:`side`).

    Returns (shares in [0, 1], None when no frame qualifies; counts are ints):

    - always: ``junction_frames``, ``road_frames``, ``road_one_mode_share`` (plain road frames with exactly one
      significant mode), ``mean_significant_modes`` at junctions and on road;
    - routed: ``route_mode_share``: of the junction frames where the branch is being taken (the true steering is
      on the branch's side, :func:`side`; ``route_mode_frames`` of them), the share whose heaviest mode is on
      that side too; ``route_mode_share_all`` the same over every junction frame (early in a junction zone the
      ideal driver still steers straight, so even a perfect model scores below 1 there); ``per_kind`` the
      decisive share per junction kind;
    - unrouted: ``t_two_sided_share``: of the T-junction frames where the ideal driver is turning (true steering
      off ``neutral`` by more than ``band``; ``t_turning_frames`` of them), the share with at least two
      significant modes (weight >= ``min_weight``) on different sides of ``neutral``; ``t_two_sided_share_all``
      the same over all ``t_frames``; and the decision figures: ``t_decision_frames``, the T-junction frames
      from ``decision_window`` m before the turn-in point up to it (the car still on the approach every branch
      shares, so camera and roads map are the same whichever branch the route takes, while the labelling
      driver already steers into its branch), and ``t_decision_share``, the share of them whose significant
      modes cover two of the junction's branches: where the frame's ``branch_steering`` is known, two
      significant modes each nearest a different branch's steering (for a T offering left and right: a mode
      each side of the midpoint of the two branches' steering, the frame's own "straight on", which a car off
      the lane centre shifts away from 0); where it is not, by the sign rule (left and right: a mode each side of
      ``neutral``; a branch ``straight``: modes judged by :func:`side`). ``t_decision_share_sign`` is the sign
      rule on every decision frame, ``t_decision_by_branch_steering`` how many were judged by the branches'
      steering, ``t_decision_separation`` the median gap (steering units) between the branches' steering there, and
      ``t_decision_by_separation`` the frames and share per gap bin (``"<0.15"``, ``"0.15-0.25"``, ``">=0.25"``,
      :data:`SEPARATION_EDGES`; frames judged by the branches' steering only).
      Frames past the turn-in point show the turn already taken, so one mode is right there: that is why the
      decision figure, not ``t_two_sided_share``, is the unrouted model's test.
    """
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    t = np.asarray(targets, dtype=np.float64).reshape(-1)
    if not (len(outputs) == len(t) == len(labels)):
        raise ValueError("outputs, targets and labels need one entry per frame")
    sig = [significant_modes(o, min_weight) for o in outputs]
    jn = [i for i, j in enumerate(labels) if j.kind]
    road = [i for i, j in enumerate(labels) if not j.kind]

    def share(idx: list[int], ok) -> float | None:
        return float(np.mean([bool(ok(i)) for i in idx])) if idx else None

    out: dict[str, object] = {
        "junction_frames": len(jn), "road_frames": len(road),
        "road_one_mode_share": share(road, lambda i: len(sig[i]) == 1),
        "mean_significant_modes_junction": float(np.mean([len(sig[i]) for i in jn])) if jn else None,
        "mean_significant_modes_road": float(np.mean([len(sig[i]) for i in road])) if road else None,
        "significant_weight": min_weight,
        "neutral_steering": neutral,
    }
    if routed:
        def on_branch(i: int) -> bool:
            return side(modes(outputs[i])[0].mean, neutral, band) == labels[i].branch

        decisive = [i for i in jn if side(t[i], neutral, band) == labels[i].branch]
        out["route_mode_frames"] = len(decisive)
        out["route_mode_share"] = share(decisive, on_branch)
        out["route_mode_share_all"] = share(jn, on_branch)
        out["per_kind"] = {k: {"frames": len(idx), "route_mode_share": share(idx, on_branch)}
                           for k in sorted({labels[i].kind for i in decisive})
                           for idx in [[i for i in decisive if labels[i].kind == k]]}
        return out
    tee = [i for i in jn if labels[i].kind == "T"]
    turning = [i for i in tee if side(t[i], neutral, band) != "straight"]
    out["t_frames"] = len(tee)
    out["t_turning_frames"] = len(turning)
    out["t_two_sided_share"] = share(turning, lambda i: has_both_sides(sig[i], neutral))
    out["t_two_sided_share_all"] = share(tee, lambda i: has_both_sides(sig[i], neutral))
    out["decision_window_m"] = decision_window
    out.update(_decision_figures([labels[i] for i in tee], [sig[i] for i in tee], decision_window, neutral, band))
    return out


def _decision_figures(labels: list[JunctionLabel], sig: list[tuple[Mode, ...]], window: float, neutral: float,
                      band: float) -> dict[str, object]:
    """The unrouted decision figures of :func:`junction_metrics` over T-junction frames (their labels and
    significant modes)."""
    decide = [i for i, j in enumerate(labels) if j.to_turn is not None and 0.0 <= j.to_turn <= window]
    known = {i: c for i in decide for c in [labels[i].commands()] if len(c) >= 2 and labels[i].offered <= set(c)}

    def by_sign(i: int) -> bool:
        offered = labels[i].offered
        if offered == {"left", "right"}:
            return has_both_sides(sig[i], neutral)
        return len({side(m.mean, neutral, band) for m in sig[i]} & offered) >= 2

    def covers_two(i: int) -> bool:
        if i not in known:
            return by_sign(i)
        cmds = {b: v for b, v in known[i].items() if b in labels[i].offered}
        return len({min(cmds, key=lambda b: abs(cmds[b] - m.mean)) for m in sig[i]}) >= 2

    def share(ok) -> float | None:
        return float(np.mean([bool(ok(i)) for i in decide])) if decide else None

    gap = {i: max(c.values()) - min(c.values()) for i, c in known.items()}
    edges = (-math.inf, *SEPARATION_EDGES, math.inf)
    by_gap = {}
    for lo, hi in itertools.pairwise(edges):
        idx = [i for i, g in gap.items() if lo <= g < hi]
        name = f"<{hi:g}" if lo == -math.inf else (f">={lo:g}" if hi == math.inf else f"{lo:g}-{hi:g}")
        by_gap[name] = {"frames": len(idx),
                        "share": float(np.mean([covers_two(i) for i in idx])) if idx else None}
    return {"t_decision_frames": len(decide), "t_decision_share": share(covers_two),
            "t_decision_share_sign": share(by_sign), "t_decision_by_branch_steering": len(known),
            "t_decision_separation": float(np.median(list(gap.values()))) if gap else None,
            "t_decision_by_separation": by_gap}
