"""Indexing, slicing, concatenation, splitting and padding: the op table plus errors."""
import numpy as np
import pytest

import xgrad as xg
from optable import Case, any_values as _any, table_tests

SLICE_GRADS = ("slice_grad",)

CASES = [
    Case("slice-basic", "slice", lambda x: x[1:3], lambda x: x[1:3], [_any(4, 3)], second_order="loose",
         extra_ops=SLICE_GRADS),
    Case("slice-negative-step", "slice", lambda x: x[..., ::-1], lambda x: x[..., ::-1], [_any(4, 3)],
         second_order="loose", extra_ops=SLICE_GRADS),
    Case("slice-step2-offset", "slice", lambda x: x[::2, 1:], lambda x: x[::2, 1:], [_any(5, 3)], second_order="loose",
         extra_ops=SLICE_GRADS),
    Case("slice-negative-bounds", "slice", lambda x: x[-3:-1, -2:], lambda x: x[-3:-1, -2:], [_any(4, 3)],
         extra_ops=SLICE_GRADS),
    Case("index-int-and-none", "squeeze", lambda x: x[:, None, 2, -1], lambda x: x[:, None, 2, -1], [_any(4, 3, 5)],
         extra_ops=("slice", "unsqueeze") + SLICE_GRADS),
    Case("index-first-row", "squeeze", lambda x: x[0], lambda x: x[0], [_any(4, 3)], dynamic=(False,)),
    Case("index-reversed-rows-of-transpose", "slice", lambda x: x.T[::-1, 1:], lambda x: x.T[::-1, 1:], [_any(4, 3)]),
    Case("index-int-array", "take", lambda x: x[np.array([3, 0, 3])], lambda x: x[[3, 0, 3]], [_any(4, 3)],
         dynamic=(False,)),
    Case("concat", "concat", lambda a, b: xg.concat([a, b], 1), lambda a, b: np.concatenate([a, b], 1),
         [_any(4, 3), _any(4, 2)], second_order="loose", extra_ops=("concat_part",)),
    Case("concat-axis0-three", "concat", lambda a, b: xg.concat([a, b, a * 2], 0),
         lambda a, b: np.concatenate([a, b, a * 2], 0), [_any(2, 3), _any(3, 3)], second_order="loose",
         extra_ops=("concat_part",)),
    Case("stack", "concat", lambda a, b: xg.stack([a, b], 1), lambda a, b: np.stack([a, b], 1), [_any(4, 3), _any(4, 3)],
         second_order="loose"),
    Case("split", "slice", lambda x: xg.split(x, [1, 3], 1)[1] * 2 + xg.split(x, 2, 1)[0],
         lambda x: np.split(x, [1, 3], 1)[1] * 2 + np.split(x, 2, 1)[0], [_any(3, 4)], second_order="loose"),
    Case("squeeze", "squeeze", lambda x: xg.squeeze(x, 1), lambda x: np.squeeze(x, 1), [_any(4, 1, 3)],
         second_order="loose"),
    Case("squeeze-all-method", "squeeze", lambda x: x.squeeze(), lambda x: np.squeeze(x), [_any(1, 3, 1)],
         dynamic=(False,)),
    Case("expand_dims", "unsqueeze", lambda x: xg.expand_dims(x, (0, -1)), lambda x: np.expand_dims(x, (0, -1)),
         [_any(4, 3)], second_order="loose"),
    Case("pad", "pad", lambda x: xg.pad(x, ((0, 0), (1, 2)), constant_values=0.5),
         lambda x: np.pad(x, ((0, 0), (1, 2)), constant_values=0.5), [_any(3, 2)], second_order="loose"),
    Case("pad-int", "pad", lambda x: xg.pad(x, 1), lambda x: np.pad(x, 1), [_any(2, 3)]),
    # reflect and edge gather along each padded axis (take), so the batch axis stays symbolic
    Case("pad-reflect", "take", lambda x: xg.pad(x, ((0, 0), (2, 1), (0, 3)), mode="reflect"),
         lambda x: np.pad(x, ((0, 0), (2, 1), (0, 3)), mode="reflect"), [_any(2, 3, 4)], second_order="loose"),
    Case("pad-edge", "take", lambda x: xg.pad(x, ((0, 0), (3, 0), (1, 2)), mode="edge"),
         lambda x: np.pad(x, ((0, 0), (3, 0), (1, 2)), mode="edge"), [_any(2, 2, 3)], second_order="loose"),
    Case("pad-replicate-nchw", "take", lambda x: xg.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode="replicate"),
         lambda x: np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode="edge"), [_any(2, 2, 3, 3)]),
    # ---- shapes computed in the graph: resolved when the program plans each batch size ----
    Case("shape-of", "shape_of", lambda x: xg.shape_of(x), lambda x: np.array(x.shape), [_any(4, 3, 2)], grad=False,
         out_dtype=np.int64),
    Case("reshape-to-batch-by-rest", "reshape_to",
         lambda x: xg.reshape(x, xg.concat([xg.shape_of(x)[:1], x.graph.const(np.array([-1]), "rest")])),
         lambda x: x.reshape(x.shape[0], -1), [_any(4, 3, 2)], second_order="loose", extra_ops=("shape_of",)),
    Case("reshape-to-reversed-dims", "reshape_to", lambda x: x.reshape(xg.shape_of(x)[::-1]),
         lambda x: x.reshape(x.shape[::-1]), [_any(4, 3, 2)], second_order="loose"),
    Case("expand-to-shape-of", "expand", lambda x: xg.expand(x[:, :1], xg.shape_of(x)),
         lambda x: np.broadcast_to(x[:, :1], x.shape), [_any(4, 3)], second_order="loose"),
    Case("arange-to-batch", "arange",
         lambda x: xg.arange(0, xg.reshape(xg.shape_of(x)[:1], ()), 1), lambda x: np.arange(x.shape[0]), [_any(4, 3)],
         grad=False, out_dtype=np.int64),
    Case("arange-float-by-half", "arange",
         lambda x: xg.arange(0.25, xg.astype(xg.reshape(xg.shape_of(x)[:1], ()), np.float64), 0.5),
         lambda x: np.arange(0.25, x.shape[0], 0.5), [_any(4, 3)], grad=False, out_dtype=np.float64),
    Case("slice-by-computed-bounds", "slice_indices", lambda x: xg.slice(x, xg.shape_of(x)[1:], [10], axes=(0,)),
         lambda x: x[x.shape[1]:10], [_any(5, 2)], second_order="loose", extra_ops=("take",)),
    Case("slice-computed-reversed", "slice_indices",
         lambda x: xg.slice(x, xg.shape_of(x), [-100, 0], axes=(0, 1), steps=(-1, -2)),
         lambda x: x[x.shape[0]::-1, x.shape[1]:0:-2], [_any(4, 5)], second_order="loose", extra_ops=("take",)),
    Case("expand-both-ways", "expand", lambda x: xg.expand(x[:, :1], xg.shape_of(x)[1:]),
         lambda x: np.broadcast_to(x[:, :1], x.shape), [_any(4, 3)], second_order="loose"),
]

