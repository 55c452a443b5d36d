"""Task metrics from predictions and targets, numpy only (training, export, compare and the device share them)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """``probs`` float (N, C) scores, ``labels`` int (N,) -> top-1/top-5 accuracy, per-class accuracy, confusion."""
    labels = np.asarray(labels, dtype=int)
    pred = probs.argmax(1)
    k = min(5, probs.shape[1])
    top5 = np.argsort(-probs, 1)[:, :k]
    n = len(classes)
    confusion = np.zeros((n, n), int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {c: float(confusion[i, i] / max(confusion[i].sum(), 1)) for i, c in enumerate(classes)}
    return {
        "test_accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "test_top5_accuracy": float((top5 == labels[:, None]).any(1).mean()) if len(labels) else float("nan"),
        "test_count": int(len(labels)),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }


# Steering below this magnitude counts as "straight" when comparing signs (a sign flip there means nothing).
SIGN_DEADBAND = 0.05


def steering_metrics(pred: np.ndarray, target: np.ndarray, std: np.ndarray | None = None,
                     baseline: float | None = None) -> dict[str, Any]:
    """Steering error metrics.

    Args:
        pred, target: float (N,) steering in [-1, 1].
        std: float (N,) predicted standard deviation (gmm head) for calibration figures, or None.
        baseline: a constant prediction (the training mean) to report the predict-the-mean MAE beside ours.

    Returns ``mae``, ``rmse``, ``p95_abs_error``, ``sign_agreement`` (over targets with ``|t| > 0.05``) and, with
    ``std``, ``within_1sigma``/``within_2sigma`` (0.68/0.95 when calibrated) and ``mean_std``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    err = np.abs(pred - target)
    turning = np.abs(target) > SIGN_DEADBAND
    out: dict[str, Any] = {
        "test_count": int(len(target)),
        "mae": float(err.mean()) if len(err) else float("nan"),
        "rmse": float(np.sqrt((err**2).mean())) if len(err) else float("nan"),
        "p95_abs_error": float(np.percentile(err, 95)) if len(err) else float("nan"),
        "sign_agreement": float((np.sign(pred[turning]) == np.sign(target[turning])).mean()) if turning.any() else 1.0,
    }
    if baseline is not None:
        out["baseline_mae"] = float(np.abs(baseline - target).mean())
    if std is not None:
        std = np.maximum(np.asarray(std, dtype=np.float64), 1e-9)
        out["within_1sigma"] = float((err <= std).mean())
        out["within_2sigma"] = float((err <= 2 * std).mean())
        out["mean_std"] = float(std.mean())
    return out


def steering_agreement(float_pred: np.ndarray, quant_pred: np.ndarray, target: np.ndarray,
                       bins: tuple[float, ...] = (-1.0, -0.5, -0.15, 0.15, 0.5, 1.0)) -> dict[str, Any]:
    """Float versus quantized steering on the same frames (float (N,) each, steering units).

    Returns the mean and max absolute difference, sign flips between the two (outside the dead band), and the
    MAE of each per steering bin of the target.
    """
    f, q, t = (np.asarray(a, dtype=np.float64) for a in (float_pred, quant_pred, target))
    diff = np.abs(f - q)
    moving = (np.abs(f) > SIGN_DEADBAND) | (np.abs(q) > SIGN_DEADBAND)
    per_bin = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (t >= lo) & (t <= hi if hi == bins[-1] else t < hi)
        per_bin.append({"bin": [lo, hi], "count": int(m.sum()),
                        "mae_float": float(np.abs(f[m] - t[m]).mean()) if m.any() else None,
                        "mae_quant": float(np.abs(q[m] - t[m]).mean()) if m.any() else None})
    return {
        "mean_abs_diff": float(diff.mean()) if len(diff) else float("nan"),
        "max_abs_diff": float(diff.max()) if len(diff) else float("nan"),
        "sign_flips": int((np.sign(f[moving]) != np.sign(q[moving])).sum()),
        "per_bin": per_bin,
    }


def segmentation_confusion(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """``int64 K x K`` pixel confusion (rows: true class, columns: predicted) of class maps ``pred`` and
    ``target`` (integer arrays of the same shape, any number of frames); ``target == ignore`` pixels not counted."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
    keep = (target != ignore) & (target < num_classes)
    return np.bincount(target[keep] * num_classes + np.clip(pred[keep], 0, num_classes - 1),
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(confusion: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean IoU, IoU and Dice per class, pixel accuracy and the confusion matrix from a pixel ``confusion``
    (:func:`segmentation_confusion`). IoU = TP / (TP + FP + FN); a class absent from both prediction and target
    has no IoU (``None``) and is left out of the means. Values are fractions in [0, 1]."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    dice = np.where(union > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    per_iou = {c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, iou)}
    per_dice = {c: (None if np.isnan(v) else float(v)) for c, v in zip(classes, dice)}
    total = cm.sum()
    return {
        "test_mean_iou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "test_pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "test_mean_dice": float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan"),
        "iou_per_class": per_iou,
        "dice_per_class": per_dice,
        "test_pixels": int(total),
        "confusion": cm.astype(np.int64).tolist(),
    }
