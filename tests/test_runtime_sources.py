"""Frame sources on real files through OpenCV, and camera reconnection with a capture that fails on cue."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
from conftest import write_video
import pytest

from edgecnn.errors import SourceError
from edgecnn.runtime.sources import CameraSource, open_images, open_source

pytestmark = pytest.mark.device


def test_every_frame_reads_the_whole_video(tmp_path):
    video = write_video(tmp_path / "v.mp4", 40, size=(160, 120))
    with open_source(str(video), every_frame=True) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(40))
    f = frames[0]
    assert f.image.dtype == np.uint8 and f.image.shape == (120, 160, 3)
    assert f.timestamp > 1e9 and f.capture_ms >= 0 and not src.live


def test_live_video_plays_in_real_time_and_the_loop_takes_the_newest_frame(tmp_path):
    video = write_video(tmp_path / "v.mp4", 30, fps=100.0, size=(160, 120))
    got = []
    with open_source(str(video)) as src:
        assert src.live and src.fps == pytest.approx(100.0)
        for frame in src:
            got.append(frame.index)
            time.sleep(0.03)  # a slow model: about 3 frames arrive per iteration
    assert got == sorted(got) and got[-1] == 29
    assert len(got) < 25  # frames were dropped, not queued


def test_images_folder_and_glob(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"im{i}.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    warnings = []
    names = [f.name for f in open_source(str(tmp_path), warn=warnings.append)]
    assert names == ["im0.png", "im1.png", "im2.png"]
    assert any("broken.png" in w for w in warnings)
    assert [f.name for f in open_source(str(tmp_path / "im[12].png"))] == ["im1.png", "im2.png"]
    assert len(list(open_images([tmp_path / "im0.png", tmp_path / "im2.png"]))) == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: "/dev/video97", "camera /dev/video97 not found"),
        (lambda p: "97", "camera 97 not found"),
        (lambda p: str(p / "nothing.mp4"), "source not found"),
        (lambda p: (p / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(5000)) and str(p / "bad.mp4"),
         "cannot decode video"),
        (lambda p: (p / "empty").mkdir() or str(p / "empty"), "no images found"),
    ],
)
def test_bad_sources_raise_one_clear_error(tmp_path, make, message):
    with pytest.raises(SourceError, match=message):
        open_source(make(tmp_path))


class FlakyCapture:
    """A capture over a real list of frames that dies after ``fail_after`` reads, or blocks (a stall)."""

    def __init__(self, fail_after: int, stall: bool = False) -> None:
        self.n, self.fail_after, self.stall = 0, fail_after, stall

    def read(self):
        self.n += 1
        if self.n > self.fail_after:
            if self.stall:
                time.sleep(3.0)  # as cap.read() does when a USB camera is unplugged
            return False, None
        time.sleep(0.005)
        return True, np.full((4, 4, 3), self.n, np.uint8)

    def release(self) -> None:
        pass


def test_camera_reconnects_with_backoff_then_gives_up():
    plan = [FlakyCapture(5), None, None, FlakyCapture(5)]  # works, lost, two failed reopen attempts, works again
    opened = []

    def opener():
        cap = plan.pop(0) if plan else None
        opened.append(cap)
        return cap

    lines: list[str] = []
    src = CameraSource(opener, "camera test", give_up_s=2.5, stall_s=1.0, warn=lines.append)
    frames = 0
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="no frame for .* giving up"):
        while src.read() is not None:
            frames += 1
    src.close()
    assert frames >= 6  # frames from both captures
    assert any("lost the stream" in ln for ln in lines)
    assert sum("cannot reopen, retrying in" in ln for ln in lines) >= 2
    assert any("reconnected" in ln for ln in lines)
    assert time.monotonic() - t0 < 15


def test_a_stalled_camera_is_reopened_on_a_fresh_reader():
    plan = [FlakyCapture(3, stall=True), FlakyCapture(1000)]
    src = CameraSource(lambda: plan.pop(0) if plan else None, "camera stall", give_up_s=5, stall_s=0.5,
                       warn=(lines := []).append)
    got = [src.read().index for _ in range(10)]
    src.close()
    assert got == sorted(got) and len(got) == 10
    assert any("no frame for" in ln and "reconnecting" in ln for ln in lines)


def test_missing_camera_fails_fast():
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="cannot open camera x"):
        CameraSource(lambda: None, "camera x", give_up_s=30)
    assert time.monotonic() - t0 < 10  # not the 30 s give-up: the margin holds on a loaded machine
    assert threading.active_count() < 50


def test_choose_capture_size_prefers_option_then_training_size_then_smallest_covering_mode():
    from edgecnn.runtime.sources import CAMERA_MODES, choose_capture_size

    assert choose_capture_size((320, 240), (160, 120), (64, 64)) == (320, 240)  # --capture-size wins
    assert choose_capture_size(None, (160, 120), (200, 66)) == (160, 120)  # the tub's size, even below 200 wide
    assert choose_capture_size(None, (), (64, 64)) == (160, 120)
    assert choose_capture_size(None, (), (200, 66)) == (320, 240)
    assert choose_capture_size(None, None, (5000, 5000)) == CAMERA_MODES[-1]
    assert choose_capture_size(None, (), None) is None


class SizedCapture(FlakyCapture):
    """A capture that reports its frame size through OpenCV's properties, like cv2.VideoCapture."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(fail_after=10**6)
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: float(width), cv2.CAP_PROP_FRAME_HEIGHT: float(height)}

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)


def test_camera_reports_the_size_it_gave_and_the_note_says_so():
    from edgecnn.runtime.sources import capture_note

    src = CameraSource(lambda: SizedCapture(176, 144), "camera test", warn=lambda m: None)
    try:
        assert src.capture_size == (176, 144)
        note = capture_note(src, (160, 120), "the size of the model's training frames")
        assert "capturing at 176x144" in note and "asked for 160x120" in note
        assert capture_note(src, (176, 144)) == "camera test: capturing at 176x144"
    finally:
        src.close()
        src.join()
    picam_like = FlakyCapture(10**6)
    picam_like.size = (160, 128)  # picamera2's configured main size, read back after align_configuration
    src = CameraSource(lambda: picam_like, "picamera2", warn=lambda m: None)
    try:
        assert src.capture_size == (160, 128)
    finally:
        src.close()
        src.join()


def test_files_have_no_capture_size(tmp_path):
    from edgecnn.runtime.sources import capture_note

    video = write_video(tmp_path / "v.mp4", 5, size=(160, 120))
    with open_source(str(video), every_frame=True, capture_size=(64, 48)) as src:
        assert src.capture_size is None and capture_note(src, (64, 48)) is None
        assert src.read().image.shape == (120, 160, 3)  # a file is read at its own size


def test_classify_takes_capture_size_and_refuses_a_bad_one(tmp_path, capsys):
    """``--capture-size`` is parsed as WIDTHxHEIGHT (a file source ignores it); a bad one is one Error line."""
    from conftest import REPO

    from edgecnn.cli import main

    model = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} is not here")
    video = write_video(tmp_path / "v.mp4", 6, size=(160, 120))
    args = ["classify", "--model", str(model), "--source", str(video), "--every-frame", "--trust-model", "--json"]
    main([*args, "--capture-size", "160x120"])  # returns on success
    assert len([ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("{")]) == 6
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--capture-size", "160by120"])
    assert exit_info.value.code == 2 and "--capture-size must look like" in capsys.readouterr().err
