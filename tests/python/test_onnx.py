"""ONNX export and import end to end: trained models served by ONNX Runtime,
round trips through the importer, fine-tuning an imported model, and the
errors for files and graphs that cannot be handled."""
import numpy as np
import onnx
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

import xgrad as xg


def _sgd(loss, params, lr):
    return [(p, p - lr * gp) for p, gp in zip(params, xg.grad(loss, list(params)))]


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return train_test_split(data.data.astype(np.float32) / 16, data.target, test_size=0.25, random_state=0,
                            stratify=data.target)


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer()
    X = data.data.astype(np.float32)
    X = (X - X.mean(0)) / X.std(0)
    return train_test_split(X, data.target.astype(np.float32), test_size=0.25, random_state=0)


def _train_mlp(Xtr, ytr, epochs=15):
    g = xg.Graph()
    x, t = g.input("x", (None, 64)), g.input("t", (None,), dtype=xg.int64)
    mlp = xg.nn.MLP(g, [64, 32, 10], activation="relu", dropout=0.1, name="mlp", seed=0)
    logits = mlp(x)
    probs = xg.softmax(logits, -1)
    loss = xg.cross_entropy(logits, t)
    step = g.compile(loss, updates=_sgd(loss, mlp.params, 0.1))
    xg.fit(step, xg.data.batches(x=Xtr, t=ytr, batch_size=32, seed=0), epochs=epochs, progress=False)
    return g, x, probs


