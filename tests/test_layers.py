"""The architecture as a checked contract.

* ``lint-imports`` (import-linter over grimp's graph of every import, function-level ones included) checks the
  contracts in ``pyproject.toml``: the layers, the device line (no TensorFlow/Keras, even lazily) and no import
  cycles between siblings; a deliberate violation in a copy of the tree makes it fail.
* A function-level import says why it is lazy (``# lazy: <reason>``, one word from :data:`LAZY_REASONS`): a lazy
  import keeps a heavy or optional package out, it never hides a cycle.
* No module imports another module's private (``_name``) objects.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

LAZY_REASONS = {
    "tensorflow": "keeps TensorFlow out of device and --help paths",
    "keras": "keeps Keras out (the model registry lists architectures without it)",
    "matplotlib": "plots are optional on the device",
    "tflite_micro": "the microcontroller check is optional",
    "picamera2": "only on a Raspberry Pi camera",
    "litert": "picks ai-edge-litert or the legacy tflite_runtime at run time",
    "optional": "an optional package (hardware, web, developer tools)",
    "cli": "a command module imports its implementation only when it runs, so --help stays fast and TF-free",
}
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH first, so grimp reads the edgecnn under ``root`` (a copy in the violation test).
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def _sources() -> list[Path]:
    return sorted((REPO / "edgecnn").rglob("*.py"))


def _function_level_imports(tree: ast.Module) -> list[ast.stmt]:
    top = set()
    for node in tree.body:  # module level, including `if TYPE_CHECKING:` and `try:` blocks
        top.add(id(node))
        if isinstance(node, (ast.If, ast.Try)):
            top.update(id(n) for n in ast.walk(node))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in top]


def test_import_contracts_hold():
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 kept, 0 broken" in proc.stdout, proc.stdout[-2000:]


def test_import_contracts_catch_a_deliberate_violation(tmp_path):
    """A copy of the tree with a lazy TensorFlow import in the runtime and an upward import in the core fails."""
    shutil.copytree(REPO / "edgecnn", tmp_path / "edgecnn", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    stats = tmp_path / "edgecnn" / "runtime" / "stats.py"
    stats.write_text(stats.read_text() + "\n\ndef _sneaky():\n    import tensorflow  # lazy: tensorflow\n")
    outputs = tmp_path / "edgecnn" / "outputs.py"
    outputs.write_text(outputs.read_text() + "\nfrom edgecnn.runtime import stats  # noqa: E402\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "edgecnn.runtime.stats -> tensorflow" in proc.stdout
    assert "edgecnn.outputs -> edgecnn.runtime.stats" in proc.stdout


def test_function_level_imports_say_why_they_are_lazy():
    missing = []
    for path in _sources():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in _function_level_imports(ast.parse("\n".join(lines))):
            text = " ".join(lines[node.lineno - 1 : node.end_lineno])
            m = re.search(r"#\s*lazy:\s*(\w+)", text)
            if not m or m.group(1) not in LAZY_REASONS:
                missing.append(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not missing, ("function-level imports without a `# lazy: <reason>` from "
                         f"{sorted(LAZY_REASONS)} (move them to the top, or say why):\n" + "\n".join(missing))


def test_no_private_names_imported_across_modules():
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgecnn"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {node.module} {private}")
    assert not found, "private names imported across modules (make them public or move them):\n" + "\n".join(found)
