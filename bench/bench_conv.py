"""conv2d, xgrad vs PyTorch (CPU, eager), in one process.

Batch 32 of 3x32x32 float32 inputs, 16 filters of 3x3, padding 1. Both
sides compute the same thing: y = conv2d(x, w), loss = sum(y * R) for a
fixed R, and the gradients of loss with respect to x and w. The results are
compared first; then each side is timed forward only and forward+backward
(best of several repeats), and the ratio torch/xgrad is printed (> 1 means
xgrad is faster).

    PYTHONPATH=python python3 bench/bench_conv.py [--batch 32] [--threads N]
"""
import argparse
import os

import numpy as np
from timing import torch_all_cores
torch = torch_all_cores()
import torch.nn.functional as F

import xgrad as xg
from timing import best_time as _best_seconds


def best_time(fn):
    return _best_seconds(fn) * 1e3  # milliseconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--filters", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: every core)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    n, c, s, co = args.batch, args.channels, args.size, args.filters
    X = rng.standard_normal((n, c, s, s)).astype(np.float32)
    W = (rng.standard_normal((co, c, 3, 3)) * 0.2).astype(np.float32)
    R = rng.standard_normal((n, co, s, s)).astype(np.float32)

    # xgrad: one program for forward, one for forward + backward.
    g = xg.Graph()
    x = g.input("x", (None, c, s, s))
    w = g.input("w", (co, c, 3, 3))
    y = xg.conv2d(x, w, padding=1)
    loss = xg.sum(y * g.const(R))
    gx, gw = xg.grad(loss, [x, w])
    fwd = g.compile(y)
    fwd_bwd = g.compile([y, gx, gw])

    # torch
    xt = torch.from_numpy(X.copy()).requires_grad_(True)
    wt = torch.from_numpy(W.copy()).requires_grad_(True)
    rt = torch.from_numpy(R)

    def torch_fwd():
        with torch.no_grad():
            return F.conv2d(xt, wt, padding=1)

    def torch_fwd_bwd():
        xt.grad = wt.grad = None
        out = F.conv2d(xt, wt, padding=1)
        (out * rt).sum().backward()
        return out, xt.grad, wt.grad

    # Agreement first.
    ours = fwd_bwd(x=X, w=W)
    theirs = [t.detach().numpy() for t in torch_fwd_bwd()]
    for name, a, b in zip(("y", "dx", "dw"), ours, theirs):
        err = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)
        assert err < 1e-4, f"{name}: xgrad and torch differ (max relative error {err:.2e})"
    np.testing.assert_allclose(fwd(x=X, w=W), theirs[0], rtol=1e-4, atol=1e-4)

    print(f"conv2d float32: x ({n}, {c}, {s}, {s}), w ({co}, {c}, 3, 3), padding 1; grads w.r.t. x and w")
    print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; cpus {os.cpu_count()}")
    print("results agree (max relative difference < 1e-4)")
    print(f"{'':18}{'xgrad ms':>10}{'torch ms':>10}{'torch/xgrad':>13}")
    for label, ours_fn, theirs_fn in (("forward", lambda: fwd(x=X, w=W), torch_fwd),
                                      ("forward+backward", lambda: fwd_bwd(x=X, w=W), torch_fwd_bwd)):
        t_ours, t_theirs = best_time(ours_fn), best_time(theirs_fn)
        print(f"{label:18}{t_ours:10.3f}{t_theirs:10.3f}{t_theirs / t_ours:13.2f}")


if __name__ == "__main__":
    main()
