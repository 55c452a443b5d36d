"""Rendering data sets in several processes, with the same files as in one.

The generators give every road (or network) its own random stream, so a piece of a data set can be rendered
anywhere once its frame indices are known. :func:`map_in_order` runs the pieces in spawned worker processes and
hands back their results in order, so the caller writes the same tables as a serial run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def map_in_order(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int,
                 on_result: Callable[[Any], None] | None = None) -> list[Any]:
    """``[fn(*task) for task in tasks]``, computed by ``min(workers, len(tasks))`` spawned processes (``fn``
    and the tasks must pickle), collected in task order; ``on_result`` is called with each result as it is
    collected. On an error or Ctrl-C the tasks not started are dropped and the running ones waited for, so no
    worker still writes into a folder the caller is about to remove; then the exception propagates."""
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of the caller's state
    pool = ProcessPoolExecutor(max(1, min(workers, len(tasks))), mp_context=ctx)
    results = []
    try:
        futures = [pool.submit(fn, *task) for task in tasks]
        for f in futures:
            results.append(f.result())
            if on_result:
                on_result(results[-1])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def render_pieces(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, total: int,
                  progress: Callable[[int, int], None] | None = None,
                  frames_of: Callable[[Any], int] = len) -> list[Any]:
    """``[fn(*task) for task in tasks]`` for a data set generator: in this process when ``workers`` is 1 (or
    there is one task), with ``fn``'s ``tick`` advancing ``progress(done, total)`` a frame at a time; else by
    :func:`map_in_order`, advancing by ``frames_of(result)`` as each piece arrives."""
    done = 0

    def advance(by: int) -> None:
        nonlocal done
        done += by
        if progress:
            progress(done, total)

    if workers == 1 or len(tasks) == 1:
        return [fn(*task, tick=lambda: advance(1)) for task in tasks]
    return map_in_order(fn, tasks, workers, lambda piece: advance(frames_of(piece)))
