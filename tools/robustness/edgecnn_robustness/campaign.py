"""The mutation campaign: damaged models through ``inspect``, ``benchmark`` and ``classify``, every outcome classified.

Library form (:func:`run_mutants`): each mutant goes through the two sandboxed steps of ``inspect``,
:func:`edgecnn.runtime.benchmark.benchmark_model` (1 run) and :func:`edgecnn.runtime.sandbox.check_model` (the
pre-flight check of ``classify``), on a small thread pool; each of these already loads the model in a limited child
process, so the campaign process itself never loads a mutant. CLI form (:func:`run_cli_mutants`): a few mutants
through the real ``python -m edgecnn`` commands, to prove end to end that no command prints a traceback or is
killed by a signal. :func:`hostile_children` checks that the sandbox survives and names each way a child can die.

Outcomes of one stage:

- ``accepted``: the damaged file still is a working model (most byte flips land in weights);
- ``rejected``: a clear one-line :class:`~edgecnn.errors.EdgecnnError` (or ``inspect`` reporting "does not load");
- ``contained``: the sandboxed child crashed, aborted, ran out of memory or time, and the parent said so (told
  by the type: a :class:`~edgecnn.runtime.sandbox.SandboxError` whose result is ``contained``, never by the
  message's words);
- ``crash``: any other exception in the caller (a traceback for the user): must be 0;
- ``hang``: the stage did not return within its time bound: must be 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError
from edgecnn.quantize.keras_model import check_keras_file
from edgecnn.runtime.benchmark import benchmark_model
from edgecnn.runtime.inspect import ModelReport
from edgecnn.runtime.interpreter import read_model_bytes
from edgecnn.runtime.sandbox import Limits, Outcome, SandboxError, check_model, run_child, run_sandboxed
from edgecnn_robustness.childenv import child_env
from edgecnn_robustness.mutate import Mutant, make_mutant

STAGES = ("inspect", "benchmark", "classify")
OUTCOMES = ("accepted", "rejected", "contained", "crash", "hang")


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did with one mutant: ``outcome`` (see module docstring), ``seconds`` it took, and the
    one-line ``message`` a user would have seen (empty when accepted)."""

    stage: str
    outcome: str
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class MutantResult:
    """One mutant and its outcome in every stage."""

    number: int
    source: str
    kind: str
    detail: str
    size: int
    stages: tuple[StageOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _inspect(path: str, limits: Limits) -> tuple[str, str]:
    """What :func:`edgecnn.runtime.inspect.inspect_model` does, step by step: parse and load the file in one
    sandboxed child, then run it once in a second one. ``inspect_model`` folds the second child's failure into
    the card's ``load_error`` text; here each child's outcome stays typed (:class:`SandboxError`)."""
    read_model_bytes(path)
    card = ModelReport.from_dict(run_sandboxed("edgecnn.runtime.inspect:inspect_file", [path], path, limits))
    if not card.loads:
        return "rejected", card.load_error
    check_model(path, limits=limits)
    return "accepted", ""


def _run_stage(stage: str, path: str, timeout_s: float, memory_mb: int) -> StageOutcome:
    limits = Limits(memory_mb=memory_mb, cpu_s=int(timeout_s) + 1, wall_s=timeout_s)
    t0 = time.monotonic()
    try:
        if stage == "inspect":
            outcome, message = _inspect(path, limits)
        elif stage == "benchmark":
            benchmark_model(path, threads=1, runs=1, warmup=0, memory_mb=memory_mb, timeout_s=timeout_s)
            outcome, message = "accepted", ""
        else:
            check_model(path, threads=1, limits=limits)
            outcome, message = "accepted", ""
    except EdgecnnError as exc:
        message = str(exc)
        contained = isinstance(exc, SandboxError) and exc.result.contained
        # more than one line (or none) is not the clear message a user is promised: counted as a crash
        clear = bool(message.strip()) and "\n" not in message.strip()
        outcome = ("contained" if contained else "rejected") if clear else "crash"
    except Exception:  # noqa: BLE001 - a bug: what a user would see as a traceback; counted, not raised
        outcome, message = "crash", traceback.format_exc(limit=3)
    seconds = time.monotonic() - t0
    # The sandbox's own wall limit should fire first; anything much later means a stage is not bounded.
    if seconds > timeout_s + 10.0:
        outcome = "hang"
    return StageOutcome(stage, outcome, seconds, _one_line(message) if outcome != "crash" else message)


def _run_one(mutant: Mutant, folder: Path, timeout_s: float, memory_mb: int, keep: bool) -> MutantResult:
    path = folder / f"mutant_{mutant.number:05d}_{mutant.source}_{mutant.kind}.tflite"
    path.write_bytes(mutant.data)
    try:
        stages = tuple(_run_stage(s, str(path), timeout_s, memory_mb) for s in STAGES)
    finally:
        if not keep:
            path.unlink(missing_ok=True)
    return MutantResult(mutant.number, mutant.source, mutant.kind, mutant.detail, len(mutant.data), stages)


@dataclass(frozen=True)
class CampaignResult:
    """All mutants of a library campaign.

    Attributes:
        results: one :class:`MutantResult` per mutant, by number.
        seconds: wall time of the whole campaign.
        workers: threads used.
        timeout_s: per-stage time bound.
    """

    results: tuple[MutantResult, ...]
    seconds: float
    workers: int
    timeout_s: float
    unfinished: int = 0

    def counts(self) -> dict[str, Any]:
        """Figures for the report: per stage and overall outcome counts, per kind, and the slowest stage."""
        per_stage = {s: Counter() for s in STAGES}
        per_kind: dict[str, Counter] = {}
        worst: Counter = Counter()
        for r in self.results:
            outcomes = [st.outcome for st in r.stages]
            for st in r.stages:
                per_stage[st.stage][st.outcome] += 1
            # A mutant's overall outcome is its worst stage.
            overall = max(outcomes, key=OUTCOMES.index)
            worst[overall] += 1
            per_kind.setdefault(r.kind, Counter())[overall] += 1
        slowest = max((st.seconds for r in self.results for st in r.stages), default=0.0)
        return {
            "mutants": len(self.results) + self.unfinished,
            "finished": len(self.results),
            "overall": {o: worst.get(o, 0) + (self.unfinished if o == "hang" else 0) for o in OUTCOMES},
            "per_stage": {s: {o: per_stage[s].get(o, 0) for o in OUTCOMES} for s in STAGES},
            "per_kind": {k: {o: c.get(o, 0) for o in OUTCOMES} for k, c in sorted(per_kind.items())},
            "stage_runs": sum(len(r.stages) for r in self.results),
            "slowest_stage_s": round(slowest, 3),
            "seconds": round(self.seconds, 1),
            "workers": self.workers,
            "timeout_s": self.timeout_s,
        }

    def crashes(self) -> list[MutantResult]:
        return [r for r in self.results if any(st.outcome in ("crash", "hang") for st in r.stages)]


def run_mutants(sources: dict[str, bytes], count: int, folder: str | Path, seed: int = 0, workers: int = 2,
                timeout_s: float = 15.0, memory_mb: int = 1024, keep: bool = False,
                progress: Callable[[str], None] = lambda m: None) -> CampaignResult:
    """Make ``count`` mutants of ``sources`` (name -> .tflite bytes) and run each through the three stages.

    Args:
        folder: where mutant files are written while they are tested (removed unless ``keep``).
        workers: mutants tested at once (each stage starts one child process).
        timeout_s: wall/CPU limit of each sandboxed stage; memory_mb its address-space limit.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    results: list[MutantResult] = []
    # Generous global bound: every stage at its limit, plus slack; what is still running then is a hang.
    budget = (count / max(workers, 1) + 2) * (len(STAGES) * (timeout_s + 10.0))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mutant")
    try:
        futures = [pool.submit(lambda n=n: _run_one(make_mutant(sources, n, seed), folder, timeout_s, memory_mb, keep))
                   for n in range(count)]
        done_n = 0
        pending = set(futures)
        while pending and time.monotonic() - t0 < budget:
            done, pending = wait(pending, timeout=min(5.0, max(0.1, budget - (time.monotonic() - t0))))
            done_n += len(done)
            if done:
                progress(f"mutants: {done_n}/{count} done ({time.monotonic() - t0:.0f} s)")
        for f in futures:
            if f.done():
                results.append(f.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results.sort(key=lambda r: r.number)
    return CampaignResult(tuple(results), time.monotonic() - t0, workers, timeout_s, unfinished=count - len(results))


# ---------------------------------------------------------------------------------------------- real CLI


@dataclass(frozen=True)
class CliOutcome:
    """One ``python -m edgecnn`` run on a mutant: exit code (negative = killed by that signal), outcome
    (``accepted``, ``rejected``, ``killed``, ``traceback``, ``hang``, ``unclear``) and the error line."""

    number: int
    kind: str
    command: str
    returncode: int
    outcome: str
    seconds: float
    error_line: str = ""


def _cli_command(command: str, path: str, image: str) -> list[str]:
    if command == "inspect":
        return ["inspect", path, "--timeout", "15", "--memory-limit", "1024"]
    if command == "benchmark":
        return ["benchmark", path, "--runs", "2", "--warmup", "0", "--threads", "1", "--timeout", "15",
                "--memory-limit", "1024"]
    return ["classify", "--model", path, "--threads", "1", "--top-k", "1", image]


def judge_cli(returncode: int, stdout: str, stderr: str) -> tuple[str, str]:
    """``(outcome, error line)`` of a finished command (see :class:`CliOutcome`)."""
    err = next((ln for ln in stderr.splitlines() if ln.startswith("Error:")), "")
    if returncode < 0:
        return "killed", f"killed by signal {-returncode}"
    if "Traceback" in stdout or "Traceback" in stderr:
        return "traceback", stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if returncode == 0:
        return "accepted", ""
    return ("rejected", err) if err else ("unclear", (stderr.strip().splitlines() or [""])[-1])


def run_cli_mutants(sources: dict[str, bytes], numbers: list[int], folder: str | Path, image: str, seed: int = 0,
                    workers: int = 2, timeout_s: float = 120.0,
                    progress: Callable[[str], None] = lambda m: None) -> list[CliOutcome]:
    """Run mutants ``numbers`` through ``edgecnn inspect``, ``benchmark`` and ``classify IMAGE`` subprocesses."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jobs = []
    for n in numbers:
        m = make_mutant(sources, n, seed)
        path = folder / f"cli_mutant_{n:05d}_{m.kind}.tflite"
        path.write_bytes(m.data)
        jobs.extend((n, m.kind, c, str(path)) for c in STAGES)
    env = child_env()

    def one(job) -> CliOutcome:
        n, kind, command, path = job
        t0 = time.monotonic()
        try:
            p = subprocess.run([sys.executable, "-m", "edgecnn", *_cli_command(command, path, image)],
                               check=False, capture_output=True, text=True, timeout=timeout_s, env=env,
                               stdin=subprocess.DEVNULL)
            outcome, line = judge_cli(p.returncode, p.stdout, p.stderr)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            outcome, line, rc = "hang", f"no exit after {timeout_s:.0f} s", 0
        return CliOutcome(n, kind, command, rc, outcome, time.monotonic() - t0, line)

    out: list[CliOutcome] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, r in enumerate(pool.map(one, jobs), 1):
            out.append(r)
            if i % 6 == 0 or i == len(jobs):
                progress(f"CLI runs: {i}/{len(jobs)}")
    for n in numbers:
        for p in folder.glob(f"cli_mutant_{n:05d}_*.tflite"):
            p.unlink(missing_ok=True)
    return out


def pick_cli_mutants(result: CampaignResult, n: int) -> list[int]:
    """``n`` mutant numbers for the CLI check: every kind and every library outcome represented, contained ones
    (the child crashed) first since they are the dangerous ones."""
    ranked = sorted(result.results, key=lambda r: (-max(OUTCOMES.index(st.outcome) for st in r.stages), r.number))
    chosen: list[int] = []
    seen: set[tuple[str, str]] = set()
    for r in ranked:
        key = (r.kind, max((st.outcome for st in r.stages), key=OUTCOMES.index))
        if key not in seen:
            seen.add(key)
            chosen.append(r.number)
    for r in ranked:
        if len(chosen) >= n:
            break
        if r.number not in chosen:
            chosen.append(r.number)
    return sorted(chosen[:n])


# ---------------------------------------------------------------------------------------- hostile children


def spin() -> None:
    """Child-side: loop forever on the CPU."""
    while True:
        pass


def hog() -> None:
    """Child-side: allocate without bound."""
    chunks = []
    while True:
        chunks.append(bytearray(64 * 2**20))


# name -> (child function, its arguments, the outcome the sandbox must report, the signal if any, a phrase the
# user's message must hold)
HOSTILE = {
    "segfault": ("ctypes:string_at", [0], Outcome.CRASHED, "SIGSEGV", "segmentation fault"),
    "abort": ("os:abort", [], Outcome.CRASHED, "SIGABRT", "abort"),
    "unbounded allocation": ("edgecnn_robustness.campaign:hog", [], Outcome.OUT_OF_MEMORY, None, "out of memory"),
    "CPU loop": ("edgecnn_robustness.campaign:spin", [], Outcome.CPU_LIMIT, "SIGXCPU", "CPU time limit"),
    "stalled (sleeps)": ("time:sleep", [600], Outcome.TIMEOUT, None, "timed out"),
}


@dataclass(frozen=True)
class HostileOutcome:
    """How the parent fared against one hostile child: whether it survived and named the cause correctly
    (the typed outcome and signal expected, and a message that says so), and the outcome it reported."""

    name: str
    named: bool
    seconds: float
    message: str
    outcome: str = ""
    wall_s: float = 0.0


# The CPU loop must meet its CPU limit before its wall-clock limit; on a loaded machine a spinning child gets a
# fraction of a core, so its wall limit is this many times its CPU limit (it ends as soon as the CPU is spent, so
# an idle machine does not wait longer).
CPU_WALL_FACTOR = 30.0


def hostile_children(memory_mb: int = 512, cpu_s: int = 2, wall_s: float = 4.0) -> list[HostileOutcome]:
    """Run each :data:`HOSTILE` function in the sandbox; the parent must survive and report the right outcome.

    ``wall_s`` is the wall-clock limit of every child but the CPU loop, whose limit is
    ``max(wall_s, CPU_WALL_FACTOR * cpu_s)`` so that machine load cannot turn its CPU-limit outcome into a
    timeout."""
    out = []
    for name, (target, args, expect, sig, phrase) in HOSTILE.items():
        wall = max(wall_s, CPU_WALL_FACTOR * cpu_s) if expect is Outcome.CPU_LIMIT else wall_s
        t0 = time.monotonic()
        r = run_child(target, args, f"hostile:{name}", Limits(memory_mb=memory_mb, cpu_s=cpu_s, wall_s=wall))
        message = r.message or "returned normally"
        named = r.outcome is expect and r.signal == sig and phrase.lower() in message.lower()
        out.append(HostileOutcome(name, named, time.monotonic() - t0, message, r.outcome.value, wall))
    return out


@dataclass(frozen=True)
class KerasRefusal:
    """One unsafe Keras file and whether it was refused with a clear message."""

    case: str
    refused: bool
    message: str


def keras_refusals(folder: str | Path) -> list[KerasRefusal]:
    """``.h5``, a SavedModel folder, a ``.keras`` zip holding a Lambda layer, a non-zip ``.keras`` and a zip bomb:
    each must be refused by :func:`edgecnn.quantize.keras_model.check_keras_file` (no TensorFlow needed to refuse them)."""


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    h5 = folder / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    saved = folder / "saved_model"
    (saved / "variables").mkdir(parents=True, exist_ok=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    lam = folder / "lambda.keras"
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4]}},
        {"class_name": "Lambda", "config": {"function": {"class_name": "__lambda__",
                                                         "config": {"code": "4wEAAAAAAAAA"}}}}]}}
    with zipfile.ZipFile(lam, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
    notzip = folder / "fake.keras"
    notzip.write_bytes(b"import os; os.system('echo owned')")
    bomb = folder / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", b" " * (80 * 2**20))  # 80 KB on disk, 80 MiB unpacked
    out = []
    for case, path in (("legacy .h5", h5), ("SavedModel folder", saved), (".keras with a Lambda layer", lam),
                       (".keras that is not a zip", notzip), (".keras zip bomb (80 MiB config)", bomb)):
        try:
            check_keras_file(path)
            out.append(KerasRefusal(case, False, "accepted"))
        except EdgecnnError as exc:
            out.append(KerasRefusal(case, True, _one_line(str(exc))))
    return out


def summarise_cli(outcomes: list[CliOutcome]) -> dict[str, Any]:
    """Counts of the CLI runs by outcome (``killed``, ``traceback``, ``hang`` and ``unclear`` must be 0)."""
    c = Counter(o.outcome for o in outcomes)
    return {"runs": len(outcomes), "mutants": len({o.number for o in outcomes}),
            **{k: c.get(k, 0) for k in ("accepted", "rejected", "killed", "traceback", "hang", "unclear")},
            "slowest_s": round(max((o.seconds for o in outcomes), default=0.0), 2)}

