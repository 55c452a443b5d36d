"""The pieces ``classify`` and ``segment`` share: the frame source for a model and the frame loop (recording,
per-stage timings, the wait beyond an inline decode)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from edgecnn.contract import Contract
from edgecnn.errors import SourceError
from edgecnn.runtime.classify import run_loop
from edgecnn.runtime.sources import open_for_model

CONTRACT = Contract(task="classify", input_height=16, input_width=16, labels=("a", "b"), source_size=(32, 24))


@pytest.fixture()
def images(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / "frames" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), np.full((24, 32, 3), 40 * i, np.uint8))
        paths.append(p)
    return paths


def _count(src) -> int:
    n = 0
    while src.read() is not None:
        n += 1
    src.close()
    return n


def test_open_for_model_takes_image_files_or_a_source(images):
    assert _count(open_for_model(CONTRACT, images=images[:2])) == 2
    notes = []
    assert _count(open_for_model(CONTRACT, source=str(images[0].parent), warn=notes.append)) == 4
    assert notes == []  # only cameras say at which size they capture
    with pytest.raises(SourceError):
        open_for_model(CONTRACT)


@dataclass(frozen=True)
class _Result:
    value: int
    latency_ms: dict[str, float] = field(default_factory=lambda: {"capture": 0.0, "work": 0.25})


def test_run_loop_times_every_stage_draws_for_the_recording_and_stops_at_max_frames(images, tmp_path):
    seen, drawn = [], []

    def draw(image, result, fps):
        drawn.append(result.value)
        return image

    dest = tmp_path / "out.mp4"
    stats = run_loop(open_for_model(CONTRACT, images=images), lambda f: _Result(f.index), ("capture", "work"),
                     max_frames=3, on_result=seen.append, draw=draw, record=dest, warmup=0)
    assert [r.value for r in seen] == drawn == [0, 1, 2]
    assert stats.frames == 3
    assert {s.name for s in stats.stages} >= {"capture", "work", "wait", "sink"}
    assert stats.stage("work").p50_ms == pytest.approx(0.25)
    assert dest.is_file() and cv2.VideoCapture(str(dest)).get(cv2.CAP_PROP_FRAME_COUNT) == 3
