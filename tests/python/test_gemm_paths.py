"""float32 matrix products run on oneDNN's sgemm (when xgrad was built with it), float64 on OpenBLAS's dgemm: both
against a float64 numpy reference over the shapes each library special-cases (vectors, empty and thin matrices,
transposed and strided views, broadcast batches), and print(program) names the library behind each product."""
import numpy as np
import pytest

import xgrad as xg

GEMM_SHAPES = [  # (a shape, b shape, transpose a's last two axes, transpose b's)
    ((128, 784), (784, 512), False, False),
    ((784, 128), (784, 512), True, False),   # the weight gradient's xᵀ·dy
    ((128, 512), (256, 512), False, True),   # dy·wᵀ
    ((4096, 64), (64, 1), False, False),     # n = 1
    ((1, 64), (64, 300), False, False),      # m = 1
    ((7, 0), (0, 5), False, False),          # k = 0: zeros
    ((0, 3), (3, 4), False, False),          # m = 0
    ((3, 5, 6), (6, 2), False, False),       # a batch against one matrix
    ((2, 1, 4, 6), (3, 6, 5), False, False),  # broadcast batches
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape,b_shape,ta,tb", GEMM_SHAPES)
def test_matmul_matches_a_float64_reference(dtype, a_shape, b_shape, ta, tb):
    rng = np.random.default_rng(0)
    A = rng.standard_normal(a_shape).astype(dtype)
    B = rng.standard_normal(b_shape).astype(dtype)
    g = xg.Graph()
    a = g.input("a", A.shape, dtype=dtype)
    b = g.input("b", B.shape, dtype=dtype)
    swap = lambda v: v.transpose(*range(len(v.shape) - 2), len(v.shape) - 1, len(v.shape) - 2)
    prog = g.compile((swap(a) if ta else a) @ (swap(b) if tb else b))
    An, Bn = (np.swapaxes(A, -1, -2) if ta else A), (np.swapaxes(B, -1, -2) if tb else B)
    want = An.astype(np.float64) @ Bn.astype(np.float64)
    got = prog(a=A, b=B)
    assert got.dtype == dtype and got.shape == want.shape
    k = An.shape[-1]
    tol = (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(max(k, 1))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    library = "[OpenBLAS dgemm]" if dtype == np.float64 else ("[oneDNN sgemm]", "[OpenBLAS sgemm]")
    if 1 in want.shape[-2:]:
        library = "[xgrad gemv]"  # one row or column: xgrad's matrix-vector kernels (test_gemv.py)
    text = next(line for line in str(prog).splitlines() if "= matmul(" in line)
    assert (library in text) if isinstance(library, str) else any(lib in text for lib in library), text


def test_print_names_the_kernel_for_dynamic_batches():
    g = xg.Graph()
    x = g.input("x", (None, 64))
    w = g.param("w", np.zeros((64, 32), np.float32))
    v = g.param("v", np.zeros((64, 1), np.float32))
    text = str(g.compile([x @ w, x @ v]))
    assert "sgemm, xgrad gemv at one row]" in text and "[xgrad gemv]" in text, text


def test_strided_operands_are_read_in_place_or_packed_correctly():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((40, 30)).astype(np.float32)
    B = rng.standard_normal((60, 20)).astype(np.float32)
    g = xg.Graph()
    a, b = g.input("a", A.shape), g.input("b", B.shape)
    prog = g.compile(a[::2, 1:26] @ b[5:30, ::-1])  # every other row; reversed columns (packed once)
    np.testing.assert_allclose(prog(a=A, b=B), A[::2, 1:26].astype(np.float64) @ B[5:30, ::-1], rtol=1e-5, atol=1e-5)


def test_float32_gradients_through_the_gemm_library_match_float64():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((64, 33))
    W = rng.standard_normal((33, 17))
    out = {}
    for dtype in (np.float32, np.float64):
        g = xg.Graph()
        x = g.input("x", (None, 33), dtype=dtype)
        w = g.param("w", W.astype(dtype))
        loss = xg.sum(xg.tanh(x @ w) ** 2)
        out[dtype] = g.compile(xg.grad(loss, [w]))(x=X.astype(dtype))[0]
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-4, atol=1e-4)
