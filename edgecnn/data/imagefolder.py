"""Image-folder data sets: ``ROOT/<class>/<image>``, validated once, split deterministically.

numpy/OpenCV only (the device side and ``compare`` use it too). The split is stratified and stable: within each
class, files are ordered by a hash of their relative path and the first ``test`` share goes to the test split,
the next ``val`` share to validation, the rest to training. Adding files to a class does not move existing ones
between train and test much, and no seed can make the test split leak into calibration.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgecnn.errors import DataError
from edgecnn.image_headers import header_ok, truncated_jpeg
from edgecnn.preprocess import IMAGE_EXTENSIONS
_SCAN_SLICE = 512


@dataclass(frozen=True)
class Sample:
    """One labelled image: ``path`` is absolute, ``label`` the class index."""

    path: str
    label: int


@dataclass(frozen=True)
class ImageFolder:
    """A scanned image folder.

    Attributes:
        root: the folder.
        classes: class names (sub-folder names, sorted); index = label.
        samples: usable images, sorted by path.
        skipped: ``{reason: count}`` for files that were not used.
        skipped_examples: up to a few ``(path, reason)`` pairs to show the user.
    """

    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: tuple[tuple[str, str], ...] = ()

    def summary(self) -> str:
        """One line: images per class and what was skipped."""
        counts = Counter(s.label for s in self.samples)
        per_class = ", ".join(f"{c}={counts.get(i, 0)}" for i, c in enumerate(self.classes))
        line = f"{len(self.samples)} images in {len(self.classes)} classes ({per_class})"
        if self.skipped:
            total = sum(self.skipped.values())
            reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
            line += f"; skipped {total} files: {reasons}"
        return line


def _check_file(path: str) -> str | None:
    """None when ``path`` decodes as an image, else the reason it cannot be used."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "unreadable"
    if not data:
        return "zero-byte"
    try:
        if not header_ok(data):
            return "too large"
        if truncated_jpeg(data):
            # Some decoders (older OpenCV builds, PIL with LOAD_TRUNCATED_IMAGES) turn a truncated JPEG into a
            # half-grey image with only a warning; never train on that, and name the reason.
            return "truncated"
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return "undecodable"
    if img is None or img.size == 0:
        return "undecodable"
    return None


def scan(root: str | Path, validate: bool = True, workers: int | None = None) -> ImageFolder:
    """Scan ``root``: one sub-folder per class, images at any depth below it.

    Every candidate image is decoded once when ``validate`` is true; unusable files are skipped and counted.
    Raises DataError for a missing or empty folder, fewer than two classes, or a class with no usable image.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"expected a data folder with one sub-folder per class, got a file: {root}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class>/<image>.jpg")
    if len(class_dirs) < 2:
        raise DataError(f"{root} has only one class ({class_dirs[0].name}); a classifier needs at least two")
    skipped: Counter[str] = Counter()
    examples: list[tuple[str, str]] = []
    candidates: list[tuple[str, int]] = []
    for label, d in enumerate(class_dirs):
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                    candidates.append((os.path.abspath(path), label))
                else:
                    skipped["not an image"] += 1
                    if len(examples) < 5:
                        examples.append((path, "not an image"))
    if validate and candidates:
        reasons = []
        with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 2) * 2)) as pool:
            # Executor.map submits every call at once; in slices, a 50k-file folder does not hold 50k futures.
            for start in range(0, len(candidates), _SCAN_SLICE):
                chunk = [p for p, _ in candidates[start : start + _SCAN_SLICE]]
                reasons.extend(pool.map(_check_file, chunk))
    else:
        reasons = [None] * len(candidates)
    samples = []
    for (path, label), reason in zip(candidates, reasons):
        if reason is None:
            samples.append(Sample(path, label))
        else:
            skipped[reason] += 1
            if len(examples) < 5:
                examples.append((path, reason))
    classes = tuple(d.name for d in class_dirs)
    counts = Counter(s.label for s in samples)
    empty = [c for i, c in enumerate(classes) if counts.get(i, 0) == 0]
    if len(empty) == len(classes):
        raise DataError(f"{root} has no usable images ({sum(skipped.values())} files skipped)")
    if empty:
        raise DataError(f"class {', '.join(empty)} in {root} has no usable image; add images or remove the folder")
    return ImageFolder(root, classes, tuple(samples), dict(skipped), tuple(examples))


def _order_key(root: Path, path: str) -> str:
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()


def split(folder: ImageFolder, val: float = 0.1, test: float = 0.1) -> dict[str, list[Sample]]:
    """Deterministic stratified split into ``{"train", "val", "test"}`` (see module docstring).

    Every class with at least 3 images gets at least one validation and one test image.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"split shares must be in [0, 1) with val + test < 1, got val={val}, test={test}")
    out: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    by_class: dict[int, list[Sample]] = {}
    for s in folder.samples:
        by_class.setdefault(s.label, []).append(s)
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda s: _order_key(folder.root, s.path))
        n = len(items)
        n_test = max(1, round(n * test)) if n >= 3 and test > 0 else 0
        n_val = max(1, round(n * val)) if n >= 3 and val > 0 else 0
        out["test"].extend(items[:n_test])
        out["val"].extend(items[n_test : n_test + n_val])
        out["train"].extend(items[n_test + n_val :])
    for k in out:
        out[k].sort(key=lambda s: s.path)
    return out
