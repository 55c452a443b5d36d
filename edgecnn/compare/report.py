"""Write a comparison: a terminal table, report.json, report.md, report.csv and accuracy_latency.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from edgecnn.atomic import atomic_path, write_text
from edgecnn.compare.compare import CompareReport, Row


def _metric_cols(report: CompareReport) -> list[tuple[str, str, str]]:
    """(header, metrics key, format) of the task-metric columns."""
    if report.task == "classify":
        return [("top1 %", "top1", "pct"), ("top5 %", "top5", "pct")]
    if report.task == "segment":
        return [("mIoU %", "miou", "pct"), ("pixel acc %", "pixel_accuracy", "pct")]
    if report.task == "navigate":  # coverage: share of frames inside the mixture's k-sigma region (ideal 68/95/99.7)
        return [("MAE", "mae", "f3"), ("NLL", "nll", "f3"), ("cov1 %", "coverage.1", "pct"),
                ("cov2 %", "coverage.2", "pct"), ("cov3 %", "coverage.3", "pct"),
                ("route mode %", "junctions.route_mode_share", "pct")]
    return [("MAE", "mae", "f3"), ("RMSE", "rmse", "f3"), ("p95", "p95_abs_error", "f3"),
            ("sign %", "sign_agreement", "pct")]


def _metric(metrics: dict[str, Any], key: str) -> Any:
    """``metrics[key]``, where a dotted key reads into nested dicts (``coverage.1``); None when absent."""
    value: Any = metrics
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{100 * v:.1f}"
    if kind == "f3":
        return f"{v:.3f}"
    return str(v)


def table_rows(report: CompareReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (strings)."""
    ref = report.row("keras")
    fp32 = report.row("fp32")
    head = ["variant", "precision", "size KiB", *[h for h, _, _ in _metric_cols(report)]]
    head += ["agree %" if report.task in ("classify", "segment") else "|d| steer", "max |d|", "p50 ms", "p90 ms", "p99 ms",
             "x fp32", "inf/s", "peak MiB"]
    if any(r.closed_loop for r in report.rows):
        head += ["autonomy %", "departures"]
    if any("junction_success" in (r.closed_loop or {}) for r in report.rows):
        head += ["junctions ok %", "routes done %"]
    rows = []
    for r in report.rows:
        cells = [r.variant, r.precision, f"{r.size_bytes / 1024:.1f}"]
        cells += [_fmt(_metric(r.metrics, k), f) for _, k, f in _metric_cols(report)]
        if report.task == "segment":  # agreement: pixels whose class equals the float model's
            cells += [_fmt(r.agreement.get("pixel_agreement"), "pct"), f"{r.agreement['max_abs_diff']:.2g}"]
        elif report.task == "classify":
            cells += [_fmt(r.agreement.get("top1_agreement"), "pct"), f"{r.agreement['max_abs_diff']:.2g}"]
        else:
            cells += [f"{r.agreement.get('steering_mean_abs_diff', 0):.4f}",
                      f"{r.agreement.get('steering_max_abs_diff', 0):.3f}"]
        lat = r.latency_ms
        speed = f"{fp32.latency_ms['p50'] / lat['p50']:.2f}" if fp32 and lat["p50"] > 0 else "-"
        cells += [f"{lat['p50']:.3f}", f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", speed, f"{r.throughput:.0f}",
                  f"{r.peak_memory_mb:.0f}"]
        if "autonomy %" in head:
            loop = r.closed_loop or {}
            cells += [_fmt(loop.get("autonomy"), "pct"), str(loop.get("departures", "-"))]
        if "junctions ok %" in head:
            loop = r.closed_loop or {}
            cells += [_fmt(loop.get("junction_success"), "pct"), _fmt(loop.get("route_completion"), "pct")]
        rows.append(cells)
    del ref
    return head, rows


def format_table(report: CompareReport) -> str:
    """Aligned plain-text table plus the environment and notes."""
    head, rows = table_rows(report)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    e = report.environment
    out = [f"{report.task} comparison of {report.run} on {report.test['count']} test frames ({report.test['source']})",
           line(head), line(["-" * w for w in widths]), *[line(r) for r in rows],
           (f"environment: {e.get('cpu')}, {e.get('cores')} cores, {e.get('threads')} thread(s), "
           f"{e.get('runtime')} {e.get('runtime_version')}, numpy {e.get('numpy')}, {e.get('date')}"),
           "latency: batch 1, warm-up excluded, each variant in its own process; 'x fp32' = fp32 p50 / this p50"]
    out += per_class_iou_lines(report)
    out += [f"WARNING (training): {w}" for w in report.warnings]
    disjoint = report.test.get("disjoint_from_calibration")
    if disjoint is True:
        out.append("test frames are disjoint from the calibration set")
    out += list(report.notes)
    return "\n".join(out)


