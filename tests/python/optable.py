"""The op-test harness: one table of cases per op family drives the same checks.

A Case builds an output node from input nodes and names its numpy reference.
`table_tests(CASES)` returns the standard tests for a table, which a test
module adds with `globals().update(table_tests(CASES))`:

1. forward parity with the reference, float32 and float64, static and with a
   symbolic (None) first dimension;
2. float64 central finite-difference gradient check of sum(out * R);
3. for cases marked second_order, the gradient of <first gradient, V>
   against finite differences of the first gradient;
4. ONNX: export (symbolic batch where the case allows), the onnx checker and
   strict shape inference, ONNX Runtime at two batch sizes against xgrad,
   and export -> import -> run against xgrad.
"""
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import pytest

import xgrad as xg

_rng = np.random.default_rng(1234)


def any_values(*shape):
    """Values in [-1.5, 1.5], kept at least 0.1 away from 0 (relu/step kinks, pow with integer exponent)."""
    mag = _rng.uniform(0.1, 1.5, size=shape)
    return np.where(_rng.random(shape) < 0.5, -mag, mag)


def pos_values(*shape):
    """Strictly positive values (log, sqrt, non-integer pow)."""
    return _rng.uniform(0.5, 2.0, size=shape)


def nonzero_values(*shape):
    """Denominators: |v| in [0.5, 2], random sign."""
    mag = _rng.uniform(0.5, 2.0, size=shape)
    return np.where(_rng.random(shape) < 0.5, -mag, mag)


def small_values(*shape):
    return _rng.uniform(-1.0, 1.0, size=shape)


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    op: str                      # the registered op this case covers
    build: Callable              # (*input nodes) -> output node
    ref: Callable                # (*numpy arrays) -> numpy array
    inputs: Sequence[np.ndarray]  # float64 arrays, one per builder argument
    kinds: Optional[Tuple[str, ...]] = None  # "input" (default) or "param" per argument
    dynamic: Optional[Tuple[bool, ...]] = None  # which inputs may get a None first dim (default: every input of rank >= 1)
    second_order: Optional[str] = None  # None: skip; "strict": every input must get a 2nd-order gradient; "loose": allow_unused
    extra_ops: Tuple[str, ...] = field(default_factory=tuple)  # other registered ops a case also covers
    grad: bool = True            # False: the output is not differentiable (bool or int64)
    out_dtype: Optional[type] = None  # None: the input dtype
    rtol: Optional[float] = None  # forward tolerance when the op amplifies rounding (e.g. inverses)

    def __post_init__(self):
        n = len(self.inputs)
        if self.kinds is None:
            self.kinds = ("input",) * n
        if self.dynamic is None:
            self.dynamic = tuple(k == "input" and np.ndim(a) >= 1 for k, a in zip(self.kinds, self.inputs))
        assert len(self.kinds) == n and len(self.dynamic) == n, self.id

    @property
    def has_dynamic_variant(self):
        return any(self.dynamic)



class Built:
    """A case instantiated in a fresh graph."""

    def __init__(self, case, dtype=np.float64, dynamic=False):
        self.case = case
        self.dtype = dtype
        self.g = xg.Graph()
        self.arrays = [np.array(a, dtype=dtype) for a in case.inputs]  # private copies, perturbed by FD
        self.nodes = []
        for i, (arr, kind, dyn) in enumerate(zip(self.arrays, case.kinds, case.dynamic)):
            if kind == "param":
                self.nodes.append(self.g.param(f"w{i}", arr))
            else:
                shape = arr.shape
                if dynamic and dyn:
                    shape = (None,) + shape[1:]
                self.nodes.append(self.g.input(f"x{i}", shape, dtype=dtype))
        self.out = case.build(*self.nodes)

    def run(self, prog):
        return prog(**self.feeds())

    def feeds(self):
        """Input feeds keyed by name; params get their current array assigned (copied in)."""
        feeds = {}
        for node, arr, kind in zip(self.nodes, self.arrays, self.case.kinds):
            if kind == "param":
                node.value = arr
            else:
                feeds[node.name] = arr
        return feeds

    def reference(self):
        return self.case.ref(*[a.astype(np.float64) for a in self.arrays])


