"""A bundle folder is accepted wherever a model is (classify/steer ``--model``, inspect/benchmark MODEL), and
inspect prints sizes WIDTHxHEIGHT. On the shipped bundles, through the real CLI (device code only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, write_video
from edgecnn.errors import ModelError
from edgecnn.runtime.interpreter import resolve_model_path

SHAPES = REPO / "firmware_models" / "shapes_compact"
ROADS = REPO / "firmware_models" / "roads_pilotnet"


def run(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("benchmarking ")]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def test_resolve_model_path(tmp_path):
    assert resolve_model_path(SHAPES) == SHAPES / "model_int8.tflite"
    assert resolve_model_path(SHAPES / "model_int8.tflite") == SHAPES / "model_int8.tflite"
    assert resolve_model_path(tmp_path / "absent.tflite") == tmp_path / "absent.tflite"  # reading says "not found"
    shutil.copy(SHAPES / "model_int8.tflite", tmp_path / "model_fp32.tflite")
    shutil.copy(SHAPES / "model_int8.tflite", tmp_path / "model_fp16.tflite")
    with pytest.raises(ModelError, match="model_fp16.tflite, model_fp32.tflite"):
        resolve_model_path(tmp_path)
    with pytest.raises(ModelError, match="no .tflite model"):
        resolve_model_path(tmp_path / "..")


def test_classify_takes_a_bundle_folder(tmp_path):
    from edgecnn.data.shapes import generate

    img = generate(tmp_path / "shapes", size=64, per_class=1, seed=2) / "square" / "square_00000.png"
    by_folder = run("classify", "--model", SHAPES, "--json", img)
    by_file = run("classify", "--model", SHAPES / "model_int8.tflite", "--json", img)
    assert by_folder.returncode == 0 and by_file.returncode == 0, by_folder.stderr
    assert json.loads(by_folder.stdout.splitlines()[0])["top"] == json.loads(by_file.stdout.splitlines()[0])["top"]


def test_steer_takes_a_bundle_folder(tmp_path):
    video = write_video(tmp_path / "road.mp4", 4, size=(200, 66))
    proc = run("steer", "--model", ROADS, "--source", video, "--every-frame")
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["state"] for line in proc.stdout.splitlines()] == ["ok"] * 4 + ["stopped"]


def test_inspect_and_benchmark_take_a_bundle_folder():
    proc = run("inspect", ROADS, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"].endswith("roads_pilotnet/model_int8.tflite")
    proc = run("benchmark", SHAPES, "--runs", "5", "--warmup", "1", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["runs"] == 5, proc.stderr


def test_inspect_prints_width_x_height():
    """A 200x66 (WIDTHxHEIGHT) model is shown as 200x66, as --img-size takes it, never 66x200."""
    proc = run("inspect", ROADS)
    assert proc.returncode == 0, proc.stderr
    assert "200x66" in proc.stdout and "66x200" not in proc.stdout, proc.stdout


def test_a_folder_without_an_int8_model_says_which_models_it_holds(tmp_path):
    shutil.copy(SHAPES / "model_int8.tflite", tmp_path / "model_fp32.tflite")
    for argv in (["classify", "--model", tmp_path, SHAPES / "labels.txt"], ["inspect", tmp_path],
                 ["benchmark", tmp_path, "--runs", "1"]):
        line = one_error_line(run(*argv))
        assert "model_int8.tflite" in line and "model_fp32.tflite" in line, line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no .tflite model" in one_error_line(run("inspect", empty))
