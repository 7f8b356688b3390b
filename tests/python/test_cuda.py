"""The CUDA backend as Python sees it. Where the machine has the CUDA toolkit, the build must include the
backend (CI builds it); where it has no GPU, xg.cuda says why, and device work is refused with that reason."""
import os
import shutil

import numpy as np
import pytest

import xgrad as xg


def _toolkit_present():
    return shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")


def test_backend_is_built_where_the_toolkit_is():
    assert isinstance(xg.cuda.is_built(), bool)
    if _toolkit_present():
        assert xg.cuda.is_built(), "nvcc is here, so CMake must have built the CUDA backend"


def test_the_emulator_is_a_test_build_that_always_has_its_one_device():
    # make test-cuda-emulator builds it apart (build-cuda-emulator/); the installed package is never emulated.
    assert isinstance(xg.cuda.is_emulated(), bool)
    if xg.cuda.is_emulated():
        assert xg.cuda.is_built() and xg.cuda.is_available() and xg.cuda.device_count() == 1
    else:
        assert "build-cuda-emulator" not in xg.__file__


def test_availability_and_the_reason_agree():
    if xg.cuda.is_available():
        assert xg.cuda.device_count() >= 1 and xg.cuda.why_unavailable() is None
    else:
        reason = xg.cuda.why_unavailable()
        assert isinstance(reason, str) and reason and xg.cuda.device_count() == 0
        if not xg.cuda.is_built():
            assert "built without CUDA" in reason


def _elementwise_model():
    g = xg.Graph()
    x = g.input("x", (4,), dtype=xg.float64)
    w = g.param("w", np.full(4, 0.5))
    b = g.param("b", np.full(4, -0.25))
    return g, x, w, b, xg.tanh(x * w + b)


def test_unknown_device_names_are_value_errors():
    g, x, w, b, y = _elementwise_model()
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        g.compile(y, device="gpu")


def test_compiling_for_cuda_names_the_ops_without_cuda_kernels():
    g, x, w, b, y = _elementwise_model()
    z = xg.linalg.det(xg.reshape(y, (2, 2)))  # linear algebra has no CUDA kernels
    if not xg.cuda.is_built():
        with pytest.raises(RuntimeError, match="built without CUDA"):
            g.compile(z, device="cuda")
        return
    with pytest.raises(ValueError, match="no cuda kernel for op .*'det'") as err:
        g.compile(z, device="cuda")
    assert "'tanh'" not in str(err.value) and "nothing runs on the CPU behind your back" in str(err.value)
    assert w.value.flags.writeable  # a refused compile moves nothing


def test_without_a_gpu_compiling_for_cuda_says_why():
    if xg.cuda.is_available():
        pytest.skip("a GPU is present: this checks the refusal on machines without one")
    g, x, w, b, y = _elementwise_model()
    with pytest.raises(RuntimeError, match="CUDA"):
        g.compile(y, updates={w: w - 0.1 * y}, device="cuda")
    assert w.value.flags.writeable and np.shares_memory(w.value, w.value)  # still a CPU view of the param


def test_elementwise_training_step_on_the_gpu_matches_the_cpu():
    if not xg.cuda.is_available():
        pytest.skip(f"no GPU: {xg.cuda.why_unavailable()}")
    gc, xc, wc, bc, yc = _elementwise_model()
    gg, xg_, wg, bg, yg = _elementwise_model()
    on_cpu = gc.compile(yc, updates={wc: wc - 0.1 * yc})
    on_gpu = gg.compile(yg, updates={wg: wg - 0.1 * yg}, device="cuda")
    feed = np.linspace(-1, 1, 4)
    for _ in range(3):
        np.testing.assert_allclose(on_gpu(x=feed), on_cpu(x=feed), rtol=1e-12)
    assert not wg.value.flags.writeable  # a snapshot of a GPU param
    np.testing.assert_allclose(wg.value, wc.value, rtol=1e-12)
    wg.value = np.zeros(4)  # assignment uploads
    assert (wg.value == 0).all()


def test_tensor_on_the_cpu_shares_the_numpy_array():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = xg.tensor(a)
    assert t.device == "cpu" and t.shape == (2, 3) and t.dtype == np.float32
    assert np.shares_memory(t.numpy(), a) and np.shares_memory(np.asarray(t), a)  # zero copy both ways
    assert t.to("cpu").numpy().__array_interface__["data"] == t.numpy().__array_interface__["data"]
    assert "float32(2, 3) on cpu" in repr(t)
    assert xg.tensor([1, 2], dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="unknown device"):
        t.to("tpu")


