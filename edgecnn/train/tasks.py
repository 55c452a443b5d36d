"""What differs between tasks during training: data, targets, loss, metrics (host side).

A task provides ``load_data``, ``make_contract``, ``arrays`` (files and targets of a split), ``augment``,
``model_kwargs``, ``compile`` and ``evaluate``; :class:`Task` turns ``arrays`` + ``augment`` into the tf.data set
that both ``model.fit`` and the multi-worker loop (:mod:`edgecnn.train.distribute`) use, and
:mod:`edgecnn.train.trainer` does the rest. Steering lives in :mod:`edgecnn.train.steer_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data import imagefolder
from edgecnn.errors import EdgecnnError
from edgecnn.metrics import classification_metrics


@dataclass(frozen=True)
class ClassifyData:
    """A scanned image folder and its split."""

    folder: imagefolder.ImageFolder
    splits: dict[str, list[imagefolder.Sample]]

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        return f"data: {self.folder.summary()}; split: {sizes}"

    def split_rows(self) -> dict[str, list[list[Any]]]:
        return {k: [[s.path, s.label] for s in v] for k, v in self.splits.items()}


class Task:
    """Shared behaviour of the tasks: building a split's tf.data set from ``arrays`` and ``augment``."""

    name = ""

    def arrays(self, data, split: str, config) -> tuple[list[str], np.ndarray]:
        """``(paths, targets)`` of ``split``: targets ``int32 N`` labels or ``float32 N x T`` regression values."""
        raise NotImplementedError

    def augment(self, contract: Contract, config):
        """The training augmentation (``fn(images, targets)`` on batches, TF ops), or None."""
        raise NotImplementedError

    def dataset(self, data, split: str, contract: Contract, config, training: bool):
        """Batched, prefetched ``tf.data.Dataset`` of ``split``; shuffled and augmented when ``training``."""
        from edgecnn.train.pipeline_data import make_dataset

        paths, targets = self.arrays(data, split, config)
        return make_dataset(
            paths, targets, contract, config.batch, shuffle=training, seed=config.seed,
            augment=self.augment(contract, config) if training else None,
            cache_dir=getattr(config, "cache_dir", None),
        )


class ClassifyTask(Task):
    """Image classification with softmax cross-entropy."""

    name = "classify"

    def load_data(self, config) -> ClassifyData:
        folder = imagefolder.scan(config.data)
        splits = imagefolder.split(folder, val=config.val, test=config.test)
        if not splits["val"]:
            raise EdgecnnError("too few images for a validation split; add images (at least 3 per class)")
        return ClassifyData(folder, splits)

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
        from edgecnn.train.pipeline_data import classification_augment

        return classification_augment(config.seed) if config.augment else None

    def model_kwargs(self, config) -> dict[str, Any]:
        return {}

    def compile(self, model, config) -> None:
        import keras

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


def get_task(name: str):
    """The task object for ``name``."""
    if name == "classify":
        return ClassifyTask()
    if name == "steer":
        from edgecnn.train.steer_task import SteerTask

        return SteerTask()
    raise EdgecnnError(f"unknown task {name!r}; choose classify or steer")
