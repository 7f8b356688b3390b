"""Convolution and pooling: the op table (numpy references, finite-difference
gradients, second order), parity with torch.nn.functional, shape errors, and
running one program at several batch sizes and from several threads.

Shapes stay tiny: finite differences run the program twice per input element.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import xgrad as xg
from optable import Case, any_values as _any, table_tests

# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _windows(x, kernel, stride, dilation=1):
    """(N, C, Ho, Wo, kh, kw) windows of an already padded x."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    win = sliding_window_view(x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    return win[:, :, ::sh, ::sw, ::dh, ::dw]


def _pad(x, padding, value=0.0):
    ph, pw = _pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def np_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    win = _windows(_pad(x, padding), w.shape[2:], stride, dilation)
    cg, cog = x.shape[1] // groups, w.shape[0] // groups
    y = np.concatenate([np.einsum("nchwij,ocij->nohw", win[:, g * cg:(g + 1) * cg], w[g * cog:(g + 1) * cog])
                        for g in range(groups)], axis=1)
    return y if b is None else y + b[None, :, None, None]


def np_max_pool2d(x, kernel_size, stride=None, padding=0):
    return _windows(_pad(x, padding, -np.inf), kernel_size, stride or kernel_size).max(axis=(4, 5))


def np_avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    stride = stride or kernel_size
    total = _windows(_pad(x, padding), kernel_size, stride).sum(axis=(4, 5))
    if count_include_pad:
        kh, kw = _pair(kernel_size)
        return total / (kh * kw)
    count = _windows(_pad(np.ones_like(x), padding), kernel_size, stride).sum(axis=(4, 5))
    return total / count


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

_CONV_GRADS = ("conv2d_grad_input", "conv2d_grad_weight")


def _conv(id, x_shape, w_shape, second_order=None, bias=False, kinds=None, extra_ops=(), **kw):
    inputs = [_any(*x_shape), _any(*w_shape)] + ([_any(w_shape[0])] if bias else [])
    build = (lambda x, w, b: xg.conv2d(x, w, b, **kw)) if bias else (lambda x, w: xg.conv2d(x, w, **kw))
    ref = (lambda x, w, b: np_conv2d(x, w, b, **kw)) if bias else (lambda x, w: np_conv2d(x, w, **kw))
    return Case(id, "conv2d", build, ref, inputs, kinds=kinds, second_order=second_order,
                extra_ops=extra_ops + (_CONV_GRADS if second_order else ()))


def _pool(id, name, x_shape, ref, second_order=None, **kw):
    return Case(id, name, lambda x: getattr(xg, name)(x, **kw), lambda x: ref(x, **kw), [_any(*x_shape)],
                second_order=second_order)


