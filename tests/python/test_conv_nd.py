"""Convolution and pooling over 1 and 3 spatial dims: the op table (torch.nn.functional as the reference, finite
differences, ONNX Runtime, the CUDA backend through the table), gradients against PyTorch, and clear errors.

They are built from the 2-D ops, so each case lists the registered ops it exercises."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import xgrad as xg
from optable import Case, any_values as _any, table_tests


def _ref(fn, **kw):
    """A torch.nn.functional op as a numpy reference (in the arrays' own dtype)."""
    return lambda *arrays: fn(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays), **kw).numpy()


def _conv(id, dims, x_shape, w_shape, bias=False, second_order=None, **kw):
    xg_fn, torch_fn = {1: (xg.conv1d, F.conv1d), 3: (xg.conv3d, F.conv3d)}[dims]
    inputs = [_any(*x_shape), _any(*w_shape)] + ([_any(w_shape[0])] if bias else [])
    build = (lambda x, w, b: xg_fn(x, w, b, **kw)) if bias else (lambda x, w: xg_fn(x, w, **kw))
    # Only the batch is symbolic: 3-D folds C_out into a reshape, so weights are static.
    return Case(id, "conv2d", build, _ref(torch_fn, **kw), inputs, second_order=second_order,
                dynamic=(True,) + (False,) * (len(inputs) - 1), extra_ops=("conv2d_grad_input", "conv2d_grad_weight"))


def _pool(id, fn, torch_fn, x_shape, op, second_order=None, **kw):
    return Case(id, op, lambda x: fn(x, **kw), _ref(torch_fn, **kw), [_any(*x_shape)], second_order=second_order)


CASES = [
    _conv("conv1d-basic", 1, (2, 3, 7), (4, 3, 3), second_order="strict"),
    _conv("conv1d-everything", 1, (2, 4, 11), (6, 2, 3), bias=True, stride=2, padding=2, dilation=2, groups=2),
    _conv("conv1d-depthwise", 1, (2, 3, 6), (3, 1, 2), groups=3, padding=1),
    _conv("conv3d-basic", 3, (2, 2, 4, 4, 3), (3, 2, 2, 2, 2), second_order="strict"),
    _conv("conv3d-everything", 3, (1, 4, 6, 5, 5), (2, 2, 3, 2, 3), bias=True, stride=(2, 1, 2), padding=(1, 0, 1),
          dilation=(2, 1, 1), groups=2),
    _conv("conv3d-1x1x1", 3, (2, 3, 2, 3, 2), (4, 3, 1, 1, 1), bias=True),
    _pool("max_pool1d", xg.max_pool1d, F.max_pool1d, (2, 3, 9), "max_pool2d", kernel_size=3, stride=2, padding=1),
    _pool("avg_pool1d", xg.avg_pool1d, F.avg_pool1d, (2, 3, 8), "avg_pool2d", kernel_size=2),
    _pool("avg_pool1d-exclude-pad", xg.avg_pool1d, F.avg_pool1d, (1, 2, 7), "avg_pool2d", kernel_size=3, stride=2,
          padding=1, count_include_pad=False),
    _pool("max_pool3d", xg.max_pool3d, F.max_pool3d, (2, 2, 5, 4, 4), "max_pool2d", kernel_size=2),
    _pool("max_pool3d-stride-pad", xg.max_pool3d, F.max_pool3d, (1, 2, 5, 6, 5), "max_pool2d", kernel_size=(3, 2, 3),
          stride=(2, 1, 2), padding=(1, 1, 1)),
    _pool("avg_pool3d", xg.avg_pool3d, F.avg_pool3d, (2, 2, 4, 4, 6), "avg_pool2d", second_order="loose",
          kernel_size=(2, 2, 3)),
    _pool("avg_pool3d-exclude-pad", xg.avg_pool3d, F.avg_pool3d, (1, 2, 5, 5, 4), "avg_pool2d", kernel_size=3,
          stride=(2, 2, 1), padding=1, count_include_pad=False),
    _pool("avg_pool3d-include-pad", xg.avg_pool3d, F.avg_pool3d, (1, 1, 4, 5, 5), "avg_pool2d", kernel_size=(3, 3, 2),
          stride=2, padding=(1, 1, 0)),
    # dilation and ceil_mode: the windows' fold (pad, one strided slice per kernel offset, maximum / add)
    Case("max_pool2d-dilation-ceil", "slice", lambda x: xg.max_pool2d(x, 3, 2, 1, dilation=2, ceil_mode=True),
         _ref(F.max_pool2d, kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True), [_any(2, 3, 9, 8)],
         extra_ops=("pad", "maximum"), second_order="loose"),
    _pool("max_pool2d-ceil", xg.max_pool2d, F.max_pool2d, (2, 2, 7, 7), "maximum", kernel_size=2, stride=2, ceil_mode=True),
    _pool("avg_pool2d-ceil", xg.avg_pool2d, F.avg_pool2d, (2, 2, 7, 6), "pad", kernel_size=3, stride=2, padding=1,
          ceil_mode=True, second_order="loose"),
    _pool("avg_pool2d-ceil-exclude-pad", xg.avg_pool2d, F.avg_pool2d, (1, 2, 8, 7), "div", kernel_size=3, stride=2,
          padding=1, ceil_mode=True, count_include_pad=False),
    _pool("max_pool1d-dilation", xg.max_pool1d, F.max_pool1d, (2, 3, 10), "maximum", kernel_size=3, padding=1, dilation=2),
    _pool("max_pool3d-dilation-ceil", xg.max_pool3d, F.max_pool3d, (1, 2, 6, 5, 5), "maximum", kernel_size=2, stride=2,
          dilation=(2, 1, 1), ceil_mode=True),
    _pool("avg_pool3d-ceil", xg.avg_pool3d, F.avg_pool3d, (1, 2, 5, 5, 4), "add", kernel_size=2, stride=2, ceil_mode=True),
]

