"""Timing for the bench: best of repeats, sides alternated, and a lap timer for its sections."""

from __future__ import annotations

import time

import torch


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()  # a forward returns before the GPU is done
        times.append(time.perf_counter() - t)
    return min(times)


def best_each(*fns, repeats: int) -> tuple[float, ...]:
    """Best-of-``repeats`` times of functions run in turn (a, b, a, b, …), so drifts in the
    machine's speed hit every side alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, kept in zip(fns, times):
            kept.append(best(fn, 1))
    return tuple(min(kept) for kept in times)


def laps(into: dict):
    """A lap timer: ``lap(name)`` records the wall time since the previous lap under ``name`` (to
    0.1 s), so the output shows where the bench's own minutes went, and returns it unrounded."""
    last = [time.perf_counter()]

    def lap(name: str) -> float:
        now = time.perf_counter()
        elapsed, last[0] = now - last[0], now
        into[name] = round(elapsed, 1)
        return elapsed

    return lap
