"""A .tflite steering model as a policy for the simulator and for replay: frame in, steering out, through the
device runtime (no TensorFlow).

- :class:`ModelPolicy`: an image-only steering model (task ``steer``): ``policy(frame)``.
- :class:`NavModelPolicy`: a route-conditioned model (task ``navigate``): ``policy(frame, map_raster)``.
- :func:`load_policy`: either, from what the model's contract says.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import ModelError
from edgecnn.mixture import split
from edgecnn.navmap import MapSpec, PoseNoise
from edgecnn.outputs import decode_steering
from edgecnn.runtime.metadata import read_contract
from edgecnn.runtime.predictor import Predictor

POLICY_TASKS = ("steer", "navigate")
NAV_STEERING = ("auto", "branch", "mean")  # how NavModelPolicy turns the mixture into one command


def _read_model(model: str | os.PathLike) -> tuple[str, bytes, Contract]:
    """(path, bytes, contract) of an edgecnn model file; ModelError (one line) when missing or without contract."""
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise ModelError(f"no model at {path}; pass the .tflite exported from a steering or navigate run")
    with open(path, "rb") as f:
        data = f.read()
    contract = read_contract(data)
    if contract is None:
        raise ModelError(f"{path} has no edgecnn contract; export it with edgecnn (it records the steering head)")
    return path, data, contract


def model_task(model: str | os.PathLike) -> str:
    """The task recorded in an edgecnn model's contract (``"steer"``, ``"navigate"``, ...); ModelError when the
    file is missing or has no contract."""
    return _read_model(model)[2].task


class ModelPolicy:
    """``policy(frame) -> (steering, uncertainty | None)`` backed by :class:`edgecnn.runtime.predictor.Predictor`.

    The model's embedded contract says how to prepare frames and what its output means; outputs are decoded by
    :func:`edgecnn.outputs.decode_steering` (regression: the first value; gmm: the mixture's mean steering and,
    as the uncertainty, its standard deviation). A NaN steering becomes "straight ahead" in the simulator.

    Attributes:
        contract: the model's contract.
        invoke_ms: list of per-frame model times (preprocess + invoke + postprocess), milliseconds.

    Raises ModelError when the model is missing, broken, has no contract or is not a steering model.
    """

    uses_map = False

    def __init__(self, model: str | os.PathLike, threads: int | None = 1):
        path, data, contract = _read_model(model)
        if contract.task != "steer":
            hint = " (a navigate model: use NavModelPolicy, or load_policy)" if contract.task == "navigate" else ""
            raise ModelError(f"{path} is a {contract.task!r} model; simulate needs a steering model (task 'steer'){hint}")
        self.predictor = Predictor(data, threads=threads, contract=contract)
        self.contract = contract
        self.invoke_ms: list[float] = []

    def _timed(self) -> None:
        t = self.predictor.last_timings
        if t is not None:
            self.invoke_ms.append(t.preprocess_ms + t.invoke_ms + t.postprocess_ms)

    def __call__(self, frame: np.ndarray) -> tuple[float, float | None]:
        out = self.predictor.predict(frame)
        self._timed()
        # The shared decoder, so simulate reads a gmm head or a throttle column exactly as the live loop does.
        decoded = decode_steering(out[None], self.contract)
        std = None if decoded.std is None else float(decoded.std[0])
        return float(decoded.steering[0]), std


_GRID = np.linspace(-1.2, 1.2, 481)  # steering grid for the density (every component mean lies in [-1, 1])


def branch_steering(output: np.ndarray, lo: float = -1.0, hi: float = 1.0) -> tuple[float, float]:
    """(steering, std) to drive with from a navigate model's gmm vector ``output`` float (3K,).

    The steering is the mean of the mixture restricted to the basin of its heaviest density mode (the stretch
    between the density minima either side of that mode, as :func:`edgecnn.mixture.modes` delimits modes):
    with one mode (a plain road, or a routed model sure of its branch) that is the mixture mean; with two (an
    unrouted model at a T: left or right) it is the heavier branch, never the average of the two, which is
    "straight", the one wrong answer. Clipped to ``[lo, hi]``. NaN in, NaN out (the simulator then steers
    straight). The std is the whole mixture's (its uncertainty), steering units.
    """
    v = np.asarray(output, np.float64).reshape(-1)
    if not np.all(np.isfinite(v)):
        return float("nan"), float("nan")
    m = split(v)
    z = (_GRID[:, None] - m.means[None, :]) / m.sigmas[None, :]
    f = (m.weights / m.sigmas * np.exp(-0.5 * z * z)).sum(1)
    d = np.diff(f)
    peaks = (np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0)) + 1).tolist()
    if len(peaks) <= 1:
        return float(np.clip(m.mean, lo, hi)), m.std
    # basins: split at the density minimum between consecutive peaks; keep the one holding the most mass
    cuts = [0] + [a + int(np.argmin(f[a : b + 1])) for a, b in itertools.pairwise(peaks)] + [len(f)]
    mass = [f[a:b].sum() for a, b in itertools.pairwise(cuts)]
    k = int(np.argmax(mass))
    a, b = cuts[k], cuts[k + 1]
    steer = float((_GRID[a:b] * f[a:b]).sum() / max(f[a:b].sum(), 1e-300))
    return float(np.clip(steer, lo, hi)), m.std


class NavModelPolicy:
    """``policy(frame, map_raster) -> (steering, uncertainty)`` for a route-conditioned model (task ``navigate``).

    ``frame`` uint8 HxWx3 BGR; ``map_raster`` uint8 (S, S, C) 0/255 from :func:`edgecnn.navmap.rasterise` with
    :attr:`map_spec`. ``steering`` says how the mixture becomes one command: ``"mean"``, the mixture mean by
    :func:`edgecnn.outputs.decode_steering` (what ``steer --route`` drives with), or ``"branch"``, the heavier
    branch (:func:`branch_steering`); ``"auto"`` (default) = ``"mean"`` for a routed model (its mixture is the
    planned branch, and the mean is smoother than a mode that can hop between near-equal components; measured
    on the preliminary routed int8 over 121 junctions: 0.942 vs 0.917) and ``"branch"`` for an unrouted one
    (left-or-right averages to straight, the one wrong answer).

    Attributes:
        contract: the model's contract; map_spec: the raster the model expects (from its contract);
        pose_noise: the pose errors it was trained with (the simulator's default);
        routed: True when the map holds the route channel. steering: the decoder in use ("mean" or "branch").
        invoke_ms: per-frame model times (preprocess + invoke + postprocess), milliseconds.

    Raises ModelError when the model is missing, broken, has no contract or is not a navigate model.
    """

    uses_map = True

    def __init__(self, model: str | os.PathLike, threads: int | None = 1, steering: str = "auto"):
        if steering not in NAV_STEERING:
            raise ValueError(f"steering must be one of {NAV_STEERING}, got: {steering!r}")
        self.steering = steering
        path, data, contract = _read_model(model)
        if contract.task != "navigate":
            raise ModelError(f"{path} is a {contract.task!r} model, not a route-conditioned one (task 'navigate')")
        if contract.head != "gmm":
            raise ModelError(f"{path}: a navigate model with a {contract.head!r} head; expected 'gmm'")
        try:
            spec, noise = contract.map_spec, contract.pose_noise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: its contract's map description is malformed ({exc})") from None
        if spec is None or noise is None:
            raise ModelError(f"{path}: a navigate contract without its map description; re-export the model")
        self.map_spec: MapSpec = spec
        self.pose_noise: PoseNoise = noise
        self.routed = bool(contract.map.get("routed", spec.routed))
        if self.steering == "auto":
            self.steering = "mean" if self.routed else "branch"
        self.predictor = Predictor(data, threads=threads, contract=contract)
        self.contract = contract
        self.invoke_ms: list[float] = []
        self._range = contract.steering_range

    def __call__(self, frame: np.ndarray, map_raster: np.ndarray) -> tuple[float, float | None]:
        out = self.predictor.predict(frame, map_raster)
        t = self.predictor.last_timings
        if t is not None:
            self.invoke_ms.append(t.preprocess_ms + t.invoke_ms + t.postprocess_ms)
        if self.steering == "mean":  # the shared decoder, as `steer --route` reads the same model
            decoded = decode_steering(out[None], self.contract)
            return float(decoded.steering[0]), float(decoded.std[0])
        return branch_steering(out, *self._range)


def load_policy(model: str | os.PathLike, threads: int | None = 1,
                nav_steering: str = "auto") -> ModelPolicy | NavModelPolicy:
    """The policy a model's contract calls for: :class:`NavModelPolicy` for ``navigate`` (with ``nav_steering``
    as its ``steering``), :class:`ModelPolicy` for ``steer``; ModelError (one line) for anything else (a
    classifier, a segmenter, no contract, no file)."""
    path, _, contract = _read_model(model)
    if contract.task == "navigate":
        return NavModelPolicy(path, threads=threads, steering=nav_steering)
    if contract.task == "steer":
        return ModelPolicy(path, threads=threads)
    raise ModelError(f"{path} is a {contract.task!r} model; simulate needs a steering model (task steer or "
                     "navigate)")
