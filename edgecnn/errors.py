"""Errors that mean "the user gave us something wrong", as opposed to a bug.

The CLI turns every :class:`EdgecnnError` into one line on stderr and a non-zero exit code, with no traceback.
Library code raises these (never ``assert``) for bad user input.
"""

from __future__ import annotations


class EdgecnnError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""

    exit_code = 2


class DataError(EdgecnnError):
    """A data set, image or calibration set is missing, empty or unusable."""


class ModelError(EdgecnnError):
    """A model file is missing, broken, unsafe or not what the command expects."""


class SourceError(EdgecnnError):
    """A camera, stream or video could not be opened or stopped delivering frames."""


class OutputError(EdgecnnError):
    """An output location cannot be written (read-only folder, full disk, ...)."""


class OptionError(EdgecnnError):
    """A command-line option or config value is malformed or out of range (``--img-size 0x0``)."""


class TrainingError(EdgecnnError):
    """Training could not produce a usable model (non-finite loss, mismatched resume, ...)."""


class ClusterError(EdgecnnError):
    """A bad strategy, TF_CONFIG or worker list."""
