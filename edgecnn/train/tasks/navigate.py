"""Route-conditioned navigation: a camera frame *and* a coarse map in, a mixture over steering out.

Data: the layout ``edgecnn data roads OUT --networks`` writes: ``labels.csv`` with
``image,steering,map,network,route,junction,branch,options,...`` (``map`` = ``maps/NNNNNN.png``, a uint8 PNG with
channel 0 = roads, 1 = route, rasterised at the *estimated* pose) and ``roads.json`` (``map_spec``,
``pose_noise``). Routed (the default) the model reads both channels; unrouted (``--unrouted``) only the roads, so
at a junction it must show every branch as a mode of its mixture. Split by blocks of time exactly as ``--task
steer`` splits the same frames (same reader order, block and seed), so an image-only ``pilotnet`` trained on the
same folder is tested on the same junctions.

No augmentation: a mirror flip would show left-lane driving and a mirrored map; the generator already varies
lighting, surfaces and the camera. Loss: the mixture's negative log-likelihood (:func:`edgecnn.models.gmm.gmm_nll`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract, map_entry
from edgecnn.data.navigation import (  # re-exported: the reader and metrics live in the data layer (compare uses them)
    MISSING_MAP,
    ROUTED_CHANNELS,
    UNROUTED_CHANNELS,
    NavSample,
    map_spec_for,
    navigation_metrics,
    pose_noise_for,
    read_navigation,
)
from edgecnn.data.steering import time_block_split
from edgecnn.errors import DataError
from edgecnn.mixture import nll
from edgecnn.train.pipeline_data import make_nav_dataset
from edgecnn.train.sanity import DataCheck, baseline_warning, check_steering
from edgecnn.train.tasks.base import Task, register_task
from edgecnn.train.tasks.classify import check_crop
from edgecnn.train.tasks.steer import TIME_BLOCK

__all__ = ["MISSING_MAP", "ROUTED_CHANNELS", "UNROUTED_CHANNELS", "NavData", "NavSample", "NavigateTask",
           "fit_sigma_scale", "map_spec_for", "navigation_metrics", "pose_noise_for", "read_navigation"]
NETWORKS_FORMAT = "edgecnn-networks-1"
# Dropout after navnet's first two dense layers: off. Measured on `data roads --networks` (8000 frames, 6400 for
# training): without it the validation NLL is best at epoch 8 (-0.43; train -1.24 by epoch 14, overfitting);
# with 0.3 it was no better than -0.25 by epoch 17 (still overfitting, and slower). More frames help; the
# overconfidence that overfitting leaves is taken out by the sigma scale fitted on the validation split.
DROPOUT = 0.0
# Candidate factors for the mixture's sigmas, fitted on the validation split after training (see
# NavigateTask.calibrate): exp(-0.7) .. exp(0.7), i.e. 0.5x .. 2x, in 57 steps.
SIGMA_SCALES = tuple(float(v) for v in np.exp(np.linspace(-0.7, 0.7, 57)))
LOG_SIGMAS_LAYER = "gmm_log_sigmas"  # the gmm head's Rescaling layer that emits the log-sigmas


@dataclass(frozen=True)
class NavData:
    """A loaded, split navigation data set and its map description (from ``roads.json``)."""

    root: str
    samples: tuple[NavSample, ...]
    splits: dict[str, list[NavSample]]
    map_spec: dict[str, Any]
    pose_noise: dict[str, Any]
    faults: dict[str, int]

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        kinds = Counter(s.junction or "road" for s in self.samples)
        faults = ", ".join(f"{n} {k}" for k, n in self.faults.items())
        return (f"data: {len(self.samples)} frames (road networks: "
                + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
                + (f"; skipped {faults}" if faults else "") + f"; time-block split: {sizes}")

    def split_rows(self) -> dict[str, list[list[Any]]]:
        return {k: [s.entry() for s in v] for k, v in self.splits.items()}


@register_task
class NavigateTask(Task):
    """Steering from a camera frame and a map raster (two inputs), as a Gaussian mixture (gmm head, NLL)."""

    name = "navigate"
    summary = "route-conditioned steering from camera + map (`edgecnn data roads --networks` output)"
    default_arch = "navnet"
    heads = ("gmm",)
    flip_ok = False  # a mirrored frame shows left-lane driving, a mirrored map left-lane roads

    def load_data(self, config) -> NavData:
        samples, spec, noise, faults = read_navigation(config.data)
        splits = time_block_split(samples, val=config.val, test=config.test, block=TIME_BLOCK, seed=config.seed)
        if not splits["train"] or not splits["val"]:
            raise DataError(f"{config.data}: too few frames for a train/validation split ({len(samples)} usable)")
        if config.throttle:
            raise DataError("--throttle is not supported by --task navigate (the mixture models steering only)")
        if config.augment:
            raise DataError("--augment is not available for --task navigate (a mirrored frame and map would show "
                            "left-lane roads); omit it")
        map_spec_for(spec, config.routed)  # a malformed map_spec fails here, before any training
        pose_noise_for(noise)
        return NavData(str(Path(config.data).resolve()), samples, splits, spec, noise, faults)

    def check_data(self, data: NavData) -> DataCheck:
        return check_steering({k: len(v) for k, v in data.splits.items()})

    def verdict(self, metrics: dict[str, Any], data: NavData) -> list[str]:
        warning = baseline_warning(metrics)
        return [warning] if warning else []

    def make_contract(self, config, data: NavData, h: int, w: int, mean, std) -> Contract:
        nav = map_entry(map_spec_for(data.map_spec, config.routed), pose_noise_for(data.pose_noise))
        crop = tuple(getattr(config, "crop", ()))
        check_crop(crop, [s.path for s in data.samples])
        return Contract(
            task="navigate", input_height=h, input_width=w, channels=3, color_order=config.color_order,
            mean=tuple(mean), std=tuple(std), resize=getattr(config, "resize", "area"), head="gmm",
            components=config.components, arch=config.arch, map=nav, crop=crop,
        )

    def channels(self, config) -> tuple[str, ...]:
        """The map channels the model reads, in order."""
        return ROUTED_CHANNELS if config.routed else UNROUTED_CHANNELS

    def arrays(self, data: NavData, split: str, config) -> tuple[list[str], np.ndarray]:
        samples = data.splits[split]
        return [s.path for s in samples], np.asarray([[s.steering] for s in samples], np.float32).reshape(-1, 1)

    def augment(self, contract: Contract, config):
        return None

    def default_augment(self, data: NavData) -> tuple[bool, str]:
        return False, "off for navigation (a mirror flip would show left-lane roads; the frames already vary)"

    def model_kwargs(self, config) -> dict[str, Any]:
        return {"head": "gmm", "components": config.components, "dropout": DROPOUT}

    def dataset(self, data: NavData, split: str, contract: Contract, config, training: bool):
        paths, targets = self.arrays(data, split, config)
        return make_nav_dataset(paths, [s.map_path for s in data.splits[split]], targets, contract,
                                self.channels(config), config.batch, shuffle=training, seed=config.seed)

    def compile(self, model, config) -> None:
        import keras  # lazy: keras

        from edgecnn.models.gmm import gmm_mean, gmm_nll  # lazy: keras

        def steering_mae(y_true, y_pred):
            return keras.ops.mean(keras.ops.abs(y_true[:, 0] - gmm_mean(y_pred)))

        model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=gmm_nll, metrics=[steering_mae])

    def calibrate(self, model, data: NavData, contract: Contract, config) -> dict[str, Any]:
        """Scale the mixture's sigmas by the one factor that minimises the validation NLL (temperature scaling,
        applied to the model itself: the log-sigma layer's offset moves by log(factor), so Keras, every .tflite
        and the device agree). The test split stays untouched. Returns ``{"sigma_scale": factor,
        "val_nll_before": ..., "val_nll_after": ...}`` for metrics.json."""
        raw = model.predict(self.dataset(data, "val", contract, config, training=False), verbose=0)
        targets = np.array([s.steering for s in data.splits["val"]])
        scale, before, after = fit_sigma_scale(raw, targets)
        layer = model.get_layer(LOG_SIGMAS_LAYER)
        layer.offset = float(layer.offset) + math.log(scale)
        return {"sigma_scale": round(scale, 4), "val_nll_before": before, "val_nll_after": after}

    def evaluate(self, model, data: NavData, contract: Contract, config) -> dict[str, Any]:
        """Held-out metrics: MAE, NLL, coverage at 1/2/3 sigma against the ideal, junction modes."""
        raw = model.predict(self.dataset(data, "test", contract, config, training=False), verbose=0)
        return navigation_metrics(raw, data.splits["test"], contract,
                                  baseline=float(np.mean([s.steering for s in data.splits["train"]])))


def fit_sigma_scale(raw: np.ndarray, targets: np.ndarray,
                    scales: tuple[float, ...] = SIGMA_SCALES) -> tuple[float, float, float]:
    """``(factor, mean NLL at 1, mean NLL at factor)``: the factor from ``scales`` that, multiplying every sigma of
    the mixtures ``raw`` (float (N, 3K) raw gmm vectors), minimises their mean NLL (nats) on ``targets`` (float
    (N,) steering). Log-sigmas are clipped as the device clips them (:func:`edgecnn.mixture.split`)."""
    raw = np.asarray(raw, np.float64).reshape(len(raw), -1)
    k = raw.shape[1] // 3

    def mean_nll(factor: float) -> float:
        shifted = raw.copy()
        shifted[:, 2 * k :] += math.log(factor)
        return float(np.mean([nll(r, t) for r, t in zip(shifted, targets)]))

    scored = [(mean_nll(f), f) for f in scales]
    best, factor = min(scored)
    return factor, mean_nll(1.0), best

