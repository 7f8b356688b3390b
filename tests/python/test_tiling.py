"""Tiled execution of elementwise chains: same results as op-by-op, whatever the chain reads and returns."""
import os

import numpy as np
import pytest

import xgrad as xg


def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_a_long_chain_over_a_large_array_runs_tiled_and_matches_numpy():
    n = 4096 * 9 + 123  # a partial last tile
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal(n), rng.standard_normal(n)
    g = xg.Graph()
    a, b = g.input("a", (n,), dtype=np.float64), g.input("b", (n,), dtype=np.float64)
    s = g.input("s", (), dtype=np.float64)
    h = xg.tanh(a * s + b)
    mid = xg.where(h > 0.1, h, b * 0.5)  # an output taken from the middle of the chain
    y = xg.sigmoid(mid) * xg.exp(-xg.square(a)) + xg.maximum(a, b) - xg.sum(b)  # sum: a non-elementwise step
    prog = g.compile([y, mid, h > 0])
    out_y, out_mid, out_mask = prog(a=A, b=B, s=np.float64(0.7))
    assert "tiled group:" in str(prog)
    H = np.tanh(A * 0.7 + B)
    MID = np.where(H > 0.1, H, B * 0.5)
    np.testing.assert_allclose(out_mid, MID, rtol=1e-14)
    np.testing.assert_array_equal(out_mask, H > 0)
    np.testing.assert_allclose(out_y, _sig(MID) * np.exp(-A ** 2) + np.maximum(A, B) - B.sum(), rtol=1e-12)


def test_tiled_training_step_matches_untiled_arithmetic():
    # Adam on a 300x200 weight: the update chain is one tiled group; compare with numpy step by step.
    rng = np.random.default_rng(1)
    X, T = rng.standard_normal((50, 300)), rng.standard_normal((50, 200))
    W = rng.standard_normal((300, 200)) * 0.1
    g = xg.Graph()
    x, t = g.input("x", (None, 300), dtype=np.float64), g.input("t", (None, 200), dtype=np.float64)
    w = g.param("w", W)
    loss = xg.mean(xg.square(x @ w - t))
    step = g.compile(loss, updates=xg.optim.Adam([w], lr=0.01))
    m, v, Wn = np.zeros_like(W), np.zeros_like(W), W.copy()
    for k in range(1, 4):
        step(x=X, t=T)
        grad = 2 * X.T @ (X @ Wn - T) / T.size
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad ** 2
        Wn = Wn - 0.01 / (1 - 0.9 ** k) * m / (np.sqrt(v) / np.sqrt(1 - 0.999 ** k) + 1e-8)
        np.testing.assert_allclose(w.value, Wn, rtol=1e-10, atol=1e-13)
    assert "tiled group:" in str(step)


def test_size_one_inputs_of_higher_rank_in_a_long_chain():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((128, 128))
    g = xg.Graph()
    x = g.input("x", (128, 128), dtype=np.float64)
    m = xg.max(x, axis=(0, 1), keepdims=True)  # shape (1, 1)
    y = xg.where(x > m * 0.5, x, 0.0) * m + 1.0
    np.testing.assert_allclose(g.compile(y)(x=X), np.where(X > X.max() * 0.5, X, 0.0) * X.max() + 1.0, rtol=1e-14)


def test_in_place_update_is_not_used_when_a_group_member_reads_one_element_of_the_param():
    n = 20000
    g = xg.Graph()
    p = g.param("p", np.arange(n, dtype=np.float64) + 1.0)
    q = g.param("q", np.ones(n))
    c = g.input("c", (n,), dtype=np.float64)
    first = p[0:1]  # one element of p, read whole by every tile
    step = g.compile(updates=[(q, q * first), (p, p - c)])
    step(c=np.full(n, 0.5))
    np.testing.assert_array_equal(q.value, np.ones(n))  # old p[0] == 1.0 everywhere, not the new 0.5
    np.testing.assert_array_equal(p.value, np.arange(n) + 0.5)


def test_a_failed_plan_leaves_the_program_printable_and_params_untouched():
    g = xg.Graph()
    w = g.param("w", np.ones(3))
    x = g.input("x", (None, 3), dtype=np.float64)
    step = g.compile(xg.max(x, axis=0), updates={w: w * 2.0})
    with pytest.raises(ValueError, match="empty axis"):
        step(x=np.zeros((0, 3)))
    assert "Program" in str(step)
    np.testing.assert_array_equal(w.value, np.ones(3))


