"""Honest replay: every frame of a recording, in recording order, through one or more steering models.

``edgecnn replay SRC --model A [--model B ...] --out DIR [--video OUT.mp4]``. For each frame: the human's label
(when the recording has one) and each model's raw prediction: no slew limit, no deadline, no dropped frames (the
limit applies to a live car, in frame time; an evaluation scores the model). Per model: MAE, RMSE, p95 absolute
error and sign agreement (:func:`edgecnn.metrics.steering_metrics`, the very function ``train`` scores its test
split with, so the numbers are comparable), and the MAE per steering bin.

Sources, each read in recording order:

- a Donkey Car tub (or a folder of tubs): catalog index order, deleted records skipped (:mod:`edgecnn.data.tub`);
  ``_timestamp_ms`` kept as the frame's recording time;
- a steering CSV (``image,steering[,throttle]``) or a folder holding ``labels.csv``: row order;
- a video file: frame order, until the stream ends (no labels);
- a folder of images: natural (numeric) order of the names, ``2.jpg`` before ``10.jpg`` (no labels).

:func:`edgecnn.runtime.recording.recorded_images` is the ordering rule for image sources, shared with ``steer``.

Example::

    report = replay("data/tub", ["pilot.tflite", "steer_int8.tflite"], out_dir="replay/")
    report.models["steer_int8"]["mae"]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.atomic import atomic_path, write_json
from edgecnn.errors import DataError, OutputError, SourceError
from edgecnn.metrics import steering_metrics
from edgecnn.outputs import decode_steering
from edgecnn.preprocess import decode_image
from edgecnn.runtime.pilots import SteeringOptions, load_steering_model
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.recording import recorded_images
from edgecnn.runtime.sources import VIDEO_EXTENSIONS

# Steering bins for the per-bin MAE (the same edges compare uses): hard left, left, straight, right, hard right.
BINS = (-1.0, -0.5, -0.15, 0.15, 0.5, 1.0)


@dataclass(frozen=True)
class ReplayFrame:
    """One decoded frame of a recording: ``image`` uint8 HxWx3 BGR; ``file`` its file name (None for video)."""

    index: int
    image: np.ndarray
    file: str | None
    steering: float | None
    throttle: float | None
    timestamp: float | None


def iter_recording(src: str | Path) -> tuple[str, float | None, Iterator[ReplayFrame]]:
    """``(kind, fps or None, frames)`` of any recording (tub, CSV, image folder, video), in recording order.

    An image that cannot be decoded raises DataError (a replay scores every frame or none)."""
    p = Path(src).expanduser()
    if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS:
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise SourceError(f"{p}: cannot open the video")
        fps = cap.get(cv2.CAP_PROP_FPS) or None

        def video() -> Iterator[ReplayFrame]:
            i = 0
            try:
                while True:
                    ok, img = cap.read()
                    if not ok or img is None:
                        return
                    t = cap.get(cv2.CAP_PROP_POS_MSEC)
                    yield ReplayFrame(i, img, None, None, None, t / 1000.0 if t else None)
                    i += 1
            finally:
                cap.release()

        return "video", fps, video()
    kind, images = recorded_images(p)
    stamps = [im.timestamp for im in images if im.timestamp is not None]
    fps = None
    if len(stamps) > 2:
        dt = float(np.median(np.diff(stamps)))
        fps = 1.0 / dt if dt > 0 else None

    def files() -> Iterator[ReplayFrame]:
        for i, im in enumerate(images):
            image = decode_image(im.path.read_bytes(), str(im.path))
            yield ReplayFrame(i, image, im.path.name, im.steering, im.throttle, im.timestamp)

    return kind, fps, files()


@dataclass(frozen=True)
class ReplayReport:
    """What ``replay`` wrote to ``report.json`` (see :meth:`to_dict`)."""

    source: str
    kind: str
    frames: int
    labelled: bool
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    video: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "kind", "frames", "labelled", "video", "models": {name: {"path", "kind", "mae", "rmse",
        "p95_abs_error", "sign_agreement", "test_count", "per_bin", "predictions": [{"frame", "file",
        "label", "steering", "throttle"}]}}}``; metric keys only when the recording has labels."""
        return {"source": self.source, "kind": self.kind, "frames": self.frames, "labelled": self.labelled,
                "video": self.video, "models": self.models}

    def format(self) -> str:
        """A table: one row per model."""
        lines = [f"{self.frames} frames of {self.source} ({self.kind}); "
                 + ("labels: human steering" if self.labelled else "no labels")]
        if self.labelled:
            lines.append(f"{'model':28s} {'MAE':>8s} {'RMSE':>8s} {'p95':>8s} {'sign':>7s}")
            for name, m in self.models.items():
                lines.append(f"{name[:28]:28s} {m['mae']:8.4f} {m['rmse']:8.4f} {m['p95_abs_error']:8.4f} "
                             f"{m['sign_agreement']:7.3f}")
        else:
            for name, m in self.models.items():
                s = np.array([p["steering"] for p in m["predictions"]])
                lines.append(f"{name[:28]:28s} mean steering {s.mean():+.4f}, std {s.std():.4f}")
        return "\n".join(lines)


