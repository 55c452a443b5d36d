"""Edge TPU readiness: a static check of a .tflite, plus the real compiler's verdict when it is installed.

The static check needs no TensorFlow (flatbuffer only): a static batch-1 input, full-integer ops, and every op in
the set the Edge TPU maps (Coral's "supported operations" table); anything else is listed by name, because the
compiler silently leaves it, and everything after it, on the CPU. When ``edgetpu_compiler`` is on PATH it is run and
its log parsed (ops mapped, ops on CPU, on-chip versus off-chip parameter memory).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.runtime.inspect import read_model_info

# Coral's supported-operations table (TFLite builtin names). QUANTIZE/DEQUANTIZE at the model's edges are fine.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXP", "FULLY_CONNECTED",
    "GATHER", "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM",
    "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "DEQUANTIZE", "REDUCE_MAX", "RELU", "RELU6", "RELU_N1_TO_1",
    "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT",
    "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TILE", "TRANSPOSE",
})
# How each upsampling op fares on the Edge TPU, reported per model (segmentation decoders). TRANSPOSE_CONV is in
# Coral's table, but the strided transposed convolutions of a decoder (Conv2DTranspose, stride 2) fail to compile
# or fall back to the CPU in practice, so it is treated as not mapping; resize + Conv2D is the mapping route.
UPSAMPLING_OPS = {
    "TRANSPOSE_CONV": "will not map (strided Conv2DTranspose: the compiler leaves it and every op after it on the "
                      "CPU); use UpSampling2D/resize + Conv2D (architecture 'seg')",
    "RESIZE_BILINEAR": "maps (UpSampling2D bilinear / resize)",
    "RESIZE_NEAREST_NEIGHBOR": "maps (UpSampling2D nearest / resize)",
}


@dataclass(frozen=True)
class CompilerLog:
    """Parsed ``edgetpu_compiler`` output (None where the log did not say)."""

    ok: bool
    ops_on_tpu: int | None
    ops_on_cpu: int | None
    on_chip_memory: str | None
    off_chip_memory: str | None
    version: str | None
    operators: tuple[tuple[str, int, str], ...] = ()
    raw: str = ""


@dataclass(frozen=True)
class EdgeTpuReport:
    """Readiness of a model for the Edge TPU.

    Attributes:
        static_batch1: the input shape is fixed with batch 1.
        full_integer: every compute op is int8/uint8 (precision ``int8``).
        unsupported_ops: op names the Edge TPU cannot map (with counts).
        upsampling: ``{op: "x<count>: verdict"}`` for the upsampling ops in the model (:data:`UPSAMPLING_OPS`).
        ready: all three checks pass.
        compiler: the compiler's verdict, or None when ``edgetpu_compiler`` is not installed.
        notes: human-readable lines.
    """

    static_batch1: bool
    full_integer: bool
    unsupported_ops: dict[str, int]
    ready: bool
    compiler: CompilerLog | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    upsampling: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {"static_batch1": self.static_batch1, "full_integer": self.full_integer,
             "unsupported_ops": self.unsupported_ops, "upsampling": self.upsampling, "ready": self.ready,
             "notes": list(self.notes)}
        if self.compiler is None:
            d["compiler"] = None
        else:
            c = self.compiler
            d["compiler"] = {"ok": c.ok, "version": c.version, "ops_on_tpu": c.ops_on_tpu, "ops_on_cpu": c.ops_on_cpu,
                             "on_chip_memory": c.on_chip_memory, "off_chip_memory": c.off_chip_memory,
                             "operators": [list(o) for o in c.operators]}
        return d

    def text(self) -> str:
        return "\n".join(["Edge TPU readiness: " + ("READY" if self.ready else "NOT READY")] + [f"  {n}" for n in self.notes])


def parse_compiler_log(text: str, ok: bool = True) -> CompilerLog:
    """Parse the compiler's stdout (see module docstring)."""

    def find(pattern: str) -> str | None:
        m = re.search(pattern, text)
        return m.group(1).strip() if m else None

    tpu, cpu = find(r"operations that will run on Edge TPU:\s*(\d+)"), find(r"operations that will run on CPU:\s*(\d+)")
    total = find(r"Total number of operations:\s*(\d+)")
    operators = tuple((m.group(1), int(m.group(2)), m.group(3).strip())
                      for m in re.finditer(r"^([A-Z0-9_]+)\s+(\d+)\s+(\S.*)$", text, re.M))
    if tpu is None and total is not None and operators:
        # A fully mapped model prints no "will run on" lines: count from the operator table.
        tpu = str(sum(n for _, n, s in operators if s.startswith("Mapped to Edge TPU")))
        cpu = str(int(total) - int(tpu))
    return CompilerLog(ok, int(tpu) if tpu else None, int(cpu) if cpu else None,
                       find(r"On-chip memory used for caching model parameters:\s*(\S+)"),
                       find(r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)"),
                       find(r"Edge TPU Compiler version\s*(\S+)"), operators, text)


