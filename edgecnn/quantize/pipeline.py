"""``edgecnn quantize``: a run + a calibration set -> one verified .tflite with the contract inside (host side).

Everything the user passed is validated before any conversion starts (model file, calibration set, its match with
the model, the output location), so a bad input costs one line and leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import write_bytes, write_text
from edgecnn.contract import Contract
from edgecnn.errors import DataError, EdgecnnError, OutputError
from edgecnn.quantize.calibration import CalibrationSet, check_compatible, load_calibration, model_inputs
from edgecnn.quantize.convert import PRECISIONS, batch1, convert, input_names
from edgecnn.quantize.fidelity import FidelityReport, layer_report
from edgecnn.quantize.keras_model import check_keras_file, load_keras_model
from edgecnn.quantize.selective import KeepFloatResult
from edgecnn.quantize.selective import keep_float as run_keep_float
from edgecnn.runtime.evaluate import (
    IMAGE_INPUT,
    MAP_INPUT,
    Inputs,
    load_model_inputs,
    map_shape,
    tensor_input_name,
)
from edgecnn.runtime.inspect import ModelInfo, read_model_info
from edgecnn.runtime.metadata import embed_contract, read_contract
from edgecnn.train.run import RunInfo, load_run

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A run's model and a matching calibration set, loaded and checked.

    Attributes:
        run: the run folder.
        model: the Keras model; ``model_b1`` the same with a static batch of 1.
        calib: the calibration set; ``calib_inputs`` its model inputs (``float32 N x h x w x c``, or
            ``{"image", "map"}`` arrays for a navigation model).
    """

    run: RunInfo
    model: Any
    model_b1: Any
    calib: CalibrationSet
    calib_inputs: Inputs


