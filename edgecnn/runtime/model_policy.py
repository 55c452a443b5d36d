"""A .tflite steering model as a policy for the simulator and for replay: frame in, steering out, through the
device runtime (no TensorFlow)."""

from __future__ import annotations

import os

import numpy as np

from edgecnn.errors import ModelError
from edgecnn.outputs import decode_steering
from edgecnn.runtime.metadata import read_contract
from edgecnn.runtime.predictor import Predictor


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

    def __init__(self, model: str | os.PathLike, threads: int | None = 1):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ModelError(f"no model at {path}; pass the .tflite exported from a steering run")
        with open(path, "rb") as f:
            data = f.read()
        contract = read_contract(data)
        if contract is None:
            raise ModelError(f"{path} has no edgecnn contract; export it with edgecnn (it records the steering head)")
        if contract.task != "steer":
            raise ModelError(f"{path} is a {contract.task!r} model; simulate needs a steering model (task 'steer')")
        self.predictor = Predictor(data, threads=threads, contract=contract)
        self.contract = contract
        self.invoke_ms: list[float] = []

    def __call__(self, frame: np.ndarray) -> tuple[float, float | None]:
        out = self.predictor.predict(frame)
        t = self.predictor.last_timings
        if t is not None:
            self.invoke_ms.append(t.preprocess_ms + t.invoke_ms + t.postprocess_ms)
        # The shared decoder, so simulate reads a gmm head or a throttle column exactly as the live loop does.
        decoded = decode_steering(out[None], self.contract)
        std = None if decoded.std is None else float(decoded.std[0])
        return float(decoded.steering[0]), std
