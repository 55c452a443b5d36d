"""The recording order of image recordings: what ``replay`` scores and ``steer`` plays, frame after frame.

- a Donkey Car tub (or a folder of tubs): catalog index order, deleted records skipped (:mod:`edgecnn.data.tub`),
  with the human's steering/throttle and each record's ``_timestamp_ms`` as its recording time;
- a steering CSV (``image,steering[,throttle]``) or a folder holding ``labels.csv``/``steering.csv``: row order;
- any other folder of images: natural (numeric) order of the relative paths, ``2.jpg`` before ``10.jpg`` (an
  alphabetical sort plays 0, 1, 10, 100, 101, ... and scrambles a drive).

Standard library only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.data import tub as tub_reader
from edgecnn.data.steering import load_steering_dataset
from edgecnn.errors import DataError
from edgecnn.preprocess import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class RecordedImage:
    """One image of a recording.

    Attributes:
        path: the image file.
        steering: the human's steering in [-1, 1] (positive = right), or None when the source has no labels.
        throttle: the human's throttle, or None.
        timestamp: recording time, seconds since the epoch (a tub's ``_timestamp_ms``), or None.
    """

    path: Path
    steering: float | None = None
    throttle: float | None = None
    timestamp: float | None = None


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``2.jpg`` before ``10.jpg`` (digits compared as numbers)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _tub_timestamps(tub: Path) -> dict[str, float]:
    """Image path (``tub/images/NAME``) -> ``_timestamp_ms`` / 1000 from a tub's catalogs (records without one are
    left out)."""
    out: dict[str, float] = {}
    for cat in sorted(tub.glob("catalog_*.catalog"), key=lambda p: natural_key(p.name)):
        for line in cat.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or isinstance(rec.get("_timestamp_ms"), bool):
                continue
            stamp, image = rec.get("_timestamp_ms"), rec.get(tub_reader.DEFAULT_IMAGE_KEY)
            if isinstance(stamp, (int, float)) and isinstance(image, str):
                out[str(tub / "images" / image)] = stamp / 1000.0
    return out


def is_labelled_recording(path: Path) -> bool:
    """A tub, a folder of tubs, a steering CSV, or a folder holding ``labels.csv``/``steering.csv``."""
    if path.is_dir():
        return (tub_reader.is_tub(path) or bool(tub_reader.find_tubs(path)) or (path / "labels.csv").is_file()
                or (path / "steering.csv").is_file())
    return path.suffix.lower() == ".csv"


def recorded_images(src: str | Path) -> tuple[str, list[RecordedImage]]:
    """``(kind, images)`` of an image recording in recording order: ``"tub"`` (catalog order, with labels and
    timestamps), ``"csv"`` (row order, labels) or ``"images"`` (a plain folder, natural name order, no labels).

    Raises DataError when ``src`` is none of these (a video file is not an image recording: see
    :func:`edgecnn.runtime.replay.iter_recording`).
    """
    p = Path(src).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder")
    if is_labelled_recording(p):
        ds = load_steering_dataset(p)
        stamps: dict[str, float] = {}
        for t in ds.sources if ds.kind == "tub" else ():
            stamps.update(_tub_timestamps(Path(t)))
        return ds.kind, [RecordedImage(Path(s.path), s.steering, s.throttle, stamps.get(s.path))
                         for s in ds.samples]
    if p.is_dir():
        files = sorted((f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda f: natural_key(str(f.relative_to(p))))
        if not files:
            raise DataError(f"{p}: no images, no tub (manifest.json) and no labels.csv here")
        return "images", [RecordedImage(f) for f in files]
    raise DataError(f"{p}: not a recording; pass a tub folder, a steering CSV, a folder of images or a video file")
