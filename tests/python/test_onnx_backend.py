"""ONNX's own backend tests (Debian's libonnx-testdata) against the ONNX importer: the node tests (one op per
model), and the models real exporters wrote: the pytorch-converted, pytorch-operator and simple folders.

Each case directory holds model.onnx and test_data_set_*/{input,output}_*.pb. A case is *claimed* when every op
type of its graph (domain-prefixed outside the default domain) is in xg.onnx.importable_ops(). Then:

 1. claimed cases whose graph inputs and outputs are float32/float64/int64/bool tensors must import, run and
    match every expected output of every data set (dtype, shape, values);
 2. claimed cases with any other type must raise TypeError naming that type (an element type such as int32 or
    float16; for sequence / optional values, the kind of value);
 3. unclaimed cases must raise ValueError listing exactly the op types the importer does not map.

Graph inputs that must be known when the graph is built (a Reshape's shape, a ReduceSum's axes fed as inputs)
are given to the importer as constants from the data set (xg.onnx.load(..., constants=...)).

The variants in KNOWN_UNSUPPORTED (training-mode Dropout / BatchNormalization, MaxPool's Indices output,
ScatterND multiplying at repeated indices, convolution over 1 or 3 spatial dims) stand in for rule 1: each is asserted to raise a ValueError that
says what is not supported. (int64 data runs through xgrad's float-only arithmetic as float64, exact below 2^53;
a case that still fails with an int64 TypeError is counted as "int64 math" and reported.)

One test per case (ids: the case directory's name; "<folder>/<name>" outside the node tests); the last test prints
the totals of each folder, which pytest's summary repeats. Point ONNX_TESTDATA elsewhere to use another copy of
the data (the folder holding node/, pytorch-converted/, ...).
"""
import functools
import os
import re
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, numpy_helper  # noqa: E402

import xgrad as xg  # noqa: E402

DATA = Path(os.environ.get("ONNX_TESTDATA", "/usr/share/libonnx-testdata/data"))
FOLDERS = ("node", "pytorch-converted", "pytorch-operator", "simple")
if not all((DATA / f).is_dir() for f in FOLDERS):
    pytest.skip(f"no ONNX backend test data at {DATA} (Debian: apt install libonnx-testdata)",
                allow_module_level=True)


def _cases_in(folder):
    return sorted(f"{folder}/{p.name}" for p in (DATA / folder).iterdir() if (p / "model.onnx").is_file())


NODE_CASES = _cases_in("node")
EXPORTER_CASES = [c for folder in FOLDERS[1:] for c in _cases_in(folder)]
IMPORTABLE = frozenset(xg.onnx.importable_ops())
SUPPORTED_ELEM = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.BOOL}
TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5), np.dtype(np.float64): dict(rtol=1e-7, atol=1e-7)}

# Case-name prefix -> the ValueError the importer gives for a variant it does not support.
KNOWN_UNSUPPORTED = {
    "node/test_maxpool_with_argmax": "Indices output is not supported",
    "node/test_training_dropout": "training_mode Dropout is not supported",
    "node/test_dropout_default_mask": "output 'z' is never computed",
    "node/test_batchnorm_epsilon_training_mode": "training_mode BatchNormalization is not supported",
    "node/test_batchnorm_example_training_mode": "training_mode BatchNormalization is not supported",
    "node/test_scatternd_multiply": "repeated indices are supported only with reduction='add'",
    "node/test_convtranspose_3d": "ConvTranspose of 1 or 2 spatial dims is supported",
}
INT64_MATH = "expects a float32 or float64 input, got int64"

# case -> "passed" | "failed" | "dtype ok" | "dtype FAILED" | "unclaimed ok" | "unclaimed FAILED"
RESULTS = {}
SUMMARY = None


def _op_key(node):
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _type_name(type_proto):
    """The ONNX element type's name as the importer spells it (float, int32, ...) or the kind of a non-tensor value
    (sequence, optional, map, sparse_tensor); None for the element types xgrad holds."""
    kind = type_proto.WhichOneof("value")
    if kind != "tensor_type":
        return (kind or "undefined").replace("_type", "")
    elem = type_proto.tensor_type.elem_type
    return None if elem in SUPPORTED_ELEM else TensorProto.DataType.Name(elem).lower()


