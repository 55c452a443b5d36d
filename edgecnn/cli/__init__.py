"""The ``edgecnn`` command line.

Every sub-command lives in its own module ``edgecnn/cli/cmd_<name>.py`` that defines a Click command called
``cli``; the group discovers them by file name and imports one only when it is needed. Command modules import
only Click (and the standard library) at module level, so ``edgecnn --help`` and the device-side commands never
import TensorFlow: heavy imports happen inside the command function.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
from pathlib import Path

import click

from edgecnn import __version__
from edgecnn.errors import EdgecnnError

_HERE = Path(__file__).parent


def _command_names() -> list[str]:
    return sorted(p.stem[len("cmd_") :].replace("_", "-") for p in _HERE.glob("cmd_*.py"))


class LazyGroup(click.Group):
    """A Click group whose commands are imported on first use (see module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return _command_names()

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _command_names():
            return None
        module = importlib.import_module(f"edgecnn.cli.cmd_{cmd_name.replace('-', '_')}")
        return module.cli


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgecnn")
def group() -> None:
    """edgecnn: train, quantize, export and run compact CNNs on small devices.

    A typical path: `edgecnn data shapes data/shapes`, `edgecnn train data/shapes --out runs/shapes`,
    `edgecnn calibrate ...`, `edgecnn quantize ...`, `edgecnn export ...`, then on the device
    `edgecnn classify --model model_int8.tflite --source 0`.
    """


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that ``finally`` blocks and atomic writers clean up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated()


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    # TensorFlow's C++ start-up chatter is noise for users; only host commands import it at all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # SIGTERM (kill, systemd stop) unwinds like Ctrl-C, so temporary files and half-built folders are removed
    # and the loops send their final neutral command; commands with a live loop install their own handler.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = group.main(args=argv, prog_name="edgecnn", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort as exc:
        terminated = isinstance(exc.__cause__ or exc.__context__, _Terminated)
        click.echo("Terminated." if terminated else "Aborted.", err=True)
        sys.exit(143 if terminated else 130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EdgecnnError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, _Terminated)
        click.echo("Terminated." if terminated else "Interrupted.", err=True)
        sys.exit(143 if terminated else 130)
    except OSError as exc:
        # A full disk, a read-only folder, a vanished file: say what and where, not a traceback.
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
