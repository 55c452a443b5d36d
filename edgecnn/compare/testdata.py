"""The test frames a comparison runs on, loaded once and shared by every variant (numpy/OpenCV only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data import imagefolder
from edgecnn.data import masks as maskdata
from edgecnn.data.navigation import NavSample, map_spec_for, read_navigation
from edgecnn.data.steering import load_steering_dataset
from edgecnn.errors import DataError
from edgecnn.preprocess import load_image, prepare
from edgecnn.quantize.calibration import in_calibration, load_calibration
from edgecnn.runtime.evaluate import Inputs, load_model_inputs


@dataclass(frozen=True)
class TestData:
    """Prepared test inputs and their targets.

    Attributes:
        inputs: float32 (N, h, w, c) model inputs, prepared by :func:`edgecnn.preprocess.prepare`; navigate:
            ``{"image": float32 (N, h, w, 3), "map": float32 (N, S, S, C) = raster / 255}``.
        targets: int (N,) class indexes (classify), float (N,) steering in [-1, 1] (steer, navigate), or uint8
            (N, h, w) class masks at the model's input size (segment; 255 = ignore).
        paths: the N source files (absolute; navigate: the camera images).
        source: where they came from, for the report.
        samples: navigate: the N frames with their junction labels, in order (for
            :func:`edgecnn.data.navigation.navigation_metrics`); empty otherwise.
    """

    inputs: Inputs
    targets: np.ndarray
    paths: tuple[str, ...]
    source: str
    samples: tuple[NavSample, ...] = ()


def _same_root(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def select_test_data(run, data: str | None, limit: int | None = None) -> TestData:
    """Pick the test frames for ``run`` (a :class:`edgecnn.train.run.RunInfo`).

    Without ``data`` (or when ``data`` is the folder the run was trained on) the run's held-out test split is
    used; otherwise every usable frame of ``data``. Classification labels are matched to the run's by name.
    """
    contract: Contract = run.contract
    if run.task == "navigate":
        return _navigation_test_data(run, data, limit)
    if data is None or _same_root(data, run.data):
        rows = run.splits.get("test", ())
        if not rows:
            raise DataError(f"{run.root} has no test split; pass --data with test images")
        paths = [i.path for i in rows]
        targets = [i.target for i in rows]
        source = f"test split of {run.data}"
    elif run.task == "segment":
        folder = maskdata.scan(data)
        if folder.classes != tuple(contract.labels):
            raise DataError(f"{data} has classes {list(folder.classes)}, the model {list(contract.labels)}")
        paths = [s.image for s in folder.samples]
        targets = [0] * len(paths)
        source = str(Path(data).resolve())
    elif run.task == "classify":
        folder = imagefolder.scan(data)
        index = {name: i for i, name in enumerate(contract.labels)}
        unknown = [c for c in folder.classes if c not in index]
        if unknown:
            raise DataError(f"{data} has classes the model does not know: {', '.join(unknown)}")
        paths = [s.path for s in folder.samples]
        targets = [index[folder.classes[s.label]] for s in folder.samples]
        source = str(Path(data).resolve())
    else:
        ds = load_steering_dataset(data)
        paths = [s.path for s in ds.samples]
        targets = [s.steering for s in ds.samples]
        source = str(Path(data).resolve())
    if limit is not None and len(paths) > limit:
        # evenly spaced, so a recording keeps its spread of situations
        idx = np.linspace(0, len(paths) - 1, limit).round().astype(int)
        paths = [paths[i] for i in idx]
        targets = [targets[i] for i in idx]
    inputs = np.stack([prepare(load_image(p), contract) for p in paths])
    if run.task == "segment":  # the masks, cropped as the images and nearest-neighbour to the model's input size
        masks = [maskdata.mask_for_model(maskdata.load_mask(maskdata.mask_path_for(p), len(contract.labels)), contract)
                 for p in paths]
        return TestData(inputs, np.stack(masks), tuple(paths), source)
    dtype: Any = np.int64 if run.task == "classify" else np.float64
    return TestData(inputs, np.asarray(targets, dtype=dtype), tuple(paths), source)


def _navigation_test_data(run, data: str | None, limit: int | None) -> TestData:
    """A navigate run's test frames: its held-out test split (no ``data``, or the folder it was trained on), or
    every usable frame of another ``edgecnn data roads --networks`` folder (read by
    :func:`~edgecnn.data.navigation.read_navigation`, DataError for any other kind of folder), whose maps must
    have the run's map geometry and channels (DataError, one line, otherwise). At most ``limit``, evenly spaced."""
    contract: Contract = run.contract
    if data is None or _same_root(data, run.data):
        rows = run.splits.get("test", ())
        if not rows:
            raise DataError(f"{run.root} has no test split; pass --data with a `data roads --networks` folder")
        samples = [NavSample(i.path, float(i.target), i.map or "", i.junction) for i in rows]
        source = f"test split of {run.data}"
    else:
        found, spec, _, _ = read_navigation(data)
        ours = contract.map_spec
        theirs = map_spec_for(spec, ours.routed)
        if theirs != ours:
            raise DataError(f"{data}: its maps are {theirs.size} px over {theirs.extent_m} m ({theirs.behind_m} m "
                            f"behind), the model's {ours.size} px over {ours.extent_m} m ({ours.behind_m} m behind); "
                            "compare on data made with the model's map spec")
        samples = list(found)
        source = str(Path(data).resolve())
    if limit is not None and len(samples) > limit:
        samples = [samples[i] for i in np.linspace(0, len(samples) - 1, limit).round().astype(int)]
    paths = [s.path for s in samples]
    inputs = load_model_inputs(paths, contract, [s.map_path for s in samples])
    return TestData(inputs, np.asarray([s.steering for s in samples], np.float64), tuple(paths), source,
                    tuple(samples))


def calibration_overlap(test: TestData, calibration: str | None) -> int | None:
    """How many test frames are also in the calibration set, as the same file or the same bytes (None when
    unknown)."""
    if not calibration:
        return None

    try:
        calib = load_calibration(calibration)
    except Exception:  # an unreadable manifest is reported by quantize itself; here it is just "unknown"
        return None
    return sum(in_calibration(calib, test.paths))
