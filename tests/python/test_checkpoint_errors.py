"""Bad checkpoint files: every one is a ValueError that names the file and says what is wrong (bad archive,
bad member, bad header, shape or dtype), from xg.load and from the C++ reader (io::read_npz, which
io::load_params uses), and no param changes unless the whole file is sound."""
import random
import re
import zipfile

import numpy as np
import pytest

import xgrad as xg
from xgrad import _xgrad


def model():
    g = xg.Graph()
    g.param("w", np.arange(12, dtype=np.float32).reshape(3, 4) / 7)
    g.param("b", np.linspace(-1, 1, 4))
    g.param("step", np.array(3, np.int64))
    g.param("mask", np.array([True, False]))
    return g


def snapshot(g):
    return {p.name: p.value.copy() for p in g.params}


def assert_bits_equal(g, values):
    for p in g.params:
        assert p.value.dtype == values[p.name].dtype and p.value.tobytes() == values[p.name].tobytes(), p.name


def mutate(rng, good):
    data = bytearray(good)
    kind = rng.random()
    if kind < 0.25:
        return bytes(data[:rng.randrange(len(data))])  # truncated
    if kind < 0.35:
        at = rng.randrange(len(data))
        return bytes(data[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[at:])  # inserted
    if kind < 0.45:
        at = rng.randrange(len(data))
        return bytes(data[:at] + data[at + rng.randint(1, 8):])  # deleted
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)  # bytes changed
    return bytes(data)


def test_randomly_mutated_checkpoints_are_value_errors_or_the_same_values(tmp_path):
    g = model()
    good_path = tmp_path / "good.npz"
    xg.save(good_path, g)
    good = good_path.read_bytes()
    target = model()
    for p in target.params:  # values that differ from the file's, so a load that writes anything shows
        p.value = np.zeros_like(p.value)
    untouched = snapshot(target)
    expected = snapshot(g)
    rng = random.Random(20261207)
    path = tmp_path / "mutated.npz"
    outcomes = {"ValueError": 0, "loaded": 0}
    for trial in range(3000):
        path.write_bytes(mutate(rng, good))
        try:
            xg.load(path, target)
        except ValueError as e:
            assert str(path) in str(e), e
            # what is wrong: the archive, a member, a header; or a name the graph lacks (a valid file of other names)
            assert re.search(r"bad archive|bad member|bad header|has no value for parameter|holds parameter", str(e)), e
            assert_bits_equal(target, untouched)
            outcomes["ValueError"] += 1
        else:  # the mutation hit bytes that do not matter (a name's padding, a spare field): the same values
            assert_bits_equal(target, expected)
            outcomes["loaded"] += 1
            for p in target.params:
                p.value = untouched[p.name]
        try:
            stored = _xgrad._read_npz(str(path))
        except ValueError as e:
            assert str(path) in str(e), e
            assert re.search(r"bad archive|bad member|bad header|unsupported dtype", str(e)), e
        else:
            assert sorted(stored) == sorted(expected), trial
            for name, value in stored.items():
                assert value.dtype == expected[name].dtype and value.tobytes() == expected[name].tobytes(), (trial, name)
    assert outcomes["ValueError"] > 2500, outcomes


def write_member(path, name, payload, compress=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compress) as z:
        z.writestr(name + ".npy", payload)


def npy(a, **kw):
    import io
    f = io.BytesIO()
    np.lib.format.write_array(f, a, **kw)
    return f.getvalue()


def both_readers(path, g):
    """The messages of xg.load and of the C++ reader for the same file."""
    before = snapshot(g)
    with pytest.raises(ValueError) as py_error:
        xg.load(path, g, strict=False)
    assert_bits_equal(g, before)
    with pytest.raises(ValueError) as cpp_error:
        _xgrad._read_npz(str(path))
    for e in (py_error, cpp_error):
        assert str(path) in str(e.value)
    return str(py_error.value), str(cpp_error.value)