def check_writable(folder: str | Path) -> None:
    """OutputError unless a file can be created in ``folder`` (or, when it does not exist yet, in its nearest
    existing ancestor). Probes with a real temp file (permission bits lie for root) and creates nothing."""
    folder = Path(folder).absolute()
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(f"cannot write to {folder}: {probe_dir} is a file, not a folder; choose another output")
    try:
        fd, probe = tempfile.mkstemp(prefix=".edgecnn-probe.", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write to {folder}: {exc.strerror or exc}; choose a writable output folder") from exc


def prepare(run_dir: str | Path, calibration: str | Path, log: Log = lambda m: None) -> Prepared:
    """Load and cross-check a run (or .keras file) and a calibration set; nothing is written."""
    p = Path(run_dir)
    if p.is_file():
        check_keras_file(p)  # a non-Keras file is named as such before we look for its contract
    run = load_run(run_dir)
    check_keras_file(run.model_path)
    calib = load_calibration(calibration)
    check_compatible(calib, run.contract)
    log(f"loading {run.model_path}")
    model = load_keras_model(run.model_path)
    shape = tuple(model.inputs[0].shape[1:])
    c = run.contract
    if shape != (c.input_height, c.input_width, c.channels):
        raise DataError(f"model input {shape} does not match its contract {c.input_height}x{c.input_width}x"
                        f"{c.channels}; the run folder is inconsistent")
    want_map = map_shape(c)
    names = input_names(model)
    if want_map is not None and (names != (IMAGE_INPUT, MAP_INPUT) or tuple(model.inputs[1].shape[1:]) != want_map):
        raise DataError(f"model inputs {list(names)} {[tuple(t.shape[1:]) for t in model.inputs]} do not match its "
                        f"contract (image + a {want_map[0]}x{want_map[1]}x{want_map[2]} map); the run folder is "
                        "inconsistent")
    if want_map is None and len(names) != 1:
        raise DataError(f"model has {len(names)} inputs ({', '.join(names)}) but its contract describes one")
    return Prepared(run, model, batch1(model), calib, model_inputs(calib, c))


def contract_with_quantization(contract: Contract, info: ModelInfo, calib: CalibrationSet | None,
                               kept_float: Sequence[str] = ()) -> Contract:
    """The run's contract plus what the device needs to know about this file: precision, I/O quantization
    (``real = scale * (q - zero_point)``) and the calibration set's sha256."""
    def q(t):
        return {"dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}

    extra = dict(contract.extra)
    extra["precision"] = info.precision
    image = next((t for t in info.inputs if tensor_input_name(t.name) == IMAGE_INPUT), info.inputs[0])
    extra["input_quantization"] = q(image)  # the camera input (the only one of a single-input model)
    if len(info.inputs) > 1:  # every input by name, so the device never picks one by position
        extra["inputs"] = {tensor_input_name(t.name): {"tensor": t.name, "shape": list(t.shape), **q(t)}
                           for t in info.inputs}
    extra["output_quantization"] = q(info.outputs[0])
    if calib is not None:
        extra["calibration_sha256"] = calib.sha256
        extra["calibration_count"] = len(calib)
    if kept_float:
        extra["kept_float"] = list(kept_float)
    return contract.replace(extra=extra)


def finish_model(data: bytes, prep: Prepared, kept_float: Sequence[str] = ()) -> tuple[bytes, ModelInfo]:
    """Embed the contract (with quantization parameters) into ``data`` and re-read its precision."""
    info = read_model_info(data)
    uses_calib = info.precision not in ("fp32", "fp16", "dynamic")
    contract = contract_with_quantization(prep.run.contract, info, prep.calib if uses_calib else None, kept_float)
    out = embed_contract(data, contract)
    if read_contract(out) != contract:
        raise RuntimeError("the contract embedded in the model does not read back as written")
    return out, read_model_info(out)


@dataclass(frozen=True)
class QuantizeResult:
    """What ``edgecnn quantize`` produced."""

    path: Path
    info: ModelInfo
    fidelity: FidelityReport | None
    fidelity_csv: Path | None
    keep_float: KeepFloatResult | None


def heldout(run: RunInfo, limit: int = 300) -> tuple[Inputs, np.ndarray]:
    """``(model inputs, targets)`` of the run's validation split (disjoint from calibration): ``float32 M x h x w
    x c``, or ``{"image", "map"}`` arrays for a navigation run."""
    items = list(run.splits.get("val", ()))[:limit]
    if not items:
        raise DataError(f"{run.root} has no validation split; --keep-float auto needs one to measure the loss")
    inputs = load_model_inputs([i.path for i in items], run.contract, [i.map or "" for i in items])
    return inputs, np.asarray([i.target for i in items])


def quantize_run(run_dir: str | Path, calibration: str | Path, precision: str, out: str | Path, io: str = "int8",
                 keep_float: str | Sequence[str] | None = None, tolerance: float | None = None,
                 log: Log = lambda m: None) -> QuantizeResult:
    """Convert a run's model to ``precision`` and write ``out`` (.tflite) and, for int8, ``out``'s
    ``.fidelity.csv`` beside it, each atomically.

    Args:
        keep_float: None, ``"auto"`` or layer names (int8 only; see :mod:`edgecnn.quantize.selective`).
        tolerance: for ``keep_float="auto"``: largest acceptable accuracy drop in percentage points (classify,
            default 0.5) or MAE increase (steer, default 0.01) on the validation split.
    """
    out = Path(out)
    if out.suffix != ".tflite":
        raise OutputError(f"--out must be a .tflite path, got: {out}")
    if precision not in PRECISIONS:
        raise EdgecnnError(f"--precision must be one of {', '.join(PRECISIONS)}, got: {precision!r}")
    if keep_float and precision != "int8":
        raise EdgecnnError("--keep-float applies to --precision int8 only")
    check_writable(out.parent)
    prep = prepare(run_dir, calibration, log)
    log(f"converting to {precision} with {len(prep.calib)} calibration images")
    data = convert(prep.model, precision, prep.calib_inputs, io)
    report, kept = None, None
    if precision == "int8":
        log("measuring per-layer error with the quantization debugger")
        report = layer_report(prep.model_b1, prep.calib_inputs, io)
        if keep_float:
            task = prep.run.contract.task
            tol = tolerance if tolerance is not None else (0.5 if task == "classify" else 0.01)
            x, y = heldout(prep.run)
            layers = "auto" if keep_float == "auto" else list(keep_float)
            kept = run_keep_float(prep.model_b1, data, prep.calib_inputs, report, x, y, prep.run.contract, tol, layers, io, log=log)
            data = kept.model
    data, info = finish_model(data, prep, kept.kept_layers if kept else ())
    write_bytes(out, data)
    csv_path = None
    if report is not None:
        csv_path = out.with_suffix(".fidelity.csv")
        write_text(csv_path, report.csv())
    return QuantizeResult(out, info, report, csv_path, kept)
