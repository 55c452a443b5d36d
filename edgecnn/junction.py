"""What a navigation frame knows about the junction it is at: one record from the data to every metric.

``edgecnn data roads --networks`` writes these as columns of ``labels.csv``; training carries them into
``split.json``; the run reader, the export's score step and ``compare`` read them back, and
:func:`edgecnn.mixture.junction_metrics` scores a model with them. TensorFlow-free (the device side imports it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JunctionLabel:
    """A frame's junction annotation; the default is a frame on plain road.

    Attributes:
        kind: ``""`` on plain road, else the junction's kind (``"T"``, ``"cross"``, ``"fork"``) when the frame is
            in its zone.
        branch: the route's branch there (``"left"``, ``"straight"``, ``"right"``), ``""`` on plain road.
        options: the branches the junction offers (``"left|right"``), ``""`` on plain road.
        to_turn: metres of arc left to the junction's turn-in point (negative past it); None on plain road or in
            data written before the column existed.
        branch_steering: the labelling driver's steering from this pose for each of the junction's branches
            (``"left:-0.31|right:0.12"``, steering in [-1, 1], positive = right; :meth:`commands`), ``""`` on
            plain road or in older data.
    """

    kind: str = ""
    branch: str = ""
    options: str = ""
    to_turn: float | None = None
    branch_steering: str = ""

    def cells(self) -> list[Any]:
        """The split.json cells, in order: ``[kind, branch, options, to_turn, branch_steering]``."""
        return [self.kind, self.branch, self.options, self.to_turn, self.branch_steering]

    @classmethod
    def from_cells(cls, cells: Sequence[Any]) -> JunctionLabel:
        """The inverse of :meth:`cells`; rows written before a column existed may stop early. ValueError or
        TypeError for a ``to_turn`` that is not a number."""
        cells = list(cells) + [None] * (5 - len(cells))
        to_turn = float(cells[3]) if cells[3] is not None else None
        return cls(str(cells[0] or ""), str(cells[1] or ""), str(cells[2] or ""), to_turn, str(cells[4] or ""))

    @property
    def offered(self) -> set[str]:
        """The branches the junction offers (empty on plain road)."""
        return {b for b in self.options.split("|") if b}

    def commands(self) -> dict[str, float]:
        """``{"left": -0.31, "right": 0.12}`` from ``branch_steering``; ``{}`` when blank or malformed."""
        return parse_branch_steering(self.branch_steering)


ROAD = JunctionLabel()


def parse_branch_steering(text: str) -> dict[str, float]:
    """``{"left": -0.31, "right": 0.12}`` from a ``branch_steering`` cell (``"left:-0.31|right:0.12"``); ``{}``
    for a blank or malformed cell (older data, hand-edited files)."""
    out: dict[str, float] = {}
    for part in (text or "").split("|"):
        name, _, value = part.partition(":")
        try:
            v = float(value)
        except ValueError:
            return {}
        if not name.strip() or not math.isfinite(v):
            return {}
        out[name.strip()] = v
    return out
