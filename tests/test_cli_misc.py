"""The CLI's shape: help, version, unknown commands, data generation errors, and how main() reports user errors,
environment errors and internal bugs."""

from __future__ import annotations

import pytest

from conftest import run_python


def test_help_lists_commands_with_summaries(cli):
    r = cli("--help")
    assert r.returncode == 0
    for name in ("data", "train", "models"):
        assert f"  {name} " in r.stdout


def test_unknown_command_is_a_usage_error(cli):
    r = cli("frobnicate")
    assert r.returncode == 2 and "No such command" in r.stderr and "Traceback" not in r.stderr


def test_data_shapes_bad_arguments(cli, tmp_path):
    r = cli("data", "shapes", tmp_path / "s", "--per-class", "0")
    assert r.clean_error and "--per-class" in r.stderr
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep")
    r = cli("data", "shapes", tmp_path / "taken", "--per-class", "1")
    assert r.clean_error and "already exists" in r.stderr
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep"


# ------------------------------------------------------------------------------------ the error taxonomy of main()

# A stand-in command that raises what the test asks for, run through the real main() in a fresh process.
_RAISE = """
import errno, sys
import click
import edgecnn.cli as c
from edgecnn.errors import OptionError

@click.command("boom")
def boom():
    raise {exc}

c.LazyGroup.get_command = lambda self, ctx, name: boom if name == "boom" else None
c.main(["boom"])
"""


def _raise_in_main(exc: str):
    return run_python(_RAISE.format(exc=exc))


def test_user_errors_are_one_line_and_exit_2(cli, tmp_path):
    r = cli("inspect", tmp_path / "missing.tflite")
    assert r.returncode == 2 and r.clean_error and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli("inspect", "--no-such-option")
    assert r.returncode == 2 and "No such option" in r.stderr and "Traceback" not in r.stderr
    r = _raise_in_main("OptionError('--img-size must be WIDTHxHEIGHT, got: 0x0')")
    assert r.returncode == 2 and r.stderr == "Error: --img-size must be WIDTHxHEIGHT, got: 0x0\n"


def test_environment_errors_are_one_line_and_exit_2():
    r = _raise_in_main("OSError(errno.ENOSPC, 'No space left on device', '/data/runs/r1/model.keras')")
    assert r.returncode == 2 and r.stderr == "Error: No space left on device: /data/runs/r1/model.keras\n"
    r = _raise_in_main("FileNotFoundError(errno.ENOENT, 'No such file or directory', '/data/gone.png')")
    assert r.returncode == 2 and r.stderr == "Error: No such file or directory: /data/gone.png\n"


def test_an_internal_bug_keeps_its_traceback_exits_70_and_says_where_to_report_it():
    r = _raise_in_main("RuntimeError('the contract embedded in the model does not read back as written')")
    assert r.returncode == 70, r.stderr
    assert "Traceback (most recent call last)" in r.stderr and "in boom" in r.stderr
    assert "RuntimeError: the contract embedded in the model does not read back as written" in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "bug in edgecnn" in last and "report it to the edgecnn issue tracker" in last
    assert not any(ln.startswith("Error:") for ln in r.stderr.splitlines())


def test_an_interrupt_that_a_library_re_raised_as_its_own_error_is_still_an_interrupt():
    # TensorFlow calling back into Python (the calibration generator) turns SIGTERM's KeyboardInterrupt into its
    # own error type: that is a stop the user asked for, not a bug.
    code = """
import os, signal, time
import click
import edgecnn.cli as c

@click.command("boom")
def boom():
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        raise RuntimeError("Error in PyFunc: KeyboardInterrupt") from None

c.LazyGroup.get_command = lambda self, ctx, name: boom
c.main(["boom"])
"""
    r = run_python(code)
    assert r.returncode == 143 and r.stderr == "Terminated.\n", r.stderr

# ------------------------------------------------------------------ edgecnn robustness without the developer tools


def test_robustness_without_the_developer_tools_says_how_to_get_them():
    import os
    import subprocess
    from pathlib import Path

    from conftest import REPO

    py = Path(os.environ.get("EDGECNN_DEVICE_PYTHON") or REPO / ".venv-device" / "bin" / "python")
    if not py.exists():
        pytest.skip(f"no device venv at {py} (make test creates it)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run([str(py), "-c", "import edgecnn_robustness"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0, "a device install must not ship the robustness campaign"
    p = subprocess.run([str(py), "-m", "edgecnn", "robustness", "--mutants", "0"], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=60)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("Error: edgecnn robustness needs the developer tools") and "tools/robustness" in p.stderr
    h = subprocess.run([str(py), "-m", "edgecnn", "robustness", "--help"], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=60)
    assert h.returncode == 0 and "--kill-trials" in h.stdout
