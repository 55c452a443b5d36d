"""The ``edgecnn`` command line.

Every sub-command lives in its own module ``edgecnn/cli/cmd_<name>.py`` that defines a Click command called
``cli``; the group discovers them by file name and imports one only when it is needed. Command modules import
only Click (and the standard library) at module level, so ``edgecnn --help`` and the device-side commands never
import TensorFlow: heavy imports happen inside the command function.

:func:`main` sorts what goes wrong into three kinds:

- a user error (an :class:`~edgecnn.errors.EdgecnnError`, a Click usage error): one ``Error:`` line, exit 2;
- an environment error (an ``OSError``: full disk, read-only folder, a file that vanished): one ``Error:`` line
  naming the file, exit 2;
- anything else is a bug in edgecnn: the traceback is kept, a line says so and where to report it, exit 70
  (``EX_SOFTWARE`` of sysexits.h).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import click

from edgecnn import __version__
from edgecnn.errors import EdgecnnError

_HERE = Path(__file__).parent

USER_ERROR_EXIT = 2  # user and environment errors (Click's usage errors exit 2 too)
BUG_EXIT = 70  # EX_SOFTWARE: an internal error
BUG_REPORT = ("This is a bug in edgecnn, not a problem with your input: please report it to the edgecnn issue tracker "
              "with the command you ran and the traceback above (`edgecnn --version` says which version).")


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


_signalled: list[str] = []  # set by the SIGTERM handler: the interrupt may come back wrapped by a library


def _on_sigterm(signum: int, frame: object) -> None:
    _signalled.append("SIGTERM")
    raise _Terminated()


def _interrupted(exc: BaseException) -> bool:
    """True when ``exc`` is what became of a Ctrl-C or SIGTERM: a library (TensorFlow calling back into Python
    during calibration, a thread pool) may re-raise the KeyboardInterrupt as its own exception type."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return bool(_signalled)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user and environment errors become one line on stderr and exit code 2, never a
    traceback; an internal bug keeps its traceback and exits 70 (see module docstring)."""
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
        sys.exit(USER_ERROR_EXIT)
    except Exception as exc:
        if _interrupted(exc):
            terminated = bool(_signalled)
            click.echo("Terminated." if terminated else "Interrupted.", err=True)
            sys.exit(143 if terminated else 130)
        # Not a user's mistake: keep everything a maintainer needs to find it.
        traceback.print_exc()
        click.echo(BUG_REPORT, err=True)
        sys.exit(BUG_EXIT)
    finally:
        if argv is None and threading.current_thread() is threading.main_thread():
            # The command is over (its work done, or its error reported). Python's shutdown puts SIGTERM back to
            # its default action, so a SIGTERM arriving while TensorFlow tears down would kill the exiting
            # process (exit -15) although everything was written; from here on it changes nothing.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
