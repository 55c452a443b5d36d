"""A run folder, as written by ``edgecnn train`` and read by every later stage. No TensorFlow.

Layout of ``runs/NAME/``:

* ``model.keras``: the best model (lowest validation loss), Keras 3 format;
* ``contract.json``: the model's :class:`~edgecnn.contract.Contract`;
* ``split.json``: ``{"task", "data", "splits": {"train"|"val"|"test": [[path, label], ...]}}``; for steering
  the entries are ``[path, steering, throttle_or_null]``, for navigation ``[path, steering, map_path, junction,
  branch, options, to_turn, branch_steering]`` (the last three may be absent);
* ``config.json``: the training options;
* ``history.json``: per-epoch metrics; ``metrics.json``: held-out test metrics;
* ``.backup/``: resume state while training is unfinished (removed at the end): Keras BackupAndRestore's files
  and ``policy.json`` (the epoch policy's counters per epoch), or, multi-worker, checkpoints and ``state.json``.

:func:`load_run` is the one reader of this layout (calibrate, quantize, export, compare and the pipeline use it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.contract import Contract
from edgecnn.errors import DataError, ModelError
from edgecnn.junction import ROAD, JunctionLabel
from edgecnn.train.tasks import list_tasks

MODEL_FILE = "model.keras"
CONTRACT_FILE = "contract.json"
SPLIT_FILE = "split.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One labelled image of a run's split.

    Attributes:
        path: absolute image path.
        target: class index (classify) or steering in [-1, 1], positive = right (steer).
        throttle: throttle in [-1, 1] for steer runs that record it, else None.
        map: navigate runs: the frame's map raster PNG (absolute path), else None.
        junction: navigate runs: the frame's junction annotation (:class:`~edgecnn.junction.JunctionLabel`,
            kind ``""`` on plain road); other runs: plain road.
    """

    path: str
    target: float
    throttle: float | None = None
    map: str | None = None
    junction: JunctionLabel = ROAD


@dataclass(frozen=True)
class RunInfo:
    """A finished training run.

    Attributes:
        root: the run folder.
        model_path: ``root/model.keras`` (or the ``.keras`` file that was given).
        contract: the model's contract.
        task: ``"classify"`` or ``"steer"``.
        splits: ``{"train"|"val"|"test": (Item, ...)}``; empty when the folder has no split.json.
        data: the data set root the run was trained on ("" when unknown).
        metrics: the contents of ``metrics.json`` (empty when absent).
    """

    root: Path
    model_path: Path
    contract: Contract
    task: str
    splits: dict[str, tuple[Item, ...]]
    data: str
    metrics: dict[str, Any]


def is_run_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``split.json`` and ``contract.json``."""
    p = Path(path)
    return p.is_dir() and (p / SPLIT_FILE).is_file() and (p / CONTRACT_FILE).is_file()


def _read_splits(path: Path) -> tuple[str, dict[str, tuple[Item, ...]], str]:
    """``(task, {"train"|"val"|"test": items}, data root)`` from a ``split.json``; DataError when damaged."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        task = doc["task"]
        splits: dict[str, tuple[Item, ...]] = {}
        for name in SPLITS:
            rows = doc["splits"].get(name, [])
            if task == "navigate":
                splits[name] = tuple(Item(str(r[0]), float(r[1]), None, str(r[2]), JunctionLabel.from_cells(r[3:]))
                                     for r in rows)
            elif task == "steer":
                splits[name] = tuple(Item(str(r[0]), float(r[1]), None if len(r) < 3 or r[2] is None else float(r[2]))
                                     for r in rows)
            else:
                splits[name] = tuple(Item(str(r[0]), int(r[1])) for r in rows)
        data = str(doc.get("data", ""))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DataError(f"{path} is not a valid split.json ({type(exc).__name__}: {exc}); re-run edgecnn train") from exc
    if task not in list_tasks():
        raise DataError(f"{path}: unknown task {task!r}; expected one of {', '.join(list_tasks())}")
    return task, splits, data


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder, or a ``.keras`` file whose folder holds ``contract.json`` (and usually ``split.json``).

    The splits are empty when there is no split.json (a bare model and its contract can still be quantized).
    Raises ModelError saying what is missing when it is not a run (a SavedModel folder, a folder without
    ``model.keras``), DataError when its split.json is damaged.
    """
    p = Path(run_dir)
    if not p.exists():
        raise ModelError(f"run not found: {p}; pass a run folder (runs/NAME, made by `edgecnn train DATA --out "
                         f"runs/NAME`) or its model.keras")
    root, model_path = (p, p / MODEL_FILE) if p.is_dir() else (p.parent, p)
    if p.is_dir() and (p / "saved_model.pb").exists():
        raise ModelError(f"{p} is a TensorFlow SavedModel folder; edgecnn needs a Keras 3 .keras file in a run folder "
                         "(save with model.save('model.keras'))")
    if not model_path.is_file():
        others = sorted(x.name for x in root.iterdir() if x.suffix in (".h5", ".hdf5", ".keras"))
        hint = f" (found {', '.join(others)})" if others else ""
        raise ModelError(f"{root} has no {MODEL_FILE}{hint}: training did not finish (re-run `edgecnn train` to "
                         "resume) or this is not a run folder")
    contract = Contract.load(root / CONTRACT_FILE)
    task, splits, data = contract.task, {}, ""
    if (root / SPLIT_FILE).is_file():
        task, splits, data = _read_splits(root / SPLIT_FILE)
    metrics: dict[str, Any] = {}
    if (root / METRICS_FILE).is_file():
        try:
            metrics = json.loads((root / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{root / METRICS_FILE} is damaged ({exc}); re-run edgecnn train") from exc
    return RunInfo(root, model_path, contract, task, splits, data, metrics)
