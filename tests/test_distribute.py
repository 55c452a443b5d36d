"""Scale-out training: strategies, TF_CONFIG, two real workers on 127.0.0.1, sharded/cached tf.data input."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_python

from edgecnn.train.cluster import DistributeOptions, plan_cluster
from edgecnn.train.epoch_policy import EARLY_STOP, EpochPolicy

pytestmark = pytest.mark.host

WORKER_TIMEOUT = 480  # seconds: a guard against a hung worker, not a speed test (about 60 s idle, 150+ s at load 16)


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _worker_cmd(data: Path, out: Path, workers: str, index: int, dump: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "edgecnn", "train", str(data), "--out", str(out), "--img-size", "32", "--batch", "8",
            "--strategy", "multiworker", "--workers", workers, "--worker-index", str(index),
            "--collective-timeout", "60", "--dump-weights", str(dump), *extra]


def _start_workers(data, out, tmp, *extra, dumps=None):
    ports = _free_ports(2)
    workers = ",".join(f"127.0.0.1:{p}" for p in ports)
    # TMPDIR: where the non-chief keeps its throw-away checkpoints, so the test can check they are deleted.
    env = {**os.environ, "TMPDIR": str(tmp)}
    dumps = dumps or [tmp / f"w{i}.npz" for i in range(2)]
    procs = [subprocess.Popen(_worker_cmd(data, out, workers, i, dumps[i], *extra), cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    return procs, dumps


def _wait_all(procs) -> list[tuple[int, str, str]]:
    results = []
    deadline = time.monotonic() + WORKER_TIMEOUT
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a worker did not finish in time")
        results.append((p.returncode, stdout, stderr))
    return results


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = np.load(a), np.load(b)
    return wa.files == wb.files and all(np.array_equal(wa[k], wb[k]) for k in wa.files)


def _keras_config(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


@pytest.mark.slow
def test_two_workers_train_with_identical_weights_and_stop_early_alike(tiny_shapes, tmp_path):
    """Two real workers on 127.0.0.1. A high learning rate and patience 1, so the validation loss soon fails to
    improve: both workers stop after the same epoch, with the same weights, where the epoch policy says
    (replayed on the chief's history). One run for both checks: a worker pair costs ~1.5 min on a loaded CI."""
    out, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    epochs = 8
    procs, dumps = _start_workers(tiny_shapes, out, tmp, "--epochs", str(epochs), "--patience", "1", "--lr", "0.02")
    (rc0, out0, err0), (rc1, out1, err1) = _wait_all(procs)
    assert rc0 == 0, err0[-3000:]
    assert rc1 == 0, err1[-3000:]
    assert "2 replica(s) on 2 workers (this is the chief), global batch 16" in err0
    assert "this is worker 1" in err1 and "the chief writes" in out1
    assert _same_weights(dumps[0], dumps[1])  # trainable weights and batch-norm statistics alike
    # only the chief wrote the run folder, and the non-chief's temporary checkpoints are gone
    for name in ("model.keras", "metrics.json", "history.json", "contract.json", "split.json"):
        assert (out / name).is_file(), name
    assert not (out / ".backup").exists() and not (out / "best.keras").exists()
    assert list(tmp.iterdir()) == [t for t in tmp.iterdir() if t.suffix == ".npz"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == "multiworker" and metrics["workers"] == 2 and metrics["replicas"] == 2
    assert metrics["global_batch"] == 16 and metrics["test_count"] == 10
    # early stopping, alike on both workers and as the policy decides
    rows = json.loads((out / "history.json").read_text())["epochs"]
    ran = len(rows)
    assert [r["epoch"] for r in rows] == list(range(1, ran + 1)) and ran < epochs, rows
    assert metrics["epochs"] == ran
    assert f"done after {ran} epoch(s)" in out1  # the other worker stopped after the same epoch
    state, decisions = EpochPolicy(1).replay(0.02, [(r["loss"], r["val_loss"]) for r in rows])
    assert len(decisions) == ran and decisions[-1].reason == EARLY_STOP
    assert [r["learning_rate"] for r in rows] == pytest.approx([0.02] + [d.lr for d in decisions[:-1]])
    assert metrics["best_epoch"] == state.best_epoch
    # the saved model is the plain one-device model (no synchronised batch norm in its config)
    layers = _keras_config(out / "model.keras")["config"]["layers"]
    assert all(not l["config"].get("synchronized", False) for l in layers)


def test_cluster_planning_needs_no_tensorflow():
    r = run_python("import edgecnn.train.cluster, edgecnn.train.epoch_policy, edgecnn.train.config; print('ok')")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.slow
def test_two_workers_resume_after_both_are_killed(tiny_shapes, tmp_path):
    out, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    args = ("--epochs", "4", "--patience", "100")
    procs, _ = _start_workers(tiny_shapes, out, tmp, *args)
    history = out / "history.json"
    deadline = time.monotonic() + WORKER_TIMEOUT
    done = 0
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        if (out / ".backup" / "state.json").is_file():
            done = json.loads((out / ".backup" / "state.json").read_text())["epoch"]
            if done >= 1:
                break
        time.sleep(0.05)
    assert all(p.poll() is None for p in procs), "training ended before it could be interrupted"
    for p in procs:
        os.kill(p.pid, signal.SIGKILL)
        p.communicate()
    assert not (out / "model.keras").exists()
    procs, dumps = _start_workers(tiny_shapes, out, tmp, *args)
    (rc0, _, err0), (rc1, _, err1) = _wait_all(procs)
    assert rc0 == 0, err0[-3000:]
    assert rc1 == 0, err1[-3000:]
    resumed = [int(e.split("after epoch ")[1].split()[0]) for e in (err0, err1)]
    assert resumed[0] == resumed[1] >= done  # both workers restored the chief's checkpoint of the same epoch
    assert [e["epoch"] for e in json.loads(history.read_text())["epochs"]] == list(range(1, 5))
    assert _same_weights(dumps[0], dumps[1])
    assert (out / "model.keras").is_file() and not (out / ".backup").exists()


@pytest.mark.parametrize("strategy, logical_cpus, replicas", [("mirrored", 2, 2), ("one", 0, 1)])
def test_mirrored_on_two_logical_cpus_and_one_device(cli, tiny_shapes, tmp_path, strategy, logical_cpus, replicas):
    out = tmp_path / "run"
    r = cli("train", tiny_shapes, "--out", out, "--img-size", "32", "--epochs", "2", "--batch", "8",
            "--strategy", strategy, "--logical-cpus", str(logical_cpus), "--dump-weights", tmp_path / "w.npz",
            timeout=200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"strategy: {strategy}, {replicas} replica(s), global batch {8 * replicas}" in r.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["strategy"] == strategy and metrics["replicas"] == replicas
    assert metrics["global_batch"] == 8 * replicas
    assert (out / "model.keras").is_file() and not (out / ".backup").exists()
    layers = _keras_config(out / "model.keras")["config"]["layers"]
    assert all(not l["config"].get("synchronized", False) for l in layers)
    weights = np.load(tmp_path / "w.npz")
    assert all(np.isfinite(weights[k]).all() for k in weights.files)


@pytest.mark.parametrize(
    "args, env, expect",
    [
        (["--strategy", "multiworker"], {}, "needs the cluster: set TF_CONFIG or pass --workers"),
        (["--workers", "127.0.0.1"], {}, "expected host:port, got: '127.0.0.1'"),
        (["--workers", "127.0.0.1:1,127.0.0.1:2"], {}, "--workers needs --worker-index"),
        (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "2"], {}, "--worker-index 2 is outside the 2 workers"),
        (["--workers", "127.0.0.1:1", "--worker-index", "0", "--strategy", "mirrored"], {}, "--workers is for --strategy multiworker"),
        (["--worker-index", "1"], {}, "--worker-index needs --workers"),
        ([], {"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
        ([], {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}'},
         "TF_CONFIG task index 3 is outside"),
        ([], {"TF_CONFIG": '{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}'},
         "edgecnn trains with chief/worker tasks only"),
    ],
)
def test_bad_cluster_is_one_clear_line(cli, tiny_shapes, tmp_path, args, env, expect):
    r = cli("train", tiny_shapes, "--out", tmp_path / "run", "--epochs", "1", *args, env=env)
    assert r.clean_error, (r.returncode, r.stderr)
    assert expect in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.startswith("Error:")]) == 1
    assert not (tmp_path / "run").exists()  # nothing written before the cluster was checked


def test_plan_cluster_roles():
    assert plan_cluster(DistributeOptions(), environ={}).kind == "auto"
    two = DistributeOptions(workers=("h1:1", "h2:2"), worker_index=1)
    plan = plan_cluster(two, environ={})
    assert plan.kind == "multiworker" and not plan.is_chief and plan.num_workers == 2
    tf_config = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "task": {"type": "worker", "index": 0}}
    plan = plan_cluster(DistributeOptions(), environ={"TF_CONFIG": json.dumps(tf_config)})
    assert plan.kind == "multiworker" and not plan.is_chief and plan.num_workers == 3  # the chief task is chief
    tf_config["task"] = {"type": "chief", "index": 0}
    assert plan_cluster(DistributeOptions(), environ={"TF_CONFIG": json.dumps(tf_config)}).is_chief
    # an explicit one-device strategy ignores a TF_CONFIG left in the environment
    assert plan_cluster(DistributeOptions(strategy="one"), environ={"TF_CONFIG": "{bad"}).kind == "one"


@pytest.fixture(scope="module")
def pipeline(tiny_shapes):
    from edgecnn.tfimport import import_tensorflow

    import_tensorflow()
    from edgecnn.contract import Contract
    from edgecnn.data import imagefolder
    from edgecnn.train import pipeline_data

    folder = imagefolder.scan(tiny_shapes)
    paths = [s.path for s in folder.samples]
    labels = np.array([s.label for s in folder.samples], np.int32)
    contract = Contract(task="classify", input_height=16, input_width=16, channels=3, color_order="RGB",
                        mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), resize="area", labels=folder.classes,
                        head="softmax")
    return pipeline_data, paths, labels, contract


