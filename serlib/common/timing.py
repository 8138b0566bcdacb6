"""Synchronised wall-clock timing (``serlib bench`` and the deployment table)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def time_pair(
    baseline: Callable[[], object], fast: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> tuple[float, float]:
    """Median seconds of two variants timed in alternation (so drifting machine load hits both alike)."""
    for _ in range(warmup):
        baseline(), fast()
    pairs = [(time_calls(baseline, device, 0, 1)[0], time_calls(fast, device, 0, 1)[0]) for _ in range(repeats)]
    return median([p[0] for p in pairs]), median([p[1] for p in pairs])


def median(times: list[float]) -> float:
    """The median of ``times`` as a float."""
    return float(statistics.median(times))
