"""Benchmark the training input pipeline alone: images per second and peak resident memory (not a test).

For each data set size it generates (once, reused afterwards) a shapes image folder of small PNGs, then runs the
tf.data pipeline that ``edgecnn train`` uses (:func:`edgecnn.train.pipeline_data.make_dataset`: shuffled file
list, parallel decode + preprocessing, batch, prefetch) in a fresh process, with no model, and reports:

* ``images_per_s``: per full epoch, start-up included (disk cache: the writing epoch, then the reading ones);
* ``peak_rss_mb``: the process's peak resident memory (``getrusage``), and ``tf_rss_mb``, the same after importing
  TensorFlow and before building the pipeline, so ``pipeline_mb`` is what the pipeline itself added.

Modes: ``stream`` (what data sets above 1 GiB of tensors get: nothing held in memory), ``disk`` (``--cache-dir``:
epoch 1 writes the cache, epoch 2 reads it; both are reported), ``scan`` (``imagefolder.scan``, which validates
every file before training, measured alone and without TensorFlow). The in-memory cache that small data sets get
grows with the data set by design (up to 1 GiB) and is not measured here.

    .venv/bin/python benchmarks/input_pipeline.py --sizes 5000,50000

Prints a readable table on stderr and the JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def ensure_data(root: Path, images: int, size: int) -> Path:
    """A shapes folder with ``images`` images of ``size`` pixels (5 classes), generated once."""
    from edgecnn.data.shapes import CLASSES, generate

    folder = root / f"shapes-{images}"
    per_class = images // len(CLASSES)
    if folder.is_dir() and sum(1 for _ in folder.rglob("*.png")) == per_class * len(CLASSES):
        return folder
    print(f"generating {images} images of {size}x{size} in {folder} ...", file=sys.stderr, flush=True)
    return generate(folder, size=size, per_class=per_class, seed=0, overwrite=True)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def list_images(folder: str) -> tuple[list[str], list[int], list[str]]:
    """Class sub-folders -> (paths, labels, classes), by a plain listing (what ``imagefolder.scan`` returns,
    without its per-file validation, which ``--modes scan`` measures on its own)."""
    root = Path(folder)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        for entry in sorted(os.scandir(root / name), key=lambda e: e.name):
            if entry.name.endswith(".png"):
                paths.append(entry.path)
                labels.append(label)
    return paths, labels, classes


def child(folder: str, mode: str, img: int, batch: int, epochs: int = 1) -> dict:
    """Run one measurement in this process (called in a fresh subprocess); ``epochs`` passes over the data."""
    if mode == "scan":  # edgecnn.data.imagefolder.scan alone (no TensorFlow): what `edgecnn train` does first
        from edgecnn.data import imagefolder

        start_rss = _rss_mb()
        t0 = time.perf_counter()
        scanned = imagefolder.scan(folder)
        return {"images": len(scanned.samples), "mode": mode, "scan_s": round(time.perf_counter() - t0, 2),
                "tf_rss_mb": round(start_rss, 1), "peak_rss_mb": round(_rss_mb(), 1),
                "pipeline_mb": round(_rss_mb() - start_rss, 1)}
    from edgecnn.tfimport import import_tensorflow

    import_tensorflow()
    from edgecnn.contract import Contract
    from edgecnn.train import pipeline_data as pd

    paths, labels, classes = list_images(folder)
    contract = Contract(task="classify", input_height=img, input_width=img, channels=3, color_order="RGB",
                        mean=(0.0, 0.0, 0.0), std=(255.0, 255.0, 255.0), resize="area", labels=classes,
                        head="softmax")
    tf_rss = _rss_mb()
    result = {"images": len(paths), "mode": mode, "epochs": epochs, "tf_rss_mb": round(tf_rss, 1)}
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-cache-") as cache_dir:
        if mode == "stream":
            ds = pd.make_dataset(paths, labels, contract, batch, shuffle=True, cache=None)
            names = ["epoch"] * epochs
        else:
            ds = pd.make_dataset(paths, labels, contract, batch, shuffle=True, cache_dir=cache_dir)
            names = ["write"] + ["read"] * max(1, epochs - 1)
        rates: dict[str, list[float]] = {}
        for name in names:
            # The whole epoch, start-up included: a shuffle buffer fills before the first batch comes out, so
            # skipping "warm-up" batches would hide decoding time.
            n, started = 0, time.perf_counter()
            for x, _ in ds:
                n += int(x.shape[0])
            rates.setdefault(name, []).append(n / (time.perf_counter() - started))
            if n != len(paths):
                raise RuntimeError(f"the pipeline produced {n} images, expected {len(paths)}")
        for name, values in rates.items():
            result[f"images_per_s_{name}"] = round(sum(values) / len(values), 1)
        if mode == "disk":
            result["cache_mb"] = round(sum(p.stat().st_size for p in Path(cache_dir).iterdir()) / 2**20, 1)
    peak = _rss_mb()
    result["peak_rss_mb"] = round(peak, 1)
    result["pipeline_mb"] = round(peak - tf_rss, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="5000,50000", help="data set sizes in images, comma-separated")
    ap.add_argument("--modes", default="stream,disk,scan", help="stream, disk and/or scan (imagefolder.scan alone)")
    ap.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "edgecnn-bench"), help="where data sets go")
    ap.add_argument("--image-size", type=int, default=32, help="generated image size in pixels")
    ap.add_argument("--img", type=int, default=32, help="model input size in pixels")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--same-reads", action=argparse.BooleanOptionalAction, default=True,
                    help="smaller data sets run more epochs so that every size reads as many images as the largest "
                         "(memory then differs only by data set size, not by how long the pipeline ran)")
    ap.add_argument("--child", nargs=3, metavar=("FOLDER", "MODE", "EPOCHS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.img, args.batch, int(args.child[2]))))
        return 0
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for images in sizes:
        folder = ensure_data(Path(args.root), images, args.image_size)
        epochs = max(1, round(max(sizes) / images)) if args.same_reads else 1
        for mode in args.modes.split(","):
            cmd = [sys.executable, __file__, "--child", str(folder), mode, str(epochs), "--img", str(args.img),
                   "--batch", str(args.batch)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  {images} images, {mode}: done", file=sys.stderr, flush=True)
    header = (f"{'images':>7} {'mode':>6} {'epochs':>6} {'img/s (1st)':>12} {'img/s (later)':>13} {'peak RSS MB':>12} "
              f"{'pipeline MB':>12}")
    print(header, file=sys.stderr)
    for r in rows:
        first = r.get("images_per_s_epoch", r.get("images_per_s_write", f"{r.get('scan_s')} s"))
        second = r.get("images_per_s_read", "")
        print(f"{r['images']:>7} {r['mode']:>6} {r.get('epochs', ''):>6} {first:>12} {second:>13} {r['peak_rss_mb']:>12} "
              f"{r['pipeline_mb']:>12}",
              file=sys.stderr)
    print(json.dumps({"batch": args.batch, "input": args.img, "cpus": os.cpu_count(), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
