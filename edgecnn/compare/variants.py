"""The variants of a run to compare: the Keras reference and TFLite files built from it or given (host side)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import EdgecnnError
from edgecnn.quantize.convert import PRECISIONS
from edgecnn.quantize.pipeline import quantize_run
from edgecnn.runtime.inspect import read_model_info


@dataclass(frozen=True)
class Variant:
    """One row of the comparison.

    Attributes:
        name: shown in the table (``keras``, ``fp32``, ..., or a given file's name).
        precision: ``fp32 (keras)``, or what the .tflite really holds (read back from the file, not its name),
            in the names of :mod:`edgecnn.runtime.precision` (the ones ``--precisions`` takes).
        path: the .tflite (or ``model.keras`` for the reference).
        origin: ``reference``, ``built`` or ``given``.
    """

    name: str
    precision: str
    path: Path
    origin: str


def build_variants(run_dir: Path, calibration: str | None, out_dir: Path, precisions: tuple[str, ...],
                   log: Callable[[str], None]) -> tuple[list[Variant], list[str]]:
    """Build (or reuse, when newer than the model) ``out_dir/model_<p>.tflite`` for each precision.

    Returns the variants and notes about the ones that could not be built (int8 without a calibration set).
    """
    notes: list[str] = []
    variants: list[Variant] = []
    model_mtime = (run_dir / "model.keras").stat().st_mtime
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgecnnError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
        if not calibration:
            notes.append(f"{p}: not built (needs --calibration)")
            continue
        path = out_dir / f"model_{p}.tflite"
        if path.is_file() and path.stat().st_mtime >= model_mtime:
            log(f"reusing {path}")
        else:
            log(f"building {p}")
            quantize_run(run_dir, calibration, p, path)
        variants.append(Variant(p, precision_of(path), path, "built"))
    return variants, notes


def precision_of(path: Path) -> str:
    """The precision a .tflite really has, read from its tensors, in the names ``edgecnn inspect`` shows
    (:data:`edgecnn.runtime.precision.PRECISIONS`: ``fp32``, ``fp16``, ``dynamic``, ``int8``, ``uint8``,
    ``int16x8``, the names ``--precisions`` takes)."""
    return read_model_info(path.read_bytes(), str(path)).quantization
