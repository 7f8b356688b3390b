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


def torch_all_cores():
    """torch, set to use every core. Debian's PyTorch 1.13 starts with one thread, and it does so by setting the
    process's OpenMP thread count, which would also hold oneDNN (xgrad's float32 GEMM) to one thread in the same
    process. Both peers get every core."""
    import os
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    return torch
