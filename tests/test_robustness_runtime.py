"""Robustness of the device side: hostile sandbox children, unsafe Keras files, faulty cameras against the real
``edgecnn classify`` process, signals, listening sockets, and the report's verdicts.

The camera is :class:`edgecnn_robustness.fakecam.FakeCamera`, a real MJPEG-over-HTTP stream on 127.0.0.1 read by
OpenCV's FFmpeg backend. Steering under the same faults is covered by ``tests/test_steer_cli.py`` and measured by
``edgecnn robustness`` (worst stall-to-neutral time).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgecnn_robustness import camera, campaign, report
from edgecnn_robustness.fakecam import FakeCamera
from edgecnn_robustness.mutate import KINDS, make_mutant, structure_offsets


def test_hostile_children_are_contained_and_named():
    for h in campaign.hostile_children(memory_mb=512, cpu_s=1, wall_s=4.0):
        assert h.named, h
        # Contained within its own limit (plus start-up and the kill); the CPU loop's wall limit scales with its
        # CPU limit (campaign.CPU_WALL_FACTOR) so load cannot make it time out instead.
        assert h.seconds < h.wall_s + 6, h


def test_unsafe_keras_files_are_refused(tmp_path):
    for r in campaign.keras_refusals(tmp_path):
        assert r.refused and "\n" not in r.message, r


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """A small int8 classifier with a contract, from the test suite's shapes model builder (TensorFlow)."""
    pytest.importorskip("tensorflow", reason="building the test model needs TensorFlow (host)")
    import keras

    from edgecnn.contract import Contract
    from edgecnn.runtime.metadata import embed_contract
    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    inp = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    import numpy as np

    calib = np.random.default_rng(0).random((8, 32, 32, 3), np.float32)
    conv.representative_dataset = lambda: ([calib[i : i + 1]] for i in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    contract = Contract(task="classify", input_height=32, input_width=32, labels=("a", "b", "c"), arch="test")
    path = tmp_path_factory.mktemp("rb_runtime") / "m_int8.tflite"
    path.write_bytes(embed_contract(conv.convert(), contract))
    return path


@pytest.mark.host
def test_mutators_are_reproducible_and_each_kind_changes_the_file(int8_model):
    src = {"int8": int8_model.read_bytes()}
    assert len(structure_offsets(src["int8"])) > 100
    seen = set()
    for n in range(12):
        a, b = make_mutant(src, n, seed=3), make_mutant(src, n, seed=3)
        assert a.data == b.data and a.kind == KINDS[n % len(KINDS)]
        seen.add(a.kind)
        assert a.data != src["int8"] or "unchanged" in a.detail
    assert seen == set(KINDS)


@pytest.mark.host
def test_classify_on_a_live_stream_exits_cleanly_after_max_frames(int8_model):
    """Regression: classify died with SIGABRT/SIGSEGV at exit when OpenCV was still inside read() on the reader
    thread (every live stream with --max-frames)."""
    with FakeCamera() as cam:
        for _ in range(2):
            p = subprocess.run([sys.executable, "-m", "edgecnn", "classify", "--model", str(int8_model), "--source",
                                cam.url, "--json", "--max-frames", "30", "--trust-model"], check=False,
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, (p.returncode, p.stderr[-500:])
            assert len(p.stdout.splitlines()) == 30


@pytest.mark.host
@pytest.mark.slow
def test_classify_survives_drop_stall_signals_and_a_vanished_camera(int8_model):
    cases = camera.classify_cases(int8_model)
    print(cases)
    assert len(cases) == 5
    for c in cases:
        assert c["ok"], c


def test_nothing_listens_on_a_public_interface():
    for c in camera.network_checks():
        assert c["ok"], c


def test_report_verdicts_and_table():
    good = {"form": "short", "kill": {"trials": 4, "interrupted": 3, "finished_before_kill": 1, "old": 2, "new": 2,
                                      "partial": 0, "temp_leftovers": 0},
            "camera": {"cases": [{"name": "steer", "value": "worst 510 ms", "requirement": "<= 550", "ok": True}]}}
    assert report.passed(good)
    table = report.format_table(good)
    assert "PASS" in table and "all requirements hold" in table
    bad = {**good, "kill": {**good["kill"], "partial": 1}}
    assert not report.passed(bad) and "FAIL" in report.format_table(bad)


def test_robustness_help_does_not_import_tensorflow():
    code = ("import sys; from edgecnn.cli import main\n"
            "try:\n    main(['robustness', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "--kill-trials" in p.stdout and "--mutants" in p.stdout


def test_staged_dir_swaps_the_old_folder_out_atomically(tmp_path):
    """A folder replaced with --overwrite is exchanged in one step (renameat2), so a kill -9 at any moment leaves
    the old or the new folder at the destination, never none."""
    import sys as _sys

    from edgecnn.atomic import _exchange, staged_dir

    dest = tmp_path / "bundle"
    with staged_dir(dest) as tmp:
        (tmp / "old.txt").write_text("old")
    with staged_dir(dest, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in dest.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no .bundle.old.* or temp folder left
    other = tmp_path / "other"
    other.mkdir()
    if not _sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux-only; elsewhere staged_dir falls back to two renames")
    assert _exchange(other, dest)
    assert [p.name for p in other.iterdir()] == ["new.txt"] and list(dest.iterdir()) == []
