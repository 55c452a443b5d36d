"""``edgecnn export``: a run + a calibration set -> a device bundle folder (host side).

``firmware_models/NAME/`` holds ``model_int8.tflite`` (contract inside), optionally other precisions,
``labels.txt`` (Coral convention, classifiers), ``fidelity.csv`` (per-layer int8 error), ``model_card.json``, and on
request ``edgetpu_report.json`` (+ ``model_int8_edgetpu.tflite`` when the compiler is installed) and
``model_int8_data.h``/``.cc`` for TensorFlow Lite Micro. The bundle is built in a temporary folder beside the
destination and swapped in at the end: an interrupted export never leaves a half-written bundle.

:func:`export_run` is a sequence of named steps, each a small function returning a frozen result:
:func:`load_test_split` -> :func:`convert_step` -> :func:`score_step` -> :func:`parity_step` ->
(:func:`edgetpu_step`) -> (:func:`c_array_step`) -> :func:`model_card` -> :func:`write_bundle`. The parity step's
tolerance is enforced: a Keras model and its fp32 TFLite conversion that differ by more than it stop the export
before anything is written, unless the caller allows the drift (``--allow-parity-drift``; the card records it).

Test metrics are measured on the run's test split, which never overlaps the calibration set (checked).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import check_folder_dest, staged_dir
from edgecnn.contract import Contract
from edgecnn.data.masks import load_mask, mask_for_model, mask_path_for
from edgecnn.errors import DataError, EdgecnnError, ModelError
from edgecnn.export import model_card as mc
from edgecnn.export.c_array import parse_c_array, to_c_array
from edgecnn.export.edgetpu import EdgeTpuReport, readiness
from edgecnn.export.micro_check import MicroCheck, check
from edgecnn.junction import JunctionLabel
from edgecnn.labels import format_labels
from edgecnn.mixture import junction_metrics
from edgecnn.quantize.calibration import in_calibration
from edgecnn.quantize.convert import PRECISIONS, convert, input_names
from edgecnn.quantize.fidelity import FidelityReport, layer_report
from edgecnn.quantize.pipeline import Prepared, check_writable, finish_model, prepare
from edgecnn.runtime.evaluate import (
    IMAGE_INPUT,
    MAP_INPUT,
    Inputs,
    class_maps,
    load_model_inputs,
    predict,
    score_outputs,
    steering_of,
    take,
    tensor_input_name,
)
from edgecnn.runtime.inspect import ModelInfo
from edgecnn.runtime.metadata import read_contract

Log = Callable[[str], None]

# Largest |Keras - fp32 TFLite| output difference accepted: both are float32 runs of the same graph, so anything
# beyond rounding (a wrong op, a dropped layer, a changed preprocessing) is a conversion that changed the model.
KERAS_VS_TFLITE_TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------ step results


@dataclass(frozen=True)
class EvalSplit:
    """The run's test split as model inputs, minus images that are also in the calibration set.

    Attributes:
        inputs: ``float32 N x h x w x c`` normalised model inputs (navigation: ``{"image", "map"}`` arrays).
        targets: ``int64 N`` class indexes (classify) or ``float32 N`` steering values (steer).
        paths: the N image files, in order.
        excluded: test images left out because they are also in the calibration set.
        junctions: navigation runs: per frame its :class:`~edgecnn.junction.JunctionLabel`; empty otherwise.
    """

    inputs: Inputs
    targets: np.ndarray
    paths: tuple[str, ...]
    excluded: int
    junctions: tuple[JunctionLabel, ...] = ()


@dataclass(frozen=True)
class Converted:
    """The exported models and the float reference.

    Attributes:
        models: precision -> .tflite bytes with the contract inside; ``int8`` always, first.
        infos: precision -> what the file really is (read back from it).
        fp32_reference: the fp32 conversion without a contract, the reference for the Keras parity check.
    """

    models: dict[str, bytes]
    infos: dict[str, ModelInfo]
    fp32_reference: bytes


@dataclass(frozen=True)
class Scores:
    """Outputs and test metrics of the float model and of every exported model on the test split.

    Attributes:
        keras: ``float32 N x K`` Keras outputs (probabilities or steering head outputs).
        fp32_reference: ``float32 N x K`` outputs of the fp32 TFLite reference.
        exported: precision -> ``float32 N x K`` dequantized outputs of that exported model.
        metrics: ``{"float_keras": {...}, "model_<p>.tflite": {...}}`` (``Score.to_dict``: metric, value, count).
    """

    keras: np.ndarray
    fp32_reference: np.ndarray
    exported: dict[str, np.ndarray]
    metrics: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class ParityExample:
    """One test input where two models disagree: its index and file, both outputs and their difference."""

    index: int
    path: str
    reference: tuple[float, ...]
    candidate: tuple[float, ...]

    @property
    def max_abs(self) -> float:
        return float(np.abs(np.subtract(self.candidate, self.reference)).max()) if self.reference else 0.0


@dataclass(frozen=True)
class ParityCheck:
    """Keras versus its fp32 TFLite conversion on the test split; truthy when within tolerance.

    Like tflite-micro's cross-check result: ``bool(check)`` answers "do they agree?", :meth:`text` prints the
    verdict and, when they do not, the worst inputs with both outputs and the differences.

    Attributes:
        max_abs: largest absolute output difference over all inputs and outputs (output units).
        tolerance: the accepted maximum, same unit.
        count: inputs compared.
        worst: up to three inputs with the largest differences, worst first.
    """

    max_abs: float
    tolerance: float
    count: int
    worst: tuple[ParityExample, ...] = ()
    reference_name: str = "Keras"
    candidate_name: str = "fp32 TFLite"

    def __bool__(self) -> bool:
        return bool(np.isfinite(self.max_abs)) and self.max_abs <= self.tolerance

    def summary(self) -> str:
        """One line: the verdict."""
        verdict = "within tolerance" if self else "BEYOND tolerance"
        return (f"{self.reference_name} vs {self.candidate_name} max |diff|: {self.max_abs:.2e} (tolerance "
                f"{self.tolerance:g}, {self.count} test images): {verdict}")

    def text(self) -> str:
        """The verdict, plus the worst inputs and their outputs when beyond tolerance."""
        lines = [self.summary()]
        if not self:
            for e in self.worst:
                diff = np.subtract(e.candidate, e.reference)
                lines.append(f"  test image {e.index} ({e.path}): max |diff| {e.max_abs:.2e}")
                lines.append(f"    {self.reference_name:>11}: {_fmt(e.reference)}")
                lines.append(f"    {self.candidate_name:>11}: {_fmt(e.candidate)}")
                lines.append(f"    {'difference':>11}: {_fmt(diff)}")
        return "\n".join(lines)


def _fmt(values: Sequence[float], limit: int = 8) -> str:
    shown = ", ".join(f"{v:+.6f}" for v in list(values)[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


@dataclass(frozen=True)
class Parity:
    """The parity step: the enforced Keras-vs-fp32 check, and the card's ``parity`` figures (agreement of every
    exported precision with the float model, size ratio, split disjointness)."""

    float_check: ParityCheck
    figures: dict[str, Any]


@dataclass(frozen=True)
class EdgeTpuStep:
    """Edge TPU readiness of the int8 model; ``compiled`` holds the compiler's output when it is installed."""

    report: EdgeTpuReport
    compiled: bytes | None


