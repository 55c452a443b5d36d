"""Where a figure was measured: CPU, cores, runtime and versions (standard library + numpy only; the TFLite
runtime is imported only when asked)."""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgecnn.runtime import interpreter


@dataclass(frozen=True)
class Environment:
    """The machine and software a benchmark ran on.

    Attributes:
        cpu: CPU model name (``/proc/cpuinfo``; falls back to ``platform.processor()``).
        cores: logical CPUs usable by this process.
        machine: architecture, e.g. ``"x86_64"``, ``"aarch64"``.
        system: OS and kernel release.
        python: Python version.
        runtime: TFLite runtime name (``"ai-edge-litert"``/``"tflite-runtime"``); empty when not loaded.
        runtime_version: its version.
        numpy: numpy version.
        date: ISO 8601 UTC time of the measurement.
    """

    cpu: str
    cores: int
    machine: str
    system: str
    python: str
    runtime: str
    runtime_version: str
    numpy: str
    date: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_model() -> str:
    """CPU model name; ``"unknown"`` when the OS does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                # x86 says "model name"; many ARM boards say "Model" (the board) or "Hardware".
                if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_environment(load_runtime: bool = True) -> Environment:
    """Describe this machine; with ``load_runtime`` also import the TFLite runtime to report its version."""
    name = version = ""
    if load_runtime:
        rt = interpreter.load_runtime()
        name, version = rt.name, rt.version
    return Environment(
        cpu=cpu_model(),
        cores=usable_cores(),
        machine=platform.machine(),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        runtime=name,
        runtime_version=version,
        numpy=np.__version__,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
