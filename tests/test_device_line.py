"""The device line: the device commands never import TensorFlow or Keras, and load only an allowed set of
third-party packages.

Two proofs that complement each other:

* static, over the whole import graph (function-level imports included): the ``device-line`` and
  ``device-commands`` contracts in ``pyproject.toml``, checked by ``tests/test_layers.py``;
* dynamic, here: ``classify``, ``steer`` (also ``steer --route --pose`` with a navigate model), ``inspect`` and
  ``benchmark`` run for real on shipped models, in a process where importing tensorflow/keras raises (and is
  recorded even when the caller catches it), and at exit the third-party packages that were loaded must be in
  :data:`ALLOWED_THIRD_PARTY`. This is Click's
  ``test_imports.py`` idea applied to whole commands. The same runs happen in the device venv (``make test``
  builds ``.venv-device`` with ``edgecnn[device]`` only).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, venv_env, venv_python, write_video

# What the device commands may load. A new device feature that needs a package adds it here, on purpose.
ALLOWED_THIRD_PARTY = {"ai_edge_litert", "tflite_runtime", "numpy", "cv2", "click", "flatbuffers"}
BLOCKED = ("tensorflow", "keras", "tf_keras")

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    _edgecnn_blocked_attempts = []
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
                _edgecnn_blocked_attempts.append(name)
                raise ImportError(f"device line crossed: {name} imported")
            return None
    sys.meta_path.insert(0, Block())
    """
)