def test_attributes_that_differ_past_six_digits_are_not_merged():
    g = xg.Graph()
    x = g.input("x", (3,), dtype=np.float64)
    y = xg.pow(x, 0.1234567) - xg.pow(x, 0.1234568)
    X = np.array([2.0, 3.0, 5.0])
    np.testing.assert_allclose(g.compile(y)(x=X), X ** 0.1234567 - X ** 0.1234568, rtol=1e-9)


def test_tiled_groups_split_across_threads_stay_correct_under_concurrent_runs():
    import threading
    n = 4096 * 40 + 7  # enough tiles for the group to be split across the pool's threads
    rng = np.random.default_rng(3)
    A = rng.standard_normal(n)
    g = xg.Graph()
    a = g.input("a", (n,), dtype=np.float64)
    y = xg.exp(-xg.square(a)) * xg.tanh(a * 3.0) + xg.sigmoid(a) - 0.5
    prog = g.compile(y)
    expected = np.exp(-A ** 2) * np.tanh(A * 3.0) + _sig(A) - 0.5
    errors = []

    def worker(seed):
        local = A * (1 + seed * 0.0)  # each thread feeds its own array
        for _ in range(20):
            out = prog(a=local)
            if not np.allclose(out, expected, rtol=1e-12, atol=0):
                errors.append(seed)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_lone_large_elementwise_op_splits_across_threads_and_returns_fresh_outputs():
    n = 4096 * 256 * 2 + 17  # above the lone-step threshold (1M elements), with a partial last tile
    X = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    g = xg.Graph()
    x = g.input("x", (n,))
    prog = g.compile(xg.neg(x))
    first = prog(x=X)
    second = prog(x=X * 2)
    if (os.cpu_count() or 1) > 1:  # the thread pool has workers
        assert "tiled group: neg" in str(prog)
    np.testing.assert_array_equal(first, -X)  # the second run wrote elsewhere: a held output is never reused
    np.testing.assert_array_equal(second, -2 * X)
    assert not np.shares_memory(first, second)
    del first
    third = prog(x=X)  # the released block may come back, with the new results in it
    np.testing.assert_array_equal(third, -X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiled_span_kernels_match_the_untiled_kernels_bit_for_bit(dtype):
    # Scalars on either side, params, a partial last tile: the tiled group (span kernels on raw tile pointers)
    # against the same expression on a small array, which runs op by op through the Tensor kernels.
    def build(n):
        g = xg.Graph()
        x = g.input("x", (n,), dtype=dtype)
        s = g.input("s", (), dtype=dtype)
        y = xg.sigmoid(2.0 / (x + 3.0)) - s * xg.tanh(x) + xg.maximum(0.25, x) ** 2 - xg.leaky_relu(-x, 0.1)
        return g.compile(y)
    n = 4096 * 70 + 5
    X = np.random.default_rng(3).standard_normal(n).astype(dtype)
    s = dtype(0.75)
    big = build(n)
    tiled = big(x=X, s=s)
    assert "tiled group:" in str(big)
    m = 1024  # a whole number of SIMD batches (AVX2 or AVX-512), so the small run has no scalar tail
    small = build(m)
    for start in (0, 4096 * 33 + 17, n - 5 - m):  # both vectorized throughout: bit for bit
        np.testing.assert_array_equal(tiled[start:start + m], small(x=X[start:start + m], s=s))
    # The last 5 elements are a partial SIMD batch in the tiled run (scalar libm math) but not in the small one.
    np.testing.assert_allclose(tiled[-m:], small(x=X[-m:], s=s), rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("n", [1000, 4096 * 20 + 3])  # op by op, and tiled
def test_comparisons_and_where_with_whole_and_single_element_operands(n):
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal(n), rng.standard_normal(n)
    g = xg.Graph()
    a, b = g.input("a", (n,), dtype=np.float64), g.input("b", (n,), dtype=np.float64)
    s = g.input("s", (1,), dtype=np.float64)
    c = g.input("c", (), dtype=np.bool_)
    outs = [xg.where(a > 0, b, 0.0), xg.where(a < s, 1.5, b), xg.where(c, a, b), xg.where(0.25 >= a, a, b * 2),
            xg.where(a != b, s, a)]
    got = g.compile(outs)(a=A, b=B, s=np.array([0.5]), c=np.array(False))
    want = [np.where(A > 0, B, 0.0), np.where(A < 0.5, 1.5, B), B, np.where(0.25 >= A, A, B * 2),
            np.where(A != B, 0.5, A)]
    for x, y in zip(got, want):
        np.testing.assert_array_equal(x, y)
