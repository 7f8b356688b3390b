"""Optimizers and schedules against torch.optim: the same model, initial values and data, 20 steps, float64."""
import numpy as np
import pytest
import torch

import xgrad as xg

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 4))
T = RNG.standard_normal((16, 2))
W1 = RNG.standard_normal((4, 5)) * 0.5
W2 = RNG.standard_normal((5, 2)) * 0.5


def _xgrad_model():
    g = xg.Graph()
    x, t = g.input("x", (None, 4), dtype=np.float64), g.input("t", (None, 2), dtype=np.float64)
    w1, w2 = g.param("w1", W1), g.param("w2", W2)
    loss = xg.mean(xg.square(xg.tanh(x @ w1) @ w2 - t))
    return g, loss, [w1, w2]


def _torch_model():
    w1 = torch.tensor(W1, requires_grad=True)
    w2 = torch.tensor(W2, requires_grad=True)
    return [w1, w2], lambda: ((torch.tanh(torch.tensor(X) @ w1) @ w2 - torch.tensor(T)) ** 2).mean()


# (id, xgrad factory, torch factory(params) -> (optimizer, scheduler or None), torch gradient hook or None)
CONFIGS = [
    ("sgd", lambda p: xg.optim.SGD(p, lr=0.1), lambda p: (torch.optim.SGD(p, lr=0.1), None), None),
    ("sgd-momentum", lambda p: xg.optim.SGD(p, lr=0.05, momentum=0.9),
     lambda p: (torch.optim.SGD(p, lr=0.05, momentum=0.9), None), None),
    ("sgd-dampening-wd", lambda p: xg.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
     lambda p: (torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), None), None),
    ("sgd-nesterov", lambda p: xg.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
     lambda p: (torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), None), None),
    ("adam", lambda p: xg.optim.Adam(p, lr=0.01), lambda p: (torch.optim.Adam(p, lr=0.01), None), None),
    ("adam-wd-betas", lambda p: xg.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
     lambda p: (torch.optim.Adam(p, lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05), None), None),
    ("adamw", lambda p: xg.optim.AdamW(p, lr=0.01, weight_decay=0.1),
     lambda p: (torch.optim.AdamW(p, lr=0.01, weight_decay=0.1), None), None),
    ("rmsprop", lambda p: xg.optim.RMSProp(p, lr=0.01), lambda p: (torch.optim.RMSprop(p, lr=0.01), None), None),
    ("rmsprop-momentum-centered", lambda p: xg.optim.RMSProp(p, lr=0.005, momentum=0.5, centered=True, weight_decay=0.01),
     lambda p: (torch.optim.RMSprop(p, lr=0.005, momentum=0.5, centered=True, weight_decay=0.01), None), None),
    ("adagrad", lambda p: xg.optim.AdaGrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1),
     lambda p: (torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), None), None),
    ("sgd-step-lr", lambda p: xg.optim.SGD(p, lr=0.1, momentum=0.5, schedule=xg.optim.step_lr(5, gamma=0.5)),
     lambda p: _with(torch.optim.SGD(p, lr=0.1, momentum=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 5, 0.5)), None),
    ("adam-exponential-lr", lambda p: xg.optim.Adam(p, lr=0.02, schedule=xg.optim.exponential_lr(0.9)),
     lambda p: _with(torch.optim.Adam(p, lr=0.02), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)), None),
    ("sgd-cosine-lr", lambda p: xg.optim.SGD(p, lr=0.1, schedule=xg.optim.cosine_lr(12, lr_min=0.01)),
     lambda p: _with(torch.optim.SGD(p, lr=0.1), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, 0.01)), None),
    ("adam-warmup", lambda p: xg.optim.Adam(p, lr=0.02, warmup_steps=6, warmup_start=0.25),
     lambda p: _with(torch.optim.Adam(p, lr=0.02), lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.25, 1.0, 6)), None),
    ("sgd-clip-norm", lambda p: xg.optim.SGD(p, lr=0.3, clip_norm=0.5), lambda p: (torch.optim.SGD(p, lr=0.3), None),
     lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.5)),
    ("sgd-clip-value", lambda p: xg.optim.SGD(p, lr=0.3, clip_value=0.05), lambda p: (torch.optim.SGD(p, lr=0.3), None),
     lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.05)),
    ("sgd-l1", lambda p: xg.optim.SGD(p, lr=0.1, l1=0.02), lambda p: (torch.optim.SGD(p, lr=0.1), None),
     lambda ps: [q.grad.add_(0.02 * torch.sign(q.detach())) for q in ps]),
]


