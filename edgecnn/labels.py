"""Label files: the Coral convention (``0 label`` per line) and plain one-label-per-line files.

Standard library only (device side).
"""

from __future__ import annotations

import re
from pathlib import Path

from edgecnn.errors import DataError

_CORAL_LINE = re.compile(r"^\s*(\d+)[\s:]+(.+?)\s*$")


def format_labels(labels: list[str] | tuple[str, ...]) -> str:
    """Coral ``labels.txt`` text: ``"0 cat\\n1 dog\\n"``."""
    return "".join(f"{i} {name}\n" for i, name in enumerate(labels))


def parse_labels(text: str) -> dict[int, str]:
    """Parse either convention into ``{index: label}``.

    Coral files number every line (``index label``); otherwise the line number is the index (as in
    ImageNet's ``imagenet_labels.txt`` where line 0 is ``background``). Blank lines count as indexes only in
    the plain convention, so that line numbers stay class indexes.
    """
    lines = text.splitlines()
    nonblank = [ln for ln in lines if ln.strip()]
    if not nonblank:
        raise DataError("label file is empty")
    matches = [_CORAL_LINE.match(ln) for ln in nonblank]
    if all(matches):
        return {int(m.group(1)): m.group(2) for m in matches}  # type: ignore[union-attr]
    return {i: ln.strip() for i, ln in enumerate(lines) if ln.strip()}


def read_labels(path: str | Path) -> dict[int, str]:
    """Read a label file; DataError when it is missing or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read labels file {path}: {exc}") from exc
    try:
        return parse_labels(text)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