def test_trained_mlp_serves_in_onnx_runtime_and_round_trips(digits, ort, tmp_path):
    Xtr, Xte, ytr, yte = digits
    g, x, probs = _train_mlp(Xtr, ytr)
    ours = g.compile(probs)(x=Xte, training=False)
    assert (ours.argmax(1) == yte).mean() > 0.9
    path = tmp_path / "mlp.onnx"
    xg.onnx.export(probs, path)  # dropout exports in eval mode: "training" is fixed to False
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["x"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert {i.name for i in model.graph.initializer} == {p.name for p in g.params}
    assert not {"Dropout", "Where"} & {n.op_type for n in model.graph.node}
    for batch in (Xte, Xte[:7]):  # two batch sizes through the same file
        (served,) = ort.run(path, {"x": batch})
        np.testing.assert_allclose(served, g.compile(probs)(x=batch, training=False), rtol=1e-5, atol=1e-6)
        assert (served.argmax(1) == ours[:len(batch)].argmax(1)).all()
    imported = xg.onnx.load(path)
    assert [n.name for n in imported.inputs] == ["x"] and imported.inputs[0].shape == (None, 64)
    assert set(imported.params) == {p.name for p in g.params}
    np.testing.assert_allclose(imported(Xte), ours, rtol=1e-6, atol=1e-7)


def test_trained_logistic_regression_serves_and_fine_tunes(cancer, ort, tmp_path):
    Xtr, Xte, ytr, yte = cancer
    g = xg.Graph()
    x, t = g.input("x", (None, 30)), g.input("t", (None,))
    w = g.param("w", np.zeros((30, 1), np.float32))
    b = g.param("b", np.zeros((1,), np.float32))
    logits = xg.reshape(x @ w + b, (-1,))
    prob = xg.sigmoid(logits)
    loss = xg.binary_cross_entropy_with_logits(logits, t)
    step = g.compile(loss, updates=_sgd(loss, [w, b], 0.5))
    for _ in range(200):
        step(x=Xtr, t=ytr)
    ours = g.compile(prob)(x=Xte)
    assert ((ours > 0.5) == yte).mean() > 0.95
    path = tmp_path / "logreg.onnx"
    xg.onnx.export(prob, path, output_names=["probability"])
    (served,) = ort.run(path, {"x": Xte})
    np.testing.assert_allclose(served, ours, rtol=1e-5, atol=1e-6)
    assert ((served > 0.5) == (ours > 0.5)).all()

    # import -> fine-tune a few steps (initializers are params) -> export -> ONNX Runtime agrees
    m = xg.onnx.load(path)
    assert m.output_names == ["probability"]
    np.testing.assert_allclose(m(x=Xte), ours, rtol=1e-6)
    mg, (mx,), (mprob,) = m.graph, m.inputs, m.outputs
    mt = mg.input("t", (None,))
    eps = 1e-6
    mloss = -xg.mean(mt * xg.log(mprob + eps) + (1.0 - mt) * xg.log(1.0 - mprob + eps))
    params = list(m.params.values())
    before = {k: v.value.copy() for k, v in m.params.items()}
    mstep = mg.compile(mloss, updates=_sgd(mloss, params, 0.5))
    losses = [float(mstep(x=Xtr, t=ytr)) for _ in range(5)]
    assert losses[-1] < losses[0]
    assert any(not np.array_equal(before[k], v.value) for k, v in m.params.items())
    tuned = mg.compile(mprob)(x=Xte)
    path2 = tmp_path / "logreg_tuned.onnx"
    m.export(path2)
    (served2,) = ort.run(path2, {"x": Xte})
    np.testing.assert_allclose(served2, tuned, rtol=1e-5, atol=1e-6)
    assert not np.allclose(served2, served)


def test_export_names_and_float64(ort, tmp_path):
    g = xg.Graph()
    x = g.input("features", (None, 3), dtype=xg.float64)
    w = g.param("weights", np.arange(6.0).reshape(3, 2))
    y = xg.tanh(x @ w)
    z = xg.sum(y, 1)
    path = tmp_path / "two.onnx"
    xg.onnx.export([y, z], path, output_names=["hidden", "total"])
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["hidden", "total"]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    X = np.random.default_rng(0).standard_normal((5, 3))
    hidden, total = ort.run(path, {"features": X})
    want = g.compile([y, z])(features=X)
    np.testing.assert_allclose(hidden, want[0], rtol=1e-12)
    np.testing.assert_allclose(total, want[1], rtol=1e-12)
    # exporting to bytes gives the same model
    assert onnx.load_from_string(xg.onnx.export_bytes([y, z], output_names=["hidden", "total"])) == model


def test_int64_label_input_and_fixed_inputs(ort, tmp_path):
    g = xg.Graph()
    logits = g.input("logits", (None, 4))
    labels = g.input("labels", (None,), dtype=xg.int64)
    loss = xg.cross_entropy(logits, labels, reduction="none")
    path = tmp_path / "ce.onnx"
    xg.onnx.export(loss, path)
    rng = np.random.default_rng(0)
    L, t = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 4, 6)
    (served,) = ort.run(path, {"logits": L, "labels": t})
    np.testing.assert_allclose(served, g.compile(loss)(logits=L, labels=t), rtol=1e-5, atol=1e-6)
    model = onnx.load(str(path))
    assert model.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    # a fixed input becomes a constant: the model no longer takes it
    g2 = xg.Graph()
    x = g2.input("x", (None, 3))
    scale = g2.input("scale", ())
    y = x * scale
    fixed_path = tmp_path / "fixed.onnx"
    xg.onnx.export(y, fixed_path, fixed={"scale": np.float32(2.5)})
    assert [i.name for i in onnx.load(str(fixed_path)).graph.input] == ["x"]
    X = rng.standard_normal((4, 3)).astype(np.float32)
    (served,) = ort.run(fixed_path, {"x": X})
    np.testing.assert_allclose(served, 2.5 * X, rtol=1e-6)
    with pytest.raises(ValueError, match=r"must be float32\(\)"):
        xg.onnx.export(y, fixed_path, fixed={"scale": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="must be int64"):  # a symbolic input cannot be fixed
        xg.onnx.export(loss, path, fixed={"labels": np.zeros(3, np.int64)})


# ---- errors ---------------------------------------------------------------------------------------------------

def _small_model(tmp_path):
    g = xg.Graph()
    x = g.input("x", (None, 2))
    y = xg.relu(x * 2.0)
    path = tmp_path / "small.onnx"
    xg.onnx.export(y, path)
    return path


def test_corrupt_and_truncated_files_raise(tmp_path):
    path = _small_model(tmp_path)
    data = path.read_bytes()
    for n in (1, len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut{n}.onnx"
        cut.write_bytes(data[:n])
        with pytest.raises(ValueError, match="onnx import"):
            xg.onnx.load(cut)
    rng = np.random.default_rng(0)
    for k in range(20):  # random byte flips: an error or a model, never a crash
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), 4):
            bad[i] = int(rng.integers(0, 256))
        try:
            xg.onnx.load_bytes(bytes(bad))
        except (ValueError, TypeError) as e:
            assert "onnx import" in str(e)
    with pytest.raises(ValueError, match="empty"):
        xg.onnx.load_bytes(b"")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        xg.onnx.load_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="cannot open"):
        xg.onnx.load(tmp_path / "missing.onnx")


