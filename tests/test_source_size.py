"""The contract's ``source_size``: training records the frame size when all its frames share one (issue 17)."""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edgecnn.contract import Contract
from edgecnn.data.imagefolder import Sample
from edgecnn.data.masks import MaskSample
from edgecnn.data.steering_samples import SteeringSample
from edgecnn.image_headers import common_image_size, file_image_size, image_size
from edgecnn.preprocess import decode_image
from edgecnn.train.tasks import get_task
from edgecnn.train.tasks.classify import ClassifyData
from edgecnn.train.tasks.segment import SegmentData
from edgecnn.train.tasks.steer import SteerData


def _image(w: int, h: int) -> np.ndarray:
    return np.random.default_rng(w * h).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _exif_rotated(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 EXIF segment holding one tag, the orientation, right after SOI."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1,
                                                                                  orientation, 0) + b"\0\0\0\0"
    seg = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + jpeg[2:]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_header_size_is_the_decoded_size(ext):
    data = cv2.imencode(ext, _image(37, 21))[1].tobytes()
    assert image_size(data) == (37, 21) == decode_image(data).shape[1::-1]
    assert image_size(data[:6]) is None
    assert image_size(b"GIF89a....") is None


def test_exif_orientation_that_turns_the_image_swaps_the_sides(tmp_path):
    plain = cv2.imencode(".jpg", _image(40, 24))[1].tobytes()
    for orientation, want in ((1, (40, 24)), (3, (40, 24)), (6, (24, 40)), (8, (24, 40))):
        data = _exif_rotated(plain, orientation)
        assert image_size(data) == want == decode_image(data).shape[1::-1], orientation
    # an EXIF block larger than the first read: the rest of the file is read
    big = plain[:2] + b"\xff\xe2" + struct.pack(">H", 9002) + b"\0" * 9000 + plain[2:]
    (tmp_path / "big.jpg").write_bytes(big)
    assert file_image_size(tmp_path / "big.jpg") == (40, 24)


def _write(folder: Path, sizes: list[tuple[int, int]], ext: str = ".jpg") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        p = folder / f"{i:03d}{ext}"
        cv2.imwrite(str(p), _image(w, h))
        paths.append(str(p))
    return paths


def test_common_size_only_when_every_frame_shares_it(tmp_path):
    same = _write(tmp_path / "a", [(160, 120)] * 3)
    assert common_image_size(same) == (160, 120)
    assert common_image_size(same + _write(tmp_path / "b", [(120, 160)], ".png")) is None
    assert common_image_size([]) is None
    assert common_image_size([*same, str(tmp_path / "missing.jpg")]) is None


def _config(**kw):
    return SimpleNamespace(color_order="RGB", arch="compact", head="regression", throttle=False, components=0, **kw)


class _Folder:
    classes = ("bg", "a")

    def summary(self) -> str:
        return "2 classes"


@pytest.mark.parametrize("mixed", [False, True])
def test_every_image_task_records_the_source_size(tmp_path, mixed):
    sizes = [(160, 120)] * 4 + ([(320, 240)] if mixed else [])
    paths = _write(tmp_path / "img", sizes)
    want = () if mixed else (160, 120)
    # the size of the whole data set, test frames included
    classify = ClassifyData(_Folder(), {"train": [Sample(p, 0) for p in paths[:-1]], "test": [Sample(paths[-1], 1)]})
    steer = SteerData(None, {"train": [SteeringSample(p, 0.0) for p in paths[:-1]],
                             "test": [SteeringSample(paths[-1], 0.1)]})
    segment = SegmentData(_Folder(), {"train": [MaskSample(p, p, (1, 1)) for p in paths]})
    for name, data in (("classify", classify), ("steer", steer), ("segment", segment)):
        contract = get_task(name).make_contract(_config(), data, 64, 64, (0.0,) * 3, (255.0,) * 3)
        assert contract.source_size == want, name
        assert Contract.from_json(contract.to_json()).source_size == want


def test_split_rows_and_summary_unchanged(tmp_path):
    data = ClassifyData(_Folder(), {"train": [Sample("/x/a.jpg", 1)], "val": []})
    assert data.split_rows() == {"train": [["/x/a.jpg", 1]], "val": []}
    assert data.summary == "data: 2 classes; split: train 1, val 0"
    seg = SegmentData(_Folder(), {"train": [MaskSample("/x/a.png", "/x/m.png", (3, 4), 1)]})
    assert seg.split_rows() == {"train": [["/x/a.png", 1, "/x/m.png"]]}
