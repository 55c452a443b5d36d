"""Donkey Car pilots: run the ``.tflite`` models donkeycar 4.x/5.x exports, as donkeycar itself reads them.

Donkeycar's ``KerasLinear`` and ``KerasCategorical`` pilots (``donkeycar/parts/keras.py``) have one input named
``img_in``: an RGB image, ``uint8`` pixels scaled to [0, 1] (``normalize_image``: ``pixel * (1 / 255)``). Their
outputs, in the order of the model's ``serving_default`` signature (the order donkeycar's ``TfLite`` interpreter
reads them, *not* the interpreter's output-tensor order, which differs in Keras 3 exports):

- ``linear`` (``n_outputs0``, ``n_outputs1``; ``output_0``, ``output_1`` in Keras 3 exports): steering and
  throttle, one float each, unbounded (edgecnn clips them to [-1, 1] like any command);
- ``categorical`` (``angle_out``, ``throttle_out``): softmax over 15 steering bins and N throttle bins (20 in
  donkeycar's model). Decoded as ``donkeycar.utils.linear_unbin``: steering ``argmax * 2 / 14 - 1`` (bins -1,
  -0.857, ..., 1), throttle ``argmax * R / N`` with ``R`` = ``MODEL_CATEGORICAL_MAX_THROTTLE_RANGE`` (0.5 by
  default), so throttle takes N values in [0, R).

Donkeycar's steering convention is edgecnn's: ``user/angle`` positive = right.

Any other steering .tflite without an edgecnn contract runs when the user says how to read it
(:class:`SteeringOptions`: ``--input-range``, which output is steering, the range it spans), as ``classify`` does
for third-party classifiers.

:func:`detect_pilot` recognises a pilot by itself (the input ``img_in`` and the outputs' shapes);
:func:`open_pilot` returns a :class:`PilotPredictor`, a :class:`~edgecnn.runtime.predictor.Predictor` whose
:meth:`~PilotPredictor.predict` returns ``[steering, throttle]`` under a steering contract, so ``steer`` and
``replay`` run it like an edgecnn model (same preprocessing, same fail-safe).

Example::

    pilot = open_pilot("mypilot.tflite")            # or kind="donkey-categorical"
    steering, throttle = pilot.predict(frame_bgr)   # frame: uint8 HxWx3 BGR
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract, normalisation_for_range
from edgecnn.errors import ModelError
from edgecnn.runtime.adapters import TensorSpec, get_output, input_specs, output_specs
from edgecnn.runtime.interpreter import make_interpreter, read_model_bytes
from edgecnn.runtime.metadata import read_contract
from edgecnn.runtime.predictor import Predictor, StageTimes

KINDS = ("donkey-linear", "donkey-categorical")
INPUT_NAME = "img_in"
STEERING_BINS = 15  # donkeycar's linear_unbin for the angle is hard-wired to N=15
DEFAULT_THROTTLE_RANGE = 0.5  # donkeycar's MODEL_CATEGORICAL_MAX_THROTTLE_RANGE default


@dataclass(frozen=True)
class PilotSpec:
    """How to read a donkeycar pilot.

    Attributes:
        kind: ``"donkey-linear"`` or ``"donkey-categorical"``.
        input: spec of the image input ``(1, h, w, 3)``.
        steering: spec of the steering output tensor (one value, or 15 bins).
        throttle: spec of the throttle output (one value, or N bins), or None when the model has none.
        throttle_range: categorical only: throttle bins span [0, throttle_range).
        steering_range: third-party only: the values the steering output spans, ``(at full left, at full right)``,
            mapped linearly onto [-1, 1] (``(1, -1)`` for a model whose positive steering is left).
        contract: third-party only: how to feed it (from the user's options).
    """

    kind: str
    input: TensorSpec
    steering: TensorSpec
    throttle: TensorSpec | None
    throttle_range: float = DEFAULT_THROTTLE_RANGE
    steering_range: tuple[float, float] = (-1.0, 1.0)
    contract: Contract | None = None

    @property
    def throttle_bins(self) -> int:
        return 0 if self.throttle is None else _width(self.throttle)


def _width(spec: TensorSpec) -> int:
    return int(np.prod(spec.shape[1:])) if len(spec.shape) > 1 else int(np.prod(spec.shape))


@dataclass(frozen=True)
class Signature:
    """A model's inputs and outputs as its ``serving_default`` signature names and orders them.

    Attributes:
        input_name: the signature's name of the (first) input (``img_in`` for a donkeycar pilot).
        inputs: input specs.
        outputs: output specs in signature order.
        output_names: the signature's output names in that order (the tensor names when there is no signature).
    """

    input_name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    output_names: list[str]


def signature_outputs(model: bytes) -> Signature:
    """A model's :class:`Signature`.

    Outputs follow the ``serving_default`` signature when the model has one (what donkeycar reads), else the
    interpreter's output order. Read from a throwaway interpreter: creating a signature runner pins the
    interpreter's buffers, after which a plain ``invoke()`` on it fails.
    """
    probe = make_interpreter(model, threads=1)
    inputs, outputs = input_specs(probe), output_specs(probe)
    by_index = {o.index: o for o in outputs}
    try:
        signatures = probe.get_signature_list()
    except (AttributeError, ValueError, RuntimeError):
        signatures = {}
    if not signatures:
        return Signature(inputs[0].name if inputs else "", inputs, outputs, [o.name for o in outputs])
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    runner = probe.get_signature_runner(key)
    in_details, out_details = runner.get_input_details(), runner.get_output_details()
    names = [n for n in signatures[key].get("outputs", []) if n in out_details and out_details[n]["index"] in by_index]
    ordered = [by_index[out_details[n]["index"]] for n in names]
    if len(ordered) != len(outputs):
        ordered, names = outputs, [o.name for o in outputs]
    in_name = next(iter(in_details), inputs[0].name if inputs else "")
    return Signature(in_name, inputs, ordered, names)


def detect_pilot(model: bytes, kind: str | None = None, throttle_range: float = DEFAULT_THROTTLE_RANGE
                 ) -> PilotSpec | None:
    """The :class:`PilotSpec` of a donkeycar pilot, or None when ``model`` is not one (and ``kind`` is None).

    With ``kind`` given (``--pilot``), the model must fit that kind: ModelError (one line) otherwise, for
    instance a categorical pilot whose steering head has another bin count than donkeycar's 15.
    """
    if kind is not None and kind not in KINDS:
        raise ModelError(f"--pilot must be one of {', '.join(KINDS)}, got: {kind!r}")
    sig = signature_outputs(model)
    in_name, inputs, outputs = sig.input_name, sig.inputs, sig.outputs
    named = len(inputs) == 1 and (in_name == INPUT_NAME or INPUT_NAME in inputs[0].name)
    if kind is None and not named:
        return None
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[-1] != 3:
        if kind is None:
            return None
        raise ModelError(f"a {kind} pilot has one RGB image input (1, h, w, 3); this model's inputs are "
                         f"{[i.shape for i in inputs]}")
    widths = [_width(o) for o in outputs]
    guess = None
    if widths in ([1], [1, 1]):
        guess = "donkey-linear"
    elif len(widths) == 2 and min(widths) > 1:
        guess = "donkey-categorical"
    kind = kind or guess
    if kind == "donkey-linear":
        if widths not in ([1], [1, 1]):
            raise ModelError(f"a donkey-linear pilot outputs steering and throttle, one value each; this model "
                             f"outputs {widths} values")
        return PilotSpec(kind, inputs[0], outputs[0], outputs[1] if len(outputs) > 1 else None)
    if kind == "donkey-categorical":
        if len(widths) != 2 or widths[0] != STEERING_BINS or widths[1] < 2:
            raise ModelError(f"a donkey-categorical pilot outputs {STEERING_BINS} steering bins and N throttle "
                             f"bins (donkeycar's linear_unbin); this model's outputs have {widths} bins: an "
                             "unknown bin count, refused")
        if not 0 < throttle_range <= 1:
            raise ModelError(f"categorical throttle range must be in (0, 1], got: {throttle_range}")
        return PilotSpec(kind, inputs[0], outputs[0], outputs[1], throttle_range)
    raise ModelError(f"input {INPUT_NAME!r} looks like a donkeycar pilot, but outputs of {widths} values are "
                     f"neither linear nor categorical; name the kind with --pilot {'|'.join(KINDS)}")


@dataclass(frozen=True)
class SteeringOptions:
    """What the user says about a third-party steering model (no edgecnn contract, not a donkeycar pilot), as
    ``classify`` takes ``--input-range``/``--labels`` for a third-party classifier.

    Attributes:
        input_range: ``"0,1"``, ``"-1,1"`` or ``"0,255"``: what the model wants its pixels scaled to.
        steering_output: which output is steering: its index in the signature's order (``"0"``), or its name (a
            signature output name or a tensor name); None: the first.
        steering_range: ``(value at full left, value at full right)`` of that output; mapped onto [-1, 1]
            (positive = right), so ``(1, -1)`` flips a positive-is-left model and ``(-0.5, 0.5)`` widens a model
            trained on half-range labels.
        color_order: ``"RGB"`` or ``"BGR"``.
    """

    input_range: str
    steering_output: str | None = None
    steering_range: tuple[float, float] = (-1.0, 1.0)
    color_order: str = "RGB"


def third_party_spec(model: bytes, options: SteeringOptions) -> PilotSpec:
    """The :class:`PilotSpec` for a third-party steering model read as ``options`` say; ModelError (one line)
    when the output does not exist or the options do not fit the model."""
    sig = signature_outputs(model)
    inputs, outputs = sig.inputs, sig.outputs
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[-1] not in (1, 3):
        raise ModelError(f"a steering model needs one image input (1, h, w, c); this model's inputs are "
                         f"{[i.shape for i in inputs]}")
    lo, hi = (float(v) for v in options.steering_range)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        raise ModelError(f"--steering-range needs two different numbers (full left, full right), got: {lo:g},{hi:g}")
    choice = options.steering_output
    if choice is None:
        out = outputs[0]
    elif choice.isdigit() and int(choice) < len(outputs):
        out = outputs[int(choice)]
    else:
        match = [o for o, n in zip(outputs, sig.output_names) if choice in (n, o.name)]
        if not match:
            raise ModelError(f"no output {choice!r}; the model's outputs are {', '.join(sig.output_names)} (or "
                             f"give an index 0..{len(outputs) - 1})")
        out = match[0]
    if _width(out) != 1:
        raise ModelError(f"output {choice or 0!r} has {_width(out)} values; steering is one value (a categorical "
                         "donkeycar pilot: --pilot donkey-categorical)")
    _, h, w, c = inputs[0].shape
    mean, std = normalisation_for_range(options.input_range, c)
    contract = Contract(task="steer", input_height=int(h), input_width=int(w), channels=int(c),
                        color_order=options.color_order, mean=mean, std=std, head="regression",
                        arch="third-party", extra={"pilot": "third-party"})
    return PilotSpec("third-party", inputs[0], out, None, steering_range=(lo, hi), contract=contract)


def pilot_contract(spec: PilotSpec) -> Contract:
    """The steering contract a donkeycar pilot is run with: RGB in [0, 1], steering [-1, 1] and throttle."""
    if spec.contract is not None:
        return spec.contract
    _, h, w, _ = spec.input.shape
    return Contract(task="steer", input_height=int(h), input_width=int(w), channels=3, color_order="RGB",
                    mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), head="regression",
                    throttle=spec.throttle is not None, arch=spec.kind, extra={"pilot": spec.kind})


def unbin_steering(bins: np.ndarray) -> float:
    """15 steering bins -> steering, exactly donkeycar's ``linear_unbin(arr)``: ``argmax * (2 / 14) - 1``."""
    return float(np.argmax(bins) * (2.0 / (STEERING_BINS - 1)) - 1.0)


