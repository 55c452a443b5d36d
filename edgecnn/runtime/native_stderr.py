"""Capture what native libraries (LiteRT, FFmpeg inside OpenCV, the TFLite converter, TFLM, TensorFlow's start-up)
print straight to file descriptors 1 and 2.

They bypass ``sys.stdout``/``sys.stderr``, so a user would see "INFO: Created TensorFlow Lite XNNPACK delegate",
"[mov,mp4,...] moov atom not found" or pages of MLIR logs above our own one-line error. One mechanism,
:func:`captured_native_output`, serves every caller: filter some lines (:func:`filtered_native_stderr`), drop
everything (the converter), or keep the text (tflite-micro prints its arena there).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def captured_native_output(fds: tuple[int, ...] = (2,)) -> Iterator[list[str]]:
    """While active, point ``fds`` at a temporary file; on exit restore them and append the captured text to the
    yielded list (one string). Only for short sections: other threads' output in that window is captured too.
    """
    out: list[str] = []
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = [os.dup(fd) for fd in fds]
    except (OSError, ValueError, AttributeError):  # no real file descriptors (embedded interpreter)
        yield out
        out.append("")
        return
    with tempfile.TemporaryFile() as capture:
        for fd in fds:
            os.dup2(capture.fileno(), fd)
        try:
            yield out
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            for fd, old in zip(fds, saved):
                os.dup2(old, fd)
                os.close(old)
            capture.seek(0)
            out.append(capture.read().decode("utf-8", "replace"))


@contextlib.contextmanager
def filtered_native_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """While active, capture fd 2; on exit re-emit the captured lines for which ``drop(line)`` is False, so real
    diagnostics are not hidden."""
    with captured_native_output((2,)) as out:
        yield
    for line in "".join(out).splitlines():
        if line.strip() and not drop(line):
            print(line, file=sys.stderr)


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Discard everything native code prints on fd 1 and 2 meanwhile (Python exceptions still propagate)."""
    with captured_native_output((1, 2)):
        yield
