"""Cluster planning for scale-out training: the strategy names, ``--workers``/``TF_CONFIG`` parsing and this
process's role. Pure: standard library only, no TensorFlow, so bad options fail before TensorFlow starts and the
CLI can list the strategies in ``--help``.

Strategies (``edgecnn train --strategy``):

* ``auto``: multi-worker when a cluster is given (``TF_CONFIG`` or ``--workers``), mirrored over the GPUs when
  there are two or more, otherwise no strategy at all (plain ``model.fit``, exactly the single-process path);
* ``one``: ``OneDeviceStrategy`` on the first GPU (or the CPU);
* ``mirrored``: ``MirroredStrategy`` over the visible GPUs, or over the logical CPU devices when there is no GPU
  (``--logical-cpus N`` splits the CPU, mainly for tests);
* ``multiworker``: ``MultiWorkerMirroredStrategy`` across hosts, configured by ``TF_CONFIG`` or by ``--workers
  host:port,... --worker-index i``.

The strategies themselves and the multi-worker loop are in :mod:`edgecnn.train.distribute`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgecnn.errors import ClusterError

__all__ = [
    "DEFAULT_COLLECTIVE_TIMEOUT",
    "STRATEGIES",
    "Cluster",
    "ClusterError",
    "DistributeOptions",
    "parse_tf_config",
    "parse_workers",
    "plan_cluster",
]

STRATEGIES = ("auto", "one", "mirrored", "multiworker")
DEFAULT_COLLECTIVE_TIMEOUT = 600.0


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
            :func:`edgecnn.train.distribute.make_strategy` has counted the GPUs.
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
