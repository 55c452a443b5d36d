"""Where int8 time goes, layer by layer: fp32 vs int8 under LiteRT's XNNPACK, and the levers (issue 17).

Host side and not a test: it needs TensorFlow to build the models, so run it with the dev venv (which also has
ai-edge-litert, the same wheel the device venv uses; the timing itself calls only ai-edge-litert):

    .venv/bin/python benchmarks/int8_layers.py [--rounds 5] [--runs 40] [--only micro,donkey,pilotnet,lecture]
                                               [--tub DIR] [--json out.json]

What it builds (Keras -> .tflite with ``edgecnn.quantize.convert``, the project's own converter settings):

* ``micro``: single-layer models: a 3x3 conv 64->64 at 60x80, a 5x5 stride-2 conv 3->24 at 120x160 and
  3->16 (donkey's first layer), a dense 1280->64; calibrated on uniform [0, 1] inputs (speed does not depend on
  the values);
* ``donkey`` (120x160), ``pilotnet`` (66x200) and ``lecture`` (60x80, 5 classes): every Conv2D / Dense /
  MaxPooling2D layer alone at its real input shape, with the weights of the full model (random init, seed 0, as
  ``benchmarks/build_loop_models.py``), calibrated on the real activations that reach it from 200 tub frames
  (uniform [0, 1] frames when no tub is given or found), and the full model itself (``FULL``). Reshape, Dropout and
  the fused activations are not rows of their own (XNNPACK fuses or elides them).

Build variants: ``fp32``; ``int8`` (edgecnn's: per-channel weights, int8 I/O, ``convert(..., "int8")``); ``pt``
(per-tensor weights: the converter's ``_experimental_disable_per_channel``); ``fio`` (int8 graph with float32 I/O, so
QUANTIZE/DEQUANTIZE at the ends); ``u8io`` (uint8 I/O); ``oldq`` (``experimental_new_quantizer = False``).
Runtime variants, all with ``num_threads=1``: ``x`` = ``ai_edge_litert.interpreter.Interpreter`` as
``edgecnn.runtime.interpreter.make_interpreter`` builds it (XNNPACK applied by default); ``ref`` = the builtin
TFLite kernels without the default delegate (``--delegate none``: ruy/gemmlowp-style optimized kernels); ``lat`` =
``experimental_default_delegate_latest_features=True``; ``cm`` = ``ai_edge_litert.compiled_model.CompiledModel``
on the CPU accelerator.

Timing: one fixed input per model; all variants of one row are timed in the same run, alternating round by round
(the variant order rotates each round), ``--runs`` timed ``invoke()`` calls per round after one warm-up call; the
p50 is over every timed call of that variant. Ratios are fp32 (``x``) time / variant time: > 1 means faster than
fp32. For the full models it also reports parity on 100 held-out tub frames (disjoint from the calibration frames):
the largest |int8 variant - fp32| of the dequantized output, beside edgecnn's int8.

The readable table goes to stderr, the JSON to stdout (or ``--json``). The load average is printed before and
after, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from report_io import emit

from edgecnn.runtime.inspect import read_model_info
from edgecnn.runtime.interpreter import make_interpreter
from edgecnn.runtime.native_stderr import quiet_native_output

DEFAULT_TUB = Path("/tmp/edgecnn-loop/tub")
BUILDS = ("fp32", "int8", "pt", "fio", "u8io", "oldq")
# (build, runtime) pairs timed for every row; fp32/x is the reference of every ratio.
VARIANTS = (("fp32", "x"), ("int8", "x"), ("pt", "x"), ("fio", "x"), ("u8io", "x"), ("oldq", "x"),
            ("fp32", "ref"), ("int8", "ref"), ("fp32", "lat"), ("int8", "lat"), ("fp32", "cm"), ("int8", "cm"))
# name -> ((height, width), outputs): the models of benchmarks/build_loop_models.py
ARCHS = {"donkey": ((120, 160), 1), "pilotnet": ((66, 200), 1), "lecture": ((60, 80), 5)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- building (TensorFlow)

def convert_variant(model, build: str, calib: np.ndarray) -> bytes:
    """``model`` (keras.Model) -> .tflite bytes for one build variant (see the module docstring).

    ``calib``: float32 N x ... model inputs for the representative dataset."""
    import tensorflow as tf  # lazy: tensorflow

    from edgecnn.quantize.convert import batch1, convert, make_converter, run_converter

    if build == "fp32":
        return convert(model, "fp32")
    if build == "int8":
        return convert(model, "int8", calib)  # exactly edgecnn's path, precision verified
    if build == "u8io":
        return convert(model, "int8", calib, io="uint8")
    conv = make_converter(batch1(model), "int8", calib)
    if build == "pt":
        conv._experimental_disable_per_channel = True
    elif build == "fio":
        conv.inference_input_type = tf.float32
        conv.inference_output_type = tf.float32
    elif build == "oldq":
        conv.experimental_new_quantizer = False
    else:
        raise ValueError(f"unknown build {build!r}")
    return run_converter(conv)


def single_layer(layer, input_shape: tuple[int, ...]):
    """A one-layer keras.Model: a fresh copy of ``layer`` (same config and weights) on ``input_shape``."""
    import keras  # lazy: keras

    inp = keras.Input(shape=input_shape, name="x")
    clone = layer.__class__.from_config(layer.get_config())
    out = clone(inp)
    clone.set_weights(layer.get_weights())
    return keras.Model(inp, out)


def micro_models(n_calib: int = 32, seed: int = 0) -> list[tuple[str, object, np.ndarray]]:
    """(name, keras.Model, float32 calibration inputs) of the micro-benchmarks."""
    import keras  # lazy: keras
    from keras import layers  # lazy: keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    specs = [
        ("conv3x3 64->64", (60, 80, 64), layers.Conv2D(64, 3, padding="same", activation="relu")),
        ("conv5x5/2 3->24", (120, 160, 3), layers.Conv2D(24, 5, strides=2, padding="same", activation="relu")),
        ("conv5x5/2 3->16", (120, 160, 3), layers.Conv2D(16, 5, strides=2, padding="same", activation="relu")),
        # the same layer with 4 and 8 input channels: if int8 costs the same for 3, 4 and 8, its kernels pad the
        # channels of each kernel tap up to 8 (XNNPACK's "c8" int8 GEMMs) while fp32 does not
        ("conv5x5/2 4->16", (120, 160, 4), layers.Conv2D(16, 5, strides=2, padding="same", activation="relu")),
        ("conv5x5/2 8->16", (120, 160, 8), layers.Conv2D(16, 5, strides=2, padding="same", activation="relu")),
        ("dense 1280->64", (1280,), layers.Dense(64, activation="relu")),
    ]
    out = []
    for name, shape, layer in specs:
        inp = keras.Input(shape=shape, name="x")
        out.append((name, keras.Model(inp, layer(inp)), rng.uniform(0, 1, (n_calib, *shape)).astype(np.float32)))
    return out


def calibration_frames(arch: str, hw: tuple[int, int], tub: Path | None, outputs: int = 1, seed: int = 0):
    """(calibration inputs, held-out inputs, contract), float32 N x h x w x 3 through ``edgecnn.preprocess.prepare``:
    200 tub frames spread over the drive (``frames[::5]``, as build_loop_models) and 100 others (``frames[1::5]``);
    uniform [0, 1] arrays when there is no tub."""
    from edgecnn.contract import Contract
    from edgecnn.data.tub import read_tub
    from edgecnn.preprocess import load_image, prepare

    h, w = hw
    if outputs > 1:  # lecture: a classifier, as build_loop_models builds it
        contract = Contract(task="classify", input_height=h, input_width=w, labels=tuple("abcde"[:outputs]),
                            head="softmax", arch=arch, source_size=(160, 120))
    else:
        contract = Contract(task="steer", input_height=h, input_width=w, head="regression", arch=arch,
                            source_size=(160, 120))
    if tub is None or not (tub / "manifest.json").is_file():
        rng = np.random.default_rng(seed)
        calib, held = (rng.uniform(0, 1, (n, h, w, 3)).astype(np.float32) for n in (200, 100))
        return calib, held, None
    samples, _ = read_tub(tub)
    paths = [Path(s.path) for s in samples]
    calib = np.stack([prepare(load_image(p), contract) for p in paths[::5][:200]]).astype(np.float32)
    held = np.stack([prepare(load_image(p), contract) for p in paths[1::5][:100]]).astype(np.float32)
    return calib, held, contract


def arch_models(arch: str, hw: tuple[int, int], outputs: int, tub: Path | None, seed: int = 0):
    """(name, keras.Model, calibration inputs) for each Conv2D/Dense/MaxPooling2D layer of ``arch`` alone and for
    the full model, plus the held-out inputs of the full model."""
    import keras  # lazy: keras

    from edgecnn.models.registry import create_model

    keras.utils.set_random_seed(seed)
    model = create_model(arch, (*hw, 3), outputs)
    calib, held, _ = calibration_frames(arch, hw, tub, outputs, seed)
    rows = []
    for layer in model.layers:
        if layer.__class__.__name__ not in ("Conv2D", "Dense", "MaxPooling2D"):
            continue
        feed = keras.Model(model.inputs, layer.input)
        acts = np.asarray(feed.predict(calib, batch_size=50, verbose=0), np.float32)
        sub = single_layer(layer, tuple(acts.shape[1:]))
        rows.append((f"{arch}.{layer.name}", sub, acts))
    rows.append((f"{arch}.FULL", model, calib))
    return rows, held


# ---------------------------------------------------------------- timing (ai-edge-litert only)

class Runner:
    """One model under one runtime variant: ``set(x)`` writes the (already typed) input, ``run()`` invokes,
    ``out()`` returns the first output as float32 (dequantized when integer)."""

    def __init__(self, data: bytes, runtime: str):
        self.runtime = runtime
        info = read_model_info(data)
        self.in_shape = tuple(info.inputs[0].shape)
        self.in_dtype = np.dtype(info.inputs[0].dtype)
        self.in_q = (info.inputs[0].scale, info.inputs[0].zero_point)
        self.out_q = (info.outputs[0].scale, info.outputs[0].zero_point)
        if runtime == "cm":
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator
            from ai_edge_litert.options import CpuOptions, Options

            with quiet_native_output():  # the accelerator registry logs pages of INFO lines
                self.cm = CompiledModel.from_buffer(data, options=Options(HardwareAccelerator.CPU,
                                                                          cpu_options=CpuOptions(num_threads=1)))
            self.ins = self.cm.create_input_buffers(0)
            self.outs = self.cm.create_output_buffers(0)
            self.out_dtype = np.dtype(info.outputs[0].dtype)
            self.out_size = int(np.prod(info.outputs[0].shape))
            self.run = lambda: self.cm.run_by_index(0, self.ins, self.outs)
            return
        if runtime == "lat":
            from ai_edge_litert.interpreter import Interpreter

            self.it = Interpreter(model_content=data, num_threads=1, experimental_default_delegate_latest_features=True)
            self.it.allocate_tensors()
        else:
            self.it = make_interpreter(data, threads=1, delegate="none" if runtime == "ref" else "xnnpack")
        self.inp = self.it.get_input_details()[0]["index"]
        self.outp = self.it.get_output_details()[0]["index"]
        self.run = self.it.invoke

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float32 model input (1 x ...) -> this model's input dtype, with its own scale and zero point."""
        if self.in_dtype == np.float32:
            return x.astype(np.float32)
        scale, zp = self.in_q
        info = np.iinfo(self.in_dtype)
        return np.clip(np.round(x / scale) + zp, info.min, info.max).astype(self.in_dtype)

    def set(self, x: np.ndarray) -> None:
        q = self.quantize(x.reshape(self.in_shape))
        if self.runtime == "cm":
            self.ins[0].write(q)
        else:
            self.it.set_tensor(self.inp, q)

    def out(self) -> np.ndarray:
        if self.runtime == "cm":
            y = np.asarray(self.outs[0].read(self.out_size, self.out_dtype))
        else:
            y = self.it.get_tensor(self.outp)
        y = y.astype(np.float32).ravel()
        scale, zp = self.out_q
        return (y - zp) * scale if scale else y


