"""Image classification: an image folder (one sub-folder per class), softmax cross-entropy, accuracy metrics."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data import imagefolder
from edgecnn.errors import DataError, OptionError
from edgecnn.image_headers import common_image_size, file_image_size
from edgecnn.metrics import classification_metrics
from edgecnn.train.datakind import refuse_steering_data
from edgecnn.train.pipeline_data import classification_augment
from edgecnn.train.sanity import DataCheck, chance_warning, check_classes
from edgecnn.train.tasks.base import Task, register_task


@dataclass(frozen=True)
class FolderSplit:
    """A scanned data folder (anything with ``summary() -> str``) and its split (``{"train"|"val"|"test":
    [sample, ...]}``): what the image-folder tasks (classify, segment) load. Subclasses say how a sample is
    written to split.json (:meth:`row`)."""

    folder: Any
    splits: dict[str, list[Any]]

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return f"data: {self.folder.summary()}; split: {sizes}"

    def split_rows(self) -> dict[str, list[list[Any]]]:
        return {k: [self.row(s) for s in v] for k, v in self.splits.items()}

    def row(self, sample: Any) -> list[Any]:
        """One sample as a split.json row: its image path first."""
        raise NotImplementedError


@dataclass(frozen=True)
class ClassifyData(FolderSplit):
    """A scanned image folder (:class:`~edgecnn.data.imagefolder.ImageFolder`) and its split of
    :class:`~edgecnn.data.imagefolder.Sample`."""

    def row(self, sample: imagefolder.Sample) -> list[Any]:
        return [sample.path, sample.label]


def image_contract(task: str, config, paths: Iterable[str], h: int, w: int, mean, std, **fields: Any) -> Contract:
    """The contract of an image task (``classify``, ``steer``, ``segment``): input ``h x w`` x 3 in
    ``config.color_order``, normalisation ``mean``/``std`` (per channel, pixel units), ``config.resize``,
    ``config.crop`` (checked against the data by :func:`check_crop`), ``config.arch``, and ``source_size``
    (width, height) when every frame in ``paths`` (the whole data set) has that one size, read from the image
    headers (:func:`edgecnn.image_headers.common_image_size`; the device opens its camera at it); ``()`` when
    the sizes differ or a header does not say. ``fields``: the task's own (labels, head, ...)."""
    paths = list(paths)
    size = common_image_size(paths)
    crop, resize = tuple(getattr(config, "crop", ())), getattr(config, "resize", "area")  # a TrainConfig has both
    check_crop(crop, paths, size)
    return Contract(
        task=task, input_height=h, input_width=w, channels=3, color_order=config.color_order,
        mean=tuple(mean), std=tuple(std), resize=resize, arch=config.arch, source_size=size or (), crop=crop,
        **fields,
    )


def check_crop(crop: tuple[int, ...], paths: Sequence[str], size: tuple[int, int] | None = None) -> None:
    """OptionError (one line) when ``--crop`` ``(top, bottom)`` leaves no row of the data's frames: of the one
    frame ``size`` (width, height) when the data has it, else of the shortest frame among ``paths`` whose header
    gives its size (:func:`edgecnn.image_headers.file_image_size`)."""
    if not crop:
        return
    if size:
        height, what = size[1], f"the data's {size[0]}x{size[1]} frames"
    else:
        heights = [s[1] for s in map(file_image_size, paths) if s]
        if not heights:
            return
        height, what = min(heights), "the data's shortest frames"
    if crop[0] + crop[1] >= height:
        raise OptionError(f"--crop {crop[0]},{crop[1]} removes all {height} rows of {what}; crop fewer rows")


def all_paths(splits: dict[str, list[Any]], attr: str = "path") -> Iterator[str]:
    """The image path (attribute ``attr``) of every sample of every split."""
    return (getattr(s, attr) for samples in splits.values() for s in samples)


def _per_class(data: ClassifyData) -> dict[str, list[int]]:
    """``{split: [images of class 0, of class 1, ...]}``."""
    k = len(data.folder.classes)
    return {name: np.bincount([s.label for s in samples], minlength=k).tolist() for name, samples in data.splits.items()}


@register_task
class ClassifyTask(Task):
    """Image classification with softmax cross-entropy."""

    name = "classify"
    summary = "image classification (an image folder, one sub-folder per class)"
    default_arch = "compact"
    heads = ()  # always softmax
    flip_ok = False  # not every class survives a mirror flip (digits, arrows, text)

    def load_data(self, config) -> ClassifyData:
        refuse_steering_data(config.data)  # a tub or roads folder would scan as one class called "images"
        folder = imagefolder.scan(config.data)
        splits = imagefolder.split(folder, val=config.val, test=config.test)
        if not splits["val"]:
            raise DataError("too few images for a validation split; add images (at least 3 per class)")
        return ClassifyData(folder, splits)

    def check_data(self, data: ClassifyData) -> DataCheck:
        return check_classes(data.folder.classes, _per_class(data))

    def verdict(self, metrics: dict[str, Any], data: ClassifyData) -> list[str]:
        warning = chance_warning(metrics, _per_class(data)["train"])
        return [warning] if warning else []

    def make_contract(self, config, data: ClassifyData, h: int, w: int, mean, std) -> Contract:
        return image_contract("classify", config, all_paths(data.splits), h, w, mean, std,
                              labels=data.folder.classes, head="softmax")

    def arrays(self, data: ClassifyData, split: str, config) -> tuple[list[str], np.ndarray]:
        samples = data.splits[split]
        return [s.path for s in samples], np.array([s.label for s in samples], np.int32)

    def augment(self, contract: Contract, config):
        return classification_augment(config.seed) if config.augment else None

    def compile(self, model, config) -> None:
        import keras  # lazy: keras

        model.compile(
            optimizer=keras.optimizers.Adam(config.lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def evaluate(self, model, data: ClassifyData, contract: Contract, config) -> dict[str, Any]:
        """Held-out test metrics: accuracy, top-5, per-class accuracy and the confusion matrix."""
        ds = self.dataset(data, "test", contract, config, training=False)
        probs = model.predict(ds, verbose=0)
        labels = np.array([s.label for s in data.splits["test"]])
        return classification_metrics(probs, labels, contract.labels)
