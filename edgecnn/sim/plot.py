"""Draw simulated trajectories over their roads (matplotlib, Agg backend, imported only when plotting)."""

from __future__ import annotations

import math
import os

import numpy as np

from edgecnn.atomic import atomic_path
from edgecnn.errors import EdgecnnError


def require_matplotlib() -> None:
    """Raise EdgecnnError with the install hint when matplotlib is missing (it is not in the device extra)."""
    try:
        import matplotlib  # lazy: matplotlib  # noqa: F401
    except ImportError:
        raise EdgecnnError("--plot needs matplotlib, which the device install leaves out: pip install matplotlib") from None


def plot_result(result, out: str | os.PathLike, max_roads: int = 20) -> None:
    """Write a PNG grid: each road's lane edges (grey), its centre (dashed), the car's path (blue) and departures
    (red crosses). Written atomically."""
    require_matplotlib()
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    roads = result.per_road[:max_roads]
    cols = min(5, max(len(roads), 1))
    rows = max(math.ceil(len(roads) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, r in zip(axes.flat, roads):
        road = r.road
        n = np.stack([-np.sin(road.heading), np.cos(road.heading)], 1)
        end = int(road.length / road.ds) + 1
        for off, style in ((-road.half_width, "-"), (road.half_width, "-")):
            edge = road.xy[:end] + off * n[:end]
            ax.plot(edge[:, 0], edge[:, 1], style, color="0.6", lw=0.8)
        ax.plot(road.xy[:end, 0], road.xy[:end, 1], "--", color="0.8", lw=0.6)
        if len(r.trajectory):
            ax.plot(r.trajectory[:, 0], r.trajectory[:, 1], color="tab:blue", lw=1.0)
        if len(r.departure_points):
            ax.plot(r.departure_points[:, 0], r.departure_points[:, 1], "x", color="tab:red", ms=6)
        ax.set_aspect("equal")
        ax.set_title(f"road {r.index + 1}: {r.departures} dep., {r.distance:.0f} m", fontsize=8)
    fig.suptitle(
        f"autonomy {result.autonomy:.3f}, departures {result.departures}, "
        f"mean |offset| {result.mean_abs_offset * 100:.1f} cm, latency {result.config.latency_ms:g} ms",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _edge_sides(points: np.ndarray, offset: float) -> np.ndarray:
    """float64 (N, 2): the polyline ``points`` moved ``offset`` metres to its left."""
    d = np.gradient(points, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return points + offset * n


def plot_nav_result(result, out: str | os.PathLike, max_routes: int = 60) -> None:
    """Write a PNG grid for a :class:`edgecnn.sim.navigate.NavResult`: per route the network's roads (grey edge
    lines, dashed centre), the planned route's driving line (orange), the car's path (blue), departures (red
    crosses) and each junction's outcome at its node (green circle = took the route's branch, red X = failed),
    labelled J1, J2, ... in driving order; routes are numbered from 1 as on the console (the first
    ``max_routes`` are drawn; the title says when some are left out). Written atomically."""
    require_matplotlib()
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    routes = result.per_route[:max_routes]
    cols = min(4, max(len(routes), 1))
    rows = max(math.ceil(len(routes) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, r in zip(axes.flat, routes):
        for e in r.network.edges:
            for off in (-2 * e.half_width, 2 * e.half_width):
                side = _edge_sides(e.points, off)
                ax.plot(side[:, 0], side[:, 1], "-", color="0.6", lw=0.6)
            ax.plot(e.points[:, 0], e.points[:, 1], "--", color="0.8", lw=0.5)
        pts = r.route.points
        ax.plot(pts[:, 0], pts[:, 1], "-", color="tab:orange", lw=2.2, alpha=0.5)
        ax.plot(pts[-1, 0], pts[-1, 1], "*", color="tab:orange", ms=10)
        if len(r.trajectory):
            ax.plot(r.trajectory[:, 0], r.trajectory[:, 1], color="tab:blue", lw=0.9)
        if len(r.departure_points):
            ax.plot(r.departure_points[:, 0], r.departure_points[:, 1], "x", color="tab:red", ms=6)
        for j in r.junctions:
            x, y = j.xy
            ax.plot(x, y, "o" if j.ok else "X", color="tab:green" if j.ok else "tab:red", ms=9, mfc="none" if j.ok else None)
            ax.annotate(f"J{j.number} {j.branch}", (x, y), textcoords="offset points", xytext=(6, 6), fontsize=7)
        ax.set_aspect("equal")
        ok = sum(j.ok for j in r.junctions)
        ax.set_title(f"route {r.index + 1}: {ok}/{len(r.junctions)} junctions, {r.departures} dep., "
                     f"{'completed' if r.completed else 'not completed'}", fontsize=8)
    c = result.config
    shown = "" if len(routes) == len(result.per_route) else f" (routes 1-{len(routes)} of {len(result.per_route)} shown)"
    fig.suptitle(
        f"junction success {'n/a' if result.junction_success is None else f'{result.junction_success:.3f}'} "
        f"({result.junctions} junctions), route completion "
        f"{result.route_completion:.3f}, autonomy {result.autonomy:.3f}, departures {result.departures}, "
        f"latency {c.latency_ms:g} ms, pose delay {c.pose_noise.delay_ms:g} ms{shown}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
