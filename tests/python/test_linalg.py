"""The linalg op family (xg.linalg): forward parity with numpy.linalg in float32
and float64 (also with a symbolic None first dim), float64 finite-difference
gradients and second-order checks through the optable harness; then the
closed-form least-squares fit through cholesky on sklearn's diabetes data,
gradients against torch.linalg, and error reporting.

Inputs are well conditioned by construction: general matrices are diagonally
dominant, symmetric positive definite ones are built inside the case from a
free input as m @ m.T + n I, so finite differences of the gradient see a
smooth function of every input element.
"""
import threading

import numpy as np
import pytest

import xgrad as xg
from optable import Case, table_tests

la = xg.linalg
_rng = np.random.default_rng(20240611)


# ---------------------------------------------------------------------------
# inputs and references
# ---------------------------------------------------------------------------

def _free(*shape):
    return _rng.uniform(-1.0, 1.0, size=shape)


def _wellcond(*shape, negate_row=False):
    """Diagonally dominant (..., n, n): every singular value well away from zero."""
    n = shape[-1]
    a = _rng.uniform(-1.0, 1.0, size=shape) + n * np.eye(n)
    if negate_row:  # a negative determinant
        a[..., 0, :] *= -1
    return a


def _pivoting(*shape, negate_row=False):
    """Well conditioned, with the rows of a diagonally dominant matrix rotated: LU must interchange rows."""
    return np.roll(_wellcond(*shape, negate_row=negate_row), 1, axis=-2)


def _spd(m):
    """m @ m.T + n I as a node, from a free (..., n, n) or (n, n) input."""
    n = m.shape[-1]
    return m @ la.matrix_transpose(m) + m.graph.const(np.eye(n, dtype=m.dtype)) * float(n)


def _spd_np(m):
    n = m.shape[-1]
    return m @ np.swapaxes(m, -1, -2) + n * np.eye(n)


def _solve_np(a, b):
    """numpy 2's solve: only a 1-D b is a vector; batches broadcast."""
    if b.ndim == 1:
        return _solve_np(a, b[:, None])[..., 0]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return np.linalg.solve(np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:]))


def _lstsq_np(a, b):
    if b.ndim == 1:
        return _lstsq_np(a, b[:, None])[..., 0]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.empty(batch + (a.shape[-1], b.shape[-1]))
    for idx in np.ndindex(batch):
        out[idx] = np.linalg.lstsq(a[idx], b[idx], rcond=None)[0]
    return out


def _tri_np(a, lower, unit):
    t = np.tril(a) if lower else np.triu(a)
    if unit:
        n = a.shape[-1]
        t = t * (1 - np.eye(n)) + np.eye(n)
    return t


def _trisolve_np(lower=True, transpose=False, unit=False):
    def ref(a, b):
        t = _tri_np(a, lower, unit)
        return _solve_np(np.swapaxes(t, -1, -2) if transpose else t, b)
    return ref


def _trisolve(lower=True, transpose=False, unit=False):
    return lambda a, b: la.triangular_solve(a, b, lower=lower, transpose=transpose, unitriangular=unit)


def _normal_equations_fit(X, y):
    """The headline: w from the Cholesky factor of X^T X, two triangular solves."""
    L = la.cholesky(X.T @ X)
    return la.triangular_solve(L.T, la.triangular_solve(L, X.T @ y, lower=True), lower=False)


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

