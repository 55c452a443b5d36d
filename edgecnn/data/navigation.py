"""Navigation data (``edgecnn data roads OUT --networks``) and its figures, TensorFlow-free (data layer).

The layout: ``labels.csv`` with ``image,steering,map,network,route,junction,branch,options,...`` (``map`` =
``maps/NNNNNN.png``, a uint8 PNG with channel 0 = roads, 1 = route, rasterised at the *estimated* pose) and
``roads.json`` (``map_spec``, ``pose_noise``). Read here for training (:mod:`edgecnn.train.tasks.navigate`) and
for ``edgecnn compare`` alike, with one reader and one set of metrics.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.contract import Contract
from edgecnn.data.steering_samples import BAD_ANGLE, BAD_ROW, MISSING_IMAGE, check_unit
from edgecnn.errors import DataError
from edgecnn.junction import ROAD, JunctionLabel
from edgecnn.metrics import steering_metrics
from edgecnn.mixture import IDEAL_COVERAGE, coverage, junction_metrics, nll
from edgecnn.navmap import MapSpec, PoseNoise
from edgecnn.outputs import decode_steering

ROUTED_CHANNELS = ("roads", "route")
UNROUTED_CHANNELS = ("roads",)
MISSING_MAP = "missing map raster"
MAX_BRANCHES = 3  # a crossroads offers left, straight and right
JUNCTION_LABELS = ("auto", "route", "branches")


@dataclass(frozen=True)
class NavSample:
    """One frame of a navigation data set.

    Attributes:
        path: absolute camera image path. map_path: absolute map PNG path.
        steering: the ideal driver's steering in [-1, 1], positive = right.
        junction: the frame's junction annotation (:class:`~edgecnn.junction.JunctionLabel`; kind ``""`` on
            plain road).
        network, route: ids of the network and route the frame was driven on.
    """

    path: str
    steering: float
    map_path: str
    junction: JunctionLabel = ROAD
    network: str = ""
    route: str = ""

    def entry(self) -> list[Any]:
        """The split.json row: ``[image, steering, map, junction, branch, options, to_turn, branch_steering]``."""
        return [self.path, self.steering, self.map_path, *self.junction.cells()]


def read_navigation(root: str | Path) -> tuple[tuple[NavSample, ...], dict[str, Any], dict[str, Any], dict[str, int]]:
    """Read ``root/labels.csv`` and ``root/roads.json`` -> (samples in file order, map_spec dict, pose_noise dict,
    skipped-row counts). Rows are skipped exactly where the plain steering reader skips them (bad angle, missing
    image), plus rows whose map raster is missing. DataError (one line) for a folder that is not this layout."""
    root = Path(root).expanduser()
    labels, meta = root / "labels.csv", root / "roads.json"
    if not labels.is_file():
        raise DataError(f"{root}: no labels.csv; make navigation data with `edgecnn data roads OUT --networks`")
    try:
        info = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
    except (OSError, ValueError) as exc:
        raise DataError(f"{meta} is not valid JSON ({exc}); regenerate the data") from exc
    try:
        with open(labels, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{labels}: cannot read as CSV ({exc})") from exc
    if not rows or "map" not in rows[0] or "image" not in rows[0] or "steering" not in rows[0]:
        raise DataError(f"{labels} has no map column: not `edgecnn data roads --networks` output (train it with "
                        "--task steer, or regenerate with --networks)")
    if not info.get("map_spec"):
        raise DataError(f"{meta}: no map_spec; regenerate the data with `edgecnn data roads OUT --networks`")
    base = labels.parent.resolve()
    faults: Counter[str] = Counter()
    samples = []
    for r in rows:
        if r.get("image") is None or r.get("steering") is None:
            faults[BAD_ROW] += 1
            continue
        steering = check_unit(r["steering"])
        if steering is None:
            faults[BAD_ANGLE] += 1
            continue
        img = base / r["image"].strip()
        if not r["image"].strip() or not img.is_file() or img.stat().st_size == 0:
            faults[MISSING_IMAGE] += 1
            continue
        grid = base / (r.get("map") or "").strip()
        if not (r.get("map") or "").strip() or not grid.is_file():
            faults[MISSING_MAP] += 1
            continue
        label = JunctionLabel(_cell(r, "junction"), _cell(r, "branch"), _cell(r, "options"), _metres(r.get("to_turn")),
                              _cell(r, "branch_steering"))
        samples.append(NavSample(str(img.resolve()), steering, str(grid.resolve()), label, _cell(r, "network"),
                                 _cell(r, "route")))
    if not samples:
        raise DataError(f"{labels}: no usable frames ({', '.join(f'{n} {k}' for k, n in faults.items())})")
    return tuple(samples), dict(info["map_spec"]), dict(info.get("pose_noise") or {}), dict(faults)


def _cell(row: dict[str, str | None], column: str) -> str:
    """A labels.csv cell, stripped; ``""`` when the column is absent."""
    return (row.get(column) or "").strip()


def has_branch_steering(samples) -> bool:
    """True when any frame of ``samples`` (:class:`NavSample`) knows every branch's steering (data written with
    the ``branch_steering`` column)."""
    return any(len(s.junction.commands()) >= 2 for s in samples)


def branch_targets(samples, every_branch: bool) -> tuple[np.ndarray, int]:
    """Training targets of a navigation model -> (``float32 (N, 2 * MAX_BRANCHES)``, frames given every branch).

    Row layout: ``[steering_0 .. steering_{M-1}, weight_0 .. weight_{M-1}]`` (steering in [-1, 1], positive =
    right; weights >= 0 summing to 1), for the weighted loss :func:`edgecnn.models.gmm.gmm_nll_weighted`.
    Column 0 is always the frame's own label (the route's branch), so ``y[:, 0]`` is the steering target.

    ``every_branch`` (an unrouted model): on a junction's shared approach (``to_turn >= 0``), where camera and
    roads map are the same whichever branch the route takes, a frame whose ``branch_steering`` is known gets
    each branch's steering at weight ``1/k`` (k branches): its loss is the NLL averaged over the branches, the
    expected loss had the route picked a branch at random, instead of the one branch this route happened to
    take. Everywhere else (plain road, past the turn-in point, routed models, older data) one label, weight 1.
    """
    y = np.zeros((len(samples), 2 * MAX_BRANCHES), np.float32)
    spread = 0
    for i, s in enumerate(samples):
        y[i, 0], y[i, MAX_BRANCHES] = s.steering, 1.0
        j = s.junction
        if not every_branch or j.to_turn is None or j.to_turn < 0:
            continue
        cmds = j.commands()
        others = [v for b, v in cmds.items() if b != j.branch]
        if j.branch not in cmds or not others or len(cmds) > MAX_BRANCHES:
            continue
        y[i, 1 : 1 + len(others)] = others
        y[i, MAX_BRANCHES : MAX_BRANCHES + len(cmds)] = 1.0 / len(cmds)
        spread += 1
    return y, spread


def _metres(text: str | None) -> float | None:
    """A ``to_turn`` cell as metres, None when blank or not a finite number."""
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def map_spec_for(spec: dict[str, Any], routed: bool) -> MapSpec:
    """The data's map spec (``roads.json``) with the channels this model reads; DataError when malformed."""
    try:
        full = MapSpec.from_dict(spec)
        chosen = ROUTED_CHANNELS if routed else UNROUTED_CHANNELS
        return dataclasses.replace(full, channels=chosen)
    except (ValueError, TypeError) as exc:
        raise DataError(f"roads.json: map_spec is not valid ({exc}); regenerate the data") from exc


