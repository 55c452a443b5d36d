"""``edgecnn inspect``: what is inside a .tflite file, read from the flatbuffer itself (no TensorFlow).

Inputs and outputs (name, shape, dtype, scale, zero point), operator counts, size, parameters,
multiply-accumulates, the precision (in the names of :mod:`edgecnn.runtime.precision`: fp32, fp16, dynamic,
int8, uint8, int16x8), our contract if present,
Edge TPU custom ops if present, and whether this machine's runtime can load it. The parsing and the trial load
run in :mod:`edgecnn.runtime.sandbox`, so a hostile or broken file cannot take the caller down.

:func:`read_model_info` is the one flatbuffer reader for "what precision is this model": ``quantize`` and
``export`` use it (in-process, on files they have just written) to verify what they wrote, ``compare`` to label
its rows, and ``inspect`` to describe any file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import ModelError
from edgecnn.navmap import CHANNEL_MEANING
from edgecnn.runtime.delegation import DelegateReport, delegate_report
from edgecnn.runtime.interpreter import load_runtime, make_interpreter, read_model_bytes, resolve_model_path
from edgecnn.runtime.metadata import read_contract
from edgecnn.runtime.pilots import model_kind
from edgecnn.runtime.precision import DYNAMIC, FP16, FP32, INT8, INT16X8, UINT8
from edgecnn.runtime.sandbox import Limits, check_model, run_sandboxed, stage
from edgecnn.runtime.tflite_schema import CUSTOM, Model, Tensor, builtin_operator_name, read_model, tensor_type_name
from edgecnn.sizes import format_size

# Ops whose second input is a weight tensor; their weight dtype tells the quantization scheme.
_WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}


@dataclass(frozen=True)
class ModelReport:
    """Facts about one .tflite file (what ``edgecnn inspect`` shows).

    Attributes:
        path: the file.
        size_bytes: file size in bytes.
        inputs, outputs: one dict per tensor: ``name``, ``shape`` (batch first), ``dtype``, ``scale``,
            ``zero_point`` (scale 0 = not quantized).
        ops: operator name -> count, over all subgraphs (custom ops by their custom name).
        parameters: elements in constant tensors (weights, biases).
        macs: multiply-accumulates for one inference (conv, depthwise, fully connected, transpose conv).
        quantization: the precision, one of :data:`edgecnn.runtime.precision.PRECISIONS`: ``"fp32"``,
            ``"fp16"``, ``"dynamic"`` (int8 weights, float activations), ``"int8"``, ``"uint8"`` (legacy
            full-integer) or ``"int16x8"`` (int16 activations, int8 weights).
        io_dtype: dtypes of the inputs/outputs, e.g. ``"int8/int8"`` (the file name may lie; this does not).
        contract: the embedded edgecnn contract as a dict, or None (third-party model).
        edgetpu_ops: names of Edge TPU custom ops (non-empty: compiled for Coral).
        custom_ops: all custom op names.
        subgraphs: number of subgraphs.
        runtime: runtime used for the trial load (name and version).
        loads: True when this runtime loaded, allocated and ran the model once (on zeros).
        load_error: why it did not load (empty when it did).
    """

    path: str
    size_bytes: int
    inputs: tuple[dict[str, Any], ...]
    outputs: tuple[dict[str, Any], ...]
    ops: dict[str, int]
    parameters: int
    macs: int
    quantization: str
    io_dtype: str
    contract: dict[str, Any] | None
    edgetpu_ops: tuple[str, ...] = ()
    custom_ops: tuple[str, ...] = ()
    subgraphs: int = 1
    runtime: str = ""
    loads: bool = False
    load_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("inputs", "outputs", "edgetpu_ops", "custom_ops"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelReport:
        d = dict(d)
        for k in ("inputs", "outputs", "edgetpu_ops", "custom_ops"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)

    def format(self) -> str:
        """A human-readable report."""
        lines = [f"{self.path}  ({self.size_bytes / 1024:.1f} KiB)"]
        lines.append(f"  quantization: {self.quantization} (I/O {self.io_dtype})")
        lines.append(f"  parameters: {self.parameters:,}   MACs: {self.macs:,}   subgraphs: {self.subgraphs}")
        nav = bool(self.contract and self.contract.get("map"))
        for title, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"  {title}:")
            for t in specs:
                q = f"  scale {t['scale']:.6g} zero point {t['zero_point']}" if t["scale"] else ""
                image = f" ({format_size(t['shape'][2], t['shape'][1])})" if len(t["shape"]) == 4 else ""
                role = f"  [{_input_role(t['name'])}]" if nav and title == "inputs" else ""
                lines.append(f"    {t['name']}  {t['shape']}{image}  {t['dtype']}{q}{role}")
        lines.append("  ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.ops.items(), key=lambda kv: -kv[1])))
        if self.edgetpu_ops:
            lines.append(f"  Edge TPU: compiled for Coral ({', '.join(self.edgetpu_ops)}); run with --delegate edgetpu")
        other = [c for c in self.custom_ops if c not in self.edgetpu_ops]
        if other:
            lines.append(f"  custom ops: {', '.join(other)}")
        if self.contract:
            c = self.contract
            labels = c.get("labels") or []
            shown = ", ".join(labels[:8]) + (f", ... ({len(labels)})" if len(labels) > 8 else "")
            lines.append(f"  contract: {c.get('task')} {format_size(c.get('input_width'), c.get('input_height'))}"
                         f" ({c.get('channels')} channels) {c.get('color_order')} mean {c.get('mean')} std {c.get('std')}"
                         f" resize {c.get('resize')}{_crop_text(c)} head {c.get('head')}"
                         + (f" labels: {shown}" if labels else ""))
            if nav:
                lines.extend("  " + line for line in describe_map(c["map"]))
        else:
            lines.append("  contract: none (third-party model: give classify --labels, and --input-range unless the input is uint8)")
        if self.extra.get("kind"):
            lines.append(f"  kind: {self.extra['kind']}")
        lines.append(f"  loads with {self.runtime}: " + ("yes" if self.loads else f"no ({self.load_error})"))
        if self.extra.get("delegation"):
            lines.append("  " + DelegateReport.from_dict(self.extra["delegation"]).format().replace("\n", "\n  "))
        return "\n".join(lines)


def _crop_text(c: dict[str, Any]) -> str:
    """`` crop 40,0 rows of 160x120 frames`` for a contract dict with a crop (rows of its ``source_size`` frames
    when it has one), else ``""``."""
    crop, source = c.get("crop") or [], c.get("source_size") or []
    if len(crop) != 2:
        return ""
    of = f" of {format_size(source[0], source[1])} frames" if len(source) == 2 else ""
    return f" crop {crop[0]},{crop[1]} rows{of}"


def _input_role(name: str) -> str:
    """``map`` or ``image`` for a two-input model's tensor (the runtime's rule: a name containing ``map``)."""
    return "map" if "map" in name.split(":")[0].removeprefix("serving_default_").lower() else "image"


def describe_map(m: dict[str, Any]) -> list[str]:
    """Lines describing a navigate contract's map input: size, channels and their meaning, extent, where the car
    is, and the pose error the model was trained with."""
    spec, noise = m.get("spec", {}), m.get("pose_noise", {})
    size, extent, behind = spec.get("size"), spec.get("extent_m"), spec.get("behind_m")
    chans = list(spec.get("channels", []))
    routed = "routed" if m.get("routed") else "unrouted (roads only)"
    name = m.get("input", "map")
    lines = [f"map input {name!r}: {size}x{size}x{len(chans)} uint8 rasters 0/255 scaled to 0..1, {routed}"]
    if size and extent is not None and behind is not None:
        lines.append(f"  extent {extent} m square ({100 * extent / size:.1f} cm/pixel), ego-centred, heading up: car "
                     f"at column {size / 2:g}, {behind} m from the bottom ({extent - behind:g} m ahead)")
    for i, ch in enumerate(chans):
        lines.append(f"  channel {i} {ch}: {CHANNEL_MEANING.get(ch, '?')}")
    if noise:
        lines.append(f"  pose noise assumed in training: position {noise.get('position_m')} m (1 sigma), heading "
                     f"{noise.get('heading_deg')} deg, delay {noise.get('delay_ms')} ms, {noise.get('rate_hz')} Hz "
                     "updates")
    lines.append("  on the device: edgecnn steer --route FILE --pose SOURCE (drawn per frame from the newest pose)")
    return lines


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output, read from the flatbuffer.

    Attributes:
        name: tensor name.
        dtype: numpy dtype name (``"float32"``, ``"int8"``, ``"uint8"``, ``"int16"``, ...).
        shape: static shape, batch first; a dynamic dimension keeps its placeholder size.
        signature: the shape with -1 for each dynamic dimension (the static shape when the model has none).
        scale, zero_point: affine quantization ``real = scale * (q - zero_point)``; ``scale == 0`` for float.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    signature: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The form :class:`ModelReport` shows (``name``, ``shape``, ``dtype``, ``scale``, ``zero_point``)."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "scale": self.scale,
                "zero_point": self.zero_point}


@dataclass(frozen=True)
class ModelInfo:
    """What a .tflite really is, from one pass over its flatbuffer (never from its file name).

    Two views of the same facts, both in the names of :mod:`edgecnn.runtime.precision`: ``precision``, what
    ``edgecnn quantize`` checks it wrote (it also tells float I/O and mixed files apart), and ``quantization``,
    what ``inspect`` and ``compare`` show (it also covers third-party models).

    Attributes:
        precision: ``fp32``, ``fp16``, ``dynamic``, ``int8`` (integer activations and I/O), ``int8-float-io``
            (integer activations, float I/O), ``int16x8``, or ``mixed`` (integer with some float layers).
        quantization: one of :data:`edgecnn.runtime.precision.PRECISIONS` (``fp32``, ``fp16``, ``dynamic``,
            ``int8``, ``uint8`` for legacy full-integer, ``int16x8``).
        inputs, outputs: the first subgraph's inputs and outputs.
        weight_dtypes: ``{dtype: count}`` of constant op inputs (weights, biases) in the first subgraph.
        activation_dtypes: ``{dtype: count}`` of op outputs in the first subgraph.
        ops: ``(op name, output dtype)`` of the first subgraph in execution order; custom ops as ``CUSTOM:name``.
        operator_counts: op name -> count over all subgraphs (custom ops by their custom name).
        parameters: elements in constant tensors. macs: multiply-accumulates for one inference.
        custom_ops: custom op names, sorted. subgraphs: number of subgraphs. size_bytes: file size.
    """

    precision: str
    quantization: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    weight_dtypes: dict[str, int]
    activation_dtypes: dict[str, int]
    ops: tuple[tuple[str, str], ...]
    operator_counts: dict[str, int]
    parameters: int
    macs: int
    custom_ops: tuple[str, ...]
    subgraphs: int
    size_bytes: int

    @property
    def float_ops(self) -> tuple[str, ...]:
        """Ops computing in float (their output is float32/float16), excluding the trailing DEQUANTIZE of a
        float-output model."""
        return tuple(name for name, dt in self.ops if dt in ("float32", "float16") and name != "DEQUANTIZE")


def _shape(t: Tensor) -> list[int]:
    shape = [int(v) for v in t.shape]
    sig = t.shape_signature
    if len(sig) == len(shape):
        shape = [int(s) if int(s) >= 0 else v for s, v in zip(sig, shape)]  # dynamic dims keep their size
    return shape


def _prod(shape: list[int]) -> int:
    n = 1
    for v in shape:
        n *= max(int(v), 1)
    return n


def _tensor_info(t: Tensor) -> TensorInfo:
    q = t.quantization
    scale, zeros = (q.scale, q.zero_point) if q is not None else ((), ())
    sig = t.shape_signature if len(t.shape_signature) else t.shape
    return TensorInfo(t.name, tensor_type_name(t.type), tuple(_shape(t)), tuple(int(v) for v in sig),
                      float(scale[0]) if len(scale) else 0.0, int(zeros[0]) if len(zeros) else 0)


def read_model_info(data: bytes, path: str = "model") -> ModelInfo:
    """Parse .tflite bytes into a :class:`ModelInfo`: the one flatbuffer reader behind ``inspect``, ``quantize``,
    ``export`` and ``compare``. Pure Python over ``flatbuffers`` (:mod:`edgecnn.runtime.tflite_schema`), no
    TensorFlow and no ai-edge-litert.

    Raises ModelError when ``data`` is not a TFLite model or its flatbuffer is damaged.
    """
    model = read_model(data)
    try:
        return _walk(model, len(data), path)
    except ModelError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from IndexError to struct.error
        raise ModelError(f"{path}: the model's flatbuffer is damaged ({type(exc).__name__}); re-export it") from exc


def _walk(model: Model, size: int, path: str) -> ModelInfo:
    opnames: list[str] = []
    is_custom: list[bool] = []
    for oc in model.operator_codes:
        code = oc.code
        is_custom.append(code == CUSTOM)
        opnames.append((oc.custom_code or "custom") if is_custom[-1] else builtin_operator_name(code))
    custom = sorted({n for n, c in zip(opnames, is_custom) if c})
    const_buffers = [b.has_data() for b in model.buffers]

    def is_const(t: Tensor) -> bool:
        return 0 <= t.buffer < len(const_buffers) and const_buffers[t.buffer]

    def dtype(t: Tensor) -> str:
        return tensor_type_name(t.type)

    counts: Counter[str] = Counter()
    params = macs = 0
    weight_types: set[str] = set()  # dtypes of the weights of weighted ops (inspect's view)
    act_types: set[str] = set()  # dtypes of the activations entering weighted ops
    saw_f16_dequant = int8_const = False
    ops0: list[tuple[str, str]] = []  # first subgraph (quantize's view)
    weights0: Counter[str] = Counter()
    acts0: Counter[str] = Counter()
    subgraphs = model.subgraphs
    for si, sg in enumerate(subgraphs):
        tensors = sg.tensors
        for t in tensors:
            if is_const(t):
                params += _prod(_shape(t))
                int8_const = int8_const or dtype(t) == "int8"
        for op in sg.operators:
            if not (0 <= op.opcode_index < len(opnames)):
                raise ModelError(f"{path}: an operator refers to op code {op.opcode_index}, which does not exist")
            name = opnames[op.opcode_index]
            counts[name] += 1
            ins = [tensors[i] if 0 <= i < len(tensors) else None for i in op.inputs]
            outs = [tensors[i] if 0 <= i < len(tensors) else None for i in op.outputs]
            if si == 0:
                shown = f"CUSTOM:{name}" if is_custom[op.opcode_index] else name
                ops0.append((shown, dtype(outs[0]) if outs and outs[0] is not None else "?"))
                acts0.update(dtype(t) for t in outs if t is not None)
                weights0.update(dtype(t) for t in ins if t is not None and is_const(t))
            if name == "DEQUANTIZE" and ins and ins[0] is not None and dtype(ins[0]) == "float16":
                saw_f16_dequant = True
            if name in _WEIGHTED and len(ins) >= 2 and ins[0] is not None and ins[1] is not None and outs and outs[0]:
                act_types.add(dtype(ins[0]))
                if is_const(ins[1]):
                    weight_types.add(dtype(ins[1]))
                w, out = _shape(ins[1]), _shape(outs[0])
                if name == "CONV_2D" and len(w) == 4:
                    macs += _prod(out) * w[1] * w[2] * w[3]
                elif name == "DEPTHWISE_CONV_2D" and len(w) == 4:
                    macs += _prod(out) * w[1] * w[2]
                elif name == "FULLY_CONNECTED" and len(w) == 2:
                    macs += _prod(out) * w[1]
                elif name == "TRANSPOSE_CONV" and len(w) == 4 and len(ins) >= 3 and ins[2] is not None:
                    macs += _prod(_shape(ins[2])) * w[0] * w[1] * w[2]
    sg0 = subgraphs[0] if subgraphs else None
    tensors0 = sg0.tensors if sg0 is not None else ()

    def io(indexes: Any) -> tuple[TensorInfo, ...]:
        return tuple(_tensor_info(tensors0[i]) for i in indexes if 0 <= i < len(tensors0))

    inputs, outputs = (io(sg0.inputs), io(sg0.outputs)) if sg0 is not None else ((), ())
    dynamic = bool(counts.get("DEQUANTIZE")) and not weight_types - {"float32"} and int8_const
    return ModelInfo(
        precision=_precision(inputs, outputs, weights0, ops0),
        quantization=_quantization(act_types, weight_types, saw_f16_dequant, dynamic),
        inputs=inputs, outputs=outputs, weight_dtypes=dict(weights0), activation_dtypes=dict(acts0),
        ops=tuple(ops0), operator_counts=dict(counts), parameters=params, macs=macs, custom_ops=tuple(custom),
        subgraphs=len(subgraphs), size_bytes=size,
    )


def _precision(inputs: tuple[TensorInfo, ...], outputs: tuple[TensorInfo, ...], weights: Counter[str],
               ops: list[tuple[str, str]]) -> str:
    """The precision names of ``edgecnn quantize``, from what the ops compute in (QUANTIZE/DEQUANTIZE at the
    edges do not count)."""
    int_io = all(t.dtype in ("int8", "uint8") for t in inputs + outputs)
    compute = [dt for name, dt in ops if name not in ("QUANTIZE", "DEQUANTIZE")]
    float_compute = [dt for dt in compute if dt in ("float32", "float16")]
    if "int16" in compute:
        return INT16X8
    if compute and not float_compute:
        return INT8 if int_io else "int8-float-io"
    if "int8" in compute:
        return "mixed"
    if weights.get("float16"):
        return FP16
    if weights.get("int8"):
        return DYNAMIC
    return FP32


def _quantization(act_types: set[str], weight_types: set[str], saw_f16_dequant: bool, dequantized_int8: bool) -> str:
    """The precision ``inspect`` and ``compare`` show, from the activation and weight dtypes of the weighted ops."""
    if "int16" in act_types and "int8" in weight_types:
        return INT16X8
    if "int8" in act_types:
        return INT8
    if "uint8" in act_types:
        return UINT8
    if "float16" in weight_types or saw_f16_dequant:
        return FP16
    if weight_types & {"int8", "uint8", "int4"} or dequantized_int8:
        return DYNAMIC
    return FP32


def analyse(data: bytes, path: str = "model") -> dict[str, Any]:
    """Parse .tflite bytes into the static fields of a :class:`ModelReport` (as a dict). Pure Python."""
    info = read_model_info(data, path)
    contract = read_contract(data)
    io = ("/".join(sorted({t.dtype for t in info.inputs})) + " -> "
          + "/".join(sorted({t.dtype for t in info.outputs})))
    return {
        "path": path, "size_bytes": info.size_bytes, "inputs": [t.to_dict() for t in info.inputs],
        "outputs": [t.to_dict() for t in info.outputs], "ops": info.operator_counts,
        "parameters": info.parameters, "macs": info.macs, "quantization": info.quantization, "io_dtype": io,
        "contract": contract.to_dict() if contract else None,
        "edgetpu_ops": [c for c in info.custom_ops if c.lower().startswith("edgetpu")],
        "custom_ops": list(info.custom_ops), "subgraphs": info.subgraphs,
    }


def inspect_file(path: str) -> dict[str, Any]:
    """Child-side: analyse the file and try loading it with this machine's runtime; a ModelReport dict."""
    data = read_model_bytes(path)
    stage("parsing the flatbuffer")
    card = analyse(data, path)
    rt = load_runtime()
    card["runtime"] = f"{rt.name} {rt.version}"
    stage("loading the model into the interpreter")
    try:
        interp = make_interpreter(data, threads=1)
        card["loads"], card["load_error"] = True, ""
        card.setdefault("extra", {})["kind"] = model_kind(data)  # edgecnn classify/steer, donkeycar pilot, ...
        # What XNNPACK took and what it left on the reference kernels (edgecnn.runtime.delegation).
        card.setdefault("extra", {})["delegation"] = delegate_report(interp, "xnnpack").to_dict()
    except ModelError as exc:
        card["loads"], card["load_error"] = False, str(exc)
    return card


def inspect_model(path: str | os.PathLike, memory_mb: int = 2048, timeout_s: float = 120.0) -> ModelReport:
    """Inspect ``path`` (a .tflite, or a bundle folder: its model_int8.tflite) in a sandboxed child (see
    :mod:`edgecnn.runtime.sandbox`); ModelError when it fails."""
    path = resolve_model_path(path)
    read_model_bytes(path)  # missing/empty/not-a-model: a clear error without starting a child
    limits = Limits(memory_mb=memory_mb, cpu_s=int(timeout_s) + 1, wall_s=timeout_s)
    d = run_sandboxed("edgecnn.runtime.inspect:inspect_file", [str(Path(path))], str(path), limits)
    if d["loads"]:
        # Some verifier-valid files load and then crash on their first inference; a second child runs the model
        # once on zeros, so that the report (parsed above) survives such a crash and still says so.
        try:
            check_model(str(path), limits=limits)
        except ModelError as exc:
            d["loads"], d["load_error"] = False, f"it loads but its first inference fails: {exc}"
    return ModelReport.from_dict(d)
