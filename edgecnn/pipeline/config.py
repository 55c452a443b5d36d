"""Pipeline options, from the command line and an optional TOML file (no TensorFlow).

The training options take their defaults from :class:`edgecnn.train.config.TrainConfig` (``DEFAULTS``), the
task names from the task registry and the default architecture and input size from the task and the
architecture registry, so ``edgecnn pipeline`` and ``edgecnn train`` cannot disagree.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.contract import RESIZE_METHODS
from edgecnn.data import roads
from edgecnn.errors import EdgecnnError, OptionError
from edgecnn.sizes import format_size
from edgecnn.train.config import DEFAULTS, default_arch, default_img_size, parse_crop
from edgecnn.train.tasks import list_tasks


@dataclass(frozen=True)
class PipelineConfig:
    """Every option of ``edgecnn pipeline``; a TOML file may set any of them (same names, ``-`` or ``_``).

    Attributes:
        task: ``classify`` or ``steer``. data: data set folder, or None for the built-in one.
        out: pipeline folder (default ``runs/<task>``). arch: architecture (default: the task's, compact /
        pilotnet). img_size: model input ``N`` or ``WIDTHxHEIGHT`` (default: the architecture's registered size).
        per_class, frames: size of the generated built-in data (shapes per class / road frames).
        per_road: road frames rendered per generated road (fewer = more varied scenes).
        augment: training-time augmentation (see ``edgecnn train --augment``); None: what fits the data.
        crop: ``"TOP,BOTTOM"`` rows removed before resizing (``edgecnn train --crop``); None: none.
        resize: how frames are shrunk to the input size (``edgecnn train --resize``), recorded in the contract.
        epochs, batch, seed, lr, patience: training. head, components: steering head.
        calib_count: calibration-set size. io: int8 model I/O type (``int8``/``uint8``).
        precisions: variants that compare builds. compare_runs, threads: latency settings.
        closed_loop: steering: roads to drive per variant in compare (0: off).
    """

    task: str = DEFAULTS["task"]
    data: str | None = None
    out: str | None = None
    arch: str | None = None
    img_size: str | None = None
    per_class: int = 400
    frames: int = roads.DEFAULT_FRAMES
    per_road: int = roads.DEFAULT_PER_ROAD
    augment: bool | None = DEFAULTS["augment"]
    crop: str | None = None
    resize: str = DEFAULTS["resize"]
    epochs: int = DEFAULTS["epochs"]
    batch: int = DEFAULTS["batch"]
    seed: int = DEFAULTS["seed"]
    lr: float = DEFAULTS["lr"]
    patience: int = DEFAULTS["patience"]
    head: str = DEFAULTS["head"]
    components: int = DEFAULTS["components"]
    calib_count: int = 300
    io: str = "int8"
    precisions: tuple[str, ...] = ("fp32", "fp16", "dynamic", "int8", "int16x8")
    compare_runs: int = 200
    threads: int = 1
    closed_loop: int = 0

    def __post_init__(self) -> None:
        if self.task not in list_tasks():
            raise OptionError(f"task must be one of {', '.join(list_tasks())}, got: {self.task!r}")
        if self.resize not in RESIZE_METHODS:
            raise OptionError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got: {self.resize!r}")
        parse_crop(self.crop)  # OptionError (one line) for anything but TOP,BOTTOM

    @property
    def resolved_out(self) -> str:
        return self.out or f"runs/{self.task}"

    @property
    def resolved_arch(self) -> str:
        return self.arch or default_arch(self.task)

    @property
    def resolved_img_size(self) -> str:
        return self.img_size or format_size(*default_img_size(self.resolved_arch))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["precisions"] = list(self.precisions)
        return d


def load_toml(path: str | Path) -> dict[str, Any]:
    """Options from a TOML file (top level, or a ``[pipeline]`` table); unknown keys are an error."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgecnnError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EdgecnnError(f"{p} is not a valid TOML file: {exc}") from exc
    data = data.get("pipeline", data)
    fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    out = {}
    for key, value in data.items():
        k = key.replace("-", "_")
        if k not in fields:
            raise EdgecnnError(f"{p}: unknown option {key!r}; known: {', '.join(sorted(fields))}")
        out[k] = tuple(value) if k == "precisions" else value
    return out


def make_config(toml: str | None, **cli: Any) -> PipelineConfig:
    """Defaults < TOML file < options given on the command line (``None`` means "not given")."""
    values = load_toml(toml) if toml else {}
    values.update({k: v for k, v in cli.items() if v is not None})
    try:
        return PipelineConfig(**values)
    except TypeError as exc:
        raise EdgecnnError(f"bad pipeline option: {exc}") from exc