def pose_noise_for(noise: dict[str, Any]) -> PoseNoise | None:
    """The data's pose noise (``roads.json``), None when it does not say; DataError when malformed."""
    try:
        return PoseNoise.from_dict(noise) if noise else None
    except (ValueError, TypeError) as exc:
        raise DataError(f"roads.json: pose_noise is not valid ({exc}); regenerate the data") from exc


def navigation_metrics(raw: np.ndarray, samples, contract: Contract, baseline: float | None = None) -> dict[str, Any]:
    """metrics.json figures of a navigation (or any gmm steering) model from its raw outputs ``float (N, 3K)`` on
    ``samples`` (objects with ``steering`` and ``junction``, a :class:`~edgecnn.junction.JunctionLabel`), in
    order."""
    target = np.array([s.steering for s in samples], np.float64)
    decoded = decode_steering(raw, contract)
    metrics = steering_metrics(decoded.steering, target, decoded.std, baseline=baseline)
    metrics["nll"] = float(np.mean([nll(r, t) for r, t in zip(raw, target)]))
    metrics["coverage"] = coverage(raw, target)
    metrics["coverage_ideal"] = {k: round(v, 4) for k, v in IDEAL_COVERAGE.items()}
    routed = bool((getattr(contract, "map", None) or {}).get("routed", False))
    metrics["junctions"] = junction_metrics(raw, target, [s.junction for s in samples], routed=routed)
    return metrics
