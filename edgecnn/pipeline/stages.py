"""The pipeline's stages and their up-to-date checks (host side).

Each stage writes its output folder and then a stamp ``OUT/.stages/<stage>.json`` holding the options it ran
with. A stage is skipped when its stamp exists, its options are unchanged and every stage before it was skipped
too; otherwise it (and everything after it) runs again, from scratch ("fresh") when an option or an earlier
stage changed. A stage interrupted half-way has no stamp and nothing before it changed, so re-running resumes
there (training itself resumes from its last epoch). A user's own ``--data`` folder is not watched for changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.atomic import write_json
from edgecnn.compare.compare import compare
from edgecnn.compare.report import format_table, write_report
from edgecnn.data import roads, shapes
from edgecnn.export.bundle import export_run
from edgecnn.pipeline.config import PipelineConfig
from edgecnn.quantize import calibration
from edgecnn.runtime.environment import usable_cores
from edgecnn.sizes import parse_size
from edgecnn.train.config import parse_crop
from edgecnn.train.trainer import TrainConfig, train

Log = Callable[[str], None]


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def calibration(self) -> Path:
        return self.root / "calibration"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def compare(self) -> Path:
        return self.root / "compare"

    def stamp(self, stage: str) -> Path:
        return self.root / ".stages" / f"{stage}.json"


@dataclass(frozen=True)
class StageResult:
    name: str
    skipped: bool
    seconds: float
    summary: str


def _data_dir(cfg: PipelineConfig, paths: Paths) -> str:
    return cfg.data or str(paths.data)


def stage_data(cfg: PipelineConfig, paths: Paths, log: Log, fresh: bool) -> str:
    if cfg.data:
        return f"using {cfg.data}"
    if cfg.task == "classify":
        width, _ = parse_size(cfg.resolved_img_size)
        shapes.generate(paths.data, size=width, per_class=cfg.per_class, seed=cfg.seed, overwrite=True)
        return f"generated shapes ({cfg.per_class} per class) in {paths.data}"
    roads.generate(paths.data, n=cfg.frames, size=(160, 120), seed=cfg.seed, per_road=cfg.per_road, overwrite=True,
                   workers=usable_cores())
    return f"generated {cfg.frames} road frames in {paths.data}"


def stage_train(cfg: PipelineConfig, paths: Paths, log: Log, fresh: bool) -> str:
    tc = TrainConfig(data=_data_dir(cfg, paths), out=str(paths.run), arch=cfg.resolved_arch, task=cfg.task,
                     img_size=parse_size(cfg.resolved_img_size), epochs=cfg.epochs, batch=cfg.batch, seed=cfg.seed,
                     lr=cfg.lr, patience=cfg.patience, head=cfg.head, components=cfg.components,
                     augment=cfg.augment, crop=parse_crop(cfg.crop), resize=cfg.resize)
    # fresh: the data or the training options changed, so an old run must not be resumed or reused
    res = train(tc, overwrite=fresh, log=log, verbose=0)
    m = res.metrics
    key = "test_accuracy" if cfg.task == "classify" else "mae"
    return f"{cfg.resolved_arch}: {key} {m[key]:.4f} on {m['test_count']} test frames, {m['epochs']} epochs"


def stage_calibrate(cfg: PipelineConfig, paths: Paths, log: Log, fresh: bool) -> str:
    src = calibration.source_from_run(paths.run)
    _, cov = calibration.build(src, paths.calibration, count=cfg.calib_count, seed=cfg.seed, overwrite=True)
    for w in cov.warnings:
        log(f"warning: {w}")
    return f"{cov.count} calibration frames from the training split"


def stage_export(cfg: PipelineConfig, paths: Paths, log: Log, fresh: bool) -> str:
    res = export_run(paths.run, paths.calibration, paths.bundle, io=cfg.io, overwrite=True, log=log)
    size = res.card.sizes.get("int8", 0)
    return f"{paths.bundle / 'model_int8.tflite'} ({size / 1024:.1f} KiB, precision {res.card.precision})"


def stage_compare(cfg: PipelineConfig, paths: Paths, log: Log, fresh: bool) -> str:
    report = compare(paths.run, data=None, calibration=str(paths.calibration), precisions=cfg.precisions,
                     threads=cfg.threads, runs=cfg.compare_runs, warmup=max(5, cfg.compare_runs // 10),
                     variants_dir=paths.compare / "variants", closed_loop=cfg.closed_loop, log=log)
    files = write_report(report, paths.compare)
    return format_table(report) + f"\nreport: {files['md']}\nplot: {files['plot']}"


STAGES: tuple[tuple[str, Callable[[PipelineConfig, Paths, Log, bool], str], tuple[str, ...]], ...] = (
    # name, function, the options that change its output
    ("data", stage_data, ("task", "data", "per_class", "frames", "per_road", "seed", "img_size")),
    ("train", stage_train, ("arch", "img_size", "epochs", "batch", "seed", "lr", "patience", "head", "components",
                            "augment", "crop", "resize")),
    ("calibrate", stage_calibrate, ("calib_count", "seed")),
    ("quantize+export", stage_export, ("io",)),
    ("compare", stage_compare, ("precisions", "compare_runs", "threads", "closed_loop")),
)


def run_pipeline(cfg: PipelineConfig, log: Log, show: Log) -> list[StageResult]:
    """Run every stage that is not up to date; ``show`` gets the stage-by-stage progress lines."""
    paths = Paths(Path(cfg.resolved_out))
    results: list[StageResult] = []
    upstream_ran = False
    options: dict[str, Any] = {}
    for i, (name, fn, keys) in enumerate(STAGES, 1):
        options.update({k: cfg.to_dict()[k] for k in keys})
        stamp = paths.stamp(name)
        previous = json.loads(stamp.read_text()) if stamp.is_file() else None
        if not upstream_ran and previous is not None and previous.get("options") == options:
            show(f"[{i}/{len(STAGES)}] {name}: up to date, skipped")
            results.append(StageResult(name, True, 0.0, previous.get("summary", "")))
            continue
        # Fresh when something it depends on changed; otherwise (no stamp: interrupted) it may resume.
        fresh = upstream_ran or (previous is not None and previous.get("options") != options)
        show(f"[{i}/{len(STAGES)}] {name} ...")
        stamp.unlink(missing_ok=True)
        t0 = time.monotonic()
        summary = fn(cfg, paths, log, fresh)
        seconds = time.monotonic() - t0
        write_json(stamp, {"options": dict(options), "summary": summary, "seconds": seconds})
        show(f"[{i}/{len(STAGES)}] {name}: done in {seconds:.1f} s")
        results.append(StageResult(name, False, seconds, summary))
        upstream_ran = True
    return results
