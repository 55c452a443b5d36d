"""What the two recorders (:mod:`~edgecnn.runtime.record.drive`, :mod:`~edgecnn.runtime.record.images`) share in
their loops: when to stop, and the frame size they store."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def stop_reason(stop: Any, start: float, now: float, duration_s: float | None) -> str | None:
    """Why a recording should end at ``now``, or None to go on.

    ``stop``: an object whose ``requested`` attribute turns true to stop (its ``signal``, e.g. ``"SIGINT"``, is
    the reason when set; else ``"stop request"``), or None. ``start``, ``now``: ``time.monotonic()`` seconds.
    ``duration_s``: the recording's length limit, or None for no limit (-> ``"duration"`` once reached).
    """
    if stop is not None and getattr(stop, "requested", False):
        return getattr(stop, "signal", None) or "stop request"
    if duration_s is not None and now - start >= duration_s:
        return "duration"
    return None


def stored_image(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """``image`` (uint8 HxWx3 BGR) at the stored ``size`` = (width, height) (INTER_AREA, as a camera would
    shrink), or unchanged when ``size`` is None or already its size."""
    if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
        return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
    return image
