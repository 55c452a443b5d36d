"""The robustness report: one JSON document and a printed table of the figures that must hold.

:func:`verdicts` turns the report into ``(figure, value, requirement, ok)`` rows; :func:`format_table` prints them
with a section per part; :func:`passed` is what the command's exit code follows.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, bool | None]


def verdicts(report: dict[str, Any]) -> list[tuple[str, list[Row]]]:
    """Sections of ``(figure, value, requirement, ok)``; ``ok`` None for an informative figure."""
    sections: list[tuple[str, list[Row]]] = []
    m = report.get("mutation")
    if m:
        o = m["overall"]
        rows: list[Row] = [
            ("mutants tried (inspect + benchmark + classify each)", (f"{m['mutants']} ({m['stage_runs']} runs, "
             f"{m['seconds']:.0f} s, {m['workers']} workers)"), "", None),
            ("still valid models (accepted)", str(o["accepted"]), "", None),
            ("rejected with a clear one-line error", str(o["rejected"]), "", None),
            ("child crashed/aborted/OOM/timeout, contained and named", str(o["contained"]), "", None),
            ("crashes (traceback in the caller)", str(o["crash"]), "0", o["crash"] == 0),
            ("hangs (stage beyond its time bound)", str(o["hang"]), "0", o["hang"] == 0),
            ("slowest stage", f"{m['slowest_stage_s']:.2f} s", f"<= {m['timeout_s']:.0f} s + 10 s",
             m["slowest_stage_s"] <= m["timeout_s"] + 10),
        ]
        for kind, c in m["per_kind"].items():
            rows.append((f"  {kind}", ", ".join(f"{k} {v}" for k, v in c.items() if v), "", None))
        c = m.get("cli")
        if c:
            bad = c["killed"] + c["traceback"] + c["hang"] + c["unclear"]
            rows.append((f"real CLI runs ({c['mutants']} mutants x inspect/benchmark/classify)",
                         f"{c['runs']}: {c['accepted']} accepted, {c['rejected']} clean errors", "", None))
            rows.append(("CLI: killed by a signal / traceback / hang / unclear",
                         f"{c['killed']} / {c['traceback']} / {c['hang']} / {c['unclear']}", "0 / 0 / 0 / 0", bad == 0))
        sections.append(("Hostile and broken models", rows))
    rows = []
    for h in report.get("sandbox", []):
        rows.append((f"sandbox child: {h['name']}", f"parent survived, said: {h['said']} ({h['seconds']:.1f} s)",
                     "named", h["named"]))
    for k in report.get("keras", []):
        rows.append((f"Keras file: {k['case']}", "refused" if k["refused"] else "ACCEPTED", "refused", k["refused"]))
    if rows:
        sections.append(("Sandbox and unsafe Keras files", rows))
    k = report.get("kill")
    if k:
        sections.append(("kill -9 during quantize/export", [
            ("trials", f"{k['trials']} ({k['interrupted']} interrupted, {k['finished_before_kill']} had finished)",
             "", None),
            ("destination old / complete new", f"{k['old']} / {k['new']}", "", None),
            ("partial or missing destination", str(k["partial"]), "0", k["partial"] == 0),
            ("temporary files left beside it (removed)", str(k["temp_leftovers"]), "", None),
        ] + ([("SIGTERM while export writes: cleans up, exit 143",
               f"exit {k['sigterm_export']['returncode']}, {k['sigterm_export']['state']}, "
               f"{k['sigterm_export']['temp_leftovers']} temp files", "143 or 0, no temp files",
               k["sigterm_export"]["ok"])] if "sigterm_export" in k else [])))
    d = report.get("data_faults")
    if d:
        rows = []
        for name in ("imagefolder", "tub"):
            a = d.get(name)
            if not a:
                continue
            kinds = ", ".join(f"{kind} {v['injected']}->{v['outcome']}" for kind, v in a["per_kind"].items())
            rows.append((f"{name}: faults injected / items", f"{a['injected']} / {a['total']}", "", None))
            rows.append((f"{name}: every fault handled and counted", kinds, "all", a["ok"]))
        t = d.get("training")
        if t:
            rows.append(("training on the faulty image folder", t["summary"], "proceeds", t["ok"]))
        if "too_little" in d:
            rows.append(("all images of a class faulty", d["too_little"]["error_line"], "clear error",
                         d["too_little"]["ok"]))
        sections.append(("Bad data", rows))
    disk = report.get("disk")
    if disk is not None:
        rows = [(c["name"], c["error_line"][:90] or f"exit {c['returncode']}", "clear error, nothing left", c["ok"])
                for c in disk["cases"]]
        if not disk.get("mounts"):
            rows.append(("tmpfs mounts", "not possible here (no unshare/mount)", "", None))
        sections.append(("Full disk and read-only output", rows))
    cam = report.get("camera")
    if cam:
        rows = []
        for c in cam.get("cases", []):
            rows.append((c["name"], c["value"], c.get("requirement", ""), c.get("ok")))
        sections.append(("Cameras and streams", rows))
    net = report.get("network")
    if net:
        sections.append(("Network", [(n["name"], n["value"], n.get("requirement", ""), n.get("ok")) for n in net]))
    return sections


def passed(report: dict[str, Any]) -> bool:
    """True when no figure with a requirement failed."""
    return all(ok is not False for _, rows in verdicts(report) for *_, ok in rows)


def format_table(report: dict[str, Any]) -> str:
    """The printed report: one section per part, one row per figure, PASS/FAIL where a requirement applies."""
    lines = ["edgecnn robustness report" + (f" ({report['form']} form, seed {report.get('seed', 0)})" if "form" in report else "")]
    for title, rows in verdicts(report):
        lines.append("")
        lines.append(title)
        width = max((len(r[0]) for r in rows), default=10)
        for figure, value, req, ok in rows:
            mark = "" if ok is None else ("PASS" if ok else "FAIL")
            need = f"  (required: {req})" if req else ""
            lines.append(f"  {mark:4}  {figure:<{width}}  {value}{need}")
    lines.append("")
    lines.append("RESULT: " + ("all requirements hold" if passed(report) else "SOME REQUIREMENTS FAILED"))
    return "\n".join(lines)
