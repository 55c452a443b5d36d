"""Keras callbacks for safe, resumable training (host side)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import keras

from edgecnn.atomic import atomic_path, write_json


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Keep the model with the lowest finite ``monitor`` value at ``path``, written atomically.

    The best value is kept in ``state_path`` so that a resumed run (after kill -9) does not overwrite a better
    checkpoint from before the interruption. Non-finite values are never saved.
    """

    def __init__(self, path: Path, state_path: Path, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.state_path, self.monitor = Path(path), Path(state_path), monitor
        self.best = math.inf
        if self.state_path.is_file():
            try:
                self.best = float(json.loads(self.state_path.read_text())["best"])
            except (ValueError, KeyError):
                self.best = math.inf

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value) or value >= self.best:
            return
        if not all(bool(keras.ops.all(keras.ops.isfinite(w))) for w in self.model.weights):
            return
        with atomic_path(self.path, suffix=".keras") as tmp:
            self.model.save(tmp)
        self.best = float(value)
        write_json(self.state_path, {"best": self.best, "epoch": epoch + 1, "monitor": self.monitor})


class HistoryWriter(keras.callbacks.Callback):
    """Append each epoch's logs to ``history.json`` (atomically), so history survives interruptions."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self.rows: list[dict] = []
        if self.path.is_file():
            try:
                self.rows = json.loads(self.path.read_text())["epochs"]
            except (ValueError, KeyError):
                self.rows = []

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.rows = [r for r in self.rows if r["epoch"] < epoch + 1] + [row]
        write_json(self.path, {"epochs": self.rows})


class StopOnNonFinite(keras.callbacks.Callback):
    """Stop at the first non-finite batch loss and remember where, so the trainer can say so clearly."""

    def __init__(self):
        super().__init__()
        self.bad_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad_epoch = self._epoch + 1
            self.model.stop_training = True
