"""Segmentation data: an image folder and a mask folder, read and validated (numpy/OpenCV only).

Layout (the Pascal VOC / CVAT "segmentation mask" convention)::

    DATA/images/NAME.jpg|png|...   the photos
    DATA/masks/NAME.png            8-bit, one class index per pixel; 255 = ignore (not scored, not trained on)
    DATA/labels.txt                the class names of indexes 1, 2, ... (one per line, or Coral ``i name`` lines);
                                   index 0 is ``background``. A file whose first name is ``background`` lists
                                   index 0 itself.

Every image is checked with its mask: a missing mask, a mask of another size than its image, a class index
that ``labels.txt`` does not name, an unreadable image or mask -> the pair is skipped and counted by reason
(:attr:`MaskFolder.skipped`), or, with ``strict``, the first one is a DataError naming the file and the fix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError
from edgecnn.labels import read_labels
from edgecnn.preprocess import IMAGE_EXTENSIONS, crop_frame, load_image

BACKGROUND = "background"
IGNORE = 255  # mask value of pixels that are neither scored nor trained on
IMAGES_DIR, MASKS_DIR, LABELS_FILE = "images", "masks", "labels.txt"


@dataclass(frozen=True)
class MaskSample:
    """One image with its mask.

    Attributes:
        image: image path. mask: mask path (``masks/<image stem>.png``).
        pixels: pixels per class index, ``(count of 0, count of 1, ...)`` (ignored pixels not counted).
        group: the class this image stands for when a subset is drawn (calibration, splits): the rarest class
            of the data set that it shows (0 when it shows background only).
    """

    image: str
    mask: str
    pixels: tuple[int, ...]
    group: int = 0


@dataclass(frozen=True)
class MaskFolder:
    """A validated segmentation folder: ``classes`` (index order, ``classes[0] == "background"``), the usable
    ``samples`` in name order, and ``skipped`` (``{reason: count}``) with one example per reason."""

    root: str
    classes: tuple[str, ...]
    samples: tuple[MaskSample, ...]
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def pixel_totals(self) -> np.ndarray:
        """``int64 K``: pixels per class over all samples."""
        return np.sum([s.pixels for s in self.samples], axis=0, dtype=np.int64)

    def summary(self) -> str:
        tot = self.pixel_totals()
        share = ", ".join(f"{c} {100 * n / max(tot.sum(), 1):.1f}%" for c, n in zip(self.classes, tot))
        skipped = "; skipped " + ", ".join(f"{n} ({r})" for r, n in self.skipped.items()) if self.skipped else ""
        return f"{len(self.samples)} images with masks, {len(self.classes)} classes (pixels: {share}){skipped}"


def is_mask_folder(root: str | Path) -> bool:
    """True when ``root`` holds ``images/`` and ``masks/`` folders."""
    p = Path(root)
    return (p / IMAGES_DIR).is_dir() and (p / MASKS_DIR).is_dir()


def read_classes(root: str | Path) -> tuple[str, ...]:
    """Class names by mask index from ``root/labels.txt``, ``background`` first."""
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        raise DataError(f"{root}: no {LABELS_FILE}; write the class names of mask indexes 1, 2, ... one per line")
    mapping = read_labels(path)
    names = [mapping.get(i, str(i)) for i in range(max(mapping) + 1)]
    if names[0].strip().lower() != BACKGROUND:
        names = [BACKGROUND, *names]
    if len(names) > IGNORE:
        raise DataError(f"{path}: {len(names)} classes; 8-bit masks hold at most {IGNORE} (255 means ignore)")
    return tuple(names)


def mask_path_for(image: str | Path) -> Path:
    """``DATA/masks/<stem>.png`` for ``DATA/images/<stem>.<ext>``."""
    image = Path(image)
    return image.parent.parent / MASKS_DIR / f"{image.stem}.png"


def load_mask(path: str | Path, num_classes: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask as ``uint8 H x W`` class indexes (255 = ignore).

    ``size`` = (height, width) it must have (its image's). DataError, naming the file, when it is missing,
    unreadable, not 8-bit single-channel, of another size, or holds an index >= ``num_classes`` other than 255.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask missing; every image needs masks/<image name>.png")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read mask ({exc.strerror or exc})") from exc
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if mask is None:
        raise DataError(f"{path}: not a readable mask image (expected an 8-bit PNG of class indexes)")
    if mask.ndim == 3:
        # A colour-looking file whose channels agree is a grey index map saved as RGB; a real colour palette
        # image is not, and would be read as nonsense indexes.
        if mask.shape[2] >= 3 and np.array_equal(mask[..., 0], mask[..., 1]) and np.array_equal(mask[..., 0], mask[..., 2]):
            mask = np.ascontiguousarray(mask[..., 0])
        else:
            raise DataError(f"{path}: mask has colours; save one class index per pixel (8-bit grey PNG)")
    if mask.dtype != np.uint8:
        raise DataError(f"{path}: mask is {mask.dtype}; save 8-bit class indexes")
    if size is not None and mask.shape != tuple(size):
        raise DataError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}; "
                        "a mask must have its image's size")
    bad = (mask >= num_classes) & (mask != IGNORE)
    if bad.any():
        raise DataError(f"{path}: mask holds class index {int(mask[bad].max())} but labels.txt names only "
                        f"{num_classes} classes (0..{num_classes - 1}; 255 = ignore)")
    return mask


def pixel_counts(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``int64 K`` pixels per class index of ``mask`` (uint8 class indexes; 255 and other values not counted)."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return counts[:num_classes].astype(np.int64)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` (uint8 H x W class indexes) at ``height`` x ``width`` with nearest-neighbour: class indexes are
    labels, never blended (a blend of road 1 and other 0 is not a class)."""
    if mask.shape[:2] == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


