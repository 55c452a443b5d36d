"""The segmentation loop: source -> predictor -> class map -> sinks, with per-stage latency statistics.

:func:`segment_stream` is the importable core of ``edgecnn segment``. It shares ``classify``'s pieces: the
:class:`~edgecnn.runtime.predictor.Predictor` (one preprocessing, the uint8 -> input-dtype table written into
the interpreter's own input buffer), the sources and the frame loop (:func:`~edgecnn.runtime.classify.run_loop`:
display window, recording, latency statistics). What differs is the output: the per-pixel argmax runs on the raw int8/uint8 output tensor
(:func:`edgecnn.outputs.class_argmax`, no dequantization of the map), and the class map is resized back to the
frame with nearest-neighbour (:func:`edgecnn.outputs.decode_class_map`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgecnn.atomic import write_bytes
from edgecnn.errors import ModelError, OutputError
from edgecnn.outputs import decode_class_map
from edgecnn.runtime.classify import run_loop
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.sources import Frame, Source
from edgecnn.runtime.stats import RunStats

STAGES = ("capture", "preprocess", "invoke", "postprocess")

# Overlay colours (BGR) by class index; index 0 (background) is left uncoloured.
PALETTE = np.array([[0, 0, 0], [128, 64, 128], [0, 220, 255], [60, 20, 220], [0, 160, 0], [255, 140, 0],
                    [200, 0, 200], [255, 255, 0], [0, 100, 255], [120, 120, 255]], np.uint8)


@dataclass(frozen=True)
class Segmentation:
    """The result for one frame.

    Attributes:
        frame: the frame's index in its source. time: wall-clock capture time, seconds since the epoch.
        name: image file name, or the source description.
        labels: class names by index (background first).
        shares: fraction of the frame's pixels per class, in [0, 1], summing to 1.
        classes: ``uint8 H x W`` class index per frame pixel (not part of the JSON line).
        latency_ms: milliseconds per stage: ``capture``, ``preprocess``, ``invoke``, ``postprocess`` (argmax,
            resize to the frame, shares).
    """

    frame: int
    time: float
    name: str
    labels: tuple[str, ...]
    shares: tuple[float, ...]
    classes: np.ndarray
    latency_ms: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` line: ``frame``, ``time``, ``name``, ``size`` [width, height], ``shares``
        ({label: fraction}), ``latency_ms``."""
        return {
            "frame": self.frame,
            "time": round(self.time, 6),
            "name": self.name,
            "size": [int(self.classes.shape[1]), int(self.classes.shape[0])],
            "shares": {lab: round(s, 6) for lab, s in zip(self.labels, self.shares)},
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }

    def format(self) -> str:
        """One human-readable line: ``road.jpg #0  background 51.2%  road 45.1%  marking 3.7%``."""
        parts = "  ".join(f"{lab} {100 * s:.1f}%" for lab, s in zip(self.labels, self.shares))
        return f"{self.name} #{self.frame}  {parts}" if self.name else f"#{self.frame}  {parts}"


def require_segmentation(predictor: Predictor) -> None:
    """ModelError (one line) unless ``predictor`` holds an edgecnn segmentation model."""
    c = predictor.contract
    if c.task != "segment":
        raise ModelError(f"{predictor.name} is a {c.task!r} model; segment needs a segmentation model exported by "
                         "edgecnn (trained with --task segment)")
    shape = predictor.output.shape
    if len(shape) != 4 or shape[1:3] != (c.input_height, c.input_width) or shape[3] != len(c.labels):
        raise ModelError(f"{predictor.name}: output {shape} is not a class map of {c.input_height}x{c.input_width} "
                         f"pixels x {len(c.labels)} classes")


