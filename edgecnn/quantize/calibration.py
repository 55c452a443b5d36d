"""Calibration sets: a representative sample of the *training* split, stored with a manifest of hashes.

A calibration set is a folder ``calibration/NAME/`` holding

* ``images.npy``: ``uint8 N x h x w x 3`` BGR frames, already cropped (the contract's ``crop``, manifest
  ``crop``) and resized to the model's input size with the contract's resize method (so
  :func:`edgecnn.preprocess.prepare`, given the contract without its crop, only reorders channels and normalises
  them, exactly as it does for a training image of that size);
* ``targets.npy``: ``int64 N`` class indexes, or ``float32 N`` steering values in [-1, 1];
* ``maps.npy`` (navigation runs only, the model's second input): ``uint8 N x S x S x C`` map rasters (0 or 255)
  with the channels the model reads (``roads`` [, ``route``]), in the contract's order; the model input is
  raster / 255;
* ``MANIFEST.json``: source, input size, count, per-class counts, the sha256 of every item (source file and
  stored pixels), of every array file and of the whole set (``sha256`` = sha256 of ``images.npy`` bytes followed by
  ``targets.npy`` bytes, then ``maps.npy`` bytes when the set has maps);
* ``coverage.json``: the coverage report (counts, pixel statistics versus the training split, warnings).

Items are drawn only from the training split, never from validation or test, so an evaluation on the test split is
always disjoint from calibration. numpy/OpenCV only: compare and the device side read sets with
:func:`load_calibration`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.data.imagefolder import scan, split
from edgecnn.data.masks import load_mask, mask_path_for, pixel_counts, resize_mask
from edgecnn.errors import DataError
from edgecnn.preprocess import crop_frame, decode_image, prepare_batch
from edgecnn.preprocess import resize as resize_frame
from edgecnn.runtime.evaluate import (
    IMAGE_INPUT,
    MAP_INPUT,
    Inputs,
    load_map_raster,
    map_channels,
    map_shape,
)
from edgecnn.train.datakind import refuse_steering_data
from edgecnn.train.run import load_run

FORMAT = "edgecnn-calibration"
FORMAT_VERSION = 1
MIN_RECOMMENDED = 100
STEER_BINS = 10


@dataclass(frozen=True)
class CalibrationSource:
    """Where a calibration set is drawn from.

    Attributes:
        kind: ``"run"`` (a run folder's split.json) or ``"data"`` (an image folder, split here).
        path: the run or data folder.
        task: ``"classify"`` or ``"steer"``.
        items: the training split as ``(abs_path, target)`` pairs; target = class index or steering in [-1, 1].
        labels: class names (classify), empty for steer.
        input_height, input_width: model input size in pixels.
        resize: OpenCV interpolation name used to shrink frames (``"area"``).
        data_root: the image data set's folder; item paths are stored relative to it in the manifest.
        maps: navigation runs: image path -> its map raster PNG; empty otherwise.
        map_channels: the map channels the model reads, in order (``("roads", "route")``); empty without maps.
        crop, source_size: the run contract's ``crop`` and ``source_size``: frames lose those rows
            (:func:`edgecnn.preprocess.crop_frame`) before they are resized, as in training; ``()`` for none.
    """

    kind: str
    path: str
    task: str
    items: tuple[tuple[str, float], ...]
    labels: tuple[str, ...]
    input_height: int
    input_width: int
    resize: str = "area"
    data_root: str = ""
    maps: dict[str, str] = field(default_factory=dict)
    map_channels: tuple[str, ...] = ()
    crop: tuple[int, ...] = ()
    source_size: tuple[int, ...] = ()


@dataclass(frozen=True)
class CalibrationSet:
    """A loaded calibration set.

    Attributes:
        frames: ``uint8 N x h x w x 3`` BGR frames at the model's input size.
        targets: ``int64 N`` class indexes or ``float32 N`` steering values.
        manifest: the parsed MANIFEST.json.
        root: the set's folder.
        maps: ``uint8 N x S x S x C`` map rasters (0/255) of a navigation set, else None.
    """

    frames: np.ndarray
    targets: np.ndarray
    manifest: dict[str, Any]
    root: Path
    maps: np.ndarray | None = None

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def input_size(self) -> tuple[int, int]:
        return (int(self.manifest["input_height"]), int(self.manifest["input_width"]))

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class Coverage:
    """How well a calibration set covers the training split.

    Attributes:
        count: items in the set.
        per_class: ``{label: count}`` (classify), ``{bin: count}`` with bins over the steering range (steer), or
            ``{label: pixels}`` at the model's input size (segment; see ``unit``).
        train_per_class: the same counts over the training split.
        pixel_mean, pixel_std: per-channel BGR statistics of the set, pixel values 0..255.
        train_pixel_mean, train_pixel_std: the same over (a sample of) the training split.
        warnings: human-readable problems (too small, a class missing, a shifted pixel distribution).
        unit: what ``per_class`` counts: ``"items"``, or ``"pixels"`` (segment).
    """

    count: int
    per_class: dict[str, int]
    train_per_class: dict[str, int]
    pixel_mean: tuple[float, ...]
    pixel_std: tuple[float, ...]
    train_pixel_mean: tuple[float, ...]
    train_pixel_std: tuple[float, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)
    unit: str = "items"

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "unit": self.unit,
            "per_class": self.per_class,
            "train_per_class": self.train_per_class,
            "pixel_mean_bgr": list(self.pixel_mean),
            "pixel_std_bgr": list(self.pixel_std),
            "train_pixel_mean_bgr": list(self.train_pixel_mean),
            "train_pixel_std_bgr": list(self.train_pixel_std),
            "warnings": list(self.warnings),
        }

    def text(self) -> str:
        """A short human-readable report."""
        lines = [f"{self.count} calibration items" + (" (pixels per class at the model's input size)"
                                                      if self.unit == "pixels" else "")]
        width = max((len(k) for k in self.per_class), default=5)
        for k, n in self.per_class.items():
            lines.append(f"  {k:<{width}}  {n:4d}  (train split{' sample' if self.unit == 'pixels' else ''}: "
                         f"{self.train_per_class.get(k, 0)})")
        fmt = lambda v: "/".join(f"{x:.1f}" for x in v)  # noqa: E731
        lines.append(f"  pixel mean B/G/R {fmt(self.pixel_mean)} (train {fmt(self.train_pixel_mean)}), "
                     f"std {fmt(self.pixel_std)} (train {fmt(self.train_pixel_std)})")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- sources


def source_from_data(root: str | Path, input_size: tuple[int, int], resize: str = "area") -> CalibrationSource:
    """An image folder (``ROOT/<class>/<image>``): scanned and split as training does; the train split is used."""
    refuse_steering_data(root, hint="calibrate the steering run instead: `edgecnn train DATA --task steer --out RUN`, "
                               "then `edgecnn calibrate RUN`")

    folder = scan(root)
    train = split(folder)["train"]
    root = str(Path(root).resolve())
    return CalibrationSource("data", root, "classify", tuple((s.path, s.label) for s in train),
                             folder.classes, int(input_size[0]), int(input_size[1]), resize, root)


def source_from_run(run_dir: str | Path) -> CalibrationSource:
    """A run folder: the train split of its split.json, at its contract's input size."""
    run = load_run(run_dir)
    items = run.splits.get("train", ())
    if not items:
        raise DataError(f"{run.root} has no training split in split.json; re-run edgecnn train")
    c = run.contract
    channels = map_channels(c)
    maps = {i.path: i.map for i in items if i.map} if channels else {}
    if channels and len(maps) != len(items):
        raise DataError(f"{run.root}: split.json has no map raster for some training frames; re-run edgecnn train")
    return CalibrationSource("run", str(Path(run.root).resolve()), run.task, tuple((i.path, i.target) for i in items),
                             tuple(c.labels), c.input_height, c.input_width, c.resize, run.data, maps, channels,
                             c.crop, c.source_size)


# ---------------------------------------------------------------------------------------------- selection


def select(source: CalibrationSource, count: int = 300, seed: int = 0) -> list[tuple[str, float]]:
    """Pick ``count`` training items, stratified by class (classify), by the rarest class an image shows
    (segment: the split's group, so every class present in the training split is in the set), or spread over
    the steering range (steer).

    Classes get a share proportional to their size but at least one item each; steering values are binned into
    ``STEER_BINS`` equal bins over [-1, 1] and drawn round-robin so rare sharp turns are not crowded out by the
    many straight frames. Deterministic for a given ``seed``. Returns items sorted by path.
    """
    if count <= 0:
        raise DataError(f"--count must be positive, got {count}")
    items = list(source.items)
    if not items:
        raise DataError(f"{source.path}: the training split is empty")
    rng = np.random.default_rng(seed)
    groups: dict[int, list[tuple[str, float]]] = {}
    for it in items:
        groups.setdefault(_group_of(source.task, it[1]), []).append(it)
    for g in groups.values():
        rng.shuffle(g)  # type: ignore[arg-type]
    count = min(count, len(items))
    if source.task in ("classify", "segment"):
        quota = {g: max(1, round(count * len(v) / len(items))) for g, v in groups.items()}
        picked = [it for g in sorted(groups) for it in groups[g][: quota[g]]]
    else:
        picked, depth = [], 0
        while len(picked) < count:
            for g in sorted(groups):
                if depth < len(groups[g]) and len(picked) < count:
                    picked.append(groups[g][depth])
            depth += 1
    return sorted(picked[:count] if len(picked) > count else picked)


def _group_of(task: str, target: float) -> int:
    if task in ("classify", "segment"):
        return int(target)
    return int(min(STEER_BINS - 1, max(0, (float(target) + 1.0) / 2.0 * STEER_BINS)))


def _bin_name(b: int) -> str:
    lo = -1.0 + 2.0 * b / STEER_BINS
    return f"[{lo:+.1f},{lo + 2.0 / STEER_BINS:+.1f})"


# ---------------------------------------------------------------------------------------------- writing


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _load_frame(path: str, h: int, w: int, resize: str, crop: tuple[int, ...] = (),
                source_size: tuple[int, ...] = ()) -> tuple[np.ndarray, bytes]:
    """``(uint8 h x w x 3 BGR frame, source file bytes)``: the file's frame without the ``crop`` rows, resized."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc}); was the data folder moved?") from exc
    return resize_frame(crop_frame(decode_image(data, path), crop, source_size), h, w, resize), data


def build(
    source: CalibrationSource,
    out: str | Path,
    count: int = 300,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, Coverage]:
    """Select, load and write a calibration set to ``out`` atomically; return ``(out, coverage)``."""
    picked = select(source, count, seed)
    h, w = source.input_height, source.input_width
    frames, entries = [], []
    for i, (path, target) in enumerate(picked):
        frame, raw = _load_frame(path, h, w, source.resize, source.crop, source.source_size)
        frames.append(frame)
        entries.append({"source": _relative(path, source.data_root), "target": target, "sha256": _sha256(raw), "pixels_sha256": _sha256(frame.tobytes())})
        if progress:
            progress(i + 1, len(picked))
    images = np.stack(frames).astype(np.uint8)
    dtype = np.int64 if source.task in ("classify", "segment") else np.float32
    targets = np.asarray([t for _, t in picked], dtype=dtype)
    coverage = _coverage(source, images, targets, seed, paths=[p for p, _ in picked])
    images_b, targets_b = _npy_bytes(images), _npy_bytes(targets)
    maps_b = b""
    if source.map_channels:
        maps = np.stack([load_map_raster(source.maps[p], source.map_channels) for p, _ in picked]).astype(np.uint8)
        maps_b = _npy_bytes(maps)
        for e, (p, _) in zip(entries, picked):
            e["map"] = _relative(source.maps[p], source.data_root)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": {"kind": source.kind, "path": source.path, "data_root": source.data_root, "split": "train"},
        "task": source.task,
        "input_height": h,
        "input_width": w,
        "channels": 3,
        "stored_color_order": "BGR",
        "resize": source.resize,
        "crop": list(source.crop),
        "labels": list(source.labels),
        "count": len(picked),
        "seed": seed,
        "per_class": coverage.per_class,
        "files": {"images.npy": _sha256(images_b), "targets.npy": _sha256(targets_b)},
        "sha256": _sha256(images_b + targets_b + maps_b),
        "items": entries,
    }
    if source.map_channels:
        manifest["files"]["maps.npy"] = _sha256(maps_b)
        manifest["inputs"] = {"image": {"file": "images.npy", "shape": [h, w, 3]},
                              "map": {"file": "maps.npy", "shape": list(maps.shape[1:]),
                                      "channels": list(source.map_channels), "scale": "raster / 255"}}
    with staged_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images.npy").write_bytes(images_b)
        (tmp / "targets.npy").write_bytes(targets_b)
        if maps_b:
            (tmp / "maps.npy").write_bytes(maps_b)
        (tmp / "coverage.json").write_text(json.dumps(coverage.to_dict(), indent=2) + "\n", encoding="utf-8")
        (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return Path(out), coverage


def _relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` (POSIX separators) when it lies below it, else unchanged."""
    if root:
        try:
            return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path


def item_paths(calib: CalibrationSet) -> list[str]:
    """Absolute source paths of a set's items (relative ones are joined to the manifest's data root)."""
    root = calib.manifest.get("source", {}).get("data_root", "")
    return [str(Path(root, e["source"])) if root else e["source"] for e in calib.manifest.get("items", [])]


def in_calibration(calib: CalibrationSet, paths: Sequence[str]) -> list[bool]:
    """For each image file in ``paths``: is it also in ``calib``, as the same file (resolved path) or the same
    bytes (a copy)? Evaluation sets must be disjoint from calibration. DataError when a file cannot be read."""
    calib_paths = {os.path.realpath(p) for p in item_paths(calib)}
    calib_hashes = {e.get("sha256") for e in calib.manifest.get("items", [])}

    def inside(path: str) -> bool:
        if os.path.realpath(path) in calib_paths:
            return True
        try:
            return _sha256(Path(path).read_bytes()) in calib_hashes
        except OSError as exc:
            raise DataError(f"{path} cannot be read ({exc.strerror or exc}); was the data folder moved?") from exc

    return [inside(p) for p in paths]


def _coverage(source: CalibrationSource, images: np.ndarray, targets: np.ndarray, seed: int,
              train_sample: int = 300, paths: Sequence[str] = ()) -> Coverage:
    """Counts and pixel statistics versus (a seeded sample of up to ``train_sample`` images of) the train split."""
    if source.task == "segment":
        # Pixels per class, counted on the masks at the model's input size (what the model is trained on).
        names = list(source.labels)

        def pixels(path: str) -> np.ndarray:
            mask = load_mask(mask_path_for(path), len(names))
            mask = crop_frame(mask, source.crop, source.source_size)
            return pixel_counts(resize_mask(mask, source.input_height, source.input_width), len(names))

        picked_px = np.sum([pixels(p) for p in paths], axis=0) if paths else np.zeros(len(names))
        sample = np.random.default_rng(seed + 1).choice(len(source.items), size=min(train_sample, len(source.items)),
                                                        replace=False)
        train_px = np.sum([pixels(source.items[i][0]) for i in sorted(sample)], axis=0)
        per = {n: int(v) for n, v in zip(names, picked_px)}
        tper = {n: int(v) for n, v in zip(names, train_px)}
    elif source.task == "classify":
        names = list(source.labels) or [str(i) for i in range(int(max(t for _, t in source.items)) + 1)]
        cnt, tcnt = Counter(int(t) for t in targets), Counter(int(t) for _, t in source.items)
        per = {names[i]: cnt.get(i, 0) for i in range(len(names))}
        tper = {names[i]: tcnt.get(i, 0) for i in range(len(names))}
    else:
        cnt = Counter(_group_of("steer", t) for t in targets)
        tcnt = Counter(_group_of("steer", t) for _, t in source.items)
        per = {_bin_name(b): cnt.get(b, 0) for b in range(STEER_BINS)}
        tper = {_bin_name(b): tcnt.get(b, 0) for b in range(STEER_BINS)}
    rng = np.random.default_rng(seed + 1)
    idx = rng.choice(len(source.items), size=min(train_sample, len(source.items)), replace=False)
    train = np.stack([_load_frame(source.items[i][0], source.input_height, source.input_width, source.resize,
                                  source.crop, source.source_size)[0] for i in sorted(idx)]).astype(np.float64)
    mean, std = images.reshape(-1, 3).mean(0), images.reshape(-1, 3).std(0)
    tmean, tstd = train.reshape(-1, 3).mean(0), train.reshape(-1, 3).std(0)
    warnings = []
    n = int(images.shape[0])
    if n < MIN_RECOMMENDED:
        warnings.append(f"only {n} calibration items; use at least {MIN_RECOMMENDED} for stable int8 ranges")
    missing = [k for k, v in per.items() if v == 0 and tper.get(k, 0) > 0]
    if missing:
        what = "steering range" if source.task == "steer" else "class"
        warnings.append(f"{what} {', '.join(missing)} present in the training split but missing from the set")
    shift = float(np.max(np.abs(mean - tmean) / np.maximum(tstd, 1.0)))
    if shift > 0.25:
        warnings.append(f"pixel mean differs from the training split by {shift:.2f} std; the set may not be representative")
    r = lambda v: tuple(round(float(x), 2) for x in v)  # noqa: E731
    return Coverage(n, per, tper, r(mean), r(std), r(tmean), r(tstd), tuple(warnings),
                    unit="pixels" if source.task == "segment" else "items")


# ---------------------------------------------------------------------------------------------- reading


def load_calibration(path: str | Path) -> CalibrationSet:
    """Read and verify a calibration set folder (numpy only).

    Raises DataError when the folder or MANIFEST.json is missing, a file's sha256 differs from the manifest
    (corrupt or edited), or the set is empty.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"calibration set not found: {root}; create one with edgecnn calibrate RUN --out {root}")
    mpath = root / "MANIFEST.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{root} is not a calibration set (no MANIFEST.json); create one with edgecnn calibrate") from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"{mpath} is corrupt ({exc}); re-create the set with edgecnn calibrate") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{mpath} is not an edgecnn calibration manifest; re-create the set with edgecnn calibrate")
    if int(manifest.get("count", 0)) <= 0:
        raise DataError(f"calibration set {root} is empty; re-create it with --count 300")
    blobs = {}
    names = ("images.npy", "targets.npy") + (("maps.npy",) if "maps.npy" in manifest.get("files", {}) else ())
    for name in names:
        try:
            blobs[name] = (root / name).read_bytes()
        except OSError as exc:
            raise DataError(f"calibration set {root} is incomplete: {name} is missing; re-create it") from exc
        expected = manifest.get("files", {}).get(name)
        if _sha256(blobs[name]) != expected:
            raise DataError(f"calibration set {root} is corrupt: {name} does not match its sha256 in MANIFEST.json")
    try:
        frames = np.load(io.BytesIO(blobs["images.npy"]), allow_pickle=False)
        targets = np.load(io.BytesIO(blobs["targets.npy"]), allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"calibration set {root} is corrupt: {exc}") from exc
    h, w = int(manifest["input_height"]), int(manifest["input_width"])
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (h, w, 3) or len(frames) == 0:
        raise DataError(f"calibration set {root}: images.npy has shape {frames.shape} {frames.dtype}, "
                        f"expected N x {h} x {w} x 3 uint8 with N > 0")
    if len(targets) != len(frames):
        raise DataError(f"calibration set {root}: {len(targets)} targets for {len(frames)} images")
    maps = None
    if "maps.npy" in blobs:
        try:
            maps = np.load(io.BytesIO(blobs["maps.npy"]), allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"calibration set {root} is corrupt: {exc}") from exc
        if maps.dtype != np.uint8 or maps.ndim != 4 or len(maps) != len(frames):
            raise DataError(f"calibration set {root}: maps.npy has shape {maps.shape} {maps.dtype}, expected "
                            f"{len(frames)} x S x S x C uint8")
    return CalibrationSet(frames, targets, manifest, root, maps)


def check_compatible(calib: CalibrationSet, contract: Any) -> None:
    """DataError when ``calib`` was made for another model (input size, task or labels differ from ``contract``)."""
    h, w = calib.input_size
    name = calib.root
    if (h, w) != (contract.input_height, contract.input_width):
        raise DataError(f"calibration set {name} is {h}x{w} but the model takes {contract.input_height}x"
                        f"{contract.input_width}; make a set for this model with edgecnn calibrate RUN --out ...")
    if calib.manifest.get("task") != contract.task:
        raise DataError(f"calibration set {name} is for task {calib.manifest.get('task')!r}, the model is "
                        f"{contract.task!r}")
    want = map_shape(contract)
    got = tuple(calib.maps.shape[1:]) if calib.maps is not None else None
    if want != got:
        raise DataError(f"calibration set {name} has " + (f"maps of {got[0]}x{got[1]}x{got[2]}" if got else "no maps")
                        + " but the model takes " + (f"a {want[0]}x{want[1]}x{want[2]} map" if want else "no map")
                        + "; make a set for this model with edgecnn calibrate RUN --out ...")
    crop = list(getattr(contract, "crop", ()))
    if list(calib.manifest.get("crop", [])) != crop:  # a set written before crop existed has none
        raise DataError(f"calibration set {name} was cropped {calib.manifest.get('crop', [])} but the model crops "
                        f"{crop}; make a set for this model with edgecnn calibrate RUN --out ...")
    if contract.task in ("classify", "segment") and list(calib.manifest.get("labels", [])) != list(contract.labels):
        raise DataError(f"calibration set {name} has labels {calib.manifest.get('labels')} but the model has "
                        f"{list(contract.labels)}; make a set from this model's run")


def model_inputs(calib: CalibrationSet, contract: Any, limit: int | None = None) -> Inputs:
    """Model inputs: ``float32 N x h x w x c``, the stored frames through :func:`edgecnn.preprocess.prepare`; for
    a navigation set ``{"image": those, "map": float32 N x S x S x C}`` (stored rasters / 255)."""
    frames: Sequence[np.ndarray] = list(calib.frames[:limit] if limit else calib.frames)
    images = prepare_batch(list(frames), contract.replace(crop=()))  # the stored frames are already cropped
    if calib.maps is None:
        return images
    maps = calib.maps[:limit] if limit else calib.maps
    return {IMAGE_INPUT: images, MAP_INPUT: maps.astype(np.float32) / np.float32(255.0)}