@functools.lru_cache(maxsize=None)
def _case(name):
    """(model proto, op types, unsupported op types, unsupported type names of the graph's inputs and outputs)."""
    model = onnx.load(str(DATA / name / "model.onnx"))
    ops = frozenset(_op_key(n) for n in model.graph.node)
    values = list(model.graph.input) + list(model.graph.output)
    bad_types = frozenset(t for t in (_type_name(v.type) for v in values) if t is not None)
    return model, ops, ops - IMPORTABLE, bad_types


def _category(name):
    _, _, unclaimed_ops, bad_types = _case(name)
    if unclaimed_ops:
        return "unclaimed"
    if bad_types:
        return "dtype"
    if any(name.startswith(prefix) for prefix in KNOWN_UNSUPPORTED):
        return "known"
    return "run"


def _load(name, feeds):
    """Imports the case, giving graph inputs the importer needs as constants their data-set values."""
    constants = {}
    while True:
        try:
            return xg.onnx.load(DATA / name / "model.onnx", constants=constants), constants
        except ValueError as e:
            found = re.search(r"\('([^']+)'\) must be a constant", str(e))
            if not found or found.group(1) not in feeds or found.group(1) in constants:
                raise
            constants[found.group(1)] = feeds[found.group(1)]


def _read_tensor(path):
    t = TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def _data_sets(name):
    return sorted((DATA / name).glob("test_data_set_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))


def _numbered(folder, prefix):
    return [folder / f"{prefix}_{i}.pb" for i in range(len(list(folder.glob(f"{prefix}_*.pb"))))]


def _check_runs(name):
    """Rule 1: imports, runs and matches every expected output of every data set."""
    model_proto, _, _, _ = _case(name)
    graph = model_proto.graph
    initializers = {i.name for i in graph.initializer}
    input_names = [v.name for v in graph.input if v.name not in initializers]
    output_names = [v.name for v in graph.output]
    sets = _data_sets(name)
    assert sets, f"{name}: no test_data_set_* folders"

    for ds in sets:
        inputs = [_read_tensor(p) for p in _numbered(ds, "input")]
        expected = [_read_tensor(p) for p in _numbered(ds, "output")]
        assert len(inputs) == len(input_names), f"{ds.name}: {len(inputs)} input files for graph inputs {input_names}"
        assert len(expected) == len(output_names), f"{ds.name}: {len(expected)} output files for {output_names}"
        feeds = dict(zip(input_names, inputs))
        try:
            model, constants = _load(name, feeds)
        except TypeError as e:
            if INT64_MATH in str(e) and any(a.dtype == np.int64 for a in inputs):
                return "int64 math"
            raise
        got = model(**{k: v for k, v in feeds.items() if k not in constants})
        if len(model.output_names) == 1:
            got = [got]
        got = dict(zip(model.output_names, got))
        for out_name, want in zip(output_names, expected):
            assert out_name in got, f"{ds.name}: the model has no output '{out_name}' (it has {model.output_names})"
            actual = np.asarray(got[out_name])
            what = f"{ds.name} output '{out_name}'"
            assert actual.dtype == want.dtype, f"{what}: dtype {actual.dtype}, expected {want.dtype}"
            assert actual.shape == want.shape, f"{what}: shape {actual.shape}, expected {want.shape}"
            if want.dtype in TOLERANCE:
                np.testing.assert_allclose(actual, want, err_msg=what, **TOLERANCE[want.dtype])
            else:
                np.testing.assert_array_equal(actual, want, err_msg=what)
    return "passed"


def _check_known(name):
    """A documented unsupported variant: a ValueError that says so."""
    reason = next(r for prefix, r in KNOWN_UNSUPPORTED.items() if name.startswith(prefix))
    with pytest.raises(ValueError, match=re.escape(reason)):
        inputs = [_read_tensor(p) for p in _numbered(_data_sets(name)[0], "input")]
        graph = _case(name)[0].graph
        init = {i.name for i in graph.initializer}
        names = [v.name for v in graph.input if v.name not in init]
        model, constants = _load(name, dict(zip(names, inputs)))
        model(**{k: v for k, v in zip(names, inputs) if k not in constants})


def _check_rejects_types(name):
    """Rule 2: TypeError naming one of the unsupported element types (or value kinds)."""
    bad_types = _case(name)[3]
    with pytest.raises(TypeError) as err:
        xg.onnx.load(DATA / name / "model.onnx")
    message = str(err.value).lower()
    named = [t for t in bad_types if re.search(rf"\b{re.escape(t)}\b", message)]
    assert named, f"the TypeError names none of {sorted(bad_types)}: {err.value}"


def _check_rejects_ops(name):
    """Rule 3: ValueError listing exactly the op types the importer does not map."""
    unclaimed_ops = _case(name)[2]
    with pytest.raises(ValueError) as err:
        xg.onnx.load(DATA / name / "model.onnx")
    found = re.search(r"uses ops xgrad cannot import: (.*)$", str(err.value))
    assert found, f"the ValueError lists no ops (expected {sorted(unclaimed_ops)}): {err.value}"
    listed = {op.strip() for op in found.group(1).split(",") if op.strip()}
    claimed_but_listed = sorted(listed & IMPORTABLE)
    assert not claimed_but_listed, f"lists ops that importable_ops() claims: {claimed_but_listed}: {err.value}"
    assert listed == unclaimed_ops, f"lists {sorted(listed)}, expected {sorted(unclaimed_ops)}"


CHECKS = {"run": (_check_runs, "passed", "failed"),
          "known": (_check_known, "known ok", "known FAILED"),
          "dtype": (_check_rejects_types, "dtype ok", "dtype FAILED"),
          "unclaimed": (_check_rejects_ops, "unclaimed ok", "unclaimed FAILED")}


def _run_case(name):
    check, ok, bad = CHECKS[_category(name)]
    RESULTS[name] = bad
    outcome = check(name)
    RESULTS[name] = outcome if outcome in ("int64 math",) else ok


def _short(case):
    return case.split("/", 1)[1]


@pytest.mark.parametrize("case", NODE_CASES, ids=_short)
def test_node_case(case):
    _run_case(case)


@pytest.mark.parametrize("case", EXPORTER_CASES)
def test_exporter_case(case):
    _run_case(case)


OUTCOMES = ("passed", "failed", "int64 math", "known ok", "known FAILED", "dtype ok", "dtype FAILED", "unclaimed ok",
            "unclaimed FAILED")


def _tally(label, cases):
    count = {k: sum(1 for c in cases if RESULTS.get(c) == k) for k in OUTCOMES}
    claimed = sum(1 for c in cases if _category(c) != "unclaimed")
    dtype = count["dtype ok"] + count["dtype FAILED"]
    unclaimed = count["unclaimed ok"] + count["unclaimed FAILED"]
    assert claimed + unclaimed == len(cases)
    return (f"{label}: {count['passed']} of {len(cases)} pass "
            f"({claimed} claimed: {count['passed']} pass, {count['failed']} fail, {count['int64 math']} int64 math, "
            f"{count['known ok'] + count['known FAILED']} known unsupported variants, {dtype} unsupported dtype "
            f"[{count['dtype FAILED']} without the expected TypeError]; {unclaimed} unclaimed "
            f"[{count['unclaimed FAILED']} without the expected ValueError])")


def test_summary():
    """Prints the totals of each folder (running any case this session has not, e.g. under -k)."""
    for name in NODE_CASES + EXPORTER_CASES:
        if name not in RESULTS:
            try:
                _run_case(name)
            except Exception:  # already recorded as failed; its own test shows why
                pass
    lines = [_tally("ONNX backend node tests", NODE_CASES)]
    for folder in FOLDERS[1:]:
        lines.append(_tally(f"ONNX {folder} models", [c for c in EXPORTER_CASES if c.startswith(folder + "/")]))
    print("\n" + "\n".join(lines))
    global SUMMARY
    SUMMARY = "\n".join(lines)  # conftest.py prints it in pytest's terminal summary