def per_bin_mae(pred: np.ndarray, target: np.ndarray, bins: tuple[float, ...] = BINS) -> list[dict[str, Any]]:
    """MAE per bin of the human's steering: ``[{"bin": [lo, hi], "count", "mae"}]`` (None for an empty bin)."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        m = (target >= lo) & (target <= hi if hi == bins[-1] else target < hi)
        out.append({"bin": [lo, hi], "count": int(m.sum()),
                    "mae": float(np.abs(pred[m] - target[m]).mean()) if m.any() else None})
    return out


def _names(models: list[str | Path]) -> list[str]:
    names: list[str] = []
    for m in models:
        base = Path(m).stem
        name, k = base, 2
        while name in names:
            name, k = f"{base}_{k}", k + 1
        names.append(name)
    return names


def replay(src: str | Path, models: list[str | Path], out_dir: str | Path | None = None,
           video: str | Path | None = None, max_frames: int | None = None, pilot: str | None = None,
           threads: int | None = None, delegate: str | None = None,
           options: SteeringOptions | None = None) -> ReplayReport:
    """Run every model on every frame of ``src`` and score them against the human's steering.

    Args:
        src: tub, CSV, image folder or video (see the module docstring).
        models: .tflite paths (edgecnn steering models or donkeycar pilots).
        out_dir: where ``report.json`` goes (None: not written).
        video: an .mp4 to write: the frame, the human's and each model's steering gauge, per-frame error.
        max_frames: stop after this many frames (None: all).
        pilot: ``donkey-linear``/``donkey-categorical`` to force how every model without an edgecnn contract is
            read (None: recognised by itself).
        threads, delegate: interpreter settings.
        options: how to read third-party steering models (no edgecnn contract, not a donkeycar pilot).

    Raises ModelError for a model that is not a steering model (a classifier), DataError/SourceError for a
    recording that cannot be read, OutputError for an output that cannot be written.
    """
    if not models:
        raise DataError("replay needs at least one --model")
    names = _names(models)
    predictors: list[Predictor] = [load_steering_model(m, pilot=pilot, threads=threads, delegate=delegate,
                                                       command="replay", options=options) for m in models]
    kind, fps, frames = iter_recording(src)
    preds: dict[str, list[tuple[float, float | None]]] = {n: [] for n in names}
    labels: list[float | None] = []
    files: list[str | None] = []
    with contextlib.ExitStack() as stack:
        writer = None
        if video:
            tmp = stack.enter_context(atomic_path(video, suffix=Path(video).suffix or ".mp4"))
            # mp4v allows a time base up to 65535; a tub recorded every 3 ms says 333 FPS: play it at <= 60.
            writer = SideBySideVideo(tmp, float(round(min(60.0, max(1.0, fps or 20.0)))), names, shown=video)
            stack.callback(writer.release)  # runs first: the file is complete before it is renamed into place
        for frame in frames:
            if max_frames is not None and frame.index >= max_frames:
                break
            row: list[float] = []
            for name, p in zip(names, predictors):
                batch = decode_steering(p.predict(frame.image)[None], p.contract)
                s = float(batch.steering[0])
                t = None if batch.throttle is None else float(batch.throttle[0])
                preds[name].append((s, t))
                row.append(s)
            labels.append(frame.steering)
            files.append(frame.file)
            if writer is not None:
                writer.add(frame, row)
    n = len(labels)
    if n == 0:
        raise SourceError(f"{src}: no frames")
    labelled = all(v is not None for v in labels)
    target = np.array([v if v is not None else math.nan for v in labels], np.float64)
    report_models: dict[str, dict[str, Any]] = {}
    for name, model, p in zip(names, models, predictors):
        s = np.array([v for v, _ in preds[name]], np.float64)
        entry: dict[str, Any] = {"path": str(model), "kind": p.contract.extra.get("pilot") or
                                 f"edgecnn {p.contract.head}"}
        if labelled:
            entry.update(steering_metrics(s, target))
            entry["per_bin"] = per_bin_mae(s, target)
        entry["predictions"] = [
            {"frame": i, "file": files[i], "label": labels[i], "steering": round(preds[name][i][0], 7),
             "throttle": None if preds[name][i][1] is None else round(preds[name][i][1], 7)}
            for i in range(n)]
        report_models[name] = entry
    report = ReplayReport(str(src), kind, n, labelled, report_models, str(video) if video else None)
    if out_dir is not None:
        write_json(Path(out_dir) / "report.json", report.to_dict())
    return report


class SideBySideVideo:
    """The side-by-side video: the frame (scaled to 240 px high) beside one steering gauge per row (the human's,
    then each model's) with its value and its per-frame error against the human; mp4v, written with OpenCV."""

    ROW_H, PANEL_W, FRAME_H = 44, 360, 240

    def __init__(self, path: str | Path, fps: float, names: list[str], shown: str | Path | None = None) -> None:
        self.path, self.fps, self.names = Path(path), fps, names
        self.shown = shown or path
        self._writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, frame_w: int) -> None:
        height = max(self.FRAME_H, self.ROW_H * (len(self.names) + 1) + 10)
        self.size = (frame_w + self.PANEL_W, height)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
        if not self._writer.isOpened():
            raise OutputError(f"cannot write the video {self.shown} (OpenCV could not open an mp4v writer)")

    def add(self, frame: ReplayFrame, steering: list[float]) -> None:
        h, w = frame.image.shape[:2]
        fw = round(w * self.FRAME_H / h)
        if self._writer is None:
            self._open(fw)
        assert self.size is not None
        canvas = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        canvas[: self.FRAME_H, :fw] = cv2.resize(frame.image, (fw, self.FRAME_H), interpolation=cv2.INTER_LINEAR)
        label = frame.steering
        rows = [("human", label, None, (255, 255, 255))]
        colours = [(0, 200, 255), (255, 160, 0), (0, 255, 0), (255, 0, 255), (0, 128, 255)]
        for i, (name, s) in enumerate(zip(self.names, steering)):
            rows.append((name, s, None if label is None else abs(s - label), colours[i % len(colours)]))
        x0 = fw + 10
        for r, (name, value, err, colour) in enumerate(rows):
            y = 8 + r * self.ROW_H
            text = f"{name[:18]} " + ("--" if value is None else f"{value:+.3f}")
            if err is not None:
                text += f"  err {err:.3f}"
            cv2.putText(canvas, text, (x0, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
            gx0, gx1, gy = x0, x0 + self.PANEL_W - 30, y + 28
            cv2.line(canvas, (gx0, gy), (gx1, gy), (90, 90, 90), 2)
            mid = (gx0 + gx1) // 2
            cv2.line(canvas, (mid, gy - 6), (mid, gy + 6), (160, 160, 160), 1)
            if value is not None:
                x = round(mid + max(-1.0, min(1.0, value)) * (gx1 - gx0) / 2)
                cv2.rectangle(canvas, (min(mid, x), gy - 4), (max(mid, x), gy + 4), colour, -1)
        cv2.putText(canvas, f"#{frame.index} {frame.file or ''}", (6, self.size[1] - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (200, 200, 200), 1, cv2.LINE_AA)
        self._writer.write(canvas)  # type: ignore[union-attr]

    def release(self) -> None:
        if self._writer is not None:
            self._writer.release()
