"""``edgecnn train``: fit a registered architecture on a data set and write a run folder (host side).

Resumable: Keras ``BackupAndRestore`` keeps the state of an unfinished run in ``OUT/.backup``, and the epoch
policy's state (:mod:`edgecnn.train.epoch_policy`: early-stopping and plateau counters, learning rate) is kept
beside it; re-running the same command continues from the last finished epoch with the same counters. The best
model (lowest validation loss) is written atomically, a non-finite loss stops training with a clear error and
nothing non-finite is saved.

Scale-out (:mod:`edgecnn.train.cluster`, :mod:`edgecnn.train.distribute`): with no strategy (the default on one
CPU or GPU) this is plain ``model.fit``; ``one``/``mirrored`` run the same ``model.fit`` inside the strategy's
scope; ``multiworker`` runs the custom loop of :func:`edgecnn.train.distribute.train_multiworker`, where only the
chief writes the run folder. Both paths take their end-of-epoch decisions from the same
:class:`~edgecnn.train.epoch_policy.EpochPolicy`.

This module imports no TensorFlow at module level: :func:`train` checks the options, the cluster and the data
first, then starts TensorFlow quietly (:func:`edgecnn.tfimport.import_tensorflow`) and imports the Keras side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.atomic import write_json
from edgecnn.contract import normalisation_for_range
from edgecnn.errors import DataError, OutputError, TrainingError
from edgecnn.models.registry import create_model
from edgecnn.runtime.evaluate import map_shape
from edgecnn.tfimport import import_tensorflow
from edgecnn.train import run as runfmt
from edgecnn.train.cluster import Cluster, DistributeOptions, plan_cluster
from edgecnn.train.config import TrainConfig, resolve_config
from edgecnn.train.epoch_policy import EpochPolicy
from edgecnn.train.tasks import Task, get_task

__all__ = ["TrainConfig", "TrainResult", "TrainingError", "train"]  # TrainingError re-exported from edgecnn.errors

POLICY_STATE_FILE = "policy.json"  # in OUT/.backup: the epoch policy's state after each epoch


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: the run folder, the test metrics and how the run went."""

    run_dir: Path
    metrics: dict[str, Any]
    epochs_run: int
    resumed_from: int = 0
    already_done: bool = False
    data_summary: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# Options that do not change the trained model and may differ when a run is resumed.
_RESUME_FREE = {"epochs", "patience", "out", "cache_dir"}


def _check_resume(out: Path, config: TrainConfig) -> dict | None:
    path = out / runfmt.CONFIG_FILE
    if not path.is_file():
        return None
    old = json.loads(path.read_text(encoding="utf-8"))
    new = config.to_dict()
    defaults = TrainConfig("", "").to_dict()  # an option newer than the run's config.json had its default then
    diff = sorted(k for k in new if k not in _RESUME_FREE and old.get(k, defaults.get(k)) != new[k])
    if diff:
        raise TrainingError(
            f"{out} holds a run with different options ({', '.join(diff)}); use another --out or pass --overwrite"
        )
    return old


def train(
    config: TrainConfig,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
    verbose: int | str = "auto",
    dist: DistributeOptions | None = None,
    force: bool = False,
) -> TrainResult:
    """Train ``config.arch`` on ``config.data`` and write the run folder ``config.out``.

    ``config`` is resolved first (:func:`edgecnn.train.config.resolve_config`: the task's architecture, the
    architecture's input size). Re-running the same configuration resumes an interrupted run or, when the run is
    complete, returns its metrics without training again.

    Args:
        dist: how to spread training (:class:`edgecnn.train.cluster.DistributeOptions`); default: ``auto``.
            Under ``multiworker`` every worker runs this function; only the chief writes ``config.out``.
        force: train even when the data is under a floor of :mod:`edgecnn.train.sanity` (too few images per
            class); the problem is then a warning, kept in metrics.json like the others.
    """
    dist = dist or DistributeOptions()
    cluster = plan_cluster(dist)  # bad TF_CONFIG / --workers fail here, before any work
    config = resolve_config(config)  # a wrong --task/--arch/--head too
    return _train(config, get_task(config.task), overwrite, log, verbose, dist, cluster, force)


def _check_data(task: Task, data, log, force: bool) -> tuple[str, ...]:
    """Print the per-class counts and warnings; refuse data under a floor unless ``force``. Returns the warnings."""
    check = task.check_data(data)
    for line in check.counts:
        log(f"  {line}")
    if check.refusals and not force:
        raise DataError(f"{check.refusals[0]}; or pass --force to train anyway")
    warnings = check.refusals + check.warnings
    for w in warnings:
        log(f"warning: {w}")
    return warnings