def test_wrong_opset_and_unsupported_ops_raise(tmp_path):
    from onnx import helper, TensorProto
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    for opset in (0, 18):
        m = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", opset)])
        with pytest.raises(ValueError, match=f"opset {opset}"):
            xg.onnx.load_bytes(m.SerializeToString())
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Hardmax", ["a"], ["b"]),
             helper.make_node("Celu", ["b"], ["y"])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="cannot import: Celu, Hardmax"):
        xg.onnx.load_bytes(m.SerializeToString())
    s = helper.make_tensor_value_info("s", TensorProto.STRING, [2])
    m = helper.make_model(helper.make_graph([helper.make_node("Identity", ["s"], ["y"])], "g", [s], [y]),
                          opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(TypeError, match="string"):
        xg.onnx.load_bytes(m.SerializeToString())
    assert "Gemm" in xg.onnx.importable_ops() and "Hardmax" not in xg.onnx.importable_ops()


def test_common_exporter_ops_import(tmp_path):
    """Gemm, Constant, Identity, Flatten, Cast, Unsqueeze/Squeeze with axes inputs, Reshape with a constant shape."""
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3)).astype(np.float32)
    B = rng.standard_normal(4).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W", "B"], ["g"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Constant", [], ["axes"], value=numpy_helper.from_array(np.array([1], np.int64))),
        helper.make_node("Unsqueeze", ["g", "axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "axes"], ["s"]),
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, 2, 2], np.int64))),
        helper.make_node("Reshape", ["s", "shape"], ["r"]),
        helper.make_node("Cast", ["r"], ["c"], to=TensorProto.DOUBLE),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, ["N", 2, 2])],
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    model = xg.onnx.load_bytes(m.SerializeToString())
    X = rng.standard_normal((5, 1, 3)).astype(np.float32)
    want = (0.5 * X.reshape(5, 3) @ W.T + 2.0 * B).reshape(5, 2, 2).astype(np.float64)
    got = model(x=X)
    assert got.dtype == np.float64 and got.shape == (5, 2, 2)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert set(model.params) == {"W", "B"}


