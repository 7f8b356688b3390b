"""xgrad vs PyTorch (eager) vs numpy, side by side in one process.

(a) per-op overhead: a chain of 100 elementwise ops on a 16-element float32
    tensor, forward only and forward+backward;
(b) one full-batch linear-regression training step: X 4096x64 float32, MSE,
    backward, SGD update.

Prints each time (microseconds per call, best of several repeats) and the
ratios peer/xgrad (> 1 means xgrad is faster).
"""

import numpy as np
from timing import torch_all_cores
torch = torch_all_cores()

import xgrad as xg
from timing import best_time as _best_seconds


# The chain: (name, xgrad op, torch op, numpy forward, numpy derivative given x and y)
CHAIN_OPS = [
    ("tanh", xg.tanh, torch.tanh, np.tanh, lambda x, y: 1 - y * y),
    ("mul", lambda v: v * 1.01, lambda v: v * 1.01, lambda v: v * np.float32(1.01), lambda x, y: np.float32(1.01)),
    ("sigmoid", xg.sigmoid, torch.sigmoid, lambda v: 1 / (1 + np.exp(-v)), lambda x, y: y * (1 - y)),
    ("add", lambda v: v + 0.1, lambda v: v + 0.1, lambda v: v + np.float32(0.1), lambda x, y: np.float32(1.0)),
]
CHAIN_LEN = 100


def best_time(fn):
    return _best_seconds(fn) * 1e6  # microseconds


def chain_ops():
    return [CHAIN_OPS[i % len(CHAIN_OPS)] for i in range(CHAIN_LEN)]


def bench_chain():
    X = np.linspace(-1, 1, 16, dtype=np.float32)
    ops = chain_ops()

    g = xg.Graph()
    x = g.input("x", (16,))
    y = x
    for _, f, *_ in ops:
        y = f(y)
    loss = xg.sum(y)
    fwd = g.compile(y)
    gx = xg.grad(loss, [x])[0]
    fwd_bwd = g.compile([loss, gx])

    xt = torch.from_numpy(X.copy())

    def torch_fwd():
        with torch.no_grad():
            v = xt
            for _, _, f, *_ in ops:
                v = f(v)
        return v

    xr = torch.from_numpy(X.copy()).requires_grad_(True)

    def torch_fwd_bwd():
        v = xr
        for _, _, f, *_ in ops:
            v = f(v)
        s = v.sum()
        xr.grad = None
        s.backward()
        return s

    def numpy_fwd():
        v = X
        for *_, f, _ in ops:
            v = f(v)
        return v

    def numpy_fwd_bwd():
        vals = [X]
        for *_, f, _ in ops:
            vals.append(f(vals[-1]))
        d = np.ones_like(X)
        for i in range(len(ops) - 1, -1, -1):
            d = d * ops[i][4](vals[i], vals[i + 1])
        return vals[-1].sum(), d

    # Same numbers from all three before timing anything.
    ref_y, ref_g = numpy_fwd_bwd()
    np.testing.assert_allclose(fwd(x=X), numpy_fwd(), rtol=1e-4)
    np.testing.assert_allclose(fwd_bwd(x=X)[1], ref_g, rtol=1e-3, atol=1e-6)
    torch_fwd_bwd()
    np.testing.assert_allclose(xr.grad.numpy(), ref_g, rtol=1e-3, atol=1e-6)

    return [
        ("chain of 100 ops, 16 floats, forward", lambda: fwd(x=X), torch_fwd, numpy_fwd),
        ("chain of 100 ops, 16 floats, forward+backward", lambda: fwd_bwd(x=X), torch_fwd_bwd, numpy_fwd_bwd),
    ]


def bench_linear_regression():
    rng = np.random.default_rng(0)
    n, p, lr = 4096, 64, 0.01
    X = rng.standard_normal((n, p)).astype(np.float32)
    T = (X @ rng.standard_normal((p, 1)) + 0.5).astype(np.float32)

    g = xg.Graph()
    x = g.input("x", (None, p))
    t = g.input("t", (None, 1))
    w = g.param("w", np.zeros((p, 1), np.float32))
    b = g.param("b", np.zeros((1,), np.float32))
    loss = xg.mean(xg.square(x @ w + b - t))
    step = g.compile(loss, updates=xg.optim.SGD([w, b], lr=lr).minimize(loss))  # the update runs in the program

    def xgrad_step():
        return step(x=X, t=T)

    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    wt = torch.zeros((p, 1), requires_grad=True)
    bt = torch.zeros((1,), requires_grad=True)

    def torch_step():
        l = ((Xt @ wt + bt - Tt) ** 2).mean()
        wt.grad = None
        bt.grad = None
        l.backward()
        with torch.no_grad():
            wt.sub_(lr * wt.grad)
            bt.sub_(lr * bt.grad)
        return l

    wn = np.zeros((p, 1), np.float32)
    bn = np.zeros((1,), np.float32)

    def numpy_step():
        r = X @ wn + bn - T
        l = np.mean(r * r)
        dr = (2.0 / r.size) * r
        wn[...] -= lr * (X.T @ dr)
        bn[...] -= lr * dr.sum(0)
        return l

    for _ in range(3):  # the three agree step by step
        a, c, d = float(xgrad_step()), float(torch_step()), float(numpy_step())
        assert abs(a - c) <= 1e-4 * abs(c) and abs(a - d) <= 1e-4 * abs(d), (a, c, d)
    return [("linear regression step, X 4096x64, MSE+backward+SGD", xgrad_step, torch_step, numpy_step)]


def main():
    print(f"xgrad {xg.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    rows = bench_chain() + bench_linear_regression()
    print(f"\n{'benchmark':<52} {'xgrad us':>10} {'torch us':>10} {'numpy us':>10} {'torch/xgrad':>12} {'numpy/xgrad':>12}")
    for name, fx, ft, fn in rows:
        tx, tt, tn = best_time(fx), best_time(ft), best_time(fn)
        print(f"{name:<52} {tx:10.1f} {tt:10.1f} {tn:10.1f} {tt / tx:11.2f}x {tn / tx:11.2f}x")


if __name__ == "__main__":
    main()
