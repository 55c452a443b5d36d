"""Image classification: an image folder (one sub-folder per class), softmax cross-entropy, accuracy metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data import imagefolder
from edgecnn.errors import DataError
from edgecnn.metrics import classification_metrics
from edgecnn.train.datakind import refuse_steering_data
from edgecnn.train.pipeline_data import classification_augment
from edgecnn.train.sanity import DataCheck, chance_warning, check_classes
from edgecnn.train.tasks.base import Task, register_task


@dataclass(frozen=True)
class ClassifyData:
    """A scanned image folder and its split (``{"train"|"val"|"test": [Sample, ...]}``)."""

    folder: imagefolder.ImageFolder
    splits: dict[str, list[imagefolder.Sample]]

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return f"data: {self.folder.summary()}; split: {sizes}"

    def split_rows(self) -> dict[str, list[list[Any]]]:
        return {k: [[s.path, s.label] for s in v] for k, v in self.splits.items()}


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
        return Contract(
            task="classify", input_height=h, input_width=w, channels=3, color_order=config.color_order,
            mean=tuple(mean), std=tuple(std), resize="area", labels=data.folder.classes, head="softmax",
            arch=config.arch,
        )

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
