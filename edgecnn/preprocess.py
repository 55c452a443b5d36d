"""The one preprocessing implementation: image file or camera frame -> model input.

Used by training (wrapped in ``tf.numpy_function``), calibration, the device runtime and compare, so training and
serving cannot drift. numpy and OpenCV only.

Frames are OpenCV's native layout: ``uint8 HxWx3 BGR`` (or ``HxW`` grey).

Two steps: :func:`to_model_pixels` (the contract's crop, resize per its method, colour order; still ``uint8``) and
:func:`normalise` (``(pixel - mean) / std`` in float32). The device does not run :func:`normalise` per frame: it
maps ``uint8`` pixels straight to the model's input dtype through a 256-entry table per channel built *from*
:func:`normalise` (see :mod:`edgecnn.runtime.adapters`), which gives the same bytes because both steps act on
each pixel value alone. :func:`to_model_pixels` can reuse its output buffers across frames (:class:`Scratch`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgecnn.contract import RESIZE_METHODS, Contract, crop_rows
from edgecnn.errors import DataError
from edgecnn.image_headers import MAX_PIXELS, header_ok

_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC,
           "area-pyramid": cv2.INTER_AREA, "supersample": cv2.INTER_AREA}

# What cv2.imdecode reads in every opencv-python wheel we support (checked with OpenCV 5.0 here; GIF needs
# OpenCV >= 4.11, older builds report such a file as undecodable). JPEG 2000, OpenEXR and AVIF are left out: they
# depend on how OpenCV was built, and no camera or data set here uses them. The one list for image folders
# (training), ``--source`` folders/globs and ``classify IMAGE...``.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".ppm",
                              ".pgm", ".pbm", ".pnm", ".gif"})


class Scratch:
    """Output buffers that :func:`to_model_pixels` reuses from one frame to the next (one per loop; not
    thread-safe). A frame of a new size gets new buffers."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, key: str, shape: tuple[int, ...], dtype: type = np.uint8) -> np.ndarray:
        """A buffer of ``shape`` and ``dtype`` (contents undefined), the same array as last time when it fits."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[key] = np.empty(shape, dtype)
        return buf


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (jpg/png/bmp/...) to ``uint8 HxWx3 BGR``.

    Grey, palette, CMYK and 16-bit files are converted to 8-bit 3-channel BGR; an alpha channel is dropped.
    Raises DataError when the bytes are empty or not a decodable image.
    """
    if not data:
        raise DataError(f"{name}: empty file")
    if not header_ok(data):  # a decompression bomb: OpenCV would allocate whatever the header declares
        raise DataError(f"{name}: the image header declares more than {MAX_PIXELS:,} pixels; refused")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. a header declaring more pixels than OpenCV's CV_IO_MAX_IMAGE_PIXELS
        raise DataError(f"{name}: not a decodable image ({' '.join(str(exc).split())[-120:]})") from exc
    if img is None or img.size == 0:
        raise DataError(f"{name}: not a decodable image")
    return img


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``uint8 HxWx3 BGR``; DataError when missing, unreadable or not an image."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return decode_image(data, str(path))


