"""``edgecnn classify`` refuses models that are not classifiers with one line and exit 2, naming the command that
runs them: a navigate model (camera + route map), as steering and segment models are refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, run_cli

from edgecnn.contract import Contract, map_entry
from edgecnn.navmap import MapSpec
from edgecnn.runtime.metadata import embed_contract, read_contract

SHAPES = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"


def _with_contract(tmp_path: Path, contract: Contract, name: str) -> Path:
    """The shapes network under another contract: the refusal reads the contract before loading anything else."""
    path = tmp_path / name
    path.write_bytes(embed_contract(SHAPES.read_bytes(), contract))
    return path


@pytest.fixture()
def image(tmp_path) -> Path:
    path = tmp_path / "frame.png"
    cv2.imwrite(str(path), np.zeros((48, 64, 3), np.uint8))
    return path


def test_a_navigate_model_is_refused_with_the_command_that_runs_it(tmp_path, image):
    base = read_contract(SHAPES.read_bytes())
    nav = Contract(task="navigate", input_height=base.input_height, input_width=base.input_width, head="gmm",
                   components=3, map=map_entry(MapSpec()))
    model = _with_contract(tmp_path, nav, "nav_int8.tflite")
    r = run_cli("classify", "--model", model, "--trust-model", image, block_tf=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].endswith(f"{model} is a navigate model (camera + route map); run it with edgecnn steer --route "
                             "FILE --pose SOURCE")
    assert not r.stdout


@pytest.mark.parametrize(("task", "words"), [("steer", "is a steering model (edgecnn steer)"),
                                             ("segment", "is a 'segment' model")])
def test_steering_and_segment_models_are_still_refused(tmp_path, image, task, words):
    base = read_contract(SHAPES.read_bytes())
    fields = {"head": "class-map", "labels": ("background", "a")} if task == "segment" else {"head": "regression"}
    model = _with_contract(tmp_path, Contract(task=task, input_height=base.input_height,
                                              input_width=base.input_width, **fields), f"{task}.tflite")
    r = run_cli("classify", "--model", model, "--trust-model", image, block_tf=True)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
