"""The Python API of the walking skeleton: building, compiling, running, zero-copy, and errors."""
import numpy as np
import pytest

import xgrad as xg


def linear_model(dtype=np.float32):
    g = xg.Graph()
    x = g.input("x", (None, 3), dtype=dtype)
    t = g.input("t", (None, 1), dtype=dtype)
    w = g.param("w", np.zeros((3, 1), dtype))
    b = g.param("b", np.zeros((1,), dtype))
    loss = xg.mean(xg.square(x @ w + b - t))
    return g, x, t, w, b, loss


def test_readme_example_trains_and_matches_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)).astype(np.float32)
    T = (X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.01 * rng.standard_normal((200, 1))).astype(np.float32)
    g, x, t, w, b, loss = linear_model()
    gw, gb = xg.grad(loss, [w, b])
    step = g.compile([loss, gw, gb])
    for _ in range(500):
        l, dw, db = step(x=X, t=T)
        w.value -= 0.1 * dw
        b.value -= 0.1 * db
    A = np.hstack([X, np.ones((200, 1), np.float32)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, T.astype(np.float64), rcond=None)
    np.testing.assert_allclose(w.value.ravel(), coef[:3, 0], atol=1e-4)
    np.testing.assert_allclose(b.value, coef[3], atol=1e-4)


def test_feeds_by_name_dict_and_node_give_the_same_result():
    g, x, t, w, b, loss = linear_model()
    w.value[:] = [[1.0], [2.0], [3.0]]
    step = g.compile(loss)
    X = np.ones((4, 3), np.float32)
    T = np.zeros((4, 1), np.float32)
    a = step(x=X, t=T)
    assert isinstance(a, np.ndarray) and a.shape == () and a.dtype == np.float32
    assert float(a) == pytest.approx(36.0)
    assert float(step({x: X, t: T})) == float(a)
    assert float(step({"x": X, "t": T})) == float(a)
    assert float(step(x=X.tolist(), t=T.tolist())) == float(a)  # lists are converted once


def test_node_properties_and_reprs():
    g, x, t, w, b, loss = linear_model(np.float64)
    assert x.shape == (None, 3) and x.dtype == np.float64 and x.name == "x"
    assert w.shape == (3, 1) and w.kind == "param"
    assert loss.shape == () and loss.op == "mean"
    assert "x" in repr(x) and "(None, 3)" in repr(x)
    assert "Graph" in repr(g) and "2 params" in repr(g)
    prog = g.compile([loss])
    assert "Program" in repr(prog) and prog.input_names == ["x", "t"]
    assert "digraph" in g.to_dot()
    assert (x.T).shape == (3, None)
    assert x.sum(axis=1, keepdims=True).shape == (None, 1)
    assert x.reshape(-1).shape == (None,)


def test_to_dot_draws_what_the_outputs_depend_on():
    g, x, t, w, b, loss = linear_model(np.float64)
    pred = x @ w + b
    unused = xg.exp(g.input("unused", (2,)))
    dot = g.to_dot(pred)
    assert dot.startswith("digraph") and "penwidth=2" in dot
    assert "label=\"w\\nfloat64(3, 1)\"" in dot and "unused" not in dot and "mean" not in dot
    assert "unused" in g.to_dot() and "mean" in g.to_dot([loss])
    with pytest.raises(TypeError, match="to_dot: outputs must be xgrad nodes"):
        g.to_dot([pred, 3])
    with pytest.raises(ValueError, match="another graph"):
        xg.Graph().to_dot(pred)
    del unused


def test_to_dot_renders_with_graphviz():
    """Graphviz (Debian graphviz, installed by `make deps`) accepts the text; notebooks show it as inline SVG."""
    import shutil
    import subprocess
    g, x, t, w, b, loss = linear_model(np.float32)
    assert shutil.which("dot"), "Graphviz's dot is missing: `make deps` installs it"
    svg = subprocess.run(["dot", "-Tsvg"], input=g.to_dot(loss).encode(), capture_output=True, check=True).stdout
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg and b"matmul" in svg


def test_dtype_spellings():
    g = xg.Graph()
    assert g.input("a", (2,), dtype=xg.float64).dtype == np.float64
    assert g.input("b", (2,), dtype=np.float64).dtype == np.float64
    assert g.input("c", (2,), dtype="float32").dtype == np.float32
    assert g.input("d", (2,)).dtype == np.float32
    with pytest.raises(TypeError, match="int32"):
        g.input("e", (2,), dtype=np.int32)


def test_scalars_mix_with_nodes_on_both_sides():
    g = xg.Graph()
    x = g.input("x", (3,), dtype=np.float64)
    y = (2.0 * x + 1) / 4 - 0.5 + (1 - x) * 3 + 6 / (x + 1) + x ** 2 - (-x)
    X = np.array([0.5, 1.0, 2.0])
    expected = (2.0 * X + 1) / 4 - 0.5 + (1 - X) * 3 + 6 / (X + 1) + X ** 2 + X
    np.testing.assert_allclose(g.compile(y)(x=X), expected, rtol=1e-14)


# ---- zero copy ---------------------------------------------------------------

def test_param_value_is_a_writable_view_of_the_parameter_storage():
    g = xg.Graph()
    w = g.param("w", np.arange(4, dtype=np.float32))
    prog = g.compile(xg.sum(w))
    v1, v2 = w.value, w.value
    assert np.shares_memory(v1, v2)  # both are views of the one storage, not copies
    assert float(prog()) == 6.0
    v1 += 1  # in place: the compiled program reads the same memory
    assert float(prog()) == 10.0
    w.value = np.zeros(4)  # assignment copies into the same storage (converting dtype)
    assert np.shares_memory(w.value, v1) and float(prog()) == 0.0
    with pytest.raises(ValueError, match="shape"):
        w.value = np.zeros(5)


def test_param_keeps_its_own_copy_of_the_initial_array():
    init = np.ones(3, np.float32)
    g = xg.Graph()
    w = g.param("w", init)
    assert not np.shares_memory(w.value, init)
    init[:] = 5
    assert w.value.tolist() == [1.0, 1.0, 1.0]


def test_contiguous_float32_arrays_cross_without_copy():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.shares_memory(xg._xgrad._tensor_roundtrip(a), a)


def test_transposed_and_sliced_arrays_are_wrapped_as_views():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    for view in (a.T, a[1:3, ::-2], a[:, 1]):
        back = xg._xgrad._tensor_roundtrip(view)
        assert np.shares_memory(back, a)
        np.testing.assert_array_equal(back, view)


def test_outputs_are_owned_by_the_caller():
    g = xg.Graph()
    x = g.input("x", (3,))
    prog = g.compile([x * 2.0, x.reshape(3, 1)])
    X = np.ones(3, np.float32)
    first, view_out = prog(x=X)
    second, _ = prog(x=X * 5)
    assert first.tolist() == [2.0, 2.0, 2.0] and second.tolist() == [10.0, 10.0, 10.0]
    assert not np.shares_memory(view_out, X)  # an output viewing a feed is copied out


def test_program_plan_shows_views_and_arena():
    g = xg.Graph()
    a = g.input("a", (None, 4), dtype=np.float64)
    w = g.param("w", np.ones((3, 4)))
    prog = g.compile(xg.sum(xg.tanh(a @ w.T)))
    prog(a=np.ones((2, 4)))
    text = str(prog)
    assert "view" in text and "arena" in text


# ---- bad input ----------------------------------------------------------------

def test_mismatched_shapes_at_node_creation_name_op_node_and_shapes():
    g = xg.Graph()
    a = g.input("a", (None, 3))
    b = g.input("b", (4,))
    with pytest.raises(ValueError) as e:
        a + b
    msg = str(e.value)
    assert "op 'add'" in msg and "node 'add_" in msg and "(None, 3)" in msg and "(4,)" in msg
    with pytest.raises(ValueError, match="matmul"):
        a @ g.param("w", np.ones((4, 2), np.float32))


def test_feed_errors():
    g, x, t, w, b, loss = linear_model()
    step = g.compile(loss)
    X, T = np.ones((4, 3), np.float32), np.ones((4, 1), np.float32)
    with pytest.raises(ValueError, match="missing feed for input 't'"):
        step(x=X)
    with pytest.raises(ValueError, match="feed 'x' has shape \\(4, 2\\)"):
        step(x=np.ones((4, 2), np.float32), t=T)
    with pytest.raises(TypeError, match="feed 'x' is float64"):
        step(x=np.ones((4, 3)), t=T)
    with pytest.raises(ValueError, match="no input of that name"):
        step(x=X, t=T, y=T)
    with pytest.raises(TypeError, match="not supported"):
        step(x=np.ones((4, 3), np.int32), t=T)
    pred = g.compile(x @ w)
    assert pred(x=X, t=T).shape == (4, 1)  # t is an input of the graph: checked, then ignored
    with pytest.raises(ValueError, match="feed 't' has shape"):
        pred(x=X, t=np.ones((4, 2), np.float32))


def test_runtime_batch_mismatch_names_the_node():
    g = xg.Graph()
    a = g.input("a", (None, 2))
    b = g.input("b", (None, 2))
    prog = g.compile(a + b)
    with pytest.raises(ValueError, match="op 'add'.*cannot be broadcast"):
        prog(a=np.ones((3, 2), np.float32), b=np.ones((4, 2), np.float32))
    assert prog(a=np.ones((3, 2), np.float32), b=np.ones((3, 2), np.float32)).shape == (3, 2)


def test_grad_of_unrelated_node_names_it_unless_allow_unused():
    g, x, t, w, b, loss = linear_model()
    other = g.param("other", np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="does not depend on node 'other'"):
        xg.grad(loss, [w, other])
    gw, go = xg.grad(loss, [w, other], allow_unused=True)
    dw, do = g.compile([gw, go])(x=np.ones((2, 3), np.float32), t=np.ones((2, 1), np.float32))
    assert do.shape == (2, 2) and not do.any()
    with pytest.raises(ValueError, match="exactly one element"):
        xg.grad(x @ w, [w])


def test_mixing_graphs_and_truthiness_are_errors():
    g1, g2 = xg.Graph(), xg.Graph()
    a = g1.input("a", (2,))
    b = g2.input("b", (2,))
    with pytest.raises(ValueError, match="different graphs"):
        a + b
    with pytest.raises(ValueError, match="another graph"):
        g1.compile([b])
    with pytest.raises(TypeError, match="truth value"):
        bool(a)
    with pytest.raises(ValueError, match="already has a node"):
        g1.input("a", (3,))


def test_node_keeps_its_graph_alive():
    def make():
        g = xg.Graph()
        x = g.input("x", (2,), dtype=np.float64)
        return x, xg.exp(x)
    x, y = make()  # the Graph object itself is gone from Python
    prog = y.graph.compile(y)
    np.testing.assert_allclose(prog(x=np.zeros(2)), [1.0, 1.0])


def test_reshape_of_symbolic_batch_is_checked_as_far_as_known():
    g = xg.Graph()
    x = g.input("x", (None, 3))
    with pytest.raises(ValueError, match="16 is not a multiple of 3"):
        xg.reshape(x, (4, 4))
    flat = g.compile(xg.reshape(x, (-1,)))
    assert flat(x=np.ones((5, 3), np.float32)).shape == (15,)
    with pytest.raises(ValueError, match="op 'reshape'.*cannot reshape 9 elements"):
        g.compile(xg.reshape(x, (4, -1)))(x=np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match=r"invalid shape \(-5,\)"):
        g.input("q", (-5,))


def test_empty_batch_runs():
    g = xg.Graph()
    x = g.input("x", (None, 3))
    w = g.param("w", np.ones((3, 2), np.float32))
    y = xg.sum(x @ w, axis=0)
    (gw,) = xg.grad(xg.sum(y), [w])
    out, dw = g.compile([y, gw])(x=np.zeros((0, 3), np.float32))
    assert out.tolist() == [0.0, 0.0] and dw.shape == (3, 2) and not dw.any()


def test_one_version_everywhere():
    """VERSION is read by CMake (the C++ library's xgrad::version()) and by the Python package's metadata."""
    import importlib.metadata
    import pathlib
    version = (pathlib.Path(__file__).parents[2] / "VERSION").read_text().strip()
    assert xg.__version__ == version == xg._xgrad.version()
    try:
        installed = importlib.metadata.version("xgrad")
    except importlib.metadata.PackageNotFoundError:
        installed = None  # running from the source tree without `pip install .`
    if installed is not None and pathlib.Path(xg.__file__).resolve().is_relative_to(
            pathlib.Path(importlib.metadata.distribution("xgrad").locate_file("")).resolve()):
        assert installed == version
