"""A loaded model that turns a camera frame into its real-valued output vector.

:class:`Predictor` is the device-side unit that ``classify``, ``steer`` and ``simulate`` share: preprocessing
from the model's contract (the one implementation in :mod:`edgecnn.preprocess`), quantization of the input with
the tensor's own scale and zero point, invoke, and dequantization of the output. Each call records how long
each stage took.

:meth:`Predictor.predict` takes the fast, exact path: resize and colour order into reused buffers, then one
table lookup from ``uint8`` pixels straight to the input tensor's dtype (:func:`~edgecnn.runtime.adapters.
input_table`), written in place into the interpreter's input tensor. It gives the same bytes as the reference
path (:meth:`Predictor.prepare`: float normalisation, then quantization), which stays for ``compare`` and tests.

Two-input models (task ``navigate``: a camera frame and a map raster) have inputs named ``image`` and ``map``,
found by name (the signature's input name, or the tensor whose name contains ``map``), never by position (the
converter lists ``map`` first). The map raster (``uint8`` 0/255 from :func:`edgecnn.navmap.rasterise`) goes the
same exact table path: ``raster / 255`` quantized with the map tensor's own scale and zero point, one lookup.

Example::

    p = Predictor("model_int8.tflite", threads=1)
    scores = p.predict(frame)            # frame: uint8 HxWx3 BGR -> float32 (num_outputs,)
    p.contract.labels[int(scores.argmax())], p.last_timings.invoke_ms

    nav = Predictor("navigate_int8.tflite")
    raster = rasterise(network, route, pose, nav.map_spec)   # uint8 (S, S, C), 0/255
    mixture = nav.predict(frame, raster)

For a third-party model without an edgecnn contract, build one with :func:`contract_for_model` from what the
user says (labels file, normalisation, colour order).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import MAP_INPUT, Contract, normalisation_for_range
from edgecnn.errors import ModelError
from edgecnn.labels import read_labels
from edgecnn.navmap import MapSpec
from edgecnn.preprocess import Scratch, prepare, to_model_pixels
from edgecnn.runtime.adapters import (
    TensorSpec,
    apply_table,
    get_output,
    input_specs,
    input_table,
    output_specs,
    quantize,
    set_input,
)
from edgecnn.runtime.interpreter import make_interpreter, read_model_bytes
from edgecnn.runtime.metadata import read_contract


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent in each stage of one :meth:`Predictor.predict` call: ``preprocess`` (resize, colour
    order, table lookup into the input tensor), ``invoke``, ``postprocess`` (reading and dequantizing the output)."""

    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float


@dataclass(frozen=True)
class ContractOptions:
    """What the user says about a model that has no edgecnn contract (or to override parts of one).

    Attributes:
        labels: path to a labels file (Coral ``index label`` lines or one label per line), or None.
        mean, std: per-channel normalisation ``x = (pixel - mean) / std`` (pixel in 0..255), or None.
        input_range: ``"0,255"``, ``"0,1"`` or ``"-1,1"`` (shorthand for mean/std), or None.
        color_order: ``"RGB"`` or ``"BGR"``, or None.
    """

    labels: str | os.PathLike | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    input_range: str | None = None
    color_order: str | None = None


def _labels_tuple(path: str | os.PathLike, num_outputs: int) -> tuple[str, ...]:
    mapping = read_labels(path)
    if max(mapping) >= num_outputs:
        raise ModelError(
            f"labels file {path} has index {max(mapping)} but the model has only {num_outputs} outputs; "
            "is it the right labels file?"
        )
    return tuple(mapping.get(i, str(i)) for i in range(num_outputs))


