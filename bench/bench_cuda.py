"""GPU: a 4096x4096 float32 matmul (xgrad vs raw cuBLAS through ctypes vs PyTorch CUDA) and an MLP training step
(784-512-256-10, Adam, batch 4096: xgrad vs PyTorch CUDA), in one process on one GPU.

Without a GPU (or a CUDA build) it says why and exits 0. PyTorch's columns need a CUDA build of PyTorch; Debian's
python3-torch is CPU-only, and then the script says so and times xgrad and raw cuBLAS alone.
"""
import ctypes
import sys

import numpy as np

import xgrad as xg
from timing import best_time

N = 4096


def load(names):
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class RawCublas:
    """cublasSgemm on device buffers, through ctypes: the floor xgrad's matmul is measured against."""

    def __init__(self, a, b):
        self.cudart = load(["libcudart.so.13", "libcudart.so", "/usr/local/cuda/lib64/libcudart.so"])
        self.cublas = load(["libcublas.so.13", "libcublas.so", "/usr/local/cuda/lib64/libcublas.so"])
        if self.cudart is None or self.cublas is None:
            raise RuntimeError("libcudart / libcublas not found")
        n = a.shape[0]
        self.n, self.bytes = n, a.nbytes
        self.ptrs = []
        for host in (a, b, None):
            p = ctypes.c_void_p()
            assert self.cudart.cudaMalloc(ctypes.byref(p), ctypes.c_size_t(self.bytes)) == 0
            if host is not None:
                assert self.cudart.cudaMemcpy(p, host.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(self.bytes), 1) == 0
            self.ptrs.append(p)
        self.handle = ctypes.c_void_p()
        assert self.cublas.cublasCreate_v2(ctypes.byref(self.handle)) == 0
        self.one, self.zero = ctypes.c_float(1.0), ctypes.c_float(0.0)

    def run(self):
        a, b, c = self.ptrs
        n = ctypes.c_int(self.n)
        # Row-major C = A B is column-major C^T = B^T A^T: B first, no transposes.
        assert self.cublas.cublasSgemm_v2(self.handle, 0, 0, n, n, n, ctypes.byref(self.one), b, n, a, n,
                                          ctypes.byref(self.zero), c, n) == 0
        assert self.cudart.cudaDeviceSynchronize() == 0

    def result(self):
        out = np.empty((self.n, self.n), np.float32)
        assert self.cudart.cudaMemcpy(out.ctypes.data_as(ctypes.c_void_p), self.ptrs[2], ctypes.c_size_t(self.bytes), 2) == 0
        return out

    def close(self):
        for p in self.ptrs:
            self.cudart.cudaFree(p)
        self.cublas.cublasDestroy_v2(self.handle)


def torch_cuda():
    try:
        import torch
    except ImportError:
        return None, "PyTorch is not installed"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA here (Debian's python3-torch is CPU-only)"
    return torch, None


def bench_matmul(torch):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((N, N), dtype=np.float32), rng.standard_normal((N, N), dtype=np.float32)
    g = xg.Graph()
    x, y = g.input("a", (N, N)), g.input("b", (N, N))
    prog = g.compile(x @ y, device="cuda")
    ta, tb = xg.tensor(a, device="cuda"), xg.tensor(b, device="cuda")

    def xgrad_matmul():
        prog.run_tensors(a=ta, b=tb)
        xg.cuda.synchronize()

    rows = {}
    rows["xgrad"] = best_time(xgrad_matmul)
    got = prog.run_tensors(a=ta, b=tb).numpy()
    sample = rng.integers(0, N, size=(64, 2))
    want = np.array([a[i].astype(np.float64) @ b[:, j] for i, j in sample])
    assert np.allclose(got[sample[:, 0], sample[:, 1]], want, rtol=1e-3, atol=1e-2), "xgrad's product is wrong"
    raw = RawCublas(a, b)
    try:
        rows["raw cublasSgemm"] = best_time(raw.run)
        assert np.allclose(raw.result(), got, rtol=1e-4, atol=1e-3), "raw cuBLAS and xgrad disagree"
    finally:
        raw.close()
    if torch is not None:
        da, db = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()

        def torch_matmul():
            da @ db
            torch.cuda.synchronize()

        rows["torch"] = best_time(torch_matmul)
    return rows


def bench_mlp(torch):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, 784), dtype=np.float32)
    T = rng.integers(0, 10, size=N)
    g = xg.Graph()
    x, t = g.input("x", (None, 784)), g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.Sequential(xg.nn.Linear(g, 784, 512, seed=0), xg.relu, xg.nn.Linear(g, 512, 256, seed=1), xg.relu,
                             xg.nn.Linear(g, 256, 10, seed=2))
    loss = xg.cross_entropy(model(x), t)
    step = g.compile(loss, updates=xg.optim.Adam(model.params, lr=1e-3), device="cuda")
    tx, tt = xg.tensor(X, device="cuda"), xg.tensor(T, device="cuda")
    rows = {"xgrad": best_time(lambda: step(x=tx, t=tt))}  # the loss comes back to the host: one sync per step
    if torch is not None:
        net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(),
                                  torch.nn.Linear(256, 10)).cuda()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        dx, dt = torch.from_numpy(X).cuda(), torch.from_numpy(T).cuda()

        def torch_step():
            opt.zero_grad()
            out = torch.nn.functional.cross_entropy(net(dx), dt)
            out.backward()
            opt.step()
            return out.item()

        rows["torch"] = best_time(torch_step)
    return rows


def main():
    if not xg.cuda.is_available():
        print(f"bench_cuda: skipped, {xg.cuda.why_unavailable()}")
        return 0
    if xg.cuda.is_emulated():
        print("bench_cuda: skipped, this xgrad runs CUDA on the CPU emulator (a test build): its times mean nothing")
        return 0
    torch, why_not = torch_cuda()
    print(f"xgrad {xg.__version__}, {xg.cuda.device_count()} CUDA device(s)")
    if why_not:
        print(f"note: {why_not}; its columns are left out")
    mm = bench_matmul(torch)
    flops = 2 * N ** 3
    print(f"\nmatmul {N}x{N} float32           ms     TFLOP/s   vs xgrad")
    for name, sec in mm.items():
        print(f"  {name:<28} {sec * 1e3:8.3f} {flops / sec / 1e12:9.1f}   {sec / mm['xgrad']:6.3f}x")
    print(f"  xgrad is {100 * (mm['xgrad'] / mm['raw cublasSgemm'] - 1):+.1f}% from raw cuBLAS (goal: within 5%)")
    mlp = bench_mlp(torch)
    print(f"\nMLP 784-512-256-10, Adam, batch {N}   ms per step   vs xgrad")
    for name, sec in mlp.items():
        print(f"  {name:<28} {sec * 1e3:8.3f}   {sec / mlp['xgrad']:6.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
