"""The variants of a run to compare: the Keras reference and TFLite files built from it or given (host side)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecnn.atomic import write_bytes
from edgecnn.errors import EdgecnnError
from edgecnn.quantize.convert import PRECISIONS, convert
from edgecnn.quantize.keras_model import load_keras_model
from edgecnn.quantize.pipeline import contract_with_quantization, quantize_run
from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.metadata import embed_contract
from edgecnn.train.run import load_run

# Precisions that need no calibration set: built straight from the Keras model when none is given.
FLOAT_PRECISIONS = ("fp32", "fp16", "dynamic")


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
                   log: Callable[[str], None],
                   progress: Callable[[int, int, str], None] | None = None) -> tuple[list[Variant], list[str]]:
    """Build (or reuse, when newer than the model) ``out_dir/model_<p>.tflite`` for each precision.

    fp32, fp16 and dynamic need no calibration set: without ``calibration`` they are converted straight from
    the run's Keras model (with its contract embedded, as ``edgecnn quantize`` does). int8 and int16x8 need
    one. ``progress(done, total, name)`` is called before each precision (and once at the end with
    ``done == total``); without it each build is logged.

    Returns the variants and notes about the ones that could not be built (int8 without a calibration set).
    """
    notes: list[str] = []
    variants: list[Variant] = []
    for p in precisions:
        if p not in PRECISIONS:
            raise EdgecnnError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    model_mtime = (run_dir / "model.keras").stat().st_mtime
    keras_model = None
    for i, p in enumerate(precisions):
        if progress:
            progress(i, len(precisions), p)
        if not calibration and p not in FLOAT_PRECISIONS:
            notes.append(f"{p}: not built (needs --calibration)")
            continue
        path = out_dir / f"model_{p}.tflite"
        if path.is_file() and path.stat().st_mtime >= model_mtime:
            if not progress:
                log(f"reusing {path}")
        else:
            if not progress:
                log(f"building {p}")
            if calibration:
                quantize_run(run_dir, calibration, p, path)
            else:
                keras_model = keras_model or load_keras_model(run_dir / "model.keras")
                build_float(run_dir, keras_model, p, path)
        variants.append(Variant(p, precision_of(path), path, "built"))
    if progress:
        progress(len(precisions), len(precisions), "")
    return variants, notes


def build_float(run_dir: Path, model, precision: str, out: Path) -> Path:
    """``out``: the run's Keras ``model`` converted to a float ``precision`` (fp32, fp16, dynamic), no
    calibration set, the run's contract embedded with the file's precision and I/O (written atomically)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data = convert(model, precision)
    contract = contract_with_quantization(load_run(run_dir).contract, read_model_info(data), None)
    write_bytes(out, embed_contract(data, contract))
    return out


def precision_of(path: Path) -> str:
    """The precision a .tflite really has, read from its tensors, in the names ``edgecnn inspect`` shows
    (:data:`edgecnn.runtime.precision.PRECISIONS`: ``fp32``, ``fp16``, ``dynamic``, ``int8``, ``uint8``,
    ``int16x8``, the names ``--precisions`` takes)."""
    return read_model_info(path.read_bytes(), str(path)).quantization
