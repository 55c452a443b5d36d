"""Is the data set big enough to learn and to measure anything? Checked before training; and after training,
is the model better than chance (classification) or than predicting the mean (steering)? Pure: plain counts and
numbers, no TensorFlow.

Floors (stated here, printed in the messages):

* refused (unless ``--force``): a class with fewer than :data:`MIN_PER_CLASS` images; it cannot be split into
  train/validation/test and a classifier cannot learn it from so few;
* warned: a class missing from the validation or test split, fewer than :data:`FEW_TRAIN_PER_CLASS` training
  images in a class, a test split under :data:`MIN_TEST` images (one image moves accuracy by more than 3 %),
  a steering test split under :data:`MIN_TEST` frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_PER_CLASS = 5
FEW_TRAIN_PER_CLASS = 10
MIN_TEST = 30


@dataclass(frozen=True)
class DataCheck:
    """The verdict on a data set before training.

    Attributes:
        counts: one line per split with its per-class counts (printed).
        warnings: problems that make the results doubtful (printed, kept in metrics.json).
        refusals: problems under a floor: training stops unless forced.
    """

    counts: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()


def check_classes(classes: Sequence[str], per_split: Mapping[str, Sequence[int]]) -> DataCheck:
    """Check a classification split: ``per_split[split][i]`` is the number of images of ``classes[i]`` in it."""
    counts = tuple(f"{split}: " + ", ".join(f"{c}={n}" for c, n in zip(classes, per_split[split]))
                   for split in ("train", "val", "test") if split in per_split)
    totals = [sum(per_split[s][i] for s in per_split) for i in range(len(classes))]
    refusals, warnings = [], []
    small = [f"{c} ({n})" for c, n in zip(classes, totals) if n < MIN_PER_CLASS]
    if small:
        refusals.append(f"{len(small)} of {len(classes)} classes have fewer than {MIN_PER_CLASS} images: "
                        f"{', '.join(small[:6])}{', ...' if len(small) > 6 else ''}; add images (20+ per class "
                        "is a sensible start)")
    for split in ("val", "test"):
        missing = [c for c, n in zip(classes, per_split.get(split, [0] * len(classes))) if n == 0]
        if missing:
            warnings.append(f"{len(missing)} classes have no {split} image ({', '.join(missing[:6])}"
                            f"{', ...' if len(missing) > 6 else ''}): they are never {'checked' if split == 'val' else 'measured'}")
    few = [c for c, n in zip(classes, per_split.get("train", [])) if 0 < n < FEW_TRAIN_PER_CLASS]
    if few:
        warnings.append(f"{len(few)} classes have fewer than {FEW_TRAIN_PER_CLASS} training images "
                        f"({', '.join(few[:6])}{', ...' if len(few) > 6 else ''}); expect a weak model")
    n_test = sum(per_split.get("test", []))
    if n_test < MIN_TEST:
        warnings.append(_small_test(n_test, "images", "accuracy"))
    return DataCheck(counts, tuple(warnings), tuple(refusals))


def check_steering(sizes: Mapping[str, int]) -> DataCheck:
    """Check a steering split: ``sizes[split]`` frames in each split."""
    counts = ("split: " + ", ".join(f"{k} {v}" for k, v in sizes.items()),)
    warnings = []
    if sizes.get("test", 0) < MIN_TEST:
        warnings.append(_small_test(sizes.get("test", 0), "frames", "MAE"))
    return DataCheck(counts, tuple(warnings))


def _small_test(n: int, what: str, metric: str) -> str:
    if n == 0:
        return f"the test split is empty: nothing measures the model; add {what}"
    return (f"the test split has only {n} {what} (under {MIN_TEST}): its {metric} is noise "
            f"(one {what[:-1]} moves it by {100 / n:.0f} %); add {what}")


def chance_warning(metrics: Mapping[str, Any], train_counts: Sequence[int]) -> str | None:
    """A warning when test accuracy is no better than always answering the most frequent training class."""
    acc = metrics.get("test_accuracy")
    total = sum(train_counts)
    if acc is None or not total:
        return None
    chance = max(max(train_counts) / total, 1.0 / len(train_counts))
    if acc <= chance:
        return (f"test accuracy {acc:.1%} is no better than chance ({chance:.1%}, always answering the most "
                "common class): the model learned nothing usable; add data or train longer")
    return None


def baseline_warning(metrics: Mapping[str, Any]) -> str | None:
    """A warning when the steering MAE is no better than predicting the training mean for every frame."""
    mae, base = metrics.get("mae"), metrics.get("baseline_mae")
    if mae is None or base is None:
        return None
    if mae >= base:
        return (f"steering MAE {mae:.3f} is no better than predicting the mean angle (baseline {base:.3f}): the "
                "model learned nothing usable; add data or train longer")
    return None
