"""Training steps: xgrad vs PyTorch 1.13 vs numpy, side by side, and peak memory of the MLP run.

(a) MLP 784-512-256-10, ReLU, batch 128, cross-entropy, Adam: one training step;
(b) softmax regression 784 -> 10, batch 128, cross-entropy, SGD: one step;
(c) peak resident memory of a process that trains the MLP for a few steps, one
    process per framework (a fresh interpreter each, so the numbers compare).
"""
import subprocess
import sys

import numpy as np

import xgrad as xg
from timing import best_time as _best_seconds

# torch is imported where it is used, so the xgrad memory probe never loads it.


def best_time(fn):
    return _best_seconds(fn) * 1e3  # milliseconds


def data(batch=128, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, batch)


def weights(sizes, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((a, b)).astype(np.float32) * np.sqrt(2 / a), np.zeros(b, np.float32))
            for a, b in zip(sizes[:-1], sizes[1:])]


def xgrad_step(sizes, make_opt):
    g = xg.Graph()
    x = g.input("x", (None, sizes[0]))
    t = g.input("t", (None,), dtype=xg.int64)
    h, params = x, []
    for i, (W, B) in enumerate(weights(sizes)):
        w, b = g.param(f"w{i}", W), g.param(f"b{i}", B)
        params += [w, b]
        h = h @ w + b
        if i < len(sizes) - 2:
            h = xg.relu(h)
    loss = xg.cross_entropy(h, t)
    return g.compile(loss, updates=make_opt(params))


def torch_step(sizes, make_opt):
    from timing import torch_all_cores
    torch = torch_all_cores()
    layers = []
    for i, (W, B) in enumerate(weights(sizes)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))
            lin.bias.copy_(torch.from_numpy(B))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = make_opt(model.parameters())

    def step(X, T):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), T)
        loss.backward()
        opt.step()
        return loss
    return step


def numpy_mlp_adam_step(sizes, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """The MLP step written by hand in numpy: forward, backward, Adam."""
    params = [a for pair in weights(sizes) for a in pair]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]

    def step(X, T):
        acts, h = [X], X
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i < len(params) - 2:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(T)), T]).mean()
        d = p
        d[np.arange(len(T)), T] -= 1
        d /= len(T)
        grads = [None] * len(params)
        for i in range(len(params) - 2, -1, -2):
            grads[i], grads[i + 1] = acts[i // 2].T @ d, d.sum(0)
            if i > 0:
                d = (d @ params[i].T) * (acts[i // 2] > 0)
        t[0] += 1
        c1, c2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
        for p_, g_, m_, v_ in zip(params, grads, m, v):
            m_ *= b1
            m_ += (1 - b1) * g_
            v_ *= b2
            v_ += (1 - b2) * g_ * g_
            p_ -= (lr / c1) * m_ / (np.sqrt(v_) / np.sqrt(c2) + eps)
        return loss
    return step


def numpy_softmax_step(lr=0.1):
    (W, B), = weights([784, 10])

    def step(X, T):
        z = X @ W + B
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(T)), T]).mean()
        p[np.arange(len(T)), T] -= 1
        p /= len(T)
        W[...] -= lr * (X.T @ p)
        B[...] -= lr * p.sum(0)
        return loss
    return step


def high_water_mb():
    """Peak resident memory of this process (VmHWM is reset by exec, unlike ru_maxrss after fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory_mb(framework):
    # bench_train imports xgrad: the other frameworks' processes get a stand-in, so their numbers hold none of it.
    stub = "" if framework == "xgrad" else "import types; sys.modules['xgrad'] = types.ModuleType('xgrad')"
    code = f"""
import numpy as np, sys
sys.path[:0] = {sys.path!r}
{stub}
import bench_train as b
X, T = b.data()
if "{framework}" == "xgrad":
    import xgrad as xg
    step = b.xgrad_step([784, 512, 256, 10], lambda p: xg.optim.Adam(p, lr=1e-3))
    for _ in range(20): step(x=X, t=T)
elif "{framework}" == "numpy":
    step = b.numpy_mlp_adam_step([784, 512, 256, 10])
    for _ in range(20): step(X, T)
else:
    from timing import torch_all_cores
    torch = torch_all_cores()
    step = b.torch_step([784, 512, 256, 10], lambda p: torch.optim.Adam(p, lr=1e-3))
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    for _ in range(20): step(Xt, Tt)
print(b.high_water_mb())
"""
    baseline = f"""
import sys
sys.path[:0] = {sys.path!r}
{stub}
import bench_train as b
import {framework}
print(b.high_water_mb())
"""
    run = lambda c: float(subprocess.run([sys.executable, "-c", c], capture_output=True, text=True, check=True).stdout)
    return run(code), run(baseline)


def main():
    from timing import torch_all_cores
    torch = torch_all_cores()
    print(f"xgrad {xg.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}")
    X, T = data()
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    mlp = [784, 512, 256, 10]
    xs = xgrad_step(mlp, lambda p: xg.optim.Adam(p, lr=1e-3))
    ts = torch_step(mlp, lambda p: torch.optim.Adam(p, lr=1e-3))
    ns = numpy_mlp_adam_step(mlp)
    for _ in range(3):  # same losses step by step
        a, b, c = float(xs(x=X, t=T)), ts(Xt, Tt).item(), float(ns(X, T))
        assert abs(a - b) <= 1e-4 * abs(b) and abs(a - c) <= 1e-4 * abs(c), (a, b, c)
    rows = [("MLP 784-512-256-10, batch 128, Adam step", best_time(lambda: xs(x=X, t=T)), best_time(lambda: ts(Xt, Tt)),
             best_time(lambda: ns(X, T)))]
    xs = xgrad_step([784, 10], lambda p: xg.optim.SGD(p, lr=0.1))
    ts = torch_step([784, 10], lambda p: torch.optim.SGD(p, lr=0.1))
    ns = numpy_softmax_step()
    for _ in range(3):
        a, b, c = float(xs(x=X, t=T)), ts(Xt, Tt).item(), float(ns(X, T))
        assert abs(a - b) <= 1e-4 * abs(b) and abs(a - c) <= 1e-4 * abs(c), (a, b, c)
    rows.append(("softmax regression 784->10, batch 128, SGD step", best_time(lambda: xs(x=X, t=T)),
                 best_time(lambda: ts(Xt, Tt)), best_time(lambda: ns(X, T))))
    print(f"\n{'benchmark':<50} {'xgrad ms':>9} {'torch ms':>9} {'numpy ms':>9} {'torch/xgrad':>12}")
    for name, tx, tt, tn in rows:
        print(f"{name:<50} {tx:9.3f} {tt:9.3f} {'' if tn is None else f'{tn:9.3f}':>9} {tt / tx:11.2f}x")
    (mx, bx), (mt, bt) = peak_memory_mb("xgrad"), peak_memory_mb("torch")
    print(f"\npeak RSS training the MLP 20 steps: xgrad {mx:.0f} MB (import alone {bx:.0f} MB), "
          f"torch {mt:.0f} MB (import alone {bt:.0f} MB); above import: xgrad {mx - bx:.0f} MB, torch {mt - bt:.0f} MB")


if __name__ == "__main__":
    main()
