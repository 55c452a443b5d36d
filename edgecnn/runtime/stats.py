"""Per-stage latency statistics for a frame loop, warm-up excluded.

A loop records how long each stage took for each frame (``capture``, ``preprocess``, ``invoke``,
``postprocess``, or any names it likes) in milliseconds; :meth:`LatencyRecorder.summary` returns a frozen
:class:`RunStats` with p50/p90/p99 per stage over the frames after the warm-up. The first frames pay for lazy
allocation, cache misses and CPU frequency ramp-up, and would otherwise skew the tail.

Example::

    rec = LatencyRecorder(warmup=5)
    for frame in frames:
        rec.start_frame()
        rec.add("invoke", 1.8)
        rec.end_frame()
    print(rec.summary().format())
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def percentiles(samples: list[float] | np.ndarray, qs: tuple[float, ...] = (50, 90, 99)) -> tuple[float, ...]:
    """The ``qs`` percentiles (0..100) of ``samples``, linear interpolation between order statistics (numpy's
    default, as TensorFlow's benchmark_model reports them); zeros for no samples. The one percentile function
    of the runtime: loop statistics, ``benchmark`` and ``benchmarks/`` use it."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return tuple(0.0 for _ in qs)
    return tuple(float(v) for v in np.percentile(a, list(qs)))


@dataclass(frozen=True)
class StageStats:
    """Latency of one stage over the measured frames, all in milliseconds."""

    name: str
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, name: str, samples_ms: list[float] | np.ndarray) -> StageStats:
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.size == 0:
            return cls(name, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
        p50, p90, p99 = percentiles(a)
        return cls(name, int(a.size), float(a.mean()), p50, p90, p99, float(a.max()))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean_ms": round(self.mean_ms, 3), "p50_ms": round(self.p50_ms, 3),
                "p90_ms": round(self.p90_ms, 3), "p99_ms": round(self.p99_ms, 3), "max_ms": round(self.max_ms, 3)}


@dataclass(frozen=True)
class RunStats:
    """Summary of a frame loop.

    Attributes:
        frames: frames processed in total (warm-up included).
        warmup: leading frames excluded from the statistics.
        seconds: wall time from the first to the last measured frame (seconds).
        fps: measured frames per second of wall time (0 when fewer than 1 measured frame).
        frame_ms: wall time per measured frame, the loop's full period (includes waiting for the source).
        stages: per-stage statistics, in the order the stages were first recorded.
    """

    frames: int
    warmup: int
    seconds: float
    fps: float
    frame_ms: StageStats
    stages: tuple[StageStats, ...] = field(default=())

    def stage(self, name: str) -> StageStats | None:
        return next((s for s in self.stages if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "warmup": self.warmup, "seconds": round(self.seconds, 3),
                "fps": round(self.fps, 2), "frame": self.frame_ms.to_dict(),
                "stages": {s.name: s.to_dict() for s in self.stages}}

    def format(self) -> str:
        """A short human-readable table."""
        lines = [f"{self.frames} frames ({self.warmup} warm-up excluded), {self.fps:.1f} FPS, "
                 f"{self.frame_ms.mean_ms:.2f} ms/frame"]
        lines.append(f"  {'stage':<12}{'mean':>8}{'p50':>8}{'p90':>8}{'p99':>8}  (ms)")
        for s in (*self.stages, StageStats(**{**self.frame_ms.__dict__, "name": "frame"})):
            lines.append(f"  {s.name:<12}{s.mean_ms:8.2f}{s.p50_ms:8.2f}{s.p90_ms:8.2f}{s.p99_ms:8.2f}")
        return "\n".join(lines)


class LatencyRecorder:
    """Collects per-stage milliseconds per frame; not thread-safe (one loop owns it).

    ``warmup`` leading frames are excluded from the summary. A short run (fewer than ``2 * warmup`` frames,
    e.g. three images) excludes only its first frame, so that it still reports something.
    """

    def __init__(self, warmup: int = 5) -> None:
        if warmup < 0:
            raise ValueError("warmup must be >= 0")
        self.warmup = warmup
        self.frames = 0
        self._order: list[str] = []
        self._samples: list[dict[str, float]] = []  # one dict of stage -> ms per frame
        self._periods: list[tuple[float, float]] = []  # (start, end) perf_counter seconds per frame
        self._current: dict[str, float] = {}
        self._t0: float | None = None

    def start_frame(self) -> None:
        """Mark the start of a frame's period (call before waiting for the source)."""
        self._t0 = time.perf_counter()
        self._current = {}

    def add(self, stage: str, ms: float) -> None:
        """Record ``ms`` milliseconds for ``stage`` in the current frame (added up if recorded twice)."""
        if stage not in self._order:
            self._order.append(stage)
        self._current[stage] = self._current.get(stage, 0.0) + float(ms)

    def end_frame(self) -> None:
        """Close the current frame."""
        now = time.perf_counter()
        self._samples.append(self._current)
        self._periods.append((self._t0 if self._t0 is not None else now, now))
        self._current, self._t0 = {}, None
        self.frames += 1

    def add_frame(self, stages_ms: dict[str, float], start: float, end: float) -> None:
        """Record a whole frame at once: its stage milliseconds and its period (``time.perf_counter()`` seconds).

        For loops whose stages run on different threads (``steer``: inference on a worker, sending on the
        watchdog thread), where no single thread can bracket the frame with :meth:`start_frame`/:meth:`end_frame`.
        """
        for stage, ms in stages_ms.items():
            if stage not in self._order:
                self._order.append(stage)
        self._samples.append({k: float(v) for k, v in stages_ms.items()})
        self._periods.append((start, end))
        self.frames += 1

    def summary(self) -> RunStats:
        """Statistics over the frames after the warm-up."""
        n = self.frames
        skip = self.warmup if n >= 2 * self.warmup else min(1, max(n - 1, 0))
        samples, periods = self._samples[skip:], self._periods[skip:]
        seconds = periods[-1][1] - periods[0][0] if periods else 0.0
        return RunStats(
            frames=n,
            warmup=skip,
            seconds=seconds,
            fps=len(periods) / seconds if seconds > 0 else 0.0,
            frame_ms=StageStats.of("frame", [(b - a) * 1000.0 for a, b in periods]),
            stages=tuple(StageStats.of(name, [s[name] for s in samples if name in s]) for name in self._order),
        )
