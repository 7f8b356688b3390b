"""Compile-time graph rewrites: numerical stability and common-subexpression elimination."""
import numpy as np

import xgrad as xg


def _run(build, x_value, dtype=np.float32, grad=False):
    g = xg.Graph()
    x = g.input("x", np.shape(x_value), dtype=dtype)
    y = build(x)
    outs = [y] + (xg.grad(xg.sum(y), [x]) if grad else [])
    prog = g.compile(outs)
    return prog(x=np.asarray(x_value, dtype)), str(prog)


def test_log_of_softmax_becomes_log_softmax_with_finite_gradients():
    X = [[1000.0, 0.0, -1000.0]]
    (y, gx), text = _run(lambda x: xg.log(xg.softmax(x)), X, grad=True)
    assert "log_softmax" in text
    np.testing.assert_allclose(y, [[0.0, -1000.0, -2000.0]], rtol=1e-6)
    assert np.all(np.isfinite(gx))
    np.testing.assert_allclose(gx, [[1 - 3.0, 1.0, 1.0]], atol=1e-5)  # 1 - 3 * softmax


def test_log_one_plus_x_becomes_log1p():
    (y,), text = _run(lambda x: xg.log(1.0 + x), [1e-10, 2e-12])
    assert "log1p" in text
    np.testing.assert_allclose(y, [1e-10, 2e-12], rtol=1e-6)  # log(1 + 1e-10) is 0 in float32
    (y,), _ = _run(lambda x: xg.log(x + 1.0), [1e-10])
    np.testing.assert_allclose(y, [1e-10], rtol=1e-6)


def test_exp_minus_one_becomes_expm1():
    (y,), text = _run(lambda x: xg.exp(x) - 1.0, [1e-10, -3e-9])
    assert "expm1" in text
    np.testing.assert_allclose(y, [1e-10, -3e-9], rtol=1e-6)


def test_log_sigmoid_becomes_minus_softplus_of_minus_x():
    (y, gx), text = _run(lambda x: xg.log(xg.sigmoid(x)), [-200.0, 0.0, 30.0], grad=True)
    assert "softplus" in text
    np.testing.assert_allclose(y, [-200.0, -np.log(2.0), -np.log1p(np.exp(-30.0))], rtol=1e-6)
    np.testing.assert_allclose(gx, [1.0, 0.5, 1 / (1 + np.exp(30.0))], rtol=1e-5)


def test_rewrites_leave_nodes_that_grad_differentiates_with_respect_to():
    g = xg.Graph()
    x = g.input("x", (3,), dtype=np.float64)
    s = xg.softmax(x)
    R = np.array([0.5, -1.0, 2.0])
    (gs,) = xg.grad(xg.sum(xg.log(s) * g.const(R)), [s])
    X = np.array([0.1, 0.2, -0.3])
    np.testing.assert_allclose(g.compile(gs)(x=X), R / np.exp(X - np.log(np.exp(X).sum())), rtol=1e-12)


def test_common_subexpressions_are_computed_once():
    g = xg.Graph()
    x = g.input("x", (4,), dtype=np.float64)
    y = xg.tanh(x * 2.0) + xg.tanh(x * 2.0)  # two equal constants, two equal muls, two equal tanhs
    prog = g.compile(y)
    assert prog.num_steps == 3  # mul, tanh, add
    np.testing.assert_allclose(prog(x=np.ones(4)), 2 * np.tanh(2.0) * np.ones(4))


def test_random_masks_are_not_merged():
    g = xg.Graph()
    x = g.input("x", (1000,), dtype=np.float64)
    y = xg.dropout(x, 0.5, seed=3) - xg.dropout(x, 0.5, seed=3)
    assert np.any(g.compile(y)(x=np.ones(1000)) != 0)
