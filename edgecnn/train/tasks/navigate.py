"""Route-conditioned navigation: a camera frame *and* a coarse map in, a mixture over steering out.

Data: the layout ``edgecnn data roads OUT --networks`` writes: ``labels.csv`` with
``image,steering,map,network,route,junction,branch,options,...`` (``map`` = ``maps/NNNNNN.png``, a uint8 PNG with
channel 0 = roads, 1 = route, rasterised at the *estimated* pose) and ``roads.json`` (``map_spec``,
``pose_noise``). Routed (the default) the model reads both channels; unrouted (``--unrouted``) only the roads, so
at a junction it must show every branch as a mode of its mixture. Split by blocks of time exactly as ``--task
steer`` splits the same frames (same reader order, block and seed), so an image-only ``pilotnet`` trained on the
same folder is tested on the same junctions.

No augmentation: a mirror flip would show left-lane driving and a mirrored map; the generator already varies
lighting, surfaces and the camera. Loss: the mixture's negative log-likelihood, per frame averaged over its labels
(:func:`edgecnn.models.gmm.gmm_nll_weighted`). Junction labels (``--junction-labels``): a routed model learns the
route's branch; an unrouted one, on data with the ``branch_steering`` column, learns every branch on a junction's
shared approach (:func:`edgecnn.data.navigation.branch_targets`), since nothing it sees tells the branches apart.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract, map_entry
from edgecnn.data.navigation import (  # re-exported: the reader and metrics live in the data layer (compare uses them)
    MISSING_MAP,
    ROUTED_CHANNELS,
    UNROUTED_CHANNELS,
    NavSample,
    branch_targets,
    has_branch_steering,
    map_spec_for,
    navigation_metrics,
    pose_noise_for,
    read_navigation,
)
from edgecnn.data.steering import time_block_split
from edgecnn.errors import DataError
from edgecnn.mixture import nll_many
from edgecnn.train.pipeline_data import make_nav_dataset
from edgecnn.train.sanity import DataCheck, baseline_warning, check_steering
from edgecnn.train.tasks.base import Task, register_task
from edgecnn.train.tasks.classify import check_crop
from edgecnn.train.tasks.steer import TIME_BLOCK

__all__ = ["MISSING_MAP", "ROUTED_CHANNELS", "UNROUTED_CHANNELS", "NavData", "NavSample", "NavigateTask",
           "fit_sigma_scale", "map_spec_for", "navigation_metrics", "pose_noise_for", "read_navigation"]
NETWORKS_FORMAT = "edgecnn-networks-1"
# Dropout after navnet's first two dense layers when --dropout is not given: off. Measured on `data roads
# --networks` (8000 frames, 6400 for training, routed): without it the validation NLL is best at epoch 8 (-0.43;
# train -1.24 by epoch 14, overfitting); with 0.3 it was no better than -0.25 by epoch 17. On 32000 frames,
# unrouted with every branch as a label, 0.2 gave a slightly worse test NLL (-0.752 against -0.796) but more decision
# frames with both branches (0.672 against 0.597) and fewer plain-road frames with two modes (0.899 against 0.853
# with one mode); see the README. The overconfidence that overfitting leaves is taken out by the sigma scale fitted
# on the validation split.
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
    junction_labels: str = "route"  # "route" or "branches" (resolved from --junction-labels and the data)

    @property
    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        kinds = Counter(s.junction.kind or "road" for s in self.samples)
        faults = ", ".join(f"{n} {k}" for k, n in self.faults.items())
        labels = (f"; junction labels: every branch on the approach ({self.branch_labelled('train')} training "
                  "frames)" if self.junction_labels == "branches" else "")
        return (f"data: {len(self.samples)} frames (road networks: "
                + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) + ")"
                + (f"; skipped {faults}" if faults else "") + f"; time-block split: {sizes}" + labels)

    @cached_property
    def _labelled(self) -> dict[str, tuple[np.ndarray, int]]:
        """Per split, :func:`branch_targets` once (the summary, the datasets and the metrics all read it)."""
        return {k: branch_targets(v, self.junction_labels == "branches") for k, v in self.splits.items()}

    def targets(self, split: str) -> np.ndarray:
        """``float32 (N, 2 * MAX_BRANCHES)`` targets of ``split`` (:func:`branch_targets`)."""
        return self._labelled[split][0]

    def branch_labelled(self, split: str) -> int:
        """How many frames of ``split`` are labelled with every branch."""
        return self._labelled[split][1]

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
        return NavData(str(Path(config.data).resolve()), samples, splits, spec, noise, faults,
                       junction_labels(config, samples))

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
        return [s.path for s in data.splits[split]], data.targets(split)

    def augment(self, contract: Contract, config):
        return None

    def default_augment(self, data: NavData) -> tuple[bool, str]:
        return False, "off for navigation (a mirror flip would show left-lane roads; the frames already vary)"

    def model_kwargs(self, config) -> dict[str, Any]:
        dropout = getattr(config, "dropout", None)
        return {"head": "gmm", "components": config.components, "dropout": DROPOUT if dropout is None else dropout}

    def dataset(self, data: NavData, split: str, contract: Contract, config, training: bool):
        paths, targets = self.arrays(data, split, config)
        return make_nav_dataset(paths, [s.map_path for s in data.splits[split]], targets, contract,
                                self.channels(config), config.batch, shuffle=training, seed=config.seed)

    def compile(self, model, config) -> None:
        import keras  # lazy: keras

        from edgecnn.models.gmm import gmm_mean, gmm_nll_weighted  # lazy: keras

        def steering_mae(y_true, y_pred):  # against column 0, the frame's own label
            return keras.ops.mean(keras.ops.abs(y_true[:, 0] - gmm_mean(y_pred)))

        model.compile(optimizer=keras.optimizers.Adam(config.lr), loss=gmm_nll_weighted, metrics=[steering_mae])

    def calibrate(self, model, data: NavData, contract: Contract, config) -> dict[str, Any]:
        """Scale the mixture's sigmas by the one factor that minimises the validation NLL (temperature scaling,
        applied to the model itself: the log-sigma layer's offset moves by log(factor), so Keras, every .tflite
        and the device agree). The test split stays untouched. Returns ``{"sigma_scale": factor,
        "val_nll_before": ..., "val_nll_after": ...}`` for metrics.json."""
        raw = model.predict(self.dataset(data, "val", contract, config, training=False), verbose=0)
        scale, before, after = fit_sigma_scale(raw, data.targets("val"))
        layer = model.get_layer(LOG_SIGMAS_LAYER)
        layer.offset = float(layer.offset) + math.log(scale)
        return {"sigma_scale": round(scale, 4), "val_nll_before": before, "val_nll_after": after}

    def evaluate(self, model, data: NavData, contract: Contract, config) -> dict[str, Any]:
        """Held-out metrics: MAE, NLL, coverage at 1/2/3 sigma against the ideal, junction modes."""
        raw = model.predict(self.dataset(data, "test", contract, config, training=False), verbose=0)
        metrics = navigation_metrics(raw, data.splits["test"], contract,
                                     baseline=float(np.mean([s.steering for s in data.splits["train"]])))
        metrics["junction_labels"] = data.junction_labels
        metrics["branch_labelled_train_frames"] = data.branch_labelled("train")
        return metrics


def junction_labels(config, samples) -> str:
    """``--junction-labels`` resolved against the data: ``"auto"`` -> ``"branches"`` for an unrouted model on
    data with the ``branch_steering`` column, else ``"route"``. DataError (one line) for ``branches`` on data
    without the column."""
    asked = getattr(config, "junction_labels", "auto")
    known = has_branch_steering(samples)
    if asked == "auto":
        return "branches" if not config.routed and known else "route"
    if asked == "branches" and not known:
        raise DataError(f"{config.data}: no branch_steering column, so --junction-labels branches has nothing to "
                        "learn from; regenerate with `edgecnn data roads OUT --networks`, or use "
                        "--junction-labels route")
    return asked


def fit_sigma_scale(raw: np.ndarray, targets: np.ndarray,
                    scales: tuple[float, ...] = SIGMA_SCALES) -> tuple[float, float, float]:
    """``(factor, mean NLL at 1, mean NLL at factor)``: the factor from ``scales`` that, multiplying every sigma of
    the mixtures ``raw`` (float (N, 3K) raw gmm vectors), minimises their mean NLL (nats) on ``targets``: float
    (N,) steering, or float (N, 2M) weighted labels as :func:`branch_targets` makes them (the training loss).
    Log-sigmas are clipped as the device clips them (:func:`edgecnn.mixture.split`)."""
    raw = np.asarray(raw, np.float64).reshape(len(raw), -1)
    k = raw.shape[1] // 3
    y = np.asarray(targets, np.float64)
    y = np.stack([y, np.ones_like(y)], axis=1) if y.ndim == 1 else y.reshape(len(y), -1)
    m = y.shape[1] // 2

    labels, weights = y[:, :m], y[:, m:]

    def mean_nll(factor: float) -> float:
        shifted = raw.copy()
        shifted[:, 2 * k :] += math.log(factor)
        per_label = nll_many(shifted, labels)  # (N, M); unused label slots have weight 0
        return float(np.mean(np.where(weights > 0, weights * per_label, 0.0).sum(axis=1)))

    scored = [(mean_nll(f), f) for f in scales]
    best, factor = min(scored)
    return factor, mean_nll(1.0), best

