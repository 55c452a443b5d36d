"""Scale-out training on tf.distribute (host side): the strategies and the multi-worker loop.

The cluster plan (strategy names, ``--workers``/``TF_CONFIG``, this process's role) is pure and lives in
:mod:`edgecnn.train.cluster`; this module creates the strategy it asks for and runs the multi-worker loop. Import
it only after :func:`edgecnn.tfimport.import_tensorflow` (it imports TensorFlow and Keras at module level).

``--batch`` is the batch per replica; the global batch is ``batch x replicas``. Batch normalisation is
synchronised across replicas while training (``synchronized=True``), so every replica keeps the same moving
statistics and the model matches one trained on the global batch.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (``_maybe_symbolic_build``: "Attempt to
convert a value (PerReplica...) to a Tensor"), so the multi-worker path runs its own loop
(:func:`train_multiworker`): ``distribute_datasets_from_function`` with each worker reading only its shard of
the files, ``strategy.run`` + ``tf.nn.compute_average_loss`` + ``strategy.reduce``, and the decisions of the same
:class:`~edgecnn.train.epoch_policy.EpochPolicy` as the single-process path (best checkpoint on validation loss,
reduce-on-plateau, early stopping, stop on a non-finite loss), taken from all-reduced numbers so that every
worker decides alike. Only the chief writes the run folder; the others save their checkpoints to a temporary
folder and delete it (the standard Keras pattern). Resume: the chief keeps ``tf.train.CheckpointManager``
checkpoints and a ``state.json`` (epoch, checkpoint name, policy state) in ``OUT/.backup``; every worker restores
from there, so ``OUT`` must be on a file system all workers see (one host, or NFS).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from edgecnn.atomic import atomic_path, write_json
from edgecnn.errors import ClusterError, TrainingError
from edgecnn.train import run as runfmt
from edgecnn.train.callbacks import HistoryWriter
from edgecnn.train.cluster import Cluster, DistributeOptions
from edgecnn.train.epoch_policy import NON_FINITE, EpochPolicy, PolicyState
from edgecnn.train.pipeline_data import make_dataset


def prepare_devices(logical_cpus: int) -> None:
    """Split the first CPU into ``logical_cpus`` logical devices. Must run before TensorFlow creates its devices
    (before the first op), which is why ``edgecnn train`` calls it right after importing TensorFlow."""
    if logical_cpus <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError as exc:  # TensorFlow already started
        raise ClusterError(f"--logical-cpus must be applied before TensorFlow starts: {exc}") from None


def make_strategy(cluster: Cluster, options: DistributeOptions):
    """Create the ``tf.distribute`` strategy (or ``None`` for plain Keras) and return ``(strategy, cluster)``
    with ``cluster.kind`` resolved. A multi-worker strategy must be the first thing TensorFlow does."""
    kind = cluster.kind
    # Physical devices only: listing logical ones would start TensorFlow's runtime, after which collective ops
    # (multi-worker) and logical CPUs can no longer be configured.
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "auto":
        kind = "mirrored" if len(gpus) >= 2 else "none"
    cluster = Cluster(kind, cluster.workers, cluster.task_type, cluster.task_index, cluster.tf_config)
    if kind == "none":
        return None, cluster
    if kind == "one":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0"), cluster
    if kind == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy(), cluster
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus), cluster
    os.environ["TF_CONFIG"] = json.dumps(cluster.tf_config)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    communication = tf.distribute.experimental.CommunicationOptions(timeout_seconds=options.collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver,
                                                     communication_options=communication), cluster


def synchronise_batch_norm(model, on: bool) -> None:
    """Batch statistics across replicas (``on``) or per replica (the saved model's setting, off)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if hasattr(layer, "synchronized") and type(layer).__name__ == "BatchNormalization":
            layer.synchronized = on


def save_plain(model, path: Path) -> None:
    """Save ``model`` atomically with batch-norm synchronisation off, so the file is the same as a one-device
    run's."""
    synchronise_batch_norm(model, False)
    try:
        with atomic_path(Path(path), suffix=".keras") as tmp:
            model.save(tmp)
    finally:
        synchronise_batch_norm(model, True)


# The multi-worker training loop


def train_multiworker(strategy, cluster: Cluster, task, data, contract, config, out: Path, options: DistributeOptions,
                      build_model: Callable[[], Any], log: Callable[[str], None], resume: bool = True) -> dict[str, Any]:
    """Train under ``MultiWorkerMirroredStrategy`` with a custom loop; see the module docstring.

    ``resume=False`` ignores ``OUT/.backup`` (a non-chief under ``--overwrite``: the chief has deleted it).

    Returns ``{"resumed_from", "epochs", "stopped", "replicas", "global_batch"}``. Only the chief writes in ``out``:
    ``history.json``, ``best.keras`` + ``.best.json`` and ``.backup/``. Raises TrainingError on a non-finite loss.
    """
    chief = cluster.is_chief
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch * replicas
    train_paths, train_targets = task.arrays(data, "train", config)
    val_paths, val_targets = task.arrays(data, "val", config)
    steps = max(1, math.ceil(len(train_paths) / global_batch))
    val_steps = max(1, math.ceil(len(val_paths) / global_batch))
    augment = task.augment(contract, config)  # built outside the strategy scope: its state is per worker

    def train_fn(ctx: tf.distribute.InputContext):
        return make_dataset(
            train_paths, train_targets, contract, ctx.get_per_replica_batch_size(global_batch), shuffle=True,
            seed=config.seed + ctx.input_pipeline_id, augment=augment, shard=(ctx.num_input_pipelines, ctx.input_pipeline_id),
            repeat=True, drop_remainder=True, cache_dir=config.cache_dir,
        )

    def val_fn(ctx: tf.distribute.InputContext):
        # Every worker runs the same number of steps: its shard is padded to val_steps full batches, and the
        # padding carries weight 0.
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        index, num = ctx.input_pipeline_id, ctx.num_input_pipelines
        own = list(range(index, len(val_paths), num))
        source = own or [0]  # a worker with no validation image still runs the steps, with weight 0
        total = val_steps * per_replica * max(1, replicas // num)
        take = np.asarray(source)[np.arange(total) % len(source)]
        weights = (np.arange(total) < len(own)).astype(np.float32)
        ds = make_dataset([val_paths[i] for i in take], val_targets[take], contract, per_replica,
                          drop_remainder=True)
        w = tf.data.Dataset.from_tensor_slices(weights).batch(per_replica, drop_remainder=True)
        return tf.data.Dataset.zip((ds, w)).map(lambda xy, wt: (xy[0], xy[1], wt))

    with strategy.scope():
        model = build_model()
        synchronise_batch_norm(model, True)
        task.compile(model, config)
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)  # its slots must exist before a checkpoint is restored
        loss_fn = keras.losses.get(model.loss) if isinstance(model.loss, str) else model.loss
    classify = config.task == "classify"

    train_iter = iter(strategy.distribute_datasets_from_function(train_fn))
    val_dist = strategy.distribute_datasets_from_function(val_fn)

    def replica_train(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            per_example = tf.reshape(loss_fn(y, pred), [-1])
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = _correct(y, pred) if classify else tf.zeros([])
        return tf.reduce_sum(per_example), correct

    def replica_val(x, y, wt):
        pred = model(x, training=False)
        per_example = tf.reshape(loss_fn(y, pred), [-1])
        correct = _correct(y, pred, wt) if classify else tf.zeros([])
        return tf.reduce_sum(per_example * wt), correct, tf.reduce_sum(wt)

    def _correct(y, pred, wt=None):
        hit = tf.cast(tf.equal(tf.cast(tf.reshape(y, [-1]), tf.int64), tf.argmax(pred, axis=-1)), tf.float32)
        return tf.reduce_sum(hit if wt is None else hit * wt)

    @tf.function
    def train_epoch(iterator):
        total = tf.constant(0.0)
        correct = tf.constant(0.0)
        for _ in tf.range(steps):
            x, y = next(iterator)
            s, c = strategy.run(replica_train, args=(x, y))
            total += strategy.reduce("SUM", s, axis=None)
            correct += strategy.reduce("SUM", c, axis=None)
        return total, correct

    @tf.function
    def val_step(x, y, wt):
        s, c, n = strategy.run(replica_val, args=(x, y, wt))
        return (strategy.reduce("SUM", s, axis=None), strategy.reduce("SUM", c, axis=None),
                strategy.reduce("SUM", n, axis=None))

    # Checkpoints: the chief's go to OUT/.backup; the others write to a temporary folder they delete (saving
    # may need every worker's participation, so all of them save).
    backup = out / ".backup"
    own_dir = backup if chief else Path(tempfile.mkdtemp(prefix=f"edgecnn-worker{cluster.task_index}-"))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    # Two kept, so that state.json (written after each save) always names a checkpoint that still exists.
    manager = tf.train.CheckpointManager(checkpoint, str(own_dir), max_to_keep=2)
    policy = EpochPolicy(config.patience)
    state = policy.start(config.lr)
    saved_checkpoint = ""
    state_path = backup / "state.json"
    if resume and state_path.is_file():
        try:
            doc = json.loads(state_path.read_text(encoding="utf-8"))
            state, saved_checkpoint = PolicyState.from_dict(doc["policy"]), str(doc["checkpoint"])
            checkpoint.restore(str(backup / saved_checkpoint)).assert_existing_objects_matched()
        except (ValueError, TypeError, KeyError, AssertionError, tf.errors.OpError) as exc:
            raise TrainingError(f"cannot resume from {backup} ({str(exc).splitlines()[0][:200]}); "
                                f"pass --overwrite to start again") from None
        optimizer.learning_rate.assign(state.lr)
        log(f"resuming {out} after epoch {state.epoch}")
    resumed_from = state.epoch
    history = HistoryWriter(out / runfmt.HISTORY_FILE) if chief else None
    stopped = "epochs"
    try:
        while state.epoch < config.epochs:
            total, correct = train_epoch(train_iter)
            seen = steps * global_batch
            logs = {"loss": float(total) / seen}
            if classify:
                logs["accuracy"] = float(correct) / seen
            vs = vc = vn = 0.0
            for x, y, wt in val_dist:
                s, c, n = val_step(x, y, wt)
                vs, vc, vn = vs + float(s), vc + float(c), vn + float(n)
            logs["val_loss"] = vs / max(vn, 1.0)
            if classify:
                logs["val_accuracy"] = vc / max(vn, 1.0)
            logs["learning_rate"] = float(state.lr)
            state, decision = policy.end_epoch(state, logs["loss"], logs["val_loss"])
            if decision.reason == NON_FINITE:
                if chief:
                    shutil.rmtree(backup, ignore_errors=True)  # never resume from non-finite weights
                raise TrainingError(
                    f"loss became NaN/inf in epoch {state.epoch}; training stopped and no non-finite weights were "
                    f"saved; lower --lr (now {config.lr}) or check the data"
                )
            log(f"epoch {state.epoch}/{config.epochs}  " + "  ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if decision.improved and chief:
                save_plain(model, out / "best.keras")
                write_json(out / ".best.json", {"best": state.best, "epoch": state.epoch, "monitor": "val_loss"})
            if decision.lr_reduced:
                optimizer.learning_rate.assign(decision.lr)
            if history is not None:
                history.on_epoch_end(state.epoch - 1, logs)
            saved_path = manager.save()
            if chief:
                write_json(state_path, {"epoch": state.epoch, "checkpoint": Path(saved_path).name,
                                        "policy": state.to_dict()})
            if decision.stop:
                stopped = decision.reason
                break
        if options.dump_weights:
            np.savez(options.dump_weights, *[np.asarray(w) for w in model.get_weights()])
    finally:
        if not chief:
            shutil.rmtree(own_dir, ignore_errors=True)
    return {"resumed_from": resumed_from, "epochs": state.epoch, "stopped": stopped, "replicas": replicas,
            "global_batch": global_batch}
