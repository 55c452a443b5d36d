"""Build the inputs of ``benchmarks/device_loop.py`` (host side: TensorFlow allowed; not a test).

Writes into ``OUT`` (default ``/tmp/edgecnn-loop``), each step skipped when its output exists:

* ``tub/``: the shared Donkey Car tub (1000 JPEG frames, 160x120), extracted;
* ``video_640x480.mp4``: a 640x480 mp4v video made from the tub frames (enlarged with linear interpolation, so
  it has real image content; 300 frames), and ``video_160x120.mp4``, the same frames at their own size (what a
  camera opened at 160x120 delivers);
* ``{pilotnet,donkey,lecture}_{fp32,int8}.tflite``: the project's own architectures (``edgecnn.models``), random
  initialisation with a fixed seed, converted by ``edgecnn.quantize.convert.convert`` with the contract embedded by
  ``edgecnn.runtime.metadata.embed_contract``; int8 is calibrated on 200 tub frames through
  ``edgecnn.preprocess.prepare`` (the one preprocessing). Speed does not depend on the weights' values, so a random
  init measures the same loop a trained model would; the models' outputs are meaningless. pilotnet (66x200) and
  donkey (120x160) are steering models; lecture is a 5-class classifier at 60x80 (an exact 2x area shrink of the
  160x120 frames);
* ``donkeypilot_{fp32,int8}.tflite``: the ``donkey`` architecture with a throttle output, shaped as donkeycar's
  ``KerasLinear`` pilot wants it (input ``img_in``, outputs ``n_outputs0`` steering and ``n_outputs1`` throttle), so
  donkeycar 5.3's own pilot part and ``edgecnn steer`` run the very same file (its throttle unit is a copy of the
  steering one, so whichever output tensor a program reads first holds the steering);
* ``cumsum_fp32.tflite``: a tiny float model with a CUMSUM op, which XNNPACK does not take (for the delegate
  report).

    .venv/bin/python benchmarks/build_loop_models.py [--out /tmp/edgecnn-loop]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

from edgecnn.contract import Contract
from edgecnn.data.tub import read_tub
from edgecnn.preprocess import load_image, prepare
from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.metadata import embed_contract

TUB_ARCHIVE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "donkeycar_tub" / "donkeycar_tub.tar.gz"

# name -> (arch, task, (height, width), labels)
MODELS = {
    "pilotnet": ("pilotnet", "steer", (66, 200), ()),
    "donkey": ("donkey", "steer", (120, 160), ()),
    "lecture": ("lecture", "classify", (60, 80), ("a", "b", "c", "d", "e")),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def extract_tub(out: Path, archive: Path = TUB_ARCHIVE) -> Path:
    """The tub folder (``out/tub``), extracted once; macOS ``._`` files are left out."""
    tub = out / "tub"
    if (tub / "manifest.json").is_file():
        return tub
    if not archive.is_file():
        raise SystemExit(f"tub archive not found: {archive}")
    log(f"extracting {archive} -> {out}")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if not Path(m.name).name.startswith("._")]
        tar.extractall(out, members=members, filter="data")
    return tub


def tub_frames(tub: Path) -> list[Path]:
    """Frame files in recording order."""
    samples, _ = read_tub(tub)
    return [Path(s.path) for s in samples]


def make_video(out: Path, frames: list[Path], size: tuple[int, int] = (640, 480), count: int = 300) -> Path:
    path = out / f"video_{size[0]}x{size[1]}.mp4"
    if path.is_file():
        return path
    log(f"writing {path}")
    tmp = path.with_suffix(".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), 20.0, size)
    for p in frames[:count]:
        writer.write(cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_LINEAR))
    writer.release()
    tmp.replace(path)
    return path


def build_models(out: Path, frames: list[Path], seed: int = 0) -> None:
    import keras  # lazy: keras

    from edgecnn.models.registry import create_model  # lazy: keras
    from edgecnn.quantize.convert import convert  # lazy: tensorflow

    calib_frames = [load_image(p) for p in frames[::5][:200]]  # spread over the drive
    for name, (arch, task, (h, w), labels) in MODELS.items():
        targets = {prec: out / f"{name}_{prec}.tflite" for prec in ("fp32", "int8")}
        if all(p.is_file() for p in targets.values()):
            continue
        keras.utils.set_random_seed(seed)
        contract = Contract(task=task, input_height=h, input_width=w, labels=labels,
                            head="softmax" if task == "classify" else "regression", arch=arch,
                            source_size=(160, 120), extra={"note": "random init, for benchmarks only"})
        model = create_model(arch, (h, w, 3), len(labels) if labels else 1)
        calib = np.stack([prepare(f, contract) for f in calib_frames]).astype(np.float32)
        for prec, path in targets.items():
            log(f"converting {name} to {prec}")
            data = convert(model, prec, calib if prec == "int8" else None)
            info = read_model_info(data)
            q = {"dtype": info.inputs[0].dtype, "scale": info.inputs[0].scale, "zero_point": info.inputs[0].zero_point}
            extra = {**contract.extra, "precision": info.precision, "input_quantization": q}
            path.write_bytes(embed_contract(data, contract.replace(extra=extra)))


def build_donkeypilot(out: Path, frames: list[Path], seed: int = 0) -> None:
    """The donkey architecture with donkeycar's KerasLinear input/output names (see the module docstring)."""
    targets = {prec: out / f"donkeypilot_{prec}.tflite" for prec in ("fp32", "int8")}
    if all(p.is_file() for p in targets.values()):
        return
    import keras  # lazy: keras

    from edgecnn.models.registry import create_model  # lazy: keras
    from edgecnn.quantize.convert import convert  # lazy: tensorflow

    keras.utils.set_random_seed(seed)
    base = create_model("donkey", (120, 160, 3), 2, throttle=True)
    # The converter orders the two output tensors as it likes ("StatefulPartitionedCall:1" first here) and
    # edgecnn's Predictor reads the first tensor: with the throttle unit a copy of the steering one, both outputs
    # hold the steering, so both programs return the same value whatever the order.
    head = base.get_layer("steering")
    kernel, bias = head.get_weights()
    kernel[:, 1], bias[1] = kernel[:, 0], bias[0]
    head.set_weights([kernel, bias])
    inp = keras.Input((120, 160, 3), name="img_in")
    y = base(inp)
    model = keras.Model(inp, [keras.layers.Identity(name="n_outputs0")(y[:, 0:1]),
                              keras.layers.Identity(name="n_outputs1")(y[:, 1:2])])
    contract = Contract(task="steer", input_height=120, input_width=160, head="regression", arch="donkey",
                        source_size=(160, 120), extra={"note": "random init, donkeycar KerasLinear layout"})
    calib = np.stack([prepare(load_image(p), contract) for p in frames[::5][:200]]).astype(np.float32)
    for prec, path in targets.items():
        log(f"converting donkeypilot to {prec}")
        data = convert(model, prec, calib if prec == "int8" else None)
        path.write_bytes(embed_contract(data, contract))


def build_cumsum(out: Path) -> None:
    """A float model with an op XNNPACK does not take (CUMSUM), for the delegate report."""
    path = out / "cumsum_fp32.tflite"
    if path.is_file():
        return
    import keras  # lazy: keras

    from edgecnn.quantize.convert import convert  # lazy: tensorflow

    inputs = keras.Input((32, 32, 3), batch_size=1, name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.ops.cumsum(keras.layers.Dense(5)(x), axis=-1)
    log(f"converting {path.name}")
    path.write_bytes(convert(keras.Model(inputs, x), "fp32"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/edgecnn-loop", type=Path)
    ap.add_argument("--no-models", action="store_true", help="Only the tub and the video (no TensorFlow).")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    tub = extract_tub(args.out)
    frames = tub_frames(tub)
    make_video(args.out, frames)
    make_video(args.out, frames, size=(160, 120))
    if not args.no_models:
        build_models(args.out, frames)
        build_donkeypilot(args.out, frames)
        build_cumsum(args.out)
    log(f"ready: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