CASES = [
    # ---- conv2d: each variation of the geometry, then second order (conv2d is bilinear) ----
    _conv("conv2d-basic", (2, 3, 5, 5), (4, 3, 3, 3), second_order="strict"),
    _conv("conv2d-bias", (2, 3, 5, 4), (2, 3, 3, 3), bias=True, second_order="loose"),
    _conv("conv2d-stride2-pad1", (2, 2, 6, 5), (3, 2, 3, 3), stride=2, padding=1, second_order="strict"),
    _conv("conv2d-stride-pad-pairs", (1, 2, 6, 5), (3, 2, 2, 3), stride=(2, 1), padding=(0, 1)),
    # rows and columns past the last window: the input gradient is zero there
    _conv("conv2d-stride-leftover", (1, 2, 6, 7), (2, 2, 3, 3), stride=(2, 3)),
    _conv("conv2d-dilation2", (1, 2, 7, 6), (2, 2, 3, 2), dilation=2, padding=1, second_order="strict"),
    _conv("conv2d-dilation-pair", (1, 2, 6, 7), (2, 2, 2, 3), dilation=(1, 2), stride=(1, 2)),
    _conv("conv2d-groups2", (2, 4, 5, 4), (4, 2, 3, 3), groups=2, second_order="strict"),
    _conv("conv2d-depthwise", (2, 3, 4, 5), (6, 1, 3, 3), groups=3, padding=1),
    _conv("conv2d-1x1", (2, 3, 4, 3), (5, 3, 1, 1), second_order="strict"),  # reads x as its own column matrix
    _conv("conv2d-1x1-stride2", (2, 3, 5, 4), (2, 3, 1, 1), stride=2),
    # rows of 8 and more at stride 1 run the direct kernel (ops/conv_direct.cpp): whole and partial chunks of
    # output pixels, blocks of 8, 4, 2 and 1 output channels, asymmetric padding, a 1x1 kernel
    _conv("conv2d-direct-rows", (2, 3, 5, 37), (5, 3, 3, 3), padding=1, second_order="strict"),
    _conv("conv2d-direct-channel-blocks", (1, 2, 4, 9), (15, 2, 2, 3), padding=(0, 2)),
    _conv("conv2d-direct-1x1", (2, 3, 2, 17), (3, 3, 1, 1)),
    _conv("conv2d-kernel-fills-padded-input", (1, 2, 3, 2), (2, 2, 5, 4), padding=1),
    Case("conv2d-same", "conv2d", lambda x, w: xg.conv2d(x, w, padding="same", dilation=(1, 2)),
         lambda x, w: np_conv2d(x, w, padding=(1, 2), dilation=(1, 2)), [_any(1, 2, 5, 4), _any(3, 2, 3, 3)]),
    _conv("conv2d-everything", (2, 4, 6, 5), (2, 2, 2, 3), bias=True, stride=(2, 1), padding=(1, 2), dilation=(2, 1),
          groups=2, second_order="loose"),
    _conv("conv2d-param-weight", (2, 2, 4, 4), (3, 2, 2, 2), bias=True, kinds=("input", "param", "param"), padding=1,
          second_order="loose"),
    Case("conv2d-of-transposed-view", "conv2d", lambda x, w: xg.conv2d(x.transpose(0, 1, 3, 2), w, padding=1),
         lambda x, w: np_conv2d(x.transpose(0, 1, 3, 2), w, padding=1), [_any(2, 2, 4, 3), _any(2, 2, 2, 2)],
         extra_ops=("transpose",)),
    Case("conv2d-relu-conv", "conv2d", lambda x, w, v: xg.conv2d(xg.relu(xg.conv2d(x, w, padding=1)), v),
         lambda x, w, v: np_conv2d(np.maximum(np_conv2d(x, w, padding=1), 0), v),
         [_any(1, 2, 4, 4), _any(3, 2, 3, 3), _any(2, 3, 2, 2)], extra_ops=("relu",)),
    # ---- max pooling: x enters the second-order terms only through dy (the gather op) ----
    _pool("max_pool2d-k2", "max_pool2d", (2, 3, 4, 6), np_max_pool2d, kernel_size=2),
    _pool("max_pool2d-k3-s2-p1", "max_pool2d", (2, 2, 7, 6), np_max_pool2d, kernel_size=3, stride=2, padding=1),
    _pool("max_pool2d-rect", "max_pool2d", (1, 2, 5, 6), np_max_pool2d, kernel_size=(3, 2), stride=(1, 2),
          padding=(1, 1)),
    _pool("max_pool2d-leftover", "max_pool2d", (1, 2, 5, 7), np_max_pool2d, kernel_size=2),
    _pool("max_pool2d-overlapping", "max_pool2d", (1, 2, 4, 5), np_max_pool2d, second_order="loose", kernel_size=3,
          stride=1),
    Case("max_pool2d-squared", "max_pool2d", lambda x: xg.square(xg.max_pool2d(x, 2, stride=1, padding=1)),
         lambda x: np.square(np_max_pool2d(x, 2, stride=1, padding=1)), [_any(1, 2, 4, 3)], second_order="strict",
         extra_ops=("max_pool2d_grad", "max_pool2d_gather", "square")),
    # ---- average pooling ----
    _pool("avg_pool2d-k2", "avg_pool2d", (2, 3, 4, 6), np_avg_pool2d, kernel_size=2),
    _pool("avg_pool2d-k3-s2-p1", "avg_pool2d", (2, 2, 7, 6), np_avg_pool2d, kernel_size=3, stride=2, padding=1),
    _pool("avg_pool2d-exclude-pad", "avg_pool2d", (1, 2, 5, 6), np_avg_pool2d, kernel_size=(3, 2), stride=(2, 1),
          padding=(1, 1), count_include_pad=False),
    Case("avg_pool2d-squared", "avg_pool2d", lambda x: xg.square(xg.avg_pool2d(x, 3, stride=2, padding=1)),
         lambda x: np.square(np_avg_pool2d(x, 3, stride=2, padding=1)), [_any(1, 2, 5, 4)], second_order="strict",
         extra_ops=("avg_pool2d_grad", "square")),
    Case("avg_pool2d-squared-exclude-pad", "avg_pool2d",
         lambda x: xg.square(xg.avg_pool2d(x, 2, padding=1, count_include_pad=False)),
         lambda x: np.square(np_avg_pool2d(x, 2, padding=1, count_include_pad=False)), [_any(1, 2, 4, 5)],
         second_order="strict", extra_ops=("avg_pool2d_grad",)),
    # ---- a small network ----
    Case("conv-pool-net", "conv2d",
         lambda x, w, b: xg.avg_pool2d(xg.max_pool2d(xg.tanh(xg.conv2d(x, w, b, padding=1)), 2), 2),
         lambda x, w, b: np_avg_pool2d(np_max_pool2d(np.tanh(np_conv2d(x, w, b, padding=1)), 2), 2),
         [_any(2, 2, 4, 4), _any(3, 2, 3, 3), _any(3)], second_order="loose",
         extra_ops=("tanh", "max_pool2d", "avg_pool2d") + _CONV_GRADS),
]

