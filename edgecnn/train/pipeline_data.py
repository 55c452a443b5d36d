"""Training input through tf.data, wrapping the one numpy/OpenCV preprocessing (host side).

Files are decoded in parallel by ``tf.numpy_function`` over :func:`edgecnn.preprocess.prepare` (OpenCV releases
the GIL while decoding), batched and prefetched. Small data sets are cached in memory after the first epoch;
large ones are streamed from disk (or cached to a file on request), so memory does not grow with the data set.

Streaming and the disk cache (``--cache-dir``, :class:`DiskCache`) keep memory flat: the *order of the files* is
shuffled (8 bytes per image) before decoding, so no shuffle buffer of decoded images is held, and the disk cache
reads fixed-size records back by index. Under multi-worker training every worker reads only its own shard of the
file list (``shard=(num_workers, index)``), before anything is decoded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edgecnn.atomic import write_json
from edgecnn.contract import Contract
from edgecnn.preprocess import load_image, prepare
from edgecnn.runtime.evaluate import load_map_input

# Above this many bytes of preprocessed tensors the data set is streamed rather than cached in memory.
MEMORY_CACHE_LIMIT = 1 << 30


def cache_prefix(cache_dir: str | Path, paths: Sequence[str], contract: Contract, shard: tuple[int, int] | None) -> str:
    """File prefix of the disk cache for this file list, shard and contract.

    The key covers everything that changes the cached tensors (files, input size, colour order, normalisation),
    so a cache is never reused for a different preprocessing.
    """
    h = hashlib.sha1()
    h.update(contract.to_json().encode("utf-8"))
    h.update(json.dumps(shard).encode("utf-8"))
    for p in paths:
        h.update(str(p).encode("utf-8") + b"\0")
    name = f"edgecnn-{h.hexdigest()[:16]}"
    if shard:
        name += f"-shard{shard[1]}of{shard[0]}"
    return str(Path(cache_dir) / name)


def load_prepared(path: str, contract: Contract) -> np.ndarray:
    """Image file -> ``float32 h x w x c`` model input (the same function the device uses)."""
    return prepare(load_image(path), contract)


def make_dataset(
    paths: Sequence[str],
    targets: np.ndarray,
    contract: Contract,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    augment: Callable | None = None,
    cache: str | None = "auto",
    shard: tuple[int, int] | None = None,
    repeat: bool = False,
    drop_remainder: bool = False,
    cache_dir: str | None = None,
):
    """A batched, prefetched ``tf.data.Dataset`` of ``(float32 N x h x w x c, targets)``.

    Args:
        paths: image files.
        targets: ``int32 N`` class indexes or ``float32 N x T`` regression targets.
        contract: the model's input contract (size, colour order, normalisation).
        batch_size: batch size.
        shuffle: reshuffle every epoch (training).
        seed: shuffle seed.
        augment: optional ``fn(image, target) -> (image, target)`` in TensorFlow ops, applied after caching.
        cache: ``"auto"`` (a disk cache under ``cache_dir`` when given, else memory when small, else stream),
            ``None`` (stream), or a file path prefix to cache on disk.
        shard: ``(num_shards, index)``: keep only every ``num_shards``-th file starting at ``index`` (one worker's
            share), chosen before decoding.
        repeat: repeat forever (the caller counts steps; multi-worker training needs equal step counts).
        drop_remainder: only full batches.
        cache_dir: with ``cache="auto"``, cache the preprocessed images in files under this folder (data sets
            larger than memory).
    """
    import tensorflow as tf  # lazy: tensorflow

    h, w, c = contract.input_height, contract.input_width, contract.channels
    all_paths = paths
    # Python strings in an object array: a fixed-width unicode array would cost 4 bytes x the longest path each.
    paths = np.array([str(p) for p in paths], dtype=object)
    targets = np.asarray(targets)
    if shard:
        # This worker's share (the same elements as Dataset.shard), chosen before anything is decoded.
        num, index = shard
        paths, targets = paths[index::num], targets[index::num]
    n = len(paths)
    if cache == "auto":
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            cache = cache_prefix(cache_dir, all_paths, contract, shard)
        elif n * h * w * c * 4 <= MEMORY_CACHE_LIMIT:
            cache = "memory"
        else:
            cache = None

    if cache == "memory":
        def _load(path):
            return load_prepared(path.decode("utf-8"), contract)

        def _map(path, target):
            image = tf.numpy_function(_load, [path], tf.float32, stateful=False)
            image.set_shape((h, w, c))
            return image, target

        ds = tf.data.Dataset.from_tensor_slices((paths, targets))
        ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
        if shuffle:
            ds = ds.shuffle(min(n, 10_000), seed=seed, reshuffle_each_iteration=True)
    else:
        # Streaming or a disk cache: elements are file *indexes* (8 bytes each, shuffled as one array per
        # epoch), decoded -- or read back from the cache -- in parallel. Memory does not grow with the data set.
        disk = DiskCache(cache, n, (h, w, c)) if cache else None

        # The file name is looked up in Python by index: the list already exists, so the pipeline adds no copy
        # of it (a tf.string constant would cost about 100 bytes per file).
        def _load_index(i):
            path = paths[int(i)]
            if disk is not None:
                return disk.get(int(i), lambda: load_prepared(path, contract))
            return load_prepared(path, contract)

        targets_t = tf.constant(targets)

        def _map_index(i):
            image = tf.numpy_function(_load_index, [i], tf.float32, stateful=disk is not None)
            image.set_shape((h, w, c))
            return image, tf.gather(targets_t, i)

        ds = _file_order(n, shuffle, seed).map(_map_index, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _file_order(n: int, shuffle: bool, seed: int):
    """A ``tf.data.Dataset`` of int64 file indexes ``0..n-1``: in order, or in a new random order every epoch
    (every iteration of the data set).

    The order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(n)``: deterministic for a seed,
    and held as one array (8 bytes per file) instead of a shuffle buffer (hundreds of bytes per element).
    """

    import tensorflow as tf  # lazy: tensorflow

    if not shuffle:
        return tf.data.Dataset.range(n)
    epochs = itertools.count()

    def order():
        yield np.random.default_rng([seed, next(epochs)]).permutation(n).astype(np.int64)

    # A generator's length is unknown to tf.data; stating it lets Keras count the steps of an epoch (without it
    # Keras warns "Your input ran out of data" at the end of every first epoch).
    ds = tf.data.Dataset.from_generator(order, output_signature=tf.TensorSpec([n], tf.int64)).unbatch()
    return ds.apply(tf.data.experimental.assert_cardinality(n))


class DiskCache:
    """Preprocessed images in one file of fixed-size ``float32`` records (``PREFIX.f32``), record ``i`` = file ``i``.

    The first pass decodes each image and writes its record (``pwrite`` at its own offset, so parallel decoders
    never share a buffer); later passes read records back with ``pread``. Nothing is held in memory but one byte
    per image saying whether its record is written. ``PREFIX.done`` marks a complete cache, so an interrupted
    first pass is rebuilt next time, never read half-written.
    """

    def __init__(self, prefix: str | Path, n: int, shape: tuple[int, int, int]):

        self.shape = tuple(shape)
        self.record = int(np.prod(shape)) * 4
        self.n = n
        self.data_path = Path(f"{prefix}.f32")
        self.done_path = Path(f"{prefix}.done")
        expected = {"n": n, "shape": list(self.shape), "dtype": "float32"}
        complete = False
        if self.done_path.is_file() and self.data_path.is_file():
            try:
                complete = json.loads(self.done_path.read_text()) == expected
            except ValueError:
                complete = False
            complete = complete and self.data_path.stat().st_size == n * self.record
        if not complete:
            self.done_path.unlink(missing_ok=True)
        self._expected = expected
        self._fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT | (0 if complete else os.O_TRUNC), 0o644)
        if not complete:
            os.ftruncate(self._fd, n * self.record)
        self._written = bytearray(b"\x01" * n if complete else n)
        self._count = n if complete else 0
        self._lock = threading.Lock()

    def get(self, i: int, load: Callable[[], np.ndarray]) -> np.ndarray:
        """Record ``i`` as ``float32 h x w x c``; ``load()`` makes it when it is not cached yet."""

        if self._written[i]:
            data = os.pread(self._fd, self.record, i * self.record)
            return np.frombuffer(data, np.float32).reshape(self.shape)
        image = np.ascontiguousarray(load(), np.float32)
        os.pwrite(self._fd, image.tobytes(), i * self.record)
        with self._lock:
            if not self._written[i]:
                self._written[i] = 1
                self._count += 1
                if self._count == self.n:
                    os.fsync(self._fd)

                    write_json(self.done_path, self._expected)
        return image

    def __del__(self):

        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def classification_augment(seed: int = 0):
    """Batch augmentation for classification: small shifts, rotations and zooms (the lecture's "an X is still
    an X when shifted, shrunk or rotated"), then brightness and contrast. No flips: not every class survives one.

    Works on ``float32 N x h x w x c`` normalised batches inside tf.data.
    """
    import keras  # lazy: keras
    import tensorflow as tf  # lazy: tensorflow

    geometric = keras.Sequential(
        [
            keras.layers.RandomTranslation(0.08, 0.08, fill_mode="reflect", seed=seed),
            keras.layers.RandomRotation(0.03, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 2),
        ]
    )

    def fn(images, targets):
        images = geometric(images, training=True)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        n = tf.shape(images)[0]
        contrast = tf.random.uniform([n, 1, 1, 1], 0.8, 1.2)
        shift = tf.random.uniform([n, 1, 1, 1], -0.08, 0.08)
        return (images - mean) * contrast + mean + shift, targets

    return fn


def make_nav_dataset(
    paths: Sequence[str],
    map_paths: Sequence[str],
    targets: np.ndarray,
    contract: Contract,
    channels: Sequence[str],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache: str | None = "auto",
):
    """A batched, prefetched ``tf.data.Dataset`` of ``((image, map), targets)`` for two-input models.

    Args:
        paths: camera frames, each through :func:`edgecnn.preprocess.prepare` (the one preprocessing):
            ``float32 h x w x 3``.
        map_paths: one map raster PNG per frame (``edgecnn data roads --networks``: channel 0 roads, 1 route);
            ``channels`` picks which, in order (:func:`edgecnn.runtime.evaluate.load_map_input`): ``float32
            S x S x C`` in {0, 1} (raster / 255).
        targets: ``float32 N x T`` steering targets.
        cache: ``"auto"`` (memory when the prepared tensors fit :data:`MEMORY_CACHE_LIMIT`, else streamed from
            disk) or None (stream). No augmentation: a mirrored map would show left-lane roads.
    """
    import tensorflow as tf  # lazy: tensorflow

    if len(paths) != len(map_paths) or len(paths) != len(targets):
        raise ValueError("paths, map_paths and targets need one entry per frame")
    h, w, c = contract.input_height, contract.input_width, contract.channels
    paths = np.array([str(p) for p in paths], dtype=object)
    map_paths = np.array([str(p) for p in map_paths], dtype=object)
    first = load_map_input(map_paths[0], channels) if len(map_paths) else np.zeros((1, 1, len(channels)), np.float32)
    mshape = first.shape
    n = len(paths)
    channels = tuple(channels)

    def _load_index(i):
        i = int(i)
        return load_prepared(paths[i], contract), load_map_input(map_paths[i], channels)

    targets_t = tf.constant(np.asarray(targets))

    def _map_index(i):
        image, grid = tf.numpy_function(_load_index, [i], (tf.float32, tf.float32), stateful=False)
        image.set_shape((h, w, c))
        grid.set_shape(mshape)
        return (image, grid), tf.gather(targets_t, i)

    in_memory = cache == "auto" and n * (h * w * c + int(np.prod(mshape))) * 4 <= MEMORY_CACHE_LIMIT
    if in_memory:
        ds = tf.data.Dataset.range(n).map(_map_index, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
        if shuffle:
            ds = ds.shuffle(min(n, 10_000), seed=seed, reshuffle_each_iteration=True)
    else:
        ds = _file_order(n, shuffle, seed).map(_map_index, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
