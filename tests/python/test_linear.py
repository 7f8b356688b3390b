"""linear(x, w, b, activation): the fused GEMM + epilogue op (its op table), and the compiler's fusion of
matmul -> add(bias) -> relu/tanh/sigmoid into it, checked against the unfused path."""
import numpy as np
import pytest

import xgrad as xg
from optable import Case, any_values as _any, table_tests

ACTS = {None: lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def _case(act, second_order):
    return Case(f"linear-{act or 'none'}", "linear", lambda x, w, b: xg.linear(x, w, b, act),
                lambda x, w, b: ACTS[act](x @ w + b), [_any(4, 3), _any(3, 5), _any(5)],
                kinds=("input", "param", "param"), second_order=second_order)


CASES = [_case(None, "loose"), _case("relu", "loose"), _case("tanh", "strict"), _case("sigmoid", "strict"),
         Case("linear-x-param", "linear", lambda x, w, b: xg.linear(x, w, b, "tanh"),
              lambda x, w, b: np.tanh(x @ w + b), [_any(2, 4), _any(4, 3), _any(3)])]

globals().update(table_tests(CASES))


def _mlp(g, dtype, rng, sizes, acts, keep_preactivations=False):
    x = g.input("x", (None, sizes[0]), dtype=dtype)
    h, pre, params = x, [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = g.param(f"w{i}", (rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype))
        bias = g.param(f"b{i}", (rng.standard_normal(b) * 0.1).astype(dtype))
        params += [w, bias]
        product = h @ w
        z = product + bias
        pre += [product, z]  # as outputs too, they keep the program from fusing anything
        h = getattr(xg, acts[i])(z) if acts[i] else z
    return x, h, pre, params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compile_fuses_bias_and_activation_and_matches_the_unfused_path(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 40)).astype(dtype)  # several row panels of the fused kernel
    acts = ["relu", "tanh", "sigmoid", None]
    g = xg.Graph()
    x, y, pre, _ = _mlp(g, dtype, np.random.default_rng(1), [40, 300, 64, 17, 5], acts)
    fused = g.compile(y)
    text = str(fused)
    assert text.count("= linear(") == 4 and "= matmul(" not in text, text
    assert "epilogue fused: + bias, relu" in text and "epilogue fused: + bias, sigmoid" in text
    # Reading a pre-activation as an output keeps its product unfused: the reference path.
    unfused = g.compile([y] + pre)
    assert "= linear(" not in str(unfused)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused(x=X), unfused(x=X)[0], rtol=tol, atol=tol)


def test_fused_training_matches_unfused_training_step_by_step():
    rng = np.random.default_rng(2)
    X, T = rng.standard_normal((64, 20)), rng.integers(0, 4, 64)
    losses = {}
    for fuse in (True, False):
        g = xg.Graph()
        x, logits, pre, params = _mlp(g, np.float64, np.random.default_rng(3), [20, 32, 16, 4], ["relu", "tanh", None])
        t = g.input("t", (None,), dtype=xg.int64)
        loss = xg.cross_entropy(logits, t)
        step = g.compile([loss] if fuse else [loss] + pre, updates=xg.optim.Adam(params, lr=1e-2))
        assert ("= linear(" in str(step)) == fuse
        losses[fuse] = [float(step(x=X, t=T)[0]) for _ in range(10)]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-12)
    assert losses[True][-1] < losses[True][0]


def test_transposed_and_strided_operands_and_a_bias_on_the_left():
    rng = np.random.default_rng(4)
    A, W, B = rng.standard_normal((30, 200)), rng.standard_normal((60, 30)), rng.standard_normal(30)
    g = xg.Graph()
    a, w, b = g.input("a", A.shape, dtype=np.float64), g.input("w", W.shape, dtype=np.float64), g.input("b", B.shape, dtype=np.float64)
    y = xg.relu(b + a.T @ w[::2].T[::-1].T)  # x stored transposed; w a strided, reversed view
    prog = g.compile(y)
    assert "= linear(" in str(prog)
    np.testing.assert_allclose(prog(a=A, w=W, b=B), np.maximum(B + A.T @ W[::2].T[::-1].T, 0), rtol=1e-12)


def test_what_is_not_fused():
    g = xg.Graph()
    x = g.input("x", (None, 8))
    w = g.param("w", np.ones((8, 4), np.float32))
    row = g.param("row", np.ones((1, 4), np.float32))
    col = g.param("col", np.ones((5, 1), np.float32))
    assert "= linear(" not in str(g.compile(x @ w + row))  # a (1, n) bias: a broadcast add, left as it is
    assert "= linear(" not in str(g.compile(g.input("y", (5, 8)) @ w + col))  # a column, not a row
    z = x @ w + np.ones(4, np.float32)
    assert str(g.compile([xg.relu(z), z])).count("= relu(") == 1  # z is an output too: relu stays separate


def test_bad_inputs_name_the_op():
    g = xg.Graph()
    x = g.input("x", (3, 4))
    with pytest.raises(ValueError, match="linear.*shapes do not chain"):
        xg.linear(x, g.param("w", np.ones((5, 2), np.float32)), g.param("b", np.ones(2, np.float32)))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        xg.linear(x, g.param("w2", np.ones((4, 2), np.float32)), g.param("b2", np.ones(2, np.float32)), "gelu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,n", [(5, 0, 3), (1, 0, 4), (4, 3, 0), (0, 3, 4), (65, 8, 1), (129, 6, 5)])
def test_empty_thin_and_one_row_panels(dtype, m, k, n):
    # k = 0: act(bias) in every row; n = 1 and a last panel of one row take BLAS's gemv path.
    rng = np.random.default_rng(5)
    X, W, B = (rng.standard_normal(s).astype(dtype) for s in [(m, k), (k, n), (n,)])
    g = xg.Graph()
    x = g.input("x", (None, k), dtype=dtype)
    y = xg.linear(x, g.param("w", W), g.param("b", B), "sigmoid")
    got = g.compile(y)(x=X)
    assert got.shape == (m, n)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(X.astype(np.float64) @ W + B))), rtol=tol, atol=tol)
