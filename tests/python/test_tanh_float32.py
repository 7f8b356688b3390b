"""float32 tanh on SIMD lanes is a fitted rational x P(x²) / Q(x²) (ops/elementwise.h), not the C library's:
within a few ulp of the correctly rounded value over the whole range, never past ±1, odd, and NaN, ±inf and
-0 as numpy has them; the fused (tiled) path and the plain kernel agree with it."""
import numpy as np

import xgrad as xg


def run_tanh(x, fused=False):
    g = xg.Graph()
    v = g.input("x", x.shape)
    out = xg.tanh(v * 1.0 + 0.0) if fused else xg.tanh(v)
    return g.compile(out)(x=x)


def ulp_error(got, x):
    want = np.tanh(x.astype(np.float64))
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


def test_within_eight_ulp_everywhere():
    x = np.concatenate([np.linspace(-12, 12, 2_000_001, dtype=np.float32),
                        np.float32(10.0) ** np.arange(-38, 1.2, 0.003, dtype=np.float32),
                        -(np.float32(10.0) ** np.arange(-38, 1.2, 0.003, dtype=np.float32))])
    got = run_tanh(x)
    assert got.dtype == np.float32
    assert ulp_error(got, x).max() <= 8
    assert np.abs(got).max() <= 1.0
    np.testing.assert_array_equal(run_tanh(-x), -got)  # odd


def test_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 9.0, 9.5, 1e-30, -1e-30, 88.0] + [0.5] * 22, np.float32)
    got = run_tanh(x)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:3], [1.0, -1.0])
    assert got[3] == 0 and not np.signbit(got[3]) and got[4] == 0 and np.signbit(got[4])
    assert ulp_error(got[5:], x[5:]).max() <= 8


def test_fused_and_plain_paths_agree():
    x = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32) * 4
    np.testing.assert_array_equal(run_tanh(x, fused=True), run_tanh(x))