def overlay(image: np.ndarray, result: Segmentation, alpha: float = 0.5, fps: float | None = None) -> np.ndarray:
    """A copy of ``image`` (``uint8 HxWx3 BGR``, the frame) with each non-background class tinted in its
    :data:`PALETTE` colour (``alpha`` of the colour) and the class shares (and FPS) written top left."""
    colours = PALETTE[np.arange(len(result.labels)) % len(PALETTE)]
    tint = colours[result.classes]
    blend = cv2.addWeighted(image, 1.0 - alpha, tint, alpha, 0.0)
    out = np.where((result.classes > 0)[..., None], blend, image)
    scale = max(0.35, out.shape[0] / 640)
    lines = [f"{lab} {100 * s:.0f}%" for lab, s in zip(result.labels[1:], result.shares[1:])]
    if fps:
        lines.append(f"{fps:.1f} FPS")
    for i, text in enumerate(lines):
        y = int((i + 1) * 22 * scale) + 4
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class SegmentRunner:
    """One model's per-frame work: encode into the input tensor, invoke, argmax on the raw output.

    The output is read with ``get_tensor`` in its own dtype and argmaxed there (see
    :func:`edgecnn.outputs.class_argmax`): for a 160x120x3 int8 map that skips dequantizing 57,600 values.
    """

    def __init__(self, predictor: Predictor) -> None:
        require_segmentation(predictor)
        self.predictor = predictor
        self.interpreter = predictor.interpreter
        self.scale = predictor.output.scale if predictor.output.quantized else None
        self._view = self.interpreter.tensor(predictor.input.index)

    def run(self, frame: Frame) -> Segmentation:
        p = self.predictor
        t0 = time.perf_counter()
        view = self._view()  # (1, h, w, c) over the interpreter's input buffer; dropped before invoke
        p.encode(frame.image, out=view[0])
        del view
        t1 = time.perf_counter()
        self.interpreter.invoke()
        t2 = time.perf_counter()
        raw = self.interpreter.get_tensor(p.output.index)
        decoded = decode_class_map(raw, p.contract, frame.image.shape[:2], self.scale)
        t3 = time.perf_counter()
        return Segmentation(
            frame=frame.index, time=frame.timestamp, name=frame.name, labels=tuple(p.contract.labels),
            shares=decoded.shares, classes=decoded.classes,
            latency_ms={"capture": frame.capture_ms, "preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3,
                        "postprocess": (t3 - t2) * 1e3},
        )


def mask_name(result: Segmentation) -> str:
    """``<image stem>.png`` for an image file, ``frame_NNNNNN.png`` for frames of a video or camera."""
    stem = Path(result.name).stem if result.name and Path(result.name).suffix else ""
    return f"{stem}.png" if stem else f"frame_{result.frame:06d}.png"


def write_mask(out_dir: Path, result: Segmentation) -> Path:
    """Write ``result.classes`` (uint8 class indexes, the frame's size) as an 8-bit PNG, atomically."""
    ok, buf = cv2.imencode(".png", result.classes)
    if not ok:
        raise OutputError(f"cannot encode the mask of {result.name or result.frame}")
    return write_bytes(out_dir / mask_name(result), buf.tobytes())


def segment_stream(
    source: Source,
    predictor: Predictor,
    max_frames: int | None = None,
    on_result: Callable[[Segmentation], None] | None = None,
    show: bool = False,
    record: str | Path | None = None,
    out_masks: str | Path | None = None,
    warmup: int = 5,
) -> RunStats:
    """Run the loop until the source ends, ``max_frames`` frames are done, or Ctrl-C/SIGTERM.

    Args:
        source: where frames come from (closed by this function).
        predictor: a segmentation model (ModelError otherwise, before any frame is read).
        max_frames: stop after this many frames (None: until the source ends).
        on_result: called with each :class:`Segmentation`.
        show: display the overlay in a window. record: write the overlay video to this .mp4 (atomically).
        out_masks: write each frame's class map to ``out_masks/<image stem>.png`` (frame size, class indexes).
        warmup: leading frames excluded from the statistics.

    Returns:
        RunStats with stages ``capture``, ``wait``, ``preprocess``, ``invoke``, ``postprocess``, ``sink``
        (callback, mask file, overlay, display, recording).
    """
    runner = SegmentRunner(predictor)
    masks_dir = Path(out_masks) if out_masks else None
    if masks_dir is not None:
        try:
            masks_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {masks_dir}: {exc.strerror or exc}") from exc

    def sink(result: Segmentation) -> None:
        if on_result:
            on_result(result)
        if masks_dir is not None:
            write_mask(masks_dir, result)

    return run_loop(source, runner.run, STAGES, max_frames=max_frames, on_result=sink,
                    draw=lambda image, result, fps: overlay(image, result, fps=fps), show=show, record=record,
                    warmup=warmup, window_name="edgecnn segment")
