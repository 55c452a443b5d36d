"""donkeycar 5.3's own pilot part on tub frames: run inside the donkeycar venv (``.venv-donkey``), not edgecnn's.

Called by ``benchmarks/device_loop.py``; prints one JSON object on stdout. Per frame it times exactly what
donkeycar's drive loop calls, ``KerasLinear.run(rgb_uint8)`` (normalise to [0, 1], the TfLite interpreter's
signature runner, outputs to (angle, throttle)), on frames decoded beforehand (as donkeycar's camera part hands
them over), and keeps the angles for the parity check.

``TfLite.load`` opens the interpreter without a thread count; for a like-for-like comparison the interpreter is
reopened here with ``num_threads`` (the same tflite_runtime class donkeycar picked) and the signature runner
rebuilt, exactly as ``TfLite.load`` builds it.

    .venv-donkey/bin/python benchmarks/donkey_pilot_part.py MODEL.tflite FRAME.jpg ... --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("frames", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="Pass over the frames this many times.")
    args = ap.parse_args(argv)
    with contextlib.redirect_stdout(io.StringIO()):  # donkeycar prints a banner on import
        import donkeycar  # lazy: optional
        from donkeycar.parts.interpreter import (  # lazy: optional
            TfLite,
            get_tflite_interpreter,
        )
        from donkeycar.parts.keras import KerasLinear  # lazy: optional
    rgb = [cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB) for f in args.frames]
    pilot = KerasLinear(interpreter=TfLite(), input_shape=rgb[0].shape)
    pilot.load(args.model)
    tfl = pilot.interpreter
    tfl.interpreter = get_tflite_interpreter()(model_path=args.model, num_threads=args.threads)
    tfl.runner = tfl.interpreter.get_signature_runner()
    for img in rgb[: args.warmup]:
        pilot.run(img)
    times, angles = [], []
    for _ in range(args.repeat):
        for img in rgb:
            t0 = time.perf_counter()
            angle, _throttle = pilot.run(img)
            times.append((time.perf_counter() - t0) * 1e3)
            angles.append(float(angle))
    t = np.asarray(times)
    print(json.dumps({"donkeycar": donkeycar.__version__, "numpy": np.__version__, "frames": len(rgb),
                      "threads": args.threads, "p50_ms": float(np.percentile(t, 50)),
                      "p90_ms": float(np.percentile(t, 90)), "angles": angles[: len(rgb)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
