"""Shared helpers for the quantize/export tests: a tiny trained run folder in the documented layout.

Not a conftest (the lead owns that): test modules import these functions. Building a run takes a few seconds (a
32x32 shapes data set, a narrow ``compact`` model, three epochs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# Imported by a subprocess before anything else: any import of tensorflow or keras fails loudly.
BLOCK_TF = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, _Block())
"""


def run_cli(*args: str, block_tf: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m edgecnn ARGS`` in a subprocess (the honest way to check exit codes and 'no traceback')."""
    code = (BLOCK_TF if block_tf else "") + "import sys; from edgecnn.cli import main; sys.argv[0]='edgecnn'; main()"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([PYTHON, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def run_python(code: str, block_tf: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([PYTHON, "-c", (BLOCK_TF if block_tf else "") + code], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def make_run(root: Path, size: int = 32, per_class: int = 40, epochs: int = 4, arch: str = "compact",
             seed: int = 0) -> Path:
    """Generate shapes data under ``root/data`` and train a tiny run at ``root/run`` (model.keras,
    contract.json, split.json, metrics.json) following the layout of ``edgecnn train``."""
    import keras
    import numpy as np

    from edgecnn.contract import Contract
    from edgecnn.data import shapes
    from edgecnn.data.imagefolder import scan, split
    from edgecnn.models.registry import create_model
    from edgecnn.preprocess import load_image, prepare_batch

    data = shapes.generate(root / "data", size=size, per_class=per_class, seed=seed)
    folder = scan(data)
    parts = split(folder)
    contract = Contract(task="classify", input_height=size, input_width=size, labels=folder.classes, arch=arch)
    keras.utils.set_random_seed(seed)
    kw = {"width": 8} if arch == "compact" else {}
    model = create_model(arch, (size, size, 3), len(folder.classes), **kw)
    x = prepare_batch([load_image(s.path) for s in parts["train"]], contract)
    y = np.asarray([s.label for s in parts["train"]])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    run = root / "run"
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    contract.save(run / "contract.json")
    splits = {k: [[s.path, s.label] for s in v] for k, v in parts.items()}
    (run / "split.json").write_text(json.dumps({"task": "classify", "data": str(data), "splits": splits}))
    (run / "metrics.json").write_text("{}")
    return run