def _with(opt, make_scheduler):
    return opt, make_scheduler(opt)


@pytest.mark.parametrize("name,make_xg,make_torch,hook", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_optimizer_matches_torch_for_20_steps(name, make_xg, make_torch, hook):
    g, loss, params = _xgrad_model()
    step = g.compile(loss, updates=make_xg(params))
    tparams, tloss = _torch_model()
    opt, sched = make_torch(tparams)
    for k in range(20):
        l_xg = float(step(x=X, t=T))
        opt.zero_grad()
        l_t = tloss()
        l_t.backward()
        if hook:
            hook(tparams)
        opt.step()
        if sched:
            sched.step()
        assert l_xg == pytest.approx(l_t.item(), rel=1e-9), f"loss at step {k}"
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-6, atol=1e-9, err_msg=f"{p.name} after step {k}")


def test_learning_rate_node_follows_the_schedule():
    g, loss, params = _xgrad_model()
    opt = xg.optim.SGD(params, lr=1.0, schedule=xg.optim.step_lr(2, gamma=0.1))
    step = g.compile(loss, updates=opt)
    lr = g.compile(opt.learning_rate())
    seen = []
    for _ in range(5):
        seen.append(float(lr()))
        step(x=X, t=T)
    np.testing.assert_allclose(seen, [1.0, 1.0, 0.1, 0.1, 0.01], rtol=1e-12)
    assert [n.name for n in opt.state][0] == "sgd.step"


def test_lbfgs_matches_torch():
    g, loss, params = _xgrad_model()
    opt = xg.optim.LBFGS(params, lr=0.5, max_iter=20, history_size=5)
    tparams, tloss = _torch_model()
    topt = torch.optim.LBFGS(tparams, lr=0.5, max_iter=20, history_size=5)

    def closure():
        topt.zero_grad()
        l = tloss()
        l.backward()
        return l

    for _ in range(2):
        first = opt.step(loss, x=X, t=T)
        tfirst = topt.step(closure)
        assert first == pytest.approx(tfirst.item(), rel=1e-9)
        for p, tp in zip(params, tparams):
            np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-6, atol=1e-9)


def test_lbfgs_fits_diabetes_to_the_closed_form():
    from sklearn.datasets import load_diabetes
    data = load_diabetes()
    Xd = (data.data - data.data.mean(0)) / data.data.std(0)
    yd = ((data.target - data.target.mean()) / data.target.std()).reshape(-1, 1)
    g = xg.Graph()
    x, t = g.input("x", (None, 10), dtype=np.float64), g.input("t", (None, 1), dtype=np.float64)
    w, b = g.param("w", np.zeros((10, 1))), g.param("b", np.zeros(1))
    loss = xg.mean(xg.square(x @ w + b - t))
    opt = xg.optim.LBFGS([w, b], max_iter=100, history_size=20)
    opt.step(loss, x=Xd, t=yd)
    mse = float(g.compile(loss)(x=Xd, t=yd))
    A = np.hstack([Xd, np.ones((len(Xd), 1))])
    coef, *_ = np.linalg.lstsq(A, yd, rcond=None)
    exact = float(np.mean((A @ coef - yd) ** 2))
    assert abs(mse - exact) <= 1e-3 * exact


def test_optimizer_errors():
    g, loss, params = _xgrad_model()
    x = g.node("x")
    with pytest.raises(ValueError, match="can only optimize params"):
        xg.optim.SGD([x])
    with pytest.raises(ValueError, match="no params"):
        xg.optim.Adam([])
    with pytest.raises(ValueError, match="nesterov"):
        xg.optim.SGD(params, nesterov=True)
    with pytest.raises(ValueError, match="give the loss"):
        g.compile([], updates=xg.optim.SGD(params))
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        xg.optim.SGD(params, schedule={"kind": "triangle"})