def _check_shape(node_shape, ref_shape, dynamic):
    assert len(node_shape) == len(ref_shape), (node_shape, ref_shape)
    for d, r in zip(node_shape, ref_shape):
        assert d == r or (dynamic and d is None), (node_shape, ref_shape)


def _fd(f, arrays, k, eps=1e-6):
    """Central differences of f() w.r.t. arrays[k], perturbed in place.

    f returns a scalar or an array: the result has shape arrays[k].shape + f's shape.
    """
    x = arrays[k]
    out = None
    for idx in np.ndindex(x.shape):
        orig = x[idx]
        x[idx] = orig + eps
        fp = np.array(f(), dtype=np.float64)
        x[idx] = orig - eps
        fm = np.array(f(), dtype=np.float64)
        x[idx] = orig
        d = (fp - fm) / (2 * eps)
        if out is None:
            out = np.zeros(x.shape + d.shape)
        out[idx] = d
    return out


def _loss(b, R):
    return xg.sum(b.out * b.g.const(R))



def _rng_for(case):
    return np.random.default_rng(zlib.crc32(case.id.encode()))


def check_forward(case, dtype, rtol, atol, dynamic):
    b = Built(case, dtype, dynamic)
    expected = b.reference()
    out_dtype = np.dtype(case.out_dtype or dtype)
    assert b.out.dtype == out_dtype
    _check_shape(b.out.shape, expected.shape, dynamic)
    prog = b.g.compile(b.out)
    feeds = b.feeds()
    got = prog({b.g.node(k): v for k, v in feeds.items()}) if feeds else prog()
    assert isinstance(got, np.ndarray)
    assert got.dtype == out_dtype
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=case.rtol or rtol, atol=atol)


def check_grad(case, dynamic):
    b = Built(case, np.float64, dynamic)
    R = _rng_for(case).standard_normal(b.reference().shape)
    loss = _loss(b, R)
    grads = xg.grad(loss, b.nodes)
    assert len(grads) == len(b.nodes)
    for gnode, node in zip(grads, b.nodes):
        assert gnode.dtype == np.float64
        assert gnode.shape == node.shape, (gnode, node)
    prog = b.g.compile([loss] + grads)
    loss_prog = b.g.compile(loss)
    res = b.run(prog)
    np.testing.assert_allclose(res[0], np.sum(b.reference() * R), rtol=1e-12, atol=1e-12)
    for k, analytic in enumerate(res[1:]):
        assert analytic.shape == b.arrays[k].shape
        numeric = _fd(lambda: b.run(loss_prog), b.arrays, k)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=f"input {k} of {case.id}")


def check_second_order(case, dynamic):
    b = Built(case, np.float64, dynamic)
    rng = _rng_for(case)
    R = rng.standard_normal(b.reference().shape)
    loss = _loss(b, R)
    grads = xg.grad(loss, b.nodes)
    Vs = [rng.standard_normal(a.shape) for a in b.arrays]
    s = None
    for gnode, V in zip(grads, Vs):
        term = xg.sum(gnode * b.g.const(V))
        s = term if s is None else s + term
    hess_v = xg.grad(s, b.nodes, allow_unused=(case.second_order == "loose"))
    prog = b.g.compile(hess_v)
    first = b.g.compile(grads)
    analytic = b.run(prog)
    for k in range(len(b.nodes)):
        # d(first gradient)/d(input k) by central differences, contracted with V
        numeric = np.zeros(b.arrays[k].shape)
        for j, V in enumerate(Vs):
            jac = _fd(lambda: b.run(first)[j], b.arrays, k)  # input_k.shape + grads[j].shape
            numeric += np.tensordot(jac, V, axes=V.ndim)
        np.testing.assert_allclose(analytic[k], numeric, rtol=1e-6, atol=1e-8, err_msg=f"input {k} of {case.id}")