@dataclass(frozen=True)
class CArrayStep:
    """The int8 model as a C header/source pair (round trip checked) and its run in tflite-micro."""

    header: str
    source: str
    micro: MicroCheck


@dataclass(frozen=True)
class ExportResult:
    """What ``edgecnn export`` wrote."""

    root: Path
    card: mc.ModelCard
    fidelity_table: str
    edgetpu_text: str | None
    micro_text: str | None
    parity: ParityCheck | None = None


# ------------------------------------------------------------------------------------------------------- steps


def load_target_mask(image_path: str, contract: Contract) -> np.ndarray:
    """The class mask of a segmentation test image (``masks/<stem>.png`` beside its ``images/`` folder) at the
    model's input size, ``uint8 h x w`` (the contract's crop, then nearest-neighbour; 255 = ignore)."""
    return mask_for_model(load_mask(mask_path_for(image_path), len(contract.labels)), contract)


def load_test_split(prep: Prepared, log: Log) -> EvalSplit:
    """The run's test split as model inputs, minus any image that is also in the calibration set (same path or
    same bytes): evaluation and calibration stay disjoint."""
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
    paths = tuple(str(i.path) for i in kept)
    c = prep.run.contract
    # segment: the targets are the class masks at the model's input size (nearest-neighbour), not the group
    targets = (np.stack([load_target_mask(p, c) for p in paths]) if c.task == "segment"
               else np.asarray([i.target for i in kept]))
    inputs = load_model_inputs(list(paths), c, [i.map or "" for i in kept])
    nav = c.task == "navigate"
    return EvalSplit(inputs, targets, paths, excluded, tuple(i.junction for i in kept) if nav else ())