def time_variants(runners: dict[str, Runner], rounds: int, runs: int) -> dict[str, float]:
    """p50 ms of ``run()`` per variant, the variants alternating round by round (order rotated each round)."""
    names = list(runners)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            run = runners[n].run
            run()  # warm-up: the first call after another model ran pays for cold caches
            for _ in range(runs):
                t0 = time.perf_counter()
                run()
                samples[n].append((time.perf_counter() - t0) * 1e3)
    return {n: float(np.median(v)) for n, v in samples.items()}


def op_summary(data: bytes) -> str:
    """The ops of a model, e.g. ``QUANTIZE CONV_2D DEQUANTIZE``."""
    return " ".join(op for op, _ in read_model_info(data).ops)


def parity(runners: dict[str, Runner], held: np.ndarray) -> dict[str, float]:
    """Largest |variant - fp32/x| of the dequantized first output over ``held`` (float32 N x ...)."""
    ref = runners["fp32/x"]
    worst = {n: 0.0 for n in runners}
    for x in held:
        ref.set(x[None])
        ref.run()
        y0 = ref.out()
        for n, r in runners.items():
            r.set(x[None])
            r.run()
            worst[n] = max(worst[n], float(np.max(np.abs(r.out() - y0))))
    return worst


def measure_row(name: str, model, calib: np.ndarray, rounds: int, runs: int, held: np.ndarray | None) -> dict:
    files = {}
    for b in BUILDS:
        try:
            files[b] = convert_variant(model, b, calib)
        except Exception as exc:  # a lever the converter refuses is a result, not a crash
            log(f"  {name}: build {b} failed: {str(exc).splitlines()[0][:200]}")
    runners = {}
    for b, rt in VARIANTS:
        if b in files:
            runners[f"{b}/{rt}"] = Runner(files[b], rt)
    rng = np.random.default_rng(1)
    x = calib[rng.integers(len(calib))][None]
    for r in runners.values():
        r.set(x)
    p50 = time_variants(runners, rounds, runs)
    base = p50["fp32/x"]
    info = read_model_info(files["fp32"])
    row = {"name": name, "input": list(info.inputs[0].shape[1:]), "output": list(info.outputs[0].shape[1:]),
           "macs": info.macs, "p50_ms": p50, "ratio_vs_fp32": {n: base / t for n, t in p50.items()},
           "ops": {b: op_summary(d) for b, d in files.items()}}
    if held is not None:
        row["parity_max_abs"] = parity(runners, held)
    return row


