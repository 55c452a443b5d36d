"""What every benchmark here ends with: the readable table on stderr, the figures as JSON in ``--json FILE``
(written atomically) or on stdout. Run a benchmark as ``python benchmarks/NAME.py``: its folder is on
``sys.path``, so ``from report_io import emit`` finds this module."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from edgecnn.atomic import write_text


def emit(report: dict[str, Any], table: str, json_path: str | Path | None) -> None:
    """Print ``table`` (if any) to stderr, then ``report`` as indented JSON to ``json_path`` (None: stdout)."""
    if table:
        print(table, file=sys.stderr)
    text = json.dumps(report, indent=1) + "\n"
    if json_path:
        write_text(Path(json_path), text)
    else:
        sys.stdout.write(text)