def _images(ds) -> np.ndarray:
    return np.concatenate([x.numpy() for x, _ in ds])


def test_worker_shards_are_disjoint_and_cover_the_data(pipeline):
    pd, paths, labels, contract = pipeline
    # labels replaced by the file index, to see which files each shard read
    index = np.arange(len(paths), dtype=np.int32)
    seen = [np.concatenate([y.numpy() for _, y in pd.make_dataset(paths, index, contract, 7, shuffle=True,
                                                                   shard=(3, i), cache=None)]) for i in range(3)]
    assert sum(len(s) for s in seen) == len(paths)
    assert sorted(np.concatenate(seen).tolist()) == list(range(len(paths)))
    # streaming shuffles the file list each epoch (no buffer of decoded images) and still reads every file once
    ds = pd.make_dataset(paths, index, contract, 16, shuffle=True, seed=3, cache=None)
    epochs = [np.concatenate([y.numpy() for _, y in ds]) for _ in range(2)]
    assert all(sorted(e.tolist()) == list(range(len(paths))) for e in epochs)
    assert epochs[0].tolist() != epochs[1].tolist()
    # its length is known, so Keras counts an epoch's steps (no "Your input ran out of data" warning)
    assert int(ds.cardinality()) == -(-len(paths) // 16)


def test_disk_cache_on_request(pipeline, tmp_path):
    pd, paths, labels, contract = pipeline
    plain = _images(pd.make_dataset(paths, labels, contract, 32, cache=None))
    cache_dir = tmp_path / "cache"
    ds = pd.make_dataset(paths, labels, contract, 32, cache_dir=str(cache_dir))
    first, second = _images(ds), _images(ds)
    assert any(p.name.startswith("edgecnn-") for p in cache_dir.iterdir())  # the cache is on disk
    np.testing.assert_array_equal(first, plain)
    np.testing.assert_array_equal(second, plain)
    # another contract never reuses this cache
    import dataclasses

    other = dataclasses.replace(contract, input_height=8)
    assert pd.cache_prefix(cache_dir, paths, other, None) != pd.cache_prefix(cache_dir, paths, contract, None)


def test_train_with_cache_dir_and_fixed_repeat(pipeline, tmp_path):
    pd, paths, labels, contract = pipeline
    ds = pd.make_dataset(paths, labels, contract, 16, shuffle=True, repeat=True, drop_remainder=True, shard=(2, 1))
    batches = [x.shape[0] for x, _ in ds.take(20)]  # more than one pass: every batch is full
    assert batches == [16] * 20
