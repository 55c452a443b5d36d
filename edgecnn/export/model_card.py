"""``model_card.json``: what a device bundle holds, how it was made and how well it does."""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("edgecnn", "tensorflow", "keras", "ai-edge-litert", "numpy", "opencv-python-headless", "tflite-micro")


@dataclass(frozen=True)
class ModelCard:
    """The model card of an exported bundle.

    Attributes:
        architecture, task: from the run's contract.
        precision: read back from the exported model (never from its name).
        input: ``{"height", "width", "channels", "color_order", "mean", "std", "resize", "crop", "source_size",
            "dtype", "scale", "zero_point"}`` (``crop``: ``[top, bottom]`` rows removed before resizing, in rows of
            ``source_size`` frames when it is known; ``[]`` for none; see :class:`edgecnn.contract.Contract`).
        labels: class names (classify).
        files: ``{name: {"bytes", "sha256"}}`` for every file of the bundle except the card itself.
        sizes: ``{precision: bytes}`` of each exported .tflite (and the float reference ``fp32_reference``).
        calibration: ``{"path", "sha256", "count"}``; the calibration set is disjoint from the test split.
        metrics: test-split metrics, ``{"float_keras": {...}, "<file>.tflite": {...}}``; accuracy is a fraction,
            MAE in steering units.
        parity: Keras versus fp32 TFLite max abs output difference, int8 versus float top-1 agreement, ...
        reports: extra checks (Edge TPU readiness, TFLite Micro check).
        warnings: what training warned about the data and the trained model (``metrics.json["warnings"]``: too
            few images per class, classes missing from a split, a test set too small to measure, no better
            than chance or the predict-the-mean baseline); empty when it had nothing to say.
        versions, git_commit, created: provenance (UTC ISO 8601 date).
    """

    architecture: str
    task: str
    precision: str
    input: dict[str, Any]
    labels: list[str]
    files: dict[str, dict[str, Any]]
    sizes: dict[str, int]
    calibration: dict[str, Any]
    metrics: dict[str, Any]
    parity: dict[str, Any]
    reports: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    created: str = ""
    format_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_warnings(metrics: dict[str, Any]) -> list[str]:
    """The warnings training wrote into a run's ``metrics.json`` (its ``"warnings"`` list of strings), as the
    model card and the compare report carry them; ``[]`` when there are none (or the entry is not a list)."""
    found = metrics.get("warnings") if isinstance(metrics, dict) else None
    if not isinstance(found, (list, tuple)):
        return []
    return [str(w) for w in found if str(w).strip()]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_table(folder: Path, exclude: tuple[str, ...] = ("model_card.json",)) -> dict[str, dict[str, Any]]:
    """``{relative name: {"bytes", "sha256"}}`` for every file below ``folder``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in exclude:
            out[p.relative_to(folder).as_posix()] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def versions() -> dict[str, str]:
    """Installed versions of the libraries that shaped the model, and Python's."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The commit of the edgecnn checkout (``+dirty`` when it has uncommitted changes), or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