def mask_for_model(mask: np.ndarray, contract: Contract) -> np.ndarray:
    """``mask`` (uint8 H x W class indexes, the size of its image) as the model sees its image: the contract's
    ``crop`` rows removed (:func:`edgecnn.preprocess.crop_frame`, as :func:`edgecnn.preprocess.to_model_pixels`
    does to the image), then :func:`resize_mask` to the input size: ``uint8 h x w``."""
    mask = crop_frame(mask, contract.crop, contract.source_size)
    return resize_mask(mask, contract.input_height, contract.input_width)


def _reason(msg: str) -> str:
    for key, reason in (("mask missing", "no mask"), ("but its image is", "mask size differs from image"),
                        ("class index", "unknown class index"), ("mask", "unreadable mask")):
        if key in msg:
            return reason
    return "unreadable image"


def scan(root: str | Path, strict: bool = False) -> MaskFolder:
    """Read and validate ``root`` (see the module docstring).

    Bad pairs are skipped and counted, or with ``strict`` the first raises DataError. DataError also when the
    folder is not a segmentation folder or no usable pair is left.
    """
    root = Path(root)
    if not is_mask_folder(root):
        raise DataError(f"{root}: not a segmentation folder; expected {IMAGES_DIR}/ and {MASKS_DIR}/ "
                        "(make one with `edgecnn data shapes OUT --masks`)")
    classes = read_classes(root)
    images = sorted(p for p in (root / IMAGES_DIR).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"{root / IMAGES_DIR}: no images")
    found: list[tuple[str, str, tuple[int, ...]]] = []
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for img_path in images:
        mpath = mask_path_for(img_path)
        try:
            img = load_image(img_path)
            mask = load_mask(mpath, len(classes), img.shape[:2])
        except DataError as exc:
            if strict:
                raise
            reason = _reason(str(exc))
            skipped[reason] += 1
            examples.setdefault(reason, str(exc))
            continue
        found.append((str(img_path), str(mpath), tuple(int(v) for v in pixel_counts(mask, len(classes)))))
    if not found:
        first = next(iter(examples.values()), "no usable image")
        raise DataError(f"{root}: no usable image/mask pair ({first})")
    totals = np.sum([f[2] for f in found], axis=0)
    rarity = np.argsort(totals, kind="stable")  # rarest class first

    def group(pixels: tuple[int, ...]) -> int:
        for k in rarity:
            if k != 0 and pixels[k] > 0:
                return int(k)
        return 0

    samples = tuple(MaskSample(i, m, p, group(p)) for i, m, p in found)
    return MaskFolder(str(root), classes, samples, dict(skipped), examples)


def split(folder: MaskFolder, val: float = 0.1, test: float = 0.1, seed: int = 0) -> dict[str, list[MaskSample]]:
    """A deterministic train/val/test split, stratified by :attr:`MaskSample.group` (each group's share in
    every split, at least one validation and test image per group that has three or more)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[MaskSample]] = {"train": [], "val": [], "test": []}
    by_group: dict[int, list[MaskSample]] = {}
    for s in folder.samples:
        by_group.setdefault(s.group, []).append(s)
    for g in sorted(by_group):
        items = by_group[g]
        order = rng.permutation(len(items))
        n = len(items)
        n_test = max(1, round(n * test)) if n >= 3 and test > 0 else 0
        n_val = max(1, round(n * val)) if n >= 3 and val > 0 else 0
        out["test"] += [items[i] for i in order[:n_test]]
        out["val"] += [items[i] for i in order[n_test:n_test + n_val]]
        out["train"] += [items[i] for i in order[n_test + n_val:]]
    return {k: sorted(v, key=lambda s: s.image) for k, v in out.items()}