globals().update(table_tests(CASES))


def test_slices_are_views():
    g = xg.Graph()
    x = g.input("x", (None, 6), dtype=np.float64)
    prog = g.compile(xg.sum(x[:, ::-2] * 2.0))
    prog(x=np.ones((3, 6)))
    assert "slice_" in str(prog) and " view" in str(prog)


def test_indexing_errors():
    g = xg.Graph()
    x = g.input("x", (4, 3))
    with pytest.raises(IndexError, match="out of bounds"):
        x[4]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match="only int64"):
        x[np.array([True, False, True, False])]
    with pytest.raises(ValueError, match="step cannot be zero"):
        x[::0]
    with pytest.raises(ValueError, match="op 'concat'.*differ outside axis"):
        xg.concat([x, g.input("y", (5, 2))], 1)
    with pytest.raises(ValueError, match="does not divide into 3 equal parts"):
        xg.split(x, 3, 0)
    with pytest.raises(ValueError, match="pads"):
        xg.pad(x, ((1, 1),))


def test_pad_mode_errors_name_the_axis_and_shape():
    g = xg.Graph()
    x = g.input("x", (None, 3))
    with pytest.raises(ValueError, match=r"reflect padding \(3, 0\) of axis 1 of \(None, 3\).*at most 2"):
        xg.pad(x, ((0, 0), (3, 0)), mode="reflect")
    with pytest.raises(ValueError, match="axis 0 .* symbolic"):
        xg.pad(x, ((1, 0), (0, 0)), mode="edge")
    with pytest.raises(ValueError, match="no edge to repeat"):
        xg.pad(g.input("e", (2, 0)), ((0, 0), (1, 1)), mode="edge")
    with pytest.raises(ValueError, match="mode must be 'constant', 'reflect' or 'edge'"):
        xg.pad(x, 1, mode="wrap")
    with pytest.raises(ValueError, match="pads need"):
        xg.pad(x, ((1, 1),), mode="reflect")


def test_pad_reflect_matches_torch_and_its_gradient_folds_the_border():
    """PyTorch's reflect / replicate padding (NCHW), values and gradients."""
    import torch  # a test dependency (Debian python3-torch), installed by `make test`
    x0 = np.random.default_rng(0).normal(size=(2, 3, 4, 5))
    for mode, torch_mode in (("reflect", "reflect"), ("edge", "replicate")):
        g = xg.Graph()
        x = g.param("x", x0)
        y = xg.pad(x, ((0, 0), (0, 0), (2, 1), (3, 2)), mode=mode)
        (gx,) = xg.grad(xg.sum(y * y), [x])
        out, grad = g.compile([y, gx])()
        xt = torch.tensor(x0, requires_grad=True)
        yt = torch.nn.functional.pad(xt, (3, 2, 2, 1), mode=torch_mode)
        (yt * yt).sum().backward()
        np.testing.assert_allclose(out, yt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12)
