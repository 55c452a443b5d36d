"""Bad data, measured: 1 % faults injected into an image folder and a Donkey Car tub, every one counted; too
little left is a clear error; the decoder guards behind it (huge JPEG headers, truncated JPEGs, OpenCV errors)."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from edgecnn import image_headers
from edgecnn.data.shapes import generate
from edgecnn.errors import DataError
from edgecnn.preprocess import decode_image
from edgecnn_robustness import faults


@pytest.fixture()
def shapes(tmp_path):
    return generate(tmp_path / "shapes", size=32, per_class=140, seed=0)  # 700 images: 1 % = 7 faults


def test_image_folder_faults_are_skipped_and_counted_or_decoded(shapes):
    injected = faults.inject_imagefolder(shapes, fraction=0.01, seed=0)
    assert len(injected) == 7 and {i.kind for i in injected} == set(faults.IMAGE_FAULTS)
    audit = faults.audit_imagefolder(shapes, injected)
    assert audit.ok, audit.per_kind
    assert audit.reader_counts == {"zero-byte": 1, "truncated": 1, "too large": 1, "undecodable": 1}
    assert audit.usable == 700 + 3  # PNG-named-.jpg, CMYK and greyscale are valid images, decoded to BGR


def test_tub_faults_are_skipped_and_counted(tmp_path):
    tub = faults.write_tub(tmp_path / "tub", records=400)
    injected = faults.inject_tub(tub, fraction=0.01, seed=0)
    assert {i.kind for i in injected} == set(faults.TUB_FAULTS)
    audit = faults.audit_tub(tub, injected)
    assert audit.ok, audit.to_dict()
    assert audit.usable == 396


def test_too_little_usable_data_is_one_clear_error(tmp_path, cli):
    data = generate(tmp_path / "d", size=32, per_class=3, seed=0)
    victim = min(p for p in data.iterdir() if p.is_dir())
    rng = np.random.default_rng(0)
    for i, f in enumerate(sorted(victim.iterdir())):
        f.unlink()
        body, ext = faults.make_image_fault(("zero-byte", "truncated JPEG", "huge header")[i], rng)
        (victim / f"bad{i}{ext}").write_bytes(body)
    r = cli("train", data, "--out", tmp_path / "run", "--img-size", "32", "--epochs", "1")
    assert r.clean_error, r.stderr
    assert "no usable image" in r.stderr and not (tmp_path / "run" / "model.keras").exists()


def test_huge_jpeg_header_is_refused_before_decoding():
    data = faults.huge_header("jpeg", 30_000)
    assert image_headers.jpeg_size(data) == (30_000, 30_000)
    assert not image_headers.header_ok(data)  # decoding it would take 2.7 GB and ~20 s
    ok = cv2.imencode(".jpg", np.zeros((40, 30, 3), np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert image_headers.jpeg_size(ok) == (40, 30) and image_headers.header_ok(ok)


def test_truncated_jpeg_is_detected_but_complete_ones_are_not():
    full = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))[1].tobytes()
    assert not image_headers.truncated_jpeg(full)
    assert not image_headers.truncated_jpeg(full + b"\0" * 10)  # padding after the end marker is harmless
    assert image_headers.truncated_jpeg(full[: len(full) // 2])


def test_decoder_errors_become_a_data_error_not_a_traceback():
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    struct.pack_into(">HH", data, data.find(b"\xff\xc0") + 5, 65000, 65000)  # > OpenCV's pixel limit: cv2.error
    with pytest.raises(DataError, match="not a decodable image|pixels; refused"):
        decode_image(bytes(data), "huge.jpg")


def test_cmyk_and_greyscale_decode_to_three_channel_bgr():
    rng = np.random.default_rng(0)
    for kind in ("CMYK JPEG", "greyscale", "PNG named .jpg"):
        body, _ = faults.make_image_fault(kind, rng)
        img = decode_image(body, kind)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3, kind


def test_classify_side_decoder_refuses_a_decompression_bomb():
    for kind in ("png", "jpeg"):
        with pytest.raises(DataError, match="pixels; refused"):
            decode_image(faults.huge_header(kind, 30_000), f"bomb.{kind}")
