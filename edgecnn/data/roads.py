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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.data.parallel import render_pieces
from edgecnn.errors import DataError, OutputError
from edgecnn.sim.bicycle import CarParams, Pose
from edgecnn.sim.camera import Camera
from edgecnn.sim.pursuit import pure_pursuit
from edgecnn.sim.render import LABEL_CLASSES, Scene, build_scene, render, render_labels
from edgecnn.sim.road import DATA_STREAM, SIM_STREAM, Road, make_road, road_rng  # noqa: F401  (SIM_STREAM, road_rng re-exported)

FORMAT = "edgecnn-roads-1"
# The defaults are the ones measured to drive: few frames per road give many different scenes (lighting, surfaces,
# markings, camera poses), which is what lets a model keep its lane on roads it has never seen. With these and
# `edgecnn train OUT --task steer` at its defaults, pilotnet drove 20 unseen roads with autonomy 1.00 int8.
DEFAULT_FRAMES = 8000
DEFAULT_PER_ROAD = 4
JPEG = (cv2.IMWRITE_JPEG_QUALITY, 95)  # as a Donkey Car records


def write_image(folder: Path, name: str, image: np.ndarray, params: tuple[int, ...] = ()) -> None:
    """Write ``image`` (uint8, OpenCV channel order) to ``folder / name``; OutputError when it cannot."""
    if not cv2.imwrite(str(folder / name), image, list(params)):
        raise OutputError(f"cannot write {folder / name} (disk full?)")


def write_labels(path: Path, header: list[str] | tuple[str, ...], rows: list) -> None:
    """``labels.csv``: the header row, then ``rows`` (``\n`` line ends, UTF-8)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def random_view(rng: np.random.Generator, road: Road, s: float, scene: Scene, width: int,
                height: int) -> tuple[Pose, Camera, tuple[np.ndarray, float]]:
    """A training view at arc length ``s`` (m) of ``road``: the car's pose (a lateral offset, 1 sigma 0.45
    half-widths, and a heading error, 1 sigma 0.15 rad, both clipped), the camera (``width`` x ``height``
    pixels; field of view, height, pitch and roll jittered) and the frame's lighting (``scene``'s gain and gamma
    varied), as :func:`~edgecnn.sim.render.render` takes them. Off-centre poses teach recovery."""
    x, y, h = road.pose_at(s)
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
    return pose, cam, light


def generate(
    out: str | Path,
    n: int = DEFAULT_FRAMES,
    size: tuple[int, int] = (160, 120),
    seed: int = 0,
    per_road: int = DEFAULT_PER_ROAD,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    masks: bool = False,
    workers: int = 1,
) -> Path:
    """Write ``n`` frames of ``size`` = (width, height) to ``out`` (``labels.csv``, ``images/``, ``roads.json``).

    The folder is built beside ``out`` and renamed into place at the end, so an interrupted run leaves nothing
    half-written. With ``masks``, also ``masks/NNNNNN.png`` (per pixel 0 everything else, 1 road surface, 2 lane
    marking, from the renderer's own geometry: :func:`edgecnn.sim.render.render_labels`) and ``labels.txt``
    (``road``, ``marking``), the segmentation layout of :mod:`edgecnn.data.masks`; the frames are the same.
    ``workers`` > 1 renders blocks of :data:`ROADS_PER_TASK` roads in that many processes; every road has its own
    random stream and its frame indices are known in advance, so the files are the same for any ``workers``.
    Raises DataError for bad arguments, OutputError when ``out`` exists (without ``overwrite``) or
    cannot be written.
    """
    out = Path(out)
    if n < 1:
        raise DataError(f"--n must be at least 1, got: {n}")
    if per_road < 1:
        raise DataError(f"frames per road must be at least 1, got: {per_road}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, got: {workers}")
    n_roads = math.ceil(n / per_road)
    job = _RoadJob(n=n, size=tuple(size), seed=seed, per_road=per_road, masks=masks)
    with staged_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        if masks:
            (tmp / "masks").mkdir()
            (tmp / "labels.txt").write_text("".join(f"{c}\n" for c in LABEL_CLASSES[1:]), encoding="utf-8")
        blocks = [(r, min(r + ROADS_PER_TASK, n_roads)) for r in range(0, n_roads, ROADS_PER_TASK)]
        parts = render_pieces(_render_roads, [(job, tmp, a, b) for a, b in blocks], workers, n, progress)
        rows = [row for part in parts for row in part]
        write_labels(tmp / "labels.csv", ["image", "steering"], rows)
        meta = {
            "format": FORMAT,
            "frames": len(rows),
            "size": list(job.size),
            "seed": seed,
            "per_road": per_road,
            "roads": n_roads,
            "stream": DATA_STREAM,
            "note": "road r uses numpy default_rng([seed, stream, r]); the simulator uses stream 1, disjoint",
        }
        (tmp / "roads.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


ROADS_PER_TASK = 50  # roads one worker renders per task (a few seconds of work) when ``workers`` > 1


@dataclass(frozen=True)
class _RoadJob:
    """What every road of one :func:`generate` call shares (picklable, for the worker processes)."""

    n: int
    size: tuple[int, int]
    seed: int
    per_road: int
    masks: bool


def _render_roads(job: _RoadJob, tmp: Path, first: int, last: int,
                  tick: Callable[[], None] | None = None) -> list[tuple[str, float]]:
    """Render roads ``first`` .. ``last - 1`` into ``tmp`` (road r's frames are numbered from r x per_road);
    their labels.csv rows. ``tick`` is called after each frame."""
    width, height = job.size
    car = CarParams()
    rows: list[tuple[str, float]] = []
    for r in range(first, last):
        rng = road_rng(job.seed, DATA_STREAM, r)
        count = min(job.per_road, job.n - r * job.per_road)
        road = make_road(rng, length=max(6.0, 0.3 * count))
        scene = build_scene(road, rng, labels=job.masks)
        for i, s in enumerate(np.sort(rng.uniform(0.0, road.length, count)), start=r * job.per_road):
            pose, cam, light = random_view(rng, road, float(s), scene, width, height)
            frame = render(scene, pose, cam, car, rng=rng, light=light)
            name = f"images/{i:06d}.jpg"
            write_image(tmp, name, frame, JPEG)
            if job.masks:
                write_image(tmp, f"masks/{i:06d}.png", render_labels(scene, pose, cam, car))
            rows.append((name, round(pure_pursuit(road, pose, car, hint_s=float(s)), 6)))
            if tick:
                tick()
    return rows
