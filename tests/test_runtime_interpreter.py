"""How a model gets loaded: runtime choice and its error messages (subprocesses with runtimes hidden)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.device

BLOCK = r"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError(f"No module named '{name}'", name=name)
sys.meta_path.insert(0, Block())
from edgecnn.errors import EdgecnnError
from edgecnn.runtime.interpreter import load_runtime
try:
    print(load_runtime().name)
except EdgecnnError as exc:
    print('Error:', exc)
"""


def load_with(blocked: tuple[str, ...], extra_path: str | None = None) -> str:
    env = None
    if extra_path:
        import os

        env = {**os.environ, "PYTHONPATH": extra_path + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = f"BLOCKED = {blocked!r}\n" + BLOCK
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_litert_is_preferred():
    assert load_with(()) == "ai-edge-litert"


def test_no_runtime_names_the_extra_to_install():
    out = load_with(("ai_edge_litert", "tflite_runtime"))
    assert out.startswith("Error: no TFLite runtime installed") and "pip install 'edgecnn[device]'" in out


def test_legacy_tflite_runtime_under_numpy_2_says_numpy_lt_2(tmp_path):
    # A stand-in for tflite_runtime 2.14, which fails this way when imported under numpy 2.
    pkg = tmp_path / "tflite_runtime"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text("raise AttributeError('_ARRAY_API not found')\n")
    out = load_with(("ai_edge_litert",), extra_path=str(tmp_path))
    assert out.startswith("Error: tflite_runtime failed to load") and "numpy < 2" in out
