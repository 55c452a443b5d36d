"""The environment of the ``python -m edgecnn`` processes the campaign starts.

The children must import this same edgecnn (an editable install, a plain checkout) and, for sandboxed hostile
children, this package too, whatever the caller's working folder is.
"""

from __future__ import annotations

import os
from pathlib import Path

import edgecnn

EDGECNN_ROOT = Path(edgecnn.__file__).resolve().parents[1]
TOOL_ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` with edgecnn's and this tool's folders first on ``PYTHONPATH``, plus ``extra``."""
    paths = [str(EDGECNN_ROOT), str(TOOL_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}
