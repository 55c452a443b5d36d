"""``edgecnn benchmark``: latency of a .tflite on this machine, in the manner of TensorFlow's benchmark_model.

Initialisation time, first inference, warm-up, then steady-state latency (mean, std, p50, p90, p99),
throughput, peak memory and the environment (CPU, cores, threads, runtime and version), and what the delegate
did (:mod:`edgecnn.runtime.delegation`: nodes taken, ops left on the reference CPU kernels, uint8 I/O and
per-tensor warnings). With a float twin (``compare_to``) both are measured the same way and an int8 model that is
not faster than its float twin is flagged. Works on any valid .tflite with random inputs (or given ones). The
measurement runs in :mod:`edgecnn.runtime.sandbox`: the model is untrusted, and a fresh process also gives an
honest memory figure.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import DataError, ModelError
from edgecnn.preprocess import load_image, prepare
from edgecnn.runtime.adapters import input_specs, quantize
from edgecnn.runtime.delegation import DelegateReport, delegate_report
from edgecnn.runtime.environment import describe_environment
from edgecnn.runtime.interpreter import make_interpreter, read_model_bytes
from edgecnn.runtime.predictor import contract_for_model
from edgecnn.runtime.sandbox import Limits, run_sandboxed, stage
from edgecnn.runtime.stats import percentiles

# An int8 model whose p50 is not at least this much below its float twin's is flagged: it is "not faster".
NOT_FASTER_RATIO = 1.0


@dataclass(frozen=True)
class BenchmarkResult:
    """What one benchmark measured.

    Attributes:
        model: the file benchmarked; size_bytes its size.
        threads: CPU threads requested (None: runtime default); delegate the accelerator.
        inputs: ``"random"`` or the input files used.
        init_ms: loading + verifying + allocating the interpreter, milliseconds.
        first_ms: the first inference (includes lazy allocation and packing), milliseconds.
        warmup_runs, warmup_mean_ms: warm-up inferences, excluded from the steady state.
        runs: steady-state inferences; mean_ms, std_ms, min_ms, p50_ms, p90_ms, p99_ms, max_ms their latency.
        throughput: inferences per second at the mean latency (one at a time, batch 1).
        init_memory_mb: resident memory added by loading the model (MiB).
        peak_memory_mb: the process's peak resident memory at the end (MiB; includes Python and numpy).
        environment: :class:`~edgecnn.runtime.environment.Environment` as a dict.
        delegation: :class:`~edgecnn.runtime.delegation.DelegateReport` as a dict (empty when unknown).
        twin: the float twin's result as a dict (``compare_to``), else empty.
        speedup: twin p50 / this p50 (> 1: this model is faster), 0.0 without a twin.
        not_faster: True when this (quantized) model is not faster than its float twin.
    """

    model: str
    size_bytes: int
    threads: int | None
    delegate: str
    inputs: str
    init_ms: float
    first_ms: float
    warmup_runs: int
    warmup_mean_ms: float
    runs: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    throughput: float
    init_memory_mb: float
    peak_memory_mb: float
    environment: dict[str, Any] = field(default_factory=dict)
    delegation: dict[str, Any] = field(default_factory=dict)
    twin: dict[str, Any] = field(default_factory=dict)
    speedup: float = 0.0
    not_faster: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lines = self._lines()
        if self.delegation:
            lines.append("  " + DelegateReport.from_dict(self.delegation).format().replace("\n", "\n  "))
        if self.twin:
            t = self.twin
            verdict = ("NOT FASTER than its float twin: check the delegate line above (nodes left on the CPU, "
                       "uint8 I/O), the model's size (tiny models are bound by overheads) and the CPU (x86 without "
                       "AVX-VNNI, or arm without dot-product instructions, runs int8 convolutions no faster)"
                       if self.not_faster else "faster than its float twin")
            lines.append(f"  float twin {t.get('model')}: p50 {t.get('p50_ms', 0.0):.3f} ms -> this model "
                         f"{self.speedup:.2f}x, {verdict}")
        return "\n".join(lines)

    def _lines(self) -> list[str]:
        e = self.environment
        return [
            (f"{self.model}  ({self.size_bytes / 1024:.1f} KiB), {self.threads or 'default'} thread(s), "
            f"delegate {self.delegate}, {self.inputs} inputs"),
            (f"  init: {self.init_ms:.2f} ms   first inference: {self.first_ms:.3f} ms   "
            f"warm-up: {self.warmup_runs} runs, mean {self.warmup_mean_ms:.3f} ms"),
            (f"  steady state ({self.runs} runs): mean {self.mean_ms:.3f} ms, std {self.std_ms:.3f}, "
            f"p50 {self.p50_ms:.3f}, p90 {self.p90_ms:.3f}, p99 {self.p99_ms:.3f} (min {self.min_ms:.3f}, "
            f"max {self.max_ms:.3f})"),
            (f"  throughput: {self.throughput:.1f} inferences/s   memory: init +{self.init_memory_mb:.1f} MiB, "
            f"peak {self.peak_memory_mb:.1f} MiB"),
            (f"  environment: {e.get('cpu')}, {e.get('cores')} cores, {e.get('machine')}, {e.get('runtime')} "
            f"{e.get('runtime_version')}, numpy {e.get('numpy')}, Python {e.get('python')}, {e.get('date')}"),
        ]




def _rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_mb()


def peak_mb() -> float:
    """Peak resident memory of this process image in MiB.

    /proc's VmHWM starts afresh at exec; getrusage's ru_maxrss does not (Linux keeps it across exec, so a child
    started by a large parent would report the parent's size).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if os.uname().sysname != "Darwin" else kb / 2**20




def _load_input(path: str, spec: Any, data: bytes) -> Any:
    """A given input for ``spec``: a .npy array (real values, quantized here), or an image through the contract."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read input {p}: {exc}") from exc
        if arr.dtype != np.dtype(spec.dtype):
            arr = quantize(arr.astype(np.float32), spec)
    else:
        contract = contract_for_model(data, spec, 1)
        arr = quantize(prepare(load_image(p), contract), spec)
    if arr.size != int(np.prod(spec.shape)):
        raise DataError(f"input {p} has shape {arr.shape}, the model's input {spec.name!r} needs {spec.shape}")
    return arr.reshape(spec.shape)


def _random_input(spec: Any, rng: Any) -> Any:
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size=spec.shape, dtype=dtype)
    if dtype == np.bool_:
        return rng.random(spec.shape) < 0.5
    return rng.uniform(-1.0, 1.0, size=spec.shape).astype(dtype)


def benchmark_file(path: str, threads: int | None, runs: int, warmup: int, delegate: str | None,
                   inputs: list[str] | None, seed: int = 0) -> dict[str, Any]:
    """Child-side measurement; returns a :class:`BenchmarkResult` dict."""
    data = read_model_bytes(path)
    env = describe_environment()  # imports the runtime before the memory baseline
    rss0 = _rss_mb()
    stage("loading the model")
    t0 = time.perf_counter()
    interp = make_interpreter(data, threads=threads, delegate=delegate)
    init_ms = (time.perf_counter() - t0) * 1e3
    init_mem = max(_rss_mb() - rss0, 0.0)
    specs = input_specs(interp)
    if inputs and len(inputs) != len(specs):
        raise DataError(f"the model has {len(specs)} input(s) but {len(inputs)} --input file(s) were given")
    rng = np.random.default_rng(seed)
    values = [_load_input(f, s, data) for f, s in zip(inputs, specs)] if inputs else [_random_input(s, rng) for s in specs]
    for s, v in zip(specs, values):
        interp.set_tensor(s.index, v)
    stage("running the model")
    t0 = time.perf_counter()
    interp.invoke()
    first_ms = (time.perf_counter() - t0) * 1e3
    times = np.empty(warmup + runs, dtype=np.float64)
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        interp.invoke()
        times[i] = time.perf_counter() - t0
    times *= 1e3
    steady, warm = times[warmup:], times[:warmup]
    p50, p90, p99 = percentiles(steady)
    mean = float(steady.mean())
    return BenchmarkResult(
        model=str(path), size_bytes=len(data), threads=threads, delegate=delegate or "xnnpack",
        inputs="random" if not inputs else ", ".join(inputs),
        init_ms=init_ms, first_ms=first_ms, warmup_runs=warmup,
        warmup_mean_ms=float(warm.mean()) if warmup else 0.0, runs=runs, mean_ms=mean,
        std_ms=float(steady.std()), min_ms=float(steady.min()), p50_ms=float(p50), p90_ms=float(p90),
        p99_ms=float(p99), max_ms=float(steady.max()), throughput=1000.0 / mean if mean > 0 else 0.0,
        init_memory_mb=init_mem, peak_memory_mb=peak_mb(), environment=env.to_dict(),
        delegation=delegate_report(interp, delegate or "xnnpack").to_dict(),
    ).to_dict()


def benchmark_model(
    path: str | os.PathLike,
    threads: int | None = None,
    runs: int = 100,
    warmup: int = 10,
    delegate: str | None = None,
    inputs: list[str] | None = None,
    memory_mb: int = 2048,
    timeout_s: float = 600.0,
    compare_to: str | os.PathLike | None = None,
) -> BenchmarkResult:
    """Benchmark ``path`` in a sandboxed child process.

    Args:
        path: the .tflite file.
        threads: CPU threads (None: runtime default).
        runs: steady-state inferences (>= 1); warmup: inferences before them (>= 0), after the first one.
        delegate: ``"xnnpack"`` (default), ``"none"`` or ``"edgetpu"``.
        inputs: one file per model input (.npy with real values, or an image fed through the contract);
            None for random inputs.
        memory_mb, timeout_s: limits for the child.
        compare_to: the float twin of ``path`` (same architecture, fp32); measured after it in its own child
            with the same settings, its result goes into ``twin``, and a model that is not faster is flagged.

    Raises ModelError when the model is broken or misbehaves, DataError for bad inputs.
    """
    if runs < 1:
        raise ModelError(f"--runs must be at least 1, got: {runs}")
    if warmup < 0:
        raise ModelError(f"--warmup must be 0 or more, got: {warmup}")
    read_model_bytes(path)
    for f in inputs or []:
        if not Path(f).is_file():
            raise DataError(f"input file not found: {f}")
    limits = Limits(memory_mb=memory_mb, cpu_s=int(timeout_s * max(threads or 1, 1)) + 1, wall_s=timeout_s)
    files = [str(f) for f in inputs] if inputs else None
    d = run_sandboxed("edgecnn.runtime.benchmark:benchmark_file", [str(path), threads, runs, warmup, delegate, files],
                      str(path), limits)
    if compare_to is not None:
        read_model_bytes(compare_to)
        twin = run_sandboxed("edgecnn.runtime.benchmark:benchmark_file",
                             [str(compare_to), threads, runs, warmup, delegate, files], str(compare_to), limits)
        d["twin"] = {k: twin[k] for k in ("model", "size_bytes", "p50_ms", "p90_ms", "mean_ms", "delegation")}
        d["speedup"] = twin["p50_ms"] / d["p50_ms"] if d["p50_ms"] > 0 else 0.0
        d["not_faster"] = d["speedup"] <= NOT_FASTER_RATIO
    return BenchmarkResult(**d)
