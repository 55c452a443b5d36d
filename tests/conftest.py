"""Shared test fixtures: the repository, a CLI runner in a real subprocess (optionally with TensorFlow blocked),
tiny generated data sets and a tiny trained run."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def clean_error(self) -> bool:
        """A user error: non-zero exit, not killed by a signal, no traceback, a one-line 'Error:' message."""
        return (
            self.returncode > 0
            and "Traceback" not in self.stderr
            and "Traceback" not in self.stdout
            and any(line.startswith("Error:") for line in self.stderr.splitlines())
        )


def _blocker() -> str:
    """Code that makes any later import of tensorflow/keras raise (see test_device_line.py)."""
    from test_device_line import BLOCKER

    return BLOCKER


def run_cli(*args: str, timeout: float = 300, env: dict | None = None, python: str | None = None, cwd=None,
            block_tf: bool = False) -> CliResult:
    """Run ``python -m edgecnn ARGS`` in a fresh process and capture its output; with ``block_tf`` any import of
    TensorFlow or Keras fails in that process, as on a device."""
    full_env = {**os.environ, **(env or {})}
    if block_tf:
        code = _blocker() + "import runpy, sys; sys.argv[0] = 'edgecnn'; runpy.run_module('edgecnn', run_name='__main__')"
        cmd = [python or sys.executable, "-c", code, *map(str, args)]
    else:
        cmd = [python or sys.executable, "-m", "edgecnn", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd or REPO)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def run_python(code: str, block_tf: bool = True, timeout: float = 120) -> CliResult:
    """Run Python ``code`` in a fresh process (by default with TensorFlow and Keras blocked)."""
    proc = subprocess.run([sys.executable, "-c", (_blocker() if block_tf else "") + code], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """A tiny shapes data set: 5 classes x 24 images of 32x32, seed 0."""
    from edgecnn.data.shapes import generate

    return generate(tmp_path_factory.mktemp("data") / "shapes", size=32, per_class=24, seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"third-party test data not found at {SHARED_DATA} (only present in the edgecnn workspace)")
    return SHARED_DATA


def make_run(root: Path, size: int = 32, per_class: int = 40, epochs: int = 4, arch: str = "compact",
             seed: int = 0) -> Path:
    """Generate shapes data under ``root/data`` and train a tiny run at ``root/run`` (model.keras, contract.json,
    split.json, metrics.json) in the layout of ``edgecnn train``; a few seconds (32x32, a narrow model)."""
    import json

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny trained classify run (see :func:`make_run`), shared read-only; its data is ``tiny_run.parent / "data"``."""
    return make_run(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_calibration(tiny_run, tmp_path_factory) -> Path:
    """A 100-item calibration set from ``tiny_run``'s training split (seed 0)."""
    from edgecnn.quantize import calibration as cal

    out = tmp_path_factory.mktemp("calibration") / "tiny"
    return cal.build(cal.source_from_run(tiny_run), out, count=100, seed=0)[0]


def write_video(path: Path, n: int, fps: float = 25.0, size: tuple[int, int] = (64, 48)) -> Path:
    """A real mp4 (OpenCV, mp4v) of ``n`` numbered frames of ``size`` (width, height), each frame different."""
    import cv2
    import numpy as np

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert w.isOpened()
    scale = size[1] / 60
    for i in range(n):
        img = np.full((size[1], size[0], 3), (i * 9) % 250, np.uint8)
        cv2.putText(img, str(i), (4, int(size[1] * 0.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 255), 2)
        w.write(img)
    w.release()
    return path


class SchedulerProbe:
    """Measures how late this machine wakes a sleeping thread, while a timing test runs.

    Fail-safe tests check "neutral within deadline + 50 ms". On a loaded 2-core machine the process itself may not
    be scheduled for longer than that, which says nothing about the code. The probe sleeps 5 ms in a loop and keeps
    the worst oversleep; a test allows ``margin(0.05)`` = 50 ms + that worst delay, so its bound holds the code to
    the deadline and the machine's load to what was measured, not to a guess.
    """

    def __init__(self, tick: float = 0.005) -> None:
        import threading

        self.tick, self.worst = tick, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time

        while not self._stop.is_set():
            t0 = time.monotonic()
            time.sleep(self.tick)
            self.worst = max(self.worst, time.monotonic() - t0 - self.tick)

    def __enter__(self) -> "SchedulerProbe":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def margin(self, base: float) -> float:
        """``base`` seconds plus the worst scheduling delay seen so far (seconds)."""
        return base + self.worst


@pytest.fixture()
def scheduler():
    """A running :class:`SchedulerProbe` for the duration of one test."""
    with SchedulerProbe() as probe:
        yield probe


VENVS = {
    "device": ("EDGECNN_DEVICE_PYTHON", ".venv-device", "the TensorFlow-free install"),
    "legacy": ("EDGECNN_LEGACY_PYTHON", ".venv-legacy", "the tflite_runtime fallback"),
}


def venv_python(kind: str) -> str:
    """The python of the ``device`` or ``legacy`` venv that ``make test`` builds (or the one its variable names).

    Skips the test when it is absent, and fails it when CI is set: what that venv proves must be proven on every
    CI run."""
    var, folder, what = VENVS[kind]
    path = Path(os.environ[var]) if os.environ.get(var) else REPO / folder / "bin" / "python"
    if not path.exists():
        msg = f"no {kind} venv at {path} (make test creates it; or set {var})"
        if os.environ.get("CI"):
            pytest.fail(f"{msg} and CI is set: {what} must be proven on every CI run")
        pytest.skip(msg)
    return str(path)


def venv_env() -> dict[str, str]:
    """This process's environment without what would make another venv's python import from this one."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


# The slowest test files, slowest first (sums of their test times in `pytest -n 2 --dist loadfile --durations=0`
# on this 2-core machine under load; the first four were 110-460 s each). `make test` runs `--dist loadfile
# --no-loadscope-reorder`: each file stays on one worker (its module fixtures are built once) and the files are
# handed out in collection order, so these start first and no long file is left to run alone at the end (with
# xdist's own order, "most tests first", the robustness and pipeline files started last and ran alone). Files not
# listed keep pytest's order after them; a stale list costs balance, never a test.
SLOWEST_FILES = (
    "test_robustness_models.py",  # mutation campaign (200 mutants x 3 stages), kill -9, full disk
    "test_distribute.py",  # two real workers, twice; mirrored on two logical CPUs
    "test_train.py",
    "test_quantize_convert.py",
    "test_export_bundle.py",
    "test_runtime_models.py",
    "test_train_steer.py",
    "test_file_modes.py",  # every writing command, in process, under two umasks
    "test_pipeline.py",  # one test: the pipeline four times
    "test_segment.py",
    "test_compare_cli.py",
    "test_device_line.py",
    "test_replay.py",
    "test_steer_cli.py",
)


def pytest_collection_modifyitems(session, config, items):
    """Put the tests of :data:`SLOWEST_FILES` first, in that order (a stable sort: within a file, and for every
    other file, pytest's order is kept)."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
