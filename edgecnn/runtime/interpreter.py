"""The one place that decides how a .tflite model is loaded, and with which delegate.

Order of preference: ``ai-edge-litert`` (LiteRT, the maintained runtime), then the legacy ``tflite_runtime``
(its last release needs numpy < 2). Never TensorFlow: this module is on the device side.

Models are always loaded from bytes (``model_content``) so the interpreter runs the flatbuffer verifier:
a truncated or random file becomes a :class:`~edgecnn.errors.ModelError`, not a crash. The verifier does not
catch everything, which is why ``inspect`` and ``benchmark`` load untrusted models in
:mod:`edgecnn.runtime.sandbox`.

Example::

    interp = make_interpreter("model_int8.tflite", threads=1)       # XNNPACK on the CPU
    interp = make_interpreter(data, delegate="edgetpu")             # Coral Edge TPU
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError, ModelError
from edgecnn.runtime.native_stderr import filtered_native_stderr
from edgecnn.runtime.tflite_schema import check_identifier

DELEGATES = ("xnnpack", "none", "edgetpu")
EDGETPU_LIBRARY = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}
INSTALL_HINT = "pip install 'edgecnn[device]'"
BUNDLE_MODEL = "model_int8.tflite"  # what a bundle folder given as a model stands for (see resolve_model_path)


@dataclass(frozen=True)
class Runtime:
    """The TFLite runtime in use.

    Attributes:
        name: distribution name, ``"ai-edge-litert"`` or ``"tflite-runtime"``.
        version: its version string (``"unknown"`` when it does not say).
        module: the imported ``...interpreter`` module (has ``Interpreter`` and ``load_delegate``).
    """

    name: str
    version: str
    module: Any


_RUNTIME: Runtime | None = None


def _dist_version(dist: str) -> str:
    try:
        return version(dist)
    except (PackageNotFoundError, ValueError):  # not installed as a distribution (vendored, source build)
        return "unknown"


def load_runtime() -> Runtime:
    """Import the TFLite runtime once: ai-edge-litert first, tflite_runtime as a fallback.

    Raises EdgecnnError naming the extra to install when neither works, and saying "numpy < 2" when
    tflite_runtime is present but fails under numpy 2.
    """
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    try:
        from ai_edge_litert import interpreter as litert  # lazy: litert

        _RUNTIME = Runtime("ai-edge-litert", _dist_version("ai-edge-litert"), litert)
        return _RUNTIME
    except ImportError as exc:
        litert_error = exc
    try:
        from tflite_runtime import interpreter as legacy  # lazy: optional

        _RUNTIME = Runtime("tflite-runtime", _dist_version("tflite-runtime"), legacy)
        return _RUNTIME
    except ImportError as exc:
        if "No module named 'tflite_runtime'" in str(exc) or getattr(exc, "name", "") == "tflite_runtime":
            raise EdgecnnError(
                f"no TFLite runtime installed (ai-edge-litert: {litert_error}); install it with: {INSTALL_HINT}"
            ) from exc
        legacy_error = exc
    except Exception as exc:  # numpy 2 makes tflite_runtime fail with AttributeError/_ARRAY_API errors
        legacy_error = exc
    hint = (
        f"tflite_runtime only works with numpy < 2 (numpy {np.__version__} is installed): "
        "install ai-edge-litert instead (" + INSTALL_HINT + ") or pip install 'numpy<2'"
        if int(np.__version__.split(".")[0]) >= 2
        else f"install ai-edge-litert: {INSTALL_HINT}"
    )
    raise EdgecnnError(f"tflite_runtime failed to load ({type(legacy_error).__name__}: {legacy_error}); {hint}")


def resolve_model_path(model: str | os.PathLike) -> Path:
    """The .tflite file that ``model`` names: the path itself, or for a folder (a bundle such as
    ``runs/NAME/bundle`` or ``firmware_models/shapes_compact``) its ``model_int8.tflite``.

    Every device command (classify, steer, inspect, benchmark) takes its model through here (via
    :func:`read_model_bytes`), so a bundle is accepted wherever a model is. A folder without ``model_int8.tflite``
    is a ModelError naming the .tflite files it does hold.
    """
    path = Path(model)
    if not path.is_dir():
        return path
    chosen = path / BUNDLE_MODEL
    if chosen.is_file():
        return chosen
    found = sorted(p.name for p in path.glob("*.tflite") if p.is_file())
    if found:
        raise ModelError(f"{path} is a folder without {BUNDLE_MODEL}; it holds {', '.join(found)}: "
                         f"give one of them, e.g. {path / found[0]}")
    raise ModelError(f"{path} is a folder with no .tflite model in it; give a .tflite file or a bundle folder")


def read_model_bytes(model: str | os.PathLike | bytes) -> bytes:
    """Bytes of a .tflite given as a path, a bundle folder (see :func:`resolve_model_path`) or bytes; ModelError
    when missing, empty or not a TFLite file."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data, name = bytes(model), "model"
    else:
        path = resolve_model_path(model)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ModelError(f"model not found: {path}") from exc
        except OSError as exc:
            raise ModelError(f"cannot read model {path}: {exc.strerror or exc}") from exc
        name = str(path)
    if not data:
        raise ModelError(f"{name} is empty (0 bytes); re-export the model")
    check_identifier(data, name)
    return data


