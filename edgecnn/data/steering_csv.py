"""Steering data as a CSV file: ``image,steering[,throttle]`` (standard library only).

One row per frame, in time order. ``image`` is a path relative to the CSV's folder (or absolute); ``steering`` and
``throttle`` are floats in [-1, 1], positive steering = right. A header row is optional; when present its column
names (``image``/``path``, ``steering``/``angle``, ``throttle``) may come in any order. ``edgecnn data roads``
writes this layout (``labels.csv`` beside ``images/``).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from edgecnn.data.steering_samples import (
    BAD_ANGLE,
    BAD_ROW,
    BAD_THROTTLE,
    MISSING_IMAGE,
    SteeringDataset,
    SteeringSample,
    check_unit,
)
from edgecnn.errors import DataError

CSV_NAMES = ("labels.csv", "steering.csv")
_IMAGE_COLS = ("image", "path", "file", "filename")
_STEER_COLS = ("steering", "angle", "steer")
_THROTTLE_COLS = ("throttle",)


def find_csv(folder: Path) -> Path | None:
    """The steering CSV of a folder: ``labels.csv``, ``steering.csv``, or its only ``*.csv``; None if none."""
    for name in CSV_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def _columns(header: list[str]) -> tuple[int, int, int | None] | None:
    """(image, steering, throttle) column indexes from a header row, or None if the row is not a header."""
    names = [h.strip().lower() for h in header]

    def pick(options: tuple[str, ...]) -> int | None:
        return next((names.index(o) for o in options if o in names), None)

    img, steer, thr = pick(_IMAGE_COLS), pick(_STEER_COLS), pick(_THROTTLE_COLS)
    if img is None or steer is None:
        return None
    return img, steer, thr


def read_csv(path: Path, root: Path | None = None) -> SteeringDataset:
    """Read ``path``; image paths resolve against the CSV's folder. DataError when unreadable or the header is
    wrong; bad rows are skipped and counted."""
    path = Path(path).resolve()
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read as CSV ({exc})") from exc
    faults: Counter[str] = Counter()
    samples: list[SteeringSample] = []
    cols: tuple[int, int, int | None] = (0, 1, None)
    if rows:
        header = _columns(rows[0])
        if header is not None:
            cols, rows = header, rows[1:]
        elif check_unit(rows[0][1] if len(rows[0]) > 1 else None) is None:
            raise DataError(
                f"{path}: first row {rows[0]!r} is neither a header (image,steering[,throttle]) nor a data row"
            )
        else:
            cols = (0, 1, 2 if len(rows[0]) > 2 else None)
    img_col, steer_col, thr_col = cols
    base = path.parent
    for row in rows:
        if len(row) <= max(img_col, steer_col, thr_col or 0):
            faults[BAD_ROW] += 1
            continue
        steering = check_unit(row[steer_col])
        if steering is None:
            faults[BAD_ANGLE] += 1
            continue
        throttle = None
        if thr_col is not None:
            throttle = check_unit(row[thr_col])
            if throttle is None:
                faults[BAD_THROTTLE] += 1
                continue
        name = row[img_col].strip()
        img = (base / name) if name else None
        if img is None or not img.is_file() or img.stat().st_size == 0:
            faults[MISSING_IMAGE] += 1
            continue
        samples.append(SteeringSample(str(img.resolve()), steering, throttle))
    return SteeringDataset(str((root or path).resolve()), "csv", tuple(samples), dict(faults), (str(path),))
