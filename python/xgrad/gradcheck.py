"""Finite-difference gradient checking for functions built from xgrad ops."""
import numpy as np

from . import _xgrad


class GradcheckError(AssertionError):
    """Raised by gradcheck when an analytic gradient disagrees with finite differences."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True):
    """Check xg.grad of ``fn`` against central finite differences, in float64.

    ``fn`` takes one node per array in ``inputs`` and returns a node. A
    non-scalar output is reduced as ``sum(out * R)`` with a fixed random R, so
    every output element is checked. Returns True, or raises GradcheckError
    naming the input and the worst element (returns False instead when
    ``raise_exception=False``).

    Example::

        >>> import numpy as np, xgrad as xg
        >>> xg.gradcheck(lambda a, b: xg.tanh(a @ b), [np.random.randn(3, 4), np.random.randn(4, 2)])
        True
    """
    arrays = [np.array(a, dtype=np.float64) for a in inputs]
    g = _xgrad.Graph()
    nodes = [g.input(f"input{i}", a.shape, dtype=np.float64) for i, a in enumerate(arrays)]
    out = fn(*nodes)
    if out.dtype != np.float64:
        raise TypeError(f"gradcheck: fn must return a float64 node for float64 inputs, got {out.dtype}")
    if out.shape == ():
        loss = out
    else:
        R = np.random.default_rng(seed).standard_normal(out.shape)
        loss = _xgrad.sum(out * g.const(R))
    grads = _xgrad.grad(loss, nodes, allow_unused=True)
    loss_prog = g.compile(loss)
    grad_prog = g.compile(grads)

    def feeds():
        return {f"input{i}": a for i, a in enumerate(arrays)}

    analytic = grad_prog(**feeds())
    for i, (a, got) in enumerate(zip(arrays, analytic)):
        numeric = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            orig = a[idx]
            a[idx] = orig + eps
            plus = float(loss_prog(**feeds()))
            a[idx] = orig - eps
            minus = float(loss_prog(**feeds()))
            a[idx] = orig
            numeric[idx] = (plus - minus) / (2 * eps)
        bad = ~np.isclose(got, numeric, rtol=rtol, atol=atol)
        if bad.any():
            if not raise_exception:
                return False
            worst = np.unravel_index(np.argmax(np.abs(got - numeric) * bad), a.shape)
            raise GradcheckError(
                f"gradcheck: gradient of input {i} (shape {a.shape}) differs at {bad.sum()} of {a.size} elements; "
                f"worst at {tuple(int(j) for j in worst)}: analytic {got[worst]!r}, numeric {numeric[worst]!r}")
    return True
