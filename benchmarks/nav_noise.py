"""Junction success of a route model against pose noise and pose delay, closed loop, on unseen networks.

For every cell of the grid (pose-error scale k x pose delay d) the same routes of the simulator's network stream
(:mod:`edgecnn.sim.navigate`, same seed, same pose-noise draws per route) are driven with the model; the pose the
map is drawn at has ``k`` times the model's contract position/heading errors (0 = perfect) and ``d`` ms of delay
(the contract's rate is kept). Reported per cell: junction success, route completion, autonomy, departures.

    .venv/bin/python benchmarks/nav_noise.py --model runs/nav/model_int8.tflite \\
        [--scales 0,0.5,1,2] [--delays-ms 0,100,300] [--routes N] [--seed 0] [--latency-ms 0] [--json out.json]

The readable table goes to stderr, the JSON to stdout (or ``--json FILE``). Runs without TensorFlow. A policy
instead of a model (``--policy ideal``) checks the harness: it reads the true pose, so every cell is 1.0.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from report_io import emit

from edgecnn.navmap import PoseNoise
from edgecnn.runtime.model_policy import load_policy
from edgecnn.sim.navigate import NavConfig, route_indexes, simulate_networks
from edgecnn.sim.simulate import PurePursuitPolicy


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got: {text!r}") from None


def run_grid(policy, base: PoseNoise, scales: list[float], delays_ms: list[float], config: NavConfig,
             log=None) -> list[dict]:
    """One :func:`simulate_networks` per (scale, delay) cell on the same routes; a list of cell dicts."""
    cells = []
    for k in scales:
        for d in delays_ms:
            noise = replace(base.scaled(k), delay_ms=d)
            t0 = time.perf_counter()
            r = simulate_networks(policy, replace(config, pose_noise=noise))
            cell = {
                "pose_noise_scale": k, "delay_ms": d, "position_m": noise.position_m, "heading_deg": noise.heading_deg,
                "junctions": r.junctions, "junction_success": round(r.junction_success, 4),
                "route_completion": round(r.route_completion, 4), "autonomy": round(r.autonomy, 4),
                "departures": r.departures, "junctions_by_kind": r.by_kind,
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            cells.append(cell)
            if log:
                log(f"  k={k:g} delay={d:g} ms: junction success {cell['junction_success']:.3f}, route completion "
                    f"{cell['route_completion']:.3f}, autonomy {cell['autonomy']:.3f} ({cell['wall_s']:.0f} s)")
    return cells


def table(cells: list[dict], scales: list[float], delays_ms: list[float], key: str = "junction_success") -> str:
    """The grid as text: one row per noise scale, one column per delay."""
    by = {(c["pose_noise_scale"], c["delay_ms"]): c for c in cells}
    head = f"{key:<30}" + "".join(f"{f'delay {d:g} ms':>15}" for d in delays_ms)
    lines = [head]
    for k in scales:
        c0 = by[(k, delays_ms[0])]
        label = f"noise {k:g}x ({c0['position_m']:.2f} m, {c0['heading_deg']:.1f} deg)"
        lines.append(f"{label:<30}" + "".join(f"{by[(k, d)][key]:>15.3f}" for d in delays_ms))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a navigate .tflite (or an image-only steering model, for contrast)")
    src.add_argument("--policy", choices=["ideal"], help="the ideal route follower (checks the harness)")
    ap.add_argument("--scales", type=_floats, default=[0.0, 0.5, 1.0, 2.0], help="pose-error multiples")
    ap.add_argument("--delays-ms", type=_floats, default=[0.0, 100.0, 300.0], help="pose delays, ms")
    ap.add_argument("--routes", type=int, default=None, help="routes per cell [default: >= 40 junctions]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="write the JSON here instead of stdout")
    a = ap.parse_args(argv)
    if a.model:
        policy = load_policy(a.model, threads=a.threads)
        name = a.model
    else:
        policy, name = PurePursuitPolicy(), "ideal route follower"
    base = getattr(policy, "pose_noise", None) or PoseNoise()
    config = NavConfig(routes=a.routes, seed=a.seed, latency_ms=a.latency_ms)
    routes = len(route_indexes(config))
    print(f"{name}: {len(a.scales)} x {len(a.delays_ms)} cells, {routes} routes each (seed {a.seed}), base pose "
          f"noise {base.position_m:g} m / {base.heading_deg:g} deg at {base.rate_hz:g} Hz", file=sys.stderr)
    cells = run_grid(policy, base, a.scales, a.delays_ms, config, log=lambda s: print(s, file=sys.stderr))
    print("\n" + table(cells, a.scales, a.delays_ms), file=sys.stderr)
    print("\n" + table(cells, a.scales, a.delays_ms, "route_completion"), file=sys.stderr)
    out = {"model": name, "routes": routes, "seed": a.seed, "latency_ms": a.latency_ms,
           "base_pose_noise": base.to_dict(), "cells": cells}
    emit(out, "", a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
