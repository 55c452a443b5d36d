"""The end-of-epoch decisions of a training run, as a pure object over plain numbers (no TensorFlow).

Both training paths ask the same :class:`EpochPolicy`: the Keras ``model.fit`` path through
:class:`edgecnn.train.callbacks.PolicyCallback`, and the multi-worker loop of :mod:`edgecnn.train.distribute`
(with all-reduced losses, so every worker decides alike). After each epoch it says whether the validation loss
improved (save the best checkpoint), whether to halve the learning rate (reduce on plateau), and whether to stop
(early stopping, or a non-finite training loss). The rules are those of Keras' ``EarlyStopping(patience)`` and
``ReduceLROnPlateau(factor=0.5, min_delta=1e-4, patience=max(1, patience // 2))``, which this replaces.

Its state is a small frozen dataclass that goes to JSON and back, so a resumed run continues with the same
counters (Keras' ``BackupAndRestore`` restores the weights but not ``EarlyStopping``'s wait counter).

Example::

    policy = EpochPolicy(patience=2)
    state = policy.start(lr=1e-3)
    state, d = policy.end_epoch(state, loss=0.9, val_loss=0.5)   # d.improved: save best.keras
    state, d = policy.end_epoch(state, loss=0.8, val_loss=0.5)   # d.lr == 5e-4 (plateau)
    state, d = policy.end_epoch(state, loss=0.7, val_loss=0.6)   # d.stop, d.reason == "early stopping"
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

EARLY_STOP = "early stopping"
NON_FINITE = "non-finite loss"


@dataclass(frozen=True)
class PolicyState:
    """Where a run stands after ``epoch`` finished epochs.

    Attributes:
        epoch: finished epochs (0 before the first).
        best: lowest finite validation loss so far (``inf`` before any); best_epoch: its epoch (1-based, 0: none).
        wait: epochs since ``best`` last improved (early stopping's counter).
        plateau_best, plateau_wait: the plateau rule's own best (improvement by more than ``min_delta``) and
            counter.
        lr: learning rate for the next epoch.
        stopped: ``""`` while running, else why training stopped (:data:`EARLY_STOP`, :data:`NON_FINITE`).
    """

    epoch: int = 0
    best: float = math.inf
    best_epoch: int = 0
    wait: int = 0
    plateau_best: float = math.inf
    plateau_wait: int = 0
    lr: float = 0.0
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: infinities as ``None``."""
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyState:
        """Inverse of :meth:`to_dict`; TypeError/ValueError on a damaged dict."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) != names:
            raise ValueError(f"policy state keys {sorted(d)} != {sorted(names)}")
        values = dict(d)
        for k in ("best", "plateau_best"):
            values[k] = math.inf if values[k] is None else float(values[k])
        return cls(**values)


@dataclass(frozen=True)
class EpochDecision:
    """What to do after one epoch.

    Attributes:
        epoch: the epoch just finished (1-based).
        improved: the validation loss is a new finite best: save the best checkpoint.
        lr: learning rate for the next epoch; lr_reduced: it was just halved (plateau).
        stop: end training now; reason: why (:data:`EARLY_STOP` or :data:`NON_FINITE`), else ``""``.
    """

    epoch: int
    improved: bool
    lr: float
    lr_reduced: bool
    stop: bool
    reason: str = ""


@dataclass(frozen=True)
class EpochPolicy:
    """Best checkpoint, reduce-on-plateau, early stopping and the non-finite stop (see the module docstring).

    Attributes:
        patience: epochs without a better validation loss before stopping (Keras ``EarlyStopping``).
        factor: learning-rate multiplier on a plateau. min_delta: the plateau rule's least improvement.
    """

    patience: int
    factor: float = 0.5
    min_delta: float = 1e-4

    def __post_init__(self) -> None:
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0, got {self.patience}")

    @property
    def plateau_patience(self) -> int:
        """Epochs on a plateau before the learning rate is reduced: ``max(1, patience // 2)``."""
        return max(1, self.patience // 2)

    def start(self, lr: float) -> PolicyState:
        """The state before the first epoch, training at learning rate ``lr``."""
        return PolicyState(lr=float(lr))

    @staticmethod
    def batch_ok(loss: float) -> bool:
        """False for a non-finite batch loss: stop at once (the epoch then ends with a non-finite loss)."""
        return math.isfinite(float(loss))

    def end_epoch(self, state: PolicyState, loss: float, val_loss: float | None) -> tuple[PolicyState, EpochDecision]:
        """Decide after an epoch with mean training ``loss`` and validation loss ``val_loss`` (None: none).

        A non-finite ``loss`` stops (nothing saved); a non-finite or missing ``val_loss`` is never an
        improvement and counts toward both patiences.
        """
        epoch = state.epoch + 1
        if not math.isfinite(float(loss)):
            new = dataclasses.replace(state, epoch=epoch, stopped=NON_FINITE)
            return new, EpochDecision(epoch, False, state.lr, False, True, NON_FINITE)
        val = math.nan if val_loss is None else float(val_loss)
        improved = math.isfinite(val) and val < state.best
        # early stopping (Keras EarlyStopping, min_delta 0)
        best, best_epoch = (val, epoch) if improved else (state.best, state.best_epoch)
        wait = 0 if improved else state.wait + 1
        stop = not improved and wait >= self.patience and epoch > 1
        # reduce on plateau (Keras ReduceLROnPlateau, no cooldown, no minimum rate)
        lr, reduced = state.lr, False
        if math.isfinite(val) and val < state.plateau_best - self.min_delta:
            plateau_best, plateau_wait = val, 0
        else:
            plateau_best, plateau_wait = state.plateau_best, state.plateau_wait + 1
            if plateau_wait >= self.plateau_patience:
                lr, reduced, plateau_wait = state.lr * self.factor, True, 0
        reason = EARLY_STOP if stop else ""
        new = PolicyState(epoch, best, best_epoch, wait, plateau_best, plateau_wait, lr, reason)
        return new, EpochDecision(epoch, improved, lr, reduced, stop, reason)

    def replay(self, lr: float, losses: list[tuple[float, float | None]]) -> tuple[PolicyState, list[EpochDecision]]:
        """The state and decisions after epochs with these ``(loss, val_loss)`` pairs (stops where it would)."""
        state, decisions = self.start(lr), []
        for loss, val in losses:
            state, d = self.end_epoch(state, loss, val)
            decisions.append(d)
            if d.stop:
                break
        return state, decisions