@contextlib.contextmanager
def _quiet_unraisable():
    """Silence "Exception ignored in Delegate.__del__" that a failed delegate load prints to stderr."""
    old = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
    finally:
        sys.unraisablehook = old


def _drop_native_info():
    """Drop the runtime's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." line."""
    return filtered_native_stderr(lambda line: line.startswith("INFO: Created TensorFlow Lite"))


def edgetpu_library() -> str:
    """File name of the Edge TPU delegate library on this platform."""
    return EDGETPU_LIBRARY.get(sys.platform, EDGETPU_LIBRARY["linux"])


def load_edgetpu_delegate(runtime: Runtime, device: str | None = None) -> Any:
    """Load the Coral Edge TPU delegate; ModelError with an install hint when the library or device is absent."""
    lib = edgetpu_library()
    # Probe with ctypes first: a failed load_delegate leaves a half-built Delegate whose __del__ prints a
    # traceback to stderr, which users read as a crash.
    try:
        ctypes.CDLL(lib)
    except OSError as exc:
        raise ModelError(
            f"--delegate edgetpu needs the Edge TPU runtime library {lib}, which is not installed ({exc}); "
            "install it from https://coral.ai/software/#edgetpu-runtime (apt install libedgetpu1-std)"
        ) from exc
    options = {"device": device} if device else {}
    with _quiet_unraisable():
        try:
            return runtime.module.load_delegate(lib, options)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(
                f"the Edge TPU delegate did not load ({exc or type(exc).__name__}); is a Coral device plugged in?"
            ) from exc


def make_interpreter(
    model: str | os.PathLike | bytes, threads: int | None = None, delegate: str | None = None
) -> Any:
    """A ready (tensors allocated) TFLite interpreter for ``model``.

    Args:
        model: path to a .tflite file, or its bytes. Always loaded from bytes so the flatbuffer is verified.
        threads: CPU threads for the kernels (>= 1); None lets the runtime choose.
        delegate: ``"xnnpack"`` (default: LiteRT applies XNNPACK to float and int8 CPU kernels), ``"none"``
            (reference CPU kernels only) or ``"edgetpu"`` (Coral; the model must be compiled for it).

    Returns:
        An ``Interpreter`` of the runtime chosen by :func:`load_runtime`.

    Raises:
        ModelError: the file is missing, empty, not a valid model, uses ops this runtime lacks, or the delegate
            cannot be loaded. EdgecnnError: no runtime is installed.
    """
    data = read_model_bytes(model)
    delegate = (delegate or "xnnpack").lower()
    if delegate not in DELEGATES:
        raise ModelError(f"--delegate must be one of {', '.join(DELEGATES)}, got: {delegate!r}")
    if threads is not None and threads < 1:
        raise ModelError(f"--threads must be at least 1, got: {threads}")
    runtime = load_runtime()
    kwargs: dict[str, Any] = {"model_content": data, "num_threads": threads}
    if delegate == "edgetpu":
        kwargs["experimental_delegates"] = [load_edgetpu_delegate(runtime)]
    elif delegate == "none":
        resolver = getattr(runtime.module, "OpResolverType", None)
        if resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with _drop_native_info():
            interp = runtime.module.Interpreter(**kwargs)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(_explain_load_error(exc)) from exc
    return interp


def _explain_load_error(exc: Exception) -> str:
    msg = " ".join(str(exc).split())
    if "custom op" in msg.lower():
        name = msg.split("custom op:", 1)[-1].split(".", 1)[0].strip() if "custom op:" in msg else "?"
        if name.startswith("edgetpu"):
            return f"the model is compiled for the Edge TPU (custom op {name}); run it with --delegate edgetpu"
        return f"the model uses custom op {name!r}, which this runtime does not provide; re-export it with builtin ops"
    if "not a valid flatbuffer" in msg.lower():
        return "the model file is damaged (the flatbuffer verifier rejected it: truncated or not a model); re-export it"
    if "failed to prepare" in msg or "bad_alloc" in msg:
        return f"the runtime could not prepare the model: {msg} (malformed, or it needs more memory than allowed)"
    return f"the runtime could not load the model: {msg}"
