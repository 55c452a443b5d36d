"""kill -9 trials: interrupt ``edgecnn quantize`` and ``edgecnn export`` at random moments and check that the
destination holds the old file (folder) or the complete new one, never a partial one.

Each trial starts the real command in a subprocess over a destination that already holds an *old* result, waits
a random delay (half of the trials anywhere in the command's run time; half a short random time after the last
log line before the result is written, so that the kill lands in the writing phase), sends SIGKILL, and inspects
the destination:

- ``old``: byte-identical to what was there before;
- ``new``: a complete new result (the model loads in LiteRT and carries its contract; a bundle's model card lists
  every file with the right sha256);
- ``partial`` or ``missing``: the failure this module exists to catch (must be 0).

Temporary files left beside the destination (a kill -9 cannot be cleaned up after) are counted and removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.interpreter import make_interpreter
from edgecnn.runtime.metadata import read_contract
from edgecnn_robustness.childenv import child_env

OLD_MARKER = "OLD_BUNDLE_MARKER"


@dataclass(frozen=True)
class KillTrial:
    """One interrupted command.

    Attributes:
        command: ``quantize`` or ``export``.
        delay_s: seconds between start and SIGKILL.
        killed: True when the process was still running at that moment (else it had finished).
        phase: ``anywhere`` (a delay from the start) or ``writing`` (a delay after the last log line before
            the write).
        state: ``old``, ``new``, ``partial`` or ``missing`` (see module docstring).
        leftovers: temporary files/folders found beside the destination afterwards.
    """

    command: str
    delay_s: float
    killed: bool
    state: str
    leftovers: int
    phase: str = "anywhere"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir()) if p.is_file()}


def model_state(dest: Path, old: bytes) -> tuple[str, str]:
    """State of a quantize destination: old, new (loads, has a contract), partial or missing."""

    if not dest.exists():
        return "missing", "no file at the destination"
    data = dest.read_bytes()
    if data == old:
        return "old", ""
    try:
        make_interpreter(data, threads=1)
        if read_contract(data) is None:
            return "partial", "loads but has no contract"
    except EdgecnnError as exc:
        return "partial", str(exc)
    return "new", ""


def bundle_state(dest: Path, old: dict[str, str]) -> tuple[str, str]:
    """State of an export destination: old (identical files), new (model card's files all present with their
    sha256), partial or missing."""
    if not dest.is_dir():
        return "missing", "no folder at the destination"
    if (dest / OLD_MARKER).exists():
        return ("old", "") if _snapshot(dest) == old else ("partial", "old bundle changed")
    try:
        card = json.loads((dest / "model_card.json").read_text(encoding="utf-8"))
        files = card["files"]
    except (OSError, ValueError, KeyError) as exc:
        return "partial", f"model_card.json unreadable: {exc}"
    names = files.keys() if isinstance(files, dict) else [f.get("name") for f in files]
    for name in names:
        entry = files[name] if isinstance(files, dict) else next(f for f in files if f.get("name") == name)
        want = entry.get("sha256") if isinstance(entry, dict) else None
        path = dest / str(name)
        if not path.is_file() or (want and _sha(path) != want):
            return "partial", f"{name} missing or different from the model card"
    return "new", ""


def _leftovers(dest: Path) -> list[Path]:
    return [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]


def _clean(paths: list[Path]) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


QUANTIZE_MARKER = "measuring per-layer error"  # quantize's last log line before it writes
EXPORT_MARKER = "per-layer error of int8"  # export's last log line before it builds and swaps in the bundle


def _env() -> dict[str, str]:
    return child_env(TF_CPP_MIN_LOG_LEVEL="3")


class _Command:
    """``python -m edgecnn ARGS`` with stderr lines collected as they come, stamped with ``time.monotonic()``."""

    def __init__(self, args: list[str]) -> None:
        self.start = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "edgecnn", *args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line))

    def seen(self, marker: str) -> float | None:
        return next((t for t, ln in list(self.lines) if marker in ln), None)

    def wait_for(self, marker: str, timeout: float = 600.0) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            t = self.seen(marker)
            if t is not None:
                return t
            time.sleep(0.005)
        return self.seen(marker)

    def kill_at(self, when: float, sig: int = signal.SIGKILL) -> bool:
        """Send ``sig`` at ``time.monotonic() == when`` unless it has exited; True when it was sent."""
        try:
            self.proc.wait(timeout=max(0.0, when - time.monotonic()))
            killed = False
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # a SIGTERM that was not honoured: count it, then end it
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            killed = True
        self._reader.join(timeout=5)
        return killed


def _run_and_kill(args: list[str], rng: np.random.Generator, full_s: float, marker: str,
                  tail_s: float) -> tuple[bool, float, str]:
    """Start the command and kill -9 it: half of the time anywhere in ``full_s``, half of the time within
    ``1.1 * tail_s`` after ``marker`` appears on stderr (the phase that writes). ``(killed, delay, phase)``."""
    cmd = _Command(args)
    if rng.random() < 0.5:
        delay = float(rng.uniform(0.3, full_s))
        return cmd.kill_at(cmd.start + delay), delay, "anywhere"
    seen = cmd.wait_for(marker)
    base = seen if seen is not None else time.monotonic()
    when = base + float(rng.uniform(0.0, 1.1 * tail_s))
    return cmd.kill_at(when), when - cmd.start, "writing"


def timed_run(args: list[str], marker: str = "") -> tuple[float, float]:
    """Run ``python -m edgecnn ARGS`` to completion: ``(seconds in all, seconds after the stderr line holding
    marker)``; EdgecnnError when it fails."""

    cmd = _Command(args)
    rc = cmd.proc.wait()
    cmd._reader.join(timeout=5)
    end = time.monotonic()
    if rc != 0:
        last = next((ln.strip() for _, ln in reversed(cmd.lines) if ln.strip()), "no output")
        raise EdgecnnError(f"robustness set-up step `edgecnn {' '.join(args[:2])}` failed: {last}")
    t = cmd.seen(marker) if marker else None
    return end - cmd.start, (end - t) if t is not None else 0.0


def quantize_trials(run: str | Path, calibration: str | Path, work: str | Path, old_model: bytes, trials: int,
                    full_s: float, tail_s: float, seed: int = 0,
                    progress: Callable[[str], None] = lambda m: None) -> list[KillTrial]:
    """``trials`` kill -9 trials of ``edgecnn quantize RUN --out work/model.tflite`` over ``old_model``;
    ``full_s`` and ``tail_s``: an uninterrupted run's duration and its time after :data:`QUANTIZE_MARKER`."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "model.tflite"
    rng = np.random.default_rng([seed, 1])
    out = []
    for i in range(trials):
        dest.write_bytes(old_model)
        killed, delay, phase = _run_and_kill(["quantize", str(run), "--calibration", str(calibration), "--out",
                                              str(dest)], rng, full_s, QUANTIZE_MARKER, tail_s)
        state, detail = model_state(dest, old_model)
        left = _leftovers(dest)
        _clean(left)
        out.append(KillTrial("quantize", round(delay, 2), killed, state, len(left), phase, detail))
        progress(f"kill -9 quantize {i + 1}/{trials}: after {delay:.1f} s ({phase}) -> {state}"
                 + ("" if killed else " (had finished)"))
    return out