def contract_for_model(
    model: bytes, input_spec: TensorSpec, num_outputs: int, options: ContractOptions | None = None
) -> Contract:
    """The contract to run ``model`` with: its embedded one, or one built from ``options``, options winning.

    Without a contract and without normalisation options, a uint8-quantized input is fed the raw pixel
    (mean = zero point, std = 1 / scale, the Coral convention: the quantized input equals the 0..255 pixel); a
    float or int8 input needs ``--input-range`` or ``--mean/--std`` (ModelError says so). Labels default to
    the output indexes as strings.
    """
    options = options or ContractOptions()
    embedded = read_contract(model)
    if len(input_spec.shape) != 4:
        raise ModelError(f"expected an image input of shape (1, h, w, c), the model's is {input_spec.shape}")
    _, h, w, c = input_spec.shape
    if c not in (1, 3):
        raise ModelError(f"expected an input with 1 or 3 channels, the model's is {input_spec.shape}")
    changes: dict[str, Any] = {}
    if options.input_range is not None:
        changes["mean"], changes["std"] = normalisation_for_range(options.input_range, c)
    if options.mean is not None or options.std is not None:
        if options.mean is None or options.std is None:
            raise ModelError("--mean and --std go together; give both (or use --input-range)")
        changes["mean"] = tuple(options.mean) * (c if len(options.mean) == 1 else 1)
        changes["std"] = tuple(options.std) * (c if len(options.std) == 1 else 1)
    if options.color_order is not None:
        changes["color_order"] = options.color_order
    if options.labels is not None:
        changes["labels"] = _labels_tuple(options.labels, num_outputs)
    if embedded is not None:
        return embedded.replace(**changes) if changes else embedded
    if "mean" not in changes:
        if input_spec.dtype == "uint8" and input_spec.quantized:
            changes["mean"] = (float(input_spec.zero_point),) * c
            changes["std"] = (1.0 / input_spec.scale,) * c
        else:
            raise ModelError(
                "the model has no edgecnn contract, so say how it wants its pixels: "
                "--input-range 0,1 (or -1,1 or 0,255), or --mean M --std S"
            )
    changes.setdefault("labels", tuple(str(i) for i in range(num_outputs)))
    changes.setdefault("color_order", "RGB")
    return Contract(task="classify", input_height=h, input_width=w, channels=c, **changes)


def _input_name(name: str) -> str:
    """A converter tensor name without its signature decoration: ``serving_default_map:0`` -> ``map``."""
    return name.split(":")[0].removeprefix("serving_default_")


def split_inputs(specs: list[TensorSpec]) -> tuple[TensorSpec, TensorSpec | None]:
    """``(image, map)`` of a model's inputs, by name: one input is the image (map None); of two, the map input is
    the one named ``map`` (signature name) or else the one whose tensor name contains ``map``, and the image the
    other. ModelError for more inputs, or two of which neither (or both) is the map."""
    if len(specs) == 1:
        return specs[0], None
    if len(specs) != 2:
        raise ModelError(f"expected a model with one image input (or image and map), this one has {len(specs)} inputs")
    named = [s for s in specs if _input_name(s.name) == MAP_INPUT]
    if len(named) != 1:
        named = [s for s in specs if MAP_INPUT in _input_name(s.name).lower()]
    if len(named) != 1:
        raise ModelError(f"a two-input model needs inputs named 'image' and 'map', this one has "
                         f"{', '.join(repr(s.name) for s in specs)}")
    m = named[0]
    return next(s for s in specs if s is not m), m


def map_table(spec: TensorSpec, channels: int) -> np.ndarray:
    """The map input for every raster value: ``(256, channels)`` of the map tensor's dtype, row ``v`` holding
    ``quantize(v / 255)`` (the reference path: ``raster.astype(float32) / 255``, then the tensor's own scale and
    zero point), so one lookup gives the same bytes."""
    values = np.arange(256, dtype=np.float32) / np.float32(255.0)
    return np.ascontiguousarray(np.repeat(quantize(values, spec)[:, None], channels, axis=1))


