"""The options of one training run, :class:`TrainConfig`: the one place their defaults are written.

``edgecnn train``'s Click options and the pipeline's :class:`~edgecnn.pipeline.config.PipelineConfig` take their
defaults from :data:`DEFAULTS` (built from the dataclass fields), and their choices from the registries (tasks,
heads, architectures) and :data:`INPUT_RANGE_CHOICES`. :func:`resolve_config` fills in what depends on the task
and the architecture: the task's default architecture and the architecture's registered input size.
No TensorFlow: ``edgecnn train --help`` imports this module.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.contract import COLOR_ORDERS, INPUT_RANGES, RESIZE_METHODS
from edgecnn.data.navigation import JUNCTION_LABELS
from edgecnn.errors import OptionError
from edgecnn.models.registry import get_spec
from edgecnn.sizes import format_size
from edgecnn.train.tasks import get_task, head_choices

# Input ranges a model is trained with; "0,255" exists for imported models only.
INPUT_RANGE_CHOICES: tuple[str, ...] = tuple(r for r in ("0,1", "-1,1") if r in INPUT_RANGES)


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (all of ``edgecnn train``'s options).

    Attributes:
        data: data set folder. out: run folder. task: a registered task (``classify``, ``steer``).
        arch: registry name; None: the task's ``default_arch``.
        img_size: model input (width, height) in pixels; None: the architecture's registered ``default_size``.
        epochs, batch, seed, lr: as usual (``batch`` per replica, ``lr`` for Adam).
        patience: early-stopping patience in epochs (on validation loss); the learning rate halves after
            ``max(1, patience // 2)`` epochs on a plateau. val, test: split shares (fractions in [0, 1)).
        augment: photometric (classification) or steering-aware (steering) augmentation; None (the default)
            lets the task pick what fits the data (:meth:`edgecnn.train.tasks.base.Task.default_augment`).
        input_range: pixel normalisation, ``"0,1"`` or ``"-1,1"``. color_order: ``RGB`` or ``BGR``.
        head, components, throttle: steering head options; a task with one head (``navigate``: gmm) takes it
            when ``head`` is left at its default.
        routed: ``navigate`` only: the map has the route channel (default); False (``--unrouted``) = roads only.
        junction_labels: ``navigate`` only, what a junction frame is labelled with (one of
            :data:`edgecnn.data.navigation.JUNCTION_LABELS`): ``"route"`` the route's branch, ``"branches"`` every
            branch on the shared approach (unrouted models; data with ``branch_steering``), ``"auto"`` (default)
            ``branches`` where it applies, else ``route``.
        dropout: ``navigate`` only: dropout after navnet's first two dense layers, in [0, 1); None: the task's
            default (:data:`edgecnn.train.tasks.navigate.DROPOUT`).
        cache_dir: cache preprocessed images on disk under this folder (data sets larger than memory); it does
            not change the model, so a run may resume with another one.
        crop: ``(top, bottom)`` rows removed from every frame before resizing (``--crop 40,0``: a Donkey Car
            tub's sky), in rows of the data's frames; recorded in the contract (``Contract.crop``). ``()``: none.
        resize: how frames are shrunk to the input size, one of :data:`edgecnn.contract.RESIZE_METHODS`;
            recorded in the contract.
    """

    data: str
    out: str
    arch: str | None = None
    task: str = "classify"
    img_size: tuple[int, int] | None = None
    epochs: int = 30
    batch: int = 32
    seed: int = 0
    lr: float = 1e-3
    patience: int = 5
    val: float = 0.1
    test: float = 0.1
    augment: bool | None = None
    input_range: str = "0,1"
    color_order: str = "RGB"
    head: str = "regression"
    components: int = 3
    throttle: bool = False
    cache_dir: str | None = None
    routed: bool = True
    junction_labels: str = "auto"
    dropout: float | None = None
    crop: tuple[int, ...] = ()
    resize: str = "area"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size) if self.img_size else None
        d["crop"] = list(self.crop)
        d["data"] = str(Path(self.data).resolve())
        d["out"] = str(Path(self.out).resolve())
        d["cache_dir"] = str(Path(self.cache_dir).resolve()) if self.cache_dir else None
        return d


DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)
                            if f.default is not dataclasses.MISSING}


