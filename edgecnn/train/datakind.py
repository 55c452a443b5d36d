"""Which kind of data set a path holds, so that a steering data set given to classification says so.

A Donkey Car tub (or a folder of tubs), a steering CSV or ``edgecnn data roads`` output all contain an
``images/`` folder, which an image-folder scan would read as a single class called "images" and then refuse with
"only one class", giving no hint that ``--task steer`` was meant. :func:`steering_kind` recognises those layouts
from their marker files (no image is read); :func:`refuse_steering_data` turns that into one clear error line.
Used by ``edgecnn train`` (classification) and by ``edgecnn calibrate`` on a data folder. Standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecnn.data import steering_csv, tub
from edgecnn.errors import DataError

ROADS_MARKER = "roads.json"  # written by `edgecnn data roads` (and `--networks`) beside labels.csv
NETWORKS_FORMAT = "edgecnn-networks-1"  # roads.json's "format" for `edgecnn data roads --networks` output


def _steering_header(csv: Path) -> bool:
    try:
        with csv.open(encoding="utf-8", errors="replace") as f:
            header = f.readline().lower()
    except OSError:
        return False
    return "steer" in header or "angle" in header


def is_roads_data(path: str | Path) -> bool:
    """True when ``path`` (a folder, or its ``labels.csv``) is ``edgecnn data roads`` output, plain or
    ``--networks`` (has ``roads.json``): rendered frames, for which augmentation is off by default."""
    p = Path(path)
    return (p if p.is_dir() else p.parent).joinpath(ROADS_MARKER).is_file()


def is_networks_data(path: str | Path) -> bool:
    """True when ``path`` (a folder, or its ``labels.csv``) is ``edgecnn data roads --networks`` output (its
    ``roads.json`` has format :data:`NETWORKS_FORMAT`: frames with maps/, routes/ and networks.json)."""
    p = Path(path)
    marker = (p if p.is_dir() else p.parent) / ROADS_MARKER
    try:
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == NETWORKS_FORMAT


def steering_kind(path: str | Path) -> str | None:
    """A phrase naming the steering layout at ``path`` ("a Donkey Car tub", ...), or None when it is not one."""
    p = Path(path).expanduser()
    if p.is_file():
        return "a steering CSV" if p.suffix.lower() == ".csv" and _steering_header(p) else None
    if not p.is_dir():
        return None
    if tub.is_tub(p):
        return "a Donkey Car tub"
    if tub.find_tubs(p):
        return "a folder of Donkey Car tubs"
    if next(p.glob("record_*.json"), None) is not None:
        return "a Donkey Car tub v1"
    csv = steering_csv.find_csv(p)
    if csv is not None and (p / ROADS_MARKER).is_file():
        return "`edgecnn data roads --networks` output" if is_networks_data(p) else "`edgecnn data roads` output"
    if csv is not None and (csv.name in steering_csv.CSV_NAMES or _steering_header(csv)):
        return f"a steering data set ({csv.name})"
    return None


STEER_HINT = "for steering pass --task steer"


def refuse_steering_data(path: str | Path, hint: str = STEER_HINT) -> None:
    """Raise DataError (one line ending in ``hint``) when ``path`` is a steering data set, where an image folder
    with one sub-folder per class was needed."""
    kind = steering_kind(path)
    if kind is not None:
        raise DataError(f"{path} is {kind}, not an image folder with one sub-folder per class; {hint}")