def per_class_iou_lines(report: CompareReport) -> list[str]:
    """Segmentation: one line per variant with the IoU of every class (thin classes suffer most from int8)."""
    if report.task != "segment":
        return []
    lines = ["IoU per class, %:"]
    for r in report.rows:
        per = r.metrics.get("iou_per_class", {})
        lines.append(f"  {r.variant}: " + ", ".join(f"{k} {_fmt(v, 'pct')}" for k, v in per.items()))
    return lines


def markdown(report: CompareReport) -> str:
    head, rows = table_rows(report)
    md = [f"# {report.task} comparison", "", (f"Run: `{report.run}`; test data: {report.test['count']} frames from "
          f"{report.test['source']}."), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    e = report.environment
    md += ["", (f"Environment: {e.get('cpu')}, {e.get('cores')} cores, {e.get('threads')} thread(s), "
           f"{e.get('runtime')} {e.get('runtime_version')}, numpy {e.get('numpy')}, Python {e.get('python')}, "
           f"{e.get('date')}."), "", "![accuracy against latency](accuracy_latency.png)", ""]
    md += [ln.strip() if i == 0 else f"- {ln.strip()}" for i, ln in enumerate(per_class_iou_lines(report))]
    md += [f"- **Warning (training):** {w}" for w in report.warnings]
    md += [f"- {n}" for n in report.notes]
    return "\n".join(md) + "\n"


def csv_text(report: CompareReport) -> str:
    head, rows = table_rows(report)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows(rows)
    return buf.getvalue()


def pareto(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indexes of the points (latency, metric) that no other point beats on both, sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1] if higher_is_better else points[i][1]))
    front, best = [], None
    for i in order:
        m = points[i][1]
        if best is None or (m > best if higher_is_better else m < best):
            front.append(i)
            best = m
    return front


def plot(report: CompareReport, dest: Path) -> Path:
    """accuracy_latency.png: metric against p50 latency, marker area by file size, the Pareto front drawn."""
    import matplotlib  # lazy: matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: matplotlib

    key = report.primary_metric
    higher = report.task in ("classify", "segment")
    rows: list[Row] = list(report.rows)
    pts = [(r.latency_ms["p50"], (100 * r.metrics[key]) if higher else r.metrics[key]) for r in rows]
    sizes = [r.size_bytes for r in rows]
    smax = max(sizes)
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
    front = pareto(pts, higher)
    from matplotlib.lines import Line2D  # lazy: matplotlib

    handles = []
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, ((x, y), s, r) in enumerate(zip(pts, sizes, rows)):
        on_front = i in front
        colour = colours[i % len(colours)]
        ax.scatter([x], [y], s=60 + 1400 * s / smax, alpha=0.6, color=colour, zorder=3,
                   edgecolor="tab:red" if on_front else "black", linewidth=2.2 if on_front else 0.8)
        # names go in the legend, not beside the markers: variants with equal accuracy would overlap
        handles.append(Line2D([], [], marker="o", ls="", color=colour, markersize=8,
                              label=f"{r.variant}: {s / 1024:.0f} KiB, {x:.3g} ms"))
    # The front as a staircase: from each front point, the best metric reachable at that latency or more.
    fx = [pts[i][0] for i in front] + [max(p[0] for p in pts) * 1.5]
    fy = [pts[i][1] for i in front]
    (line,) = ax.step(fx, fy + fy[-1:], where="post", ls="--", color="tab:red", lw=1.5,
                      label="Pareto front (red rings)", zorder=2)
    handles.append(line)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per frame, ms (log scale, batch 1, "
                  f"{report.environment.get('threads') or 'default'} thread(s))")
    ax.set_ylabel({"classify": "top-1 accuracy on test data, %", "segment": "mean IoU on test data, %"}.get(
        report.task, "steering MAE on test data (lower is better)"))
    ax.set_title(f"{report.task}: accuracy against latency (marker area = file size)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ys = [p[1] for p in pts]
    pad = max((max(ys) - min(ys)) * 0.25, 0.5 if higher else 0.005)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    fig.tight_layout()
    with atomic_path(dest, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return dest


def write_report(report: CompareReport, out_dir: str | Path) -> dict[str, Path]:
    """Write report.json, report.md, report.csv and accuracy_latency.png into ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    files = {
        "json": write_text(out / "report.json", json.dumps(report.to_dict(), indent=2) + "\n"),
        "md": write_text(out / "report.md", markdown(report)),
        "csv": write_text(out / "report.csv", csv_text(report)),
    }
    files["plot"] = plot(report, out / "accuracy_latency.png")
    return files