class Predictor:
    """A model ready to run on frames.

    Args:
        model: path to a .tflite file or its bytes.
        threads: CPU threads (None: runtime default).
        delegate: ``"xnnpack"`` (default), ``"none"`` or ``"edgetpu"`` (see :func:`make_interpreter`).
        contract: how to feed the model; None reads the one embedded in the model, or builds one from
            ``options`` for a third-party model (see :func:`contract_for_model`).
        options: user overrides for the contract (labels, normalisation, colour order).

    Attributes:
        contract: the :class:`~edgecnn.contract.Contract` in use.
        input: :class:`TensorSpec` of the image input.
        map_input: :class:`TensorSpec` of the map input of a ``navigate`` model, else None.
        map_spec: the map's :class:`~edgecnn.navmap.MapSpec` (``navigate``), else None.
        output: :class:`TensorSpec` of the first output (the one :meth:`predict` returns).
        outputs: specs of all outputs.
        last_timings: :class:`StageTimes` of the last :meth:`predict` call (None before the first).
        table: ``(256, c)`` array of the input dtype: the model input for each pixel value and channel
            (:func:`~edgecnn.runtime.adapters.input_table`), which :meth:`predict` looks pixels up in.

    Not thread-safe: one loop owns a predictor (its preprocessing buffers are reused from frame to frame).

    Raises ModelError for a missing, broken or unsupported model, one whose input is not an image, a two-input
    model without a ``navigate`` contract, or a ``navigate`` contract on a model without a map input.
    """

    def __init__(
        self,
        model: str | os.PathLike | bytes,
        threads: int | None = None,
        delegate: str | None = None,
        contract: Contract | None = None,
        options: ContractOptions | None = None,
    ) -> None:
        data = read_model_bytes(model)
        self.name = "model" if isinstance(model, (bytes, bytearray)) else Path(model).name
        self.interpreter = make_interpreter(data, threads=threads, delegate=delegate)
        self.input, self.map_input = split_inputs(input_specs(self.interpreter))
        self.outputs = output_specs(self.interpreter)
        self.output = self.outputs[0]
        n_out = int(np.prod(self.output.shape[1:])) if len(self.output.shape) > 1 else int(np.prod(self.output.shape))
        if self.map_input is not None and contract is None and read_contract(data) is None:
            raise ModelError(f"{self.name} has two inputs ({self.input.name}, {self.map_input.name}) and no edgecnn "
                             "contract; only navigate models exported by edgecnn have a map input")
        self.contract = contract or contract_for_model(data, self.input, n_out, options)
        expected = (1, self.contract.input_height, self.contract.input_width, self.contract.channels)
        if self.input.shape != expected:
            raise ModelError(f"the model's input is {self.input.shape} but its contract says {expected}")
        self.map_spec: MapSpec | None = self.contract.map_spec
        if (self.map_input is None) != (self.map_spec is None):
            if self.map_input is None:
                raise ModelError(f"{self.name}: its contract is a navigate one, but the model has no map input")
            raise ModelError(f"{self.name} has a map input ({self.map_input.name}) but its contract is a "
                             f"{self.contract.task!r} one; re-export it with edgecnn (task navigate)")
        self.map_table: np.ndarray | None = None
        if self.map_input is not None and self.map_spec is not None:
            s = self.map_spec
            if self.map_input.shape != (1, s.size, s.size, len(s.channels)):
                raise ModelError(f"the model's map input is {self.map_input.shape} but its contract says "
                                 f"{(1, s.size, s.size, len(s.channels))} ({', '.join(s.channels)})")
            self.map_table = map_table(self.map_input, len(s.channels))
            self._map_view = self.interpreter.tensor(self.map_input.index)
        self.last_timings: StageTimes | None = None
        self.table = input_table(self.contract, self.input)  # (256, c) of the input dtype
        self._scratch = Scratch()
        # Written in place through tensor(): a view of the interpreter's own input buffer, taken afresh for each
        # frame and dropped before invoke (LiteRT refuses to invoke while a view is alive). Measured here: the
        # same speed as set_tensor from a reused buffer (~1 us either way), one buffer and one copy fewer.
        self._input_view = self.interpreter.tensor(self.input.index)

    def prepare(self, frame_bgr: np.ndarray) -> np.ndarray:
        """Reference path: frame (``uint8 HxWx3 BGR``, any size) -> model input ``float32 h x w x c`` (real
        values), through :func:`edgecnn.preprocess.prepare`."""
        return prepare(frame_bgr, self.contract)

    def encode(self, frame_bgr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Fast path: frame (``uint8 HxWx3 BGR``, any size) -> model input ``h x w x c`` in the input tensor's
        dtype (int8/uint8/int16 quantized, or float32/float16), byte for byte what ``quantize(prepare(frame))``
        gives. Written into ``out`` when given (no allocation); otherwise a new array."""
        pixels = to_model_pixels(frame_bgr, self.contract, self._scratch)
        return apply_table(pixels, self.table, out=out)

    def reference_input(self, frame_bgr: np.ndarray) -> np.ndarray:
        """The reference path's model input for a frame, in the tensor's dtype: ``quantize(prepare(frame))``."""
        return quantize(self.prepare(frame_bgr), self.input)

    def reference_map_input(self, map_raster: np.ndarray) -> np.ndarray:
        """The reference path's map input in the tensor's dtype: ``quantize(raster.astype(float32) / 255)``."""
        if self.map_input is None:
            raise ModelError(f"{self.name} has no map input")
        return quantize(np.asarray(map_raster).astype(np.float32) / np.float32(255.0), self.map_input)

    def invoke(self, x: np.ndarray, map_x: np.ndarray | None = None) -> np.ndarray:
        """Run on a prepared input (``float32 h x w x c``; for a navigate model also ``map_x``, ``float32 S x S x C``
        = raster / 255); returns the first output, ``float32`` 1-D, real values."""
        set_input(self.interpreter, self.input, x[None])
        if self.map_input is not None:
            if map_x is None:
                raise ModelError(f"{self.name} is a navigate model: it needs the map input too")
            set_input(self.interpreter, self.map_input, np.asarray(map_x)[None])
        self.interpreter.invoke()
        return get_output(self.interpreter, self.output)

    def _write_map(self, map_raster: np.ndarray | None) -> None:
        if self.map_input is None:
            if map_raster is not None:
                raise ModelError(f"{self.name} has no map input (an image-only model); a map needs a navigate model")
            return
        if map_raster is None:
            raise ModelError(f"{self.name} is a navigate model: it needs the map raster of each frame "
                             "(edgecnn steer --route FILE --pose SOURCE)")
        shape = self.map_input.shape[1:]
        if map_raster.dtype != np.uint8 or map_raster.shape != shape:
            raise ModelError(f"the map raster must be uint8 {shape} (navmap.rasterise with the model's map spec), "
                             f"got {map_raster.dtype} {map_raster.shape}")
        view = self._map_view()  # (1, S, S, C) over the interpreter's map input buffer
        apply_table(map_raster, self.map_table, out=view[0])
        del view

    def predict(self, frame_bgr: np.ndarray, map_raster: np.ndarray | None = None) -> np.ndarray:
        """Frame (``uint8 HxWx3 BGR``) -> dequantized first output, ``float32`` of shape ``(num_outputs,)``.

        ``map_raster``: for a ``navigate`` model (required; ModelError without), ``uint8 (S, S, C)`` 0/255 from
        :func:`edgecnn.navmap.rasterise` with :attr:`map_spec`; None for every other model.

        For a softmax classifier the values are probabilities in [0, 1]; for a regression head they are in
        the contract's units (steering in ``steering_range``); a gmm head gives K logits, K means, K log-sigmas.
        Sets :attr:`last_timings` (``preprocess`` includes the map).
        """
        t0 = time.perf_counter()
        if self.map_input is not None or map_raster is not None:
            self._write_map(map_raster)
        view = self._input_view()  # (1, h, w, c) over the interpreter's input buffer
        self.encode(frame_bgr, out=view[0])
        del view
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        y = get_output(self.interpreter, self.output)
        t3 = time.perf_counter()
        self.last_timings = StageTimes((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return y