def convert_step(prep: Prepared, precisions: Sequence[str], io: str, log: Log) -> Converted:
    """Convert to int8 and every extra precision, each with the contract embedded and read back."""
    log("converting to fp32 (the float reference)")
    fp32 = convert(prep.model, "fp32")
    models: dict[str, bytes] = {}
    infos: dict[str, ModelInfo] = {}
    for p in ["int8"] + [p for p in precisions if p != "int8"]:
        log(f"converting to {p}")
        data = fp32 if p == "fp32" else convert(prep.model, p, prep.calib_inputs, io)
        data, info = finish_model(data, prep)
        if read_contract(data) is None:
            raise RuntimeError(f"the contract is missing from the {p} model right after embedding it")
        models[p], infos[p] = data, info
    return Converted(models, infos, fp32)


def score_step(prep: Prepared, conv: Converted, test: EvalSplit, log: Log) -> Scores:
    """Run Keras, the fp32 reference and every exported model on the test split and score them."""
    contract = prep.run.contract
    log("scoring the float model (Keras, fp32 TFLite) and the exported models on the test split")
    keras_out = np.asarray(prep.model.predict(keras_inputs(prep.model, test.inputs), batch_size=32, verbose=0),
                           dtype=np.float32)
    keras_out = keras_out.reshape(len(keras_out), -1)  # a class map flattened like the TFLite outputs
    fp32_out = predict(conv.fp32_reference, test.inputs)
    exported = {p: predict(data, test.inputs) for p, data in conv.models.items()}
    def scored(out: np.ndarray) -> dict[str, Any]:
        d = score_outputs(out, test.targets, contract).to_dict()
        if test.junctions:  # navigation: the junction figures of metrics.json, for every exported model too
            d["junctions"] = junction_metrics(out, test.targets, test.junctions,
                                              routed=bool(contract.map.get("routed")))
        return d

    metrics: dict[str, dict[str, Any]] = {"float_keras": scored(keras_out)}
    for p, out in exported.items():
        metrics[f"model_{p}.tflite"] = scored(out)
    return Scores(keras_out, fp32_out, exported, metrics)


def parity_check(reference: np.ndarray, candidate: np.ndarray, paths: Sequence[str], tolerance: float,
                 reference_name: str = "Keras", candidate_name: str = "fp32 TFLite") -> ParityCheck:
    """Compare two models' outputs (``float32 N x K`` each, same inputs in the same order)."""
    if reference.shape != candidate.shape:
        raise RuntimeError(f"{reference_name} outputs {reference.shape} and {candidate_name} outputs "
                           f"{candidate.shape} differ in shape")
    diff = np.abs(candidate.astype(np.float64) - reference.astype(np.float64))
    per_input = diff.reshape(len(diff), -1).max(axis=1) if len(diff) else np.zeros(0)
    order = np.argsort(-per_input, kind="stable")[:3]
    worst = tuple(ParityExample(int(i), str(paths[i]), tuple(float(v) for v in reference[i].ravel()),
                                tuple(float(v) for v in candidate[i].ravel())) for i in order)
    return ParityCheck(float(per_input.max()) if len(per_input) else 0.0, tolerance, len(per_input), worst,
                       reference_name, candidate_name)


