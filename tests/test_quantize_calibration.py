"""Calibration sets: selection from the training split only, manifest hashes, coverage, bad sets (numpy only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn.errors import DataError
from edgecnn.quantize import calibration as cal
from conftest import run_cli, run_python

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from edgecnn.data import shapes

    return shapes.generate(tmp_path_factory.mktemp("cal") / "shapes", size=32, per_class=60, seed=1)


@pytest.fixture(scope="module")
def built(data_dir, tmp_path_factory):
    src = cal.source_from_data(data_dir, (32, 32))
    out, cov = cal.build(src, tmp_path_factory.mktemp("sets") / "s", count=120, seed=3)
    return src, out, cov


def test_selection_is_stratified_and_from_train_only(data_dir, built):
    from edgecnn.data.imagefolder import scan, split

    src, out, cov = built
    manifest = json.loads((out / "MANIFEST.json").read_text())
    chosen = set(cal.item_paths(cal.load_calibration(out)))
    parts = split(scan(data_dir))
    assert chosen <= {s.path for s in parts["train"]}
    assert not chosen & {s.path for s in parts["test"] + parts["val"]}
    assert manifest["count"] == 120 == len(chosen)
    assert set(manifest["per_class"].values()) == {24}  # 5 equal classes
    assert manifest["source"]["split"] == "train"


def test_manifest_hashes_match_and_set_loads(built):
    import hashlib

    src, out, cov = built
    cs = cal.load_calibration(out)
    assert cs.frames.shape == (120, 32, 32, 3) and cs.frames.dtype == np.uint8
    assert cs.targets.dtype == np.int64
    m = cs.manifest
    blob = (out / "images.npy").read_bytes() + (out / "targets.npy").read_bytes()
    assert m["sha256"] == hashlib.sha256(blob).hexdigest()
    for i, e in enumerate(m["items"]):
        path = Path(m["source"]["data_root"], e["source"])
        assert not Path(e["source"]).is_absolute()
        assert e["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert e["pixels_sha256"] == hashlib.sha256(cs.frames[i].tobytes()).hexdigest()


def test_selection_is_deterministic_per_seed(built):
    src, _, _ = built
    assert cal.select(src, 50, seed=7) == cal.select(src, 50, seed=7)
    assert cal.select(src, 50, seed=7) != cal.select(src, 50, seed=8)


def test_steering_selection_spreads_over_range():
    # 900 nearly-straight frames and 100 sharp turns: a uniform sample would take ~10 turns, spreading takes more.
    items = tuple((f"/x/{i}.png", 0.01 * (i % 5)) for i in range(900)) + tuple(
        (f"/t/{i}.png", -0.95 + 0.01 * (i % 5)) for i in range(100))
    src = cal.CalibrationSource("run", "/x", "steer", items, (), 32, 32)
    picked = cal.select(src, 100, seed=0)
    turns = [t for _, t in picked if t < -0.8]
    assert len(picked) == 100 and len(turns) == 50


def test_coverage_warns_small_set_and_missing_class(data_dir, tmp_path):
    src = cal.source_from_data(data_dir, (32, 32))
    _, cov = cal.build(src, tmp_path / "tiny", count=20, seed=0)
    assert any("only 20" in w for w in cov.warnings)
    # a set holding only class 0 must name the classes it misses
    cov2 = cal._coverage(src, np.zeros((5, 32, 32, 3), np.uint8), np.zeros(5, np.int64), 0)
    assert any("plus" in w and "missing" in w for w in cov2.warnings)


def test_corrupt_and_empty_sets_are_refused(built, tmp_path):
    import shutil

    _, out, _ = built
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    raw = bytearray((bad / "images.npy").read_bytes())
    raw[-1] ^= 0xFF
    (bad / "images.npy").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        cal.load_calibration(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no MANIFEST"):
        cal.load_calibration(empty)
    m = json.loads((out / "MANIFEST.json").read_text())
    m["count"] = 0
    shutil.copytree(out, tmp_path / "zero")
    (tmp_path / "zero" / "MANIFEST.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="empty"):
        cal.load_calibration(tmp_path / "zero")


def test_reading_needs_no_tensorflow(built):
    _, out, _ = built
    r = run_python(f"from edgecnn.quantize.calibration import load_calibration; print(len(load_calibration({str(out)!r})))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "120"


def test_cli_calibrate_data_folder_and_bad_inputs(data_dir, tmp_path):
    r = run_cli("calibrate", str(data_dir), "--out", str(tmp_path / "c"), "--count", "50", "--img-size", "32", block_tf=True)
    assert r.returncode == 0, r.stderr
    assert "WARNING: only 50" in r.stdout and "circle" in r.stdout
    assert json.loads((tmp_path / "c" / "MANIFEST.json").read_text())["count"] == 50
    # existing output is not replaced without --overwrite, and nothing is changed
    before = (tmp_path / "c" / "MANIFEST.json").read_bytes()
    r = run_cli("calibrate", str(data_dir), "--out", str(tmp_path / "c"), "--count", "60", block_tf=True)
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "c" / "MANIFEST.json").read_bytes() == before
    r = run_cli("calibrate", str(tmp_path / "nope"), "--out", str(tmp_path / "d"), block_tf=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


def test_cli_calibrate_takes_and_prints_width_x_height(data_dir, tmp_path):
    """Sizes are typed and printed WIDTHxHEIGHT, the way `train --img-size` takes them (issue 16)."""
    r = run_cli("calibrate", str(data_dir), "--out", str(tmp_path / "c"), "--count", "20", "--img-size", "40x24",
                block_tf=True)
    assert r.returncode == 0, r.stderr
    assert "40x24" in r.stdout and "24x40" not in r.stdout
    assert np.load(tmp_path / "c" / "images.npy").shape[1:3] == (24, 40)  # arrays are H x W
    r = run_cli("calibrate", str(data_dir), "--out", str(tmp_path / "d"), "--img-size", "40by24", block_tf=True)
    assert r.clean_error and "--img-size" in r.stderr and not (tmp_path / "d").exists()
