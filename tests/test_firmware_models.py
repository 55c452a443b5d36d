"""The shipped reference bundles in firmware_models/: intact, TensorFlow-free, and as accurate as their cards say.

Each bundle is checked against its model card (sha256 of every file, calibration set present and matching), loaded
and run with TensorFlow imports blocked, and scored on freshly generated data (seeds the bundle never saw).
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, run_python

BUNDLES = sorted(p.parent for p in (REPO / "firmware_models").glob("*/model_card.json"))


def test_reference_bundles_are_shipped():
    tasks = {json.loads((b / "model_card.json").read_text())["task"] for b in BUNDLES}
    assert tasks == {"classify", "steer"}, BUNDLES


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_files_match_their_card(bundle: Path):
    card = json.loads((bundle / "model_card.json").read_text())
    assert card["files"], "the card lists no files"
    for name, entry in card["files"].items():
        data = (bundle / name).read_bytes()
        assert len(data) == entry["bytes"], name
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
    calib = REPO / card["calibration"]["path"]
    manifest = json.loads((calib / "MANIFEST.json").read_text())
    assert manifest["sha256"] == card["calibration"]["sha256"]
    assert card["precision"] == "int8"
    assert (bundle / "compare" / "report.json").is_file() and (bundle / "compare" / "accuracy_latency.png").is_file()
    if card["task"] == "classify":
        assert (bundle / "labels.txt").read_text().splitlines()[0].startswith("0 ")


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_bundle_reproduces_its_accuracy_without_tensorflow(bundle: Path, tmp_path: Path):
    """Fresh data (other seeds), the int8 model through the device runtime, TensorFlow blocked."""
    card = json.loads((bundle / "model_card.json").read_text())
    recorded = card["metrics"]["model_int8.tflite"]["value"]
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from pathlib import Path
        from edgecnn.runtime.metadata import read_contract
        from edgecnn.runtime.predictor import Predictor
        from edgecnn.preprocess import load_image
        model = Path({str(bundle / "model_int8.tflite")!r})
        contract = read_contract(model.read_bytes())
        pred = Predictor(str(model))
        assert pred.input.dtype == 'int8', pred.input.dtype
        out = Path({str(tmp_path)!r}) / 'fresh'
        if contract.task == 'classify':
            from edgecnn.data.shapes import generate
            from edgecnn.data.imagefolder import scan
            generate(out, size=contract.input_width, per_class=40, seed=20261129)
            folder = scan(out)
            index = {{c: i for i, c in enumerate(contract.labels)}}
            hits = [int(np.argmax(pred.predict(load_image(s.path)))) == index[folder.classes[s.label]]
                    for s in folder.samples]
            print(json.dumps({{"value": float(np.mean(hits)), "n": len(hits)}}))
        else:
            from edgecnn.data.roads import generate
            from edgecnn.data.steering import load_steering_dataset
            from edgecnn.outputs import decode_steering
            generate(out, n=160, seed=20261129, per_road=8)
            ds = load_steering_dataset(out)
            raw = np.stack([pred.predict(load_image(s.path)) for s in ds.samples])
            steer = decode_steering(raw, contract).steering
            err = np.abs(steer - np.array([s.steering for s in ds.samples]))
            print(json.dumps({{"value": float(err.mean()), "n": len(err)}}))
        assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]
    """)
    r = run_python(code, block_tf=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = json.loads(r.stdout.strip().splitlines()[-1])
    if card["task"] == "classify":
        # 200 fresh images: one image is 0.5 points; allow 4 points of sampling noise below the card's figure
        assert fresh["value"] >= recorded - 0.04, (fresh, recorded)
    else:
        assert fresh["value"] <= recorded + 0.05, (fresh, recorded)
