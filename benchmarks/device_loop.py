"""The device loop's cost per stage: ``classify`` and ``steer`` on real frames, against their decode and invoke.

Runs in the device venv (no TensorFlow) on what ``benchmarks/build_loop_models.py`` prepared (default
``/tmp/edgecnn-loop``): the shared Donkey Car tub (160x120 JPEG frames, decoded on the source's thread), a 640x480
video, the shipped models (``firmware_models/*``), fp32/int8 builds of ``pilotnet``, ``donkey`` and ``lecture``.

For every case it runs the real loop (:func:`edgecnn.runtime.steer.steer_stream` or
:func:`edgecnn.runtime.classify.classify_stream`, every frame, warm-up excluded), fp32 and int8 twins in
alternating rounds (the machine is shared: alternation spreads its load over both; each stage keeps its best
round), and reports:

* per-stage p50/p90 (ms): ``decode`` (the source's read + decode), ``wait`` (the loop waiting for a frame),
  ``preprocess``, ``invoke``, ``postprocess``, ``sink``;
* ``outside``: the share of the frame outside decode + invoke, from the per-stage p50s as issue 17 defines it,
  ``(preprocess + postprocess + sink + wait) / (decode + those + invoke)``, and ``outside_nowait``, the same
  without ``wait`` (a loop whose decoder is the bottleneck waits for it, and that wait is decode time seen from
  the other thread);
* int8 vs fp32 per frame with the decode excluded (``preprocess + invoke + postprocess + sink`` p50s), beside the
  raw-invoke ratio and the decode;
* that the fast input path writes the reference path's bytes on every test frame;
* the delegate report (:mod:`edgecnn.runtime.delegation`) of every model;
* a side-by-side against donkeycar 5.3's own pilot part (``KerasLinear.run`` with its ``TfLite`` interpreter, in
  ``.venv-donkey``; skipped with a message when that venv is absent) on the same model file and frames, the frame
  already decoded as donkeycar's part receives it: preprocess + inference + output, per frame.

    .venv-device/bin/python benchmarks/device_loop.py [--data /tmp/edgecnn-loop] [--frames 300] [--json out.json]

The readable table goes to stderr, the JSON to stdout (or ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from report_io import emit

from edgecnn.data.tub import read_tub
from edgecnn.outputs import decode_steering
from edgecnn.preprocess import load_image
from edgecnn.runtime.classify import classify_stream
from edgecnn.runtime.delegation import delegate_report
from edgecnn.runtime.environment import describe_environment
from edgecnn.runtime.failsafe import FailsafeConfig
from edgecnn.runtime.interpreter import make_interpreter
from edgecnn.runtime.metadata import embed_contract, read_contract
from edgecnn.runtime.predictor import Predictor
from edgecnn.runtime.sources import open_images, open_source
from edgecnn.runtime.stats import percentiles
from edgecnn.runtime.steer import steer_stream

REPO = Path(__file__).resolve().parent.parent
CORAL = REPO.parent / "shared" / "data" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
DONKEY_PYTHON = REPO / ".venv-donkey" / "bin" / "python"
STAGES = ("decode", "wait", "preprocess", "invoke", "postprocess", "sink")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tub_frames(data: Path) -> list[Path]:
    samples, _ = read_tub(data / "tub")
    return [Path(s.path) for s in samples]


def stage_p(stats, name: str) -> tuple[float, float]:
    """(p50, p90) of a loop stage, ``decode`` being the source's ``capture`` stage."""
    s = stats.stage("capture" if name == "decode" else name)
    return (s.p50_ms, s.p90_ms) if s is not None and s.count else (0.0, 0.0)


