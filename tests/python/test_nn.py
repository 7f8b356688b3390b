"""Softmax family, indexing by int64 tensors, and losses: the op table plus PyTorch parity."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xgrad as xg
from optable import Case, any_values as _any, pos_values as _pos, table_tests

IDX = np.array([2, 0, 2, 1])
LABELS = np.array([1, 0, 3, 2, 3])


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def _torch_loss(fn, **kw):
    return lambda a, *rest: fn(torch.tensor(a), *[torch.tensor(r) for r in rest], **kw).numpy()


CASES = [
    Case("softmax-last", "softmax", xg.softmax, lambda x: _softmax(x, -1), [_any(4, 5) * 3], second_order="strict"),
    Case("softmax-axis0", "softmax", lambda x: xg.softmax(x, 0), lambda x: _softmax(x, 0), [_any(4, 3, 2)],
         second_order="strict"),
    Case("softmax-large", "softmax", xg.softmax, lambda x: _softmax(x, -1), [np.array([[1000.0, 0.0, -1000.0]])]),
    Case("log_softmax", "log_softmax", xg.log_softmax, lambda x: _log_softmax(x, -1), [_any(4, 5) * 3],
         second_order="strict"),
    Case("log_softmax-axis1", "log_softmax", lambda x: xg.log_softmax(x, 1), lambda x: _log_softmax(x, 1),
         [_any(2, 4, 3)], second_order="strict"),
    Case("take-axis1", "take", lambda x: xg.take(x, IDX, 1), lambda x: np.take(x, IDX, 1), [_any(3, 4)],
         second_order="loose", extra_ops=("take_grad",)),
    Case("take-2d-indices", "take", lambda x: xg.take(x, IDX.reshape(2, 2), 0), lambda x: np.take(x, IDX.reshape(2, 2), 0),
         [_any(3, 2)], second_order="loose", extra_ops=("take_grad",)),
    Case("take-negative", "take", lambda x: xg.take(x, [-1, 0], 0), lambda x: np.take(x, [-1, 0], 0), [_any(3, 2)]),
    Case("index_select", "take", lambda x: xg.index_select(x, IDX, 0), lambda x: x[IDX], [_any(3, 2)]),
    Case("embedding", "take", lambda w: xg.embedding(w, LABELS.reshape(5, 1)), lambda w: w[LABELS.reshape(5, 1)],
         [_any(4, 3)], kinds=("param",)),
    Case("take_along_axis", "take_along_axis", lambda x: xg.take_along_axis(x, IDX[:3, None], 1),
         lambda x: np.take_along_axis(x, IDX[:3, None], 1), [_any(3, 4)], second_order="loose",
         extra_ops=("take_along_axis_grad",)),
    Case("take_along_axis-axis0", "take_along_axis", lambda x: xg.take_along_axis(x, np.array([[0, 2, 1, 1]]), 0),
         lambda x: np.take_along_axis(x, np.array([[0, 2, 1, 1]]), 0), [_any(3, 4)], dynamic=(False,)),
    Case("one_hot", "one_hot", lambda x: xg.one_hot(xg.argmax(x, axis=1), 4, dtype=x.dtype),
         lambda x: np.eye(4)[np.argmax(x, 1)], [_any(5, 4)], grad=False, extra_ops=("argmax",)),
    Case("flatten", "reshape", lambda x: xg.flatten(x, 1), lambda x: x.reshape(x.shape[0], -1), [_any(2, 3, 4)]),
    Case("ce-labels", "log_softmax", lambda z: xg.cross_entropy(z, LABELS), _torch_loss(F.cross_entropy, target=torch.tensor(LABELS)),
         [_any(5, 4) * 2], second_order="strict", extra_ops=("take_along_axis",)),
    Case("ce-labels-sum", "log_softmax", lambda z: xg.cross_entropy(z, LABELS, reduction="sum"),
         _torch_loss(F.cross_entropy, target=torch.tensor(LABELS), reduction="sum"), [_any(5, 4)]),
    Case("ce-labels-none", "log_softmax", lambda z: xg.cross_entropy(z, LABELS, reduction="none"),
         _torch_loss(F.cross_entropy, target=torch.tensor(LABELS), reduction="none"), [_any(5, 4)]),
    Case("ce-spatial", "log_softmax", lambda z: xg.cross_entropy(z, LABELS[:4].reshape(2, 2) % 3),
         _torch_loss(F.cross_entropy, target=torch.tensor(LABELS[:4].reshape(2, 2) % 3)), [_any(2, 3, 2)]),
    Case("ce-probabilities", "log_softmax", lambda z, p: xg.cross_entropy(z, xg.softmax(p)),
         lambda z, p: -np.mean(np.sum(_softmax(p, 1) * _log_softmax(z, 1), axis=1)), [_any(5, 4), _any(5, 4)],
         second_order="loose"),
    Case("bce-with-logits", "softplus", xg.binary_cross_entropy_with_logits,
         lambda z, t: F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(t)).numpy(),
         [_any(6, 2) * 4, _pos(6, 2) / 2], second_order="loose"),
    Case("mse", "square", xg.mse_loss, lambda a, b: F.mse_loss(torch.tensor(a), torch.tensor(b)).numpy(),
         [_any(4, 3), _any(4, 3)], second_order="loose"),
    Case("huber", "abs", lambda a, b: xg.huber_loss(a, b, delta=0.8),
         lambda a, b: F.huber_loss(torch.tensor(a), torch.tensor(b), delta=0.8).numpy(), [_any(4, 3) * 2, _any(4, 3)],
         second_order="loose"),
]

globals().update(table_tests(CASES))


def test_cross_entropy_is_stable_for_huge_logits():
    g = xg.Graph()
    z = g.input("z", (None, 3), dtype=np.float32)
    loss = xg.cross_entropy(z, np.array([0, 2]))
    (gz,) = xg.grad(loss, [z])
    Z = np.array([[1e4, 0, -1e4], [0, 0, 1e4]], np.float32)
    l, dz = g.compile([loss, gz])(z=Z)
    ref = F.cross_entropy(torch.tensor(Z, requires_grad=True), torch.tensor([0, 2]))
    assert np.isfinite(l) and np.all(np.isfinite(dz))
    np.testing.assert_allclose(l, ref.item(), atol=1e-6)


def test_cross_entropy_matches_torch_in_float32_with_gradients():
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((64, 10)).astype(np.float32)
    T = rng.integers(0, 10, 64)
    g = xg.Graph()
    z = g.input("z", (None, 10))
    t = g.input("t", (None,), dtype=xg.int64)
    loss = xg.cross_entropy(z, t)
    (gz,) = xg.grad(loss, [z])
    l, dz = g.compile([loss, gz])(z=Z, t=T)
    zt = torch.tensor(Z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(T))
    lt.backward()
    np.testing.assert_allclose(l, lt.item(), rtol=1e-5)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_index_errors_name_the_op():
    g = xg.Graph()
    x = g.input("x", (3, 2))
    with pytest.raises(ValueError, match="op 'take'.*index 5 is out of bounds"):
        g.compile(xg.take(x, [0, 5], 0))(x=np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match="indices must be int64"):
        xg.take(x, g.input("f", (2,)), 0)
    with pytest.raises(ValueError, match="label 7 is outside"):
        labels = g.input("labels", (2,), dtype=np.int64)
        g.compile(xg.one_hot(labels, 4))(labels=np.array([1, 7]))
    with pytest.raises(ValueError, match="cross_entropy"):
        xg.cross_entropy(x, np.array([[0, 1]]))
    with pytest.raises(ValueError, match="reduction"):
        xg.mse_loss(x, x, reduction="avg")