def _train(config: TrainConfig, task: Task, overwrite: bool, log, verbose, dist: DistributeOptions,
           cluster: Cluster, force: bool) -> TrainResult:
    started = time.monotonic()
    out = Path(config.out)
    chief = cluster.is_chief
    # A non-chief worker never writes the run folder; under --overwrite the chief is deleting it, so the
    # non-chief does not look at what is there either.
    fresh_worker = overwrite and not chief
    if overwrite and out.exists() and chief:
        shutil.rmtree(out)
    if chief:
        try:
            out.mkdir(parents=True, exist_ok=True)
            probe = out / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    if not fresh_worker:
        _check_resume(out, config)
    if (not fresh_worker and (out / runfmt.MODEL_FILE).is_file() and (out / runfmt.METRICS_FILE).is_file()
            and not (out / ".backup").exists()):
        metrics = json.loads((out / runfmt.METRICS_FILE).read_text())
        return TrainResult(out, metrics, 0, already_done=True)

    data = task.load_data(config)
    log(data.summary)
    warnings = _check_data(task, data, log, force)
    asked = config
    if config.augment is None:  # the user did not say: the task picks what fits the data, and says so
        on, why = task.default_augment(data)
        config = dataclasses.replace(config, augment=on)
        log(f"augmentation: {why}")
    w, h = config.img_size
    mean, std = normalisation_for_range(config.input_range)
    contract = task.make_contract(config, data, h, w, mean, std)
    if chief:
        write_json(out / runfmt.SPLIT_FILE, {"task": config.task, "data": str(Path(config.data).resolve()), "splits": data.split_rows()})
        write_json(out / runfmt.CONFIG_FILE, asked.to_dict())  # as asked, so a re-run resumes
        contract.save(out / runfmt.CONTRACT_FILE)

    import_tensorflow()
    # The Keras side, imported only now: TensorFlow must start quietly, and after the checks above.
    import keras  # lazy: keras

    from edgecnn.train import distribute  # lazy: tensorflow
    from edgecnn.train.callbacks import HistoryWriter, PolicyCallback  # lazy: keras

    distribute.prepare_devices(dist.logical_cpus)  # before TensorFlow creates its devices
    strategy, cluster = distribute.make_strategy(cluster, dist)  # a multi-worker strategy must come first
    keras.utils.set_random_seed(config.seed)

    def build_model():
        kw = task.model_kwargs(config)
        shape = map_shape(contract)
        if shape is not None:  # a two-input (navigation) model: the map input's size comes from the contract
            kw["map_shape"] = shape
        return create_model(config.arch, (h, w, contract.channels), contract.num_outputs, **kw)

    if strategy is not None:
        log(f"strategy: {cluster.kind}, {strategy.num_replicas_in_sync} replica(s)"
            + (f" on {cluster.num_workers} workers (this is {'the chief' if chief else 'worker ' + str(cluster.task_index)})"
               if cluster.kind == "multiworker" else "")
            + f", global batch {config.batch * strategy.num_replicas_in_sync}")
    if cluster.kind == "multiworker":
        if map_shape(contract) is not None:
            raise TrainingError("--strategy multiworker does not train two-input (navigate) models yet; train "
                                "on one host (plain or --strategy mirrored)")
        return _finish_multiworker(strategy, cluster, task, data, contract, config, out, dist, build_model,
                                   log, started, warnings, resume=not fresh_worker)
    # --batch is per replica; under a strategy Keras splits each global batch across the replicas.
    fit_config = config if strategy is None else dataclasses.replace(config, batch=config.batch * strategy.num_replicas_in_sync)
    train_ds = task.dataset(data, "train", contract, fit_config, training=True)
    val_ds = task.dataset(data, "val", contract, fit_config, training=False)
    if strategy is not None:
        with strategy.scope():
            model = build_model()
            distribute.synchronise_batch_norm(model, True)
            task.compile(model, config)
    else:
        model = build_model()
        task.compile(model, config)

    backup = out / ".backup"
    history_path = out / runfmt.HISTORY_FILE
    resumed_from = _last_epoch(history_path) if backup.exists() else 0
    if resumed_from:
        log(f"resuming {out} after epoch {resumed_from}")
    policy = PolicyCallback(EpochPolicy(config.patience), config.lr, backup / POLICY_STATE_FILE, out / "best.keras",
                            out / ".best.json")
    # Order matters for resume: the policy state of epoch k is written before the backup of epoch k (so a
    # restored epoch always has its state), and the policy adds the epoch's learning rate to the logs that
    # HistoryWriter records.
    callbacks = [
        policy,
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
        HistoryWriter(history_path),
    ]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    if dist.dump_weights:
        np.savez(dist.dump_weights, *[np.asarray(v) for v in model.get_weights()])
    if policy.bad_epoch is not None:
        shutil.rmtree(backup, ignore_errors=True)  # never resume from non-finite weights
        raise TrainingError(
            f"loss became NaN/inf in epoch {policy.bad_epoch}; training stopped and no non-finite weights were "
            f"saved; lower --lr (now {config.lr}) or check the data"
        )
    best_path = out / "best.keras"
    if not best_path.is_file():
        raise TrainingError("no epoch produced a finite validation loss; nothing was saved")
    if strategy is not None:
        # The checkpoint was saved with batch-norm synchronisation on; save the final model as one device would.
        best = keras.saving.load_model(best_path, safe_mode=True, compile=False)
        distribute.save_plain(best, best_path)
    metrics = _finish(task, data, contract, config, out, warnings, log)
    if strategy is not None:
        metrics["strategy"] = cluster.kind
        metrics["replicas"] = int(strategy.num_replicas_in_sync)
        metrics["global_batch"] = fit_config.batch
        write_json(out / runfmt.METRICS_FILE, metrics)
    return TrainResult(
        out, metrics, metrics["epochs"] - resumed_from, resumed_from, data_summary=data.summary,
        seconds=time.monotonic() - started,
    )


