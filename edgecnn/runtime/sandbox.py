"""Run the risky part (loading and invoking an untrusted model) in a child process with resource limits.

The TFLite flatbuffer verifier does not catch everything: a verifier-valid but inconsistent model can crash the
interpreter process outright (segfault, abort), allocate without bound, or spin. Upstream's advice is to treat a
model as a program. So ``inspect``, ``benchmark`` and the pre-flight check of ``classify`` call a function in a
fresh ``python -m edgecnn.runtime.sandbox`` child limited in address space (``RLIMIT_AS``), CPU time
(``RLIMIT_CPU``) and wall time. The parent (which never loads the model) gets a typed :class:`SandboxResult`
from :func:`run_child` (ok, crashed with a signal, out of memory, CPU limit, timeout, failed with the child's own
error) carrying the one line a user is shown; :func:`run_sandboxed` returns the value or raises that line as the
child's own :class:`~edgecnn.errors.EdgecnnError` or as a :class:`SandboxError` (a ModelError whose ``result``
keeps the type, so callers such as the robustness campaign never have to read the message).

Example::

    card = run_sandboxed("edgecnn.runtime.inspect:inspect_file", ["model.tflite"], what="model.tflite")
    r = run_child("edgecnn.runtime.inspect:inspect_file", ["model.tflite"], what="model.tflite")
    if r.contained:
        print(r.outcome, r.signal, r.message)
"""

from __future__ import annotations

import enum
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import errors
from edgecnn.atomic import write_json
from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.runtime.interpreter import make_interpreter

_STAGE_ENV = "EDGECNN_SANDBOX_STAGE_FILE"


@dataclass(frozen=True)
class Limits:
    """Resource limits for the child.

    Attributes:
        memory_mb: address-space limit in MiB (``RLIMIT_AS``); LiteRT reserves address space generously, so
            keep this well above the model size (1 GiB is plenty for small models).
        cpu_s: CPU-time limit in seconds (``RLIMIT_CPU``; the child gets SIGXCPU).
        wall_s: wall-clock limit in seconds; the parent kills the child after it.
    """

    memory_mb: int = 2048
    cpu_s: int = 300
    wall_s: float = 300.0


class Outcome(enum.Enum):
    """How a sandboxed call ended."""

    OK = "ok"  # the function returned
    CRASHED = "crashed"  # the child was killed by a signal (segfault, abort, bus error, SIGKILL, ...)
    OUT_OF_MEMORY = "out_of_memory"  # it hit the address-space limit (abort with bad_alloc, or MemoryError)
    CPU_LIMIT = "cpu_limit"  # it used up its CPU time (SIGXCPU)
    TIMEOUT = "timeout"  # it ran past the wall-clock limit and was killed by the parent
    FAILED = "failed"  # it raised (its own clear error, or an unexpected one) or exited non-zero


# The outcomes where the child misbehaved and the parent contained it (as opposed to a refusal).
CONTAINED = frozenset({Outcome.CRASHED, Outcome.OUT_OF_MEMORY, Outcome.CPU_LIMIT, Outcome.TIMEOUT})