def resize(frame: np.ndarray, height: int, width: int, method: str = "area", dst: np.ndarray | None = None,
           scratch: Scratch | None = None) -> np.ndarray:
    """Resize ``frame`` (uint8 HxWxC) to ``height`` x ``width`` with the contract's ``method``.

    Shrinking uses ``method`` (see :data:`edgecnn.contract.RESIZE_METHODS`): ``"area"`` is OpenCV's INTER_AREA
    (plain bilinear aliases when shrinking a large photo); OpenCV takes its fast path when both factors are
    integers (640x480 -> 160x120) and a general, slower one otherwise (640x480 -> 64x64). ``"area-pyramid"``
    halves the frame with exact 2x2 means (OpenCV's fastest INTER_AREA path; an odd last row/column is
    dropped) while it is at least twice the target on both sides, then does one INTER_AREA step: as
    alias-free and several times faster on large frames, though not bit-identical to ``"area"``, which is why
    it is its own method, recorded in the contract. ``"supersample"`` is bilinear interpolation to twice the
    target size, then exact 2x2 means: each output pixel is the mean of 2x2 bilinear samples (16 source pixels).
    It costs a bilinear resize to 2x the target plus one halving (640x480 -> 64x64: about 0.04 ms against
    0.5 ms for ``"area"``), filters far better than plain ``"linear"`` though not as fully as ``"area"``, and at
    a power-of-two factor it is exactly ``"area-pyramid"`` (OpenCV's bilinear at exactly half size is the 2x2
    mean, bit for bit). Enlarging (either side) uses linear interpolation, since area interpolation
    degenerates to nearest when upsampling.

    ``dst`` (uint8 height x width x C), when given, receives the result (no allocation); ``scratch`` holds the
    pyramid's (or the supersample's) intermediate frames. Returns ``frame`` itself when it already has the size.
    """
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    if method not in _INTERP:
        raise ValueError(f"unknown resize method {method!r}; expected one of {RESIZE_METHODS}")
    if not (height <= h and width <= w):
        return cv2.resize(frame, (width, height), dst=dst, interpolation=cv2.INTER_LINEAR)
    if method == "supersample":
        shape = (2 * height, 2 * width, *frame.shape[2:])
        twice = scratch.get("supersample", shape) if scratch is not None else None
        if frame.shape[:2] != shape[:2]:
            frame = cv2.resize(frame, (2 * width, 2 * height), dst=twice, interpolation=cv2.INTER_LINEAR)
        return cv2.resize(frame, (width, height), dst=dst, interpolation=cv2.INTER_AREA)
    if method == "area-pyramid":
        level = 0
        while h >= 2 * height and w >= 2 * width:
            h, w = h // 2, w // 2
            src = frame[: 2 * h, : 2 * w]
            out = scratch.get(f"pyramid{level}", (h, w, *frame.shape[2:])) if scratch is not None else None
            frame = cv2.resize(src, (w, h), dst=out, interpolation=cv2.INTER_AREA)
            level += 1
        if (h, w) == (height, width):
            if dst is None:
                return frame if scratch is None else frame.copy()
            dst[...] = frame
            return dst
    return cv2.resize(frame, (width, height), dst=dst, interpolation=_INTERP[method])


def crop_frame(frame: np.ndarray, crop: tuple[int, ...], source_size: tuple[int, ...] = ()) -> np.ndarray:
    """``frame`` (H x W [x C], any dtype: an image or a class mask) without the rows a contract's ``crop``
    removes, scaled to its height ``H`` when ``source_size`` is known (:func:`edgecnn.contract.crop_rows`): a
    view (a row slice, no copy), ``frame`` itself without a crop. ModelError when no row would remain."""
    if not crop:
        return frame
    top, bottom = crop_rows(crop, source_size, frame.shape[0])
    return frame[top: frame.shape[0] - bottom]


def to_model_pixels(frame: np.ndarray, contract: Contract, scratch: Scratch | None = None) -> np.ndarray:
    """Crop, resize and reorder channels: ``uint8 HxWx3 BGR`` (or HxW grey, or HxWx4 BGRA) -> ``uint8 h x w x
    c`` in the contract's colour order. The contract's ``crop`` rows go first (:func:`crop_frame`, a view), then
    :func:`resize` with its method.

    With ``scratch`` the result is written into a buffer reused by the next call (valid until then); without,
    a fresh array (or, when nothing had to change, ``frame`` itself or a view of it).
    """
    if frame.ndim in (2, 3):
        frame = crop_frame(frame, contract.crop, contract.source_size)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise DataError(f"expected an HxWx3 BGR frame, got shape {frame.shape}")
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.dtype != np.uint8:
        raise DataError(f"expected a uint8 frame, got {frame.dtype}")
    h, w = contract.input_height, contract.input_width
    buf = scratch.get("resized", (h, w, 3)) if scratch is not None else None
    img = resize(frame, h, w, contract.resize, dst=buf, scratch=scratch)
    if contract.channels == 1:
        out = scratch.get("grey", (h, w)) if scratch is not None else None
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=out)[:, :, None]
    if contract.color_order == "RGB":
        out = scratch.get("rgb", (h, w, 3)) if scratch is not None else None
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=out)
    return img


def normalise(pixels: np.ndarray, contract: Contract) -> np.ndarray:
    """``uint8 h x w x c`` (model colour order) -> ``float32 h x w x c`` as ``(pixel - mean) / std``."""
    mean = np.asarray(contract.mean, dtype=np.float32)
    std = np.asarray(contract.std, dtype=np.float32)
    return (pixels.astype(np.float32) - mean) / std


def prepare(frame: np.ndarray, contract: Contract) -> np.ndarray:
    """Frame (``uint8 HxWx3 BGR``, any size) -> model input ``float32 h x w x c``, normalised per the contract."""
    return normalise(to_model_pixels(frame, contract), contract)


def prepare_batch(frames: list[np.ndarray], contract: Contract) -> np.ndarray:
    """Several frames -> ``float32 N x h x w x c``."""
    if not frames:
        return np.zeros((0, contract.input_height, contract.input_width, contract.channels), np.float32)
    return np.stack([prepare(f, contract) for f in frames])
