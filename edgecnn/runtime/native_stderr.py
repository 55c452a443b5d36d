"""Filter what native libraries (LiteRT, FFmpeg inside OpenCV) print straight to file descriptor 2.

They bypass ``sys.stderr``, so a user would see "INFO: Created TensorFlow Lite XNNPACK delegate" or
"[mov,mp4,...] moov atom not found" above our own one-line error. Only the lines a predicate drops are removed;
anything else is passed on, so real diagnostics are not hidden.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def filtered_native_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """While active, capture fd 2; on exit re-emit the captured lines for which ``drop(line)`` is False.

    Only for short, single-threaded sections (opening a model or a video): other threads' stderr output in
    that window is delayed until the end of the section.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not drop(line):
                    print(line, file=sys.stderr)
