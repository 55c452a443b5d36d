"""Selective quantization: keep the layers that hurt most in float when int8 misses a tolerance (host side).

``--keep-float auto`` measures the int8 model against the float model on held-out inputs (the run's validation
split, disjoint from the calibration set) and, while the loss exceeds the tolerance, moves the next-worst layer
(highest rmse/scale in the fidelity report) to float, up to ``max_layers``. An explicit list keeps the named layers
(a Keras layer name such as ``b5_pw`` matches every quantized tensor whose name contains it). The result says which
layers stayed float and what that cost in size and latency; the model keeps integer input and output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.quantize.convert import make_converter, quiet_native_logs, run_converter
from edgecnn.quantize.fidelity import FidelityReport, make_debugger
from edgecnn.runtime.evaluate import latency_us, predict, steering_of
from edgecnn.runtime.inspect import read_model_info


@dataclass(frozen=True)
class Loss:
    """Quality lost by a quantized model versus float on held-out inputs.

    Attributes:
        metric: ``"accuracy_drop_pp"`` (percentage points, classify) or ``"mae_increase"`` (steering units).
        value: the loss (negative = the quantized model did better).
        agreement: top-1 agreement with the float model (classify), or None.
    """

    metric: str
    value: float
    agreement: float | None


@dataclass(frozen=True)
class KeepFloatResult:
    """Outcome of selective quantization.

    Attributes:
        model: the chosen .tflite bytes.
        kept_float: tensor names left in float (empty when plain int8 was within tolerance).
        kept_layers: the same as short layer names (``stem_relu``), for reports and the contract.
        loss_int8, loss_selected: quality loss of plain int8 and of the chosen model.
        size_int8, size_selected: bytes.
        latency_int8_us, latency_selected_us: median single-frame latency, microseconds (LiteRT, 1 thread).
        within_tolerance: the chosen model meets the tolerance.
    """

    model: bytes
    kept_float: tuple[str, ...]
    kept_layers: tuple[str, ...]
    loss_int8: Loss
    loss_selected: Loss
    size_int8: int
    size_selected: int
    latency_int8_us: float
    latency_selected_us: float
    within_tolerance: bool

    def text(self) -> str:
        if not self.kept_float:
            return f"keep-float: plain int8 is within tolerance ({self.loss_int8.metric} {self.loss_int8.value:.3g})"
        return (f"keep-float: {len(self.kept_float)} layer(s) kept in float: {', '.join(self.kept_layers)}\n"
                f"  {self.loss_int8.metric}: {self.loss_int8.value:.3g} -> {self.loss_selected.value:.3g}"
                f"{'' if self.within_tolerance else ' (still above tolerance)'}\n"
                f"  size: {self.size_int8} -> {self.size_selected} bytes "
                f"({100.0 * (self.size_selected / self.size_int8 - 1):+.1f}%), latency: {self.latency_int8_us:.0f} -> "
                f"{self.latency_selected_us:.0f} us")


def quality_loss(float_out: np.ndarray, quant_out: np.ndarray, targets: np.ndarray, contract) -> Loss:
    """Loss of ``quant_out`` against ``float_out`` (both ``float32 N x K``) on labelled ``targets``."""
    if contract.task == "classify":
        fp, qp = float_out.argmax(1), quant_out.argmax(1)
        t = targets.astype(np.int64)
        drop = 100.0 * (float((fp == t).mean()) - float((qp == t).mean()))
        return Loss("accuracy_drop_pp", drop, float((fp == qp).mean()))
    t = targets.astype(np.float32)
    inc = float(np.abs(steering_of(quant_out, contract) - t).mean() - np.abs(steering_of(float_out, contract) - t).mean())
    return Loss("mae_increase", inc, None)


def resolve_layers(names: Sequence[str], report: FidelityReport) -> tuple[str, ...]:
    """Map user layer names to quantized tensor names: the short layer name (``stem_relu``), the exact tensor
    name, or else a substring of tensor names (``b5_pw``); EdgecnnError naming the layers when none match."""
    out: list[str] = []
    for n in names:
        hits = ([l.tensor for l in report.layers if l.layer == n or l.tensor == n]
                or [l.tensor for l in report.layers if n in l.tensor])
        if not hits:
            known = ", ".join(l.layer for l in report.layers)
            raise EdgecnnError(f"--keep-float: no quantized layer matches {n!r}; the layers are: {known}")
        out += [h for h in hits if h not in out]
    return tuple(out)


def quantize_keeping(model_b1, inputs: np.ndarray, tensors: Sequence[str], io_type: str = "int8") -> bytes:
    """int8 conversion of ``model_b1`` with ``tensors`` left in float; integer input and output are kept."""
    dbg = make_debugger(model_b1, inputs, io_type, denylisted_nodes=tensors)
    try:
        with quiet_native_logs():
            data = bytes(dbg.get_nondebug_quantized_model())
    except Exception as exc:
        raise ModelError(f"selective quantization failed: {str(exc).splitlines()[0][:200]}") from exc
    info = read_model_info(data)
    if any(t.dtype not in ("int8", "uint8") for t in info.inputs + info.outputs):
        raise RuntimeError("selective quantization lost the integer input/output")
    return data


def keep_float(model_b1, int8_model: bytes, inputs: np.ndarray, report: FidelityReport,
               heldout: np.ndarray, targets: np.ndarray, contract, tolerance: float,
               layers: Sequence[str] | str = "auto", io_type: str = "int8", max_layers: int = 4,
               log=lambda m: None) -> KeepFloatResult:
    """Selective quantization (see module docstring).

    Args:
        model_b1: batch-1 Keras model.
        int8_model: its plain int8 .tflite.
        inputs: calibration inputs, ``float32 N x h x w x c``.
        report: the int8 fidelity report.
        heldout, targets: held-out inputs (``float32 M x h x w x c``) and their labels, disjoint from calibration.
        contract: the model's contract (task and head decide how outputs are scored).
        tolerance: largest acceptable loss (accuracy pp, or MAE increase).
        layers: ``"auto"`` or explicit layer names.
    """
    float_out = predict(run_converter(make_converter(model_b1, "fp32")), heldout)
    loss8 = quality_loss(float_out, predict(int8_model, heldout), targets, contract)
    lat8 = latency_us(int8_model)
    chosen, model, loss = (), int8_model, loss8
    if layers != "auto":
        chosen = resolve_layers(list(layers), report)
        model = quantize_keeping(model_b1, inputs, chosen, io_type)
        loss = quality_loss(float_out, predict(model, heldout), targets, contract)
    elif loss8.value > tolerance:
        ranked = [l.tensor for l in report.worst(max_layers)]
        for k in range(1, len(ranked) + 1):
            chosen = tuple(ranked[:k])
            log(f"keep-float auto: trying {k} float layer(s), worst: {chosen[-1][:60]}")
            model = quantize_keeping(model_b1, inputs, chosen, io_type)
            loss = quality_loss(float_out, predict(model, heldout), targets, contract)
            if loss.value <= tolerance:
                break
    lat = latency_us(model) if chosen else lat8
    short = {l.tensor: l.layer for l in report.layers}
    return KeepFloatResult(model, chosen, tuple(short.get(t, t) for t in chosen), loss8, loss, len(int8_model), len(model), lat8, lat, loss.value <= tolerance)
