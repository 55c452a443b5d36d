"""Semantic segmentation: an image folder with a mask folder (:mod:`edgecnn.data.masks`), a class per pixel.

Targets are mask files (``uint8`` class indexes, 255 = ignore), so this task builds its own ``tf.data`` pipeline
(the pairs are decoded into memory once, in threads: segmentation sets here are small): each image goes through the one preprocessing (:func:`edgecnn.preprocess.prepare`, as on the device), its mask
through :func:`edgecnn.data.masks.mask_for_model` (the contract's crop, as for the image, then nearest-neighbour,
never blended). Augmentation applies the same geometry to both (a mirror flip and a shift by reflection padding
and a random crop of the stacked image and mask, so every image pixel keeps its label), then brightness/contrast
to the image alone. Loss: per-pixel sparse cross-entropy with the ignore index honoured. Metrics (metrics.json):
mean IoU, IoU and Dice per class, pixel accuracy, confusion matrix (:func:`edgecnn.metrics.segmentation_metrics`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data import masks as maskdata
from edgecnn.errors import DataError
from edgecnn.metrics import segmentation_confusion, segmentation_metrics
from edgecnn.preprocess import load_image, prepare
from edgecnn.train.sanity import DataCheck
from edgecnn.train.tasks.base import Task, register_task
from edgecnn.train.tasks.classify import FolderSplit, all_paths, image_contract

MAX_SHIFT = 0.1  # largest shift of the augmentation, as a fraction of the side
MIN_IMAGES = 10


@dataclass(frozen=True)
class SegmentData(FolderSplit):
    """A scanned segmentation folder (:class:`~edgecnn.data.masks.MaskFolder`) and its split of
    :class:`~edgecnn.data.masks.MaskSample`."""

    def row(self, sample: maskdata.MaskSample) -> list[Any]:
        # [image, group, mask]: the group (an int) stands in for the label where a run's split is read as
        # (path, class) -- the calibration set is stratified by it -- and the mask path rides along.
        return [sample.image, sample.group, sample.mask]


def load_pair(image: str, mask: str, contract: Contract) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 h x w x c model input, int32 h x w class indexes)`` of one pair at the contract's input size."""
    img = load_image(image)
    m = maskdata.load_mask(mask, len(contract.labels), img.shape[:2])
    return prepare(img, contract), maskdata.mask_for_model(m, contract).astype(np.int32)


def segment_augment(seed: int = 0):
    """Per-pair augmentation in TF ops on ``(float32 h x w x c, int32 h x w)``: the same flip and shift for image
    and mask, then brightness/contrast on the image (in normalised units)."""
    import tensorflow as tf  # lazy: tensorflow

    gen = tf.random.Generator.from_seed(seed)

    def fn(image, mask):
        h, w, c = image.shape
        both = tf.concat([image, tf.cast(mask, tf.float32)[..., None]], axis=-1)
        both = tf.where(gen.uniform([]) < 0.5, tf.reverse(both, axis=[1]), both)
        ph, pw = max(1, int(h * MAX_SHIFT)), max(1, int(w * MAX_SHIFT))
        both = tf.pad(both, [[ph, ph], [pw, pw], [0, 0]], mode="REFLECT")
        oy = gen.uniform([], 0, 2 * ph + 1, dtype=tf.int32)
        ox = gen.uniform([], 0, 2 * pw + 1, dtype=tf.int32)
        both = both[oy:oy + h, ox:ox + w]
        image = both[..., :c]
        mask = tf.cast(tf.round(both[..., c]), tf.int32)
        mean = tf.reduce_mean(image)
        image = (image - mean) * gen.uniform([], 0.8, 1.2) + mean + gen.uniform([], -0.08, 0.08)
        image.set_shape((h, w, c))
        mask.set_shape((h, w))
        return image, mask

    return fn


