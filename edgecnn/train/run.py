"""A run folder, as written by ``edgecnn train`` and read by every later stage. Standard library only.

Layout of ``runs/NAME/``:

* ``model.keras``: the best model (lowest validation loss), Keras 3 format;
* ``contract.json``: the model's :class:`~edgecnn.contract.Contract`;
* ``split.json``: ``{"task", "data", "splits": {"train"|"val"|"test": [[path, label], ...]}}``; for steering
  the entries are ``[path, steering, throttle_or_null]``;
* ``config.json``: the training options;
* ``history.json``: per-epoch metrics; ``metrics.json``: held-out test metrics;
* ``.backup/``: Keras BackupAndRestore state while training is unfinished (removed at the end).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.contract import Contract
from edgecnn.errors import ModelError

MODEL_FILE = "model.keras"
CONTRACT_FILE = "contract.json"
SPLIT_FILE = "split.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RunInfo:
    """A finished training run.

    Attributes:
        root: the run folder.
        model_path: ``root/model.keras``.
        contract: the model's contract.
        task: ``"classify"`` or ``"steer"``.
        splits: ``{"train"|"val"|"test": [(path, label), ...]}``; label is an int class index for classify,
            ``(steering, throttle_or_None)`` floats for steer.
        data: the data set root the run was trained on.
        metrics: the contents of ``metrics.json`` (empty when absent).
    """

    root: Path
    model_path: Path
    contract: Contract
    task: str
    splits: dict[str, list[tuple[str, Any]]]
    data: str
    metrics: dict[str, Any]


def load_run(run_dir: str | Path) -> RunInfo:
    """Read a run folder; ModelError saying what is missing when it is not a finished run."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ModelError(f"run folder not found: {root}; train one with `edgecnn train DATA --out {root}`")
    model_path = root / MODEL_FILE
    if not model_path.is_file():
        raise ModelError(f"{root} has no {MODEL_FILE}: training did not finish; re-run `edgecnn train` to resume")
    contract = Contract.load(root / CONTRACT_FILE)
    try:
        split = json.loads((root / SPLIT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{root / SPLIT_FILE} is missing or damaged: {exc}") from exc
    splits: dict[str, list[tuple[str, Any]]] = {}
    for name, rows in split.get("splits", {}).items():
        if split.get("task") == "steer":
            splits[name] = [(r[0], (float(r[1]), None if r[2] is None else float(r[2]))) for r in rows]
        else:
            splits[name] = [(r[0], int(r[1])) for r in rows]
    metrics: dict[str, Any] = {}
    if (root / METRICS_FILE).is_file():
        metrics = json.loads((root / METRICS_FILE).read_text(encoding="utf-8"))
    return RunInfo(root, model_path, contract, split.get("task", contract.task), splits, split.get("data", ""), metrics)
