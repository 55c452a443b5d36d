"""edgecnn vs donkeycar on donkeycar's own ``linear`` pilot: same steering, and the per-frame cost side by side.

Three steps, each skipped when its output exists in ``--work``:

1. ``build`` (this venv, TensorFlow): donkeycar 5.3's ``default_n_linear`` architecture (``KerasLinear``: five
   convolutions 24-32-64-64-64, dense 100-50, outputs ``n_outputs0``/``n_outputs1``, input ``img_in``) rebuilt
   layer for layer in Keras 3, trained a few epochs on the tub (RGB / 255 -> user/angle, user/throttle), exported
   to ``linear.tflite`` (float) and to its full-int8 twin ``linear_int8.tflite`` (int8 input and outputs,
   calibrated on every 4th frame). The tub's frames, decoded once, go to ``frames_rgb.npy`` (uint8 N x 120 x 160
   x 3, RGB, catalog order), so both sides see the very same pixels.
2. measure, in lockstep, frame by frame, each side in the environment its users install: donkeycar's
   ``KerasLinear(interpreter=TfLite()).run(rgb)`` in donkeycar's venv (``.venv-donkey``: donkeycar 5.3.0 with
   tflite-runtime and numpy < 2, as donkeycar's docs install it; normalise + invoke + outputs on the RGB frame its
   camera part hands it), then edgecnn's ``PilotPredictor.predict(bgr)`` in the device venv (``.venv-device``:
   ai-edge-litert, no TensorFlow; table lookup into the input tensor + invoke + outputs on the BGR frame OpenCV
   hands it) on the same float model with the same threads, then on the int8 twin. Each side times only its own
   call; the three take turns per frame, so they share whatever load the machine has. Decoding the JPEG
   (cv2.imdecode) is timed beside them, inside none.
3. ``report``: JSON (``--out``) and a table: p50/p95 per frame, ratios, and max |steering difference|.

Run::

    .venv/bin/python benchmarks/donkey_pilot.py --tub TUB --work /tmp/edgecnn-donkey-pilot --out donkey_pilot.json

Without donkeycar's venv it builds the models and says that the comparison was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DONKEY_PYTHON = REPO / ".venv-donkey" / "bin" / "python"
DEVICE_PYTHON = REPO / ".venv-device" / "bin" / "python"


def build_keras_linear(input_shape=(120, 160, 3)):
    """donkeycar.parts.keras.default_n_linear(2, input_shape), in Keras 3 (same layers, names, activations)."""
    import keras
    from keras.layers import Conv2D, Dense, Dropout, Flatten, Input

    drop = 0.2
    img_in = Input(shape=input_shape, name="img_in")
    x = img_in
    for filters, kernel, strides, n in [(24, 5, 2, 1), (32, 5, 2, 2), (64, 5, 2, 3), (64, 3, 1, 4), (64, 3, 1, 5)]:
        x = Conv2D(filters, (kernel, kernel), strides=(strides, strides), activation="relu", name=f"conv2d_{n}")(x)
        x = Dropout(drop)(x)
    x = Flatten(name="flattened")(x)
    x = Dense(100, activation="relu", name="dense_1")(x)
    x = Dropout(drop)(x)
    x = Dense(50, activation="relu", name="dense_2")(x)
    x = Dropout(drop)(x)
    outputs = [Dense(1, activation="linear", name=f"n_outputs{i}")(x) for i in range(2)]
    return keras.Model(inputs=[img_in], outputs=outputs, name="linear")


def tub_frames(tub: Path):
    """(rgb uint8 N x H x W x 3, angles, throttles, file names) in catalog order, decoded with OpenCV."""
    import cv2

    from edgecnn.data.tub import read_tubs

    ds = read_tubs(tub)
    rgb = np.stack([cv2.cvtColor(cv2.imread(s.path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for s in ds.samples])
    angles = np.array([s.steering for s in ds.samples], np.float32)
    throttles = np.array([s.throttle for s in ds.samples], np.float32)
    return rgb, angles, throttles, [Path(s.path).name for s in ds.samples]


def build(tub: Path, work: Path, epochs: int, seed: int = 0) -> None:
    """Step 1 (TensorFlow): train and export ``linear.tflite`` and ``linear_int8.tflite``; save the frames."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from edgecnn.tfimport import import_tensorflow

    tf = import_tensorflow()
    work.mkdir(parents=True, exist_ok=True)
    rgb, angles, throttles, names = tub_frames(tub)
    np.save(work / "frames_rgb.npy", rgb)
    (work / "frames.json").write_text(json.dumps({"files": names, "angle": angles.tolist(),
                                                  "throttle": throttles.tolist()}))
    keras.utils.set_random_seed(seed)
    model = build_keras_linear(rgb.shape[1:])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
    model.fit(x, [angles, throttles], epochs=epochs, batch_size=64, verbose=2)
    float_bytes = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (work / "linear.tflite").write_bytes(float_bytes)

    def representative():
        for i in range(0, len(x), 4):
            yield [x[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (work / "linear_int8.tflite").write_bytes(conv.convert())
    print(f"built {work / 'linear.tflite'} ({model.count_params():,} params) and its int8 twin", file=sys.stderr)


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p95": round(float(np.percentile(a, 95)), 4),
            "mean": round(float(a.mean()), 4)}


def worker(side: str, work: Path, threads: int) -> None:
    """Step 2, one side in its own process: reads frame indexes on stdin, answers one JSON line per frame with the
    time of the call alone (perf_counter around it) and its outputs. ``donkey`` runs in donkeycar's venv."""
    rgb_all = np.load(work / "frames_rgb.npy")
    if side == "donkey":
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # donkeycar prints a banner on import
            from donkeycar.parts import interpreter as dk_interpreter
            from donkeycar.parts.interpreter import TfLite
            from donkeycar.parts.keras import KerasLinear
        pilot = KerasLinear(interpreter=TfLite(), input_shape=rgb_all.shape[1:])
        pilot.load(str(work / "linear.tflite"))
        # TfLite() leaves the thread count to the runtime; pin it to the same count as edgecnn's.
        runtime_interpreter = dk_interpreter.get_tflite_interpreter()
        pilot.interpreter.interpreter = runtime_interpreter(model_path=str(work / "linear.tflite"),
                                                            num_threads=threads)
        pilot.interpreter.runner = pilot.interpreter.interpreter.get_signature_runner()
        runtime = runtime_interpreter.__module__.split(".")[0]
        # The same runtime's bare invoke on the same model, timed apart: where donkeycar's time goes.
        raw = runtime_interpreter(model_path=str(work / "linear.tflite"), num_threads=threads)
        raw.allocate_tensors()
        raw_in = raw.get_input_details()[0]
        raw.set_tensor(raw_in["index"], np.zeros(raw_in["shape"], raw_in["dtype"]))

        def call(i: int) -> tuple[float, float, float | None]:
            a, t = pilot.run(frames[i])
            t0 = time.perf_counter()
            raw.invoke()
            return float(a), float(t), (time.perf_counter() - t0) * 1e3

        frames = [np.ascontiguousarray(f) for f in rgb_all]  # RGB, as donkeycar's camera part delivers it
    else:
        from edgecnn.runtime.interpreter import load_runtime
        from edgecnn.runtime.pilots import open_pilot

        pilot = open_pilot(work / ("linear_int8.tflite" if side == "edgecnn-int8" else "linear.tflite"),
                           threads=threads)
        rt = load_runtime()
        runtime = f"{rt.name} {rt.version}"

        def call(i: int) -> tuple[float, float, float | None]:
            y = pilot.predict(frames[i])
            return float(y[0]), float(y[1]), pilot.last_timings.invoke_ms

        frames = [np.ascontiguousarray(f[:, :, ::-1]) for f in rgb_all]  # BGR, as OpenCV delivers it
    print(json.dumps({"ready": side, "runtime": runtime, "numpy": np.__version__}), flush=True)
    for line in sys.stdin:
        i = int(line)
        t0 = time.perf_counter()
        steering, throttle, invoke_ms = call(i)
        ms = (time.perf_counter() - t0) * 1e3 - (invoke_ms if side == "donkey" else 0.0)
        print(json.dumps({"ms": ms, "steering": steering, "throttle": throttle, "invoke_ms": invoke_ms}), flush=True)


def measure(work: Path, tub: Path, threads: int, frames: int, donkey_python: Path, device_python: Path,
            warmup: int = 20) -> dict:
    """Step 2: the three sides in lockstep, frame by frame (donkeycar, edgecnn float, edgecnn int8), so that
    they share the machine's load; the JPEG decode is timed here, beside them."""
    import cv2

    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    sides = {"donkey": donkey_python, "edgecnn": device_python, "edgecnn-int8": device_python}
    procs = {}
    for side, python in sides.items():
        procs[side] = subprocess.Popen([str(python), __file__, "worker", "--side", side, "--work", str(work),
                                        "--threads", str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, env=env, cwd=REPO)
    info = {}
    for side, p in procs.items():
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"{side} worker failed to start (see its stderr above)")
        info[side] = json.loads(line)
    meta = json.loads((work / "frames.json").read_text())
    n = min(frames, len(meta["files"]))
    got: dict[str, list[dict]] = {side: [] for side in procs}
    decode = []
    for i in range(n):
        data = (tub / "images" / meta["files"][i]).read_bytes()
        t0 = time.perf_counter()
        cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        decode.append((time.perf_counter() - t0) * 1e3)
        for side, p in procs.items():
            p.stdin.write(f"{i}\n")
            p.stdin.flush()
            got[side].append(json.loads(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait(timeout=30)

    def ms(side: str, key: str = "ms") -> dict[str, float]:
        return _percentiles([r[key] for r in got[side][warmup:]])

    steer = {side: np.array([r["steering"] for r in rows]) for side, rows in got.items()}
    thr = {side: np.array([r["throttle"] for r in rows]) for side, rows in got.items()}
    return {
        "frames": n, "warmup": warmup, "threads": threads,
        "runtimes": {side: f"{i['runtime']} (numpy {i['numpy']})" for side, i in info.items()},
        "donkeycar_ms": ms("donkey"), "edgecnn_float_ms": ms("edgecnn"), "edgecnn_int8_ms": ms("edgecnn-int8"),
        "edgecnn_float_invoke_ms": ms("edgecnn", "invoke_ms"), "edgecnn_int8_invoke_ms": ms("edgecnn-int8", "invoke_ms"),
        "donkeycar_runtime_invoke_ms": ms("donkey", "invoke_ms"),
        "decode_ms": _percentiles(decode[warmup:]),
        "max_abs_diff_steering_float": float(np.abs(steer["donkey"] - steer["edgecnn"]).max()),
        "max_abs_diff_throttle_float": float(np.abs(thr["donkey"] - thr["edgecnn"]).max()),
        "mae_int8_vs_float_steering": float(np.abs(steer["edgecnn-int8"] - steer["edgecnn"]).mean()),
        "donkeycar_steering": steer["donkey"].round(7).tolist(),
        "files": meta["files"][:n],
    }


def report(result: dict) -> str:
    d, e, q = result["donkeycar_ms"], result["edgecnn_float_ms"], result["edgecnn_int8_ms"]
    rows = [("donkeycar KerasLinear.run (float)", d, 1.0), ("edgecnn PilotPredictor.predict (float)", e,
                                                             e["p50"] / d["p50"]),
            ("edgecnn PilotPredictor.predict (int8 twin)", q, q["p50"] / d["p50"])]
    lines = [f"{result['frames']} tub frames in lockstep, {result['threads']} thread(s), warm-up {result['warmup']} "
             "excluded; ms per frame, the frame already decoded (preprocess + inference + outputs)",
             "runtimes: " + "; ".join(f"{k}: {v}" for k, v in result["runtimes"].items()),
             f"{'':44s} {'p50':>8s} {'p95':>8s} {'x donkeycar p50':>16s}"]
    for name, t, ratio in rows:
        lines.append(f"{name:44s} {t['p50']:8.3f} {t['p95']:8.3f} {ratio:16.2f}")
    lines.append(f"{'bare invoke: donkeycar runtime (float)':44s} {result['donkeycar_runtime_invoke_ms']['p50']:8.3f} "
                 f"{result['donkeycar_runtime_invoke_ms']['p95']:8.3f}")
    lines.append(f"{'bare invoke inside edgecnn: float, int8 (p50)':44s} {result['edgecnn_float_invoke_ms']['p50']:8.3f} "
                 f"{result['edgecnn_int8_invoke_ms']['p50']:8.3f}")
    if result.get("decode_ms"):
        lines.append(f"{'JPEG decode (cv2.imdecode), beside it':44s} {result['decode_ms']['p50']:8.3f} "
                     f"{result['decode_ms']['p95']:8.3f}")
    lines.append(f"max |steering edgecnn - donkeycar| (float) = {result['max_abs_diff_steering_float']:.2e}; "
                 f"throttle {result['max_abs_diff_throttle_float']:.2e}; int8 vs float steering MAE "
                 f"{result['mae_int8_vs_float_steering']:.4f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("step", nargs="?", default="all", choices=["all", "build", "worker"])
    ap.add_argument("--tub", type=Path, required=True,
                    help="an extracted Donkey Car tub (e.g. ../shared/data/donkeycar_tub/donkeycar_tub.tar.gz)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-donkey-pilot"),
                    help="where the pilot models and results go")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--side", default="edgecnn", choices=["donkey", "edgecnn", "edgecnn-int8"])
    ap.add_argument("--donkey-python", type=Path, default=DONKEY_PYTHON)
    ap.add_argument("--device-python", type=Path, default=DEVICE_PYTHON,
                    help="edgecnn's side: the TF-free device venv (what a Pi installs)")
    args = ap.parse_args()
    if args.step == "worker":
        worker(args.side, args.work, args.threads)
        return
    if not (args.work / "linear_int8.tflite").is_file():
        build(args.tub, args.work, args.epochs)
    if args.step == "build":
        return
    if not args.donkey_python.is_file():
        print(f"skipped: no donkeycar venv at {args.donkey_python} (python3 -m venv .venv-donkey && "
              ".venv-donkey/bin/pip install donkeycar==5.3.0 tflite-runtime 'numpy<2' opencv-python-headless "
              "typing_extensions)")
        return
    result = measure(args.work, args.tub, args.threads, args.frames, args.donkey_python,
                     args.device_python if args.device_python.is_file() else Path(sys.executable))
    table = report(result)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "table": table}, indent=1))


if __name__ == "__main__":
    main()
