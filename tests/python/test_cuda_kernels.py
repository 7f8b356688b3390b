"""The CUDA kernels' less travelled paths, each program run on "cuda" and on the CPU with the same feeds.

The op table (test_cuda_optable.py) runs every op on small packed arrays; these cases reach what it does not:
the reduction kernel for many outputs, strided and broadcast operands, batched matmuls with broadcast or
reversed operands, softmax along a strided axis, negative and bad indices, dropout masks, overlapping pooling
windows. They run on a GPU when there is one, and in every `make test` on the CPU emulator of CUDA
(`make test-cuda-emulator`, cuda/emulator/), where the kernels run thread by thread with bounds checks.
"""
import numpy as np
import pytest

import xgrad as xg

pytestmark = pytest.mark.skipif(not xg.cuda.is_available(), reason=f"no GPU: {xg.cuda.why_unavailable()}")

F32, F64 = np.float32, np.float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _same_on_gpu(build, feeds, rtol=1e-5, atol=1e-6, grad_of=None):
    """build(g, *inputs) -> list of output nodes, on inputs named after feeds; with grad_of (input names), the
    gradients of the sum of the first output with respect to them are compared too."""
    results = []
    for device in ("cpu", "cuda"):
        g = xg.Graph()
        inputs = {name: g.input(name, value.shape, dtype=value.dtype) for name, value in feeds.items()}
        outs = build(g, **inputs)
        if grad_of:
            outs = outs + xg.grad(xg.sum(outs[0]), [inputs[n] for n in grad_of])
        got = g.compile(outs, device=device)(**feeds)
        results.append(got if isinstance(got, list) else [got])
    for cpu, gpu in zip(*results):
        assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
        np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=atol)
    return results[1]


def test_reductions_over_many_outputs_few_outputs_and_strided_views():
    x = _rng().standard_normal((5000, 3)).astype(F32)
    x[7, 1] = np.nan
    _same_on_gpu(lambda g, x: [xg.sum(x, axis=1),       # 5000 outputs: a thread per output
                               xg.sum(x, axis=0),       # 3 outputs of 5000 elements: a block per output
                               xg.max(x, axis=1),       # NaN propagates, as numpy's max
                               xg.min(x.T, axis=1),     # a transposed view
                               xg.mean(x[::-2], axis=0),
                               xg.prod(x[:20] * 0.5 + 1, axis=0)],
                 {"x": x}, rtol=1e-4, atol=1e-4, grad_of=["x"])


def test_elementwise_ops_on_strided_reversed_and_broadcast_operands():
    a = _rng(1).standard_normal((6, 5))
    b = _rng(2).standard_normal((5,))
    c = _rng(3).standard_normal((1, 2, 1, 3, 1, 2, 1, 2))  # eight dimensions, broadcast on four of them
    _same_on_gpu(lambda g, a, b, c: [xg.exp(a.T) * b[:, None],
                                     a[::-1, ::2] - b[::2],
                                     xg.where(a > 0, a, b * 2),
                                     xg.maximum(c, xg.reshape(c, (2, 1, 3, 1, 2, 1, 2, 1))),
                                     (a < 0.5).astype(np.float64)],
                 {"a": a, "b": b, "c": c}, rtol=1e-12, atol=1e-12, grad_of=["a", "b"])


def test_matmuls_with_transposed_reversed_and_broadcast_batch_operands():
    a = _rng(4).standard_normal((2, 1, 3, 4)).astype(F32)
    b = _rng(5).standard_normal((5, 4, 2)).astype(F32)
    m = _rng(6).standard_normal((4, 3)).astype(F32)
    _same_on_gpu(lambda g, a, b, m: [xg.sum(a @ b) * m[0, 0] + xg.sum(m.T @ m) + xg.sum(m[::-1] @ m.T[:, ::-1]),
                                     a @ b,                   # batch axes broadcast: (2, 5, 3, 2)
                                     m.T @ m,                 # a transposed operand: a cuBLAS flag
                                     m[::-1] @ m.T[:, ::-1]],  # reversed rows: packed before cuBLAS
                 {"a": a, "b": b, "m": m}, rtol=1e-4, atol=1e-5, grad_of=["a", "b", "m"])


