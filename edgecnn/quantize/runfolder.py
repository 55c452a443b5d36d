"""Read a training run folder (``runs/NAME``) as the layout documented for ``edgecnn train``.

``runs/NAME/model.keras``, ``contract.json`` and ``split.json`` = ``{"task", "data", "splits": {"train": [...],
"val": [...], "test": [...]}}`` where each entry is ``[abs_path, label_int]`` (classify) or
``[abs_path, steering, throttle_or_null]`` (steer). Standard library only, so compare and the device side can read
a run's test split without TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.contract import Contract
from edgecnn.errors import DataError, ModelError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Item:
    """One labelled image of a run's split.

    Attributes:
        path: absolute image path.
        target: class index (classify) or steering in [-1, 1], positive = right (steer).
        throttle: throttle in [0, 1] for steer runs that record it, else None.
    """

    path: str
    target: float
    throttle: float | None = None


@dataclass(frozen=True)
class RunFolder:
    """A run folder: where its model is, its contract and its splits."""

    root: Path
    model_path: Path
    contract: Contract
    task: str
    splits: dict[str, tuple[Item, ...]] = field(default_factory=dict)
    data_root: str = ""


def is_run_folder(path: str | Path) -> bool:
    """True when ``path`` is a folder holding ``split.json`` and ``contract.json``."""
    p = Path(path)
    return p.is_dir() and (p / "split.json").is_file() and (p / "contract.json").is_file()


def read_splits(path: str | Path) -> tuple[str, dict[str, tuple[Item, ...]], str]:
    """``(task, {"train": items, "val": items, "test": items}, data_root)`` from a ``split.json`` file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        task = doc["task"]
        data_root = str(doc.get("data", ""))
        raw = doc["splits"]
        splits: dict[str, tuple[Item, ...]] = {}
        for name in SPLITS:
            items = []
            for entry in raw.get(name, []):
                if task == "steer":
                    thr = entry[2] if len(entry) > 2 else None
                    items.append(Item(str(entry[0]), float(entry[1]), None if thr is None else float(thr)))
                else:
                    items.append(Item(str(entry[0]), int(entry[1])))
            splits[name] = tuple(items)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{path} is not a valid split.json ({type(exc).__name__}: {exc}); re-run edgecnn train") from exc
    if task not in ("classify", "steer"):
        raise DataError(f"{path}: unknown task {task!r}")
    return task, splits, data_root


def read_run(path: str | Path) -> RunFolder:
    """Read a run folder, or a ``model.keras`` file whose folder holds ``contract.json`` (and ``split.json``).

    Raises ModelError when the model or contract is missing; the splits are empty when there is no split.json.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"run not found: {p}; pass a run folder (runs/NAME) or its model.keras")
    root, model_path = (p, p / "model.keras") if p.is_dir() else (p.parent, p)
    if p.is_dir() and (p / "saved_model.pb").exists():
        raise ModelError(f"{p} is a TensorFlow SavedModel folder; edgecnn needs a Keras 3 .keras file in a run folder "
                         "(save with model.save('model.keras'))")
    if p.is_dir() and not model_path.exists():
        others = sorted(x.name for x in p.iterdir() if x.suffix in (".h5", ".hdf5", ".keras"))
        hint = f" (found {', '.join(others)})" if others else ""
        raise ModelError(f"{p} has no model.keras{hint}; pass a run folder written by edgecnn train")
    contract = Contract.load(root / "contract.json")
    task, splits, data_root = (contract.task, {}, "")
    if (root / "split.json").is_file():
        task, splits, data_root = read_splits(root / "split.json")
    return RunFolder(root, model_path, contract, task, splits, data_root)


def read_test_split(path: str | Path) -> tuple[Item, ...]:
    """The test split of a run folder (never used for calibration); DataError when it is empty or missing."""
    run = read_run(path)
    items = run.splits.get("test", ())
    if not items:
        raise DataError(f"{run.root} has no test split (split.json missing or empty); re-run edgecnn train")
    return items
