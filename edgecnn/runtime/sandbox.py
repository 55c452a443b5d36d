"""Run the risky part (loading and invoking an untrusted model) in a child process with resource limits.

The TFLite flatbuffer verifier does not catch everything: a verifier-valid but inconsistent model can crash the
interpreter process outright (segfault, abort), allocate without bound, or spin. Upstream's advice is to treat a
model as a program. So ``inspect``, ``benchmark`` and the pre-flight check of ``classify`` call a function in a
fresh ``python -m edgecnn.runtime.sandbox`` child limited in address space (``RLIMIT_AS``), CPU time
(``RLIMIT_CPU``) and wall time; the parent (which never loads the model) turns any misbehaviour into a
:class:`~edgecnn.errors.ModelError` that says what happened: segfault, abort, out of memory, CPU or wall
timeout, or the child's own clear error.

Example::

    card = run_sandboxed("edgecnn.runtime.inspect:inspect_file", ["model.tflite"], what="model.tflite")
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import EdgecnnError, ModelError

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


def _describe_death(rc: int, stderr: str, limits: Limits) -> str:
    sig = -rc
    oom = "bad_alloc" in stderr or "MemoryError" in stderr or "out of memory" in stderr.lower()
    if sig == signal.SIGSEGV:
        return "crashed the interpreter with a segmentation fault"
    if sig == signal.SIGBUS:
        return "crashed the interpreter with a bus error"
    if sig == signal.SIGABRT:
        return f"ran out of memory (limit {limits.memory_mb} MiB)" if oom else "made the interpreter abort"
    if sig == signal.SIGFPE:
        return "crashed the interpreter with an arithmetic error"
    if sig == signal.SIGILL:
        return "hit an illegal instruction (a runtime built for another CPU?)"
    if sig == signal.SIGXCPU:
        return f"used more than the CPU time limit of {limits.cpu_s} s"
    if sig == signal.SIGKILL:
        return f"was killed (out of memory, limit {limits.memory_mb} MiB, or by the system)"
    return f"killed the worker process with {_signal_name(sig)}"


def run_sandboxed(target: str, args: list[Any], what: str, limits: Limits | None = None) -> Any:
    """Call ``target`` (``"package.module:function"``) with ``args`` in a limited child; return its result.

    Args:
        target: importable function; its arguments and return value must be JSON-serialisable.
        args: positional arguments.
        what: what is being processed, for messages (usually the model path).
        limits: resource limits (default :class:`Limits`).

    Raises:
        EdgecnnError (the same class) when the function raised one in the child; ModelError when the child
        crashed, ran out of memory or time, or failed unexpectedly. The parent is never killed by the model.
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
            when = _read_stage(stage_file)
            raise ModelError(f"{what}: timed out after {limits.wall_s:.0f} s{when}; the model hangs or is too big "
                             "for this device") from None
        stderr = proc.stderr.decode("utf-8", "replace")
        if result.is_file():
            try:
                payload = json.loads(result.read_text(encoding="utf-8"))
            except ValueError:
                payload = None
            if payload is not None and proc.returncode == 0:
                if payload.get("ok"):
                    return payload["result"]
                raise _rebuild_error(payload, what, limits)
        when = _read_stage(stage_file)
        if proc.returncode < 0:
            raise ModelError(f"{what}: the model {_describe_death(proc.returncode, stderr, limits)}{when}; the file "
                             "is damaged, hostile or needs another runtime (edgecnn itself is unaffected)")
        last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "no output")
        raise ModelError(f"{what}: the worker process failed with exit code {proc.returncode}{when}: {last}")


def _read_stage(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" while {text}" if text else ""


def _rebuild_error(payload: dict[str, Any], what: str, limits: Limits) -> EdgecnnError:
    from edgecnn import errors

    kind = payload.get("error", "")
    message = payload.get("message", "")
    if kind == "MemoryError":
        return ModelError(f"{what}: ran out of memory (limit {limits.memory_mb} MiB); the model is too big or broken")
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, EdgecnnError):
        return cls(message if what in message else f"{what}: {message}")
    return ModelError(f"{what}: unexpected failure in the worker: {kind}: {message}")


def _apply_limits(limits: dict[str, Any]) -> None:
    import resource

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
    import numpy as np

    from edgecnn.runtime.interpreter import make_interpreter

    stage("loading the model")
    interp = make_interpreter(model, threads=threads, delegate=delegate)
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    stage("running the model")
    interp.invoke()
    return True


def _child_main(request_path: str, result_path: str) -> int:
    import importlib

    from edgecnn.atomic import write_json

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
