"""xg.gradcheck, and higher-order gradients checked against PyTorch's double backward."""
import numpy as np
import pytest
import torch

import xgrad as xg


def test_gradcheck_passes_for_correct_gradients():
    rng = np.random.default_rng(0)
    assert xg.gradcheck(lambda a, b: xg.tanh(a @ b), [rng.standard_normal((3, 4)), rng.standard_normal((4, 2))])
    assert xg.gradcheck(lambda a: xg.logsumexp(a, axis=1), [rng.standard_normal((2, 5))])


def test_gradcheck_catches_a_wrong_gradient():
    # stop_gradient hides part of the dependence, so the analytic gradient is wrong for the function's values.
    rng = np.random.default_rng(1)
    with pytest.raises(xg.GradcheckError, match="input 0"):
        xg.gradcheck(lambda a: a * xg.stop_gradient(a), [rng.standard_normal(4)])
    assert not xg.gradcheck(lambda a: a * xg.stop_gradient(a), [rng.standard_normal(4)], raise_exception=False)


def _mlp_loss_xg(g, w1, w2, x, t):
    h = xg.tanh(x @ w1)
    return xg.mean(xg.square(h @ w2 - t))


def test_hessian_vector_product_matches_torch_double_backward():
    rng = np.random.default_rng(2)
    X, T = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    W1, W2 = rng.standard_normal((3, 5)), rng.standard_normal((5, 1))
    V1, V2 = rng.standard_normal((3, 5)), rng.standard_normal((5, 1))

    g = xg.Graph()
    x, t = g.input("x", (None, 3), dtype=xg.float64), g.input("t", (None, 1), dtype=xg.float64)
    w1, w2 = g.param("w1", W1), g.param("w2", W2)
    loss = _mlp_loss_xg(g, w1, w2, x, t)
    g1, g2 = xg.grad(loss, [w1, w2])
    gv = xg.sum(g1 * g.const(V1)) + xg.sum(g2 * g.const(V2))  # <grad, v>
    h1, h2 = xg.grad(gv, [w1, w2])  # H v
    hv1, hv2 = g.compile([h1, h2])(x=X, t=T)

    tw1 = torch.tensor(W1, requires_grad=True)
    tw2 = torch.tensor(W2, requires_grad=True)
    tl = ((torch.tanh(torch.tensor(X) @ tw1) @ tw2 - torch.tensor(T)) ** 2).mean()
    tg1, tg2 = torch.autograd.grad(tl, [tw1, tw2], create_graph=True)
    th1, th2 = torch.autograd.grad((tg1 * torch.tensor(V1)).sum() + (tg2 * torch.tensor(V2)).sum(), [tw1, tw2])
    np.testing.assert_allclose(hv1, th1.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv2, th2.numpy(), rtol=1e-10, atol=1e-12)


def test_gradient_penalty_matches_torch():
    # d/dw of ||d loss / d x||^2: a gradient of an expression holding gradient nodes.
    rng = np.random.default_rng(3)
    X, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    g = xg.Graph()
    x = g.input("x", (4, 3), dtype=xg.float64)
    w = g.param("w", W)
    out = xg.sum(xg.softplus(x @ w))
    (gx,) = xg.grad(out, [x])
    penalty = xg.sum(xg.square(gx))
    (gw,) = xg.grad(penalty, [w])
    value, dw = g.compile([penalty, gw])(x=X)

    tx = torch.tensor(X, requires_grad=True)
    tw = torch.tensor(W, requires_grad=True)
    (tgx,) = torch.autograd.grad(torch.nn.functional.softplus(tx @ tw).sum(), [tx], create_graph=True)
    tp = (tgx ** 2).sum()
    (tgw,) = torch.autograd.grad(tp, [tw])
    np.testing.assert_allclose(value, tp.item(), rtol=1e-12)
    np.testing.assert_allclose(dw, tgw.numpy(), rtol=1e-10, atol=1e-12)
