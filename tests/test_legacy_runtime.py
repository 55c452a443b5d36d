"""The legacy fallback, end to end: ``tflite_runtime`` 2.14 with numpy < 2 and no ai-edge-litert.

The README promises that the device commands work there. They used to fail on every model ("reading model
metadata needs ai-edge-litert") because the metadata reader took its schema from ai-edge-litert; edgecnn now
carries its own reader (:mod:`edgecnn.runtime.tflite_schema`, over ``flatbuffers``).

Two proofs:

* in this process's Python, with ai_edge_litert made unimportable: reading the contract and everything
  ``inspect`` reads needs only ``flatbuffers``;
* in a real legacy venv (``make test`` builds ``.venv-legacy`` with ``pip install -e '.[legacy]'``; or set
  ``EDGECNN_LEGACY_PYTHON``): classify, inspect, benchmark and steer on the shipped bundles and on the Coral
  MobileNet. Without that venv the tests skip, except under ``CI``, where they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO, SHARED_DATA, venv_python, write_video

SHAPES = REPO / "firmware_models" / "shapes_compact"
ROADS = REPO / "firmware_models" / "roads_pilotnet"
CORAL = SHARED_DATA / "coral"

BLOCK_LITERT = textwrap.dedent(
    """
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("ai_edge_litert", "tensorflow", "keras"):
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
    """
)


def test_contract_and_model_info_need_only_flatbuffers():
    """With ai_edge_litert (and TensorFlow) unimportable, the contract and the inspect facts still read."""
    code = BLOCK_LITERT + textwrap.dedent(
        f"""
        from edgecnn.runtime.inspect import analyse, read_model_info
        from edgecnn.runtime.metadata import read_contract
        for folder, task in (({str(SHAPES)!r}, "classify"), ({str(ROADS)!r}, "steer")):
            data = open(folder + "/model_int8.tflite", "rb").read()
            assert read_contract(data).task == task
            info = read_model_info(data)
            assert info.quantization == "int8" and info.inputs[0].dtype == "int8" and info.macs > 0
            assert analyse(data)["contract"]["task"] == task
        assert "ai_edge_litert" not in sys.modules
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def _legacy_python() -> str:
    return venv_python("legacy")


@pytest.fixture(scope="module")
def legacy() -> tuple[str, dict[str, str]]:
    """The legacy venv's python and an environment for it; checks it really is the legacy setup."""
    py = _legacy_python()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = textwrap.dedent(
        """
        import importlib.util, json, numpy, edgecnn
        from tflite_runtime import interpreter
        print(json.dumps({"numpy": numpy.__version__, "edgecnn": edgecnn.__file__,
                          "litert": importlib.util.find_spec("ai_edge_litert") is not None,
                          "tensorflow": importlib.util.find_spec("tensorflow") is not None}))
        """
    )
    proc = subprocess.run([py, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert int(facts["numpy"].split(".")[0]) < 2 and not facts["litert"] and not facts["tensorflow"], facts
    assert Path(facts["edgecnn"]).resolve().is_relative_to(REPO), facts  # this checkout, not a stale copy
    return py, env


def run(legacy, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    py, env = legacy
    return subprocess.run([py, "-m", "edgecnn", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def test_legacy_classify_inspect_benchmark_on_the_shipped_bundles(legacy, tmp_path):
    from edgecnn.data.shapes import generate

    data = generate(tmp_path / "shapes", size=64, per_class=2, seed=5)
    img = data / "circle" / "circle_00001.png"
    for model in (SHAPES, SHAPES / "model_int8.tflite"):  # the bundle folder and the file
        proc = run(legacy, "classify", "--model", model, "--json", img)
        assert proc.returncode == 0, proc.stderr
        top = json.loads(proc.stdout.splitlines()[0])["top"]
        assert top[0]["label"] in ("circle", "square", "triangle", "star", "x"), top
    for bundle, task in ((SHAPES, "classify"), (ROADS, "steer")):
        proc = run(legacy, "inspect", bundle, "--json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["loads"] and report["runtime"].startswith("tflite-runtime"), report
        assert report["contract"]["task"] == task and report["quantization"] == "int8"
        proc = run(legacy, "benchmark", bundle, "--runs", "10", "--json")
        assert proc.returncode == 0 and json.loads(proc.stdout)["runs"] == 10, proc.stderr


def test_legacy_steer_on_the_shipped_bundle(legacy, tmp_path):
    video = write_video(tmp_path / "road.mp4", 6, size=(200, 66))
    proc = run(legacy, "steer", "--model", ROADS, "--source", video, "--every-frame", "--max-frames", "5")
    assert proc.returncode == 0, proc.stderr
    commands = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [c["state"] for c in commands] == ["ok"] * 5 + ["stopped"], commands
    assert all(-1.0 <= c["steering"] <= 1.0 for c in commands)


def test_legacy_runs_the_coral_mobilenet(legacy, shared_data):
    model = CORAL / "mobilenet_v1_0.25_128_quant.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not found (see {SHARED_DATA / 'README.md'})")
    proc = run(legacy, "classify", "--model", model, "--labels", CORAL / "imagenet_labels.txt", "--input-range",
               "-1,1", "--json", CORAL / "parrot.jpg")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["top"][0]["label"] == "macaw"
    proc = run(legacy, "inspect", model, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["loads"] and report["quantization"] == "uint8" and report["contract"] is None, report
    proc = run(legacy, "benchmark", model, "--runs", "5", "--input", CORAL / "parrot.jpg", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["runs"] == 5, proc.stderr
