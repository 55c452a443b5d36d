"""Steering data: Donkey Car tub v2 reader, CSV reader, layout detection and the time-block split.

The real tub (1000 frames from autorope/donkeycar's test data) is extracted into tmp_path; tests that need it skip
with a reason when /work/shared/data is absent.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecnn.data.steering import (
    BAD_ANGLE,
    BAD_JSON,
    DELETED,
    MISSING_IMAGE,
    SteeringSample,
    load_steering_dataset,
    time_block_split,
)
from edgecnn.errors import DataError

REPO = Path(__file__).resolve().parents[1]
TUB_TAR = REPO.parent / "shared" / "data" / "donkeycar_tub" / "donkeycar_tub.tar.gz"


@pytest.fixture(scope="module")
def tub_master(tmp_path_factory) -> Path:
    if not TUB_TAR.is_file():
        pytest.skip(f"real Donkey Car tub not found at {TUB_TAR} (needs the shared data folder)")
    root = tmp_path_factory.mktemp("tubsrc")
    with tarfile.open(TUB_TAR) as tf:
        tf.extractall(root, filter="data")
    return root / "tub"


@pytest.fixture()
def tub(tub_master, tmp_path) -> Path:
    dest = tmp_path / "tub"
    shutil.copytree(tub_master, dest)
    return dest


def _catalog_lines(tub: Path) -> list[str]:
    return (tub / "catalog_0.catalog").read_text().splitlines()


def _write_catalog(tub: Path, lines: list[str]) -> None:
    (tub / "catalog_0.catalog").write_text("\n".join(lines) + ("\n" if lines else ""))


def test_real_tub_reads_every_frame_in_time_order(tub):
    ds = load_steering_dataset(tub)
    assert ds.kind == "tub"
    assert len(ds.samples) == 1000
    assert ds.faults == {}
    assert ds.has_throttle
    assert all(-1.0 <= s.steering <= 1.0 for s in ds.samples)
    # Time order: image i is record i.
    assert [Path(s.path).name for s in ds.samples[:3]] == [f"{i}_cam_image_array_.jpg" for i in range(3)]
    first = json.loads(_catalog_lines(tub)[0])
    assert ds.samples[0].steering == pytest.approx(first["user/angle"])
    assert ds.samples[0].throttle == pytest.approx(first["user/throttle"])
    img = cv2.imread(ds.samples[0].path)
    assert img is not None and img.shape == (120, 160, 3)


def test_deleted_indexes_in_the_manifest_are_honoured(tub):
    lines = (tub / "manifest.json").read_text().splitlines()
    state = json.loads(lines[4])
    state["deleted_indexes"] = [0, 5, 999]
    lines[4] = json.dumps(state)
    (tub / "manifest.json").write_text("\n".join(lines) + "\n")
    ds = load_steering_dataset(tub)
    assert len(ds.samples) == 997
    assert ds.faults == {DELETED: 3}
    names = {Path(s.path).name for s in ds.samples}
    assert "5_cam_image_array_.jpg" not in names and "6_cam_image_array_.jpg" in names


def test_bad_records_are_skipped_and_counted(tub):
    lines = _catalog_lines(tub)
    lines[1] = '{"_index": 1, "cam/image_array": "1_cam_image'  # truncated JSON (a crash mid-write)
    for i, bad in ((2, 1.5), (3, -7), (4, "NaN"), (7, None)):
        rec = json.loads(lines[i])
        rec["user/angle"] = bad if bad != "NaN" else float("nan")
        lines[i] = json.dumps(rec)
    _write_catalog(tub, lines)
    (tub / "images" / "10_cam_image_array_.jpg").unlink()
    (tub / "images" / "11_cam_image_array_.jpg").write_bytes(b"")
    ds = load_steering_dataset(tub)
    assert ds.faults == {BAD_JSON: 1, BAD_ANGLE: 4, MISSING_IMAGE: 2}
    assert len(ds.samples) == 1000 - 7
    assert "skipped 7 records" in ds.fault_summary()


def test_several_tubs_in_one_folder(tub_master, tmp_path):
    for name in ("tub_2", "tub_10"):
        shutil.copytree(tub_master, tmp_path / "tubs" / name)
    ds = load_steering_dataset(tmp_path / "tubs")
    assert len(ds.samples) == 2000
    assert [Path(p).name for p in ds.sources] == ["tub_2", "tub_10"]  # natural order, tub after tub
    assert Path(ds.samples[0].path).parts[-3] == "tub_2" and Path(ds.samples[-1].path).parts[-3] == "tub_10"


def test_empty_tub_is_one_clear_error(tub):
    _write_catalog(tub, [])
    with pytest.raises(DataError, match="no usable steering samples"):
        load_steering_dataset(tub)


def test_tub_with_only_bad_records_names_the_reasons(tub):
    _write_catalog(tub, ["not json", "{also not"])
    with pytest.raises(DataError, match="2 bad JSON line"):
        load_steering_dataset(tub)


def test_damaged_manifest_is_one_clear_error(tub):
    (tub / "manifest.json").write_text("{garbage\n")
    with pytest.raises(DataError, match="manifest"):
        load_steering_dataset(tub)


def _make_images(folder: Path, n: int) -> list[str]:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        cv2.imwrite(str(folder / "img" / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
        names.append(f"img/{i}.png")
    return names


def test_csv_with_header_throttle_and_bad_rows(tmp_path):
    names = _make_images(tmp_path, 6)
    rows = ["throttle,image,steering"]  # columns by name, any order
    rows += [f"0.5,{names[0]},0.1", f"0.4,{names[1]},-0.2", f"0.3,{names[2]},2.0", f"0.3,{names[3]},nan"]
    rows += ["0.2,img/missing.png,0.0", f"7,{names[4]},0.0", f"0.1,{names[5]}"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ds = load_steering_dataset(tmp_path)
    assert ds.kind == "csv"
    assert [(Path(s.path).name, s.steering, s.throttle) for s in ds.samples] == [("0.png", 0.1, 0.5), ("1.png", -0.2, 0.4)]
    assert ds.faults == {BAD_ANGLE: 2, MISSING_IMAGE: 1, "out-of-range or NaN throttle": 1, "malformed CSV row": 1}


def test_csv_without_header_given_as_file(tmp_path):
    names = _make_images(tmp_path, 3)
    (tmp_path / "drive.csv").write_text("".join(f"{n},{i * 0.1}\n" for i, n in enumerate(names)))
    ds = load_steering_dataset(tmp_path / "drive.csv")
    assert [s.steering for s in ds.samples] == [0.0, 0.1, 0.2]
    assert not ds.has_throttle


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "not a steering data set"),
        (lambda p: (p / "x.txt").write_text("hi"), "not a steering data set"),
    ],
)
def test_unrecognised_folder_is_one_clear_error(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        load_steering_dataset(tmp_path)


def test_tub_v1_gets_a_conversion_hint(tmp_path):
    (tmp_path / "record_0.json").write_text('{"user/angle": 0.1, "cam/image_array": "0.jpg"}')
    with pytest.raises(DataError, match="convert_to_tub_v2"):
        load_steering_dataset(tmp_path)


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_steering_dataset(tmp_path / "nope")
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(DataError, match="expected a .csv"):
        load_steering_dataset(tmp_path / "a.json")


def _seq(n: int) -> list[SteeringSample]:
    return [SteeringSample(f"/f/{i}.jpg", 0.0) for i in range(n)]


def test_time_block_split_keeps_blocks_whole_and_parts_disjoint():
    samples = _seq(1000)
    parts = time_block_split(samples, val=0.15, test=0.15, block=50, seed=3)
    idx = {k: [int(Path(s.path).stem) for s in v] for k, v in parts.items()}
    assert sorted(idx["train"] + idx["val"] + idx["test"]) == list(range(1000))
    assert len(idx["test"]) == 150 and len(idx["val"]) == 150
    for k, v in idx.items():
        assert v == sorted(v)  # time order kept
        assert {i // 50 for i in v}.isdisjoint({i // 50 for kk, vv in idx.items() if kk != k for i in vv})
    assert time_block_split(samples, block=50, seed=3) == parts  # deterministic
    assert time_block_split(samples, block=50, seed=4) != parts


def test_time_block_split_never_splits_frame_by_frame():
    # A random frame-level split would put ~30 % of test frames next to a train frame; blocks put almost none.
    parts = time_block_split(_seq(1000), block=50)
    train = {int(Path(s.path).stem) for s in parts["train"]}
    test = [int(Path(s.path).stem) for s in parts["test"]]
    touching = sum((i - 1 in train) or (i + 1 in train) for i in test)
    assert touching <= 2 * 3 + 2  # only at block boundaries


def test_time_block_split_bad_arguments():
    with pytest.raises(DataError):
        time_block_split(_seq(10), block=0)
    with pytest.raises(DataError):
        time_block_split(_seq(10), val=0.6, test=0.5)
    tiny = time_block_split(_seq(10), block=50)
    assert len(tiny["train"]) == 10  # one block: everything trains, nothing leaks
