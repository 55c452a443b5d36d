"""What each resize method costs and what it does to a classifier, on frames much larger than the model input.

Runs in the device venv (no TensorFlow). The shipped ``shapes_compact`` model (trained on 64x64 renders, so no
resize happened in its training and any method keeps train/serve parity) classifies ``edgecnn data shapes``
renders made at ``--size`` (default 480) with a seed its training never saw, once per method in
:data:`edgecnn.contract.RESIZE_METHODS` (the same network, the contract's ``resize`` field changed), and once on the
same shapes rendered at 64x64 (the model's own size: the reference accuracy). For each method it reports:

* ``accuracy`` on the large renders, and ``agree_area``: the share of frames whose top-1 equals ``area``'s;
* ``input_diff``: mean |model input pixel - area's| (uint8 units, over the large renders);
* ``noise_std``: the std of uniform noise (640x480) shrunk to 64x64, a measure of how much fine detail aliases
  (area averages 75 pixels per output: about 8.5; a point sampler: about 74);
* ``resize_ms``: p50 of ``edgecnn.preprocess.resize`` from 640x480 and from the render size to 64x64 (1 thread).

    .venv-device/bin/python benchmarks/resize_quality.py [--size 480] [--per-class 60] [--json out.json]

The readable table goes to stderr, the JSON to stdout (or ``--json``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from report_io import emit

from edgecnn.contract import RESIZE_METHODS
from edgecnn.data.imagefolder import scan
from edgecnn.data.shapes import generate
from edgecnn.preprocess import Scratch, load_image, resize
from edgecnn.runtime.metadata import embed_contract, read_contract
from edgecnn.runtime.predictor import Predictor

REPO = Path(__file__).resolve().parent.parent
SHAPES = REPO / "firmware_models" / "shapes_compact" / "model_int8.tflite"


def resize_ms(frame: np.ndarray, method: str, runs: int = 300) -> float:
    """p50 (ms) of one resize of ``frame`` (uint8 HxWx3) to 64x64 with reused buffers, as the device loop does."""
    scratch, dst = Scratch(), np.empty((64, 64, 3), np.uint8)
    times = []
    for _ in range(runs + 20):
        t = time.perf_counter()
        resize(frame, 64, 64, method, dst=dst, scratch=scratch)
        times.append(time.perf_counter() - t)
    return float(np.median(times[20:]) * 1e3)


def classify_all(model: bytes, frames: list[np.ndarray]) -> np.ndarray:
    """Top-1 class index per frame (int (N,))."""
    pred = Predictor(model, threads=1)
    return np.asarray([int(np.argmax(pred.predict(f))) for f in frames])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default=480, type=int, help="Side of the large renders (pixels).")
    ap.add_argument("--per-class", default=60, type=int)
    ap.add_argument("--seed", default=101, type=int, help="Shapes seed (the shipped model trained on seed 0).")
    ap.add_argument("--json", default=None, type=Path)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    tmp = Path(tempfile.mkdtemp(prefix="edgecnn-resize-"))
    sets = {}
    for side in (64, args.size):
        out = tmp / f"shapes{side}"
        generate(out, size=side, per_class=args.per_class, seed=args.seed)
        folder = scan(out)
        sets[side] = ([load_image(s.path) for s in folder.samples], np.asarray([s.label for s in folder.samples]),
                      list(folder.classes))
    data = SHAPES.read_bytes()
    contract = read_contract(data)
    order = [contract.labels.index(c) for c in sets[64][2]]  # folder class index -> model label index
    small, small_y, _ = sets[64]
    large, large_y, _ = sets[args.size]
    reference = float(np.mean(classify_all(data, small) == np.asarray(order)[small_y]))
    noise = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    area_in = [resize(f, 64, 64, "area").astype(np.int16) for f in large]
    rows, area_top = [], None
    for method in RESIZE_METHODS:
        top = classify_all(embed_contract(data, contract.replace(resize=method)), large)
        area_top = top if method == "area" else area_top
        rows.append({
            "method": method,
            "accuracy": float(np.mean(top == np.asarray(order)[large_y])),
            "agree_area": float(np.mean(top == area_top)),
            "input_diff": float(np.mean([np.abs(resize(f, 64, 64, method) - a).mean()
                                         for f, a in zip(large, area_in)])),
            "noise_std": float(resize(noise, 64, 64, method).std()),
            "resize_ms_640x480": resize_ms(noise, method),
            f"resize_ms_{args.size}": resize_ms(large[0], method),
        })
    report = {"model": str(SHAPES.relative_to(REPO)), "frames": len(large), "render_size": args.size,
              "reference_accuracy_64": reference, "methods": rows, "load_average": list(os.getloadavg())}
    emit(report, format_report(report), args.json)
    return 0


def format_report(rep: dict) -> str:
    n = rep["render_size"]
    lines = [f"resize methods: {rep['model']} on {rep['frames']} shapes rendered at {n}x{n} "
             f"(accuracy at its own 64x64: {rep['reference_accuracy_64']:.3f}; load average "
             f"{rep['load_average'][0]:.1f})",
             f"{'method':14s} {'accuracy':>8s} {'=area':>6s} {'in diff':>7s} {'noise std':>9s} "
             f"{'640x480 ms':>10s} {f'{n}x{n} ms':>10s}"]
    for r in rep["methods"]:
        lines.append(f"{r['method']:14s} {r['accuracy']:8.3f} {r['agree_area']:6.3f} {r['input_diff']:7.2f} "
                     f"{r['noise_std']:9.1f} {r['resize_ms_640x480']:10.3f} {r[f'resize_ms_{n}']:10.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
