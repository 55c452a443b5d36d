"""The tub v2 writer: read back by edgecnn's reader and by donkeycar's own ``Tub`` (in its own venv, numpy < 2),
deletion the donkeycar way, catalog roll-over, a half-written last line, an unwritable folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

import edgecnn.data.tub_writer as tw
from edgecnn.data.steering_samples import BAD_JSON, DELETED
from edgecnn.data.tub import read_tubs
from edgecnn.data.tub_writer import TubWriter, next_tub_path
from edgecnn.errors import OutputError

DONKEY_PYTHON = Path(os.environ.get("EDGECNN_DONKEY_PYTHON", REPO / ".venv-donkey" / "bin" / "python"))

DONKEY_READ = """
import json, sys, io, contextlib
with contextlib.redirect_stdout(io.StringIO()):  # donkeycar prints a banner when imported
    from donkeycar.parts.tub_v2 import Tub
tub = Tub(sys.argv[1], read_only=True)
records = list(tub)
print(json.dumps({"len": len(tub), "records": records}))
tub.close()
"""


def frame(i: int) -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, (i * 3) % 32] = 255
    return img


def write_tub(path: Path, n: int, **kw) -> TubWriter:
    tub = TubWriter.create(path, **kw)
    for i in range(n):
        tub.write(frame(i), angle=(i % 21 - 10) / 10, throttle=0.3, timestamp=1000.0 + i * 0.05)
    return tub


def donkey_records(tub: Path) -> dict:
    if not DONKEY_PYTHON.exists():
        pytest.skip(f"donkeycar's venv not found at {DONKEY_PYTHON} (python3 -m venv .venv-donkey && "
                    ".venv-donkey/bin/pip install donkeycar==5.3.0 tflite-runtime 'numpy<2' opencv-python-headless "
                    "typing_extensions)")
    proc = subprocess.run([str(DONKEY_PYTHON), "-c", DONKEY_READ, str(tub)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_written_tub_reads_back_in_edgecnn_with_deletions(tmp_path):
    tub = write_tub(tmp_path / "tub_1", 30)
    dropped = tub.delete_since(1000.0 + 25 * 0.05)  # the last 5 records
    assert dropped == [25, 26, 27, 28, 29]
    summary = tub.close()
    assert (summary.records, summary.deleted, summary.kept) == (30, 5, 25)
    data = read_tubs(tmp_path / "tub_1")
    assert len(data.samples) == 25 and data.faults == {DELETED: 5}
    assert [s.steering for s in data.samples[:3]] == [-1.0, -0.9, -0.8]
    assert all(s.throttle == 0.3 for s in data.samples)
    state = json.loads((tmp_path / "tub_1" / "manifest.json").read_text().splitlines()[4])
    assert state["deleted_indexes"] == dropped and state["current_index"] == 30


def test_catalogs_roll_over_and_a_half_written_last_line_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(tw, "MAX_LEN", 10)
    path = tmp_path / "tub_1"
    tub = write_tub(path, 25)
    tub.close()
    assert sorted(p.name for p in path.glob("*.catalog")) == ["catalog_0.catalog", "catalog_1.catalog",
                                                               "catalog_2.catalog"]
    # a crash mid-write: the last line is cut before its end
    last = path / "catalog_2.catalog"
    text = last.read_text()
    last.write_text(text[: len(text) - 20])
    data = read_tubs(path)
    assert len(data.samples) == 24 and data.faults == {BAD_JSON: 1}


def test_donkeycar_reads_the_tub_with_deletions_and_a_cut_last_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tw, "MAX_LEN", 10)
    path = tmp_path / "tub_1"
    tub = write_tub(path, 23)
    tub.delete_since(1000.0 + 20 * 0.05)
    tub.close()
    out = donkey_records(path)
    assert out["len"] == 20
    assert [r["_index"] for r in out["records"]] == list(range(20))
    r = out["records"][3]
    assert r["cam/image_array"] == "3_cam_image_array_.jpg" and r["user/mode"] == "user"
    assert r["user/angle"] == pytest.approx(-0.7) and r["user/throttle"] == 0.3 and r["_timestamp_ms"] == 1000150
    last = path / "catalog_2.catalog"
    last.write_text(last.read_text()[:-15])  # kill -9 mid-line
    assert [r["_index"] for r in donkey_records(path)["records"]] == list(range(20))


def test_empty_recording_leaves_no_tub_and_new_tubs_are_numbered(tmp_path):
    assert next_tub_path(tmp_path).name == "tub_1"
    TubWriter.create(tmp_path / "tub_1").close()
    assert not (tmp_path / "tub_1").exists()
    write_tub(tmp_path / "tub_1", 1).close()
    (tmp_path / "tub_7").mkdir()
    assert next_tub_path(tmp_path).name == "tub_8"
    with pytest.raises(OutputError, match="already exists"):
        TubWriter.create(tmp_path / "tub_1")


def test_unwritable_place_is_one_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create the tub"):
        TubWriter.create(blocker / "tub_1")


def test_records_are_on_disk_as_soon_as_written(tmp_path):
    """Flushed per record: another process (a reader after kill -9) sees every written line at once."""
    tub = write_tub(tmp_path / "tub_1", 5, sync_every_s=3600)
    lines = (tmp_path / "tub_1" / "catalog_0.catalog").read_text().splitlines()
    assert len(lines) == 5 and all(json.loads(ln)["_index"] == i for i, ln in enumerate(lines))
    assert len(read_tubs(tmp_path / "tub_1").samples) == 5
    tub.close()


def test_background_sync_during_roll_over_loses_nothing(tmp_path, monkeypatch):
    """The syncer thread fsyncs and rewrites the manifests while records and new catalogs keep coming."""
    monkeypatch.setattr(tw, "MAX_LEN", 10)
    tub = write_tub(tmp_path / "tub_1", 0, sync_every_s=0.001)
    for i in range(60):
        tub.write(frame(i), angle=0.1, throttle=0.2, timestamp=2000.0 + i)
        if i == 45:
            tub.delete_since(2000.0 + 40)
    tub.close()
    data = read_tubs(tmp_path / "tub_1")
    assert len(data.samples) == 54 and data.faults == {DELETED: 6}
    state = json.loads((tmp_path / "tub_1" / "manifest.json").read_text().splitlines()[4])
    assert state["current_index"] == 60 and len(state["paths"]) == 6
    last = json.loads((tmp_path / "tub_1" / "catalog_5.catalog_manifest").read_text())
    assert last["start_index"] == 50 and len(last["line_lengths"]) == 10
