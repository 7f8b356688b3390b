"""A run that fails (a bad feed, an index out of range, a value that is not finite under check_finite) leaves
every param and all optimizer state exactly as it was, bit for bit; and check_finite names the first node
that produced a NaN or an Inf, its op and its shapes."""
import numpy as np
import pytest

import xgrad as xg


def training_step(check_finite=False, optimizer="Adam"):
    rng = np.random.default_rng(3)
    g = xg.Graph()
    x = g.input("x", (None, 6))
    t = g.input("t", (None,), dtype=xg.int64)
    ids = g.input("ids", (None,), dtype=xg.int64)
    emb = g.param("emb", rng.standard_normal((5, 6)).astype(np.float32))
    w = g.param("w", rng.standard_normal((6, 4)).astype(np.float32))
    b = g.param("b", np.zeros(4, np.float32))
    h = xg.sqrt(x + xg.take(emb, ids, axis=0)) @ w + b  # sqrt: a NaN source
    loss = xg.cross_entropy(h, t)
    opt = getattr(xg.optim, optimizer)([emb, w, b], lr=1e-2)
    return g, g.compile(loss, updates=opt, check_finite=check_finite)


def good_feed(n=8):
    rng = np.random.default_rng(4)
    return dict(x=rng.uniform(10, 11, (n, 6)).astype(np.float32), t=rng.integers(0, 4, n), ids=rng.integers(0, 5, n))


def state(g):
    return {p.name: p.value.tobytes() for p in g.params}


BAD_FEEDS = {
    "shape": (dict(x=np.zeros((8, 5), np.float32)), ValueError, "feed 'x' has shape"),
    "dtype": (dict(t=np.zeros(8, np.float32)), TypeError, "feed 't' is float32"),
    "target index": (dict(t=np.full(8, 4)), ValueError, "cross_entropy|log_softmax_take|take_along_axis"),
    "gather index": (dict(ids=np.array([0, 1, 2, 3, 4, 5, 0, 1])), ValueError, "take"),
    "negative gather index": (dict(ids=np.full(8, -9)), ValueError, "take"),
    "missing": (dict(t=None), ValueError, "missing feed for input 't'"),
}


@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
@pytest.mark.parametrize("check_finite", [False, True])
@pytest.mark.parametrize("case", sorted(BAD_FEEDS))
def test_a_failed_run_leaves_params_and_optimizer_state_bit_for_bit(case, check_finite, optimizer):
    g, step = training_step(check_finite, optimizer)
    for _ in range(3):  # some optimizer state to lose
        step(**good_feed())
    before = state(g)
    change, error, message = BAD_FEEDS[case]
    feed = {**good_feed(), **change}
    feed = {k: v for k, v in feed.items() if v is not None}
    with pytest.raises(error, match=message):
        step(**feed)
    assert state(g) == before
    step(**good_feed())  # and the program still works
    assert state(g) != before


def test_check_finite_names_the_first_node_that_is_not_finite_and_writes_nothing():
    g, step = training_step(check_finite=True)
    step(**good_feed())
    before = state(g)
    feed = good_feed()
    feed["x"][2, 3] = -100
    with pytest.raises(RuntimeError) as e:
        step(**feed)
    msg = str(e.value)
    assert "check_finite" in msg and "op 'sqrt'" in msg and "nan at [2, 3] (1 of 48 values are not finite)" in msg, msg
    assert "op '" in msg and "float32(8, 6)" in msg, msg  # the op, its node and the shapes
    assert state(g) == before


def test_check_finite_names_a_nan_feed():
    g, step = training_step(check_finite=True)
    feed = good_feed()
    feed["x"][1, 2] = np.nan
    before = state(g)
    with pytest.raises(RuntimeError, match=r"check_finite: feed 'x' float32\(8, 6\) holds nan at \[1, 2\] \(1 of 48"):
        step(**feed)
    assert state(g) == before


def test_check_finite_log_of_negative():
    g = xg.Graph()
    x = g.input("x", (3,), dtype=xg.float64)
    w = g.param("w", np.ones(3))
    y = xg.sum(xg.log(x * w))
    run = g.compile(y, updates={w: w - 0.1 * xg.grad(y, w)}, check_finite=True)
    np.testing.assert_allclose(run(x=np.array([1.0, 2.0, 3.0])), np.log(6.0))
    w_before = w.value.copy()
    with pytest.raises(RuntimeError) as e:
        run(x=np.array([1.0, -2.0, 3.0]))
    msg = str(e.value)
    assert "op 'log'" in msg and "nan at [1] (1 of 3 values are not finite)" in msg and "float64(3,)" in msg, msg
    np.testing.assert_array_equal(w.value, w_before)
    # Off (the default), the same run computes NaN silently, as numpy does.
    quiet = g.compile(y)
    assert np.isnan(quiet(x=np.array([1.0, -2.0, 3.0])))


def test_check_finite_sees_every_value_of_a_fused_chain():
    g = xg.Graph()
    x = g.input("x", (None,))
    y = xg.exp(xg.exp(x) * 2.0) + 1.0  # a tiled elementwise chain without the watch
    run = g.compile(y, check_finite=True)
    xs = np.zeros(100_000, np.float32)
    xs[77_777] = 7.0  # exp(2 e^7) overflows in the second exp
    with pytest.raises(RuntimeError, match=r"op 'exp'.*inf at \[77777\] \(1 of 100000"):
        run(x=xs)
    np.testing.assert_allclose(g.compile(y, check_finite=True)(x=np.zeros(100_000, np.float32)), np.full(100_000, np.exp(2.0) + 1.0), rtol=1e-6)


def test_check_finite_sees_inside_what_would_be_a_fused_layer():
    """tanh(x @ w + b) is one fused kernel normally; under the watch the overflowing product is reported even
    though tanh brings it back to 1."""
    g = xg.Graph()
    x = g.input("x", (None, 2))
    w = g.param("w", np.full((2, 2), 1e20, np.float32))
    b = g.param("b", np.zeros(2, np.float32))
    y = xg.tanh(x @ w + b)
    assert np.all(g.compile(y)(x=np.full((1, 2), 1e20, np.float32)) == 1.0)  # quietly finite without the watch
    with pytest.raises(RuntimeError, match=r"check_finite: its output float32\(1, 2\) holds inf at \[0, 0\]"):
        g.compile(y, check_finite=True)(x=np.full((1, 2), 1e20, np.float32))