# ---------------------------------------------------------------- report

def format_report(rep: dict) -> str:
    lines = [f"int8 vs fp32 per layer, 1 thread, {rep['rounds']} rounds x {rep['runs']} invokes (p50 ms); "
             f"load average {rep['load_before']} -> {rep['load_after']}; {rep['cpu']}",
             f"{'layer':26s} {'input':>14s} {'MMACs':>7s} {'fp32 ms':>8s} {'int8 ms':>8s} {'ratio':>6s}"]
    for r in rep["rows"]:
        p = r["p50_ms"]
        shape = "x".join(map(str, r["input"]))
        lines.append(f"{r['name']:26s} {shape:>14s} {r['macs'] / 1e6:7.2f} {p['fp32/x']:8.3f} {p['int8/x']:8.3f} "
                     f"{p['fp32/x'] / p['int8/x']:6.2f}")
    names = [f"{b}/{rt}" for b, rt in VARIANTS]
    lines += ["", "levers: fp32/x time / variant time (> 1 = faster than fp32 under XNNPACK); "
              "x = XNNPACK Interpreter, ref = builtin kernels, lat = latest XNNPACK features, cm = CompiledModel",
              f"{'layer':26s} " + " ".join(f"{n:>10s}" for n in names)]
    for r in rep["rows"]:
        lines.append(f"{r['name']:26s} " + " ".join(f"{r['ratio_vs_fp32'].get(n, float('nan')):10.2f}" for n in names))
    full = [r for r in rep["rows"] if "parity_max_abs" in r]
    if full:
        lines += ["", "parity on held-out tub frames: max |variant - fp32| of the dequantized output"]
        for r in full:
            worst = r["parity_max_abs"]
            lines.append(f"{r['name']:26s} " + " ".join(f"{worst.get(n, float('nan')):10.4f}" for n in names))
    lines += ["", "ops per build (first row of each group shows whether a build adds QUANTIZE/DEQUANTIZE):"]
    for r in rep["rows"]:
        if r["name"].endswith("FULL") or r["name"].startswith("conv3x3"):
            for b, ops in r["ops"].items():
                lines.append(f"  {r['name']:24s} {b:5s} {ops}")
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    name = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    return f"{name} ({os.cpu_count()} cpus; {' '.join(isa)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--only", default="micro,donkey,pilotnet,lecture",
                    help="comma list of micro, donkey, pilotnet, lecture")
    ap.add_argument("--tub", type=Path, default=DEFAULT_TUB, help="a tub folder (build_loop_models.py extracts one)")
    ap.add_argument("--json", type=Path, help="write the JSON here instead of stdout")
    args = ap.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    if bad := [g for g in groups if g not in ("micro", *ARCHS)]:
        raise SystemExit(f"--only takes micro, {', '.join(ARCHS)}; got: {', '.join(bad)}")
    tub = args.tub if (args.tub / "manifest.json").is_file() else None
    if tub is None:
        log(f"no tub at {args.tub}: calibrating on uniform [0, 1] frames")
    rep = {"cpu": cpu_name(), "rounds": args.rounds, "runs": args.runs, "tub": str(tub) if tub else None,
           "load_before": loadavg(), "rows": []}
    todo = []
    if "micro" in groups:
        todo += [(n, m, c, None) for n, m, c in micro_models()]
    for arch, (hw, outputs) in ARCHS.items():
        if arch in groups:
            rows, held = arch_models(arch, hw, outputs, tub)
            todo += [(n, m, c, held if n.endswith("FULL") else None) for n, m, c in rows]
    for name, model, calib, held in todo:
        log(f"{name}: building {len(BUILDS)} variants and timing {len(VARIANTS)}")
        rep["rows"].append(measure_row(name, model, calib, args.rounds, args.runs, held))
    rep["load_after"] = loadavg()
    emit(rep, format_report(rep), args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
