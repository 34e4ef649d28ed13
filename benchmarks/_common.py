"""Helpers shared by the benchmark scripts: timing with warm-up and interleaving, and the closing JSON line."""

from __future__ import annotations

import json
import time
from collections.abc import Callable


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median seconds per call of each function, calls interleaved so drifting load hits all of them alike.

    ``clock=time.thread_time`` measures the CPU time of the calling thread, which holds up on a loaded machine for
    single-threaded work (with ``torch.set_num_threads(1)``).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
    return {name: sorted(s)[len(s) // 2] for name, s in samples.items()}


def emit(figures: dict) -> None:
    """Print the one closing line of JSON that holds the headline figures."""
    print(json.dumps(figures, sort_keys=True))
