"""Matrix-vector products (one row or one column) run xgrad's own kernels (ops/gemv.cpp): a dot product per row,
or rows scaled into register accumulators, split across threads for large matrices. Every layout that reaches
them, sizes that hit each block width and tail, strided vector operands and the split paths, in float32 and
float64, against a float64 numpy reference."""
import numpy as np
import pytest

import xgrad as xg

# (a shape, b shape, transpose a, transpose b): a @ b with m == 1 or n == 1
LAYOUTS = [
    ((37, 53), (53, 1), False, False),    # row-major A times a column: a dot per row
    ((53, 37), (53, 1), True, False),     # Aᵀ (stored row-major) times a column: rows scaled and summed
    ((1, 53), (53, 37), False, False),    # a row times B: rows of B scaled and summed
    ((1, 53), (37, 53), False, True),     # a row times Bᵀ: a dot per row of B
    ((1, 9), (9, 1), False, False),       # a dot product
]
# the column counts of the axpy path: every vector block (8, 4, 2, 1 vectors of 16 or 8 lanes) and the tail
WIDTHS = [1, 3, 8, 15, 16, 17, 31, 32, 33, 64, 100, 127, 128, 129, 200, 255, 256, 300]


def check(A, B, ta=False, tb=False, rtol=None):
    dtype = A.dtype
    g = xg.Graph()
    a = g.input("a", A.shape, dtype=dtype)
    b = g.input("b", B.shape, dtype=dtype)
    got = g.compile((a.T if ta else a) @ (b.T if tb else b))(a=A, b=B)
    An, Bn = (A.T if ta else A), (B.T if tb else B)
    want = An.astype(np.float64) @ Bn.astype(np.float64)
    tol = rtol or (1e-5 if dtype == np.float32 else 1e-12) * np.sqrt(An.shape[-1])
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape,b_shape,ta,tb", LAYOUTS)
def test_every_layout(dtype, a_shape, b_shape, ta, tb):
    rng = np.random.default_rng(0)
    check(rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype), ta, tb)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", WIDTHS)
def test_every_block_width_and_tail(dtype, width):
    rng = np.random.default_rng(width)
    rows = 21  # odd: the even/odd accumulator sets end on a lone row
    check(rng.standard_normal((1, rows)).astype(dtype), rng.standard_normal((rows, width)).astype(dtype))  # x @ W
    check(rng.standard_normal((rows, width)).astype(dtype), rng.standard_normal((rows, 1)).astype(dtype), ta=True)  # Xᵀ r
    check(rng.standard_normal((width, rows)).astype(dtype), rng.standard_normal((rows, 1)).astype(dtype))  # X w (dot rows)
    check(rng.standard_normal((rows, width)).astype(dtype), rng.standard_normal((width, 1)).astype(dtype))  # a block of rows + tail rows


def test_strided_vectors_and_matrix_views():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((50, 40)).astype(np.float32)
    V = rng.standard_normal((40, 7)).astype(np.float32)
    g = xg.Graph()
    a, v = g.input("a", A.shape), g.input("v", V.shape)
    prog = g.compile([a @ v[:, 3:4], v[:, 2:3].T @ a.T, a[::3, 5:] @ v[5:, 6:7], a[1:2, ::2] @ v[::2, 1:5]])
    got = prog(a=A, v=V)
    A64, V64 = A.astype(np.float64), V.astype(np.float64)
    wants = [A64 @ V64[:, 3:4], V64[:, 2:3].T @ A64.T, A64[::3, 5:] @ V64[5:, 6:7], A64[1:2, ::2] @ V64[::2, 1:5]]
    for g_, w in zip(got, wants):
        np.testing.assert_allclose(g_, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_matrices_split_across_threads(dtype):
    rng = np.random.default_rng(4)
    # over the 256 KiB split threshold: rows split (dot), columns split (wide axpy), rows split with partial sums
    # (tall and narrow axpy: the gradient Xᵀ r of a regression)
    check(rng.standard_normal((1500, 700)).astype(dtype), rng.standard_normal((700, 1)).astype(dtype))
    check(rng.standard_normal((1, 700)).astype(dtype), rng.standard_normal((700, 1500)).astype(dtype))
    check(rng.standard_normal((70001, 16)).astype(dtype), rng.standard_normal((70001, 1)).astype(dtype), ta=True,
          rtol=1e-3 if dtype == np.float32 else 1e-10)


def test_regression_gradient_through_the_vector_kernels_matches_float64():
    rng = np.random.default_rng(5)
    X, T = rng.standard_normal((333, 19)), rng.standard_normal((333, 1))
    out = {}
    for dtype in (np.float32, np.float64):
        g = xg.Graph()
        x, t = g.input("x", (None, 19), dtype=dtype), g.input("t", (None, 1), dtype=dtype)
        w = g.param("w", np.linspace(-1, 1, 19).reshape(19, 1).astype(dtype))
        out[dtype] = g.compile(xg.grad(xg.mean(xg.square(x @ w - t)), [w]))(x=X.astype(dtype), t=T.astype(dtype))[0]
    np.testing.assert_allclose(out[np.float32], out[np.float64], rtol=1e-5, atol=1e-5)
    w64 = np.linspace(-1, 1, 19).reshape(19, 1)
    np.testing.assert_allclose(out[np.float64], 2 * X.T @ (X @ w64 - T) / 333, rtol=1e-12)