@register_task
class SegmentTask(Task):
    """Semantic segmentation with per-pixel softmax cross-entropy (ignore index 255)."""

    name = "segment"
    summary = "semantic segmentation (images/ + masks/ + labels.txt, e.g. `edgecnn data shapes OUT --masks`)"
    default_arch = "fcn"
    heads = ()  # always a per-pixel class map
    flip_ok = True  # a mirrored image with its mirrored mask is a valid pair

    def load_data(self, config) -> SegmentData:
        folder = maskdata.scan(config.data)
        splits = maskdata.split(folder, val=config.val, test=config.test, seed=config.seed)
        if not splits["val"] or not splits["train"]:
            raise DataError(f"{config.data}: too few images with masks for a train/validation split "
                            f"({len(folder.samples)} usable); add images (at least {MIN_IMAGES})")
        return SegmentData(folder, splits)

    def check_data(self, data: SegmentData) -> DataCheck:
        tot = data.folder.pixel_totals()
        counts = tuple(f"{c}: {int(n)} pixels" for c, n in zip(data.folder.classes, tot))
        absent = [c for c, n in zip(data.folder.classes, tot) if n == 0]
        warnings = tuple(f"class {c} never appears in the masks" for c in absent)
        for reason, n in data.folder.skipped.items():
            warnings += (f"{n} image(s) skipped: {reason} (e.g. {data.folder.examples[reason]})",)
        refusals = (f"only {len(data.folder.samples)} usable images with masks; need at least {MIN_IMAGES}",) \
            if len(data.folder.samples) < MIN_IMAGES else ()
        return DataCheck(counts=counts, warnings=warnings, refusals=refusals)

    def make_contract(self, config, data: SegmentData, h: int, w: int, mean, std) -> Contract:
        if h % 8 or w % 8:
            raise DataError(f"segmentation input size must be a multiple of 8 on both sides, got {w}x{h}")
        return image_contract("segment", config, all_paths(data.splits, "image"), h, w, mean, std,
                              labels=data.folder.classes, head="class-map")

    def arrays(self, data: SegmentData, split: str, config) -> tuple[list[str], np.ndarray]:
        """``(image paths, mask paths as an object array)``."""
        samples = data.splits[split]
        return [s.image for s in samples], np.array([s.mask for s in samples], dtype=object)

    def augment(self, contract: Contract, config):
        return segment_augment(config.seed) if config.augment else None

    def dataset(self, data: SegmentData, split: str, contract: Contract, config, training: bool):
        """Batched ``(float32 N x h x w x c, int32 N x h x w)``: every pair decoded once into memory (in
        threads: OpenCV releases the GIL), then (training) shuffled and augmented per pair."""
        import tensorflow as tf  # lazy: tensorflow

        images, masks = self.arrays(data, split, config)
        with ThreadPoolExecutor(max_workers=4) as pool:
            pairs = list(pool.map(lambda im: load_pair(im[0], im[1], contract), zip(images, masks)))
        h, w, c = contract.input_height, contract.input_width, contract.channels
        x = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, h, w, c), np.float32)
        y = np.stack([p[1] for p in pairs]) if pairs else np.zeros((0, h, w), np.int32)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if training:
            ds = ds.shuffle(min(len(images), 10_000), seed=config.seed, reshuffle_each_iteration=True)
            aug = self.augment(contract, config)
            if aug is not None:
                ds = ds.map(aug, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(config.batch).prefetch(tf.data.AUTOTUNE)

    def compile(self, model, config) -> None:
        import keras  # lazy: keras

        model.compile(
            optimizer=keras.optimizers.Adam(config.lr),
            loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=maskdata.IGNORE),
        )

    def evaluate(self, model, data: SegmentData, contract: Contract, config) -> dict[str, Any]:
        """Held-out test metrics over all test pixels: mean IoU, IoU/Dice per class, pixel accuracy, confusion."""
        k = len(contract.labels)
        cm = np.zeros((k, k), np.int64)
        for images, masks in self.dataset(data, "test", contract, config, training=False):
            pred = model.predict_on_batch(images).argmax(-1)
            cm += segmentation_confusion(pred, masks.numpy(), k)
        metrics = segmentation_metrics(cm, contract.labels)
        metrics["test_count"] = len(data.splits["test"])
        return metrics