@dataclass(frozen=True)
class SandboxResult:
    """The outcome of one sandboxed call; truthy when the function returned.

    Attributes:
        outcome: see :class:`Outcome`.
        value: the function's (JSON) result when ``outcome`` is OK, else None.
        message: the one line a user is shown when it is not OK (it names ``what`` and the cause), else "".
        signal: the signal's name (``"SIGSEGV"``) when the child was killed by one, else None.
        stage: what the child said it was doing when it ended (``"loading the model"``), or "".
        error: FAILED only: the class name of the exception the function raised (``"ModelError"``), or None
            when the child exited non-zero without reporting one.
    """

    outcome: Outcome
    value: Any = None
    message: str = ""
    signal: str | None = None
    stage: str = ""
    error: str | None = None

    def __bool__(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def contained(self) -> bool:
        """The child crashed, ran out of memory or time, and the parent survived it."""
        return self.outcome in CONTAINED


class SandboxError(ModelError):
    """The sandboxed child crashed, ran out of memory or time, or failed unexpectedly; :attr:`result` says how."""

    def __init__(self, result: SandboxResult) -> None:
        super().__init__(result.message)
        self.result = result


def stage(name: str) -> None:
    """In the child: record what it is doing now ("loading", "invoking"), so a crash report can say when."""
    path = os.environ.get(_STAGE_ENV)
    if path:
        try:
            Path(path).write_text(name, encoding="utf-8")
        except OSError:
            pass


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _describe_death(rc: int, stderr: str, limits: Limits) -> tuple[Outcome, str]:
    """``(outcome, what the model did)`` for a child killed by signal ``-rc``."""
    sig = -rc
    oom = "bad_alloc" in stderr or "MemoryError" in stderr or "out of memory" in stderr.lower()
    if sig == signal.SIGSEGV:
        return Outcome.CRASHED, "crashed the interpreter with a segmentation fault"
    if sig == signal.SIGBUS:
        return Outcome.CRASHED, "crashed the interpreter with a bus error"
    if sig == signal.SIGABRT:
        if oom:
            return Outcome.OUT_OF_MEMORY, f"ran out of memory (limit {limits.memory_mb} MiB)"
        return Outcome.CRASHED, "made the interpreter abort"
    if sig == signal.SIGFPE:
        return Outcome.CRASHED, "crashed the interpreter with an arithmetic error"
    if sig == signal.SIGILL:
        return Outcome.CRASHED, "hit an illegal instruction (a runtime built for another CPU?)"
    if sig == signal.SIGXCPU:
        return Outcome.CPU_LIMIT, f"used more than the CPU time limit of {limits.cpu_s} s"
    if sig == signal.SIGKILL:
        return Outcome.CRASHED, f"was killed (out of memory, limit {limits.memory_mb} MiB, or by the system)"
    return Outcome.CRASHED, f"killed the worker process with {_signal_name(sig)}"


def run_child(target: str, args: list[Any], what: str, limits: Limits | None = None) -> SandboxResult:
    """Call ``target`` (``"package.module:function"``) with ``args`` in a limited child and say how it ended.

    Args:
        target: importable function; its arguments and return value must be JSON-serialisable.
        args: positional arguments.
        what: what is being processed, for messages (usually the model path).
        limits: resource limits (default :class:`Limits`).

    Never raises for anything the child does: the parent is never killed by the model.
    """
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="edgecnn-sandbox-") as tmp:
        request, result, stage_file = Path(tmp, "request.json"), Path(tmp, "result.json"), Path(tmp, "stage")
        request.write_text(json.dumps({"target": target, "args": args, "limits": limits.__dict__}), encoding="utf-8")
        env = {**os.environ, _STAGE_ENV: str(stage_file)}
        # The child must import this same edgecnn, wherever it is (editable install, plain checkout).
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "edgecnn.runtime.sandbox", str(request), str(result)]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                                  timeout=limits.wall_s, check=False)
        except subprocess.TimeoutExpired:
            doing = _read_stage(stage_file)
            return SandboxResult(Outcome.TIMEOUT, stage=doing,
                                 message=f"{what}: timed out after {limits.wall_s:.0f} s{_while(doing)}; the model "
                                 "hangs or is too big for this device")
        stderr = proc.stderr.decode("utf-8", "replace")
        if result.is_file():
            try:
                payload = json.loads(result.read_text(encoding="utf-8"))
            except ValueError:
                payload = None
            if payload is not None and proc.returncode == 0:
                if payload.get("ok"):
                    return SandboxResult(Outcome.OK, value=payload["result"])
                return _reported_failure(payload, what, limits, _read_stage(stage_file))
        doing = _read_stage(stage_file)
        if proc.returncode < 0:
            outcome, did = _describe_death(proc.returncode, stderr, limits)
            return SandboxResult(outcome, signal=_signal_name(-proc.returncode), stage=doing,
                                 message=f"{what}: the model {did}{_while(doing)}; the file is damaged, hostile or "
                                 "needs another runtime (edgecnn itself is unaffected)")
        last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "no output")
        return SandboxResult(Outcome.FAILED, stage=doing,
                             message=f"{what}: the worker process failed with exit code {proc.returncode}"
                             f"{_while(doing)}: {last}")


def run_sandboxed(target: str, args: list[Any], what: str, limits: Limits | None = None) -> Any:
    """Call ``target`` with ``args`` in a limited child (see :func:`run_child`); return its result.

    Raises:
        EdgecnnError (the same class) when the function raised one in the child; :class:`SandboxError` (a
        ModelError, its ``result`` typed) when the child crashed, ran out of memory or time, or failed
        unexpectedly. The parent is never killed by the model.
    """
    r = run_child(target, args, what, limits)
    if r:
        return r.value
    cls = getattr(errors, r.error, None) if r.outcome is Outcome.FAILED and r.error else None
    if isinstance(cls, type) and issubclass(cls, EdgecnnError):
        raise cls(r.message)
    raise SandboxError(r)


def _read_stage(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _while(doing: str) -> str:
    return f" while {doing}" if doing else ""


def _reported_failure(payload: dict[str, Any], what: str, limits: Limits, doing: str) -> SandboxResult:
    """The child caught an exception and reported it in its result file."""
    kind = payload.get("error", "")
    message = payload.get("message", "")
    if kind == "MemoryError":
        return SandboxResult(Outcome.OUT_OF_MEMORY, stage=doing,
                             message=f"{what}: ran out of memory (limit {limits.memory_mb} MiB); the model is too "
                             "big or broken")
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, EdgecnnError):
        return SandboxResult(Outcome.FAILED, stage=doing, error=kind,
                             message=message if what in message else f"{what}: {message}")
    return SandboxResult(Outcome.FAILED, stage=doing, error=kind or None,
                         message=f"{what}: unexpected failure in the worker: {kind}: {message}")


def _apply_limits(limits: dict[str, Any]) -> None:
    mem = int(limits["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = int(limits["cpu_s"])
    # Soft limit sends SIGXCPU; the hard limit one second later kills outright.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    # No core dumps of a crashing model all over the user's folder.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def check_model(model: str, threads: int | None = None, delegate: str | None = None,
                limits: Limits | None = None) -> None:
    """Load ``model`` and run it once on zeros in a sandboxed child; ModelError if that fails in any way."""
    run_sandboxed("edgecnn.runtime.sandbox:_check_in_child", [str(model), threads, delegate], str(model),
                  limits or Limits(wall_s=120.0))


def _check_in_child(model: str, threads: int | None, delegate: str | None) -> bool:
    stage("loading the model")
    interp = make_interpreter(model, threads=threads, delegate=delegate)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    stage("running the model")
    interp.invoke()
    return True


def _child_main(request_path: str, result_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    _apply_limits(request["limits"])
    try:
        module_name, func_name = request["target"].split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        value = func(*request["args"])
        payload: dict[str, Any] = {"ok": True, "result": value}
    except MemoryError:
        payload = {"ok": False, "error": "MemoryError", "message": "out of memory"}
    except EdgecnnError as exc:
        payload = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        payload = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    write_json(result_path, payload)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], sys.argv[2]))
