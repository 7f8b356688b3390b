"""Timing shared by the benchmarks: the best of several repeats of a loop long enough to time."""
import time


def best_time(fn, min_seconds=0.3, repeats=5):
    """Seconds per call of fn: after a warm-up call (plans, caches), the best of `repeats` timed loops."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 > min_seconds / repeats:
            break
        n *= 2
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best
