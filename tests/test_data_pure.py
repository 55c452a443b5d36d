"""Pure tests (numpy/OpenCV only): contract, preprocessing, labels, image folders, shapes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecnn.contract import Contract, normalisation_for_range
from edgecnn.data import imagefolder
from edgecnn.data.shapes import CLASSES, generate, render
from edgecnn.errors import DataError, ModelError
from edgecnn.labels import format_labels, parse_labels
from edgecnn.preprocess import decode_image, prepare, resize


def _contract(**kw) -> Contract:
    base = dict(task="classify", input_height=8, input_width=6, labels=("a", "b"))
    return Contract(**{**base, **kw})


def test_contract_round_trip_and_validation():
    c = _contract(mean=(127.5,) * 3, std=(127.5,) * 3, extra={"k": 1})
    back = Contract.from_json(c.to_json())
    assert back == c and back.extra == {"k": 1} and back.labels == ("a", "b")
    # unknown keys from a newer writer are ignored
    assert Contract.from_dict({**c.to_dict(), "future_field": 3}) == c
    with pytest.raises(ModelError, match="task"):
        _contract(task="detect")
    with pytest.raises(ModelError, match="labels"):
        _contract(labels=())
    with pytest.raises(ModelError, match="JSON"):
        Contract.from_json("{nope")
    assert Contract(task="steer", input_height=66, input_width=200, head="gmm", components=3).num_outputs == 9


def test_prepare_colour_order_size_and_range():
    frame = np.zeros((40, 30, 3), np.uint8)
    frame[..., 0] = 255  # pure blue in BGR
    rgb = prepare(frame, _contract())
    assert rgb.shape == (8, 6, 3) and rgb.dtype == np.float32
    assert np.allclose(rgb[..., 2], 1.0) and np.allclose(rgb[..., 0], 0.0)  # blue is the last RGB channel
    mean, std = normalisation_for_range("-1,1")
    bgr = prepare(frame, _contract(color_order="BGR", mean=mean, std=std))
    assert np.allclose(bgr[..., 0], 1.0) and np.allclose(bgr[..., 2], -1.0)
    grey = prepare(frame[..., 0], _contract())  # a grey frame is accepted
    assert grey.shape == (8, 6, 3)


def test_resize_uses_area_when_shrinking():
    # A 1-pixel checkerboard averages to grey with area interpolation; bilinear would alias.
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    small = resize(board, 8, 8, "area")
    assert np.all(np.abs(small.astype(int) - 127) <= 1)


def test_decode_rejects_empty_and_garbage():
    with pytest.raises(DataError, match="empty"):
        decode_image(b"", "x.jpg")
    with pytest.raises(DataError, match="not a decodable image"):
        decode_image(b"\x00garbage" * 10, "x.jpg")


def test_labels_both_conventions():
    assert parse_labels(format_labels(["cat", "dog"])) == {0: "cat", 1: "dog"}
    assert parse_labels("background\ntench\ngoldfish\n") == {0: "background", 1: "tench", 2: "goldfish"}
    assert parse_labels("0 tabby, tabby cat\n1 tiger cat\n") == {0: "tabby, tabby cat", 1: "tiger cat"}
    with pytest.raises(DataError):
        parse_labels("\n\n")


def test_shapes_deterministic_and_distinct(tmp_path):
    a = render("x", 32, np.random.default_rng([0, 4, 1]))
    b = render("x", 32, np.random.default_rng([0, 4, 1]))
    c = render("x", 32, np.random.default_rng([1, 4, 1]))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    out = generate(tmp_path / "s", size=24, per_class=3, seed=5)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(CLASSES)
    assert (out / "labels.txt").read_text().splitlines()[0] == f"0 {CLASSES[0]}"
    again = generate(tmp_path / "t", size=24, per_class=3, seed=5)
    for cls in CLASSES:
        for f in (out / cls).iterdir():
            assert f.read_bytes() == (again / cls / f.name).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_shapes_refuses_existing_folder(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="already exists"):
        generate(tmp_path / "s", size=24, per_class=1)
    assert (tmp_path / "s" / "keep.txt").read_text() == "mine"


def _folder(tmp_path, spec: dict[str, int]):
    for cls, n in spec.items():
        (tmp_path / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = np.full((10 + i, 12, 3), 40 * i % 255, np.uint8)
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), img)
    return tmp_path


def test_scan_counts_bad_files_and_split_is_stratified(tmp_path):
    root = _folder(tmp_path, {"a": 20, "b": 10})
    (root / "a" / "zero.jpg").write_bytes(b"")
    (root / "a" / "junk.jpg").write_bytes(b"not an image at all")
    (root / "b" / "notes.txt").write_text("hello")
    (root / "b" / "trunc.png").write_bytes((root / "b" / "1.png").read_bytes()[:30])
    folder = imagefolder.scan(root)
    assert folder.classes == ("a", "b") and len(folder.samples) == 30
    assert folder.skipped == {"zero-byte": 1, "undecodable": 2, "not an image": 1}
    assert "skipped 4 files" in folder.summary()
    s1, s2 = imagefolder.split(folder), imagefolder.split(folder)
    assert s1 == s2
    for k in ("train", "val", "test"):
        labels = {s.label for s in s1[k]}
        assert labels == {0, 1}, k
    paths = [s.path for k in s1 for s in s1[k]]
    assert len(paths) == len(set(paths)) == 30


def test_scan_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        imagefolder.scan(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        imagefolder.scan(tmp_path / "empty")
    one = _folder(tmp_path / "one", {"a": 3})
    with pytest.raises(DataError, match="only one class"):
        imagefolder.scan(one)
    hollow = _folder(tmp_path / "hollow", {"a": 3})
    (hollow / "b").mkdir()
    (hollow / "b" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="class b .* no usable image"):
        imagefolder.scan(hollow)
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match="got a file"):
        imagefolder.scan(f)


def test_decompression_bomb_header_refused(tmp_path):
    root = _folder(tmp_path, {"a": 3, "b": 3})
    png = bytearray((root / "a" / "0.png").read_bytes())
    png[16:20] = (100_000).to_bytes(4, "big")
    png[20:24] = (100_000).to_bytes(4, "big")
    (root / "a" / "bomb.png").write_bytes(bytes(png))
    assert imagefolder.scan(root).skipped == {"too large": 1}
