"""log_softmax_take(x, idx) = take_along_axis(log_softmax(x, 1), idx, 1) in one pass per row, and its gradient
log_softmax_take_grad: their op table, the compiler forming both from cross_entropy's composite (checked against
the unfused composite and PyTorch), the split across threads, and bad targets."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xgrad as xg
from optable import Case, any_values as _any, table_tests

IDX = np.array([[2], [0], [3], [1], [3]])


def _log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def _ref(idx):
    return lambda x: np.take_along_axis(_log_softmax(x), np.broadcast_to(idx, (x.shape[0], 1)) % x.shape[1], 1)


CASES = [
    Case("log_softmax_take", "log_softmax_take", lambda x: xg.log_softmax_take(x, IDX), _ref(IDX), [_any(5, 4) * 2],
         second_order="strict", extra_ops=("log_softmax_take_grad",)),
    Case("log_softmax_take-negative-index", "log_softmax_take", lambda x: xg.log_softmax_take(x, -IDX - 1),
         _ref(-IDX - 1), [_any(5, 4)], second_order="loose"),
    Case("log_softmax_take-one-index-for-all", "log_softmax_take", lambda x: xg.log_softmax_take(x, [[1]]),
         _ref(np.array([[1]])), [_any(3, 6)]),
    Case("log_softmax_take-large-logits", "log_softmax_take", lambda x: xg.log_softmax_take(x, IDX[:2]),
         _ref(IDX[:2]), [np.array([[1000.0, 0.0, -1000.0, 5.0], [-1e4, -1e4 + 1, -1e4 + 2, -1e4 + 3]])]),
]

globals().update(table_tests(CASES))


def _ce_program(dtype, classes, fused):
    g = xg.Graph()
    z = g.input("z", (None, classes), dtype=dtype)
    t = g.input("t", (None,), dtype=xg.int64)
    if fused:
        loss = xg.cross_entropy(z, t)
    else:  # the same composite over a trailing unit axis: log_softmax of rank 3 is not fused
        log_p = xg.log_softmax(z.reshape(-1, classes, 1), 1)
        loss = -xg.mean(xg.take_along_axis(log_p, t.reshape(-1, 1, 1), 1))
    return g.compile([loss] + xg.grad(loss, [z]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows,classes", [(7, 16), (128, 37), (4096, 100)])  # the last splits across threads
def test_cross_entropy_fuses_and_matches_the_unfused_composite_and_torch(dtype, rows, classes):
    rng = np.random.default_rng(rows)
    Z = (rng.standard_normal((rows, classes)) * 3).astype(dtype)
    T = rng.integers(0, classes, rows)
    fused, unfused = _ce_program(dtype, classes, True), _ce_program(dtype, classes, False)
    text = str(fused)
    assert "log_softmax_take(" in text and "log_softmax_take_grad(" in text and "= log_softmax(" not in text, text
    assert "log_softmax_take" not in str(unfused)
    (loss, dz), (loss_u, dz_u) = fused(z=Z, t=T), unfused(z=Z, t=T)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(loss, loss_u, rtol=tol)
    np.testing.assert_allclose(dz, dz_u, rtol=tol, atol=tol / rows)
    zt = torch.tensor(Z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(T))
    lt.backward()
    np.testing.assert_allclose(loss, lt.item(), rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


def test_few_classes_keep_the_composite():
    # under 16 classes the composite's passes over L1-resident data are cheaper than the fused row shifts
    text = str(_ce_program(np.float32, 10, True))
    assert "log_softmax_take" not in text and "= log_softmax(" in text, text


def test_a_target_out_of_range_is_a_clear_error_in_both_passes():
    prog = _ce_program(np.float32, 20, True)
    assert "log_softmax_take(" in str(prog)
    Z = np.zeros((3, 20), np.float32)
    with pytest.raises(ValueError, match=r"log_softmax_take.*index 20 is out of bounds for an axis of size 20"):
        prog(z=Z, t=np.array([0, 20, 1]))
    np.testing.assert_allclose(prog(z=Z, t=np.array([0, -1, 1]))[0], np.log(20), rtol=1e-6)  # -1: the last class


def test_shape_errors_name_the_op_and_shapes():
    g = xg.Graph()
    x = g.input("x", (5, 4))
    with pytest.raises(ValueError, match=r"log_softmax_take.*\(5, 4\).*\(5, 2\)"):
        xg.log_softmax_take(x, np.zeros((5, 2), np.int64))
    with pytest.raises(TypeError, match="int64"):
        xg.log_softmax_take(x, g.input("f", (5, 1)))
