"""The whole robustness campaign, as ``edgecnn robustness`` runs it (host side: it trains and exports a tiny model).

:func:`prepare_workspace` builds what every part needs: a shapes data set with 1 % injected faults, a 1-epoch run
trained on it (proving training proceeds on the good data), a calibration set and an exported bundle (our own int8
and fp32 models, the mutation sources). :func:`run_suite` then runs the parts and returns the report dict that
:mod:`edgecnn_robustness.report` prints.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.data.shapes import generate
from edgecnn.errors import EdgecnnError
from edgecnn_robustness import campaign, diskfaults, faults, killtest
from edgecnn_robustness.camera import camera_cases, network_checks
from edgecnn_robustness.childenv import child_env
from edgecnn_robustness.faults import IMAGE_EXPECTED, inject_imagefolder, make_image_fault

Log = Callable[[str], None]


@dataclass(frozen=True)
class Workspace:
    """The shared inputs of the campaign.

    Attributes:
        root: the work folder. data: the faulty shapes image folder; injected its faults.
        run: the trained run folder; train_summary the data line ``edgecnn train`` printed.
        calibration: calibration set folder. bundle: exported bundle (model_int8.tflite, model_fp32.tflite).
        export_s: seconds the uninterrupted export took (the kill trials' time scale); export_tail_s the part
            after its last log line before the write.
        image: one good image of the data set (the classify input).
    """

    root: Path
    data: Path
    injected: tuple
    run: Path
    train_summary: str
    calibration: Path
    bundle: Path
    export_s: float
    export_tail_s: float
    image: Path


def _edgecnn(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)], check=False, capture_output=True,
                       text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise EdgecnnError(f"robustness set-up step `edgecnn {' '.join(map(str, args[:2]))}` failed: "
                           f"{(p.stderr.strip().splitlines() or ['?'])[-1]}")
    return p


def prepare_workspace(root: str | Path, seed: int = 0, log: Log = lambda m: None) -> Workspace:
    """Data (with faults) -> train 1 epoch -> calibrate -> export (int8 + fp32); see module docstring."""

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    data = root / "shapes_faulty"
    shutil.rmtree(data, ignore_errors=True)
    log("data: 700 shapes images + 1 % injected faults")
    generate(data, size=32, per_class=140, seed=seed)
    injected = inject_imagefolder(data, fraction=0.01, seed=seed)
    run = root / "run"
    log("training 1 epoch on the faulty data set")
    p = _edgecnn(["train", data, "--out", run, "--img-size", "32", "--epochs", "1", "--batch", "32", "--seed",
                  str(seed), "--overwrite"])
    summary = next((ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("data:")), "")
    calib = root / "calibration"
    _edgecnn(["calibrate", run, "--out", calib, "--count", "20", "--overwrite"])
    bundle = root / "bundle"
    log("exporting int8 + fp32 (mutation sources)")
    export_s, export_tail_s = killtest.timed_run(["export", str(run), "--calibration", str(calib), "--out",
                                                  str(bundle), "--precision", "fp32", "--overwrite"],
                                                 killtest.EXPORT_MARKER)
    image = min(data.glob("circle/*.png"))
    return Workspace(root, data, tuple(injected), run, summary, calib, bundle, export_s, export_tail_s, image)


def training_figures(ws: Workspace) -> dict[str, Any]:
    """Did training proceed on the faulty data, and did its summary count the skipped files?"""

    skipped = sum(1 for i in ws.injected if IMAGE_EXPECTED.get(i.kind) != "used")
    m = re.search(r"skipped (\d+) files", ws.train_summary)
    counted = int(m.group(1)) if m else 0
    ok = (ws.run / "model.keras").is_file() and counted == skipped
    return {"summary": ws.train_summary.replace("data: ", "")[:160], "skipped_expected": skipped,
            "skipped_counted": counted, "ok": ok}


def too_little_data(work: Path) -> dict[str, Any]:
    """A data set whose only images of one class are all faulty: ``edgecnn train`` must refuse it clearly."""


    data = work / "too_little"
    shutil.rmtree(data, ignore_errors=True)
    generate(data, size=32, per_class=4, seed=0)
    victim = min(p for p in data.iterdir() if p.is_dir())
    rng = np.random.default_rng(0)
    for i, f in enumerate(sorted(victim.iterdir())):
        f.unlink()
        kind = ("zero-byte", "random bytes", "truncated JPEG", "huge header")[i % 4]
        body, ext = make_image_fault(kind, rng, variant=i)
        (victim / f"bad_{i}{ext}").write_bytes(body)
    env = child_env(TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, "-m", "edgecnn", "train", str(data), "--out", str(work / "too_little_run"),
                        "--img-size", "32", "--epochs", "1"], check=False, capture_output=True, text=True, env=env,
                       timeout=600)
    err = next((ln for ln in p.stderr.splitlines() if ln.startswith("Error:")), "")
    ok = p.returncode > 0 and "Traceback" not in p.stderr and "no usable image" in err
    return {"error_line": err[:120], "returncode": p.returncode, "ok": ok}


def run_suite(work: str | Path, mutants: int = 200, cli_mutants: int = 10, kill_trials: int = 6, seed: int = 0,
              workers: int = 2, quick_disk: bool = True, camera: bool = True, log: Log = lambda m: None) -> dict[str, Any]:
    """Run every part and return the report dict (see :mod:`edgecnn_robustness.report`)."""

    work = Path(work)
    started = time.monotonic()
    report: dict[str, Any] = {"form": "short" if mutants < 1000 else "long", "seed": seed}
    ws = prepare_workspace(work, seed, log)
    tub = faults.write_tub(work / "tub", 400, seed=seed)
    tub_injected = faults.inject_tub(tub, 0.01, seed)
    report["data_faults"] = {
        "imagefolder": faults.audit_imagefolder(ws.data, list(ws.injected)).to_dict(),
        "tub": faults.audit_tub(tub, tub_injected).to_dict(),
        "training": training_figures(ws),
        "too_little": too_little_data(work),
    }
    sources = {"int8": (ws.bundle / "model_int8.tflite").read_bytes(), "fp32": (ws.bundle / "model_fp32.tflite").read_bytes()}
    log(f"mutation campaign: {mutants} mutants x inspect/benchmark/classify on {workers} workers")
    result = campaign.run_mutants(sources, mutants, work / "mutants", seed=seed, workers=workers, progress=log)
    counts = result.counts()
    counts["examples"] = [r.to_dict() for r in result.crashes()[:10]]
    if cli_mutants:
        numbers = campaign.pick_cli_mutants(result, cli_mutants)
        log(f"real CLI: {len(numbers)} mutants x inspect/benchmark/classify")
        outcomes = campaign.run_cli_mutants(sources, numbers, work / "cli_mutants", str(ws.image), seed=seed,
                                            workers=workers, progress=log)
        counts["cli"] = campaign.summarise_cli(outcomes)
        counts["cli"]["bad"] = [o.__dict__ for o in outcomes if o.outcome not in ("accepted", "rejected")][:10]
    report["mutation"] = counts
    log("sandbox: hostile children")
    report["sandbox"] = [{"name": h.name, "named": h.named, "seconds": h.seconds,
                          "said": h.message.split(": ", 1)[-1].split(";")[0][:70], "message": h.message}
                         for h in campaign.hostile_children()]
    report["keras"] = [k.__dict__ for k in campaign.keras_refusals(work / "keras_files")]
    if kill_trials:
        nq = kill_trials // 2
        old = sources["fp32"]
        log("kill -9: timing one uninterrupted quantize")
        q_s, q_tail = killtest.timed_run(["quantize", str(ws.run), "--calibration", str(ws.calibration), "--out",
                                          str(work / "quantize_reference.tflite")], killtest.QUANTIZE_MARKER)
        trials = killtest.quantize_trials(ws.run, ws.calibration, work / "kill_quantize", old, nq, q_s, q_tail,
                                          seed, log)
        trials += killtest.export_trials(ws.run, ws.calibration, work / "kill_export", ws.bundle, kill_trials - nq,
                                         ws.export_s, ws.export_tail_s, seed, log)
        log("SIGTERM during export")
        term = killtest.sigterm_export_trial(ws.run, ws.calibration, work / "term_export", ws.bundle,
                                             ws.export_tail_s, seed)
        report["kill"] = killtest.summarise(trials) | {"sigterm_export": term} | {
            "quantize_s": round(q_s, 1), "quantize_write_phase_s": round(q_tail, 2), "export_s": round(ws.export_s, 1),
            "export_write_phase_s": round(ws.export_tail_s, 2), "list": [t.to_dict() for t in trials]}
    log("full disk / read-only output")
    report["disk"] = {"mounts": diskfaults.mount_available(),
                      "cases": [c.to_dict() for c in diskfaults.disk_cases(ws.run, ws.calibration, work / "disk", quick_disk)]}
    if camera:

        log("fake cameras")
        report["camera"] = camera_cases(work / "camera", model=ws.bundle / "model_int8.tflite", log=log)
        report["network"] = network_checks()
    report["seconds"] = round(time.monotonic() - started, 1)
    return report