globals().update(table_tests(CASES))


@pytest.mark.parametrize("dims", [1, 3])
def test_gradients_match_torch(dims):
    """Values and the gradients of every argument, float64, against PyTorch's own conv1d / conv3d."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 4) + (9,) * dims)
    w0 = rng.standard_normal((6, 2) + (3,) * dims)
    b0 = rng.standard_normal(6)
    kw = dict(stride=2, padding=1, dilation=1, groups=2)
    g = xg.Graph()
    x, w, b = g.param("x", x0), g.param("w", w0), g.param("b", b0)
    y = (xg.conv1d if dims == 1 else xg.conv3d)(x, w, b, **kw)
    out, *grads = g.compile([y] + xg.grad(xg.sum(xg.tanh(y)), [x, w, b]))()
    ts = [torch.tensor(a, requires_grad=True) for a in (x0, w0, b0)]
    yt = (F.conv1d if dims == 1 else F.conv3d)(*ts, **kw)
    torch.tanh(yt).sum().backward()
    np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, t in zip(grads, ts):
        np.testing.assert_allclose(ours, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_symbolic_batch_runs_at_several_sizes():
    g = xg.Graph()
    x = g.input("x", (None, 2, 4, 5, 5), dtype=xg.float64)
    w = g.param("w", np.random.default_rng(1).standard_normal((3, 2, 2, 3, 3)))
    prog = g.compile(xg.max_pool3d(xg.conv3d(x, w, padding=1), 2))
    for n in (1, 3):
        xs = np.random.default_rng(n).standard_normal((n, 2, 4, 5, 5))
        want = F.max_pool3d(F.conv3d(torch.tensor(xs), torch.tensor(w.value), padding=1), 2).numpy()
        np.testing.assert_allclose(prog(x=xs), want, rtol=1e-10)


def test_errors_name_the_op_and_shapes():
    g = xg.Graph()
    x1, x3 = g.input("x1", (2, 3, 8)), g.input("x3", (None, 3, 4, 4, 4))
    with pytest.raises(ValueError, match=r"conv1d: expects input \(N, C_in, L\).*\(2, 3, 8\) and \(4, 3, 3, 3\)"):
        xg.conv1d(x1, g.param("w4", np.zeros((4, 3, 3, 3), np.float32)))
    with pytest.raises(ValueError, match=r"conv3d: input \(None, 3, 4, 4, 4\) has 3 channels, but weight"):
        xg.conv3d(x3, g.param("w5", np.zeros((2, 2, 1, 1, 1), np.float32)))
    with pytest.raises(ValueError, match="conv3d: the window .* larger than the padded depth 4"):
        xg.conv3d(x3, g.param("w6", np.zeros((2, 3, 5, 1, 1), np.float32)))
    with pytest.raises(ValueError, match=r"max_pool3d: needs the input's channels, depth, height and width static"):
        xg.max_pool3d(g.input("d", (2, 3, None, 4, 4)), 2)
    with pytest.raises(ValueError, match="avg_pool1d: kernel and stride must be positive and padding between 0 and half"):
        xg.avg_pool1d(x1, 2, padding=2)
    with pytest.raises(TypeError, match=r"conv3d: stride must be an int or 3 ints"):
        xg.conv3d(x3, g.param("w7", np.zeros((2, 3, 1, 1, 1), np.float32)), stride=(1, 2))


@pytest.mark.parametrize("dims", [1, 3])
def test_conv_layers_match_torch_layers(dims):
    """xg.nn.Conv1d / Conv3d: torch's weight layout and default init bounds; the same outputs with torch's weights."""
    layer_cls, torch_cls = {1: (xg.nn.Conv1d, torch.nn.Conv1d), 3: (xg.nn.Conv3d, torch.nn.Conv3d)}[dims]
    g = xg.Graph()
    x = g.input("x", (None, 4) + (6,) * dims, dtype=xg.float64)
    layer = layer_cls(g, 4, 6, 3, stride=2, padding=1, groups=2, seed=0, dtype=xg.float64)
    theirs = torch_cls(4, 6, 3, stride=2, padding=1, groups=2).double()
    assert layer.weight.shape == tuple(theirs.weight.shape) and layer.bias.shape == tuple(theirs.bias.shape)
    bound = 1 / np.sqrt(2 * 3 ** dims)  # 1 / sqrt(fan_in), fan_in = C_in / groups * prod(kernel)
    assert np.abs(layer.weight.value).max() <= bound and np.abs(layer.bias.value).max() <= bound
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(layer.weight.value))
        theirs.bias.copy_(torch.tensor(layer.bias.value))
    xs = np.random.default_rng(0).standard_normal((2, 4) + (6,) * dims)
    np.testing.assert_allclose(g.compile(layer(x))(x=xs), theirs(torch.tensor(xs)).detach().numpy(), rtol=1e-10)


def test_pool_dilation_and_ceil_mode_errors_name_the_op():
    g = xg.Graph()
    with pytest.raises(ValueError, match="ceil_mode or uneven padding needs static spatial dims"):
        xg.max_pool2d(g.input("x", (1, 1, None, 4)), 2, ceil_mode=True)
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half of kernel"):
        xg.max_pool2d(g.input("y", (1, 1, 6, 6)), 2, padding=2, dilation=2)
    with pytest.raises(ValueError, match="max_pool2d: dilation must be positive"):
        xg.max_pool2d(g.input("z", (1, 1, 6, 6)), 2, dilation=0)
    with pytest.raises(ValueError, match=r"the window \(7\) is larger than the padded input"):
        xg.max_pool1d(g.input("w", (1, 1, 5)), 3, dilation=3)
    with pytest.raises(TypeError, match="expects a float32 or float64 input, got int64"):
        xg.max_pool2d(g.input("i", (1, 1, 5, 5), dtype=np.int64), 2, dilation=2)
    x = g.input("s", (None, 4))
    with pytest.raises(ValueError, match="slice: axis -1 is repeated"):
        xg.slice(x, [0, 0], [3, 3], axes=(1, -1))