def test_pre_opset_7_broadcast_attributes_map_onto_numpy_broadcasting():
    """Opsets 1-6: with broadcast=1, B lines up with A from `axis` on (default: A's last dims)."""
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    cases = [("Add", (3,), dict(axis=1), lambda a, b: a + b.reshape(1, 3, 1, 1)),
             ("Mul", (3, 4), dict(axis=1), lambda a, b: a * b.reshape(1, 3, 4, 1)),
             ("Sub", (4, 5), {}, lambda a, b: a - b),
             ("Div", (5,), dict(axis=-1), lambda a, b: a / b),
             ("Pow", (2,), dict(axis=0), lambda a, b: np.abs(a) ** b.reshape(2, 1, 1, 1))]
    for op, b_shape, attrs, want in cases:
        B = (rng.uniform(0.5, 2.0, b_shape)).astype(np.float32)
        inputs = ["a", "B"] if op != "Pow" else ["abs_a", "B"]
        nodes = ([helper.make_node("Abs", ["a"], ["abs_a"])] if op == "Pow" else []) + [
            helper.make_node(op, inputs, ["y"], broadcast=1, **attrs)]
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, A.shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, A.shape)],
                                  [numpy_helper.from_array(B, "B")])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
        np.testing.assert_allclose(xg.onnx.load_bytes(m.SerializeToString())(a=A), want(A, B), rtol=1e-6, err_msg=op)
    nodes = [helper.make_node("Add", ["a", "B"], ["y"], broadcast=1, axis=3)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, A.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, A.shape)],
                              [numpy_helper.from_array(np.ones((4, 5), np.float32), "B")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)])
    with pytest.raises(ValueError, match=r"broadcast axis 3 does not fit B \(4, 5\)"):
        xg.onnx.load_bytes(m.SerializeToString())


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_modes_import_and_export(ort, tmp_path, mode):
    """ONNX Pad in reflect and edge mode imports (opset 2 attributes and opset 11+ inputs) and runs as numpy.pad;
    xg.pad in those modes exports (as Gather) and ONNX Runtime agrees."""
    from onnx import helper, numpy_helper, TensorProto
    X = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    width = ((0, 0), (0, 0), (1, 2), (3, 1))
    want = np.pad(X, width, mode=mode)
    onnx_pads = [w[0] for w in width] + [w[1] for w in width]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 7, 9])
    old = helper.make_model(helper.make_graph([helper.make_node("Pad", ["x"], ["y"], mode=mode, pads=onnx_pads)],
                                              "g", [x], [y]), opset_imports=[helper.make_opsetid("", 2)])
    new = helper.make_model(helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode)], "g", [x], [y],
                                              [numpy_helper.from_array(np.array(onnx_pads, np.int64), "pads")]),
                            opset_imports=[helper.make_opsetid("", 13)])
    for m in (old, new):
        np.testing.assert_allclose(xg.onnx.load_bytes(m.SerializeToString())(x=X), want, rtol=1e-6)
        (ort_y,) = ort.run(_saved(m, tmp_path / "m.onnx"), {"x": X})
        np.testing.assert_allclose(ort_y, want, rtol=1e-6)
    g = xg.Graph()
    xn = g.input("x", (None, 3, 4, 5))
    path = tmp_path / "exported.onnx"
    xg.onnx.export(xg.pad(xn, width, mode=mode), path)
    (ort_y,) = ort.run(str(path), {"x": X})
    np.testing.assert_allclose(ort_y, want, rtol=1e-6)
    wrap = helper.make_model(helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")], "g", [x], [y],
                                               [numpy_helper.from_array(np.array(onnx_pads, np.int64), "pads")]),
                             opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="pad mode 'wrap' is not supported"):
        xg.onnx.load_bytes(wrap.SerializeToString())


def _saved(model, path):
    onnx.save(model, str(path))
    return str(path)


def test_export_errors_name_the_problem(tmp_path):
    g = xg.Graph()
    x = g.input("x", (None, 3))
    other = g.input("other", (3,))
    y = xg.exp(x) + other
    with pytest.raises(ValueError, match="depend on input 'other'"):
        xg.onnx.export(y, tmp_path / "a.onnx", inputs=[x])
    with pytest.raises(ValueError, match="opset 13 is not supported"):
        xg.onnx.export(y, tmp_path / "a.onnx", opset=13)
    with pytest.raises(ValueError, match="no outputs"):
        xg.onnx.export([], tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="2 output names for 1 outputs"):
        xg.onnx.export(y, tmp_path / "a.onnx", output_names=["a", "b"])
    with pytest.raises(TypeError, match="xgrad nodes"):
        xg.onnx.export([np.zeros(3)], tmp_path / "a.onnx")
    h = xg.Graph()
    with pytest.raises(ValueError, match="different graphs"):
        xg.onnx.export([y, h.input("z", (2,))], tmp_path / "a.onnx")
    # an op that cannot be lowered names the op and the node
    b = xg.broadcast_to(g.input("s", (1, 3)), (None, 3))
    with pytest.raises(ValueError, match=r"op 'broadcast_to' \(node 'broadcast_to_\d+'.*cannot be lowered"):
        xg.onnx.export(b, tmp_path / "b.onnx")
    assert not (tmp_path / "b.onnx").exists()  # nothing half-written


