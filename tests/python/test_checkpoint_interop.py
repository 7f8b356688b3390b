"""The C++ checkpoint reader and writer against numpy and xg.save: one file format for both languages."""
import numpy as np
import pytest

import xgrad as xg
from xgrad import _xgrad


def test_numpy_reads_what_cpp_writes(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.array(4.0), "ids": np.arange(3),
              "mask": np.array([True, False])}
    path = str(tmp_path / "c.npz")
    _xgrad._write_npz(path, arrays)
    with np.load(path) as f:
        assert set(f.files) == set(arrays)
        for k, v in arrays.items():
            assert f[k].dtype == v.dtype and f[k].shape == v.shape
            np.testing.assert_array_equal(f[k], v)


def test_cpp_reads_xg_save_and_np_savez(tmp_path):
    g = xg.Graph()
    g.param("layer.weight", np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    g.param("sgd.step", np.array(2.0, np.float32))
    path = str(tmp_path / "py.npz")
    xg.save(path, g)  # zip64 members
    back = _xgrad._read_npz(path)
    for p in g.params:
        np.testing.assert_array_equal(back[p.name], p.value)
        assert back[p.name].shape == p.shape
    path2 = str(tmp_path / "np.npz")
    np.savez(path2, a=np.ones((2, 2)), b=np.arange(5))
    back = _xgrad._read_npz(path2)
    np.testing.assert_array_equal(back["a"], np.ones((2, 2)))
    np.testing.assert_array_equal(back["b"], np.arange(5))


def test_cpp_refuses_compressed_and_unsupported(tmp_path):
    path = str(tmp_path / "z.npz")
    np.savez_compressed(path, a=np.ones(3))
    with pytest.raises(ValueError, match="compressed"):
        _xgrad._read_npz(path)
    np.savez(path, a=np.ones(3, np.int32))
    with pytest.raises(ValueError, match="unsupported dtype"):
        _xgrad._read_npz(path)


def test_cpp_refuses_a_shape_larger_than_the_stored_data(tmp_path):
    import io
    import zipfile
    path = str(tmp_path / "bad.npz")
    f = io.BytesIO()
    np.lib.format.write_array(f, np.ones(4))
    member = f.getvalue().replace(b"(4,)", b"(9,)")  # same length: only the header lies (its CRC is right)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", member)
    with pytest.raises(ValueError, match="shape \\(9,\\) needs more data than the entry holds"):
        _xgrad._read_npz(path)
