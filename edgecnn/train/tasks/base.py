"""The training task interface and its registry (``register_task``, ``get_task``, ``list_tasks``), like the
architecture registry in :mod:`edgecnn.models.registry`.

A task is what differs between, say, classification and steering during training: how its data set is read and
split, the model's contract, the targets, the augmentation, the loss and metrics, and the held-out evaluation.
It also declares its defaults (``default_arch``, ``heads``, whether a mirror flip is a valid augmentation), which
``edgecnn train``, :class:`edgecnn.train.config.TrainConfig` and the pipeline read from here.

Task modules import no TensorFlow at module level (``edgecnn train --help`` reads the registry); the methods
that build TensorFlow objects import it themselves. Standard library and numpy only at import time.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import OptionError
from edgecnn.train.pipeline_data import make_dataset
from edgecnn.train.sanity import DataCheck


class Task:
    """One training task. Subclasses set the class attributes and implement the methods below.

    Class attributes:
        name: registry name (``--task``).
        summary: one line for help texts.
        default_arch: the architecture trained when ``--arch`` is not given.
        heads: the output heads a user may choose with ``--head`` (empty: the task has one fixed head).
        flip_ok: a horizontal mirror flip is a valid augmentation (with its target transform, if any).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    default_arch: ClassVar[str] = ""
    heads: ClassVar[tuple[str, ...]] = ()
    flip_ok: ClassVar[bool] = False

    def load_data(self, config) -> Any:
        """Read and split ``config.data``; the result has ``summary`` (str) and ``split_rows()`` (for split.json)."""
        raise NotImplementedError

    def check_data(self, data) -> DataCheck:
        """Counts, warnings and refusals for the loaded split (:mod:`edgecnn.train.sanity`); none by default."""
        return DataCheck()

    def verdict(self, metrics: dict[str, Any], data) -> list[str]:
        """Warnings about the trained model's test metrics (no better than chance, ...); none by default."""
        return []

    def make_contract(self, config, data, h: int, w: int, mean, std) -> Contract:
        """The model's contract for input ``h x w`` pixels and normalisation ``mean``/``std`` (per channel)."""
        raise NotImplementedError

    def arrays(self, data, split: str, config) -> tuple[list[str], np.ndarray]:
        """``(paths, targets)`` of ``split``: targets ``int32 N`` labels or ``float32 N x T`` regression values."""
        raise NotImplementedError

    def augment(self, contract: Contract, config):
        """The training augmentation (``fn(images, targets)`` on batches, TF ops), or None."""
        raise NotImplementedError

    def default_augment(self, data) -> tuple[bool, str]:
        """``(on, reason)``: whether augmentation fits ``data`` when the user did not say (``--augment`` unset)."""
        return True, "on by default"

    def model_kwargs(self, config) -> dict[str, Any]:
        """Extra keyword arguments for the architecture's builder (head options)."""
        return {}

    def compile(self, model, config) -> None:
        """Compile ``model`` with this task's optimizer, loss and metrics."""
        raise NotImplementedError

    def evaluate(self, model, data, contract: Contract, config) -> dict[str, Any]:
        """Held-out test metrics of ``model`` (a dict written to metrics.json)."""
        raise NotImplementedError

    def dataset(self, data, split: str, contract: Contract, config, training: bool):
        """Batched, prefetched ``tf.data.Dataset`` of ``split``; shuffled and augmented when ``training``."""
        paths, targets = self.arrays(data, split, config)
        return make_dataset(
            paths, targets, contract, config.batch, shuffle=training, seed=config.seed,
            augment=self.augment(contract, config) if training else None,
            cache_dir=getattr(config, "cache_dir", None),
        )


_TASKS: dict[str, Task] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or not cls.default_arch:
        raise RuntimeError(f"task class {cls.__name__} needs a name and a default_arch")
    _TASKS[cls.name] = cls()
    return cls


def list_tasks() -> tuple[str, ...]:
    """The registered task names, in registration order (classify first)."""
    return tuple(_TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``; OptionError naming the known ones when it is unknown."""
    if name not in _TASKS:
        raise OptionError(f"unknown task {name!r}; choose one of: {', '.join(_TASKS)}")
    return _TASKS[name]


def head_choices() -> tuple[str, ...]:
    """Every ``--head`` value some task accepts, in registration order."""
    seen: dict[str, None] = {}
    for task in _TASKS.values():
        seen.update(dict.fromkeys(task.heads))
    return tuple(seen)
