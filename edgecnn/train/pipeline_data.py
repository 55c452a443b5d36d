"""Training input through tf.data, wrapping the one numpy/OpenCV preprocessing (host side).

Files are decoded in parallel by ``tf.numpy_function`` over :func:`edgecnn.preprocess.prepare` (OpenCV releases
the GIL while decoding), batched and prefetched. Small data sets are cached in memory after the first epoch;
large ones are streamed from disk (or cached to a file on request), so memory does not grow with the data set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgecnn.contract import Contract
from edgecnn.preprocess import load_image, prepare

# Above this many bytes of preprocessed tensors the data set is streamed rather than cached in memory.
MEMORY_CACHE_LIMIT = 1 << 30


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
        cache: ``"auto"`` (memory when small), ``None`` (stream), or a file path prefix to cache on disk.
    """
    import tensorflow as tf

    h, w, c = contract.input_height, contract.input_width, contract.channels
    targets = np.asarray(targets)
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(paths, dtype=object).astype(str), targets))

    def _load(path):
        return load_prepared(path.decode("utf-8"), contract)

    def _map(path, target):
        image = tf.numpy_function(_load, [path], tf.float32, stateful=False)
        image.set_shape((h, w, c))
        return image, target

    ds = ds.map(_map, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache == "auto":
        if len(paths) * h * w * c * 4 <= MEMORY_CACHE_LIMIT:
            ds = ds.cache()
    elif cache:
        ds = ds.cache(cache)
    if shuffle:
        ds = ds.shuffle(min(len(paths), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def classification_augment(seed: int = 0):
    """Batch augmentation for classification: small shifts, rotations and zooms (the lecture's "an X is still
    an X when shifted, shrunk or rotated"), then brightness and contrast. No flips: not every class survives one.

    Works on ``float32 N x h x w x c`` normalised batches inside tf.data.
    """
    import keras
    import tensorflow as tf

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
