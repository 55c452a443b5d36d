"""Steering (PilotNet / donkeycar style: frame in, steering out).

Data: any layout :func:`edgecnn.data.steering.load_steering_dataset` reads (Donkey Car tubs, CSV, `edgecnn data
roads`), split by blocks of time. Augmentation is steering-aware: a horizontal flip negates the angle, a small
horizontal shift adds a matching correction, brightness/contrast/shadow leave it alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data.steering import (
    SteeringDataset,
    SteeringSample,
    load_steering_dataset,
    time_block_split,
)
from edgecnn.errors import DataError
from edgecnn.metrics import steering_metrics
from edgecnn.mixture import nll
from edgecnn.outputs import decode_steering
from edgecnn.train.datakind import is_roads_data
from edgecnn.train.sanity import DataCheck, baseline_warning, check_steering
from edgecnn.train.tasks.base import Task, register_task
from edgecnn.train.tasks.classify import all_paths, image_contract

# Steering added per unit of horizontal shift (shift as a fraction of the image width). A frame shifted right
# looks as if the car were left of its path, so the correction steers right (positive).
SHIFT_GAIN = 0.8
MAX_SHIFT = 0.08
TIME_BLOCK = 50


@dataclass(frozen=True)
class SteerData:
    dataset: SteeringDataset
    splits: dict[str, list[SteeringSample]]

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        faults = self.dataset.fault_summary()
        return (f"data: {len(self.dataset.samples)} frames ({self.dataset.kind})"
                + (f"; {faults}" if faults else "") + f"; time-block split: {sizes}")

    def split_rows(self) -> dict[str, list[list[Any]]]:
        return {k: [[s.path, s.steering, s.throttle] for s in v] for k, v in self.splits.items()}


def _targets(samples: list[SteeringSample], throttle: bool) -> np.ndarray:
    cols = [[s.steering, s.throttle if s.throttle is not None else 0.0] if throttle else [s.steering] for s in samples]
    return np.asarray(cols, np.float32).reshape(len(samples), 2 if throttle else 1)


def steering_augment(contract: Contract, seed: int = 0, flip: bool = True):
    """Batch augmentation in TF ops on normalised ``float32 N x h x w x c`` batches with ``N x T`` targets
    (steering in [-1, 1], positive = right, first). ``flip``: mirror half the frames and negate their angle."""
    import tensorflow as tf  # lazy: tensorflow

    mean = tf.constant(contract.mean, tf.float32)
    std = tf.constant(contract.std, tf.float32)
    w = contract.input_width
    gen = tf.random.Generator.from_seed(seed)

    def fn(images, targets):
        n = tf.shape(images)[0]
        pixels = images * std + mean  # back to 0..255 so the photometric changes mean the same for any range
        # horizontal flip, angle negated
        flipped = gen.uniform([n]) < (0.5 if flip else 0.0)
        pixels = tf.where(flipped[:, None, None, None], tf.reverse(pixels, axis=[2]), pixels)
        steer = tf.where(flipped, -targets[:, 0], targets[:, 0])
        # small horizontal shift with a matching correction
        shift = gen.uniform([n], -MAX_SHIFT, MAX_SHIFT)
        dx = shift * w
        zeros, ones = tf.zeros([n]), tf.ones([n])
        transform = tf.stack([ones, zeros, -dx, zeros, ones, zeros, zeros, zeros], axis=1)
        pixels = tf.raw_ops.ImageProjectiveTransformV3(
            images=pixels, transforms=transform, output_shape=tf.shape(pixels)[1:3], fill_value=0.0,
            interpolation="BILINEAR", fill_mode="NEAREST")
        steer = tf.clip_by_value(steer + SHIFT_GAIN * shift, -1.0, 1.0)
        # brightness, contrast and a vertical shadow band
        pixels = (pixels - 128.0) * gen.uniform([n, 1, 1, 1], 0.7, 1.3) + 128.0 + gen.uniform([n, 1, 1, 1], -40, 40)
        cols = tf.cast(tf.range(w), tf.float32)[None, :]
        x0 = gen.uniform([n, 1], 0, w)
        x1 = x0 + gen.uniform([n, 1], 0.1, 0.5) * w
        band = tf.cast((cols >= x0) & (cols < x1), tf.float32) * tf.cast(gen.uniform([n, 1]) < 0.5, tf.float32)
        pixels = pixels * (1.0 - 0.45 * band)[:, None, :, None]
        pixels = tf.clip_by_value(pixels, 0.0, 255.0)
        targets = tf.concat([steer[:, None], targets[:, 1:]], axis=1)
        return (pixels - mean) / std, targets

    return fn


@register_task
class SteerTask(Task):
    """Steering regression (tanh head, MSE) or a Gaussian mixture over steering (gmm head, NLL)."""

    name = "steer"
    summary = "steering regression (Donkey Car tub, steering CSV or `edgecnn data roads` output)"
    default_arch = "pilotnet"
    heads = ("regression", "gmm")
    flip_ok = True  # a mirrored frame is a valid frame with the angle negated

    def load_data(self, config) -> SteerData:
        ds = load_steering_dataset(config.data)
        splits = time_block_split(ds.samples, val=config.val, test=config.test, block=TIME_BLOCK, seed=config.seed)
        if not splits["train"] or not splits["val"]:
            raise DataError(f"{config.data}: too few frames for a train/validation split "
                            f"({len(ds.samples)} usable); record more")
        if config.throttle and not ds.has_throttle:
            raise DataError(f"{config.data}: --throttle needs a throttle value for every frame")
        return SteerData(ds, splits)

    def check_data(self, data: SteerData) -> DataCheck:
        return check_steering({k: len(v) for k, v in data.splits.items()})

    def verdict(self, metrics: dict[str, Any], data: SteerData) -> list[str]:
        warning = baseline_warning(metrics)
        return [warning] if warning else []

    def make_contract(self, config, data: SteerData, h: int, w: int, mean, std) -> Contract:
        return image_contract("steer", config, all_paths(data.splits), h, w, mean, std, head=config.head,
                              throttle=config.throttle, components=config.components if config.head == "gmm" else 0)

    def arrays(self, data: SteerData, split: str, config) -> tuple[list[str], np.ndarray]:
        samples = data.splits[split]
        return [s.path for s in samples], _targets(samples, config.throttle)

    def augment(self, contract: Contract, config):
        return steering_augment(contract, config.seed, flip=self.flip_ok) if config.augment else None

    def default_augment(self, data: SteerData) -> tuple[bool, str]:
        # `edgecnn data roads` renders every frame with its own lighting, surface, camera pose and offset, so the
        # variety augmentation would add is already there; and its world drives in the right lane, so a mirror
        # flip shows left-lane driving that the simulator (and the car) never sees. Measured: 8000 frames, 4 per
        # road, pilotnet, no augmentation -> autonomy 1.00 int8 on 20 unseen roads; with it the defaults did not
        # drive (0.70). Recordings (tubs, CSV) keep the steering-aware augmentation.
        if is_roads_data(data.dataset.root):
            return False, ("off for `edgecnn data roads` output (its frames already vary; a mirror flip would show "
                           "left-lane driving); pass --augment to force it")
        return True, "steering-aware flip, shift and lighting (pass --no-augment to disable)"

    def model_kwargs(self, config) -> dict[str, Any]:
        return {"head": config.head, "components": config.components if config.head == "gmm" else 0,
                "throttle": config.throttle}

    def compile(self, model, config) -> None:
        import keras  # lazy: keras

        if config.head == "gmm":
            from edgecnn.models.gmm import gmm_mean, gmm_nll  # lazy: keras

            def steering_mae(y_true, y_pred):
                return keras.ops.mean(keras.ops.abs(y_true[:, 0] - gmm_mean(y_pred)))

            model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=gmm_nll, metrics=[steering_mae])
        else:
            model.compile(optimizer=keras.optimizers.Adam(config.lr), loss="mse", metrics=["mae"])

    def evaluate(self, model, data: SteerData, contract: Contract, config) -> dict[str, Any]:
        """Held-out metrics: MAE, RMSE, p95, sign agreement, predict-the-mean baseline; NLL and calibration (gmm)."""
        ds = self.dataset(data, "test", contract, config, training=False)
        raw = model.predict(ds, verbose=0)
        target = np.array([s.steering for s in data.splits["test"]])
        decoded = decode_steering(raw, contract)
        baseline = float(np.mean([s.steering for s in data.splits["train"]]))
        metrics = steering_metrics(decoded.steering, target, decoded.std, baseline=baseline)
        if contract.head == "gmm":
            metrics["nll"] = float(np.mean([nll(r, t) for r, t in zip(raw, target)]))
        if decoded.throttle is not None:
            thr = np.array([s.throttle or 0.0 for s in data.splits["test"]])
            metrics["throttle_mae"] = float(np.abs(decoded.throttle - thr).mean())
        return metrics
