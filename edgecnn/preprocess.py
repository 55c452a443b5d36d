"""The one preprocessing implementation: image file or camera frame -> model input.

Used by training (wrapped in ``tf.numpy_function``), calibration, the device runtime and compare, so training and
serving cannot drift. numpy and OpenCV only.

Frames are OpenCV's native layout: ``uint8 HxWx3 BGR`` (or ``HxW`` grey).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.errors import DataError

_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (jpg/png/bmp/...) to ``uint8 HxWx3 BGR``.

    Grey, palette, CMYK and 16-bit files are converted to 8-bit 3-channel BGR; an alpha channel is dropped.
    Raises DataError when the bytes are empty or not a decodable image.
    """
    if not data:
        raise DataError(f"{name}: empty file")
    from edgecnn.data.imagefolder import MAX_PIXELS, _header_ok

    if not _header_ok(data):  # a decompression bomb: OpenCV would allocate whatever the header declares
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


def resize(frame: np.ndarray, height: int, width: int, method: str = "area") -> np.ndarray:
    """Resize ``frame`` (uint8 HxWxC) to ``height`` x ``width``.

    Shrinking uses ``method`` (area by default: plain bilinear aliases when shrinking a large photo);
    enlarging uses linear interpolation, since area interpolation degenerates to nearest when upsampling.
    """
    h, w = frame.shape[:2]
    if (h, w) == (height, width):
        return frame
    shrinking = height <= h and width <= w
    interp = _INTERP.get(method, cv2.INTER_AREA) if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)


def to_model_pixels(frame: np.ndarray, contract: Contract) -> np.ndarray:
    """Resize and reorder channels: ``uint8 HxWx3 BGR`` -> ``uint8 h x w x c`` in the contract's colour order."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    elif frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise DataError(f"expected an HxWx3 BGR frame, got shape {frame.shape}")
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.dtype != np.uint8:
        raise DataError(f"expected a uint8 frame, got {frame.dtype}")
    img = resize(frame, contract.input_height, contract.input_width, contract.resize)
    if contract.channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
    if contract.color_order == "RGB":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
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