def test_a_tensor_feeds_a_program():
    g, x, w, b, y = _elementwise_model()
    prog = g.compile(y)
    feed = np.linspace(-1, 1, 4)
    np.testing.assert_array_equal(prog(x=xg.tensor(feed)), prog(x=feed))
    w.value = xg.tensor(np.full(4, 2.0))  # params take tensors too
    assert (w.value == 2).all()


def test_without_a_gpu_moving_a_tensor_there_says_why():
    if xg.cuda.is_available():
        pytest.skip("a GPU is present: this checks the refusal on machines without one")
    with pytest.raises(RuntimeError, match="CUDA"):
        xg.tensor(np.ones(3), device="cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        xg.tensor(np.ones(3)).to("cuda")


def test_tensors_round_trip_through_the_gpu_and_feed_it_in_place():
    if not xg.cuda.is_available():
        pytest.skip(f"no GPU: {xg.cuda.why_unavailable()}")
    a = np.random.default_rng(0).standard_normal((3, 5))
    t = xg.tensor(a, device="cuda")
    assert t.device == "cuda" and t.shape == (3, 5)
    back = t.to("cpu").numpy()
    np.testing.assert_array_equal(back, a)
    assert not np.shares_memory(back, a)
    np.testing.assert_array_equal(np.asarray(t), a)
    g, x, w, b, y = _elementwise_model()
    prog = g.compile(y, device="cuda")
    feed = np.linspace(-1, 1, 4)
    np.testing.assert_allclose(prog(x=xg.tensor(feed, device="cuda")), prog(x=feed), rtol=1e-12)


def _mlp_training_losses(device, X, T, steps=30):
    g = xg.Graph()
    x, t = g.input("x", (None, 64)), g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.Sequential(xg.nn.Linear(g, 64, 128, seed=0), xg.relu, xg.nn.Linear(g, 128, 10, seed=1))
    loss = xg.cross_entropy(model(x), t)
    step = g.compile(loss, updates=xg.optim.Adam(model.params, lr=1e-2), device=device)
    losses = [float(step(x=X[i % 4 * 256:(i % 4 + 1) * 256], t=T[i % 4 * 256:(i % 4 + 1) * 256])) for i in range(steps)]
    return np.array(losses), [p.value for p in model.params]


def test_mlp_training_on_the_gpu_matches_the_cpu():
    if not xg.cuda.is_available():
        pytest.skip(f"no GPU: {xg.cuda.why_unavailable()}")
    from sklearn.datasets import load_digits
    digits = load_digits()
    X, T = (digits.data / 16).astype(np.float32), digits.target.astype(np.int64)
    cpu_losses, cpu_params = _mlp_training_losses("cpu", X, T)
    gpu_losses, gpu_params = _mlp_training_losses("cuda", X, T)
    assert gpu_losses[-1] < gpu_losses[0] / 3
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-3, atol=1e-4)
    # Steady state: more steps of the same shapes allocate nothing new on the GPU.
    before = xg.cuda.memory_stats()["raw_allocations"]
    _mlp_training_losses("cuda", X, T, steps=4)  # a new graph and program: may allocate
    settled = xg.cuda.memory_stats()["raw_allocations"]
    _mlp_training_losses("cuda", X, T, steps=4)
    assert xg.cuda.memory_stats()["raw_allocations"] == settled >= before
    for g, c in zip(gpu_params, cpu_params):
        np.testing.assert_allclose(g, c, rtol=1e-2, atol=1e-3)


def test_run_tensors_leaves_the_outputs_where_the_program_made_them():
    g, x, w, b, y = _elementwise_model()
    prog = g.compile([y, y * 2.0])
    assert prog.device == "cpu"
    feed = np.linspace(-1, 1, 4)
    t1, t2 = prog.run_tensors(x=feed)
    assert isinstance(t1, xg.Tensor) and t1.device == "cpu"
    np.testing.assert_array_equal(t1.numpy(), prog(x=feed)[0])
    np.testing.assert_array_equal(t2.numpy(), 2 * t1.numpy())
    single = g.compile(y).run_tensors({x: feed})
    assert isinstance(single, xg.Tensor) and single.shape == (4,)
    if not xg.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            xg.cuda.synchronize()
