"""Compare a run's variants: one row each, same inputs, latency measured one variant at a time in its own process."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.compare import measure
from edgecnn.compare.testdata import calibration_overlap, select_test_data
from edgecnn.compare.variants import PRECISIONS, Variant, build_variants, precision_of
from edgecnn.errors import ModelError
from edgecnn.export.model_card import run_warnings
from edgecnn.runtime.environment import describe_environment
from edgecnn.runtime.model_policy import ModelPolicy, NavModelPolicy
from edgecnn.runtime.precision import KERAS_REFERENCE
from edgecnn.sim.navigate import NavConfig, simulate_networks
from edgecnn.sim.simulate import SimConfig, simulate
from edgecnn.train.run import load_run

# ``progress(phase, done, total, item)``: called before each step of a phase (``"building"`` the variants,
# ``"measuring"`` them) with the item about to start, and once with ``done == total`` when the phase ends.
Progress = Callable[[str, int, int, str], None]

# The metric a report ranks variants by (the plot's y axis), per task.
PRIMARY_METRIC = {"classify": "top1", "steer": "mae", "segment": "miou", "navigate": "mae"}


@dataclass(frozen=True)
class Row:
    """One variant's figures. ``metrics``: task metrics; ``agreement``: versus the Keras reference;
    ``latency_ms``: p50/p90/p99/mean (ms); ``closed_loop``: simulate results (steer, navigate) with
    --closed-loop."""

    variant: str
    precision: str
    origin: str
    path: str
    size_bytes: int
    metrics: dict[str, Any]
    agreement: dict[str, Any]
    latency_ms: dict[str, float]
    throughput: float
    peak_memory_mb: float
    closed_loop: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompareReport:
    """Everything ``edgecnn compare`` measured. ``warnings``: what training warned about the run's data and
    model (``metrics.json["warnings"]``), shown with the table; ``notes``: what compare itself found."""

    run: str
    task: str
    primary_metric: str
    rows: tuple[Row, ...]
    test: dict[str, Any]
    environment: dict[str, Any]
    settings: dict[str, Any]
    notes: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def row(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.variant == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "task": self.task, "primary_metric": self.primary_metric, "test": self.test,
                "environment": self.environment, "settings": self.settings, "notes": list(self.notes),
                "warnings": list(self.warnings), "rows": [r.to_dict() for r in self.rows]}


def compare(run_dir: str | Path, extra_models: tuple[str, ...] = (), data: str | None = None,
            calibration: str | None = None, precisions: tuple[str, ...] = PRECISIONS, threads: int | None = 1,
            runs: int = 200, warmup: int = 20, limit: int | None = 500, variants_dir: str | Path | None = None,
            closed_loop: int = 0, log: Callable[[str], None] = lambda m: None,
            progress: Progress | None = None) -> CompareReport:
    """Measure the Keras reference, the TFLite variants built from ``run_dir`` and any ``extra_models``.

    Args:
        run_dir: a training run folder. extra_models: more .tflite files to add as rows.
        data: test data (default: the run's held-out test split). calibration: calibration set used to build
            int8/int16x8 (and checked for overlap with the test data).
        precisions: which TFLite precisions to build. threads, runs, warmup: latency settings.
        limit: at most this many test frames (evenly spaced). variants_dir: where built models go
            (default ``RUN/variants``). closed_loop: for steering, also drive this many simulated roads (a
            navigate run: this many planned routes through unseen road networks, seed 1000).
        log: one-line messages. progress: see :data:`Progress` (the per-variant messages then go to it, not
            to ``log``).
    """
    run = load_run(run_dir)
    contract = run.contract
    test = select_test_data(run, data, limit)
    log(f"test data: {len(test.targets)} frames from {test.source}")
    overlap = calibration_overlap(test, calibration)
    notes: list[str] = []
    if overlap:
        notes.append(f"WARNING: {overlap} test frames are also in the calibration set; the test is not disjoint")
    given = []
    for m in extra_models:  # checked (and their precision read) before the slow builds
        p = Path(m)
        if not p.is_file():
            raise ModelError(f"model not found: {p}")
        given.append(Variant(p.name, precision_of(p), p, "given"))
    vdir = Path(variants_dir) if variants_dir else run.root / "variants"
    built, build_notes = build_variants(run.root, calibration, vdir, precisions, log,
                                        (lambda i, n, item: progress("building", i, n, item)) if progress else None)
    notes += build_notes
    variants = [Variant("keras", KERAS_REFERENCE, run.model_path, "reference"), *built, *given]

    ref = measure.keras_outputs(run.model_path, test.inputs)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgecnn-compare-") as tmp:
        input_files = measure.save_first_input(test.inputs, Path(tmp))  # every variant is timed on these
        for i, v in enumerate(variants):
            if progress:
                progress("measuring", i, len(variants), v.name)
            else:
                log(f"measuring {v.name}")
            if v.origin == "reference":
                raw = ref
                lat = measure.keras_latency(v.path, input_files, runs=max(20, runs // 4), warmup=warmup)
            else:
                raw = measure.tflite_outputs(v.path, test.inputs, contract, threads)
                lat = measure.tflite_latency(v.path, input_files, threads, runs, warmup)
            loop = None
            if closed_loop and contract.task in ("steer", "navigate") and v.origin != "reference":
                loop = _closed_loop(v.path, closed_loop, threads, contract.task)
            rows.append(Row(
                variant=v.name, precision=v.precision, origin=v.origin, path=str(v.path),
                size_bytes=v.path.stat().st_size, metrics=measure.task_metrics(raw, test.targets, contract, test.samples),
                agreement=measure.agreement(ref, raw, test.targets, contract),
                latency_ms={k: lat[k] for k in ("p50", "p90", "p99", "mean")}, throughput=lat["throughput"],
                peak_memory_mb=lat["peak_memory_mb"], closed_loop=loop,
            ))
        if progress:
            progress("measuring", len(variants), len(variants), "")
    env = describe_environment().to_dict() | {"threads": threads}
    return CompareReport(
        run=str(run.root), task=contract.task, primary_metric=PRIMARY_METRIC[contract.task],
        rows=tuple(rows),
        test={"source": test.source, "count": len(test.targets), "calibration": calibration,
              "calibration_overlap": overlap, "disjoint_from_calibration": None if overlap is None else overlap == 0},
        environment=env, settings={"runs": runs, "warmup": warmup, "threads": threads, "limit": limit},
        notes=tuple(notes), warnings=tuple(run_warnings(run.metrics)),
    )


def _closed_loop(path: Path, count: int, threads: int | None, task: str) -> dict[str, Any]:
    """Drive ``count`` simulated roads (steer) or planned routes on unseen networks (navigate, at the pose
    noise its contract states) with the model at ``path``; the figures of ``edgecnn simulate --json``."""
    keys = ("autonomy", "departures", "mean_abs_offset", "max_abs_offset", "distance")
    if task == "navigate":
        policy = NavModelPolicy(path, threads=threads)  # its contract always states the pose noise
        r = simulate_networks(policy, NavConfig(routes=count, seed=1000, pose_noise=policy.pose_noise)).to_dict()
        return {k: r[k] for k in ("junctions", "junction_success", "route_completion", *keys)}
    r = simulate(ModelPolicy(path, threads=threads), SimConfig(roads=count, seed=1000)).to_dict()
    return {k: r[k] for k in keys}
