"""The comparison report without any model: the Pareto front and the table, CSV and Markdown renderings of a
hand-built report."""

from __future__ import annotations

import csv
import io

import pytest

from edgecnn.compare.compare import CompareReport, Row
from edgecnn.compare.report import csv_text, format_table, markdown, pareto

pytestmark = pytest.mark.device


def test_pareto_higher_is_better_with_ties():
    pts = [(1.0, 90.0), (2.0, 95.0), (2.0, 93.0), (3.0, 95.0), (0.5, 80.0), (4.0, 99.0), (1.0, 90.0)]
    # (2.0, 93) loses to (2.0, 95) at the same latency; (3.0, 95) only ties a faster point; the duplicate of
    # (1.0, 90) is not better than the first one, which stays (stable order).
    assert pareto(pts, higher_is_better=True) == [4, 0, 1, 5]


def test_pareto_lower_is_better():
    pts = [(1.0, 0.2), (2.0, 0.1), (2.0, 0.3), (3.0, 0.1), (0.5, 0.5)]
    assert pareto(pts, higher_is_better=False) == [4, 0, 1]


def test_pareto_edge_cases():
    assert pareto([], True) == []
    assert pareto([(5.0, 1.0)], False) == [0]
    # every point at the same latency: only the best one
    assert pareto([(1.0, 0.3), (1.0, 0.9), (1.0, 0.5)], True) == [1]


def _row(name: str, precision: str, size: int, top1: float, p50: float, agree: float, max_d: float) -> Row:
    return Row(variant=name, precision=precision, origin="built", path=f"/m/{name}", size_bytes=size,
               metrics={"top1": top1, "top5": 1.0, "count": 50},
               agreement={"mean_abs_diff": max_d / 2, "max_abs_diff": max_d, "top1_agreement": agree},
               latency_ms={"p50": p50, "p90": p50 * 1.5, "p99": p50 * 2, "mean": p50}, throughput=1000 / p50,
               peak_memory_mb=40.0)


@pytest.fixture
def report() -> CompareReport:
    rows = (_row("keras", "fp32 (keras)", 204800, 0.9, 40.0, 1.0, 0.0),
            _row("fp32", "fp32", 102400, 0.9, 2.0, 1.0, 1e-6),
            _row("int8", "int8", 30720, 0.88, 0.5, 0.96, 0.05))
    return CompareReport(run="/runs/tiny", task="classify", primary_metric="top1", rows=rows,
                         test={"source": "test split of /data", "count": 50, "calibration": "/calib",
                               "calibration_overlap": 0, "disjoint_from_calibration": True},
                         environment={"cpu": "testcpu", "cores": 2, "threads": 1, "runtime": "ai-edge-litert",
                                      "runtime_version": "2.3.0", "numpy": "2.4", "python": "3.11", "date": "today"},
                         settings={"runs": 20, "warmup": 5, "threads": 1, "limit": 500},
                         notes=("fp16: not built (needs --calibration)",))


def test_format_table(report):
    text = format_table(report)
    lines = text.splitlines()
    assert lines[0] == "classify comparison of /runs/tiny on 50 test frames (test split of /data)"
    head = lines[1].split()
    assert head[:4] == ["variant", "precision", "size", "KiB"] and "p99" in head
    int8 = next(ln for ln in lines if ln.startswith("int8 "))
    cells = int8.split()
    assert cells[:6] == ["int8", "int8", "30.0", "88.0", "100.0", "96.0"]
    assert "4.00" in cells  # x fp32 = fp32 p50 / int8 p50 = 2.0 / 0.5
    assert "test frames are disjoint from the calibration set" in lines
    assert lines[-1] == "fp16: not built (needs --calibration)"
    assert "testcpu, 2 cores, 1 thread(s), ai-edge-litert 2.3.0" in text


def test_csv_and_markdown_hold_the_same_cells(report):
    rows = list(csv.reader(io.StringIO(csv_text(report))))
    assert rows[0][:3] == ["variant", "precision", "size KiB"] and len(rows) == 4
    assert [r[0] for r in rows[1:]] == ["keras", "fp32", "int8"]
    assert all(len(r) == len(rows[0]) for r in rows)
    md = markdown(report).splitlines()
    table = [ln for ln in md if ln.startswith("|")]
    assert table[0] == "| " + " | ".join(rows[0]) + " |"
    assert table[1] == "|" + "---|" * len(rows[0])
    assert [ln.split(" | ")[0].strip("| ") for ln in table[2:]] == ["keras", "fp32", "int8"]
    assert table[4] == "| " + " | ".join(rows[3]) + " |"
    assert "![accuracy against latency](accuracy_latency.png)" in md
    assert "- fp16: not built (needs --calibration)" in md


def test_steering_table_columns_and_closed_loop():
    row = Row(variant="int8", precision="int8", origin="built", path="/m", size_bytes=2048,
              metrics={"mae": 0.1234, "rmse": 0.2, "p95_abs_error": 0.3, "sign_agreement": 0.9, "count": 10},
              agreement={"mean_abs_diff": 0.01, "max_abs_diff": 0.02, "steering_mean_abs_diff": 0.005,
                         "steering_max_abs_diff": 0.02},
              latency_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0, "mean": 1.0}, throughput=1000.0, peak_memory_mb=30.0,
              closed_loop={"autonomy": 0.75, "departures": 2})
    rep = CompareReport(run="r", task="steer", primary_metric="mae", rows=(row,),
                        test={"source": "s", "count": 10, "disjoint_from_calibration": None}, environment={},
                        settings={})
    head, cells = next(csv.reader(io.StringIO(csv_text(rep)))), list(csv.reader(io.StringIO(csv_text(rep))))[1]
    assert {"MAE", "RMSE", "p95", "sign %", "|d| steer", "autonomy %", "departures"} <= set(head)
    assert cells[head.index("MAE")] == "0.123" and cells[head.index("autonomy %")] == "75.0"
    assert cells[head.index("x fp32")] == "-"  # no fp32 row to compare with
    assert "disjoint" not in format_table(rep)
