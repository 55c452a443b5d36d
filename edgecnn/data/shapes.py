"""The lecture's "is this an X?" case study as a generated image-folder data set.

Each image shows one shape (an X, an O, a plus, a triangle, a square, ...) drawn with a random shift, scale,
rotation, stroke width, elastic deformation, colours, background clutter and noise, so that a model must learn
invariance rather than memorise pixels. Deterministic per seed: image ``i`` of class ``c`` depends only on
``(seed, c, i)``. numpy/OpenCV only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from edgecnn.atomic import staged_dir
from edgecnn.errors import DataError, OutputError
from edgecnn.labels import format_labels

CLASSES = ("circle", "plus", "square", "triangle", "x")
_SS = 4  # supersampling factor for anti-aliased strokes


def _polyline(points: np.ndarray, closed: bool) -> list[np.ndarray]:
    """Densify a polyline so that elastic deformation bends its edges, not only its corners."""
    pts = np.vstack([points, points[:1]]) if closed else points
    out = []
    for a, b in zip(pts[:-1], pts[1:]):
        t = np.linspace(0.0, 1.0, 16, endpoint=False)[:, None]
        out.append(a + (b - a) * t)
    out.append(pts[-1:])
    return [np.vstack(out)]


def _shape_strokes(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Strokes of a unit-size shape centred at the origin, as lists of (x, y) points in [-1, 1]."""
    if name == "circle":
        a = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        rx, ry = 1.0, rng.uniform(0.75, 1.0)  # an O may be oval
        return _polyline(np.stack([rx * np.cos(a), ry * np.sin(a)], 1), closed=True)
    if name == "square":
        r = rng.uniform(0.8, 1.0)
        return _polyline(np.array([[-1, -r], [1, -r], [1, r], [-1, r]], float), closed=True)
    if name == "triangle":
        apex = rng.uniform(-0.3, 0.3)
        return _polyline(np.array([[apex, -1.0], [1.0, 0.85], [-1.0, 0.85]]), closed=True)
    if name == "plus":
        return _polyline(np.array([[-1.0, 0], [1.0, 0]]), False) + _polyline(np.array([[0, -1.0], [0, 1.0]]), False)
    if name == "x":
        return _polyline(np.array([[-1.0, -1.0], [1.0, 1.0]]), False) + _polyline(
            np.array([[-1.0, 1.0], [1.0, -1.0]]), False
        )
    raise DataError(f"unknown shape: {name}")


def _contrasting_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a foreground colour (BGR, 0..255) that differ clearly in brightness."""
    bg = rng.uniform(0, 255, 3)
    lum = bg.mean()
    target = rng.uniform(0, max(lum - 90, 1)) if lum > 127 else rng.uniform(min(lum + 90, 254), 255)
    fg = np.clip(target + rng.normal(0, 40, 3), 0, 255)
    return bg, fg


def _elastic(points: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth random warp of point coordinates (a few low-frequency sine modes)."""
    out = points.copy()
    for _ in range(3):
        k = rng.uniform(0.5, 2.0, 2)
        ph = rng.uniform(0, 2 * math.pi, 2)
        amp = rng.normal(0, strength, 2)
        out[:, 0] += amp[0] * np.sin(k[0] * points[:, 1] + ph[0])
        out[:, 1] += amp[1] * np.sin(k[1] * points[:, 0] + ph[1])
    return out


