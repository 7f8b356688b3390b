"""The ONNX Runtime test runner itself (tools/onnxruntime: ort_node.py, runner.js), on tiny models
built with onnx.helper. Needs no xgrad."""
import numpy as np
import pytest

import onnx
from onnx import TensorProto, helper, numpy_helper

from ort_node import InferenceSession, OrtError, OrtRunner

OPSET = 13


def _save(tmp_path, name, nodes, inputs, outputs, initializers=(), check=True):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="xgrad-tests")
    model.ir_version = min(model.ir_version, 8)
    if check:
        onnx.checker.check_model(model)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _add_model(tmp_path, elem, shape=(2, 3), name="add"):
    return _save(tmp_path, name, [helper.make_node("Add", ["a", "b"], ["y"])],
                 [_vi("a", elem, shape), _vi("b", elem, shape)], [_vi("y", elem, shape)])


def test_add_float32(ort, tmp_path):
    path = _add_model(tmp_path, TensorProto.FLOAT)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)
    (y,) = ort.run(path, {"a": a, "b": b})
    assert y.dtype == np.float32 and y.shape == (2, 3)
    np.testing.assert_array_equal(y, a + b)
    y[0, 0] = 7  # outputs are writable copies


def test_add_float64_noncontiguous_and_byteswapped(ort, tmp_path):
    path = _add_model(tmp_path, TensorProto.DOUBLE)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 2)).T  # non-contiguous (2, 3) view
    b = rng.standard_normal((2, 6)).astype(">f8")[:, ::2]  # strided and big-endian
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    (y,) = ort.run(path, {"a": a, "b": b})
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, a + b.astype(np.float64))


def test_cast_to_int64(ort, tmp_path):
    path = _save(tmp_path, "cast", [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT64)],
                 [_vi("x", TensorProto.FLOAT, [4])], [_vi("y", TensorProto.INT64, [4])])
    x = np.array([1.7, -2.5, 3e9, 0.0], np.float32)
    (y,) = ort.run(path, {"x": x})
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, x.astype(np.int64))


def test_int64_and_bool_roundtrip(ort, tmp_path):
    # Identity on int64 beyond 2**53 and on bool, plus Not on bool.
    path = _save(tmp_path, "ident",
                 [helper.make_node("Identity", ["i"], ["i2"]), helper.make_node("Not", ["m"], ["nm"])],
                 [_vi("i", TensorProto.INT64, [3]), _vi("m", TensorProto.BOOL, [2, 2])],
                 [_vi("i2", TensorProto.INT64, [3]), _vi("nm", TensorProto.BOOL, [2, 2])])
    i = np.array([2**62 + 1, -(2**63), 5], np.int64)
    m = np.array([[True, False], [False, True]])
    i2, nm = ort.run(path, {"i": i, "m": m})
    np.testing.assert_array_equal(i2, i)
    assert nm.dtype == np.bool_
    np.testing.assert_array_equal(nm, ~m)


def test_greater_gives_bool(ort, tmp_path):
    path = _save(tmp_path, "greater", [helper.make_node("Greater", ["a", "b"], ["y"])],
                 [_vi("a", TensorProto.FLOAT, [2, 3]), _vi("b", TensorProto.FLOAT, [3])],
                 [_vi("y", TensorProto.BOOL, [2, 3])])
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 4, 2], np.float32)
    (y,) = ort.run(path, {"a": a, "b": b})
    assert y.dtype == np.bool_
    np.testing.assert_array_equal(y, a > b)


