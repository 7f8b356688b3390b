"""Large elementwise work, xgrad against numpy in the same run, float32, swept over 1M, 4M, 16M and 64M elements.

Both sides return a fresh output on every call, as a user gets from each (xgrad's Program output is a new array,
numpy's ufunc allocates one):
- neg(x) against np.negative(x): one read and one write pass; the goal is <= 1.2x numpy's time at every size
  (no cliff);
- tanh(a*x + b) as one xgrad graph (a tiled group: every tile goes through mul, add and tanh while in cache)
  against numpy's single np.tanh(x) (the goal: no slower) and numpy's naive np.tanh(a*x + b) (three passes and
  two temporaries; the goal: at most half its time).
Each row checks that the answers agree.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import best_time  # noqa: E402

import xgrad as xg  # noqa: E402

A, B = np.float32(1.5), np.float32(0.5)


def program(n, build):
    g = xg.Graph()
    x = g.input("x", (n,))
    return g.compile(build(x))


def main():
    print(f"xgrad {xg.__version__}, numpy {np.__version__}, {os.cpu_count()} cores; milliseconds per call")
    print(f"\n{'elements':>9} | {'neg':>7} {'np.neg':>7} {'ratio':>6} | {'fused':>7} {'np.tanh':>7} {'naive':>7} "
          f"{'vs tanh':>7} {'vs naive':>8}")
    for n in (1 << 20, 4 << 20, 16 << 20, 64 << 20):
        X = np.random.default_rng(0).uniform(-2, 2, n).astype(np.float32)
        neg = program(n, lambda x: -x)
        fused = program(n, lambda x: xg.tanh(x * float(A) + float(B)))
        np.testing.assert_array_equal(neg(x=X), np.negative(X))
        np.testing.assert_allclose(fused(x=X), np.tanh(A * X + B), rtol=2e-6, atol=2e-7)
        t_neg, t_npneg = best_time(lambda: neg(x=X)), best_time(lambda: np.negative(X))
        t_fused, t_tanh = best_time(lambda: fused(x=X)), best_time(lambda: np.tanh(X))
        t_naive = best_time(lambda: np.tanh(A * X + B))
        print(f"{n:>9} | {t_neg * 1e3:7.2f} {t_npneg * 1e3:7.2f} {t_neg / t_npneg:5.2f}x | {t_fused * 1e3:7.2f} "
              f"{t_tanh * 1e3:7.2f} {t_naive * 1e3:7.2f} {t_fused / t_tanh:6.2f}x {t_fused / t_naive:7.2f}x")
        del X, neg, fused
    print("\nratio = xgrad time / numpy time (lower is better); goals: neg <= 1.2x, fused vs tanh <= 1.0x, "
          "fused vs naive <= 0.5x")


if __name__ == "__main__":
    main()
