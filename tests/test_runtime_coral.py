"""The real Coral MobileNet (uint8 I/O, no edgecnn contract) with its labels, on real photos, via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORAL = REPO.parent / "shared" / "data" / "coral"
MODEL = CORAL / "mobilenet_v1_0.25_128_quant.tflite"
DOMESTIC_CATS = {"Egyptian cat", "tiger cat", "tabby, tabby cat"}

pytestmark = [
    pytest.mark.device,
    pytest.mark.skipif(not MODEL.is_file(), reason=f"Coral test data not found at {CORAL} (see shared/data/README.md)"),
]


def edgecnn(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgecnn", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_parrot_is_a_macaw_and_the_cat_a_domestic_cat():
    # uint8 input with scale 1/128 and zero point 128: without options the raw pixel is fed, as Coral does.
    proc = edgecnn("classify", "--model", MODEL, "--labels", CORAL / "imagenet_labels.txt", "--json",
                   CORAL / "parrot.jpg", CORAL / "cat.bmp")
    assert proc.returncode == 0, proc.stderr
    parrot, cat = (json.loads(ln) for ln in proc.stdout.splitlines())
    assert parrot["top"][0]["label"] == "macaw" and parrot["top"][0]["score"] > 0.5
    assert cat["top"][0]["label"] in DOMESTIC_CATS
    assert parrot["top"][0]["index"] == 89  # line 0 of the labels file is "background"


def test_explicit_input_range_gives_the_same_answer():
    proc = edgecnn("classify", "--model", MODEL, "--labels", CORAL / "imagenet_labels.txt", "--input-range", "-1,1",
                   "--rgb", "--json", "--top-k", "1", CORAL / "parrot.jpg")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["top"][0]["label"] == "macaw"


def test_inspect_and_benchmark_a_third_party_uint8_model():
    card = json.loads(edgecnn("inspect", MODEL, "--json").stdout)
    assert card["quantization"] == "uint8" and card["contract"] is None and card["loads"]
    assert card["inputs"][0] | {"name": "input"} == {"name": "input", "shape": [1, 128, 128, 3], "dtype": "uint8",
                                                    "scale": 0.0078125, "zero_point": 128}
    assert card["outputs"][0]["shape"] == [1, 1001]
    assert 13_000_000 < card["macs"] < 14_500_000  # MobileNet v1 0.25 at 128x128: about 14 M MACs
    assert 450_000 < card["parameters"] < 500_000  # about 0.47 M parameters
    proc = edgecnn("benchmark", MODEL, "--threads", "1", "--runs", "20", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["p50_ms"] > 0


def test_wrong_labels_file_is_caught(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("0 cat\n2000 dog\n")
    proc = edgecnn("classify", "--model", MODEL, "--labels", labels, CORAL / "parrot.jpg")
    assert proc.returncode == 2 and "only 1001 outputs" in proc.stderr and "Traceback" not in proc.stderr
