"""The vectorized sum paths (blocks of 1024 in SIMD accumulators, then double; a SIMD remainder; column sums) on the
sizes the op table's small cases never reach, against a float64 reference: float32 sums stay as accurate as numpy's
pairwise sum."""
import numpy as np
import pytest

import xgrad as xg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [
    ((1_000_003,), None),      # whole blocks, a SIMD remainder and a scalar tail
    ((4096, 64), 1),           # inner runs shorter than a block
    ((300, 2500), 1),          # inner runs of two blocks and a remainder
    ((4096, 64), 0),           # column sums: rows added into the output
    ((7, 1031, 3), (0, 2)),    # strided inner runs
    ((5, 0), 1),               # empty runs
])
def test_sums_match_a_float64_reference(dtype, shape, axis):
    X = (np.random.default_rng(0).standard_normal(shape) + 0.25).astype(dtype)
    g = xg.Graph()
    x = g.input("x", shape, dtype=dtype)
    got_sum, got_mean = g.compile([xg.sum(x, axis=axis), xg.mean(x, axis=axis)])(x=X)
    want = X.astype(np.float64).sum(axis=axis)
    count = X.size // max(np.asarray(want).size, 1) if X.size else 0
    assert got_sum.dtype == dtype
    # A few ulp of the magnitudes summed, or no worse than numpy's own sum in this dtype; column sums add the rows
    # one after another (in numpy as here, in a different order once split across threads), whose rounding
    # grows with the square root of the rows added.
    numpy_error = np.abs(X.sum(axis=axis).astype(np.float64) - want)
    eps = 2e-7 if dtype == np.float32 else 1e-15
    magnitude = np.abs(X).astype(np.float64).sum(axis=axis) + 1
    rows_added = shape[0] if axis == 0 else 1
    tol = np.maximum(magnitude * eps * np.sqrt(rows_added), 2 * numpy_error)
    assert np.all(np.abs(got_sum - want) <= tol)
    if count:
        np.testing.assert_allclose(got_mean, want / count, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


SPLIT_SHAPES = [  # over 256K elements: cut along the first axis across threads
    ((1 << 20,), None),          # everything, a 1-D run
    ((2000, 300), None),         # everything
    ((2000, 300), 0),            # the cut axis reduced: per-thread copies added in double
    ((3001, 200), 1),            # the cut axis kept: each thread its own rows
    ((7, 300, 200), (0, 2)),     # a short cut axis, reduced, with another
    ((3, 100000), 0),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axes", SPLIT_SHAPES, ids=[f"{s}-{a}" for s, a in SPLIT_SHAPES])
def test_large_sums_split_across_threads_match_float64(shape, axes, dtype):
    X = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    g = xg.Graph()
    x = g.input("x", shape, dtype=dtype)
    got_sum, got_mean = g.compile([xg.sum(x, axes), xg.mean(x, axes)])(x=X)
    want = X.astype(np.float64).sum(axis=axes)
    count = X.size / np.size(want)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.sqrt(count)  # the sums' own size: a standard normal sum of count terms
    np.testing.assert_allclose(got_sum, want, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(got_mean, want / count, rtol=tol, atol=tol * scale / count)
