"""Keras callbacks for safe, resumable training (host side): the epoch policy and the history file."""

from __future__ import annotations

import json
from pathlib import Path

import keras

from edgecnn.atomic import atomic_path, write_json
from edgecnn.errors import TrainingError
from edgecnn.train.epoch_policy import (
    NON_FINITE,
    EpochDecision,
    EpochPolicy,
    PolicyState,
)

KEPT_STATES = 5  # policy states kept in the state file (a resumed run needs the one of its restored epoch)


def weights_finite(model) -> bool:
    """True when every weight of ``model`` is finite (nothing non-finite is ever saved)."""
    return all(bool(keras.ops.all(keras.ops.isfinite(w))) for w in model.weights)


def save_best(model, path: Path, state_path: Path, epoch: int, best: float) -> None:
    """Write ``model`` to ``path`` atomically, then ``state_path`` (``{"best", "epoch", "monitor"}``)."""
    with atomic_path(Path(path), suffix=".keras") as tmp:
        model.save(tmp)
    write_json(Path(state_path), {"best": float(best), "epoch": int(epoch), "monitor": "val_loss"})


class PolicyCallback(keras.callbacks.Callback):
    """Carry out :class:`~edgecnn.train.epoch_policy.EpochPolicy`'s decisions in ``model.fit``.

    Replaces ``ReduceLROnPlateau`` + ``EarlyStopping`` + a best checkpoint + a stop on a non-finite batch loss.
    After each epoch it asks the policy, saves ``best_path`` atomically when the validation loss improved (and
    the weights are finite), sets the learning rate, stops when told, adds ``learning_rate`` to the epoch's logs
    and writes the policy state of that epoch to ``state_path``. When ``model.fit`` resumes (after
    ``BackupAndRestore`` restored epoch ``k``) the first ``on_epoch_begin(k)`` restores the state saved after
    epoch ``k``, so the counters continue where they were. Put it before ``HistoryWriter``.

    Attributes:
        state: the current policy state. last: the last decision (None before the first epoch).
        bad_epoch: the 1-based epoch whose training loss became non-finite, else None.
    """

    def __init__(self, policy: EpochPolicy, lr: float, state_path: Path, best_path: Path, best_state_path: Path):
        super().__init__()
        self.policy = policy
        self.state_path, self.best_path, self.best_state_path = Path(state_path), Path(best_path), Path(best_state_path)
        self.state = policy.start(lr)
        self.last: EpochDecision | None = None
        self.bad_epoch: int | None = None
        self._begun = False
        self._epoch = 0

    def _saved_states(self) -> dict[str, dict]:
        if not self.state_path.is_file():
            return {}
        try:
            return dict(json.loads(self.state_path.read_text(encoding="utf-8"))["states"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch = epoch
        if self._begun:
            return
        self._begun = True
        if epoch == 0:
            return
        saved = self._saved_states().get(str(epoch))
        if saved is None:
            raise TrainingError(f"cannot resume after epoch {epoch}: {self.state_path} has no training state for it "
                                f"(a run from an older edgecnn?); pass --overwrite to start again")
        self.state = PolicyState.from_dict(saved)
        self.model.optimizer.learning_rate = self.state.lr

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not self.policy.batch_ok(float(loss)):
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs if logs is not None else {}
        used_lr = self.state.lr
        self.state, d = self.policy.end_epoch(self.state, float(logs.get("loss", float("nan"))), logs.get("val_loss"))
        self.last = d
        logs["learning_rate"] = float(used_lr)
        if d.reason == NON_FINITE:
            self.bad_epoch = d.epoch
        if d.improved and weights_finite(self.model):
            save_best(self.model, self.best_path, self.best_state_path, d.epoch, self.state.best)
        if d.lr_reduced:
            self.model.optimizer.learning_rate = d.lr
        states = self._saved_states()
        states[str(d.epoch)] = self.state.to_dict()
        keep = sorted(states, key=int)[-KEPT_STATES:]
        write_json(self.state_path, {"states": {k: states[k] for k in keep}})
        if d.stop:
            self.model.stop_training = True


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