def _finish(task: Task, data, contract, config: TrainConfig, out: Path, warnings: tuple[str, ...], log) -> dict[str, Any]:
    """Evaluate ``best.keras`` on the test split, then move it to ``model.keras`` and write ``metrics.json``
    (with ``warnings``: the data's, then the task's verdict on the test metrics)."""
    import keras  # lazy: keras

    best_path = out / "best.keras"
    history_path = out / runfmt.HISTORY_FILE
    best = keras.saving.load_model(best_path, safe_mode=True, compile=False)
    calibrate = getattr(task, "calibrate", None)  # a task may adjust the model on the validation split first
    adjusted = calibrate(best, data, contract, config) if calibrate else {}
    if adjusted:
        staged = out / ".best.calibrated.keras"
        best.save(staged)
        os.replace(staged, best_path)
        # reload: Keras traced predict() with the old layer settings, evaluating ``best`` again would use them
        best = keras.saving.load_model(best_path, safe_mode=True, compile=False)
        log("calibrated on the validation split: " + ", ".join(f"{k} {v:.4g}" for k, v in adjusted.items()))
    metrics = task.evaluate(best, data, contract, config)
    metrics.update(adjusted)
    metrics["params"] = int(best.count_params())
    metrics["epochs"] = _last_epoch(history_path)
    metrics["best_epoch"] = json.loads((out / ".best.json").read_text())["epoch"]
    verdict = task.verdict(metrics, data)
    for w in verdict:
        log(f"warning: {w}")
    metrics["warnings"] = [*warnings, *verdict]
    os.replace(best_path, out / runfmt.MODEL_FILE)
    write_json(out / runfmt.METRICS_FILE, metrics)
    (out / ".best.json").unlink(missing_ok=True)
    shutil.rmtree(out / ".backup", ignore_errors=True)
    return metrics


def _finish_multiworker(strategy, cluster: Cluster, task: Task, data, contract, config: TrainConfig, out: Path,
                        dist: DistributeOptions, build_model, log, started: float, warnings: tuple[str, ...],
                        resume: bool) -> TrainResult:
    """Run the multi-worker loop; the chief then evaluates and writes the model, the others just return."""
    from edgecnn.train import distribute  # lazy: tensorflow

    done = distribute.train_multiworker(strategy, cluster, task, data, contract, config, out, dist, build_model, log,
                                        resume=resume)
    resumed_from = done["resumed_from"]
    extra = {k: done[k] for k in ("replicas", "global_batch", "stopped")}
    if not cluster.is_chief:
        return TrainResult(out, {}, done["epochs"] - resumed_from, resumed_from, data_summary=data.summary,
                           seconds=time.monotonic() - started, extra={**extra, "chief": False, "task_index": cluster.task_index})
    if not (out / "best.keras").is_file():
        raise TrainingError("no epoch produced a finite validation loss; nothing was saved")
    metrics = _finish(task, data, contract, config, out, warnings, log)
    metrics.update(strategy="multiworker", replicas=done["replicas"], global_batch=done["global_batch"],
                   workers=cluster.num_workers)
    write_json(out / runfmt.METRICS_FILE, metrics)
    return TrainResult(out, metrics, metrics["epochs"] - resumed_from, resumed_from, data_summary=data.summary,
                       seconds=time.monotonic() - started, extra={**extra, "chief": True})


def _last_epoch(history_path: Path) -> int:
    if not history_path.is_file():
        return 0
    rows = json.loads(history_path.read_text()).get("epochs", [])
    return max((r["epoch"] for r in rows), default=0)
