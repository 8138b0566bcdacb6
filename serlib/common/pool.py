"""One ``map`` over worker processes with an in-process fallback (demo corpus, prosody).

``spawn`` workers, not ``fork``: a fork pool was seen to hang after all demo files were written
(threads of the parent's libraries holding locks in the child).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, Optional, Sequence


def default_workers() -> int:
    """``min(2, os.cpu_count())``: the machines this project targets have two cores."""
    return max(1, min(2, os.cpu_count() or 1))


def check_workers(workers: Optional[int], what: str) -> int:
    """``workers`` (None: ``default_workers()``) as an int; below 1 is a ValueError naming ``what``."""
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"{what}: workers must be >= 1, got {workers}")
    return workers


def process_map(
    fn: Callable,
    items: Sequence,
    *,
    extra: tuple = (),
    workers: int = 1,
    chunksize: int = 1,
    min_items: int = 2,
    initializer: Optional[Callable] = None,
    initargs: tuple = (),
    serial_initializer: Optional[Callable] = None,
    what: str = "work",
) -> Iterator:
    """``fn(item, *extra)`` for every item, yielded in order.

    Through a ``spawn`` pool of ``workers`` processes (``initializer(*initargs)`` in each) when
    ``workers > 1`` and there are at least ``min_items``; otherwise, and for whatever a pool that
    cannot start or breaks left undone (with a warning naming ``what``), in this process after
    ``serial_initializer()``. ``fn`` must be a module-level function and give the same result
    wherever it runs.
    """
    done = 0
    if workers > 1 and len(items) >= max(2, min_items):
        try:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                min(workers, len(items)), mp_context=context, initializer=initializer, initargs=initargs
            ) as pool:
                columns = [[value] * len(items) for value in extra]
                for result in pool.map(fn, items, *columns, chunksize=chunksize):
                    done += 1
                    yield result
        except (OSError, BrokenProcessPool) as err:
            warnings.warn(
                f"{what}: the pool of {workers} processes failed ({type(err).__name__}: {err}); "
                f"doing the remaining {len(items) - done} in this process",
                stacklevel=3,
            )
    if done < len(items) and serial_initializer is not None:
        serial_initializer()
    for item in items[done:]:
        yield fn(item, *extra)
