"""The steering data vocabulary shared by every reader: one labelled frame, a data set, fault reasons.

Standard library only. The readers (:mod:`edgecnn.data.tub`, :mod:`edgecnn.data.steering_csv`) build these;
:mod:`edgecnn.data.steering` detects the layout and splits by time.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SteeringSample:
    """One labelled frame.

    Attributes:
        path: absolute path of the image file (any format OpenCV decodes).
        steering: float in [-1, 1], positive = right.
        throttle: float in [-1, 1] or None when the data set has no throttle.
    """

    path: str
    steering: float
    throttle: float | None = None

    def to_entry(self) -> list:
        """``[abs_path, steering, throttle_or_None]``, the run folder's ``split.json`` entry for steering."""
        return [self.path, self.steering, self.throttle]


@dataclass(frozen=True)
class SteeringDataset:
    """A validated steering data set.

    Attributes:
        root: the path that was loaded (absolute).
        kind: ``"tub"`` or ``"csv"``.
        samples: the usable samples, in time order (tub index order; CSV row order), tub after tub.
        faults: ``{reason: count}`` of records that were skipped (missing image, bad JSON line, out-of-range or
            NaN angle, deleted index, ...); empty when everything was usable.
        sources: the tub folders or CSV files that were read.
    """

    root: str
    kind: str
    samples: tuple[SteeringSample, ...]
    faults: dict[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    @property
    def has_throttle(self) -> bool:
        """Every sample has a throttle value."""
        return bool(self.samples) and all(s.throttle is not None for s in self.samples)

    def fault_summary(self) -> str:
        """One line such as ``"skipped 3 records: 2 missing image, 1 bad JSON line"`` (empty when none)."""
        total = sum(self.faults.values())
        if not total:
            return ""
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.faults.items(), key=lambda kv: -kv[1]))
        return f"skipped {total} record{'s' if total != 1 else ''}: {parts}"


# Fault reasons, shared by the readers so that summaries add up across tubs and layouts.
MISSING_IMAGE = "missing image"
BAD_JSON = "bad JSON line"
BAD_ANGLE = "out-of-range or NaN angle"
BAD_THROTTLE = "out-of-range or NaN throttle"
DELETED = "deleted index"
BAD_ROW = "malformed CSV row"


def check_unit(value: object) -> float | None:
    """``value`` as a float when it is a finite number in [-1, 1], else None (bools are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v) or v < -1.0 or v > 1.0:
        return None
    return v


def merge_faults(*counters: dict[str, int]) -> dict[str, int]:
    """Add several ``{reason: count}`` dicts."""
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(total)