def test_softmax_along_a_strided_axis_and_over_rows_of_minus_infinity():
    x = _rng(7).standard_normal((300, 7)) * 5
    x[3] = -np.inf
    _same_on_gpu(lambda g, x: [xg.softmax(x, 0), xg.log_softmax(x, 1), xg.softmax(x.T, 1)], {"x": x},
                 rtol=1e-10, atol=1e-12)


def test_gathers_with_negative_indices_and_their_scatter_add_gradients():
    x = _rng(8).standard_normal((5, 4))
    idx = np.array([-1, 0, 2, -1, 4])
    labels = np.array([[3], [0], [-1], [1], [3]])
    _same_on_gpu(lambda g, x: [xg.take(x, g.const(idx), 0) * 2,
                               xg.take_along_axis(x, g.const(labels), 1),
                               xg.argmax(x[:, ::-1], axis=1).astype(np.float64),
                               xg.one_hot(g.const(np.array([3, 0, 1])), 4, dtype=np.float64)],
                 {"x": x}, rtol=1e-12, grad_of=["x"])


def test_a_bad_label_on_the_gpu_is_a_value_error_naming_the_node_and_leaves_the_params_untouched():
    g = xg.Graph()
    x, t = g.input("x", (None, 4)), g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.Linear(g, 4, 3, seed=0)
    step = g.compile(xg.cross_entropy(model(x), t), updates=xg.optim.SGD(model.params, lr=0.1), device="cuda")
    X = np.ones((2, 4), np.float32)
    step(x=X, t=np.array([0, 2]))
    before = [p.value.copy() for p in model.params]
    with pytest.raises(ValueError, match=r"take_along_axis.*out of bounds for an axis of size 3"):
        step(x=X, t=np.array([0, 3]))
    for p, b in zip(model.params, before):
        np.testing.assert_array_equal(p.value, b)
    with pytest.raises(ValueError, match=r"one_hot.*label 7 is outside \[0, 4\)"):
        g.compile(xg.one_hot(t, 4), device="cuda")(t=np.array([1, 7]))
    assert float(step(x=X, t=np.array([1, 1]))) > 0  # the program still runs


def test_dropout_masks_on_the_gpu_are_fresh_each_run_and_scaled():
    g = xg.Graph()
    x = g.input("x", (64, 33))
    y = xg.dropout(x, 0.25, training=True, seed=5)
    prog = g.compile([y] + xg.grad(xg.sum(y), [x]), device="cuda")
    ones = np.ones((64, 33), F32)
    first, grad = prog(x=ones)
    kept = first != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(first[kept], 1 / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(grad, first)  # the gradient goes through the same mask
    assert (prog(x=ones)[0] != first).any()  # a new mask each run, as on the CPU


def test_pooling_with_overlapping_windows_padding_and_their_gradients():
    x = _rng(9).standard_normal((2, 3, 9, 9))
    _same_on_gpu(lambda g, x: [xg.max_pool2d(x, 3, stride=2, padding=1),
                               xg.avg_pool2d(x, 3, stride=2, padding=1),
                               xg.avg_pool2d(x, 2, stride=1, padding=1, count_include_pad=False)],
                 {"x": x}, rtol=1e-12, atol=1e-12, grad_of=["x"])


def test_grouped_strided_dilated_convolution_and_its_gradients():
    x = _rng(10).standard_normal((3, 4, 11, 10)).astype(F32)
    w = _rng(11).standard_normal((6, 2, 3, 2)).astype(F32)
    _same_on_gpu(lambda g, x, w: [xg.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)],
                 {"x": x, "w": w}, rtol=1e-4, atol=1e-4, grad_of=["x", "w"])