def run_loop(kind: str, model: str | bytes, source: str | list[Path], frames: int, threads: int) -> dict:
    """One run of the real loop over ``frames`` frames; per-stage p50/p90."""
    pred = Predictor(model, threads=threads)
    if isinstance(source, list):
        src = open_images([str(p) for p in source[:frames]])
    else:
        src = open_source(source, every_frame=True)
    if kind == "steer":
        # a deadline no frame reaches: every frame of the file counts, none is dropped as late
        result = steer_stream(src, pred, FailsafeConfig(deadline_s=60.0, max_rate=None), max_frames=frames,
                              warmup=10, detect_frozen=False)
        stats = result.stats
    else:
        stats = classify_stream(src, pred, top_k=1, max_frames=frames, warmup=10)
    return {name: stage_p(stats, name) for name in STAGES} | {"frames": stats.frames, "frame_p50": stats.frame_ms.p50_ms}


def merge_rounds(rounds: list[dict]) -> dict:
    """Best (lowest) over rounds of each stage's p50 and p90: on a shared machine a round that other processes
    pre-empted says more about them than about the loop (as ``timeit`` keeps the best of its repeats)."""
    out = {}
    for name in STAGES:
        out[name] = {"p50": float(min(r[name][0] for r in rounds)), "p90": float(min(r[name][1] for r in rounds))}
    p = {k: v["p50"] for k, v in out.items()}
    busy = p["preprocess"] + p["postprocess"] + p["sink"]
    total = p["decode"] + busy + p["wait"] + p["invoke"]
    out["outside"] = (busy + p["wait"]) / total if total else 0.0
    out["outside_nowait"] = busy / (total - p["wait"]) if total - p["wait"] > 0 else 0.0
    out["no_decode_ms"] = busy + p["invoke"]  # per frame, decode (and the wait for it) excluded
    out["frames"] = int(sum(r["frames"] for r in rounds))
    out["frame_p50"] = float(min(r["frame_p50"] for r in rounds))
    return out


def raw_invoke(model: str | bytes, threads: int, runs: int = 100, rounds: int = 5) -> float:
    """interpreter.invoke() alone on a fixed input: the best of ``rounds`` p50s over ``runs`` calls, ms."""
    it = make_interpreter(model, threads=threads)
    for _ in range(20):
        it.invoke()
    best = float("inf")
    for _ in range(rounds):
        t = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            it.invoke()
            t[i] = time.perf_counter() - t0
        best = min(best, percentiles(t * 1e3, (50,))[0])
    return best


def byte_identity(model: str | bytes, frames: list[np.ndarray]) -> dict:
    pred = Predictor(model, threads=1)
    same = sum(pred.encode(f).tobytes() == pred.reference_input(f).tobytes() for f in frames)
    return {"frames": len(frames), "identical": int(same), "dtype": pred.input.dtype}


def with_resize(model: Path, method: str, out: Path) -> Path:
    """A copy of ``model`` whose embedded contract records another resize method (same network)."""
    data = model.read_bytes()
    contract = read_contract(data)
    out.write_bytes(embed_contract(data, contract.replace(resize=method)))
    return out


