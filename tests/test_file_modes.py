"""Everything edgecnn writes gets the user's umask, like an ordinary ``open()``: 0644 files and 0755 folders under
umask 022, 0600/0700 under 077.

The trap: atomic writes went through ``tempfile.mkstemp`` (mode 0600) and the rename kept that mode, so reports,
quantized models, run files and recorded videos were unreadable by another user, a web server or a copy to the
Pi. The end-to-end test runs every writing command (data, train, calibrate, quantize, export, compare, classify
--record) in this process under each umask and checks the mode of every file and folder it produced.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import write_video
from edgecnn.atomic import atomic_path, staged_dir, write_bytes, write_json, write_text

UMASKS = [0o022, 0o077]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, bool]]:
    """``{relative path: (permission bits, is a folder)}`` of everything under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p in skip:
            continue
        st = p.lstat()
        out[str(p.relative_to(root))] = (stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))
    return out


def wrong_modes(root: Path, mask: int, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    want_file, want_dir = 0o666 & ~mask, 0o777 & ~mask
    return {name: f"{mode:o}" for name, (mode, is_dir) in modes(root, skip).items()
            if mode != (want_dir if is_dir else want_file)}


@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask{m:03o}")
def test_atomic_writers_follow_the_umask(tmp_path, mask):
    import cv2

    from edgecnn.runtime.classify import VideoRecorder

    with umask(mask):
        write_bytes(tmp_path / "a.bin", b"x")
        write_text(tmp_path / "sub" / "b.txt", "x")
        write_json(tmp_path / "c.json", {"x": 1})
        with atomic_path(tmp_path / "d.png", suffix=".png") as tmp:  # a writer that opens the file itself
            assert cv2.imwrite(str(tmp), np.zeros((4, 4, 3), np.uint8))
        write_bytes(tmp_path / "a.bin", b"replaced")  # replacing keeps the ordinary mode too
        with staged_dir(tmp_path / "bundle") as tmp:
            (tmp / "model.tflite").write_bytes(b"x")
            write_bytes(tmp / "nested" / "card.json", b"{}")
        with staged_dir(tmp_path / "bundle", overwrite=True) as tmp:
            (tmp / "model.tflite").write_bytes(b"y")
        rec = VideoRecorder(tmp_path / "video" / "out.mp4", fps=10)
        for i in range(3):
            rec.write(np.full((48, 64, 3), i * 40, np.uint8))
        rec.close()
    assert (tmp_path / "video" / "out.mp4").stat().st_size > 0
    assert not wrong_modes(tmp_path, mask), wrong_modes(tmp_path, mask)
    assert not [p for p in tmp_path.rglob(".*")]  # no temp leftovers


@pytest.mark.host
@pytest.mark.slow
@pytest.mark.parametrize("mask", UMASKS, ids=lambda m: f"umask{m:03o}")
def test_every_written_file_follows_the_umask(tmp_path, mask):
    """Each command that writes, in this process (TensorFlow loads once), under ``mask``."""
    pytest.importorskip("tensorflow", reason="train/quantize/export need TensorFlow (host)")
    from edgecnn.cli import group

    video = write_video(tmp_path / "camera.mp4", 4)
    out = tmp_path / "out"
    out.mkdir(mode=0o777 & ~mask)
    os.chmod(out, 0o777 & ~mask)
    commands = [
        ["data", "shapes", out / "data", "--size", "32", "--per-class", "25"],
        ["train", out / "data", "--out", out / "run", "--arch", "compact", "--epochs", "1", "--img-size", "32"],
        ["calibrate", out / "run", "--out", out / "calibration", "--count", "100"],
        ["quantize", out / "run", "--calibration", out / "calibration", "--precision", "int8",
         "--out", out / "quantized" / "model_int8.tflite"],
        ["export", out / "run", "--calibration", out / "calibration", "--out", out / "bundle"],
        ["compare", out / "run", "--calibration", out / "calibration", "--precisions", "int8", "--runs", "5",
         "--warmup", "1", "--limit", "20", "--out", out / "report"],
        ["classify", "--model", out / "bundle", "--source", video, "--max-frames", "3", "--record",
         out / "recorded" / "annotated.mp4"],
    ]
    runner = CliRunner()
    with umask(mask):
        for argv in commands:
            res = runner.invoke(group, [str(a) for a in argv], catch_exceptions=False)
            assert res.exit_code == 0, (argv[0], res.output)
    written = modes(out)
    for kind in ("run/model.keras", "run/contract.json", "run/split.json", "run/metrics.json",
                 "calibration/MANIFEST.json", "calibration/images.npy", "quantized/model_int8.tflite",
                 "bundle/model_int8.tflite", "bundle/model_card.json", "report/report.json", "report/report.md",
                 "recorded/annotated.mp4", "data/labels.txt"):
        assert kind in written, (kind, sorted(written))
    assert not wrong_modes(out, mask), wrong_modes(out, mask)
