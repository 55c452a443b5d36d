"""The device line: the device side never imports TensorFlow or Keras.

Runs in a subprocess where importing ``tensorflow`` or ``keras`` raises, as on a Raspberry Pi that installed
only ``edgecnn[device]``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

# Every module a device command may import. New runtime modules are picked up automatically.
DEVICE_MODULES = ["edgecnn", "edgecnn.contract", "edgecnn.preprocess", "edgecnn.labels", "edgecnn.errors",
                  "edgecnn.atomic", "edgecnn.data.imagefolder", "edgecnn.data.shapes", "edgecnn.cli"]
DEVICE_PACKAGES = ["runtime", "cli"]

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                raise ImportError(f"device line crossed: {name} imported")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def _device_modules() -> list[str]:
    mods = list(DEVICE_MODULES)
    for pkg in DEVICE_PACKAGES:
        for p in sorted((REPO / "edgecnn" / pkg).glob("*.py")):
            mods.append(f"edgecnn.{pkg}" if p.stem == "__init__" else f"edgecnn.{pkg}.{p.stem}")
    return mods


def test_blocker_really_blocks():
    proc = _run("import tensorflow")
    assert proc.returncode != 0 and "device line crossed" in proc.stderr


def test_device_modules_import_without_tensorflow():
    mods = _device_modules()
    assert "edgecnn.runtime.metadata" in mods
    code = f"""
    import importlib, sys
    for m in {mods!r}:
        importlib.import_module(m)
    bad = sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras'))
    assert not bad, bad
    print('imported', len({mods!r}))
    """
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert f"imported {len(mods)}" in proc.stdout


def test_cli_help_lists_every_command_without_tensorflow():
    proc = _run("import sys; sys.argv=['edgecnn','--help']; from edgecnn.cli import main; main()")
    assert proc.returncode == 0, proc.stderr
    commands = sorted(p.stem[4:].replace("_", "-") for p in (REPO / "edgecnn" / "cli").glob("cmd_*.py"))
    assert {"data", "train", "models"} <= set(commands)
    for name in commands:
        assert f"  {name} " in proc.stdout or f"  {name}\n" in proc.stdout, name


def test_every_subcommand_help_without_tensorflow():
    commands = sorted(p.stem[4:].replace("_", "-") for p in (REPO / "edgecnn" / "cli").glob("cmd_*.py"))
    for name in commands:
        proc = _run(f"import sys; sys.argv=['edgecnn',{name!r},'--help']; from edgecnn.cli import main; main()")
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Usage:" in proc.stdout, name


def test_version():
    proc = _run("import sys; sys.argv=['edgecnn','--version']; from edgecnn.cli import main; main()")
    assert proc.returncode == 0
    from edgecnn import __version__

    assert __version__ in proc.stdout