# Runs one edgecnn command line and writes, at interpreter exit, the top-level packages that were imported and
# every blocked import that was attempted.
RECORDER = BLOCKER + textwrap.dedent(
    """
    import atexit, json, os
    def _edgecnn_dump():
        loaded = sorted({m.split(".")[0] for m in list(sys.modules)})
        with open(os.environ["EDGECNN_MODULES_OUT"], "w") as f:
            json.dump({"loaded": loaded, "attempted": _edgecnn_blocked_attempts}, f)
    atexit.register(_edgecnn_dump)
    sys.argv = ["edgecnn", *json.loads(os.environ["EDGECNN_ARGV"])]
    from edgecnn.cli import main
    main()
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


def third_party(loaded: list[str]) -> set[str]:
    """Top-level module names that are neither the standard library, nor edgecnn, nor interpreter internals."""
    return {m for m in loaded if m not in sys.stdlib_module_names and not m.startswith("_") and m != "edgecnn"}


@pytest.fixture(scope="module")
def device_inputs(tmp_path_factory) -> dict[str, Path]:
    """Shipped models (no TensorFlow needed to use them), two photos and a short video."""
    root = tmp_path_factory.mktemp("device_line")
    images = root / "images"
    images.mkdir()
    for i in range(2):
        img = np.full((96, 128, 3), 40 + 80 * i, np.uint8)
        cv2.circle(img, (64, 48), 30, (255, 255, 255), 4)
        cv2.imwrite(str(images / f"{i}.png"), img)
    return {
        "classify": REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite",
        "steer": REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite",
        "images": images,
        "video": write_video(root / "drive.mp4", 12, size=(160, 120)),
        "root": root,
    }


def _commands(d: dict[str, Path]) -> dict[str, list[str]]:
    return {
        "classify": ["classify", "--model", str(d["classify"]), "--json", str(d["images"] / "0.png"),
                     str(d["images"] / "1.png")],
        "steer": ["steer", "--model", str(d["steer"]), "--source", str(d["video"]), "--every-frame",
                  "--max-frames", "8"],
        "inspect": ["inspect", str(d["classify"]), "--json"],
        "benchmark": ["benchmark", str(d["classify"]), "--runs", "5", "--warmup", "1", "--json"],
    }


def _record(python: str, argv: list[str], out: Path, env: dict | None = None) -> dict:
    full_env = {**(env or os.environ), "EDGECNN_MODULES_OUT": str(out), "EDGECNN_ARGV": json.dumps(argv)}
    proc = subprocess.run([python, "-c", RECORDER], capture_output=True, text=True, cwd=REPO, timeout=180,
                          env=full_env)
    assert proc.returncode == 0, (argv[0], proc.stderr[-2000:])
    return json.loads(out.read_text())


def test_blocker_really_blocks():
    proc = _run("import tensorflow")
    assert proc.returncode != 0 and "device line crossed" in proc.stderr


def test_allow_list_check_can_fail():
    """The check below is not vacuous: a process that imports an outside package is caught."""
    assert third_party(["numpy", "os", "_io", "edgecnn", "PIL", "tensorflow"]) == {"numpy", "PIL", "tensorflow"}


@pytest.mark.parametrize("command", ["classify", "steer", "inspect", "benchmark"])
def test_device_command_loads_only_allowed_packages(command, device_inputs):
    """With TensorFlow installed but blocked: the command runs, tries no blocked import, loads only the allow-list."""
    argv = _commands(device_inputs)[command]
    got = _record(sys.executable, argv, device_inputs["root"] / f"{command}.json")
    assert got["attempted"] == [], f"{command} tried to import {got['attempted']}"
    extra = third_party(got["loaded"]) - ALLOWED_THIRD_PARTY
    assert not extra, f"{command} loaded packages outside the device allow-list: {sorted(extra)}"


def test_device_venv_commands_load_only_allowed_packages(device_inputs):
    """The same four commands in the device venv (``edgecnn[device]`` only, TensorFlow absent)."""
    py = venv_python("device")
    env = venv_env()
    for command, argv in _commands(device_inputs).items():
        got = _record(str(py), argv, device_inputs["root"] / f"venv-{command}.json", env=env)
        assert got["attempted"] == [], f"{command} tried to import {got['attempted']}"
        extra = third_party(got["loaded"]) - ALLOWED_THIRD_PARTY
        assert not extra, f"{command} loaded packages outside the device allow-list: {sorted(extra)}"


def test_cli_help_lists_every_command_without_tensorflow():
    proc = _run("import sys; sys.argv=['edgecnn','--help']; from edgecnn.cli import main; main()")
    assert proc.returncode == 0, proc.stderr
    commands = sorted(p.stem[4:].replace("_", "-") for p in (REPO / "edgecnn" / "cli").glob("cmd_*.py"))
    assert {"data", "train", "models"} <= set(commands)
    for name in commands:
        assert f"  {name} " in proc.stdout or f"  {name}\n" in proc.stdout, name


def test_every_subcommand_help_without_tensorflow():
    commands = sorted(p.stem[4:].replace("_", "-") for p in (REPO / "edgecnn" / "cli").glob("cmd_*.py"))
    for name in commands:
        proc = _run(f"import sys; sys.argv=['edgecnn',{name!r},'--help']; from edgecnn.cli import main; main()")
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Usage:" in proc.stdout, name


def test_version():
    proc = _run("import sys; sys.argv=['edgecnn','--version']; from edgecnn.cli import main; main()")
    assert proc.returncode == 0
    from edgecnn import __version__

    assert __version__ in proc.stdout


def test_segment_loads_only_allowed_packages(tmp_path):
    """``segment`` (added with segmentation) on a toy int8 segmentation model, TensorFlow blocked; and in the
    device venv when there is one."""
    from test_segment import build_toy_models

    toy = build_toy_models(tmp_path / "toy")
    argv = ["segment", "--model", str(toy["int8"]), "--json", "--out-masks", str(tmp_path / "masks"),
            *sorted(str(p) for p in toy["images"].iterdir())]
    pythons = [(sys.executable, None), (venv_python("device"), venv_env())]
    for i, (python, env) in enumerate(pythons):
        got = _record(python, argv, tmp_path / f"segment{i}.json", env=env)
        assert got["attempted"] == [], f"segment tried to import {got['attempted']}"
        extra = third_party(got["loaded"]) - ALLOWED_THIRD_PARTY
        assert not extra, f"segment loaded packages outside the device allow-list: {sorted(extra)}"


def test_steer_route_loads_only_allowed_packages(tmp_path):
    """``steer --route FILE --pose udp://...`` (route-conditioned navigation, added with issue 15) on a tiny
    navigate model with poses streaming over UDP from this test, TensorFlow blocked; and in the device venv. The
    map rasteriser, the route file reader and the pose source add no package to the allow-list."""
    from nav_fixtures import sample_network, tiny_navigate_tflite

    from edgecnn.navmap import save_route

    model = tiny_navigate_tflite(tmp_path, routed=True, int8=True)
    net, _left, right = sample_network()
    route = save_route(tmp_path / "route.json", net, right)
    video = write_video(tmp_path / "drive.mp4", 12, size=(160, 120))
    pythons = [(sys.executable, None), (venv_python("device"), venv_env())]
    for i, (python, env) in enumerate(pythons):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        done = threading.Event()

        def send(port=port, done=done) -> None:
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            while not done.is_set():
                tx.sendto(json.dumps({"x": 6.0, "y": -0.42, "heading": 0.0, "time": time.time()}).encode(),
                          ("127.0.0.1", port))
                time.sleep(0.02)
            tx.close()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        argv = ["steer", "--model", str(model), "--source", str(video), "--route", str(route), "--pose",
                f"udp://127.0.0.1:{port}", "--max-frames", "8", "--trust-model"]
        try:
            got = _record(python, argv, tmp_path / f"steer-route{i}.json", env=env)
        finally:
            done.set()
            sender.join(timeout=2)
        assert got["attempted"] == [], f"steer --route tried to import {got['attempted']}"
        extra = third_party(got["loaded"]) - ALLOWED_THIRD_PARTY
        assert not extra, f"steer --route loaded packages outside the device allow-list: {sorted(extra)}"
