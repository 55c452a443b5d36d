"""``edgecnn export``: a run + a calibration set -> a device bundle folder (host side).

``firmware_models/NAME/`` holds ``model_int8.tflite`` (contract inside), optionally other precisions,
``labels.txt`` (Coral convention, classifiers), ``fidelity.csv`` (per-layer int8 error), ``model_card.json``, and on
request ``edgetpu_report.json`` (+ ``model_int8_edgetpu.tflite`` when the compiler is installed) and
``model_int8_data.h``/``.cc`` for TensorFlow Lite Micro. The bundle is built in a temporary folder beside the
destination and swapped in at the end: an interrupted export never leaves a half-written bundle.

Test metrics are measured on the run's test split, which never overlaps the calibration set (checked).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import DataError, EdgecnnError

Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportResult:
    """What ``edgecnn export`` wrote."""

    root: Path
    card: Any  # ModelCard
    fidelity_table: str
    edgetpu_text: str | None
    micro_text: str | None


def _test_data(prep, log: Log) -> tuple[np.ndarray, np.ndarray, int]:
    """``(float32 N x h x w x c inputs, targets, excluded)`` of the run's test split, minus any image that is
    also in the calibration set (same path or same bytes): evaluation and calibration stay disjoint."""
    from edgecnn.export.evaluate import load_inputs
    from edgecnn.quantize.calibration import in_calibration

    items = list(prep.run.splits.get("test", ()))
    if not items:
        raise DataError(f"{prep.run.root} has no test split in split.json; cannot measure the exported model")
    kept = [i for i, leaked in zip(items, in_calibration(prep.calib, [i.path for i in items])) if not leaked]
    excluded = len(items) - len(kept)
    if excluded:
        log(f"warning: {excluded} test images are also in the calibration set (same file or same bytes); "
            "they are left out of the test metrics")
    if not kept:
        raise DataError("every test image is also in the calibration set; make the set with edgecnn calibrate RUN")
    log(f"loading {len(kept)} test images")
    return load_inputs([i.path for i in kept], prep.run.contract), np.asarray([i.target for i in kept]), excluded


def export_run(run_dir: str | Path, calibration: str | Path, out: str | Path,
               precisions: Sequence[str] = ("int8",), io: str = "int8", edgetpu: bool = False,
               c_array: bool = False, overwrite: bool = False, log: Log = lambda m: None) -> ExportResult:
    """Write a device bundle for ``run_dir`` to ``out`` (see module docstring)."""
    from edgecnn.atomic import check_folder_dest, staged_dir
    from edgecnn.export import model_card as mc
    from edgecnn.export.evaluate import predict, score_outputs, steering_of
    from edgecnn.labels import format_labels
    from edgecnn.quantize.convert import PRECISIONS, convert
    from edgecnn.quantize.fidelity import layer_report
    from edgecnn.quantize.pipeline import check_writable, finish_model, prepare
    from edgecnn.runtime.metadata import read_contract

    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise EdgecnnError(f"--precision must be among {', '.join(PRECISIONS)}, got: {', '.join(bad)}")
    out = check_folder_dest(out, overwrite)  # before the slow part; staged_dir checks again at the end
    check_writable(out.parent)
    prep = prepare(run_dir, calibration, log)
    contract = prep.run.contract
    x_test, y_test, excluded = _test_data(prep, log)

    log("float model: Keras and fp32 TFLite on the test split")
    keras_out = np.asarray(prep.model.predict(x_test, batch_size=32, verbose=0), dtype=np.float32)
    fp32 = convert(prep.model, "fp32")
    fp32_out = predict(fp32, x_test)
    metrics: dict[str, Any] = {"float_keras": score_outputs(keras_out, y_test, contract).to_dict()}
    parity: dict[str, Any] = {"keras_vs_fp32_tflite_max_abs": float(np.abs(keras_out - fp32_out).max()),
                              "keras_vs_fp32_tflite_tolerance": 1e-4, "test_images": int(len(y_test)),
                              "calibration_test_overlap": 0, "test_images_excluded_as_in_calibration": excluded}
    sizes: dict[str, int] = {"fp32_reference": len(fp32)}

    models: dict[str, bytes] = {}
    infos: dict[str, Any] = {}
    wanted = ["int8"] + [p for p in precisions if p != "int8"]
    for p in wanted:
        log(f"converting to {p}")
        data = fp32 if p == "fp32" else convert(prep.model, p, prep.calib_inputs, io)
        data, info = finish_model(data, prep)
        if read_contract(data) is None:
            raise EdgecnnError("contract missing after embedding; this is a bug, please report it")
        models[p], infos[p] = data, info
        sizes[p] = len(data)
        q_out = predict(data, x_test)
        metrics[f"model_{p}.tflite"] = score_outputs(q_out, y_test, contract).to_dict()
        if contract.task == "classify":
            parity[f"{p}_vs_float_top1_agreement"] = float((q_out.argmax(1) == keras_out.argmax(1)).mean())
        else:
            parity[f"{p}_vs_float_steering_max_abs"] = float(
                np.abs(steering_of(q_out, contract) - steering_of(keras_out, contract)).max())
    int8_info = infos["int8"]
    parity["int8_size_ratio_vs_fp32"] = round(len(fp32) / len(models["int8"]), 3)

    log("per-layer error of int8 (quantization debugger)")
    report = layer_report(prep.model_b1, prep.calib_inputs, io)

    reports: dict[str, Any] = {}
    edgetpu_text = micro_text = None
    extra_files: dict[str, bytes] = {}
    if edgetpu:
        from edgecnn.export.edgetpu import readiness

        log("Edge TPU readiness")
        et, compiled = readiness(models["int8"])
        reports["edgetpu"] = et.to_dict()
        edgetpu_text = et.text()
        extra_files["edgetpu_report.json"] = (json.dumps(et.to_dict(), indent=2) + "\n").encode()
        if compiled is not None:
            extra_files["model_int8_edgetpu.tflite"] = compiled
    if c_array:
        from edgecnn.export.c_array import parse_c_array, to_c_array
        from edgecnn.export.micro_check import check

        header, source = to_c_array(models["int8"], "g_model_int8", "model_int8_data.h")
        if parse_c_array(source) != models["int8"]:
            raise EdgecnnError("C array does not round-trip to the model bytes; this is a bug, please report it")
        extra_files["model_int8_data.h"] = header.encode()
        extra_files["model_int8_data.cc"] = source.encode()
        log("running the model in the tflite-micro interpreter")
        mcheck = check(models["int8"], x_test[:20])
        reports["tflite_micro"] = mcheck.to_dict() | {"c_array_roundtrip": True}
        micro_text = mcheck.text()

    with staged_dir(out, overwrite=overwrite) as tmp:
        for p, data in models.items():
            (tmp / f"model_{p}.tflite").write_bytes(data)
        if contract.task == "classify":
            (tmp / "labels.txt").write_text(format_labels(contract.labels), encoding="utf-8")
        (tmp / "fidelity.csv").write_text(report.csv(), encoding="utf-8")
        for name, data in extra_files.items():
            (tmp / name).write_bytes(data)
        c = contract
        card = mc.ModelCard(
            architecture=c.arch, task=c.task, precision=int8_info.precision,
            input={"height": c.input_height, "width": c.input_width, "channels": c.channels,
                   "color_order": c.color_order, "mean": list(c.mean), "std": list(c.std), "resize": c.resize,
                   "dtype": int8_info.inputs[0].dtype, "scale": int8_info.inputs[0].scale,
                   "zero_point": int8_info.inputs[0].zero_point},
            labels=list(c.labels), files=mc.file_table(tmp), sizes=sizes,
            calibration={"path": str(prep.calib.root), "sha256": prep.calib.sha256, "count": len(prep.calib),
                         "source_split": "train"},
            metrics=metrics, parity=parity, reports=reports, versions=mc.versions(), git_commit=mc.git_commit(),
            created=mc.now_utc())
        (tmp / "model_card.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return ExportResult(out, card, report.table(), edgetpu_text, micro_text)