def test_symbolic_batch_dim(ort, tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    path = _save(tmp_path, "matmul",
                 [helper.make_node("MatMul", ["x", "w"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, ["N", 4])], [_vi("y", TensorProto.FLOAT, ["N", 3])],
                 initializers=[numpy_helper.from_array(w, "w")])
    rng = np.random.default_rng(2)
    for n in (1, 5, 0):  # 0: an empty batch
        x = rng.standard_normal((n, 4)).astype(np.float32)
        (y,) = ort.run(path, {"x": x})
        assert y.shape == (n, 3)
        np.testing.assert_allclose(y, x @ w, rtol=1e-6, atol=1e-6)


def test_scalar_feed_and_output(ort, tmp_path):
    path = _save(tmp_path, "scalar", [helper.make_node("Mul", ["a", "b"], ["y"])],
                 [_vi("a", TensorProto.DOUBLE, []), _vi("b", TensorProto.DOUBLE, [2])],
                 [_vi("y", TensorProto.DOUBLE, [2])])
    (y,) = ort.run(path, {"a": np.array(3.0), "b": np.array([1.0, -2.0])})
    np.testing.assert_array_equal(y, [3.0, -6.0])
    path = _save(tmp_path, "reduce", [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
                 [_vi("x", TensorProto.FLOAT, [2, 2])], [_vi("y", TensorProto.FLOAT, [])])
    (y,) = ort.run(path, {"x": np.ones((2, 2), np.float32)})
    assert y.shape == () and y == 4
    path = _save(tmp_path, "relu", [helper.make_node("Relu", ["x"], ["y"])],
                 [_vi("x", TensorProto.FLOAT, None)], [_vi("y", TensorProto.FLOAT, None)], check=False)
    for x in (np.float32(-2.5), np.array(3, np.float32), np.zeros((0, 3), np.float32)):
        (y,) = ort.run(path, {"x": x})
        assert y.shape == np.shape(x)
        np.testing.assert_array_equal(y, np.maximum(x, 0))


def test_outputs_in_model_order_and_selected(ort, tmp_path):
    path = _save(tmp_path, "two", [helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Abs", ["x"], ["a"])],
                 [_vi("x", TensorProto.FLOAT, [2])], [_vi("n", TensorProto.FLOAT, [2]), _vi("a", TensorProto.FLOAT, [2])])
    x = np.array([1, -2], np.float32)
    n, a = ort.run(path, {"x": x})
    np.testing.assert_array_equal(n, -x)
    np.testing.assert_array_equal(a, np.abs(x))
    (a2,) = ort.run(path, {"x": x}, output_names=["a"])
    np.testing.assert_array_equal(a2, np.abs(x))


def test_errors_carry_ort_message_and_runner_survives(ort, tmp_path):
    # A model ORT refuses to load: an unknown op.
    bad = _save(tmp_path, "bad", [helper.make_node("NoSuchOpXg", ["x"], ["y"])],
                [_vi("x", TensorProto.FLOAT, [2])], [_vi("y", TensorProto.FLOAT, [2])], check=False)
    with pytest.raises(OrtError, match="NoSuchOpXg"):
        ort.run(bad, {"x": np.zeros(2, np.float32)})
    # Not an ONNX file at all.
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf")
    with pytest.raises(OrtError) as e:
        ort.run(junk, {"x": np.zeros(2, np.float32)})
    assert str(e.value)
    # A missing file, a wrong dtype and a wrong shape for a good model.
    with pytest.raises(OrtError, match="no_such_model"):
        ort.run(tmp_path / "no_such_model.onnx", {})
    good = _add_model(tmp_path, TensorProto.FLOAT)
    with pytest.raises(OrtError, match="(?i)type"):
        ort.run(good, {"a": np.zeros((2, 3)), "b": np.zeros((2, 3))})  # float64 for float32
    with pytest.raises(OrtError, match="(?i)dim|shape"):
        ort.run(good, {"a": np.zeros((3, 3), np.float32), "b": np.zeros((3, 3), np.float32)})
    with pytest.raises(OrtError, match="'c' is not an input"):
        ort.run(good, {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32), "c": np.ones(1)})
    with pytest.raises(OrtError, match="'b' is missing"):
        ort.run(good, {"a": np.ones((2, 3), np.float32)})
    with pytest.raises(OrtError, match="zz"):
        ort.run(good, {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}, output_names=["zz"])
    # The same runner still works.
    (y,) = ort.run(good, {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(y, np.full((2, 3), 2, np.float32))


def test_rewritten_model_is_reloaded(ort, tmp_path):
    path = _add_model(tmp_path, TensorProto.FLOAT, name="m")
    ones = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(ort.run(path, {"a": ones, "b": ones})[0], 2 * ones)
    _save(tmp_path, "m", [helper.make_node("Sub", ["a", "b"], ["y"])],
          [_vi("a", TensorProto.FLOAT, [2, 3]), _vi("b", TensorProto.FLOAT, [2, 3])], [_vi("y", TensorProto.FLOAT, [2, 3])])
    np.testing.assert_array_equal(ort.run(path, {"a": ones, "b": ones})[0], 0 * ones)


def test_unsupported_feed_dtype_is_refused_locally(ort, tmp_path):
    path = _add_model(tmp_path, TensorProto.FLOAT)
    with pytest.raises(TypeError, match="complex"):
        ort.run(path, {"a": np.zeros((2, 3), np.complex64), "b": np.zeros((2, 3), np.float32)})


def test_own_runner_close_and_restart(tmp_path):
    path = _add_model(tmp_path, TensorProto.FLOAT)
    x = np.ones((2, 3), np.float32)
    with OrtRunner() as r:
        np.testing.assert_array_equal(r.run(path, {"a": x, "b": x})[0], 2 * x)
        r.close()  # a later run starts a new process
        np.testing.assert_array_equal(r.run(path, {"a": x, "b": x})[0], 2 * x)


def test_inference_session_mirrors_onnxruntime_run(tmp_path):
    """The onnxruntime-like front the notebooks use: run(None, feeds) and run([names], feeds)."""
    path = _add_model(tmp_path, TensorProto.FLOAT)
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    session = InferenceSession(path)
    (y,) = session.run(None, {"a": a, "b": b})
    np.testing.assert_array_equal(y, a + b)
    (y,) = session.run(["y"], {"a": a, "b": a})
    np.testing.assert_array_equal(y, a + a)
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        InferenceSession(tmp_path / "missing.onnx")
