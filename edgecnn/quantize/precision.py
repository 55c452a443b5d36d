"""Read a .tflite's precision back from the model itself (never from its file name).

A file called ``*_int8.tflite`` that is really dynamic-range with float input and output has shipped before (an
Ultralytics issue); every precision edgecnn writes is checked with :func:`inspect_model`. Reads the flatbuffer
with the schema ai-edge-litert ships: no TensorFlow, safe for the device side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from edgecnn.errors import ModelError


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, numpy dtype name, shape (batch first, -1 = dynamic) and the affine
    quantization ``real = scale * (q - zero_point)`` (``scale == 0`` for float tensors)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0


@dataclass(frozen=True)
class ModelInfo:
    """What a .tflite really is.

    Attributes:
        precision: ``fp32``, ``fp16``, ``dynamic``, ``int8`` (integer activations and I/O), ``int8-float-io``
            (integer activations, float I/O), ``int16x8``, or ``mixed`` (integer with some float layers).
        inputs, outputs: model inputs and outputs.
        weight_dtypes: ``{dtype: count}`` of constant tensors (weights, biases).
        activation_dtypes: ``{dtype: count}`` of op outputs.
        ops: ``(op_name, output dtype)`` in execution order.
        size_bytes: file size.
    """

    precision: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    weight_dtypes: dict[str, int]
    activation_dtypes: dict[str, int]
    ops: tuple[tuple[str, str], ...]
    size_bytes: int

    @property
    def float_ops(self) -> tuple[str, ...]:
        """Ops computing in float (their output is float32/float16), excluding the trailing DEQUANTIZE of a
        float-output model."""
        return tuple(name for name, dt in self.ops if dt in ("float32", "float16") and name not in ("DEQUANTIZE",))

    def op_counts(self) -> dict[str, int]:
        return dict(Counter(name for name, _ in self.ops))


def _names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def inspect_model(model: bytes) -> ModelInfo:
    """Inspect ``model`` (.tflite bytes) and classify its precision; ModelError when it is not a TFLite model."""
    from edgecnn.runtime.metadata import _check_identifier, _schema

    _check_identifier(model)
    s = _schema()
    tname, opname = _names(s.TensorType), _names(s.BuiltinOperator)
    try:
        root = s.Model.GetRootAsModel(model, 0)
        g = root.Subgraphs(0)
        codes = []
        for i in range(root.OperatorCodesLength()):
            oc = root.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            name = opname.get(code, f"OP_{code}")
            if name == "CUSTOM":
                name = f"CUSTOM:{(oc.CustomCode() or b'').decode()}"
            codes.append(name)

        def dtype(t: int) -> str:
            return tname.get(g.Tensors(t).Type(), "?").lower()

        def has_data(t: int) -> bool:
            b = g.Tensors(t).Buffer()
            if b <= 0 or b >= root.BuffersLength():
                return False
            buf = root.Buffers(b)
            return buf.DataLength() > 0 or buf.Offset() > 1

        def info(t: int) -> TensorInfo:
            ten = g.Tensors(t)
            sig = ten.ShapeSignatureAsNumpy() if ten.ShapeSignatureLength() else ten.ShapeAsNumpy()
            q = ten.Quantization()
            scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else 0.0
            zp = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
            return TensorInfo((ten.Name() or b"").decode(), dtype(t), tuple(int(x) for x in sig), scale, zp)

        ops, outs, weights = [], Counter(), Counter()
        produced = set()
        for i in range(g.OperatorsLength()):
            op = g.Operators(i)
            o = [op.Outputs(j) for j in range(op.OutputsLength())]
            produced.update(o)
            out_dt = dtype(o[0]) if o else "?"
            ops.append((codes[op.OpcodeIndex()], out_dt))
            outs.update(dtype(x) for x in o)
            for j in range(op.InputsLength()):
                t = op.Inputs(j)
                if t >= 0 and has_data(t):
                    weights[dtype(t)] += 1
        inputs = tuple(info(g.Inputs(i)) for i in range(g.InputsLength()))
        outputs = tuple(info(g.Outputs(i)) for i in range(g.OutputsLength()))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"the model's flatbuffer is damaged ({type(exc).__name__}); re-export it") from exc
    return ModelInfo(_classify(inputs, outputs, weights, ops), inputs, outputs, dict(weights), dict(outs),
                     tuple(ops), len(model))


def _classify(inputs, outputs, weights: Counter, ops) -> str:
    int_io = all(t.dtype in ("int8", "uint8") for t in inputs + outputs)
    compute = [dt for name, dt in ops if name not in ("QUANTIZE", "DEQUANTIZE")]
    float_compute = [dt for dt in compute if dt in ("float32", "float16")]
    if "int16" in compute:
        return "int16x8"
    if compute and not float_compute:
        return "int8" if int_io else "int8-float-io"
    if "int8" in compute:
        return "mixed"
    if weights.get("float16"):
        return "fp16"
    if weights.get("int8"):
        return "dynamic"
    return "fp32"