def donkey_side_by_side(data: Path, frames: list[Path], threads: int, rounds: int = 3) -> dict:
    """donkeycar's KerasLinear.run vs edgecnn's Predictor.predict + decode_steering on the same file and frames."""
    fp32, int8 = data / "donkeypilot_fp32.tflite", data / "donkeypilot_int8.tflite"
    if not DONKEY_PYTHON.is_file():
        return {"skipped": f"{DONKEY_PYTHON} is absent: python3 -m venv .venv-donkey && .venv-donkey/bin/pip install "
                           "donkeycar==5.3.0 tflite-runtime 'numpy<2' opencv-python-headless typing_extensions"}
    if not fp32.is_file():
        return {"skipped": f"{fp32} is absent: run benchmarks/build_loop_models.py"}
    images = [load_image(p) for p in frames]  # decoded beforehand, as donkeycar's part receives its frame
    preds = {name: Predictor(str(path), threads=threads) for name, path in (("fp32", fp32), ("int8", int8))}
    out: dict = {"frames": len(frames), "threads": threads, "rounds": rounds}
    best: dict[str, tuple[float, float]] = {}
    angles: dict[str, list[float]] = {}
    for _ in range(rounds):  # donkeycar, edgecnn fp32, edgecnn int8, again: each keeps its best round
        proc = subprocess.run([str(DONKEY_PYTHON), str(REPO / "benchmarks" / "donkey_pilot_part.py"), str(fp32),
                               *map(str, frames), "--threads", str(threads)],
                              capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            return {"skipped": f"donkeycar's pilot failed: {proc.stderr.strip().splitlines()[-1:]}"}
        dk = json.loads(proc.stdout.strip().splitlines()[-1])
        out["donkeycar"] = dk["donkeycar"]
        angles["donkeycar"] = dk["angles"]
        best["donkeycar"] = min(best.get("donkeycar", (1e9, 1e9)), (dk["p50_ms"], dk["p90_ms"]))
        for name, pred in preds.items():
            for img in images[:10]:
                pred.predict(img)
            times, got = [], []
            for img in images:
                t0 = time.perf_counter()
                steering = float(decode_steering(pred.predict(img)[None], pred.contract).steering[0])
                times.append((time.perf_counter() - t0) * 1e3)
                got.append(steering)
            angles[name] = got
            best[name] = min(best.get(name, (1e9, 1e9)), tuple(percentiles(times, (50, 90))))
    out["donkeycar_fp32_p50_ms"], out["donkeycar_fp32_p90_ms"] = best["donkeycar"]
    for name in preds:
        out[f"edgecnn_{name}_p50_ms"], out[f"edgecnn_{name}_p90_ms"] = best[name]
        out[f"edgecnn_{name}_vs_donkeycar"] = best[name][0] / best["donkeycar"][0]
        out[f"max_abs_diff_{name}"] = float(np.max(np.abs(np.asarray(angles[name]) - angles["donkeycar"])))
    out["decode_p50_ms"] = percentiles([_decode_ms(p) for p in frames[:100]], (50,))[0]
    return out


def _decode_ms(path: Path) -> float:
    t0 = time.perf_counter()
    load_image(path)
    return (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/tmp/edgecnn-loop", type=Path)
    ap.add_argument("--frames", default=300, type=int, help="Frames per loop run.")
    ap.add_argument("--rounds", default=5, type=int, help="Alternating rounds per case (each stage keeps its best).")
    ap.add_argument("--threads", default=1, type=int)
    ap.add_argument("--json", default=None, type=Path, help="Write the JSON here instead of stdout.")
    ap.add_argument("--skip-donkeycar", action="store_true")
    ap.add_argument("--format", default=None, type=Path, help="Only print the table of an earlier --json file.")
    ap.add_argument("--only", default=None, metavar="TEXT",
                    help="Run only the cases whose label or source contains TEXT (e.g. 'shapes', '640x480'); the "
                         "int8/fp32 ratios are then left out when their cases did not run.")
    args = ap.parse_args(argv)
    if args.format:
        log(format_report(json.loads(args.format.read_text())))
        return 0
    data = args.data
    if not (data / "tub").is_dir():
        raise SystemExit(f"{data}/tub is missing: run .venv/bin/python benchmarks/build_loop_models.py --out {data}")
    tub = tub_frames(data)
    video = str(data / "video_640x480.mp4")
    video_small = str(data / "video_160x120.mp4")
    shapes = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"
    pilot_shipped = REPO / "firmware_models" / "roads_pilotnet" / "model_int8.tflite"
    tmp = Path(tempfile.mkdtemp(prefix="edgecnn-loop-"))
    shipped_resize = read_contract(shapes.read_bytes()).resize
    # the shipped network with each other resize method in its contract, on the same 640x480 video
    resized = [(f"shapes_compact, resize {m}", "classify", "video 640x480", video,
                {"int8": with_resize(shapes, m, tmp / f"shapes_{m.replace('-', '_')}.tflite")})
               for m in ("area", "area-pyramid", "supersample", "linear") if m != shipped_resize]

    # (label, loop, source label, source, {precision: model})
    cases = [
        ("pilotnet", "steer", "tub 160x120", tub,
         {"fp32": data / "pilotnet_fp32.tflite", "int8": data / "pilotnet_int8.tflite"}),
        ("donkey", "steer", "tub 160x120", tub,
         {"fp32": data / "donkey_fp32.tflite", "int8": data / "donkey_int8.tflite"}),
        ("lecture", "classify", "tub 160x120", tub,
         {"fp32": data / "lecture_fp32.tflite", "int8": data / "lecture_int8.tflite"}),
        ("roads_pilotnet (shipped)", "steer", "tub 160x120", tub, {"int8": pilot_shipped}),
        ("shapes_compact (shipped)", "classify", "tub 160x120", tub, {"int8": shapes}),
        (f"shapes_compact (shipped, resize {shipped_resize})", "classify", "video 640x480", video, {"int8": shapes}),
        *resized,
        ("shapes_compact (shipped)", "classify", "video 160x120", video_small, {"int8": shapes}),
    ]
    if args.only:
        cases = [c for c in cases if args.only.lower() in f"{c[0]} {c[2]}".lower()]
    results = []
    for label, loop, src_label, src, models in cases:
        rounds: dict[str, list[dict]] = {p: [] for p in models}
        for r in range(args.rounds):
            for prec, path in models.items():
                log(f"{label} {prec} {loop} on {src_label}: round {r + 1}/{args.rounds}")
                rounds[prec].append(run_loop(loop, str(path), src, args.frames, args.threads))
        for prec, path in models.items():
            row = {"model": label, "precision": prec, "loop": loop, "source": src_label, "file": str(path),
                   **merge_rounds(rounds[prec]), "raw_invoke_p50_ms": raw_invoke(str(path), args.threads)}
            results.append(row)

    ratios = []
    for name in ("pilotnet", "donkey", "lecture"):
        f = next((r for r in results if r["model"] == name and r["precision"] == "fp32"), None)
        q = next((r for r in results if r["model"] == name and r["precision"] == "int8"), None)
        if f is None or q is None:
            continue
        ratios.append({"model": name, "no_decode_fp32_ms": f["no_decode_ms"], "no_decode_int8_ms": q["no_decode_ms"],
                       "ratio": f["no_decode_ms"] / q["no_decode_ms"],
                       "raw_invoke_ratio": f["raw_invoke_p50_ms"] / q["raw_invoke_p50_ms"],
                       "decode_p50_ms": q["decode"]["p50"], "target": 3.5 if name == "lecture" else 2.0})

    test_frames = [load_image(p) for p in tub[:: max(1, len(tub) // 100)]]
    cap = cv2.VideoCapture(video)
    for _ in range(20):
        ok, img = cap.read()
        if ok:
            test_frames.append(img)
    cap.release()
    identity = {}
    delegation = {}
    all_models = {r["file"]: r["model"] + " " + r["precision"] for r in results}
    all_models.update({str(CORAL): "coral mobilenet_v1_0.25_128_quant (uint8)",
                       str(data / "cumsum_fp32.tflite"): "cumsum_fp32 (an op XNNPACK does not take)"})
    for path, label in all_models.items():
        if not Path(path).is_file():
            continue
        delegation[label] = delegate_report(make_interpreter(path, threads=1)).to_dict()
        if "cumsum" not in path:
            identity[label] = byte_identity(path, test_frames)

    side = {"skipped": "--skip-donkeycar"} if args.skip_donkeycar else donkey_side_by_side(
        data, tub[:200], args.threads)
    report = {"threads": args.threads, "frames_per_run": args.frames, "rounds": args.rounds, "loops": results,
              "int8_vs_fp32": ratios, "byte_identity": identity, "delegation": delegation, "donkeycar": side,
              "environment": _environment()}
    emit(report, format_report(report), args.json)
    return 0


def _environment() -> dict:
    return describe_environment().to_dict() | {"load_average": list(os.getloadavg())}


def format_report(rep: dict) -> str:
    lines = [(f"device loop, {rep['threads']} thread(s), {rep['frames_per_run']} frames x {rep['rounds']} rounds "
              f"(best round's p50 / p90, ms; load average {rep['environment']['load_average'][0]:.1f})")]
    head = f"{'model':<46}{'prec':<5}{'loop':<9}{'source':<14}" + "".join(f"{s:>12}" for s in STAGES)
    lines += [head + f"{'outside':>9}{'no-wait':>8}{'frame':>7}", "-" * len(head + " " * 24)]
    for r in rep["loops"]:
        cells = "".join(f"{r[s]['p50']:>6.2f}/{r[s]['p90']:<5.2f}" for s in STAGES)
        lines.append(f"{r['model'][:45]:<46}{r['precision']:<5}{r['loop']:<9}{r['source']:<14}{cells}"
                     f"{r['outside']:>8.0%}{r['outside_nowait']:>8.0%}{r['frame_p50']:>7.2f}")
    lines.append("(outside = (preprocess + postprocess + sink + wait) / (decode + all of those + invoke), from the p50s; "
                 "frame = the loop's wall-clock period p50, which also holds hand-overs between threads)")
    lines.append("")
    lines.append("int8 vs fp32, per frame with the decode excluded (preprocess + invoke + postprocess + sink p50s):")
    for q in rep["int8_vs_fp32"]:
        ok = "meets" if q["ratio"] >= q["target"] else "MISSES"
        lines.append(f"  {q['model']:<9} fp32 {q['no_decode_fp32_ms']:.3f} ms  int8 {q['no_decode_int8_ms']:.3f} ms  "
                     f"-> {q['ratio']:.2f}x ({ok} >= {q['target']}x; raw invoke {q['raw_invoke_ratio']:.2f}x; "
                     f"decode {q['decode_p50_ms']:.3f} ms)")
    if not rep["int8_vs_fp32"]:
        lines.append("  (no fp32/int8 pair among the cases run)")
    lines.append("")
    lines.append("fast input path == reference (bytes of the model input, per test frame):")
    for label, v in rep["byte_identity"].items():
        lines.append(f"  {label:<52} {v['identical']}/{v['frames']} identical ({v['dtype']})")
    lines.append("")
    lines.append("delegate (XNNPACK):")
    for label, d in rep["delegation"].items():
        cpu = ", ".join(f"{k} x{v}" for k, v in d["cpu_ops"].items()) or "-"
        warn = "; ".join(w.split(":")[0] for w in d["warnings"] if not w.startswith(tuple("0123456789")))
        lines.append(f"  {label:<52} {d['delegated']}/{d['nodes']} nodes, {d['partitions']} partition(s), "
                     f"CPU: {cpu}" + (f"  [{warn}]" if warn else ""))
    dk = rep["donkeycar"]
    lines.append("")
    if "skipped" in dk:
        lines.append(f"donkeycar side-by-side skipped: {dk['skipped']}")
    else:
        lines.append(f"donkeycar {dk['donkeycar']} KerasLinear.run vs edgecnn Predictor.predict + decode_steering, "
                     f"same file (donkeypilot), {dk['frames']} tub frames decoded beforehand, {dk['threads']} thread(s):")
        lines.append(f"  donkeycar fp32 p50 {dk['donkeycar_fp32_p50_ms']:.3f} ms (p90 {dk['donkeycar_fp32_p90_ms']:.3f}); "
                     f"edgecnn fp32 {dk['edgecnn_fp32_p50_ms']:.3f} ms = {dk['edgecnn_fp32_vs_donkeycar']:.2f}x, "
                     f"edgecnn int8 {dk['edgecnn_int8_p50_ms']:.3f} ms = {dk['edgecnn_int8_vs_donkeycar']:.2f}x; "
                     f"decode {dk['decode_p50_ms']:.3f} ms")
        lines.append(f"  steering max |edgecnn - donkeycar|: fp32 {dk['max_abs_diff_fp32']:.2e}, "
                     f"int8 {dk['max_abs_diff_int8']:.2e} (int8 is another model: quantization error)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
