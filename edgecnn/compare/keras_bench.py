"""Child process: time a Keras model on one frame (``python -m edgecnn.compare.keras_bench MODEL INPUT RUNS WARMUP``).

INPUT: a float32 .npy of one frame's input, or for a two-input (navigate) model ``image=FILE,map=FILE``.

Prints one JSON line: p50/p90/p99/mean in milliseconds, throughput and peak resident memory (MiB). Kept in its
own process so that TensorFlow's threads and memory do not disturb the TFLite rows.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from edgecnn.quantize.keras_model import load_keras_model
from edgecnn.runtime.benchmark import peak_mb
from edgecnn.tfimport import import_tensorflow


def main(argv: list[str]) -> None:
    model_path, input_file, runs, warmup = argv[0], argv[1], int(argv[2]), int(argv[3])

    tf = import_tensorflow()

    model = load_keras_model(model_path)
    if "=" in input_file:  # named inputs: image=FILE,map=FILE
        pairs = (item.split("=", 1) for item in input_file.split(","))
        x = {name: tf.constant(np.load(f)[None].astype(np.float32)) for name, f in pairs}
    else:
        x = tf.constant(np.load(input_file)[None].astype(np.float32))
    for _ in range(warmup + 1):
        model(x, training=False)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        np.asarray(model(x, training=False))
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.array(times)

    peak = peak_mb()
    print(json.dumps({"p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
                      "p99": float(np.percentile(t, 99)), "mean": float(t.mean()),
                      "throughput": float(1e3 / t.mean()), "peak_memory_mb": peak}))


if __name__ == "__main__":
    main(sys.argv[1:])