def parity_step(conv: Converted, scores: Scores, test: EvalSplit, contract: Contract,
                tolerance: float = KERAS_VS_TFLITE_TOLERANCE) -> Parity:
    """The Keras-vs-fp32 check (enforced by :func:`export_run`) and agreement of every exported model with the
    float model (top-1 agreement for classifiers, max steering difference for steering)."""
    float_check = parity_check(scores.keras, scores.fp32_reference, test.paths, tolerance)
    figures: dict[str, Any] = {"keras_vs_fp32_tflite_max_abs": float_check.max_abs,
                               "keras_vs_fp32_tflite_tolerance": tolerance,
                               "keras_vs_fp32_tflite_within_tolerance": bool(float_check),
                               "test_images": int(len(test.targets)), "calibration_test_overlap": 0,
                               "test_images_excluded_as_in_calibration": test.excluded}
    for p, out in scores.exported.items():
        if contract.task == "segment":
            figures[f"{p}_vs_float_pixel_agreement"] = float(
                (class_maps(out, contract) == class_maps(scores.keras, contract)).mean())
        elif contract.task == "classify":
            figures[f"{p}_vs_float_top1_agreement"] = float((out.argmax(1) == scores.keras.argmax(1)).mean())
        else:
            figures[f"{p}_vs_float_steering_max_abs"] = float(
                np.abs(steering_of(out, contract) - steering_of(scores.keras, contract)).max())
    figures["int8_size_ratio_vs_fp32"] = round(len(conv.fp32_reference) / len(conv.models["int8"]), 3)
    return Parity(float_check, figures)


def enforce_parity(result: ParityCheck, allow_drift: bool, log: Log) -> None:
    """ModelError (nothing written yet) when ``result`` fails, unless ``allow_drift``; the details are logged."""
    if result:
        return
    log(result.text())
    if allow_drift:
        log("warning: --allow-parity-drift: exporting anyway; the model card records the drift")
        return
    raise ModelError(f"the fp32 TFLite conversion differs from the Keras model by {result.max_abs:.2e} (tolerance "
                     f"{result.tolerance:g}; worst inputs above): nothing was written; check the model's layers "
                     "and ops, or pass --allow-parity-drift to export it anyway")


def edgetpu_step(int8: bytes, log: Log) -> EdgeTpuStep:
    """Static Edge TPU readiness of the int8 model, and the compiler's verdict when it is installed."""
    log("Edge TPU readiness")
    report, compiled = readiness(int8)
    return EdgeTpuStep(report, compiled)


def keras_inputs(model, inputs: Inputs):
    """``inputs`` as a Keras model takes them: the array, or for named inputs a list in the model's input order."""
    if isinstance(inputs, Mapping):
        return [inputs[n] for n in input_names(model)]
    return inputs


def c_array_step(int8: bytes, inputs: Inputs, log: Log, samples: int = 20) -> CArrayStep:
    """The int8 model as C source (its round trip checked) and a run of ``samples`` test ``inputs`` (``float32
    N x h x w x c``, or named arrays) in the tflite-micro interpreter against LiteRT."""
    header, source = to_c_array(int8, "g_model_int8", "model_int8_data.h")
    if parse_c_array(source) != int8:
        raise RuntimeError("the C array does not round-trip to the model bytes")
    log("running the model in the tflite-micro interpreter")
    return CArrayStep(header, source, check(int8, take(inputs, 0, samples)))


def model_card(prep: Prepared, conv: Converted, scores: Scores, parity: Parity, folder: Path,
               reports: dict[str, Any], allow_parity_drift: bool = False) -> mc.ModelCard:
    """The card of the bundle whose files are in ``folder`` (their sizes and sha256 are read from there)."""
    c = prep.run.contract
    int8 = conv.infos["int8"]
    sizes = {"fp32_reference": len(conv.fp32_reference)} | {p: len(d) for p, d in conv.models.items()}
    figures = dict(parity.figures)
    if allow_parity_drift:
        figures["parity_drift_allowed"] = True
    by_name = {tensor_input_name(t.name): t for t in int8.inputs}
    image = by_name.get(IMAGE_INPUT, int8.inputs[0])
    card_input = {"height": c.input_height, "width": c.input_width, "channels": c.channels,
                  "color_order": c.color_order, "mean": list(c.mean), "std": list(c.std), "resize": c.resize,
                  "crop": list(c.crop), "source_size": list(c.source_size),
                  "dtype": image.dtype, "scale": image.scale, "zero_point": image.zero_point}
    nav = getattr(c, "map", None) or {}
    if nav and MAP_INPUT in by_name:  # the second input of a navigation model, described as the contract does
        t = by_name[MAP_INPUT]
        card_input["map"] = {"tensor": t.name, "shape": list(t.shape), "dtype": t.dtype, "scale": t.scale,
                             "zero_point": t.zero_point, "value": "raster / 255 (rasters are 0 or 255)", **nav}
    return mc.ModelCard(
        architecture=c.arch, task=c.task, precision=int8.precision,
        input=card_input,
        labels=list(c.labels), files=mc.file_table(folder), sizes=sizes,
        calibration={"path": str(prep.calib.root), "sha256": prep.calib.sha256, "count": len(prep.calib),
                     "source_split": "train"},
        metrics=scores.metrics, parity=figures, reports=reports, warnings=mc.run_warnings(prep.run.metrics),
        versions=mc.versions(), git_commit=mc.git_commit(), created=mc.now_utc())