def test_every_registered_op_is_exported_by_some_table_case(tmp_path):
    """Forward and gradient graphs of the op tables reach every op in the registry, and all of them lower."""
    import optable
    import test_conv, test_layers, test_linalg, test_nn, test_ops, test_shape_ops
    for module in (test_ops, test_nn, test_shape_ops, test_layers, test_linalg, test_conv):
        for case in module.CASES:
            for dynamic in {False, case.has_dynamic_variant}:  # symbolic shapes keep the *_like helpers
                b = optable.Built(case, np.float32, dynamic=dynamic)
                roots = [b.out]
                if case.grad:
                    R = np.ones(b.reference().shape, np.float32)
                    grads = xg.grad(optable._loss(b, R), b.nodes)
                    roots += grads
                    if case.second_order:  # gradients of gradients use the gradient-only ops' own gradients
                        s = sum(xg.sum(gn * gn) for gn in grads)
                        roots += xg.grad(s, b.nodes, allow_unused=True)
                roots = [r for r in roots if r is not None]
                try:
                    xg.onnx.export_bytes(roots)
                except ValueError as e:  # documented: slicing a symbolic axis has no shape-free gradient lowering
                    assert dynamic and "slice_grad lowers a symbolic dim only" in str(e), e
                    continue
                optable._record_ops(roots)
    g = xg.Graph()
    optable._record_ops([xg.dropout(g.input("x", (3,)), 0.5)])
    missing = set(xg.registered_ops()) - optable.EXPORTED_OPS
    assert not missing, f"registered ops no exported graph contains: {sorted(missing)}"


def test_sequences_resolve_at_import_and_stay_out_of_the_graph():
    """ONNX sequences are lists the importer keeps (constant positions); a tensor op fed one, or a sequence as the
    model's output, is refused naming it."""
    from onnx import helper, numpy_helper, TensorProto
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    pos = numpy_helper.from_array(np.array(-1, np.int64), "pos")

    def model(nodes, inits=()):
        return helper.make_model(helper.make_graph(nodes, "g", [x], [y], list(inits)),
                                 opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()

    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0),
             helper.make_node("SequenceInsert", ["s", "x2"], ["t"]),
             helper.make_node("SequenceErase", ["t", "pos"], ["u"]),
             helper.make_node("ConcatFromSequence", ["u"], ["y"], axis=0, new_axis=1)]
    doubled = [helper.make_node("Mul", ["x", "x"], ["x2"])]
    got = xg.onnx.load_bytes(model(doubled + nodes, [pos]))(x=X)
    np.testing.assert_array_equal(got, X.T)  # the three columns stacked; the inserted square erased again
    with pytest.raises(ValueError, match="input 's' is a sequence, and Relu takes tensors"):
        xg.onnx.load_bytes(model([nodes[0], helper.make_node("Relu", ["s"], ["y"])]))
    with pytest.raises(TypeError, match="output 'y' is a sequence"):
        xg.onnx.load_bytes(model([helper.make_node("SequenceConstruct", ["x", "x"], ["y"])]))
    with pytest.raises(ValueError, match="position 5 is out of range for a sequence of 4 tensors"):
        bad = numpy_helper.from_array(np.array(5, np.int64), "pos")
        xg.onnx.load_bytes(model(doubled + nodes, [bad]))


