"""Publish a finished pipeline as a reference bundle: ``firmware_models/NAME`` plus ``calibration/NAME``.

``python -m edgecnn.pipeline.publish runs/reference-classify firmware_models/shapes_compact calibration/shapes64``
copies the exported bundle (model, contract inside, labels, model card), its comparison report and the calibration
set it was built from, and points the card at the published calibration set. Both folders are staged and swapped
in whole. Used by ``make reference-models``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from edgecnn.atomic import staged_dir
from edgecnn.compare.compare import CompareReport, Row
from edgecnn.compare.report import write_report
from edgecnn.errors import EdgecnnError
from edgecnn.pipeline.stages import Paths


def _relative(path: str) -> str:
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def _write_report(report: dict, out: Path) -> None:
    fields = {k: v for k, v in report.items() if k != "rows"}
    fields["notes"] = tuple(fields.get("notes", ()))
    write_report(CompareReport(rows=tuple(Row(**r) for r in report["rows"]), **fields), out)


def publish(pipeline_dir: str | Path, bundle_dest: str | Path, calibration_dest: str | Path) -> None:
    """Copy the bundle, report and calibration set of ``pipeline_dir`` to the two destinations."""
    paths = Paths(Path(pipeline_dir))
    for need in (paths.bundle / "model_card.json", paths.compare / "report.json", paths.calibration / "MANIFEST.json"):
        if not need.is_file():
            raise EdgecnnError(f"{need} is missing; run `edgecnn pipeline` to completion first")
    calibration_dest = Path(calibration_dest)
    with staged_dir(calibration_dest, overwrite=True) as tmp:
        shutil.copytree(paths.calibration, tmp, dirs_exist_ok=True)
        # provenance relative to the repository (`make reference-models` rebuilds it there), not this machine;
        # the set's sha256 covers its arrays, not these paths
        manifest = json.loads((tmp / "MANIFEST.json").read_text())
        for key in ("path", "data_root"):
            if manifest.get("source", {}).get(key):
                manifest["source"][key] = _relative(manifest["source"][key])
        (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    with staged_dir(Path(bundle_dest), overwrite=True) as tmp:
        shutil.copytree(paths.bundle, tmp, dirs_exist_ok=True)
        (tmp / "compare").mkdir()
        report = json.loads((paths.compare / "report.json").read_text())
        # the variants live in the pipeline folder; the report keeps their names and figures, not this machine's
        # paths
        for row in report["rows"]:
            row["path"] = Path(row["path"]).name
        report["run"] = _relative(report["run"])
        report["test"]["source"] = report["test"]["source"].replace(str(Path.cwd().resolve()) + "/", "")
        if report["test"].get("calibration"):
            report["test"]["calibration"] = _relative(str(calibration_dest))
        _write_report(report, tmp / "compare")
        card_path = tmp / "model_card.json"
        card = json.loads(card_path.read_text())
        card["calibration"]["path"] = _relative(str(calibration_dest))
        card_path.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m edgecnn.pipeline.publish PIPELINE_DIR BUNDLE_DEST CALIBRATION_DEST")
    try:
        publish(*sys.argv[1:])
    except EdgecnnError as exc:
        sys.exit(f"Error: {exc}")