def export_trials(run: str | Path, calibration: str | Path, work: str | Path, old_bundle: str | Path, trials: int,
                  full_s: float, tail_s: float, seed: int = 0,
                  progress: Callable[[str], None] = lambda m: None) -> list[KillTrial]:
    """``trials`` kill -9 trials of ``edgecnn export RUN --out work/bundle --overwrite`` over a copy of
    ``old_bundle`` (marked so that it can be told from a new one)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "bundle"
    rng = np.random.default_rng([seed, 2])
    out = []
    for i in range(trials):
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(old_bundle, dest)
        (dest / OLD_MARKER).write_text("the bundle that was here before the trial\n")
        old = _snapshot(dest)
        killed, delay, phase = _run_and_kill(["export", str(run), "--calibration", str(calibration), "--out",
                                              str(dest), "--overwrite"], rng, full_s, EXPORT_MARKER, tail_s)
        state, detail = bundle_state(dest, old)
        left = _leftovers(dest)
        _clean(left)
        out.append(KillTrial("export", round(delay, 2), killed, state, len(left), phase, detail))
        progress(f"kill -9 export {i + 1}/{trials}: after {delay:.1f} s ({phase}) -> {state}" + ("" if killed else " (had finished)"))
    return out


def sigterm_export_trial(run: str | Path, calibration: str | Path, work: str | Path, old_bundle: str | Path,
                         tail_s: float, seed: int = 0) -> dict[str, Any]:
    """SIGTERM (not -9) during export's writing phase: the command must clean up its temporary folder itself and
    exit with 143 (or 0 when it had already finished); the destination is old or complete new."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    dest = work / "bundle"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(old_bundle, dest)
    (dest / OLD_MARKER).write_text("the bundle that was here before the trial\n")
    old = _snapshot(dest)
    rng = np.random.default_rng([seed, 3])
    cmd = _Command(["export", str(run), "--calibration", str(calibration), "--out", str(dest), "--overwrite"])
    seen = cmd.wait_for(EXPORT_MARKER)
    sent = cmd.kill_at((seen or time.monotonic()) + float(rng.uniform(0.0, tail_s)), signal.SIGTERM)
    state, detail = bundle_state(dest, old)
    left = _leftovers(dest)
    _clean(left)
    rc = cmd.proc.returncode
    err = "".join(ln for _, ln in cmd.lines)
    ok = state in ("old", "new") and not left and rc in ((143, 0) if sent else (0,)) and "Traceback" not in err
    return {"signal_sent": sent, "returncode": rc, "state": state, "temp_leftovers": len(left), "ok": ok,
            "detail": detail}


def summarise(trials: list[KillTrial]) -> dict[str, Any]:
    """Counts for the report: trials, interrupted, states, partial (must be 0), leftovers."""
    states = Counter(t.state for t in trials)
    return {
        "trials": len(trials),
        "interrupted": sum(t.killed for t in trials),
        "interrupted_while_writing": sum(t.killed and t.phase == "writing" for t in trials),
        "finished_before_kill": sum(not t.killed for t in trials),
        "old": states.get("old", 0),
        "new": states.get("new", 0),
        "partial": states.get("partial", 0) + states.get("missing", 0),
        "temp_leftovers": sum(t.leftovers for t in trials),
        "per_command": {c: dict(Counter(t.state for t in trials if t.command == c)) for c in sorted({t.command for t in trials})},
    }