def _dynamic_batch_model():
    """What PyTorch writes for x.view(x.size(0), -1) @ W, zeros(x.size(0), 5), a tile by batch-sized repeats and
    x.expand(...): every shape computed from Shape(x) at run time."""
    from onnx import helper, numpy_helper, TensorProto
    rng = np.random.default_rng(3)
    W = rng.standard_normal((12, 5)).astype(np.float32)
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "minus1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["z"]),
        helper.make_node("Concat", ["batch1", "five"], ["zeros_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["zeros_shape"], ["zeros"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("Add", ["z", "zeros"], ["y"]),
        # Tile(row, [batch, 1]): repeats computed from the batch
        helper.make_node("Slice", ["flat", "zero1", "one1"], ["row"]),
        helper.make_node("Concat", ["batch1", "one1"], ["reps"], axis=0),
        helper.make_node("Tile", ["row", "reps"], ["tiled"]),
        # Expand(bias (1, 1, 4), Shape(x)) and a Size-derived reshape
        helper.make_node("Expand", ["bias", "s"], ["spread"]),
        helper.make_node("Size", ["x"], ["count"]),
        helper.make_node("Unsqueeze", ["count", "axes0"], ["count1"]),
        helper.make_node("Reshape", ["spread", "count1"], ["spread_flat"]),
        # Range(0, batch) and x[1:batch - 1] along the batch
        helper.make_node("Range", ["zero", "batch", "one"], ["positions"]),
        helper.make_node("Sub", ["batch1", "one1"], ["last"]),
        helper.make_node("Slice", ["x", "one1", "last", "zero1"], ["inner"]),
    ]
    inits = [numpy_helper.from_array(W, "W"), i64("zero", 0), i64("axes0", [0]), i64("minus1", [-1]), i64("five", [5]),
             i64("zero1", [0]), i64("one1", [1]), i64("one", 1), numpy_helper.from_array(rng.standard_normal((1, 1, 4)).astype(np.float32), "bias")]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("tiled", TensorProto.FLOAT, ["N", 12]),
            helper.make_tensor_value_info("spread_flat", TensorProto.FLOAT, ["M"]),
            helper.make_tensor_value_info("positions", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("inner", TensorProto.FLOAT, ["K", 3, 4])]
    graph = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])], outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    return m


def test_shapes_computed_from_the_batch_import_and_run_at_any_batch_size(ort, tmp_path):
    m = _dynamic_batch_model()
    path = _saved(m, tmp_path / "dyn.onnx")
    model = xg.onnx.load(path)
    # what the importer knows statically stays static: the batch is the one symbolic dim
    assert [tuple(o.shape) for o in model.outputs] == [(None, 5), (None, 12), (None,), (None,), (None, 3, 4)]
    rng = np.random.default_rng(4)
    for n in (1, 3, 7, 2):
        X = rng.standard_normal((n, 3, 4)).astype(np.float32)
        got = model(x=X)
        want = ort.run(path, {"x": X})
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    # the shape arithmetic ran while planning: the run's tape reads x, W and bias only
    text = str(model._program)
    assert "computed while planning" in text and "shape_of" in text


def test_dynamic_batch_survives_an_export_round_trip(ort, tmp_path):
    model = xg.onnx.load_bytes(_dynamic_batch_model().SerializeToString())
    out = tmp_path / "again.onnx"
    model.export(str(out))
    exported = onnx.load(str(out))
    batch = exported.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value"), batch
    assert {"Shape", "Reshape", "Expand", "Range"} <= {n.op_type for n in exported.graph.node}
    again = xg.onnx.load(str(out))
    rng = np.random.default_rng(5)
    for n in (1, 6):
        X = rng.standard_normal((n, 3, 4)).astype(np.float32)
        want = model(x=X)
        for ours, theirs, back in zip(want, ort.run(str(out), {"x": X}), again(x=X)):
            np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(back, ours, rtol=1e-6, atol=1e-7)


def test_a_shape_computed_from_values_is_refused_at_plan_time_naming_it():
    g = xg.Graph()
    x = g.input("x", (None, 4))
    k = g.input("k", (2,), dtype=np.int64)  # a shape fed as data: not known before the run
    y = xg.reshape(x, k)
    assert y.shape == (None, None)
    prog = g.compile(y)
    with pytest.raises(ValueError, match="input 'k' sets the shape, and its value is not known before the run"):
        prog(x=np.zeros((2, 4), np.float32), k=np.array([4, 2]))


def test_reshape_to_a_computed_target_errors_name_the_shapes():
    g = xg.Graph()
    x = g.input("x", (None, 6))
    bad = xg.concat([xg.shape_of(x)[:1], g.const(np.array([4], np.int64), "four")])
    prog = g.compile(xg.reshape(x, bad))
    with pytest.raises(ValueError, match=r"reshape_to.*cannot reshape \(3, 6\).*into \(3, 4\)"):
        prog(x=np.zeros((3, 6), np.float32))
    with pytest.raises(TypeError, match="target shape must be int64"):
        xg.reshape(x, xg.astype(xg.shape_of(x), np.float32))


