"""The epoch policy (best checkpoint, reduce-on-plateau, early stop, NaN stop): plain numbers first, then the
Keras ``model.fit`` path carrying it out, including a resume that keeps the counters."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from edgecnn.train.epoch_policy import EARLY_STOP, NON_FINITE, EpochPolicy, PolicyState


def _run(policy: EpochPolicy, vals, lr=1.0, loss=1.0):
    return policy.replay(lr, [(loss, v) for v in vals])


def test_improvement_saves_and_resets_the_counters():
    policy = EpochPolicy(patience=3)
    state, ds = _run(policy, [1.0, 0.8, 0.9, 0.7])
    assert [d.improved for d in ds] == [True, True, False, True]
    assert state.best == 0.7 and state.best_epoch == 4 and state.wait == 0 and not any(d.stop for d in ds)


def test_plateau_halves_the_rate_after_half_the_patience():
    policy = EpochPolicy(patience=4)
    assert policy.plateau_patience == 2
    _, ds = _run(policy, [1.0, 1.0, 1.0, 1.0, 1.0], lr=0.1)
    assert [d.lr_reduced for d in ds] == [False, False, True, False, True]
    assert [d.lr for d in ds] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    # an improvement smaller than min_delta (1e-4) is a new best but still a plateau
    _, ds = _run(EpochPolicy(patience=2), [1.0, 1.0 - 5e-5, 1.0 - 9e-5], lr=0.1)
    assert [d.improved for d in ds] == [True, True, True]
    assert [d.lr_reduced for d in ds] == [False, True, True] and not any(d.stop for d in ds)
    assert EpochPolicy(patience=1).plateau_patience == 1 and EpochPolicy(patience=0).plateau_patience == 1


def test_early_stop_after_patience_epochs_without_a_better_loss():
    state, ds = _run(EpochPolicy(patience=2), [1.0, 0.9, 0.95, 0.96, 0.5])
    assert len(ds) == 4 and ds[-1].stop and ds[-1].reason == EARLY_STOP
    assert state.stopped == EARLY_STOP and state.best_epoch == 2 and state.wait == 2
    # patience 0 never stops after the first epoch (as Keras), but stops at the first worse epoch after it
    state, ds = _run(EpochPolicy(patience=0), [1.0, 0.9, 0.95])
    assert [d.stop for d in ds] == [False, False, True]


def test_non_finite_training_loss_stops_and_never_saves():
    policy = EpochPolicy(patience=5)
    state, d = policy.end_epoch(policy.start(1e-3), loss=math.nan, val_loss=0.5)
    assert d.stop and d.reason == NON_FINITE and not d.improved and state.stopped == NON_FINITE
    state, d = policy.end_epoch(policy.start(1e-3), loss=math.inf, val_loss=0.5)
    assert d.stop and d.reason == NON_FINITE
    assert not policy.batch_ok(float("nan")) and not policy.batch_ok(float("-inf")) and policy.batch_ok(3.0)


def test_non_finite_validation_loss_is_never_an_improvement():
    state, ds = _run(EpochPolicy(patience=2), [math.nan, 1.0, math.inf, math.nan])
    assert [d.improved for d in ds] == [False, True, False, False]
    assert ds[-1].stop and ds[-1].reason == EARLY_STOP and state.best == 1.0
    state, ds = _run(EpochPolicy(patience=2), [None, None, None])
    assert not any(d.improved for d in ds) and ds[-1].stop


def test_state_survives_json_and_a_resumed_run_decides_alike():
    rng = random.Random(3)
    vals = [round(rng.uniform(0.5, 1.0), 2) for _ in range(30)]
    policy = EpochPolicy(patience=4)
    _, whole = _run(policy, vals, lr=0.01)
    for k in range(1, len(whole)):
        state, first = _run(policy, vals[:k], lr=0.01)
        state = PolicyState.from_dict(json.loads(json.dumps(state.to_dict())))
        rest = []
        for v in vals[k:]:
            state, d = policy.end_epoch(state, 1.0, v)
            rest.append(d)
            if d.stop:
                break
        assert first + rest == whole, k
    with pytest.raises(ValueError):
        PolicyState.from_dict({"epoch": 1})


# ---- against Keras' own callbacks, and the Keras model.fit path -------------------------------------------

@pytest.fixture(scope="module")
def keras():
    from edgecnn.tfimport import import_tensorflow

    import_tensorflow()
    import keras

    return keras


class _Optimizer:
    def __init__(self, lr):
        self.learning_rate = lr


class _Model:
    def __init__(self, lr):
        self.optimizer = _Optimizer(lr)
        self.stop_training = False


@pytest.mark.host
@pytest.mark.parametrize("seed", range(6))
def test_policy_matches_keras_early_stopping_and_reduce_on_plateau(keras, seed):
    """The policy replaces EarlyStopping + ReduceLROnPlateau: same stop epoch and learning rates as they give."""
    rng = random.Random(seed)
    patience = rng.choice([1, 2, 3, 5])
    vals = [round(rng.uniform(0.2, 1.0), 1) for _ in range(40)]  # coarse values: many plateaus and ties
    model = _Model(0.01)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2))
    for cb in (stop, plateau):
        cb.set_model(model)
        cb.on_train_begin()
    keras_lrs, keras_epochs = [], 0
    for epoch, v in enumerate(vals):
        keras_epochs = epoch + 1
        for cb in (plateau, stop):
            cb.on_epoch_end(epoch, {"val_loss": v, "loss": 1.0})
        keras_lrs.append(float(model.optimizer.learning_rate))
        if model.stop_training:
            break
    _, ds = _run(EpochPolicy(patience), vals, lr=0.01)
    assert len(ds) == keras_epochs
    assert [d.lr for d in ds] == pytest.approx(keras_lrs, rel=1e-6)


def _tiny_fit_data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    return x, y


def _tiny_model(keras, lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model


def _callbacks(keras, tmp_path, patience, lr, *extra):
    from edgecnn.train.callbacks import HistoryWriter, PolicyCallback

    policy = PolicyCallback(EpochPolicy(patience), lr, tmp_path / "backup" / "policy.json", tmp_path / "best.keras",
                            tmp_path / "best.json")
    return policy, [policy, keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False),
                    HistoryWriter(tmp_path / "history.json"), *extra]


def _history(tmp_path):
    return json.loads((tmp_path / "history.json").read_text())["epochs"]


@pytest.mark.host
def test_keras_fit_follows_the_policy_on_a_plateau(keras, tmp_path):
    # lr 1e-20: no weight moves, so the validation loss is exactly the same every epoch (a perfect plateau)
    x, y = _tiny_fit_data()
    model = _tiny_model(keras, 1e-20)
    policy, cbs = _callbacks(keras, tmp_path, patience=4, lr=1e-20)
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=20, batch_size=8, callbacks=cbs, verbose=0)
    rows = _history(tmp_path)
    expected, decisions = EpochPolicy(4).replay(1e-20, [(r["loss"], r["val_loss"]) for r in rows])
    assert len(rows) == len(decisions) == 5 and decisions[-1].reason == EARLY_STOP  # stopped at epoch 5, not 20
    assert [r["learning_rate"] for r in rows] == pytest.approx([1e-20, 1e-20, 1e-20, 5e-21, 5e-21])
    assert float(model.optimizer.learning_rate) == pytest.approx(2.5e-21)  # halved again after epoch 5
    assert policy.state == expected
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 1 and (tmp_path / "best.keras").is_file()


@pytest.mark.host
def test_keras_fit_stops_on_a_nan_loss_and_saves_nothing(keras, tmp_path):
    x, y = _tiny_fit_data()
    y[5] = np.nan  # the first batch's loss is NaN
    model = _tiny_model(keras, 1e-3)
    policy, cbs = _callbacks(keras, tmp_path, patience=4, lr=1e-3)
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=5, batch_size=8, callbacks=cbs, verbose=0)
    assert policy.bad_epoch == 1 and policy.last.reason == NON_FINITE
    assert len(_history(tmp_path)) == 1 and not (tmp_path / "best.keras").exists()


@pytest.mark.host
def test_keras_resume_keeps_the_early_stopping_counter(keras, tmp_path):
    """Interrupted after epoch 3 of a plateau, the resumed fit still stops at epoch 5 (Keras' own EarlyStopping
    would start counting again and run to epoch 8)."""

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    x, y = _tiny_fit_data()
    model = _tiny_model(keras, 1e-20)
    _, cbs = _callbacks(keras, tmp_path, 4, 1e-20, Interrupt())
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=20, batch_size=8, callbacks=cbs, verbose=0)
    assert len(_history(tmp_path)) == 3
    model = _tiny_model(keras, 1e-20)  # a new process: fresh model and callbacks, the same folders
    policy, cbs = _callbacks(keras, tmp_path, 4, 1e-20)
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=20, batch_size=8, callbacks=cbs, verbose=0)
    rows = _history(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and policy.state.stopped == EARLY_STOP
    assert [r["learning_rate"] for r in rows] == pytest.approx([1e-20, 1e-20, 1e-20, 5e-21, 5e-21])
