"""A tiny synthetic data set in the `edgecnn data roads --networks` layout (labels.csv with a map column, maps/,
roads.json), for fast navigation tests that need no renderer. numpy + OpenCV only.

Frames are noise (the camera cannot tell the branch); the map decides: at a junction frame the roads channel
shows a T and the route channel the branch, and the label steers -0.5 (left) or +0.5 (right); plain road
frames show a straight road and steer about 0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

HEADER = ["image", "steering", "map", "network", "route", "junction", "branch", "options", "x", "y", "heading",
          "est_x", "est_y", "est_heading"]


def map_raster(size: int, junction: bool, branch: str) -> np.ndarray:
    """``uint8 size x size x 3``: channel 0 roads, 1 route, 2 zero (0 or 255), car at the bottom centre."""
    m = np.zeros((size, size, 3), np.uint8)
    c, w = size // 2, max(1, size // 8)
    m[:, c - w : c + w, 0] = 255
    if junction:
        m[: size // 3, :, 0] = 0
        m[size // 3 - 2 * w : size // 3, :, 0] = 255  # the T's cross road
        m[size // 3 :, c - w // 2 - 1 : c + 1, 1] = 255
        if branch == "left":
            m[size // 3 - 2 * w : size // 3 - w, : c + 1, 1] = 255
        else:
            m[size // 3 - 2 * w : size // 3 - w, c:, 1] = 255
    else:
        m[:, c - w // 2 - 1 : c + 1, 1] = 255
    return m


def make_nav_data(root: Path, frames: int = 120, map_size: int = 16, frame_size: tuple[int, int] = (80, 60),
                  seed: int = 0, branch_columns: bool = False) -> Path:
    """Write the data set to ``root`` and return it. Half the frames are T-junction frames (branches alternate).
    ``branch_columns``: also the ``to_turn`` (0.45 m down to -0.45 m over each block of ten junction frames) and
    ``branch_steering`` (``left:-0.5|right:0.5``) columns, as data written since they exist."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "maps").mkdir(exist_ok=True)
    rows = []
    for i in range(frames):
        junction = (i // 10) % 2 == 1
        branch = ("left" if (i // 20) % 2 else "right") if junction else ""
        steer = (-0.5 if branch == "left" else 0.5) if junction else 0.0
        steer = float(np.clip(steer + rng.normal(0, 0.03), -1, 1))
        img = rng.integers(0, 255, (frame_size[1], frame_size[0], 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{i:06d}.jpg"), img)
        cv2.imwrite(str(root / "maps" / f"{i:06d}.png"), map_raster(map_size, junction, branch))
        row = [f"images/{i:06d}.jpg", f"{steer:.4f}", f"maps/{i:06d}.png", "net0", f"r{i // 20}",
               "T" if junction else "", branch, "left|right" if junction else "", 0, 0, 0, 0, 0, 0]
        if branch_columns:
            row[8:8] = [round(0.45 - 0.1 * (i % 10), 3), "left:-0.5|right:0.5"] if junction else ["", ""]
        rows.append(row)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER[:8] + ["to_turn", "branch_steering"] + HEADER[8:] if branch_columns else HEADER)
        w.writerows(rows)
    meta = {"format": "edgecnn-networks-1", "frames": frames, "size": list(frame_size), "seed": seed, "stream": 2,
            "map_spec": {"size": map_size, "extent_m": 8.0, "behind_m": 2.0, "channels": ["roads", "route"]},
            "pose_noise": {"position_m": 0.25, "heading_deg": 4.0, "delay_ms": 100.0, "rate_hz": 10.0}}
    (root / "roads.json").write_text(json.dumps(meta))
    return root