def test_what_is_wrong_is_said(tmp_path):
    g = model()
    path = tmp_path / "ckpt.npz"
    xg.save(path, g)
    good = path.read_bytes()

    path.write_bytes(b"not a zip file at all")
    for msg in both_readers(path, g):
        assert "bad archive" in msg

    path.write_bytes(good[: len(good) // 2])
    for msg in both_readers(path, g):
        assert "bad archive" in msg or "bad member" in msg

    # one byte of w's data changed: the member's CRC-32 no longer matches
    w = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).tobytes()
    at = good.index(w) + 5
    path.write_bytes(good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1:])
    for msg in both_readers(path, g):
        assert "bad member" in msg and "CRC" in msg and "'w'" in msg

    write_member(path, "w", b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': '<f4' " + b"\x00" * 48)
    for msg in both_readers(path, g):
        assert "bad header" in msg and "'w'" in msg

    write_member(path, "w", npy(np.ones((3, 4), np.float32))[:-8])  # header says 12 floats, 10 stored
    for msg in both_readers(path, g):
        assert "bad member" in msg and "'w'" in msg

    np.savez_compressed(path, w=np.ones((3, 4), np.float32))
    for msg in both_readers(path, g):
        assert "compressed" in msg

    write_member(path, "w", npy(np.array([{"a": 1}], dtype=object), allow_pickle=True))
    py_msg, cpp_msg = both_readers(path, g)
    assert "object" in py_msg and "unsupported dtype" in cpp_msg


def test_wrong_shape_or_dtype_names_the_param_and_writes_nothing(tmp_path):
    g = model()
    path = tmp_path / "ckpt.npz"
    other = xg.Graph()
    other.param("w", np.ones((4, 3), np.float32))
    xg.save(path, other)
    before = snapshot(g)
    with pytest.raises(ValueError, match=r"parameter 'w'.*float32 \(4, 3\).*float32 \(3, 4\)"):
        xg.load(path, g, strict=False)
    assert_bits_equal(g, before)
    other = xg.Graph()
    other.param("w", np.ones((3, 4), np.float64))
    xg.save(path, other)
    with pytest.raises(ValueError, match=r"parameter 'w'.*float64"):
        xg.load(path, g, strict=False)
    assert_bits_equal(g, before)


def test_fortran_order_members_load_in_python_and_are_refused_by_cpp(tmp_path):
    path = tmp_path / "fortran.npz"
    value = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    write_member(path, "w", npy(value))
    g = xg.Graph()
    w = g.param("w", np.zeros((3, 4), np.float32))
    xg.load(path, g)
    np.testing.assert_array_equal(w.value, value)
    with pytest.raises(ValueError, match="Fortran"):
        _xgrad._read_npz(str(path))


def test_an_archive_of_exactly_65535_members_is_not_zip64(tmp_path):
    """Python's zipfile writes zip64 records only beyond 65535 entries: at exactly 65535 the end record
    says 0xFFFF and there is no zip64 locator."""
    path = tmp_path / "many.npz"
    member = npy(np.array(1.5))
    with zipfile.ZipFile(path, "w") as z:
        for i in range(65535):
            z.writestr(f"p{i}.npy", member)
    stored = _xgrad._read_npz(str(path))
    assert len(stored) == 65535 and stored["p65534"] == 1.5


def test_names_are_utf8_both_ways_and_nul_is_refused(tmp_path):
    path = tmp_path / "names.npz"
    _xgrad._write_npz(str(path), {"größe": np.ones(2, np.float32)})  # the C++ writer sets the UTF-8 flag
    g = xg.Graph()
    p = g.param("größe", np.zeros(2, np.float32))
    xg.load(path, g)
    np.testing.assert_array_equal(p.value, np.ones(2, np.float32))
    xg.save(path, g)
    assert list(_xgrad._read_npz(str(path))) == ["größe"]
    with pytest.raises(ValueError, match="NUL"):
        _xgrad._write_npz(str(path), {"a\0b": np.ones(2)})
    bad = xg.Graph()
    bad.param("a\0b", np.ones(2))
    with pytest.raises(ValueError, match="NUL"):
        xg.save(path, bad)
    assert list(_xgrad._read_npz(str(path))) == ["größe"]  # the file was left as it was


def test_a_negative_dimension_is_a_bad_header(tmp_path):
    path = tmp_path / "neg.npz"
    member = npy(np.ones((2, 2))).replace(b"(2, 2), }  ", b"(-2,-2), } ")  # the same length: one space of padding less
    assert b"(-2,-2)" in member
    write_member(path, "w", member)
    g = xg.Graph()
    g.param("w", np.zeros((2, 2)))
    py_msg, cpp_msg = both_readers(path, g)
    assert "bad header" in py_msg and "negative" in py_msg
    assert "bad header" in cpp_msg
