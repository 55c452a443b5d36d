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

from edgecnn.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Images whose header promises more than this many pixels are refused before decoding (decompression bombs).
MAX_PIXELS = 50_000_000
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
    import cv2
    import numpy as np

    try:
        data = Path(path).read_bytes()
    except OSError:
        return "unreadable"
    if not data:
        return "zero-byte"
    try:
        if not _header_ok(data):
            return "too large"
        if _truncated_jpeg(data):
            # Some decoders (older OpenCV builds, PIL with LOAD_TRUNCATED_IMAGES) turn a truncated JPEG into a
            # half-grey image with only a warning; never train on that, and name the reason.
            return "truncated"
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return "undecodable"
    if img is None or img.size == 0:
        return "undecodable"
    return None


def _header_ok(data: bytes) -> bool:
    """Cheap guard against decompression bombs: reject PNG/BMP headers that declare huge images."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w = int.from_bytes(data[16:20], "big")
        h = int.from_bytes(data[20:24], "big")
        return w * h <= MAX_PIXELS
    if data[:2] == b"BM" and len(data) >= 26:
        w = abs(int.from_bytes(data[18:22], "little", signed=True))
        h = abs(int.from_bytes(data[22:26], "little", signed=True))
        return w * h <= MAX_PIXELS
    if data[:2] == b"\xff\xd8":
        size = _jpeg_size(data)
        return size is None or size[0] * size[1] <= MAX_PIXELS
    return True


# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic): they hold the size.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` from a JPEG's start-of-frame header, or None when there is none before the scan.

    OpenCV would otherwise allocate whatever the header declares (a 30000x30000 header costs 2.7 GB and
    many seconds before the decoder notices there is no data)."""
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no size header before it
            return None
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_SOF:
            return int.from_bytes(data[i + 5 : i + 7], "big"), int.from_bytes(data[i + 7 : i + 9], "big")
        i += 2 + length
    return None


def _truncated_jpeg(data: bytes) -> bool:
    """True for a JPEG whose last scan is not followed by an end-of-image marker (cut off in transfer).

    Entropy-coded data never contains 0xFF 0xD9 (0xFF is always stuffed), so an EOI after the last start of
    scan means the file is complete; an EOI before it can only belong to an embedded thumbnail."""
    if data[:2] != b"\xff\xd8":
        return False
    sos = data.rfind(b"\xff\xda")
    return sos < 0 or data.rfind(b"\xff\xd9") < sos


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
