"""Donkey Car "tub v2" reader (standard library only).

A tub v2 folder, as written by donkeycar's ``datastore_v2``, holds:

- ``manifest.json``: five JSON lines: the record keys (``["cam/image_array", "user/angle", ...]``), their types,
  free metadata, manifest metadata, and the catalog state
  ``{"paths": ["catalog_0.catalog", ...], "current_index": N, "max_len": M, "deleted_indexes": [i, ...]}``;
- ``catalog_<k>.catalog``: one JSON record per line, ``{"_index": i, "cam/image_array": "i_cam_image_array_.jpg",
  "user/angle": a, "user/throttle": t, ...}``;
- ``images/``: the frames the records name.

Deleted indexes (frames the user removed in the donkey UI) are honoured. ``user/angle`` is steering in [-1, 1]
(positive = right), ``user/throttle`` is optional. Records that cannot be used are skipped and counted.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from edgecnn.data.steering_samples import (
    BAD_ANGLE,
    BAD_JSON,
    BAD_THROTTLE,
    DELETED,
    MISSING_IMAGE,
    SteeringDataset,
    SteeringSample,
    check_unit,
    merge_faults,
)
from edgecnn.errors import DataError

ANGLE_KEY = "user/angle"
THROTTLE_KEY = "user/throttle"
DEFAULT_IMAGE_KEY = "cam/image_array"


def is_tub(folder: Path) -> bool:
    """True when ``folder`` holds a tub v2 ``manifest.json``."""
    return (folder / "manifest.json").is_file()


def _natural_key(p: Path) -> list[object]:
    # "tub_10" after "tub_9", as a human would order recordings.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def find_tubs(folder: Path) -> list[Path]:
    """Tub folders directly inside ``folder`` (not ``folder`` itself), in natural name order."""
    if not folder.is_dir():
        return []
    return sorted((d for d in folder.iterdir() if d.is_dir() and is_tub(d)), key=_natural_key)


def _read_manifest(tub: Path) -> tuple[str, list[str], set[int]]:
    """(image key, catalog file names, deleted indexes) from ``tub/manifest.json``; DataError when damaged."""
    path = tub / "manifest.json"
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        inputs = json.loads(lines[0])
        types = json.loads(lines[1])
        state = json.loads(lines[4]) if len(lines) > 4 else {}
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise DataError(
            f"{path}: not a readable tub v2 manifest ({type(exc).__name__}); it should hold 5 JSON lines "
            "(inputs, types, metadata, manifest metadata, catalog state)"
        ) from exc
    if not isinstance(inputs, list) or not isinstance(state, dict):
        raise DataError(f"{path}: not a tub v2 manifest (first line must list the record keys)")
    image_key = DEFAULT_IMAGE_KEY
    if isinstance(types, list):
        for key, typ in zip(inputs, types):
            if typ == "image_array":
                image_key = key
                break
    if ANGLE_KEY not in inputs:
        raise DataError(f"{path}: the tub records no {ANGLE_KEY!r} (keys: {', '.join(map(str, inputs))})")
    paths = state.get("paths") or [p.name for p in sorted(tub.glob("catalog_*.catalog"), key=_natural_key)]
    try:
        deleted = {int(i) for i in state.get("deleted_indexes", [])}
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: deleted_indexes must be a list of integers") from exc
    return image_key, [str(p) for p in paths], deleted


def read_tub(tub: Path) -> tuple[list[SteeringSample], dict[str, int]]:
    """Usable samples of one tub in index order, and ``{reason: count}`` of skipped records."""
    image_key, catalogs, deleted = _read_manifest(tub)
    faults: Counter[str] = Counter()
    records: list[tuple[int, SteeringSample]] = []
    images = tub / "images"
    for name in catalogs:
        cat = tub / name
        try:
            text = cat.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise DataError(f"{cat}: listed in manifest.json but cannot be read ({exc.strerror or exc})") from exc
        for line_no, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError:
                faults[BAD_JSON] += 1
                continue
            index = rec.get("_index", line_no)
            if isinstance(index, int) and index in deleted:
                faults[DELETED] += 1
                continue
            angle = check_unit(rec.get(ANGLE_KEY))
            if angle is None:
                faults[BAD_ANGLE] += 1
                continue
            throttle = None
            if THROTTLE_KEY in rec:
                throttle = check_unit(rec[THROTTLE_KEY])
                if throttle is None:
                    faults[BAD_THROTTLE] += 1
                    continue
            image = rec.get(image_key)
            img_path = images / image if isinstance(image, str) and image else None
            if img_path is None or not img_path.is_file() or img_path.stat().st_size == 0:
                faults[MISSING_IMAGE] += 1
                continue
            records.append((index if isinstance(index, int) else line_no, SteeringSample(str(img_path), angle, throttle)))
    records.sort(key=lambda r: r[0])  # time order even if catalogs were listed out of order
    samples = [s for _, s in records]
    # A tub that mixes records with and without throttle is ambiguous for training: keep throttle only if all have it.
    if samples and any(s.throttle is None for s in samples):
        samples = [SteeringSample(s.path, s.steering, None) for s in samples]
    return samples, dict(faults)


def read_tubs(folder: Path) -> SteeringDataset:
    """Read one tub (``folder`` has manifest.json) or every tub directly inside ``folder``, tub after tub."""
    folder = Path(folder).resolve()
    tubs = [folder] if is_tub(folder) else find_tubs(folder)
    if not tubs:
        raise DataError(f"{folder}: no Donkey Car tub (manifest.json) here or in its sub-folders")
    samples: list[SteeringSample] = []
    faults: list[dict[str, int]] = []
    for t in tubs:
        s, f = read_tub(t)
        samples.extend(s)
        faults.append(f)
    if samples and any(s.throttle is None for s in samples):
        samples = [SteeringSample(s.path, s.steering, None) for s in samples]
    return SteeringDataset(str(folder), "tub", tuple(samples), merge_faults(*faults), tuple(str(t) for t in tubs))