def parse_crop(text: str | None) -> tuple[int, ...]:
    """``"TOP,BOTTOM"`` (``"40,0"``) -> ``(40, 0)``; None or ``""`` -> ``()``. OptionError (one line) for anything
    but two whole numbers >= 0."""
    if not text:
        return ()
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        raise OptionError(f"--crop expects TOP,BOTTOM rows, e.g. 40,0; got: {text!r}")
    return (int(parts[0]), int(parts[1]))


def default_arch(task: str) -> str:
    """The architecture ``task`` trains when none is given."""
    return get_task(task).default_arch


def default_img_size(arch: str) -> tuple[int, int]:
    """``(width, height)`` the architecture ``arch`` was registered with (its ``default_size`` is H, W)."""
    h, w = get_spec(arch).default_size
    return w, h


def resolve_config(config: TrainConfig) -> TrainConfig:
    """``config`` with ``arch`` and ``img_size`` filled in from the task and the registry, checked.

    Raises OptionError for an unknown task, architecture or head, an architecture not meant for the task, or an
    option out of range.
    """
    task = get_task(config.task)
    arch = config.arch or task.default_arch
    spec = get_spec(arch)  # fails fast on a wrong --arch, before touching data
    if config.task not in spec.tasks:
        raise OptionError(f"architecture {arch!r} is for {', '.join(spec.tasks)}, not {config.task}; "
                          f"try --arch {task.default_arch}")
    head = config.head
    if len(task.heads) == 1 and head == DEFAULTS["head"]:
        head = task.heads[0]  # the task's only head, when the user left --head at its default
    if not config.routed and config.task != "navigate":
        raise OptionError(f"--unrouted applies to --task navigate only, not {config.task}")
    if config.junction_labels not in JUNCTION_LABELS:
        raise OptionError(f"--junction-labels must be one of {', '.join(JUNCTION_LABELS)}, got: "
                          f"{config.junction_labels!r}")
    if config.junction_labels != "auto" and config.task != "navigate":
        raise OptionError(f"--junction-labels applies to --task navigate only, not {config.task}")
    if config.dropout is not None and config.task != "navigate":
        raise OptionError(f"--dropout applies to --task navigate only, not {config.task}")
    if config.dropout is not None and not 0.0 <= config.dropout < 1.0:
        raise OptionError(f"--dropout must be in [0, 1), got: {config.dropout}")
    if config.junction_labels == "branches" and config.routed:
        raise OptionError("--junction-labels branches is for an unrouted model (add --unrouted): a routed model "
                          "sees the route, so it learns the route's branch only")
    config = dataclasses.replace(config, head=head)
    if task.heads and config.head not in task.heads:
        raise OptionError(f"--head {config.head} is not a {config.task} head; choose one of: {', '.join(task.heads)}")
    if config.head not in head_choices():
        raise OptionError(f"unknown head {config.head!r}; choose one of: {', '.join(head_choices())}")
    if config.epochs < 1 or config.batch < 1 or config.lr <= 0:
        raise OptionError("--epochs and --batch must be >= 1 and --lr > 0")
    if config.patience < 0:
        raise OptionError(f"--patience must be >= 0, got: {config.patience}")
    if config.input_range not in INPUT_RANGE_CHOICES:
        raise OptionError(f"--input-range must be one of {', '.join(INPUT_RANGE_CHOICES)}, got: {config.input_range!r}")
    if config.color_order not in COLOR_ORDERS:
        raise OptionError(f"colour order must be one of {', '.join(COLOR_ORDERS)}, got: {config.color_order!r}")
    if config.resize not in RESIZE_METHODS:
        raise OptionError(f"--resize must be one of {', '.join(RESIZE_METHODS)}, got: {config.resize!r}")
    crop = tuple(config.crop)
    if crop and (len(crop) != 2 or any(isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in crop)):
        raise OptionError(f"--crop expects TOP,BOTTOM rows >= 0, e.g. 40,0; got: {config.crop!r}")
    size = tuple(config.img_size) if config.img_size else default_img_size(arch)
    min_h, min_w = spec.min_size
    if int(size[0]) < min_w or int(size[1]) < min_h:
        own = format_size(*default_img_size(arch))
        raise OptionError(f"--img-size {size[0]}x{size[1]} is too small for {arch}: its unpadded convolutions need "
                          f"at least {min_w}x{min_h} (WIDTHxHEIGHT; its own size is {own})")
    return dataclasses.replace(config, arch=arch, img_size=(int(size[0]), int(size[1])),
                               crop=() if crop == (0, 0) else crop)
