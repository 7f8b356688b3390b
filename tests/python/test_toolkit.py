"""The training toolkit: xg.init, xg.nn layers, train/eval switch, checkpoints, xg.data batches, xg.fit,
and real-data training (scikit-learn's bundled sets) with SGD written as compiled updates."""
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import xgrad as xg

F64 = np.float64


def _sgd(loss, params, lr, momentum=0.0):
    """Plain or momentum SGD as (param, new value) pairs; velocities are graph params (saved in checkpoints)."""
    grads = xg.grad(loss, list(params))
    if not momentum:
        return [(p, p - lr * gp) for p, gp in zip(params, grads)]
    ups = []
    for p, gp in zip(params, grads):
        v = p.graph.param(p.name + ".velocity", np.zeros(p.shape, p.dtype))
        nv = momentum * v + gp  # the update values read the params as they were before the run
        ups += [(v, nv), (p, p - lr * nv)]
    return ups


def _torch_copy(module, **tensors):
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(module, name).copy_(torch.from_numpy(np.array(value)))
    return module


# ---- xg.init ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 5), (16, 3, 3, 3), (8, 4, 5), (7, 1)])
def test_fans_match_torch(shape):
    assert xg.init.fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError, match="at least 2 axes"):
        xg.init.xavier_uniform((5,))


def test_gains_match_torch():
    for nl, param in [("linear", None), ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
                      ("leaky_relu", 0.2), ("selu", None), ("conv2d", None)]:
        assert xg.init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))
    with pytest.raises(ValueError, match="unsupported"):
        xg.init.calculate_gain("swish")