def unbin_throttle(bins: np.ndarray, throttle_range: float = DEFAULT_THROTTLE_RANGE) -> float:
    """N throttle bins -> throttle, exactly donkeycar's ``linear_unbin(arr, N=N, offset=0.0, R=range)``."""
    return float(np.argmax(bins) * (throttle_range / (len(bins) + 0.0)) + 0.0)


class PilotPredictor(Predictor):
    """A donkeycar pilot as a :class:`Predictor`: :meth:`predict` returns ``float32 [steering, throttle]``
    (or ``[steering]`` without a throttle output) instead of the first output tensor.

    Args:
        model: path or bytes of the .tflite.
        kind: ``"donkey-linear"``, ``"donkey-categorical"`` or None to recognise it (ModelError when it is not
            a donkeycar pilot).
        threads, delegate: as for :class:`Predictor`.
        throttle_range: categorical pilots' throttle range (donkeycar's MODEL_CATEGORICAL_MAX_THROTTLE_RANGE).
    """

    def __init__(self, model: str | os.PathLike | bytes, kind: str | None = None, threads: int | None = None,
                 delegate: str | None = None, throttle_range: float = DEFAULT_THROTTLE_RANGE,
                 options: SteeringOptions | None = None) -> None:
        data = read_model_bytes(model)
        spec = third_party_spec(data, options) if options is not None else detect_pilot(data, kind, throttle_range)
        if spec is None:
            raise ModelError(f"{_name(model)} is not a donkeycar pilot (no input named {INPUT_NAME!r}); name the "
                             f"kind with --pilot {'|'.join(KINDS)} if it is one")
        super().__init__(data, threads=threads, delegate=delegate, contract=pilot_contract(spec))
        if not isinstance(model, (bytes, bytearray)):
            self.name = os.path.basename(_name(model))
        self.pilot = spec

    def decode(self) -> np.ndarray:
        """The last invoke's outputs -> ``float32 [steering, throttle]`` (donkeycar's ``interpreter_to_output``)."""
        spec = self.pilot
        steer = get_output(self.interpreter, spec.steering)
        thr = None if spec.throttle is None else get_output(self.interpreter, spec.throttle)
        if spec.kind == "donkey-categorical":
            values = [unbin_steering(steer), unbin_throttle(thr, spec.throttle_range)]
        elif spec.kind == "third-party":
            lo, hi = spec.steering_range
            values = [2.0 * (float(steer[0]) - lo) / (hi - lo) - 1.0]
        else:
            values = [float(steer[0])] + ([] if thr is None else [float(thr[0])])
        return np.asarray(values, np.float32)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        super().invoke(x)
        return self.decode()

    def predict(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Frame (``uint8 HxWx3 BGR``) -> ``float32 [steering, throttle]``, steering positive = right."""
        super().predict(frame_bgr)
        t0 = time.perf_counter()
        out = self.decode()
        t = self.last_timings
        if t is not None:
            self.last_timings = StageTimes(t.preprocess_ms, t.invoke_ms,
                                           t.postprocess_ms + (time.perf_counter() - t0) * 1e3)
        return out


def _name(model: Any) -> str:
    return "model" if isinstance(model, (bytes, bytearray)) else os.fspath(model)


def open_pilot(model: str | os.PathLike | bytes, kind: str | None = None, threads: int | None = None,
               delegate: str | None = None, throttle_range: float = DEFAULT_THROTTLE_RANGE) -> PilotPredictor:
    """A :class:`PilotPredictor` (see there)."""
    return PilotPredictor(model, kind, threads, delegate, throttle_range)


def model_kind(model: bytes) -> str:
    """What a model is, for ``inspect``: ``"edgecnn classify"``, ``"edgecnn steer"``, ``"donkey-linear pilot"``,
    ``"donkey-categorical pilot"`` or ``"third-party (no edgecnn contract)"``."""
    contract = read_contract(model)
    if contract is not None:
        return f"edgecnn {contract.task} ({contract.head} head)"
    try:
        spec = detect_pilot(model)
    except ModelError as exc:
        return f"not a usable donkeycar pilot: {exc}"
    if spec is not None:
        return f"{spec.kind} pilot (donkeycar; input {INPUT_NAME}, RGB in [0, 1])"
    return "third-party (no edgecnn contract): classify needs --input-range/--labels"


def load_steering_model(model: str | os.PathLike | bytes, pilot: str | None = None, threads: int | None = None,
                        delegate: str | None = None, throttle_range: float = DEFAULT_THROTTLE_RANGE,
                        command: str = "steer", options: SteeringOptions | None = None) -> Predictor:
    """A Predictor for any steering model: an edgecnn steering model (its contract), a donkeycar pilot
    (recognised by itself, or named with ``pilot``), or a third-party model read as ``options`` say (for a model
    without an edgecnn contract). ModelError (one line) for a classifier or anything else.

    ``command`` names the command in messages (``steer``, ``replay``).
    """
    data = read_model_bytes(model)
    name = _name(model)
    contract = read_contract(data)
    if options is not None and contract is None and pilot is None:
        return PilotPredictor(data if isinstance(model, (bytes, bytearray)) else model, None, threads, delegate,
                              throttle_range, options)
    if pilot is not None:
        return PilotPredictor(data if isinstance(model, (bytes, bytearray)) else model, pilot, threads, delegate,
                              throttle_range)
    if contract is not None:
        if contract.task != "steer":
            raise ModelError(f"{name} is a {contract.task!r} model (its contract says so); {command} needs a "
                             "steering model (train with --task steer, or a donkeycar pilot)")
        p = Predictor(data, threads=threads, delegate=delegate, contract=contract)
        if not isinstance(model, (bytes, bytearray)):
            p.name = os.path.basename(name)
        return p
    if detect_pilot(data, None, throttle_range) is not None:
        return PilotPredictor(data if isinstance(model, (bytes, bytearray)) else model, None, threads, delegate,
                              throttle_range)
    raise ModelError(f"{name} has no edgecnn contract and is not a donkeycar pilot (no input named "
                     f"{INPUT_NAME!r}); {command} needs a steering model exported by edgecnn, a donkeycar pilot "
                     f"(--pilot {'|'.join(KINDS)}), or say how to read it: --input-range 0,1 [--steering-output "
                     "NAME|INDEX] [--steering-range LEFT,RIGHT]")


def steering_kind(model: str | os.PathLike | bytes) -> str | None:
    """``"edgecnn steer"``, ``"donkey-linear"`` or ``"donkey-categorical"`` when ``model`` is a steering model,
    else None (``classify`` refuses the first three with one line)."""
    data = read_model_bytes(model)
    contract = read_contract(data)
    if contract is not None:
        return "edgecnn steer" if contract.task == "steer" else None
    try:
        spec = detect_pilot(data)
    except ModelError:
        return "donkeycar pilot"
    return None if spec is None else spec.kind


def parse_steering_range(text: str) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)`` (``--steering-range LEFT,RIGHT``); ModelError (one line) otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ModelError(f"--steering-range takes two numbers LEFT,RIGHT (e.g. -1,1 or 1,-1), got: {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        raise ModelError(f"--steering-range needs two different finite numbers, got: {text!r}")
    return lo, hi