# ONNX Runtime (1.30, CPU) has no float64 kernel for these ONNX ops; a float64
# model that uses them is valid ONNX, and ONNX Runtime says NOT_IMPLEMENTED.
ORT_NO_FLOAT64 = {"Erf", "Conv", "ConvTranspose", "AveragePool", "Det"}
_ONNX_TOL = {np.float32: 1e-5, np.float64: 1e-10}


def _grow_batch(arrays, which):
    """Copies of the arrays with one more row on axis 0 for the inputs in `which`."""
    return [np.concatenate([a, a[:1]]) if k in which else a for k, a in enumerate(arrays)]


def _assert_mask_like(got):
    """A dropout mask: every value 0 or 1 / (1 - p)."""
    vals = np.unique(got)
    assert all(np.isclose(v, 0) or np.isclose(v, vals.max()) for v in vals), vals


def check_onnx(case, dtype, ort, tmp_path):
    import dataclasses
    import onnx
    if case.op.startswith("conv2d") and case.has_dynamic_variant:
        # a convolution's batch is its data's first dim; weights keep their sizes
        case = dataclasses.replace(case, dynamic=(case.dynamic[0],) + (False,) * (len(case.dynamic) - 1))
    b = Built(case, dtype, dynamic=case.has_dynamic_variant)
    _record_ops([b.out])
    feeds = b.feeds()  # also assigns param values
    path = tmp_path / f"{case.id}.onnx"
    xg.onnx.export(b.out, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    op_types = {n.op_type for n in model.graph.node}
    assert [i.name for i in model.graph.input] == [n.name for n, k in zip(b.nodes, case.kinds) if k == "input"]
    assert {i.name for i in model.graph.initializer} == {n.name for n, k in zip(b.nodes, case.kinds) if k == "param"}
    prog = b.g.compile(b.out)
    tol = _ONNX_TOL[dtype]
    nondeterministic = case.op == "dropout_mask"

    # feeds at the case's batch size, then one row more on the symbolic inputs
    # (all of them, else each alone when the case ties them together)
    names = [n.name for n, k in zip(b.nodes, case.kinds) if k == "input"]
    arrays = [feeds[n] for n in names]
    variants = [arrays]
    dyn = [k for k, n in enumerate(names) if b.g.node(n).shape[:1] == (None,)]
    for which in ([dyn] + [[k] for k in dyn]) if len(dyn) > 1 else [dyn]:
        if not which:
            continue
        grown = _grow_batch(arrays, which)
        try:
            prog(**dict(zip(names, grown)))
        except ValueError:
            continue
        variants.append(grown)
        break
    # A case whose symbolic dim is tied to a static one (a reshape to fixed
    # dims, a matmul with a param) runs at its own batch size only: xgrad
    # itself refuses the grown feeds above.

    imported = xg.onnx.load(path)
    for arrs in variants:
        f = dict(zip(names, arrs))
        want = prog(**f)
        again = imported(**f)
        if nondeterministic:
            _assert_mask_like(again)
        else:
            # the importer may map an op onto others (lstsq on the normal equations): ONNX's tolerance
            np.testing.assert_allclose(again, want, rtol=max(tol, case.rtol or 0), atol=tol)
        try:
            (got,) = ort.run(path, f)
        except Exception as e:  # OrtError
            if dtype == np.float64 and op_types & ORT_NO_FLOAT64 and ("NOT_IMPLEMENTED" in str(e) or "Could not find an implementation" in str(e)):
                return "ort-no-float64"
            raise
        assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
        if nondeterministic:
            _assert_mask_like(got)
        else:
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    return "ok"


# Registered ops that some exported model (forward or gradient) contained.
EXPORTED_OPS = set()


def _record_ops(roots):
    seen, stack = set(), list(roots)
    while stack:
        n = stack.pop()
        key = (n.graph is not None, n.name)
        if key in seen:
            continue
        seen.add(key)
        if n.op:
            EXPORTED_OPS.add(n.op)
        stack.extend(n.inputs)


def check_onnx_grad(case, dtype, ort, tmp_path):
    """The gradient graph (gradient-only ops included) exports and runs in ONNX Runtime too."""
    b = Built(case, dtype, dynamic=False)
    feeds = b.feeds()
    R = _rng_for(case).standard_normal(b.reference().shape).astype(dtype)
    grads = xg.grad(_loss(b, R), b.nodes)
    _record_ops(grads)
    path = tmp_path / f"{case.id}-grad.onnx"
    xg.onnx.export(grads, path)
    model = __import__("onnx").load(str(path))
    want = b.g.compile(grads)(**feeds)
    names = {i.name for i in model.graph.input}
    try:
        got = ort.run(path, {k: v for k, v in feeds.items() if k in names})
    except Exception as e:  # OrtError
        if dtype == np.float64 and {n.op_type for n in model.graph.node} & ORT_NO_FLOAT64 and \
                "Could not find an implementation" in str(e):
            return
        raise
    tol = _ONNX_TOL[dtype]
    if dtype == np.float32 and any(n.op_type == "Inverse" for n in model.graph.node):
        # ORT inverts A^T A where LAPACK factors A: float32 rounding grows with the squared condition number
        tol = 1e-4
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=max(tol, case.rtol or 0), atol=tol)


