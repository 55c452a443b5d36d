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
