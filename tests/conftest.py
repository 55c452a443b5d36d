"""Shared test fixtures: the repository, a CLI runner in a real subprocess, tiny generated data sets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def clean_error(self) -> bool:
        """A user error: non-zero exit, not killed by a signal, no traceback, a one-line 'Error:' message."""
        return (
            self.returncode > 0
            and "Traceback" not in self.stderr
            and "Traceback" not in self.stdout
            and any(line.startswith("Error:") for line in self.stderr.splitlines())
        )


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, python: str | None = None, cwd=None) -> CliResult:
    """Run ``python -m edgecnn ARGS`` in a fresh process and capture its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [python or sys.executable, "-m", "edgecnn", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd or REPO,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """A tiny shapes data set: 5 classes x 24 images of 32x32, seed 0."""
    from edgecnn.data.shapes import generate

    return generate(tmp_path_factory.mktemp("data") / "shapes", size=32, per_class=24, seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party test data not found at {SHARED_DATA} (only present in the edgecnn workspace)")
    return SHARED_DATA