CASES = [
    # ---- tril / triu (triu is a composite: tril between two transpose views) ----
    Case("tril", "tril", la.tril, np.tril, [_free(4, 4)], second_order="loose"),
    Case("tril-k1", "tril", lambda x: la.tril(x, 1), lambda x: np.tril(x, 1), [_free(3, 4)]),
    Case("tril-km1-batched", "tril", lambda x: la.tril(x, k=-1), lambda x: np.tril(x, -1), [_free(2, 4, 3)],
         second_order="loose"),
    Case("triu", "tril", la.triu, np.triu, [_free(4, 4)], extra_ops=("transpose",), second_order="loose"),
    Case("triu-k1-wide", "tril", lambda x: la.triu(x, 1), lambda x: np.triu(x, 1), [_free(3, 5)]),
    Case("tril-of-view", "tril", lambda x: la.tril(la.matrix_transpose(x)), lambda x: np.tril(x.T), [_free(3, 4)]),
    Case("matrix-transpose-batched", "transpose", la.matrix_transpose, lambda x: np.swapaxes(x, -1, -2),
         [_free(2, 3, 4)]),
    # ---- cholesky: symmetric positive definite inputs built from a free m ----
    Case("cholesky", "cholesky", lambda m: la.cholesky(_spd(m)), lambda m: np.linalg.cholesky(_spd_np(m)),
         [_free(3, 3)], second_order="strict"),
    Case("cholesky-4x4", "cholesky", lambda m: la.cholesky(_spd(m)), lambda m: np.linalg.cholesky(_spd_np(m)),
         [_free(4, 4)]),
    Case("cholesky-batched", "cholesky", lambda m: la.cholesky(_spd(m)), lambda m: np.linalg.cholesky(_spd_np(m)),
         [_free(2, 3, 3)], second_order="strict"),
    Case("cholesky-solve", "triangular_solve", lambda m, b: la.cholesky_solve(la.cholesky(_spd(m)), b),
         lambda m, b: np.linalg.solve(_spd_np(m), b), [_free(3, 3), _free(3, 2)], extra_ops=("cholesky",),
         second_order="loose"),
    # the closed-form least-squares fit of the docs, checked against numpy.linalg.lstsq
    Case("cholesky-normal-equations", "cholesky", _normal_equations_fit,
         lambda X, y: np.linalg.lstsq(X, y, rcond=None)[0], [_free(8, 3), _free(8)],
         extra_ops=("triangular_solve", "matmul"), second_order="loose"),
    # ---- solve ----
    Case("solve", "solve", la.solve, _solve_np, [_wellcond(3, 3), _free(3, 2)], second_order="strict"),
    Case("solve-vector", "solve", la.solve, _solve_np, [_wellcond(3, 3), _free(3)], extra_ops=("unsqueeze", "squeeze"),
         second_order="loose"),
    Case("solve-batched", "solve", la.solve, _solve_np, [_wellcond(2, 3, 3), _free(2, 3, 2)], second_order="loose"),
    Case("solve-batch-broadcast-b", "solve", la.solve, _solve_np, [_wellcond(2, 3, 3), _free(3, 2)],
         second_order="loose"),
    Case("solve-batch-broadcast-both", "solve", la.solve, _solve_np, [_wellcond(2, 1, 3, 3), _free(4, 3, 1)]),
    Case("solve-batched-vector", "solve", la.solve, _solve_np, [_wellcond(2, 3, 3), _free(3)]),
    Case("solve-transposed-views", "solve", lambda a, b: la.solve(a.T, b.T), lambda a, b: np.linalg.solve(a.T, b.T),
         [_wellcond(3, 3), _free(2, 3)], second_order="loose"),
    Case("solve-pivoting", "solve", la.solve, _solve_np, [_pivoting(2, 4, 4), _free(2, 4, 3)], second_order="loose"),
    Case("solve-array-rhs", "solve", lambda a: la.solve(a, np.array([1.0, -2.0, 0.5])),
         lambda a: np.linalg.solve(a, np.array([1.0, -2.0, 0.5])), [_wellcond(3, 3)]),
    # ---- triangular_solve: only one triangle of a is read, so a is a full random matrix ----
    Case("trisolve-lower", "triangular_solve", _trisolve(), _trisolve_np(), [_wellcond(3, 3), _free(3, 2)],
         second_order="strict"),
    Case("trisolve-lower-transpose", "triangular_solve", _trisolve(True, True), _trisolve_np(True, True),
         [_wellcond(3, 3), _free(3, 2)], second_order="loose"),
    Case("trisolve-upper", "triangular_solve", _trisolve(False), _trisolve_np(False), [_wellcond(3, 3), _free(3, 2)],
         second_order="loose"),
    Case("trisolve-upper-transpose", "triangular_solve", _trisolve(False, True), _trisolve_np(False, True),
         [_wellcond(3, 3), _free(3, 2)], second_order="loose"),
    Case("trisolve-unit-lower", "triangular_solve", _trisolve(True, False, True), _trisolve_np(True, False, True),
         [_free(3, 3), _free(3, 2)], second_order="loose"),
    Case("trisolve-unit-upper-transpose", "triangular_solve", _trisolve(False, True, True),
         _trisolve_np(False, True, True), [_free(3, 3), _free(3, 2)], second_order="loose"),
    Case("trisolve-vector", "triangular_solve", _trisolve(), _trisolve_np(), [_wellcond(3, 3), _free(3)],
         second_order="loose"),
    Case("trisolve-batched-broadcast", "triangular_solve", _trisolve(False), _trisolve_np(False),
         [_wellcond(2, 3, 3), _free(3, 2)], second_order="loose"),
    Case("trisolve-transposed-view", "triangular_solve", lambda a, b: la.triangular_solve(a.T, b, lower=False),
         lambda a, b: np.linalg.solve(np.triu(a.T), b), [_wellcond(3, 3), _free(3, 2)]),
    # ---- inv ----
    Case("inv", "inv", la.inv, np.linalg.inv, [_wellcond(3, 3)], second_order="strict"),
    Case("inv-batched", "inv", la.inv, np.linalg.inv, [_wellcond(2, 3, 3)], second_order="strict"),
    Case("inv-transposed-view", "inv", lambda a: la.inv(a.T), lambda a: np.linalg.inv(a.T), [_wellcond(4, 4)]),
    Case("inv-pivoting", "inv", la.inv, np.linalg.inv, [_pivoting(4, 4)], second_order="strict"),
    # batch axis in the middle of the storage: matrices and batch both strided
    Case("inv-permuted-batch-view", "inv", lambda x: la.inv(xg.transpose(x, (1, 0, 2))),
         lambda x: np.linalg.inv(x.transpose(1, 0, 2)), [_pivoting(2, 3, 3).transpose(1, 0, 2).copy()],
         second_order="loose"),
    Case("inv-spd", "inv", lambda m: la.inv(_spd(m)), lambda m: np.linalg.inv(_spd_np(m)), [_free(3, 3)]),
    # ---- lstsq (m >= n, full column rank) ----
    Case("lstsq", "lstsq", la.lstsq, _lstsq_np, [_free(5, 3), _free(5, 2)], second_order="loose"),
    Case("lstsq-vector", "lstsq", la.lstsq, _lstsq_np, [_free(6, 2), _free(6)], second_order="loose"),
    Case("lstsq-square", "lstsq", la.lstsq, _lstsq_np, [_wellcond(3, 3), _free(3, 2)]),
    Case("lstsq-batched", "lstsq", la.lstsq, _lstsq_np, [_free(2, 5, 3), _free(5, 1)], second_order="loose"),
    # ---- determinants ----
    Case("det", "det", la.det, np.linalg.det, [_wellcond(3, 3)], second_order="strict"),
    Case("det-negative", "det", la.det, np.linalg.det, [_wellcond(3, 3, negate_row=True)], second_order="strict"),
    Case("det-batched", "det", la.det, np.linalg.det, [_wellcond(2, 3, 3)], second_order="loose"),
    Case("det-1x1", "det", la.det, np.linalg.det, [_wellcond(1, 1)]),
    Case("det-pivoting", "det", la.det, np.linalg.det, [_pivoting(3, 3)], second_order="strict"),
    Case("det-pivoting-4x4-batched", "det", la.det, np.linalg.det, [_pivoting(2, 4, 4, negate_row=True)],
         second_order="loose"),
    Case("slogdet-logabsdet", "logabsdet", lambda a: la.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1],
         [_wellcond(3, 3, negate_row=True)], second_order="strict"),
    Case("slogdet-logabsdet-batched", "logabsdet", lambda a: la.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1],
         [_wellcond(2, 4, 4)], second_order="loose"),
    Case("slogdet-sign", "det_sign", lambda a: la.slogdet(a)[0], lambda a: np.linalg.slogdet(a)[0],
         [_wellcond(3, 3, negate_row=True)]),
    Case("slogdet-sign-batched", "det_sign", lambda a: la.slogdet(a)[0], lambda a: np.linalg.slogdet(a)[0],
         [np.stack([_wellcond(3, 3), _wellcond(3, 3, negate_row=True), _pivoting(3, 3), _pivoting(3, 3, negate_row=True),
                    _pivoting(3, 3)[..., [1, 0, 2], :]])]),
    Case("slogdet-logabsdet-pivoting", "logabsdet", lambda a: la.slogdet(a)[1], lambda a: np.linalg.slogdet(a)[1],
         [_pivoting(2, 4, 4)], second_order="loose"),
]