def write_bundle(out: Path, overwrite: bool, prep: Prepared, conv: Converted, scores: Scores, parity: Parity,
                 fidelity: FidelityReport, edgetpu: EdgeTpuStep | None, c_array: CArrayStep | None,
                 allow_parity_drift: bool = False) -> mc.ModelCard:
    """Write every file into a staged folder and swap it in at ``out``; returns the model card it wrote."""
    files: dict[str, bytes] = {f"model_{p}.tflite": data for p, data in conv.models.items()}
    reports: dict[str, Any] = {}
    if prep.run.contract.task in ("classify", "segment"):
        files["labels.txt"] = format_labels(prep.run.contract.labels).encode("utf-8")
    files["fidelity.csv"] = fidelity.csv().encode("utf-8")
    if edgetpu is not None:
        reports["edgetpu"] = edgetpu.report.to_dict()
        files["edgetpu_report.json"] = (json.dumps(edgetpu.report.to_dict(), indent=2) + "\n").encode()
        if edgetpu.compiled is not None:
            files["model_int8_edgetpu.tflite"] = edgetpu.compiled
    if c_array is not None:
        files["model_int8_data.h"] = c_array.header.encode()
        files["model_int8_data.cc"] = c_array.source.encode()
        reports["tflite_micro"] = c_array.micro.to_dict() | {"c_array_roundtrip": True}
    with staged_dir(out, overwrite=overwrite) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        card = model_card(prep, conv, scores, parity, tmp, reports, allow_parity_drift)
        (tmp / "model_card.json").write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return card


def export_run(run_dir: str | Path, calibration: str | Path, out: str | Path,
               precisions: Sequence[str] = ("int8",), io: str = "int8", edgetpu: bool = False,
               c_array: bool = False, overwrite: bool = False, log: Log = lambda m: None,
               allow_parity_drift: bool = False,
               parity_tolerance: float = KERAS_VS_TFLITE_TOLERANCE) -> ExportResult:
    """Write a device bundle for ``run_dir`` to ``out`` (see module docstring).

    Raises ModelError, before anything is written, when Keras and its fp32 conversion differ by more than
    ``parity_tolerance`` on the test split, unless ``allow_parity_drift``.
    """
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise EdgecnnError(f"--precision must be among {', '.join(PRECISIONS)}, got: {', '.join(bad)}")
    out = check_folder_dest(out, overwrite)  # before the slow part; staged_dir checks again at the end
    check_writable(out.parent)
    prep = prepare(run_dir, calibration, log)
    test = load_test_split(prep, log)
    conv = convert_step(prep, precisions, io, log)
    scores = score_step(prep, conv, test, log)
    parity = parity_step(conv, scores, test, prep.run.contract, parity_tolerance)
    enforce_parity(parity.float_check, allow_parity_drift, log)
    log("per-layer error of int8 (quantization debugger)")
    fidelity = layer_report(prep.model_b1, prep.calib_inputs, io)
    tpu = edgetpu_step(conv.models["int8"], log) if edgetpu else None
    carray = c_array_step(conv.models["int8"], test.inputs, log) if c_array else None
    card = write_bundle(out, overwrite, prep, conv, scores, parity, fidelity, tpu, carray, allow_parity_drift)
    return ExportResult(out, card, fidelity.table(), tpu.report.text() if tpu else None,
                        carray.micro.text() if carray else None, parity.float_check)
