"""Per-layer fidelity of an int8 model, from TensorFlow's quantization debugger (host side).

For each quantized op output the debugger runs the float and the quantized op side by side on the calibration
inputs and records the error. We report ``rmse/scale`` (root-mean-square error in units of the layer's
quantization step): about 0.29 (= 1/sqrt(12)) is pure rounding noise, above about 0.7 the layer loses more than
rounding (upstream's rule of thumb); those layers are flagged, worst first.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgecnn.quantize.convert import (
    debug_dataset,
    make_converter,
    quiet_native_logs,
    run_converter,
)
from edgecnn.runtime.evaluate import Inputs, count_items, take, tensor_input_name
from edgecnn.runtime.inspect import read_model_info

SUSPECT_RMSE_PER_SCALE = 0.7


@dataclass(frozen=True)
class LayerError:
    """One quantized layer (op output) compared against float.

    Attributes:
        op: TFLite op name (``CONV_2D``...).
        tensor: output tensor name (what ``--keep-float`` takes).
        rmse_per_scale: root-mean-square error divided by the quantization scale (dimensionless).
        max_abs_error: largest absolute difference, in the layer's float units.
        scale, zero_point: the layer's output quantization.
        flagged: ``rmse_per_scale`` above :data:`SUSPECT_RMSE_PER_SCALE`.
    """

    op: str
    tensor: str
    rmse_per_scale: float
    max_abs_error: float
    scale: float
    zero_point: int
    flagged: bool

    @property
    def layer(self) -> str:
        """Short Keras-like layer name from the tensor name (``.../b5_pw_1/convolution`` -> ``b5_pw``)."""
        first = self.tensor.split(";")[0]
        parts = first.split("/")
        if len(parts) < 2:
            return f"(output {self.op.lower()})" if "PartitionedCall" in first else first
        return re.sub(r"_\d+$", "", parts[-2])


@dataclass(frozen=True)
class FidelityReport:
    """Per-layer errors in model order, and the inputs they were measured on."""

    layers: tuple[LayerError, ...]
    samples: int

    def worst(self, k: int = 3) -> tuple[LayerError, ...]:
        return tuple(sorted(self.layers, key=lambda l: -l.rmse_per_scale)[:k])

    @property
    def flagged(self) -> tuple[LayerError, ...]:
        return tuple(l for l in self.layers if l.flagged)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["index", "op", "layer", "tensor", "rmse_per_scale", "max_abs_error", "scale", "zero_point", "flagged"])
        for i, l in enumerate(self.layers):
            w.writerow([i, l.op, l.layer, l.tensor, f"{l.rmse_per_scale:.4f}", f"{l.max_abs_error:.6g}", f"{l.scale:.6g}",
                        l.zero_point, int(l.flagged)])
        return buf.getvalue()

    def table(self) -> str:
        """A fixed-width table, flagged layers marked ``<-- suspect``."""
        lines = [f"per-layer int8 error on {self.samples} calibration inputs (rmse/scale: ~0.29 = rounding only, "
                 f"> {SUSPECT_RMSE_PER_SCALE} suspect)",
                 f"{'#':>3}  {'op':<18} {'layer':<20} {'rmse/scale':>10} {'max|err|':>10}"]
        for i, l in enumerate(self.layers):
            mark = "  <-- suspect" if l.flagged else ""
            lines.append(f"{i:>3}  {l.op:<18} {l.layer:<20} {l.rmse_per_scale:>10.3f} {l.max_abs_error:>10.4g}{mark}")
        return "\n".join(lines)


def make_debugger(model_b1, inputs: Inputs, io_type: str = "int8", denylisted_nodes=(), samples: int = 64):
    """A ``tf.lite.experimental.QuantizationDebugger`` over the int8 conversion of ``model_b1`` (a batch-1 Keras
    model), fed with the first ``samples`` of ``inputs`` (``float32 N x h x w x c`` normalised, or named arrays
    for a two-input model: then fed in the converted model's own input order, which the debugger assumes)."""
    import tensorflow as tf  # lazy: tensorflow

    order: list[str] = []
    if isinstance(inputs, Mapping):
        probe = run_converter(make_converter(model_b1, "int8", inputs, io_type))
        order = [tensor_input_name(t.name) for t in read_model_info(probe).inputs]
    conv = make_converter(model_b1, "int8", inputs, io_type)
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(denylisted_nodes) or None, fully_quantize=bool(denylisted_nodes))
    with quiet_native_logs():
        return tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=debug_dataset(take(inputs, 0, samples), order), debug_options=options)


def layer_report(model_b1, inputs: Inputs, io_type: str = "int8", samples: int = 64) -> FidelityReport:
    """Run the debugger and return the per-layer report (see module docstring)."""
    dbg = make_debugger(model_b1, inputs, io_type, samples=samples)
    with quiet_native_logs():
        dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    return parse_statistics(buf.getvalue(), min(samples, count_items(inputs)))


def parse_statistics(text: str, samples: int) -> FidelityReport:
    """Parse the debugger's CSV dump (``op_name, tensor_idx, ..., mean_squared_error, scale, zero_point,
    tensor_name``) into a :class:`FidelityReport`."""
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        scale = float(r["scale"])
        rmse = math.sqrt(max(0.0, float(r["mean_squared_error"])))
        ratio = rmse / scale if scale > 0 else 0.0
        rows.append(LayerError(r["op_name"], r["tensor_name"], ratio, float(r["max_abs_error"]), scale,
                               int(float(r["zero_point"])), ratio > SUSPECT_RMSE_PER_SCALE))
    return FidelityReport(tuple(rows), samples)
