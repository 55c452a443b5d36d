"""A run remembers the calibration set built from it, so later stages need not be told again.

``edgecnn calibrate RUN --out calibration/NAME`` writes ``RUN/calibration.json`` (the set's absolute path and
sha256); ``quantize``, ``export`` and ``compare`` use it when ``--calibration`` is not given, and say so. A set
that has moved or changed since is not used silently: :func:`recall` raises DataError naming what to do.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.atomic import write_json
from edgecnn.errors import DataError
from edgecnn.quantize.calibration import load_calibration

FILE = "calibration.json"


def remember(run_dir: str | Path, calibration: str | Path) -> Path:
    """Record ``calibration`` (a built set) in ``run_dir/calibration.json``; returns that file's path."""
    cal = load_calibration(calibration)
    path = Path(run_dir) / FILE
    write_json(path, {"path": str(Path(calibration).resolve()), "sha256": cal.manifest["sha256"],
                      "count": cal.manifest["count"]})
    return path


def recall(run_dir: str | Path) -> Path | None:
    """The calibration set remembered by ``run_dir``, or None when none was built from it.

    Raises DataError when the remembered set is gone or no longer the set that was built (its sha256 changed).
    """
    run = Path(run_dir)
    path = (run if run.is_dir() else run.parent) / FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        where, sha = Path(doc["path"]), str(doc["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is damaged ({exc}); re-run `edgecnn calibrate` or pass --calibration") from None
    if not where.is_dir():
        raise DataError(f"the calibration set remembered in {path} is gone ({where}); re-run `edgecnn calibrate "
                        f"{run} --out DIR` or pass --calibration")
    if load_calibration(where).manifest["sha256"] != sha:
        raise DataError(f"the calibration set at {where} changed since it was built from {run}; re-run "
                        "`edgecnn calibrate` or pass --calibration explicitly")
    return where