@pytest.mark.parametrize("name, kw", [
    ("xavier_uniform", {}), ("xavier_uniform", {"gain": 5 / 3}), ("xavier_normal", {}),
    ("kaiming_uniform", {}), ("kaiming_uniform", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_uniform", {"a": math.sqrt(5)}), ("kaiming_normal", {"nonlinearity": "relu"}),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "tanh"}),
])
def test_initializer_statistics_match_torch(name, kw):
    shape = (64, 32, 3, 3)  # 18,432 draws; fan_in 288, fan_out 576
    ours = getattr(xg.init, name)(shape, **kw, seed=0)
    ref = getattr(torch.nn.init, name + "_")(torch.empty(shape, dtype=torch.float64), **kw).numpy()
    assert ours.shape == shape and ours.dtype == np.float32
    assert ours.std() == pytest.approx(ref.std(), rel=0.03)
    assert abs(ours.mean()) < 0.03 * ref.std()
    if name.endswith("uniform"):  # the same bound: the extremes of 18,432 draws sit right at it
        assert np.abs(ours).max() <= np.abs(ref).max() * 1.001 + 1e-7
        assert np.abs(ours).max() >= np.abs(ref).max() * 0.99


def test_initializers_are_seeded_and_reproducible():
    a = xg.init.normal((3, 4), seed=1)
    np.testing.assert_array_equal(a, xg.init.normal((3, 4), seed=1))
    assert not np.array_equal(a, xg.init.normal((3, 4), seed=2))
    rng = np.random.default_rng(5)  # a generator continues: two draws differ, the sequence is reproducible
    r1, r2 = xg.init.uniform(4, seed=rng), xg.init.uniform(4, seed=rng)
    assert not np.array_equal(r1, r2)
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(r1, xg.init.uniform(4, seed=rng))
    d = xg.init.he_normal((6, 5), dtype=F64, seed=3)  # aliases; float32 is the float64 draw rounded
    assert d.dtype == F64 and d.flags.c_contiguous
    np.testing.assert_array_equal(xg.init.kaiming_normal((6, 5), seed=3), d.astype(np.float32))
    np.testing.assert_array_equal(xg.init.glorot_uniform((6, 5), seed=3), xg.init.xavier_uniform((6, 5), seed=3))
    u = xg.init.uniform((1000,), -2, 3, dtype=F64, seed=0)
    assert u.min() >= -2 and u.max() < 3
    np.testing.assert_array_equal(xg.init.zeros((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(xg.init.ones(3, dtype=F64), np.ones(3))
    np.testing.assert_array_equal(xg.init.constant((2,), 0.5), [0.5, 0.5])
    with pytest.raises(TypeError, match="seed"):
        xg.init.normal(3, seed="x")


# ---- xg.nn layers against torch.nn -----------------------------------------------------------------------------

def test_linear_matches_torch_and_names_params():
    g = xg.Graph()
    x = g.input("x", (None, 2, 5), dtype=F64)  # leading axes broadcast through the matmul
    fc = xg.nn.Linear(g, 5, 3, name="fc1", seed=0, dtype=F64)
    assert [p.name for p in fc.params] == ["fc1.weight", "fc1.bias"] and fc.params() == fc.params
    assert fc.weight.shape == (3, 5) and np.abs(fc.weight.value).max() <= 1 / math.sqrt(5)  # torch's default bound
    ref = _torch_copy(torch.nn.Linear(5, 3).double(), weight=fc.weight.value, bias=fc.bias.value)
    X = np.random.default_rng(0).standard_normal((4, 2, 5))
    np.testing.assert_allclose(g.compile(fc(x))(x=X), ref(torch.from_numpy(X)).detach().numpy(), rtol=1e-12)
    auto = [xg.nn.Linear(g, 2, 2, bias=False, init="xavier_normal") for _ in range(2)]
    assert [l.name for l in auto] == ["linear0", "linear1"] and auto[0].bias is None and len(auto[1].params) == 1
    np.testing.assert_array_equal(xg.nn.Linear(xg.Graph(), 5, 3, seed=0, dtype=F64).weight.value, fc.weight.value)
    with pytest.raises(ValueError, match="unknown initializer"):
        xg.nn.Linear(g, 2, 2, init="nope")


def test_mlp_forward_and_gradients_match_torch():
    g = xg.Graph()
    x = g.input("x", (None, 5), dtype=F64)
    mlp = xg.nn.MLP(g, [5, 7, 6, 3], activation=["tanh", "gelu", None], name="net", seed=0, dtype=F64)
    assert [p.name for p in mlp.params()] == [f"net.{k}.{w}" for k in range(3) for w in ("weight", "bias")]
    ref = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 6), torch.nn.GELU(),
                              torch.nn.Linear(6, 3)).double()
    for lin, tl in zip(mlp.layers[::2], ref[::2]):
        _torch_copy(tl, weight=lin.weight.value, bias=lin.bias.value)
    X = np.random.default_rng(1).standard_normal((8, 5))
    loss = xg.sum(xg.square(mlp(x)))
    out = g.compile([loss] + xg.grad(loss, mlp.params))(x=X)
    tl = ref(torch.from_numpy(X)).square().sum()
    tl.backward()
    np.testing.assert_allclose(out[0], tl.item(), rtol=1e-12)
    for got, p in zip(out[1:], ref.parameters()):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="activations"):
        xg.nn.MLP(g, [2, 3, 4], activation=["relu"])
    with pytest.raises(ValueError, match="unknown activation"):
        xg.nn.MLP(g, [2, 3], activation="swish")


def test_a_trained_model_is_freed_when_dropped_without_the_garbage_collector():
    # Models hold their params' memory (GPU memory on CUDA): it must go when the last reference does, not when
    # Python's cycle collector next runs. (Module.modules() was once a recursive closure: a reference cycle.)
    import gc
    import weakref

    def train_and_drop():
        g = xg.Graph()
        x, t = g.input("x", (None, 4)), g.input("t", (None,), dtype=xg.int64)
        model = xg.nn.Sequential(xg.nn.Linear(g, 4, 8, seed=0), xg.relu, xg.nn.MLP(g, [8, 3], seed=1))
        step = g.compile(xg.cross_entropy(model(x), t), updates=xg.optim.Adam(model.params, lr=1e-2))
        step(x=np.ones((2, 4), np.float32), t=np.array([0, 2]))
        assert len(model.modules()) == 5 and model.modules()[0] is model
        return weakref.ref(model), weakref.ref(model.layers[0])

    gc.collect()
    gc.disable()
    try:
        refs = train_and_drop()
        assert all(r() is None for r in refs)
    finally:
        gc.enable()


def test_conv2d_layernorm_embedding_match_torch():
    g = xg.Graph()
    rng = np.random.default_rng(2)
    x = g.input("x", (None, 4, 9, 9), dtype=F64)
    conv = xg.nn.Conv2d(g, 4, 6, 3, stride=2, padding=1, groups=2, seed=0, dtype=F64)
    assert conv.weight.shape == (6, 2, 3, 3) and np.abs(conv.weight.value).max() <= 1 / math.sqrt(18)
    tconv = _torch_copy(torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2).double(),
                        weight=conv.weight.value, bias=conv.bias.value)
    ln = xg.nn.LayerNorm(g, (5, 5), dtype=F64)
    ln.weight.value[...] = rng.standard_normal((5, 5))
    ln.bias.value[...] = rng.standard_normal((5, 5))
    tln = _torch_copy(torch.nn.LayerNorm((5, 5)).double(), weight=ln.weight.value, bias=ln.bias.value)
    ids = g.input("ids", (None, 3), dtype=xg.int64)
    emb = xg.nn.Embedding(g, 10, 4, seed=0, dtype=F64)
    temb = _torch_copy(torch.nn.Embedding(10, 4).double(), weight=emb.weight.value)
    seq = xg.nn.Sequential(conv, xg.relu, ln, xg.nn.Flatten())
    prog = g.compile([seq(x), emb(ids)])
    X, I = rng.standard_normal((2, 4, 9, 9)), rng.integers(0, 10, (5, 3))
    y, e = prog(x=X, ids=I)
    tseq = torch.nn.Sequential(tconv, torch.nn.ReLU(), tln, torch.nn.Flatten())
    np.testing.assert_allclose(y, tseq(torch.from_numpy(X)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(e, temb(torch.from_numpy(I)).detach().numpy())
    assert len(seq.params) == 4 and seq[1].label == "relu" and len(seq) == 4


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_batch_norm_switch_matches_torch_train_and_eval(shape):
    rng = np.random.default_rng(3)
    g = xg.Graph()
    x = g.input("x", (None,) + shape[1:], dtype=F64)
    bn = xg.nn.BatchNorm(g, 3, momentum=0.2, name="bn", dtype=F64)
    bn.weight.value[...], bn.bias.value[...] = [1.5, 0.5, 2.0], [0.1, -0.2, 0.3]
    assert [p.name for p in bn.params] == ["bn.weight", "bn.bias"]
    assert [p.name for p in bn.buffers] == ["bn.running_mean", "bn.running_var"]
    y = bn(x)
    r = g.input("r", y.shape, dtype=F64)  # a weighted sum, so the gradient is not trivially zero
    gx, gw = xg.grad(xg.sum(y * r), [x, bn.weight])
    prog = g.compile([y, gx, gw], updates=bn.updates())
    ref = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(3, momentum=0.2).double()
    _torch_copy(ref, weight=bn.weight.value, bias=bn.bias.value)
    for _ in range(3):  # training: batch statistics, running statistics move
        X, R = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
        out, dx, dw = prog(x=X, r=R, training=True)
        tx = torch.from_numpy(X).requires_grad_()
        ty = ref.train()(tx)
        (ty * torch.from_numpy(R)).sum().backward()
        np.testing.assert_allclose(out, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(dw, ref.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
        ref.weight.grad = None
    np.testing.assert_allclose(bn.running_mean.value, ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.value, ref.running_var.numpy(), rtol=1e-12)
    before = bn.running_var.value.copy()
    X = rng.standard_normal((1,) + shape[1:])  # eval: running statistics, a batch of one is fine, nothing moves
    out = prog(x=X, r=X, training=False)[0]
    np.testing.assert_allclose(out, ref.eval()(torch.from_numpy(X)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(bn.running_var.value, before)


def test_batch_norm_with_a_mode_fixed_at_build_time():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((5, 3, 2, 2)) + 3
    progs = {}
    for mode in (None, True, False):
        g = xg.Graph()
        x = g.input("x", (None, 3, 2, 2), dtype=F64)
        bn = xg.nn.BatchNorm2d(g, 3, dtype=F64, training=mode)
        y = bn(x)
        assert len(bn.updates()) == (0 if mode is False else 2)
        assert ("training" in g.compile(y).input_names) == (mode is None)
        progs[mode] = (g.compile(y, updates=bn.updates()), bn)
    for mode in (False, True):  # fixed branches = the switch (eval first: stats still 0, 1)
        np.testing.assert_allclose(progs[mode][0](x=X), progs[None][0](x=X, training=mode), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(progs[True][1].running_var.value, progs[None][1].running_var.value, rtol=1e-12)
    np.testing.assert_array_equal(progs[False][1].running_mean.value, np.zeros(3))
    g = xg.Graph()
    plain = xg.nn.BatchNorm(g, 3, affine=False, track_running_stats=False, dtype=F64)  # batch statistics only
    assert plain.params == [] and plain.buffers == []
    out = g.compile(plain(g.input("x", (None, 3), dtype=F64)))(x=X[:, :, 0, 0])
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-12)
    with pytest.raises(ValueError, match=r"expects \(N, 3, ...\) inputs"):
        plain(g.input("y", (None, 4), dtype=F64))


def test_dropout_is_off_in_eval_mode_and_on_in_training():
    g = xg.Graph()
    x = g.input("x", (None, 20), dtype=F64)
    mlp = xg.nn.MLP(g, [20, 200, 200, 4], dropout=0.5, seed=0, dtype=F64)
    y = mlp(x)
    assert g.node("training").dtype == np.bool_ and "training" in g.compile(y).input_names
    clean = xg.nn.MLP(xg.Graph(), [20, 200, 200, 4], seed=0, dtype=F64)  # same weights, no dropout
    xc = clean.layers[0].weight.graph.input("x", (None, 20), dtype=F64)
    X = np.random.default_rng(0).standard_normal((16, 20))
    want = clean.graph.compile(clean(xc))(x=X)
    prog = g.compile(y)  # one program, two modes chosen per run
    np.testing.assert_array_equal(prog(x=X, training=False), want)
    np.testing.assert_array_equal(prog(x=X, training=False), want)
    a, b = prog(x=X, training=True), prog(x=X, training=True)
    assert not np.allclose(a, want) and not np.array_equal(a, b)  # masks apply, fresh every run
    hidden = g.compile(mlp.layers[2](mlp.layers[1](mlp.layers[0](x))))  # Linear, relu, Dropout
    h = hidden(x=X, training=True)
    pre = np.maximum(X @ mlp.layers[0].weight.value.T + mlp.layers[0].bias.value, 0)
    kept = h != 0
    assert 0.4 < 1 - kept[pre > 0].mean() < 0.6  # about half the active units dropped...
    np.testing.assert_allclose(h[kept], 2 * pre[kept], rtol=1e-12)  # ...and the rest scaled by 1 / (1 - p)
    fixed = xg.nn.Dropout(0.5, training=False)  # a mode fixed at build time needs no feed
    assert fixed(x) is x
    with pytest.raises(ValueError, match="p must be"):
        xg.nn.Dropout(1.0)
    g2 = xg.Graph()
    g2.input("training", (2,), dtype=F64)
    with pytest.raises(ValueError, match="bool scalar input"):
        xg.nn.Dropout(0.5)(g2.input("x", (3,)))


# ---- checkpoints -----------------------------------------------------------------------------------------------

def _model(seed, hidden=8, dtype=np.float32):
    g = xg.Graph()
    x, t = g.input("x", (None, 6), dtype=dtype), g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.Sequential(xg.nn.Linear(g, 6, hidden, name="fc1", seed=seed, dtype=dtype),
                             xg.nn.BatchNorm(g, hidden, name="bn", dtype=dtype), xg.relu, xg.nn.Dropout(0.3, seed=seed),
                             xg.nn.Linear(g, hidden, 3, name="fc2", seed=seed + 1, dtype=dtype))
    logits = model(x)
    loss = xg.cross_entropy(logits, t)
    step = g.compile(loss, updates=_sgd(loss, model.params, 0.1, momentum=0.9) + model.updates())
    return g, model, step, g.compile(logits)


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    rng = np.random.default_rng(4)
    X, T = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 3, 32)
    g1, m1, step1, pred1 = _model(seed=0)
    for _ in range(5):
        step1(x=X, t=T, training=True)
    path = tmp_path / "ckpt.npz"
    xg.save(path, g1)
    stored = np.load(path)
    assert "fc1.weight.velocity" in stored.files and "bn.running_var" in stored.files  # optimizer state too
    g2, m2, step2, pred2 = _model(seed=7)
    assert not np.array_equal(pred1(x=X, training=False), pred2(x=X, training=False))
    assert sorted(xg.load(path, g2)) == sorted(stored.files)
    np.testing.assert_array_equal(pred2(x=X, training=False), pred1(x=X, training=False))
    step1(x=X, t=T, training=False), step2(x=X, t=T, training=False)  # SGD continues from the same momentum
    for a, b in zip(g1.params, g2.params):
        assert a.name == b.name and np.array_equal(a.value, b.value)
    xg.save(tmp_path / "model.npz", m1)  # a module: params and buffers, no optimizer state
    assert sorted(np.load(tmp_path / "model.npz").files) == sorted(p.name for p in m1.params + m1.buffers)
    xg.load(tmp_path / "model.npz", m2)
    xg.save(tmp_path / "renamed.npz", {"w": m1[0].weight})
    assert np.load(tmp_path / "renamed.npz").files == ["w"]


def test_checkpoint_errors_name_the_parameter(tmp_path):
    path = tmp_path / "ckpt.npz"
    g1, m1, _, _ = _model(seed=0)
    xg.save(path, g1)
    g2, m2, _, _ = _model(seed=1, hidden=9)
    before = m2[0].weight.value.copy()
    with pytest.raises(ValueError, match=r"parameter 'fc1\.weight'.*float32 \(8, 6\).*float32 \(9, 6\)"):
        xg.load(path, g2)
    np.testing.assert_array_equal(m2[0].weight.value, before)  # nothing written
    g3, _, _, _ = _model(seed=0, dtype=F64)
    with pytest.raises(ValueError, match=r"parameter 'fc1\.weight'.*float32.*float64"):
        xg.load(path, g3)
    with pytest.raises(ValueError, match=r"holds parameter 'bn\.weight', which the target does not have \(and 11 more"):
        xg.load(path, m2.layers[0])
    g4, m4, _, _ = _model(seed=0)
    g4.param("extra", np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="no value for parameter 'extra'"):
        xg.load(path, g4)
    assert "extra" not in xg.load(path, g4, strict=False)
    with pytest.raises(TypeError, match="param nodes"):
        xg.save(path, [g4.node("x")])


# ---- xg.data ---------------------------------------------------------------------------------------------------

def test_batches_shuffle_reproducibly_with_one_permutation():
    X, Y = np.arange(20).reshape(10, 2), np.arange(10)
    b = xg.data.batches(X, Y, batch_size=4, seed=0)
    assert len(b) == 3
    epoch1, epoch2 = list(b), list(b)
    assert [len(y) for _, y in epoch1] == [4, 4, 2]
    for xb, yb in epoch1:
        np.testing.assert_array_equal(xb, X[yb])  # rows stay together
    assert sorted(np.concatenate([y for _, y in epoch1])) == list(range(10))
    assert not all(np.array_equal(a[1], c[1]) for a, c in zip(epoch1, epoch2))  # each epoch reshuffles
    again = xg.data.batches(X, Y, batch_size=4, seed=0)
    for e in (epoch1, epoch2):
        for (xa, ya), (xb, yb) in zip(e, again):
            np.testing.assert_array_equal(ya, yb)
    plain = list(xg.data.batches(Y, batch_size=4, shuffle=False, drop_last=True))
    assert len(plain) == 2 and np.array_equal(plain[1], [4, 5, 6, 7]) and np.shares_memory(plain[0], Y)
    named = list(xg.data.batches(x=X, t=Y, batch_size=6, shuffle=False))
    assert list(named[1]) == ["x", "t"] and named[1]["x"].shape == (4, 2)
    with pytest.raises(ValueError, match="share their first axis"):
        xg.data.batches(X, Y[:5])
    with pytest.raises(ValueError, match="batch_size"):
        xg.data.batches(X, batch_size=0)


def test_partial_last_batch_runs_through_a_compiled_program():
    g = xg.Graph()
    x = g.input("x", (None, 3), dtype=F64)
    fc = xg.nn.Linear(g, 3, 2, seed=0, dtype=F64)
    prog = g.compile(fc(x))
    X = np.random.default_rng(5).standard_normal((10, 3))
    outs = [prog(x=xb) for xb in xg.data.batches(X, batch_size=4, shuffle=False)]
    assert [o.shape[0] for o in outs] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate(outs), X @ fc.weight.value.T + fc.bias.value, rtol=1e-12)


# ---- xg.fit ----------------------------------------------------------------------------------------------------

def test_fit_returns_a_loss_history(capsys):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((100, 3))
    T = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    g = xg.Graph()
    x, t = g.input("x", (None, 3), dtype=F64), g.input("t", (None,), dtype=F64)
    model = xg.nn.Sequential(xg.nn.Dropout(0.02, seed=0), xg.nn.Linear(g, 3, 1, seed=0, dtype=F64), xg.nn.Flatten(0))
    loss = xg.mse_loss(model(x), t)
    step = g.compile(loss, updates=_sgd(loss, model.params, 0.05))
    seen = []
    hist = xg.fit(step, xg.data.batches(x=X, t=T, batch_size=32, seed=0), epochs=15, desc="linreg",
                  callback=lambda e, l: seen.append(l))  # the training input is fed True by fit
    assert hist.shape == (15,) and hist.dtype == F64 and hist[-1] < 0.1 * hist[0] and seen == list(hist)
    assert "linreg" in capsys.readouterr().err  # the tqdm bar
    steps = xg.fit(step, xg.data.batches(X, T, batch_size=32), epochs=2, names=("x", "t"), progress=False,
                   history="step")
    assert steps.shape == (8,) and capsys.readouterr().err == ""
    full = xg.fit(g.compile([loss]), {"x": X, "t": T}, epochs=3, feeds={"training": False}, progress=False)
    assert full.shape == (3,) and full[0] == full[1]  # no updates: the same loss every time
    stopped = xg.fit(step, {"x": X, "t": T}, epochs=50, progress=False, callback=lambda e, l: e == 4)
    assert len(stopped) == 5
    with pytest.raises(TypeError, match="names"):
        xg.fit(step, xg.data.batches(X, T), progress=False)
    with pytest.raises(ValueError, match="one-shot iterator"):
        xg.fit(step, iter([{"x": X, "t": T}]), epochs=2, progress=False)
    bad = g.compile(loss * np.nan)
    with pytest.raises(FloatingPointError, match="epoch 0, step 0"):
        xg.fit(bad, {"x": X, "t": T}, progress=False)


# ---- real data -------------------------------------------------------------------------------------------------

def test_logistic_regression_on_breast_cancer_matches_sklearn():
    data = load_breast_cancer()
    Xtr, Xte, ytr, yte = train_test_split(data.data, data.target, test_size=0.2, random_state=0, stratify=data.target)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    sk = LogisticRegression(C=1.0, max_iter=1000).fit(Xtr, ytr)
    sk_acc = (sk.predict(Xte) == yte).mean()
    g = xg.Graph()
    x, t = g.input("x", (None, 30), dtype=F64), g.input("t", (None,), dtype=F64)
    lin = xg.nn.Linear(g, 30, 1, init="zeros", bias_init="zeros", dtype=F64)
    logits = xg.flatten(lin(x))
    # sklearn's objective divided by C * n: mean log-loss + |w|^2 / (2 C n) (no penalty on the bias)
    loss = xg.binary_cross_entropy_with_logits(logits, t) + xg.sum(xg.square(lin.weight)) / (2.0 * len(Xtr))
    step = g.compile(loss, updates=_sgd(loss, lin.params, 0.5, momentum=0.9))
    hist = xg.fit(step, {"x": Xtr, "t": ytr.astype(F64)}, epochs=1000, progress=False)
    assert hist[-1] < hist[0]
    acc = ((g.compile(logits)(x=Xte) > 0) == yte).mean()
    assert abs(acc - sk_acc) <= 0.01, (acc, sk_acc)
    np.testing.assert_allclose(lin.weight.value.ravel(), sk.coef_.ravel(), atol=1e-3)  # the same optimum


def test_mlp_on_digits_reaches_95_percent():
    data = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(data.data.astype(np.float32) / 16, data.target, test_size=0.2,
                                          random_state=0, stratify=data.target)
    g = xg.Graph()
    x, t = g.input("x", (None, 64)), g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.MLP(g, [64, 128, 10], activation="relu", dropout=0.1, name="mlp", seed=0)
    logits = model(x)
    loss = xg.cross_entropy(logits, t)
    step = g.compile(loss, updates=_sgd(loss, model.params, 0.05, momentum=0.9))
    hist = xg.fit(step, xg.data.batches(x=Xtr, t=ytr, batch_size=32, seed=0), epochs=30, progress=False)
    assert hist[-1] < 0.2 * hist[0]
    acc = (g.compile(xg.argmax(logits, 1))(x=Xte, training=False) == yte).mean()
    assert acc >= 0.95, acc


def test_readme_training_example_runs(tmp_path, monkeypatch):
    import os
    import re
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    code = re.search(r"## Training\n.*?```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    assert env["losses"].shape == (10,) and env["losses"][-1] < 0.3 * env["losses"][0]
    assert env["accuracy"] > 0.95 and (tmp_path / "digits.npz").exists()


def test_checkpoint_keeps_optimizer_state_including_scalars(tmp_path):
    g = xg.Graph()
    w = g.param("w", np.ones(3))
    x = g.input("x", (3,), dtype=np.float64)
    step = g.compile(xg.sum(xg.square(x * w)), updates=xg.optim.Adam([w], lr=0.1))
    for _ in range(3):
        step(x=np.arange(3.0))
    path = tmp_path / "state.npz"
    xg.save(str(path), g)
    saved = {p.name: p.value.copy() for p in g.params}
    assert saved["adam.step"].shape == () and saved["adam.step"] == 3.0
    step(x=np.arange(3.0))
    xg.load(str(path), g)
    for p in g.params:
        np.testing.assert_array_equal(p.value, saved[p.name])


def test_progress_wraps_an_iterable_with_a_bar(capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tqdm import warnings reach the user
        items = list(xg.progress(range(5), desc="my loop"))
    assert items == [0, 1, 2, 3, 4]
    err = capsys.readouterr().err
    assert "my loop" in err and "5/5" in err