def run_compiler(model: bytes, out_dir: Path | None = None, timeout: float = 300) -> tuple[CompilerLog, bytes | None] | None:
    """Compile ``model`` with ``edgetpu_compiler`` if on PATH: ``(log, compiled bytes or None)``, else None."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(model)
        try:
            p = subprocess.run([exe, "-s", "-o", tmp, str(src)], capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return CompilerLog(False, None, None, None, None, None, (), f"edgetpu_compiler failed: {exc}"), None
        compiled = Path(tmp) / "model_edgetpu.tflite"
        data = compiled.read_bytes() if compiled.exists() else None
        return parse_compiler_log(p.stdout + p.stderr, p.returncode == 0), data


def readiness(model: bytes, compile: bool = True) -> tuple[EdgeTpuReport, bytes | None]:
    """Check ``model`` (.tflite bytes): ``(report, Edge TPU-compiled bytes or None)``."""
    info = read_model_info(model)
    shapes = [t.signature for t in info.inputs]  # -1 marks a dynamic dimension; every input must be static
    static = bool(shapes) and all(bool(sh) and sh[0] == 1 and all(d > 0 for d in sh) for sh in shapes)
    shape = shapes[0] if shapes else ()
    full_int = info.precision == "int8"
    bad = dict(Counter(name for name, _ in info.ops if name not in EDGETPU_OPS))
    shown = ", ".join(f"{t.name} {list(t.signature)}" for t in info.inputs) if len(shapes) > 1 else str(list(shape))
    notes = [f"input shape {shown}: " + ("static, batch 1" if static else "dynamic or batch != 1 (re-export)"),
             f"precision read from the model: {info.precision}" + ("" if full_int else " (the Edge TPU needs full int8)")]
    notes.append("ops the Edge TPU cannot map: " + (", ".join(f"{k} x{v}" for k, v in bad.items()) if bad else "none"))
    counts = Counter(name for name, _ in info.ops)
    upsampling = {op: f"x{counts[op]}: {verdict}" for op, verdict in UPSAMPLING_OPS.items() if counts[op]}
    notes += [f"upsampling {op} {v}" for op, v in upsampling.items()]
    compiled = None
    result = run_compiler(model) if compile else None
    if result is None:
        notes.append("edgetpu_compiler not found on PATH: static check only (install it on x86-64 Linux to compile)")
        log = None
    else:
        log, compiled = result
        notes.append(f"edgetpu_compiler {log.version or '?'}: {'compiled' if log.ok else 'FAILED'}, ops on Edge TPU "
                     f"{log.ops_on_tpu}, on CPU {log.ops_on_cpu}, on-chip {log.on_chip_memory}, off-chip "
                     f"{log.off_chip_memory}")
    report = EdgeTpuReport(static, full_int, bad, static and full_int and not bad, log, tuple(notes), upsampling)
    return report, compiled
