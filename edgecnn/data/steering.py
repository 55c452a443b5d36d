"""Steering data sets: the common sample type, the reader that detects the layout, and the time-block split.

Three layouts are read (numpy-free, standard library only):

- a Donkey Car tub v2 folder, or a folder holding several tubs (see :mod:`edgecnn.data.tub`);
- a CSV file or a folder with ``labels.csv`` / ``steering.csv`` holding ``image,steering[,throttle]``
  (see :mod:`edgecnn.data.steering_csv`); ``edgecnn data roads`` writes this layout.

Example::

    ds = load_steering_dataset("data/roads")
    parts = time_block_split(ds.samples, val=0.15, test=0.15, block=50)
    print(len(parts["train"]), ds.faults)

Recorded frames are consecutive near-duplicates, so a random frame-level split puts almost the same image in train
and test. :func:`time_block_split` cuts the recording into blocks of consecutive samples and assigns whole blocks.
"""

from __future__ import annotations

import random
from pathlib import Path

from edgecnn.data import steering_csv, tub
from edgecnn.data.steering_samples import (  # re-exported: the public names of steering data
    BAD_ANGLE,
    BAD_JSON,
    BAD_ROW,
    BAD_THROTTLE,
    DELETED,
    MISSING_IMAGE,
    SteeringDataset,
    SteeringSample,
    check_unit,
    merge_faults,
)
from edgecnn.errors import DataError

__all__ = ["BAD_ANGLE", "BAD_JSON", "BAD_ROW", "BAD_THROTTLE", "DELETED", "MISSING_IMAGE", "SteeringDataset",
           "SteeringSample", "check_unit", "load_steering_dataset", "merge_faults", "time_block_split"]


def load_steering_dataset(path: str | Path) -> SteeringDataset:
    """Read a steering data set, detecting its layout.

    ``path`` may be a tub folder (has ``manifest.json``), a folder of tub folders, a CSV file, or a folder holding
    ``labels.csv`` (or ``steering.csv``, or exactly one ``*.csv``). Records that cannot be used are skipped and
    counted in ``faults``. Raises DataError (one clear line) when the path is missing, the layout is not
    recognised, or no usable sample is left.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: no such file or folder; pass a tub folder, a folder of tubs or an image,steering CSV")
    p = p.resolve()
    if p.is_file():
        if p.suffix.lower() != ".csv":
            raise DataError(f"{p}: expected a .csv file (image,steering[,throttle]) or a folder, got: {p.name}")
        ds = steering_csv.read_csv(p)
    elif tub.is_tub(p) or tub.find_tubs(p):
        ds = tub.read_tubs(p)
    elif next(p.glob("record_*.json"), None) is not None:
        raise DataError(
            f"{p}: a Donkey Car tub v1 (record_*.json files); convert it to tub v2 with donkeycar's "
            "scripts/convert_to_tub_v2.py --tub=OLD --output=NEW, then pass NEW"
        )
    else:
        csv = steering_csv.find_csv(p)
        if csv is None:
            raise DataError(
                f"{p}: not a steering data set: no manifest.json (Donkey Car tub), no tub sub-folders and no "
                "labels.csv (image,steering[,throttle]); run `edgecnn data roads OUT` for a built-in one"
            )
        ds = steering_csv.read_csv(csv, root=p)
    if not ds.samples:
        detail = f" ({ds.fault_summary()})" if ds.faults else ""
        raise DataError(f"{p}: no usable steering samples{detail}")
    return ds


def time_block_split(
    samples: list[SteeringSample] | tuple[SteeringSample, ...],
    val: float = 0.15,
    test: float = 0.15,
    block: int = 50,
    seed: int = 0,
) -> dict[str, list[SteeringSample]]:
    """Split samples in time order into ``{"train", "val", "test"}`` by whole blocks of consecutive samples.

    The sequence is cut into blocks of ``block`` consecutive samples (the last may be shorter); a seeded shuffle
    of the block order assigns about ``test`` of the samples to test, ``val`` to val and the rest to train, so
    near-duplicate neighbours never straddle train and test except at the few block boundaries. Each part keeps
    time order. Deterministic for a given ``seed``. With fewer than 3 blocks, val and test may be empty.

    Raises DataError when fractions are out of range or ``block`` < 1.
    """
    if block < 1:
        raise DataError(f"block must be at least 1 sample, got: {block}")
    if not (0.0 <= val < 1.0 and 0.0 <= test < 1.0 and val + test < 1.0):
        raise DataError(f"val and test must be fractions in [0, 1) with val + test < 1, got: {val}, {test}")
    samples = list(samples)
    n = len(samples)
    blocks = [list(range(i, min(i + block, n))) for i in range(0, n, block)]
    order = list(range(len(blocks)))
    random.Random(seed).shuffle(order)
    want_test, want_val = round(test * n), round(val * n)
    assign: dict[int, str] = {}
    got = {"test": 0, "val": 0}
    for b in order:
        # Fill test first, then val, each while it is still short of its share; the rest is train.
        if got["test"] < want_test and len(blocks) - len(assign) > 1:
            assign[b] = "test"
            got["test"] += len(blocks[b])
        elif got["val"] < want_val and len(blocks) - len(assign) > 1:
            assign[b] = "val"
            got["val"] += len(blocks[b])
        else:
            assign[b] = "train"
    out: dict[str, list[SteeringSample]] = {"train": [], "val": [], "test": []}
    for b, idx in enumerate(blocks):
        out[assign[b]].extend(samples[i] for i in idx)
    return out