def table_tests(cases):
    """The standard tests over a table, as a dict of test functions to add to a module."""
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    dyn = [c for c in cases if c.has_dynamic_variant]
    grad = [c for c in cases if c.grad]
    grad_dyn = [c for c in dyn if c.grad]
    second = [c for c in grad if c.second_order]
    second_dyn = [c for c in second if c.has_dynamic_variant]

    @pytest.mark.parametrize("dtype,rtol,atol", [(np.float32, 1e-5, 1e-6), (np.float64, 1e-12, 1e-14)],
                             ids=["float32", "float64"])
    @pytest.mark.parametrize("case,dynamic", [(c, False) for c in cases] + [(c, True) for c in dyn],
                             ids=[c.id + "-static" for c in cases] + [c.id + "-dynamic" for c in dyn])
    def test_forward(case, dtype, rtol, atol, dynamic):
        check_forward(case, dtype, rtol, atol, dynamic)

    @pytest.mark.parametrize("case", grad, ids=[c.id for c in grad])
    def test_grad_static(case):
        check_grad(case, dynamic=False)

    @pytest.mark.parametrize("case", grad_dyn, ids=[c.id for c in grad_dyn])
    def test_grad_dynamic(case):
        check_grad(case, dynamic=True)

    @pytest.mark.parametrize("case", second, ids=[c.id for c in second])
    def test_second_order_static(case):
        check_second_order(case, dynamic=False)

    @pytest.mark.parametrize("case", second_dyn, ids=[c.id for c in second_dyn])
    def test_second_order_dynamic(case):
        check_second_order(case, dynamic=True)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
    @pytest.mark.parametrize("case", cases, ids=ids)
    def test_onnx(case, dtype, ort, tmp_path):
        check_onnx(case, dtype, ort, tmp_path)

    @pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
    @pytest.mark.parametrize("case", grad, ids=[c.id for c in grad])
    def test_onnx_grad(case, dtype, ort, tmp_path):
        check_onnx_grad(case, dtype, ort, tmp_path)

    return {f.__name__: f for f in (test_forward, test_grad_static, test_grad_dynamic, test_second_order_static,
                                    test_second_order_dynamic, test_onnx, test_onnx_grad)}