globals().update(table_tests(CASES))


# ---------------------------------------------------------------------------
# parity with PyTorch, forward and gradients
# ---------------------------------------------------------------------------

def _torch():
    import torch  # a test dependency (Debian python3-torch), installed by `make test`
    return torch


def _run_with_grads(build, arrays, dtype):
    """Output and gradients of sum(out * R) for every input; R is returned too."""
    g = xg.Graph()
    nodes = [g.input(f"a{i}", (None,) + a.shape[1:] if i == 0 else a.shape, dtype=dtype) for i, a in enumerate(arrays)]
    out = build(*nodes)
    probe = g.compile(out)(**{f"a{i}": a.astype(dtype) for i, a in enumerate(arrays)})
    R = np.random.default_rng(7).standard_normal(probe.shape).astype(dtype)
    grads = xg.grad(xg.sum(out * g.const(R)), nodes)
    res = g.compile([out] + grads)(**{f"a{i}": a.astype(dtype) for i, a in enumerate(arrays)})
    return res, R


def _torch_with_grads(fn, arrays, R, dtype):
    torch = _torch()
    ts = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    out = fn(*ts)
    (out * torch.tensor(R)).sum().backward()
    return [out.detach().numpy()] + [t.grad.numpy() for t in ts]


TORCH_CONV = [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    dict(groups=2, padding=2, dilation=2),
    dict(groups=4),  # depthwise
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", TORCH_CONV, ids=[str(k) for k in TORCH_CONV])
def test_conv2d_matches_torch(kw, dtype):
    F = _torch().nn.functional
    groups = kw.get("groups", 1)
    x, w, b = _any(3, 4, 9, 8), _any(8, 4 // groups, 3, 3), _any(8)
    ours, R = _run_with_grads(lambda x, w, b: xg.conv2d(x, w, b, **kw), [x, w, b], dtype)
    theirs = _torch_with_grads(lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b], R, dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for name, a, t in zip(["y", "dx", "dw", "db"], ours, theirs):
        np.testing.assert_allclose(a, t, err_msg=name, **tol)


DIRECT = [  # (x shape, w shape, padding): batches large enough to split across threads
    ((32, 3, 32, 32), (16, 3, 3, 3), 1),
    ((5, 7, 11, 40), (9, 7, 3, 5), (2, 0)),
    ((4, 20, 8, 8), (8, 20, 3, 3), 1),  # 180 taps: still direct
    ((3, 40, 9, 9), (6, 40, 3, 3), 1),  # 360 taps: im2col + GEMM
    ((1, 3, 64, 64), (16, 3, 3, 3), 1),  # batch 1: output rows split across threads
    ((1, 8, 33, 40), (9, 8, 3, 3), (1, 2)),  # batch 1, an odd number of rows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape,w_shape,padding", DIRECT)
def test_conv2d_direct_kernel_matches_torch_on_batches(x_shape, w_shape, padding, dtype):
    F = _torch().nn.functional
    x, w = _any(*x_shape), _any(*w_shape)
    ours, R = _run_with_grads(lambda x, w: xg.conv2d(x, w, padding=padding), [x, w], dtype)
    theirs = _torch_with_grads(lambda x, w: F.conv2d(x, w, padding=padding), [x, w], R, dtype)
    for name, a, t in zip(["y", "dx", "dw"], ours, theirs):
        # float32 sums over a whole batch (dw: 32K terms) round at about 1e-5 of their largest term
        scale = np.abs(t).max()
        tol = dict(rtol=1e-4, atol=5e-5 * scale) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(a, t, err_msg=name, **tol)


TORCH_POOL = [
    ("max_pool2d", dict(kernel_size=2)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool2d", dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1))),
    ("avg_pool2d", dict(kernel_size=2)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg_pool2d", dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", TORCH_POOL, ids=[f"{n}-{k}" for n, k in TORCH_POOL])
def test_pooling_matches_torch(name, kw, dtype):
    F = _torch().nn.functional
    x = _any(2, 3, 7, 8)
    ours, R = _run_with_grads(lambda x: getattr(xg, name)(x, **kw), [x], dtype)
    theirs = _torch_with_grads(lambda x: getattr(F, name)(x, **kw), [x], R, dtype)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a, t, rtol=1e-5, atol=1e-6)


def test_max_pool2d_ties_route_to_the_first_maximum_like_torch():
    torch = _torch()
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1:3, 1:3] = 1.0  # every 3x3 window holds several equal maxima
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 3, stride=1, padding=1).sum().backward()
    g = xg.Graph()
    X = g.input("x", x.shape, dtype=np.float64)
    (gx,) = xg.grad(xg.sum(xg.max_pool2d(X, 3, stride=1, padding=1)), [X])
    np.testing.assert_array_equal(g.compile(gx)(x=x), tx.grad.numpy())


def test_conv2d_double_backward_matches_torch():
    torch = _torch()
    F = torch.nn.functional
    x, w, v = _any(2, 2, 5, 5), _any(3, 2, 3, 3), _any(2, 2, 5, 5)
    g = xg.Graph()
    X, W = g.input("x", x.shape, dtype=np.float64), g.input("w", w.shape, dtype=np.float64)
    (gx,) = xg.grad(xg.sum(xg.square(xg.conv2d(X, W, stride=2, padding=1))), [X])
    (gw,) = xg.grad(xg.sum(gx * g.const(v)), [W])
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (tgx,) = torch.autograd.grad(F.conv2d(tx, tw, stride=2, padding=1).square().sum(), [tx], create_graph=True)
    (tgw,) = torch.autograd.grad((tgx * torch.tensor(v)).sum(), [tw])
    np.testing.assert_allclose(g.compile(gw)(x=x, w=w), tgw.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def _inputs(*shapes):
    g = xg.Graph()
    return [g.input(f"a{i}", s) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("x_shape,w_shape,kw,words", [
    ((2, 3, 5, 5), (4, 2, 3, 3), {}, ["has 3 channels", "(2, 3, 5, 5)", "(4, 2, 3, 3)", "expects 2"]),
    ((2, 3, 5, 5), (4, 1, 3, 3), dict(groups=2), ["groups=2 does not divide the 3 input channels"]),
    ((2, 4, 5, 5), (3, 2, 3, 3), dict(groups=2), ["groups=2 does not divide the 3 output channels", "(3, 2, 3, 3)"]),
    ((2, 3, 4, 4), (4, 3, 5, 5), {}, ["larger than the padded input 4", "(2, 3, 4, 4)", "(4, 3, 5, 5)"]),
    ((2, 3, 4, 4), (4, 3, 3, 3), dict(dilation=2), ["dilated extent 5", "padded input 4"]),
    ((2, 3, 5), (4, 3, 3, 3), {}, ["(N, C_in, H, W)", "(2, 3, 5)"]),
    ((2, 3, 5, 5), (4, 3, 3, 3), dict(stride=0), ["stride"]),
    ((2, 3, 5, 5), (4, 3, 3, 3), dict(groups=0), ["groups must be positive"]),
    ((None, 3, 5, 5), (4, 2, 3, 3), {}, ["has 3 channels", "(None, 3, 5, 5)"]),
])
def test_conv2d_shape_errors_name_the_op_and_shapes(x_shape, w_shape, kw, words):
    x, w = _inputs(x_shape, w_shape)
    with pytest.raises(ValueError) as err:
        xg.conv2d(x, w, **kw)
    for word in ["conv2d"] + words:
        assert word in str(err.value), str(err.value)


def test_conv2d_bias_and_argument_errors():
    x, w, b = _inputs((2, 3, 5, 5), (4, 3, 3, 3), (3,))
    with pytest.raises(ValueError, match=r"conv2d: bias of shape \(3,\) does not match the 4 output channels"):
        xg.conv2d(x, w, b)
    with pytest.raises(TypeError, match="conv2d: stride must be an int or a pair"):
        xg.conv2d(x, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        xg.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be an int, a pair, 'valid' or 'same'"):
        xg.conv2d(x, w, padding="full")
    with pytest.raises(TypeError, match="float32 or float64"):
        xg.conv2d(xg.astype(x, xg.int64), w)


@pytest.mark.parametrize("name,kw,words", [
    ("max_pool2d", dict(kernel_size=2, padding=2), ["max_pool2d", "at most half of kernel (2, 2)"]),
    ("avg_pool2d", dict(kernel_size=(3, 1), padding=(1, 1)), ["avg_pool2d", "at most half of kernel (3, 1)"]),
    ("max_pool2d", dict(kernel_size=7), ["max_pool2d", "larger than the padded input 5", "(2, 3, 5, 6)"]),
    ("avg_pool2d", dict(kernel_size=2, stride=0), ["avg_pool2d", "stride must be positive"]),
])
def test_pooling_errors(name, kw, words):
    (x,) = _inputs((2, 3, 5, 6))
    with pytest.raises(ValueError) as err:
        getattr(xg, name)(x, **kw)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_run_time_shape_errors_name_the_op():
    g = xg.Graph()
    x = g.input("x", (None, 3, None, None))
    w = g.input("w", (4, 3, 3, 3))
    prog = g.compile(xg.conv2d(x, w))
    assert prog(x=np.ones((1, 3, 4, 4), np.float32), w=np.ones((4, 3, 3, 3), np.float32)).shape == (1, 4, 2, 2)
    with pytest.raises(ValueError, match=r"conv2d.*larger than the padded input 2"):
        prog(x=np.ones((1, 3, 2, 4), np.float32), w=np.ones((4, 3, 3, 3), np.float32))


# ---------------------------------------------------------------------------
# one program, many batch sizes and threads (the im2col scratch is per thread)
# ---------------------------------------------------------------------------

def _train_step_program():
    g = xg.Graph()
    x = g.input("x", (None, 3, 8, 8))
    w = g.param("w", _any(4, 3, 3, 3).astype(np.float32))
    b = g.param("b", _any(4).astype(np.float32))
    y = xg.max_pool2d(xg.relu(xg.conv2d(x, w, b, padding=1)), 2)
    loss = xg.mean(xg.square(y))
    return g.compile([y] + xg.grad(loss, [x, w, b])), w.value, b.value


def _reference_step(x, w, b):
    torch = _torch()
    F = torch.nn.functional
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.max_pool2d(F.relu(F.conv2d(tx, tw, tb, padding=1)), 2)
    y.square().mean().backward()
    return [y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()]


def test_print_names_the_convolution_kernel():
    g = xg.Graph()
    x, xs = g.input("x", (None, 3, 32, 32)), g.input("xs", (None, 3, 5, 5))
    w = g.param("w", np.zeros((16, 3, 3, 3), np.float32))
    y, ys = xg.conv2d(x, w, padding=1), xg.conv2d(xs, w, padding=1)
    lines = str(g.compile([y, ys] + xg.grad(xg.sum(y), [x, w]))).splitlines()
    notes = [line.rsplit(" [", 1)[1] for line in lines if "= conv2d" in line]
    assert notes[0].startswith("xgrad direct convolution]"), notes  # rows of 32
    assert notes[1].startswith("im2col + "), notes  # rows of 5: too short for the direct kernel
    # the input gradient at stride 1 is a convolution too (flipped kernel): the direct kernel runs it
    assert any(n.startswith("xgrad direct convolution (transposed)]") for n in notes[2:]), notes
    assert any(n.startswith("xgrad direct convolution (weight gradient)]") for n in notes[2:]), notes


def test_program_runs_at_several_batch_sizes():
    prog, w, b = _train_step_program()
    for n in (4, 1, 7, 4):
        x = _any(n, 3, 8, 8).astype(np.float32)
        for got, want in zip(prog(x=x), _reference_step(x, w, b)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_program_runs_from_several_threads():
    prog, w, b = _train_step_program()
    xs = [_any(n, 3, 8, 8).astype(np.float32) for n in (1, 2, 3, 5, 8, 2, 3, 1)]
    expected = [prog(x=x) for x in xs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(lambda x: prog(x=x), xs), expected):
                for a, e in zip(got, want):
                    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_weight_gradient_keeps_an_infinite_pixel_out_of_taps_it_never_meets(dtype):
    # the direct kernel runs whole chunks of columns; past the row's end it must add nothing, not 0 * inf
    X = np.linspace(-1, 1, 20).reshape(1, 1, 1, 20).astype(dtype)
    X[0, 0, 0, 19] = np.inf  # meets taps j = 1, 2 of a 1x3 kernel with padding 1, never tap j = 0
    R = np.linspace(0.5, 1.5, 20).reshape(1, 1, 1, 20).astype(dtype)
    g = xg.Graph()
    x = g.input("x", X.shape, dtype=dtype)
    w = g.param("w", np.ones((1, 1, 1, 3), dtype))
    y = xg.conv2d(x, w, padding=(0, 1))
    prog = g.compile(xg.grad(xg.sum(y * g.const(R)), [w]))
    assert "xgrad direct convolution" in str(g.compile(y))
    (dw,) = prog(x=X)
    padded = np.concatenate([[0.0], X[0, 0, 0].astype(np.float64), [0.0]])
    assert np.isfinite(dw[0, 0, 0, 0]) and np.isinf(dw[0, 0, 0, 1]) and np.isinf(dw[0, 0, 0, 2])
    np.testing.assert_allclose(dw[0, 0, 0, 0], np.dot(R[0, 0, 0], padded[:20]), rtol=1e-5)
