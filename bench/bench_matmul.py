"""matmul: xgrad vs raw OpenBLAS cblas_sgemm (through ctypes) vs numpy vs PyTorch, in one process.

The same OpenBLAS library serves xgrad and the raw call, so the ratio
raw/xgrad shows what xgrad's graph and program layers cost on top of BLAS.
"""
import ctypes
import ctypes.util
import numpy as np
from timing import best_time as _best_seconds, torch_all_cores
torch = torch_all_cores()

import xgrad as xg

CBLAS_ROW_MAJOR, CBLAS_NO_TRANS = 101, 111


def load_openblas():
    for name in ("libopenblas.so.0", "libopenblas.so", ctypes.util.find_library("openblas")):
        if name:
            try:
                lib = ctypes.CDLL(name)
                lib.cblas_sgemm  # noqa: B018 - presence check
                return lib
            except (OSError, AttributeError):
                continue
    raise RuntimeError("OpenBLAS not found")


def best_time(fn):
    return _best_seconds(fn) * 1e3  # milliseconds


def main():
    blas = load_openblas()
    sgemm = blas.cblas_sgemm
    sgemm.restype = None
    f = ctypes.c_float
    i = ctypes.c_int
    p = ctypes.c_void_p
    sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    print(f"torch threads {torch.get_num_threads()}")
    print(f"{'n':>6} {'xgrad ms':>10} {'sgemm ms':>10} {'numpy ms':>10} {'torch ms':>10} {'sgemm/xgrad':>12} {'torch/xgrad':>12} {'best/xgrad':>11}")
    for n in (256, 1024, 2048):
        rng = np.random.default_rng(n)
        A = rng.standard_normal((n, n)).astype(np.float32)
        B = rng.standard_normal((n, n)).astype(np.float32)
        C = np.empty((n, n), np.float32)
        g = xg.Graph()
        a, b = g.input("a", (n, n)), g.input("b", (n, n))
        prog = g.compile(a @ b)

        def raw():
            sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, n, n, n, 1.0, A.ctypes.data, n, B.ctypes.data, n, 0.0,
                  C.ctypes.data, n)

        raw()
        np.testing.assert_allclose(prog(a=A, b=B), C, rtol=1e-3, atol=1e-2)
        ta, tb = torch.from_numpy(A), torch.from_numpy(B)
        tx = best_time(lambda: prog(a=A, b=B))
        tr = best_time(raw)
        tn = best_time(lambda: A @ B)
        tt = best_time(lambda: ta @ tb)
        print(f"{n:>6} {tx:10.2f} {tr:10.2f} {tn:10.2f} {tt:10.2f} {tr / tx:11.3f}x {tt / tx:11.2f}x {min(tr, tt) / tx:10.2f}x")


if __name__ == "__main__":
    main()