globals().update(table_tests(CASES))


# ---------------------------------------------------------------------------
# the headline: closed-form least squares through cholesky on real data
# ---------------------------------------------------------------------------

def _diabetes():
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True)
    return np.hstack([X, np.ones((X.shape[0], 1))]), y  # with an intercept column


def test_cholesky_normal_equations_match_numpy_lstsq_on_diabetes():
    X, y = _diabetes()
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    g = xg.Graph()
    Xn = g.input("X", (None, X.shape[1]), dtype=np.float64)
    yn = g.input("y", (None,), dtype=np.float64)
    w = _normal_equations_fit(Xn, yn)
    assert w.shape == (X.shape[1],)
    fit = g.compile([w, la.lstsq(Xn, yn)])
    w_chol, w_lstsq = fit(X=X, y=y)
    np.testing.assert_allclose(w_chol, expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(w_lstsq, expected, rtol=1e-10, atol=1e-10)
    # the same program on a subset of the rows (the symbolic batch dimension)
    w_half, _ = fit(X=X[::2], y=y[::2])
    np.testing.assert_allclose(w_half, np.linalg.lstsq(X[::2], y[::2], rcond=None)[0], rtol=1e-9, atol=1e-9)


def test_cholesky_normal_equations_on_diabetes_float32():
    X, y = _diabetes()
    expected = np.linalg.lstsq(X, y, rcond=None)[0]
    g = xg.Graph()
    Xn = g.input("X", (None, X.shape[1]), dtype=np.float32)
    yn = g.input("y", (None, 1), dtype=np.float32)
    w = g.compile(_normal_equations_fit(Xn, yn))(X=X.astype(np.float32), y=y[:, None].astype(np.float32))
    assert w.dtype == np.float32 and w.shape == (X.shape[1], 1)
    # The normal equations square X's condition number (cond(X) ~ 230): float32 keeps about four
    # significant digits of the largest weights (|w| up to ~800).
    np.testing.assert_allclose(w[:, 0], expected, rtol=1e-3, atol=0.1)


def test_closed_form_fit_gradient_zeroes_the_training_loss_gradient():
    # w* minimizes |X w - y|^2, so the loss gradient at w* (through a param copy of it) vanishes,
    # and d(loss at w*)/dy = 2 (y - X w*) (envelope theorem) through the whole Cholesky route.
    X, y = _diabetes()
    g = xg.Graph()
    Xn = g.input("X", X.shape, dtype=np.float64)
    yn = g.input("y", y.shape, dtype=np.float64)
    w = _normal_equations_fit(Xn, yn)
    loss = xg.sum(xg.square(Xn @ w - yn))
    (gy,) = xg.grad(loss, [yn])
    w_val, gy_val = g.compile([w, gy])(X=X, y=y)
    np.testing.assert_allclose(gy_val, 2 * (y - X @ w_val), rtol=1e-7, atol=1e-6)


# ---------------------------------------------------------------------------
# gradients against torch.linalg
# ---------------------------------------------------------------------------

def _torch_grads(fn, arrays, R):
    import torch  # a test dependency (Debian python3-torch), installed by `make test`
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(torch, *ts)
    (out * torch.tensor(R)).sum().backward()
    return [t.grad.numpy() for t in ts]


def _xg_grads(fn, arrays, R):
    g = xg.Graph()
    nodes = [g.input(f"x{i}", a.shape, dtype=np.float64) for i, a in enumerate(arrays)]
    out = fn(*nodes)
    grads = xg.grad(xg.sum(out * g.const(R)), nodes)
    return g.compile(grads)(**{f"x{i}": a for i, a in enumerate(arrays)})


_TORCH_PAIRS = {
    # cholesky straight on a symmetric input: both use the symmetric gradient convention
    "cholesky": (la.cholesky, lambda t, a: t.linalg.cholesky(a), [_spd_np(_free(2, 4, 4))]),
    "solve": (la.solve, lambda t, a, b: t.linalg.solve(a, b), [_wellcond(2, 3, 3), _free(3, 2)]),
    "triangular_solve-upper-unit": (_trisolve(False, False, True),
                                    lambda t, a, b: t.linalg.solve_triangular(a, b, upper=True, unitriangular=True),
                                    [_free(4, 4), _free(4, 2)]),
    "triangular_solve-lower-transpose": (_trisolve(True, True),
                                         lambda t, a, b: t.linalg.solve_triangular(t.tril(a).mT, b, upper=True),
                                         [_wellcond(3, 3), _free(3, 2)]),
    "inv": (la.inv, lambda t, a: t.linalg.inv(a), [_pivoting(2, 3, 3)]),
    "det": (la.det, lambda t, a: t.linalg.det(a), [_pivoting(2, 3, 3, negate_row=True)]),
    "logabsdet": (lambda a: la.slogdet(a)[1], lambda t, a: t.linalg.slogdet(a)[1], [_wellcond(3, 3, negate_row=True)]),
    "lstsq": (la.lstsq, lambda t, a, b: t.linalg.lstsq(a, b).solution, [_free(6, 3), _free(6, 2)]),
}


@pytest.mark.parametrize("name", sorted(_TORCH_PAIRS))
def test_gradient_matches_torch(name):
    fn, torch_fn, arrays = _TORCH_PAIRS[name]
    out_shape = np.asarray(_xg_forward(fn, arrays)).shape
    R = np.random.default_rng(5).standard_normal(out_shape)
    for ours, theirs in zip(_xg_grads(fn, arrays, R), _torch_grads(torch_fn, arrays, R)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-11)


def _xg_forward(fn, arrays):
    g = xg.Graph()
    nodes = [g.input(f"x{i}", a.shape, dtype=np.float64) for i, a in enumerate(arrays)]
    return g.compile(fn(*nodes))(**{f"x{i}": a for i, a in enumerate(arrays)})


# ---------------------------------------------------------------------------
# semantics beyond the table
# ---------------------------------------------------------------------------

def _run(fn, *arrays, dtype=np.float64):
    g = xg.Graph()
    nodes = [g.input(f"x{i}", a.shape, dtype=dtype) for i, a in enumerate(arrays)]
    out = fn(*nodes)
    outs = list(out) if isinstance(out, tuple) else out
    return g.compile(outs)(**{f"x{i}": np.asarray(a, dtype) for i, a in enumerate(arrays)})


def test_cholesky_reads_only_the_lower_triangle():
    A = _spd_np(_free(4, 4))
    junk = np.tril(A) + np.triu(_free(4, 4) * 100, 1)
    np.testing.assert_allclose(_run(la.cholesky, junk), np.linalg.cholesky(A), rtol=1e-12)


def test_cholesky_gradient_is_symmetric():
    A = _spd_np(_free(3, 3))
    (gA,) = _xg_grads(la.cholesky, [A], _free(3, 3))
    np.testing.assert_allclose(gA, gA.T, rtol=1e-12, atol=1e-14)


def test_triangular_solve_ignores_the_other_triangle_and_gives_it_no_gradient():
    A, B = _wellcond(3, 3), _free(3, 2)
    lower_only = np.tril(A) + np.triu(np.full((3, 3), 7.0), 1)
    np.testing.assert_allclose(_run(_trisolve(), lower_only, B), np.linalg.solve(np.tril(A), B), rtol=1e-12)
    gA, _ = _xg_grads(_trisolve(), [A, B], _free(3, 2))
    assert np.all(np.triu(gA, 1) == 0)
    gA_unit, _ = _xg_grads(_trisolve(True, False, True), [A, B], _free(3, 2))
    assert np.all(np.triu(gA_unit) == 0)


def test_slogdet_and_det_of_a_singular_matrix_follow_numpy():
    S = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    d, sign, logabs = _run(lambda a: (la.det(a),) + la.slogdet(a), S)
    assert d == 0.0 and sign == 0.0 and logabs == -np.inf
    np.testing.assert_array_equal([sign, logabs], np.linalg.slogdet(S))


def test_det_of_a_large_matrix_matches_slogdet():
    A = _pivoting(30, 30, negate_row=True)
    d, sign, logabs = _run(lambda a: (la.det(a),) + la.slogdet(a), A)
    np.testing.assert_allclose(d, np.linalg.det(A), rtol=1e-10)
    np.testing.assert_allclose(sign * np.exp(logabs), d, rtol=1e-10)


def test_empty_batch_and_empty_matrices():
    out = _run(lambda a: (la.inv(a), la.det(a), la.cholesky(a)), np.zeros((0, 3, 3)))
    assert [o.shape for o in out] == [(0, 3, 3), (0,), (0, 3, 3)]
    inv0, det0 = _run(lambda a: (la.inv(a), la.det(a)), np.zeros((0, 0)))
    assert inv0.shape == (0, 0) and det0 == 1.0  # numpy: det of a 0 x 0 matrix is 1


def test_programs_rerun_with_other_sizes_and_from_threads():
    # Kernels keep per-thread scratch buffers: growing, shrinking and concurrent runs must not mix them up.
    g = xg.Graph()
    a = g.input("a", (None, None), dtype=np.float64)
    b = g.input("b", (None, 2), dtype=np.float64)
    prog = g.compile([la.solve(a, b), la.cholesky(a @ a.T + a.T @ a), la.det(a)])
    sizes = [5, 2, 9, 3, 1, 7] * 4
    problems = [(_pivoting(n, n), _free(n, 2)) for n in sizes]

    def check(A, B):
        x, L, d = prog(a=A, b=B)
        np.testing.assert_allclose(x, np.linalg.solve(A, B), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(L, np.linalg.cholesky(A @ A.T + A.T @ A), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d, np.linalg.det(A), rtol=1e-10)

    for A, B in problems:
        check(A, B)
    errors = []

    def worker(chunk):
        try:
            for _ in range(5):
                for A, B in chunk:
                    check(A, B)
        except Exception as e:  # surfaced below: pytest does not see other threads' failures
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(problems[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def _compiled(fn, *shapes, dtype=np.float64):
    g = xg.Graph()
    nodes = [g.input(f"x{i}", s, dtype=dtype) for i, s in enumerate(shapes)]
    return g.compile(fn(*nodes))


@pytest.mark.parametrize("batched", [False, True])
def test_cholesky_of_a_matrix_that_is_not_positive_definite(batched):
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    A = np.stack([np.eye(2), bad]) if batched else bad
    with pytest.raises(ValueError) as info:
        _compiled(la.cholesky, A.shape)(x0=A)
    msg = str(info.value)
    assert "'cholesky'" in msg and "not positive definite" in msg and "order 2" in msg
    if batched:
        assert "matrix (1,) of the batch" in msg


@pytest.mark.parametrize("name,fn,shapes", [
    ("solve", la.solve, [(3, 3), (3, 2)]),
    ("inv", la.inv, [(3, 3)]),
    ("solve", lambda a: la.solve(a, np.ones(3)), [(3, 3)]),
])
def test_singular_matrix_raises(name, fn, shapes):
    S = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    feeds = [S] + [np.ones(s) for s in shapes[1:]]
    with pytest.raises(ValueError) as info:
        _compiled(fn, *shapes)(**{f"x{i}": f for i, f in enumerate(feeds)})
    assert f"'{name}'" in str(info.value) and "singular" in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triangular_solve_with_a_zero_on_the_diagonal_raises(dtype):
    A = np.array([[2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 3.0]])
    with pytest.raises(ValueError, match=r"'triangular_solve'.*singular.*\(1, 1\) is zero"):
        _compiled(la.triangular_solve, (3, 3), (3, 1), dtype=dtype)(x0=A.astype(dtype), x1=np.ones((3, 1), dtype))
    # a unit diagonal is never read, so the same matrix is fine then
    out = _compiled(lambda a, b: la.triangular_solve(a, b, unitriangular=True), (3, 3), (3, 1))(x0=A, x1=np.ones((3, 1)))
    np.testing.assert_allclose(out, np.linalg.solve(np.tril(A, -1) + np.eye(3), np.ones((3, 1))), rtol=1e-12)


def test_lstsq_of_a_rank_deficient_matrix_raises():
    A = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
    with pytest.raises(ValueError, match=r"'lstsq'.*rank-deficient.*rank 1 < 2"):
        _compiled(la.lstsq, (3, 2), (3, 1))(x0=A, x1=np.ones((3, 1)))


def test_det_gradient_of_a_singular_matrix_raises_in_inv():
    g = xg.Graph()
    a = g.input("a", (2, 2), dtype=np.float64)
    (ga,) = xg.grad(la.det(a), [a])
    with pytest.raises(ValueError, match="'inv'.*singular"):
        g.compile(ga)(a=np.array([[1.0, 2.0], [2.0, 4.0]]))


@pytest.mark.parametrize("name,fn", [("cholesky", la.cholesky), ("inv", la.inv), ("det", la.det),
                                     ("logabsdet", lambda a: la.slogdet(a)[1])])
def test_non_square_matrix_is_refused_when_building(name, fn):
    g = xg.Graph()
    a = g.input("a", (2, 3, 4), dtype=np.float64)
    with pytest.raises(ValueError) as info:
        fn(a)
    msg = str(info.value)
    assert f"'{name}'" in msg and "square" in msg and "(2, 3, 4)" in msg


@pytest.mark.parametrize("name,fn", [("solve", la.solve), ("triangular_solve", la.triangular_solve),
                                     ("lstsq", la.lstsq)])
def test_rows_of_b_must_match_a(name, fn):
    g = xg.Graph()
    a = g.input("a", (3, 3), dtype=np.float64)
    b = g.input("b", (4, 2), dtype=np.float64)
    with pytest.raises(ValueError) as info:
        fn(a, b)
    msg = str(info.value)
    assert f"'{name}'" in msg and "(3, 3)" in msg and "(4, 2)" in msg and "rows" in msg


def test_solve_b_must_be_a_matrix_or_vector_and_batches_must_broadcast():
    g = xg.Graph()
    a = g.input("a", (2, 3, 3), dtype=np.float64)
    with pytest.raises(ValueError, match=r"'solve'.*batch dimensions of \(2, 3, 3\) and \(4, 3, 1\) do not broadcast"):
        la.solve(a, g.input("b", (4, 3, 1), dtype=np.float64))
    with pytest.raises(ValueError, match=r"'solve'.*rank >= 2"):
        la.solve(a, g.input("s", (), dtype=np.float64))
    with pytest.raises(ValueError, match=r"'cholesky'.*rank >= 2.*\(3,\)"):
        la.cholesky(g.input("v", (3,), dtype=np.float64))


def test_lstsq_refuses_wide_matrices():
    g = xg.Graph()
    with pytest.raises(ValueError, match=r"'lstsq'.*\(2, 3\).*fewer rows than columns"):
        la.lstsq(g.input("a", (2, 3), dtype=np.float64), g.input("b", (2, 1), dtype=np.float64))


def test_dtypes_are_checked():
    g = xg.Graph()
    a32 = g.input("a32", (3, 3), dtype=np.float32)
    b64 = g.input("b64", (3, 1), dtype=np.float64)
    with pytest.raises(TypeError, match=r"'solve'.*float32.*float64"):
        la.solve(a32, b64)
    with pytest.raises(TypeError, match=r"'inv'.*int64"):
        la.inv(g.input("i", (3, 3), dtype=np.int64))
    with pytest.raises(TypeError, match="at least one operand must be an xgrad node"):
        la.solve(np.eye(3), np.ones(3))


def test_shapes_checked_again_when_symbolic_dims_are_fed():
    prog = _compiled(la.cholesky, (None, None))
    with pytest.raises(ValueError, match=r"'cholesky'.*square.*\(3, 4\)"):
        prog(x0=np.ones((3, 4)))
    prog = _compiled(la.solve, (3, 3), (None, 1))
    with pytest.raises(ValueError, match=r"'solve'.*rows"):
        prog(x0=np.eye(3), x1=np.ones((4, 1)))
