"""Dropout, layer norm, batch norm, and parameter updates compiled into a program."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xgrad as xg
from optable import Case, any_values as _any, pos_values as _pos, table_tests


def _layer_norm_ref(x, k, w=None, b=None):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5)
    return y * (w if w is not None else 1) + (b if b is not None else 0)


def _batch_norm_ref(x, w, b):
    return F.batch_norm(torch.tensor(x), None, None, torch.tensor(w), torch.tensor(b), training=True).numpy()


CASES = [
    Case("layer_norm", "rsqrt", lambda x: xg.layer_norm(x, 3), lambda x: _layer_norm_ref(x, 1), [_any(4, 3)],
         second_order="strict"),
    Case("layer_norm-affine-2d", "rsqrt", lambda x, w, b: xg.layer_norm(x, (2, 3), w, b),
         lambda x, w, b: _layer_norm_ref(x, 2, w, b), [_any(2, 2, 3), _any(2, 3), _any(2, 3)],
         kinds=("input", "param", "param"), second_order="loose"),
    Case("batch_norm-2d", "rsqrt", lambda x, w, b: xg.batch_norm(x, w, b), _batch_norm_ref, [_any(5, 3), _pos(3), _any(3)],
         kinds=("input", "param", "param"), second_order="loose", dynamic=(False, False, False)),
    Case("batch_norm-4d", "rsqrt", lambda x, w, b: xg.batch_norm(x, w, b), _batch_norm_ref,
         [_any(2, 3, 2, 2), _pos(3), _any(3)], kinds=("input", "param", "param"), dynamic=(True, False, False)),
    Case("dropout-eval-is-identity", "mul", lambda x: xg.dropout(x, 0.5, training=False) * 2.0, lambda x: x * 2.0,
         [_any(4, 3)]),
]

globals().update(table_tests(CASES))


def test_dropout_masks_are_fresh_scaled_and_seeded():
    g = xg.Graph()
    x = g.input("x", (None, 1000), dtype=np.float64)
    prog = g.compile(xg.dropout(x, 0.25, seed=7))
    X = np.ones((20, 1000))
    a, b = prog(x=X), prog(x=X)
    assert set(np.unique(a)) <= {0.0, 1 / 0.75}
    assert abs((a == 0).mean() - 0.25) < 0.01  # 20,000 draws
    assert not np.array_equal(a, b)  # a new mask on every run
    assert abs(a.mean() - 1.0) < 0.02  # scaled so the expectation is kept
    (gx,) = xg.grad(xg.sum(xg.dropout(x, 0.25, seed=7) * 3.0), [x])
    d = g.compile(gx)(x=X)
    assert set(np.unique(d)) <= {0.0, 3 / 0.75}  # the gradient passes through the kept elements only


def test_dropout_training_switch_per_run():
    g = xg.Graph()
    x = g.input("x", (100,), dtype=np.float64)
    train = g.input("training", (), dtype=xg.bool_)
    prog = g.compile(xg.dropout(x, 0.5, training=train))
    X = np.ones(100)
    np.testing.assert_array_equal(prog(x=X, training=False), X)
    assert (prog(x=X, training=True) == 0).any()
    with pytest.raises(ValueError, match="p must be"):
        xg.dropout(x, 1.0)


def test_batch_norm_running_statistics_match_torch():
    rng = np.random.default_rng(0)
    g = xg.Graph()
    x = g.input("x", (None, 3, 4, 4), dtype=np.float64)
    w, b = g.param("w", np.ones(3)), g.param("b", np.zeros(3))
    rm, rv = g.param("running_mean", np.zeros(3)), g.param("running_var", np.ones(3))
    updates = []
    y = xg.batch_norm(x, w, b, rm, rv, training=True, momentum=0.2, updates=updates)
    assert len(updates) == 2
    step = g.compile(y, updates=updates)
    eval_prog = g.compile(xg.batch_norm(x, w, b, rm, rv, training=False))
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for _ in range(3):
        X = rng.standard_normal((6, 3, 4, 4)) * 2 + 1
        out = step(x=X)
        ref = F.batch_norm(torch.tensor(X), trm, trv, torch.ones(3, dtype=torch.float64), None, training=True, momentum=0.2)
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.value, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.value, trv.numpy(), rtol=1e-12)
    X = rng.standard_normal((2, 3, 4, 4))
    ref = F.batch_norm(torch.tensor(X), trm, trv, torch.ones(3, dtype=torch.float64), None, training=False)
    np.testing.assert_allclose(eval_prog(x=X), ref.numpy(), rtol=1e-10, atol=1e-12)


def test_compiled_updates_make_one_call_a_training_step():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3))
    T = X @ np.array([[1.0], [-2.0], [0.5]])
    g = xg.Graph()
    x, t = g.input("x", (None, 3), dtype=np.float64), g.input("t", (None, 1), dtype=np.float64)
    w = g.param("w", np.zeros((3, 1)))
    loss = xg.mean(xg.square(x @ w - t))
    (gw,) = xg.grad(loss, [w])
    step = g.compile(loss, updates={w: w - 0.1 * gw})
    first = step(x=X, t=T)
    for _ in range(300):
        last = step(x=X, t=T)
    assert last < 1e-8 < first  # the loss returned is the one before that run's update
    np.testing.assert_allclose(w.value.ravel(), [1.0, -2.0, 0.5], atol=1e-4)
    assert "updates: w <- " in str(step)


def test_updates_read_the_params_as_they_were_before_the_run():
    g = xg.Graph()
    a, b = g.param("a", np.array([1.0])), g.param("b", np.array([2.0]))
    swap = g.compile(updates=[(a, b * 1.0), (b, a * 1.0)])
    swap()
    assert a.value[0] == 2.0 and b.value[0] == 1.0


def test_update_errors():
    g = xg.Graph()
    w = g.param("w", np.zeros(3))
    x = g.input("x", (3,), dtype=np.float64)
    with pytest.raises(ValueError, match="must be params"):
        g.compile(updates={x: x})
    with pytest.raises(ValueError, match="has type"):
        g.compile(updates={w: xg.sum(w)})
    with pytest.raises(ValueError, match="updated twice"):
        g.compile(updates=[(w, w * 2.0), (w, w * 3.0)])


def test_updates_written_in_place_keep_the_semantics_of_copies():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((300, 100))
    g = xg.Graph()
    w = g.param("w", W)
    # The output shows the param: it must be the value from before the update.
    step = g.compile(w * 1.0, updates={w: w * 2.0})
    np.testing.assert_array_equal(step(), W)
    np.testing.assert_array_equal(w.value, 2 * W)
    assert "written into its param" in str(step)  # the update itself needs no copy


def test_a_failing_run_leaves_params_untouched():
    g = xg.Graph()
    w = g.param("w", np.arange(40000.0).reshape(200, 200))
    idx = g.input("idx", (2,), dtype=xg.int64)
    new_w = w * 2.0
    # take reads the new value after it is computed, and can reject an index: no in-place write before it.
    prog = g.compile(xg.take(new_w, idx, 0), updates={w: new_w})
    before = w.value.copy()
    with pytest.raises(ValueError, match="out of bounds"):
        prog(idx=np.array([0, 500]))
    np.testing.assert_array_equal(w.value, before)
    prog(idx=np.array([0, 1]))
    np.testing.assert_array_equal(w.value, 2 * before)