def test_a_pytorch_export_with_a_dynamic_batch_runs_at_any_batch_size(ort, tmp_path):
    """torch.onnx.export with dynamic_axes writes the batch as Shape -> Gather -> Unsqueeze -> Concat chains."""
    import warnings
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.pool = torch.nn.MaxPool2d(2, ceil_mode=True)
            self.fc = torch.nn.Linear(4 * 4 * 4, 5)

        def forward(self, x):
            y = self.pool(torch.relu(self.conv(x)))
            y = y.view(y.size(0), -1)
            z = self.fc(y).unsqueeze(1).expand(x.size(0), 3, 5)
            return z.reshape(x.size(0), -1), y.new_zeros(x.size(0), 2) + 1, x[:, :, 1:x.size(2) - 1].flatten(1).sum(1)

    torch.manual_seed(0)
    net = Net().eval()
    path = str(tmp_path / "net.onnx")
    names = ["y", "ones", "inner"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(2, 3, 7, 7), path, input_names=["x"], output_names=names, opset_version=13,
                          dynamic_axes={n: {0: "N"} for n in ["x"] + names})
    written = {n.op_type for n in onnx.load(path).graph.node}
    assert {"Shape", "Gather", "Concat", "Reshape", "Expand", "ConstantOfShape"} <= written
    model = xg.onnx.load(path)
    assert [o.shape[0] for o in model.outputs] == [None, None, None]
    rng = np.random.default_rng(6)
    for n in (1, 4, 9):
        X = rng.standard_normal((n, 3, 7, 7)).astype(np.float32)
        with torch.no_grad():
            want = [t.numpy() for t in net(torch.from_numpy(X))]
        got = model(x=X)
        for g, w, o in zip(got, want, ort.run(path, {"x": X})):
            assert g.shape == w.shape == o.shape
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(g, o, rtol=1e-5, atol=1e-5)


def test_shape_value_edge_cases_import_faithfully(ort, tmp_path):
    """Casts that change shape values, empty operands, constant repeats of a symbolic input, duplicate axes."""
    from onnx import helper, numpy_helper, TensorProto
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Cast", ["s"], ["nonzero"], to=TensorProto.BOOL),  # (N, 3, 4) -> (True, True, True)
        helper.make_node("Cast", ["nonzero"], ["ones"], to=TensorProto.INT64),
        helper.make_node("Slice", ["ones", "one1", "three1"], ["tail_ones"]),
        helper.make_node("Slice", ["s", "zero1", "one1"], ["batch1"]),
        helper.make_node("Add", ["batch1", "empty"], ["nothing"]),
        helper.make_node("Tile", ["x", "reps"], ["tiled"]),
    ]
    inits = [i64("zero1", [0]), i64("one1", [1]), i64("three1", [3]), i64("empty", np.zeros(0, np.int64)), i64("reps", [1, 2, 1])]
    outs = [helper.make_tensor_value_info("tail_ones", TensorProto.INT64, [2]),
            helper.make_tensor_value_info("nothing", TensorProto.INT64, [0]),
            helper.make_tensor_value_info("tiled", TensorProto.FLOAT, ["N", 6, 4])]
    graph = helper.make_graph(nodes, "edges", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])], outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(m)
    path = _saved(m, tmp_path / "edges.onnx")
    model = xg.onnx.load(path)
    assert tuple(model.outputs[2].shape) == (None, 6, 4)  # constant repeats keep the static dims
    X = np.random.default_rng(7).standard_normal((2, 3, 4)).astype(np.float32)
    got = model(x=X)
    np.testing.assert_array_equal(got[0], [1, 1])
    assert got[1].shape == (0,)
    np.testing.assert_array_equal(got[2], np.tile(X, (1, 2, 1)))
    for g, w in zip(got, ort.run(path, {"x": X})):
        np.testing.assert_array_equal(g, w)
    dup = helper.make_model(helper.make_graph(
        [helper.make_node("Slice", ["x", "zero2", "one2", "axes"], ["y"])], "dup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [i64("zero2", [0, 0]), i64("one2", [1, 1]), i64("axes", [1, 1])]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="axis 1 is given twice"):
        xg.onnx.load_bytes(dup.SerializeToString())