def render(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image of shape ``name``: ``uint8 size x size x 3 BGR``."""
    return _draw(name, size, rng, segment=False)[0]


def render_segment(name: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One segmentation image of shape ``name`` and its mask: ``(uint8 size x size x 3 BGR, bool size x size)``.

    The segmentation variant draws the closed shapes (circle, square, triangle) filled and the open ones (plus,
    x) with strokes about three times as thick: a one- or two-pixel stroke has as many boundary pixels as inside
    ones, and its IoU measures anti-aliasing, not understanding. The mask is the shape's own coverage rendered
    with the same geometry at 4x and area-averaged like the image, true where at least half a pixel is covered.
    """
    img, coverage = _draw(name, size, rng, segment=True)
    assert coverage is not None
    return img, coverage >= 0.5


def _draw(name: str, size: int, rng: np.random.Generator, segment: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The image (``uint8 size x size x 3 BGR``) and, when ``segment``, the shape's pixel coverage
    (``float32 size x size`` in [0, 1]). With ``segment`` False the image is the classification data set's."""
    big = size * _SS
    bg, fg = _contrasting_colours(rng)
    img = np.empty((big, big, 3), np.float32)
    # Background: a colour gradient, then clutter (short faint strokes and dots) that is not a shape.
    gy, gx = np.mgrid[0:big, 0:big].astype(np.float32) / big
    grad = rng.normal(0, 25, (2, 3))
    img[:] = bg + gx[..., None] * grad[0] + gy[..., None] * grad[1]
    for _ in range(int(rng.integers(2, 7))):
        c = np.clip(bg + rng.normal(0, 45, 3), 0, 255)
        p = rng.uniform(0, big, 2)
        if rng.random() < 0.5:
            q = p + rng.normal(0, big * 0.12, 2)
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), c.tolist(), int(rng.integers(1, 3)) * _SS)
        else:
            cv2.circle(img, tuple(int(v) for v in p), int(rng.integers(1, 3)) * _SS, c.tolist(), -1)
    # The shape: scale, rotation, shift, elastic deformation, stroke width.
    scale = rng.uniform(0.22, 0.42) * big
    angle = rng.uniform(-15, 15) * math.pi / 180  # wider would turn a plus into an x
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    aspect = np.array([rng.uniform(0.8, 1.2), 1.0])
    margin = scale * 1.1
    centre = rng.uniform(margin, big - margin, 2) if big - 2 * margin > 0 else np.array([big / 2, big / 2])
    frac = rng.uniform(0.06, 0.14)
    thickness = max(1, int((frac * 2.5 + 0.1 if segment else frac) * scale))
    filled = segment and name in ("circle", "square", "triangle")
    cover = np.zeros((big, big), np.float32) if segment else None
    for stroke in _shape_strokes(name, rng):
        pts = np.round((_elastic(stroke * aspect, rng, 0.06) @ rot.T * scale + centre) * 16).astype(np.int32)
        if filled:
            cv2.fillPoly(img, [pts], fg.tolist(), cv2.LINE_AA, shift=4)
            cv2.fillPoly(cover, [pts], 1.0, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(img, [pts], False, fg.tolist(), thickness, cv2.LINE_AA, shift=4)
            if cover is not None:
                cv2.polylines(cover, [pts], False, 1.0, thickness, cv2.LINE_AA, shift=4)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    small += rng.normal(0, rng.uniform(2, 12), small.shape).astype(np.float32)
    coverage = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA) if cover is not None else None
    return np.clip(small, 0, 255).astype(np.uint8), coverage


def generate(
    out: str | Path,
    size: int = 64,
    per_class: int = 400,
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    masks: bool = False,
) -> Path:
    """Write the data set to ``out/<class>/<class>_NNNNN.png`` plus ``out/labels.txt``.

    With ``masks`` it is a segmentation data set instead (:func:`render_segment`): ``out/images/<class>_NNNNN.png``,
    ``out/masks/<class>_NNNNN.png`` (8-bit class index per pixel: 0 = background, ``i + 1`` = the ``i``-th class
    of ``labels.txt``) and ``out/labels.txt`` (one class per line, background not listed), the layout
    :mod:`edgecnn.data.masks` reads.

    The folder is staged beside ``out`` and swapped in at the end (:func:`edgecnn.atomic.staged_dir`), so an
    interrupted run leaves nothing half-written. Raises DataError for bad arguments and OutputError when ``out``
    exists (without ``overwrite``) or cannot be written.
    """
    out = Path(out)
    if size < 16:
        raise DataError(f"--size must be at least 16 pixels, got: {size}")
    if per_class < 1:
        raise DataError(f"--per-class must be at least 1, got: {per_class}")
    jobs = [(c, i) for c in range(len(CLASSES)) for i in range(per_class)]

    def write(path: Path, img: np.ndarray) -> None:
        if not cv2.imwrite(str(path), img):
            raise OutputError(f"cannot write {path} (disk full?)")

    def one(tmp: Path, job: tuple[int, int]) -> None:
        c, i = job
        rng = np.random.default_rng([seed, c, i])
        name = f"{CLASSES[c]}_{i:05d}.png"
        if masks:
            img, mask = render_segment(CLASSES[c], size, rng)
            write(tmp / "images" / name, img)
            write(tmp / "masks" / name, (mask * (c + 1)).astype(np.uint8))
        else:
            write(tmp / CLASSES[c] / name, render(CLASSES[c], size, rng))

    with staged_dir(out, overwrite=overwrite) as tmp:
        for name in ("images", "masks") if masks else CLASSES:
            (tmp / name).mkdir()
        labels = "".join(f"{c}\n" for c in CLASSES) if masks else format_labels(CLASSES)
        (tmp / "labels.txt").write_text(labels, encoding="utf-8")
        with ThreadPoolExecutor(max_workers=4) as pool:
            for done, _ in enumerate(pool.map(lambda job: one(tmp, job), jobs), 1):
                if progress:
                    progress(done, len(jobs))
    return out
