"""Scale-out training on tf.distribute: strategy choice, the cluster (TF_CONFIG), and the multi-worker loop.

Strategies (``edgecnn train --strategy``):

* ``auto``: multi-worker when a cluster is given (``TF_CONFIG`` or ``--workers``), mirrored over the GPUs when
  there are two or more, otherwise no strategy at all (plain ``model.fit``, exactly the single-process path);
* ``one``: ``OneDeviceStrategy`` on the first GPU (or the CPU);
* ``mirrored``: ``MirroredStrategy`` over the visible GPUs, or over the logical CPU devices when there is no GPU
  (``--logical-cpus N`` splits the CPU, mainly for tests);
* ``multiworker``: ``MultiWorkerMirroredStrategy`` across hosts, configured by ``TF_CONFIG`` or by ``--workers
  host:port,... --worker-index i``.

``--batch`` is the batch per replica; the global batch is ``batch x replicas``. Batch normalisation is
synchronised across replicas while training (``synchronized=True``), so every replica keeps the same moving
statistics and the model matches one trained on the global batch.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (``_maybe_symbolic_build``: "Attempt to
convert a value (PerReplica...) to a Tensor"), so the multi-worker path runs its own loop
(:func:`train_multiworker`): ``distribute_datasets_from_function`` with each worker reading only its shard of
the files, ``strategy.run`` + ``tf.nn.compute_average_loss`` + ``strategy.reduce``, and the same decisions as the
single-process callbacks (best checkpoint on validation loss, reduce-on-plateau, early stopping, stop on a
non-finite loss), taken from all-reduced numbers so that every worker decides alike. Only the chief writes the
run folder; the others save their checkpoints to a temporary folder and delete it (the standard Keras pattern).
Resume: the chief keeps ``tf.train.CheckpointManager`` checkpoints and a ``state.json`` in ``OUT/.backup``;
every worker restores from there, so ``OUT`` must be on a file system all workers see (one host, or NFS).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
DEFAULT_COLLECTIVE_TIMEOUT = 600.0


class ClusterError(EdgecnnError):
    """A bad strategy, TF_CONFIG or worker list."""


@dataclass(frozen=True)
class DistributeOptions:
    """How to spread training (``edgecnn train``'s scale-out options).

    Attributes:
        strategy: one of :data:`STRATEGIES`.
        workers: ``("host:port", ...)`` of every worker, chief first; empty to use ``TF_CONFIG``.
        worker_index: this process's index in ``workers``.
        logical_cpus: split the CPU into this many logical devices before TensorFlow starts (0 = leave it).
        dump_weights: write this worker's final weights to this ``.npz`` (tests compare workers with it).
        collective_timeout: seconds a worker waits for the others in one collective step before failing.
    """

    strategy: str = "auto"
    workers: tuple[str, ...] = ()
    worker_index: int | None = None
    logical_cpus: int = 0
    dump_weights: str | None = None
    collective_timeout: float = DEFAULT_COLLECTIVE_TIMEOUT


@dataclass(frozen=True)
class Cluster:
    """The resolved plan: which strategy, and this process's role.

    Attributes:
        kind: ``"none"`` (plain Keras), ``"one"``, ``"mirrored"`` or ``"multiworker"``; ``"auto"`` until
            :func:`make_strategy` has counted the GPUs.
        workers: worker addresses (multi-worker only).
        task_type: ``"chief"`` or ``"worker"`` (from TF_CONFIG). task_index: index within that type.
        tf_config: the TF_CONFIG to run with (multi-worker only).
    """

    kind: str
    workers: tuple[str, ...] = ()
    task_type: str = "worker"
    task_index: int = 0
    tf_config: Mapping[str, Any] | None = None

    @property
    def is_chief(self) -> bool:
        """The one process that writes the run folder (worker 0 when the cluster has no explicit chief)."""
        if self.kind != "multiworker" or not self.tf_config:
            return True
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and "chief" not in self.tf_config["cluster"]

    @property
    def num_workers(self) -> int:
        if not self.tf_config:
            return 1
        cluster = self.tf_config["cluster"]
        return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def _check_address(addr: str, where: str) -> str:
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"{where}: expected host:port, got: {addr!r}")
    return addr.strip()


def parse_workers(text: str) -> tuple[str, ...]:
    """``"10.0.0.1:2222,10.0.0.2:2222"`` -> a tuple of checked ``host:port`` strings."""
    workers = tuple(_check_address(a, "--workers") for a in text.split(",") if a.strip())
    if not workers:
        raise ClusterError("--workers is empty; give host:port of every worker, chief first")
    if len(set(workers)) != len(workers):
        raise ClusterError(f"--workers lists an address twice: {text!r}")
    return workers


def parse_tf_config(text: str) -> dict[str, Any]:
    """Validate a TF_CONFIG JSON string (``{"cluster": {"worker": [...]}, "task": {"type", "index"}}``)."""
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({exc.msg} at char {exc.pos}); unset it or fix it") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ClusterError('TF_CONFIG needs a "cluster" object, e.g. {"cluster": {"worker": ["h1:2222", "h2:2222"]}, '
                           '"task": {"type": "worker", "index": 0}}')
    cluster = config["cluster"]
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown:
        raise ClusterError(f"TF_CONFIG cluster has {', '.join(unknown)}; edgecnn trains with chief/worker tasks only")
    for kind, addrs in cluster.items():
        if not isinstance(addrs, list) or not addrs:
            raise ClusterError(f'TF_CONFIG cluster "{kind}" must be a non-empty list of host:port')
        for a in addrs:
            _check_address(str(a), f"TF_CONFIG cluster {kind}")
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG cluster has more than one chief")
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise ClusterError(f'TF_CONFIG "task" must name this process, e.g. {{"type": "worker", "index": 0}}; '
                           f"got: {task!r}")
    if not 0 <= task["index"] < len(cluster[task["type"]]):
        raise ClusterError(f"TF_CONFIG task index {task['index']} is outside the {len(cluster[task['type']])} "
                           f"{task['type']} address(es)")
    return config


def plan_cluster(options: DistributeOptions, environ: Mapping[str, str] | None = None) -> Cluster:
    """Check the options and TF_CONFIG (no TensorFlow) and decide the strategy where that needs no device count.

    Raises ClusterError with one line saying what is wrong.
    """
    env = os.environ if environ is None else environ
    if options.strategy not in STRATEGIES:
        raise ClusterError(f"unknown strategy {options.strategy!r}; choose {', '.join(STRATEGIES)}")
    if options.logical_cpus < 0:
        raise ClusterError(f"--logical-cpus must be >= 0, got: {options.logical_cpus}")
    if options.collective_timeout <= 0:
        raise ClusterError(f"the collective timeout must be > 0 seconds, got: {options.collective_timeout}")
    if options.workers:
        if options.strategy not in ("auto", "multiworker"):
            raise ClusterError(f"--workers is for --strategy multiworker, not {options.strategy}")
        if options.worker_index is None:
            raise ClusterError("--workers needs --worker-index (this process's position in the list, 0 = chief)")
        if not 0 <= options.worker_index < len(options.workers):
            raise ClusterError(f"--worker-index {options.worker_index} is outside the {len(options.workers)} workers")
        tf_config = {"cluster": {"worker": list(options.workers)},
                     "task": {"type": "worker", "index": options.worker_index}}
    elif options.worker_index is not None:
        raise ClusterError("--worker-index needs --workers host:port,...")
    elif env.get("TF_CONFIG", "").strip() and options.strategy in ("auto", "multiworker"):
        tf_config = parse_tf_config(env["TF_CONFIG"])
    elif options.strategy == "multiworker":
        raise ClusterError("--strategy multiworker needs the cluster: set TF_CONFIG or pass --workers "
                           "host:port,... --worker-index i")
    else:
        return Cluster(kind=options.strategy)
    cluster = tf_config["cluster"]
    workers = tuple(cluster.get("chief", [])) + tuple(cluster.get("worker", []))
    return Cluster("multiworker", workers, tf_config["task"]["type"], tf_config["task"]["index"], tf_config)


def prepare_devices(logical_cpus: int) -> None:
    """Split the first CPU into ``logical_cpus`` logical devices. Must run before TensorFlow creates its devices
    (before the first op), which is why ``edgecnn train`` calls it right after importing TensorFlow."""
    if logical_cpus <= 1:
        return
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
    except RuntimeError as exc:  # TensorFlow already started
        raise ClusterError(f"--logical-cpus must be applied before TensorFlow starts: {exc}") from None


def make_strategy(cluster: Cluster, options: DistributeOptions):
    """Create the ``tf.distribute`` strategy (or ``None`` for plain Keras) and return ``(strategy, cluster)``
    with ``cluster.kind`` resolved. A multi-worker strategy must be the first thing TensorFlow does."""
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
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
    from edgecnn.atomic import atomic_path

    synchronise_batch_norm(model, False)
    try:
        with atomic_path(Path(path), suffix=".keras") as tmp:
            model.save(tmp)
    finally:
        synchronise_batch_norm(model, True)


# ----------------------------------------------------------------------------------------------------------------
# The multi-worker training loop


@dataclass
class _LoopState:
    """What a resumed multi-worker run must know (``OUT/.backup/state.json``); mirrors the Keras callbacks."""

    epoch: int = 0
    best: float = math.inf  # best validation loss (AtomicBestCheckpoint / EarlyStopping)
    wait: int = 0  # epochs without a better validation loss (EarlyStopping)
    plateau_best: float = math.inf  # ReduceLROnPlateau's own best (with min_delta)
    plateau_wait: int = 0
    lr: float = 0.0
    checkpoint: str = ""


def train_multiworker(strategy, cluster: Cluster, task, data, contract, config, out: Path, options: DistributeOptions,
                      build_model: Callable[[], Any], log: Callable[[str], None], resume: bool = True) -> dict[str, Any]:
    """Train under ``MultiWorkerMirroredStrategy`` with a custom loop; see the module docstring.

    ``resume=False`` ignores ``OUT/.backup`` (a non-chief under ``--overwrite``: the chief has deleted it).

    Returns ``{"resumed_from", "epochs", "stopped", "replicas", "global_batch"}``. Only the chief writes in ``out``:
    ``history.json``, ``best.keras`` + ``.best.json`` and ``.backup/``. Raises TrainingError on a non-finite loss.
    """
    import keras
    import tensorflow as tf

    from edgecnn.train import run as runfmt
    from edgecnn.train.callbacks import HistoryWriter
    from edgecnn.train.pipeline_data import make_dataset
    from edgecnn.train.trainer import TrainingError

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
    state = _LoopState(lr=float(config.lr))
    state_path = backup / "state.json"
    if resume and state_path.is_file():
        try:
            state = _LoopState(**json.loads(state_path.read_text(encoding="utf-8")))
            checkpoint.restore(str(backup / state.checkpoint)).assert_existing_objects_matched()
        except (ValueError, TypeError, AssertionError, tf.errors.OpError) as exc:
            raise TrainingError(f"cannot resume from {backup} ({str(exc).splitlines()[0][:200]}); "
                                f"pass --overwrite to start again") from None
        optimizer.learning_rate.assign(state.lr)
        log(f"resuming {out} after epoch {state.epoch}")
    resumed_from = state.epoch
    history = HistoryWriter(out / runfmt.HISTORY_FILE) if chief else None
    plateau_patience = max(1, config.patience // 2)
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
            state.epoch += 1
            if not math.isfinite(logs["loss"]):
                if chief:
                    shutil.rmtree(backup, ignore_errors=True)  # never resume from non-finite weights
                raise TrainingError(
                    f"loss became NaN/inf in epoch {state.epoch}; training stopped and no non-finite weights were "
                    f"saved; lower --lr (now {config.lr}) or check the data"
                )
            log(f"epoch {state.epoch}/{config.epochs}  " + "  ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            improved = math.isfinite(logs["val_loss"]) and logs["val_loss"] < state.best
            if improved:
                state.best, state.wait = logs["val_loss"], 0
                if chief:
                    save_plain(model, out / "best.keras")
                    from edgecnn.atomic import write_json

                    write_json(out / ".best.json", {"best": state.best, "epoch": state.epoch, "monitor": "val_loss"})
            else:
                state.wait += 1
            # ReduceLROnPlateau(factor=0.5, min_delta=1e-4) as in the single-process run
            if logs["val_loss"] < state.plateau_best - 1e-4:
                state.plateau_best, state.plateau_wait = logs["val_loss"], 0
            else:
                state.plateau_wait += 1
                if state.plateau_wait >= plateau_patience:
                    state.lr *= 0.5
                    optimizer.learning_rate.assign(state.lr)
                    state.plateau_wait = 0
            if history is not None:
                history.on_epoch_end(state.epoch - 1, logs)
            saved_path = manager.save()
            state.checkpoint = Path(saved_path).name
            if chief:
                from edgecnn.atomic import write_json

                write_json(state_path, state.__dict__)
            if state.wait >= config.patience:
                stopped = "early stopping"
                break
        if options.dump_weights:
            np.savez(options.dump_weights, *[np.asarray(w) for w in model.get_weights()])
    finally:
        if not chief:
            shutil.rmtree(own_dir, ignore_errors=True)
    return {"resumed_from": resumed_from, "epochs": state.epoch, "stopped": stopped, "replicas": replicas,
            "global_batch": global_batch}
