"""Run a .tflite in the TensorFlow Lite Micro Python interpreter and compare it with LiteRT (host side).

Proves the model runs as a microcontroller would run it (only TFLM's kernels, a single arena), reports the arena
it needed, and checks its outputs against LiteRT's on the same integer inputs: they must agree within
``tolerance_steps`` quantization steps of the output (different kernel implementations may round differently by one
step).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgecnn.errors import ModelError
from edgecnn.runtime.adapters import input_specs, output_specs, quantize
from edgecnn.runtime.evaluate import Inputs, bind_inputs, count_items
from edgecnn.runtime.interpreter import make_interpreter
from edgecnn.runtime.native_stderr import captured_native_output


@dataclass(frozen=True)
class MicroCheck:
    """Outcome of the TFLM-versus-LiteRT check; truthy when the two agree.

    Attributes:
        arena_bytes: tensor arena TFLM allocated (from its recording allocator), or None if not reported.
        max_abs_diff: largest absolute difference between the two, in output quantization steps (integers) or
            output units (float models).
        tolerance: the stated tolerance, same unit.
        samples: inputs compared.
        error: why TFLM could not run the model, else None.
    """

    arena_bytes: int | None
    max_abs_diff: float
    tolerance: float
    samples: int
    error: str | None = None

    def __bool__(self) -> bool:
        return self.error is None and self.max_abs_diff <= self.tolerance

    def text(self) -> str:
        if self.error:
            return f"tflite-micro: FAILED to run the model: {self.error}"
        verdict = "agrees with" if self else "DIFFERS from"
        arena = f"{self.arena_bytes} bytes" if self.arena_bytes is not None else "unknown"
        return (f"tflite-micro: arena {arena}; {verdict} LiteRT on {self.samples} inputs "
                f"(max diff {self.max_abs_diff:g}, tolerance {self.tolerance:g})")

    def to_dict(self) -> dict:
        return {"ok": bool(self), "arena_bytes": self.arena_bytes, "max_abs_diff": self.max_abs_diff,
                "tolerance": self.tolerance, "samples": self.samples, "error": self.error}


def check(model: bytes, inputs: Inputs, tolerance_steps: float = 1.0) -> MicroCheck:
    """Compare TFLM with LiteRT on ``inputs`` (``float32 N x h x w x c``, normalised; quantized here), or for a
    two-input model named arrays (``{"image", "map"}``), each set into the input of that name in both
    interpreters (TFLM's inputs are indexed in the model's own order, the same order as LiteRT's)."""
    try:
        from tflite_micro.python.tflite_micro import runtime  # lazy: tflite_micro
    except ImportError as exc:
        raise ModelError("the C-array check needs tflite-micro: pip install tflite-micro") from exc
    lite = make_interpreter(model, threads=1)
    specs, outd = input_specs(lite), output_specs(lite)[0]
    pairs = bind_inputs(specs, list(inputs)) if isinstance(inputs, Mapping) else [(specs[0], "")]
    integer = np.issubdtype(np.dtype(outd.dtype), np.integer)
    tol = tolerance_steps if integer else 1e-5
    diff, arena = 0.0, None
    try:
        with captured_native_output((2,)) as log:
            micro = runtime.Interpreter.from_bytes(model)
            for i in range(count_items(inputs)):
                # the same integer inputs for both interpreters; outputs compared raw, in quantization steps
                for pos, (ind, name) in enumerate(pairs):
                    x = quantize((inputs[name] if name else inputs)[i : i + 1], ind)
                    lite.set_tensor(ind.index, x)
                    micro.set_input(x, specs.index(ind) if name else pos)
                lite.invoke()
                ref = lite.get_tensor(outd.index)
                micro.invoke()
                got = micro.get_output(0)
                diff = max(diff, float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()))
            micro.print_allocations()
    except Exception as exc:  # TFLM raises RuntimeError for unsupported ops or a too-small arena
        return MicroCheck(None, float("inf"), tol, count_items(inputs), str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    m = re.search(r"Arena allocation total (\d+) bytes", log[0] if log else "")
    arena = int(m.group(1)) if m else None
    return MicroCheck(arena, diff, tol, count_items(inputs))
