"""The built-in steering data set: procedurally rendered road frames labelled by an ideal controller.

Each road (see :mod:`edgecnn.sim.road`) gets a scene (surfaces, markings, shadows, distractors, surroundings;
:mod:`edgecnn.sim.render`). Frames are rendered from random poses along it: the car at a lateral offset and with a
heading error, the camera's height, pitch, roll and field of view jittered, the lighting varied per frame. The
label is the steering pure pursuit would apply from that pose (:mod:`edgecnn.sim.pursuit`), so off-centre frames
teach recovery, as NVIDIA's shifted cameras did.

Written as the CSV layout ``labels.csv`` (``image,steering``) + ``images/*.jpg`` (JPEG quality 95, as a Donkey Car records) + ``roads.json`` (provenance), so
:func:`edgecnn.data.steering.load_steering_dataset` reads it like any recording. Rows are in road order, poses
sorted along each road, so a time-block split keeps each road's neighbouring frames together.

Deterministic: road ``r`` depends only on ``(seed, DATA_STREAM, r)``. The simulator draws its roads from
``SIM_STREAM``, so test roads are never training roads, whatever seeds the user picks.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.errors import DataError, OutputError
from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.camera import Camera
from edgecnn.sim.pursuit import pure_pursuit
from edgecnn.sim.render import LABEL_CLASSES, build_scene, render, render_labels
from edgecnn.sim.road import DATA_STREAM, SIM_STREAM, make_road, road_rng  # noqa: F401  (SIM_STREAM, road_rng re-exported)

FORMAT = "edgecnn-roads-1"
# The defaults are the ones measured to drive: few frames per road give many different scenes (lighting, surfaces,
# markings, camera poses), which is what lets a model keep its lane on roads it has never seen. With these and
# `edgecnn train OUT --task steer` at its defaults, pilotnet drove 20 unseen roads with autonomy 1.00 int8.
DEFAULT_FRAMES = 8000
DEFAULT_PER_ROAD = 4


def generate(
    out: str | Path,
    n: int = DEFAULT_FRAMES,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    per_road: int = DEFAULT_PER_ROAD,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    masks: bool = False,
) -> Path:
    """Write ``n`` frames of ``size`` = (width, height) to ``out`` (``labels.csv``, ``images/``, ``roads.json``).

    The folder is built beside ``out`` and renamed into place at the end, so an interrupted run leaves nothing
    half-written. With ``masks``, also ``masks/NNNNNN.png`` (per pixel 0 everything else, 1 road surface, 2 lane
    marking, from the renderer's own geometry: :func:`edgecnn.sim.render.render_labels`) and ``labels.txt``
    (``road``, ``marking``), the segmentation layout of :mod:`edgecnn.data.masks`; the frames are the same.
    Raises DataError for bad arguments, OutputError when ``out`` exists (without ``overwrite``) or
    cannot be written.
    """
    out = Path(out)
    if n < 1:
        raise DataError(f"--n must be at least 1, got: {n}")
    if per_road < 1:
        raise DataError(f"frames per road must be at least 1, got: {per_road}")
    width, height = size
    car = CarParams()
    rows: list[tuple[str, float]] = []
    n_roads = math.ceil(n / per_road)
    with staged_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        if masks:
            (tmp / "masks").mkdir()
            (tmp / "labels.txt").write_text("".join(f"{c}\n" for c in LABEL_CLASSES[1:]), encoding="utf-8")
        for r in range(n_roads):
            rng = road_rng(seed, DATA_STREAM, r)
            count = min(per_road, n - r * per_road)
            road = make_road(rng, length=max(6.0, 0.3 * count))
            scene = build_scene(road, rng, labels=masks)
            for s in np.sort(rng.uniform(0.0, road.length, count)):
                x, y, h = road.pose_at(float(s))
                hw = road.half_width
                offset = float(np.clip(rng.normal(0, 0.45 * hw), -1.1 * hw, 1.1 * hw))
                heading_err = float(np.clip(rng.normal(0, 0.15), -0.45, 0.45))
                pose = Pose(x - offset * math.sin(h), y + offset * math.cos(h), h + heading_err)
                cam = Camera(
                    width=width,
                    height=height,
                    hfov_deg=float(rng.uniform(112, 128)),
                    mount_height=float(rng.uniform(0.17, 0.23)),
                    pitch_deg=float(rng.uniform(9, 15)),
                    roll_deg=float(rng.normal(0, 1.5)),
                )
                light = (scene.gain * rng.uniform(0.8, 1.2, 3).astype(np.float32), scene.gamma * float(rng.uniform(0.9, 1.1)))
                frame = render(scene, pose, cam, car, rng=rng, light=light)
                name = f"images/{len(rows):06d}.jpg"
                if not cv2.imwrite(str(tmp / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise OutputError(f"cannot write {tmp / name} (disk full?)")
                if masks:
                    mask_name = f"masks/{len(rows):06d}.png"
                    if not cv2.imwrite(str(tmp / mask_name), render_labels(scene, pose, cam, car)):
                        raise OutputError(f"cannot write {tmp / mask_name} (disk full?)")
                steering = pure_pursuit(road, pose, car, hint_s=float(s))
                rows.append((name, round(steering, 6)))
                if progress:
                    progress(len(rows), n)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "steering"])
        writer.writerows(rows)
        (tmp / "labels.csv").write_text(buf.getvalue(), encoding="utf-8")
        meta = {
            "format": FORMAT,
            "frames": len(rows),
            "size": [width, height],
            "seed": seed,
            "per_road": per_road,
            "roads": n_roads,
            "stream": DATA_STREAM,
            "note": "road r uses numpy default_rng([seed, stream, r]); the simulator uses stream 1, disjoint",
        }
        (tmp / "roads.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
