"""What the xgrad estimators share: input validation the scikit-learn way, the L-BFGS driver over a compiled
xgrad program, and pickling without the (unpicklable) graphs and programs."""
import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # Debian 12's 1.2: the estimator's own method
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = ["validate", "minimize_lbfgs", "CachedGraphs"]


def validate(estimator, X, y="no_validation", *, reset=True, **kwargs):
    """Checks X (and y) as scikit-learn's own estimators do: the same errors (NaN, complex, sparse, 1-D X, an
    empty array, a changed number of features), n_features_in_ and feature_names_in_ set when reset. Arrays
    come back float64 and C-contiguous (a read-only memmap is copied only when it is not)."""
    kwargs.setdefault("dtype", np.float64)
    kwargs.setdefault("order", "C")
    return _validate_data(estimator, X, y, reset=reset, **kwargs)


def minimize_lbfgs(loss_and_grad, x0, *, max_iter, tol, what):
    """Minimizes loss_and_grad(theta) -> (float, gradient array) from x0 with scipy's L-BFGS-B, the driver
    scikit-learn's lbfgs solvers use (same gtol and ftol). Warns ConvergenceWarning when max_iter is reached.
    Returns (theta, iterations)."""
    result = scipy.optimize.minimize(loss_and_grad, x0, method="L-BFGS-B", jac=True,
                                     options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                                              "ftol": 64 * np.finfo(float).eps})
    if result.status == 1:
        warnings.warn(f"{what}: L-BFGS did not converge in max_iter={max_iter} iterations (gradient norm "
                      f"{np.abs(result.jac).max():.3g} > tol={tol}); raise max_iter or scale the data",
                      ConvergenceWarning, stacklevel=3)
    elif not result.success and not np.all(np.isfinite(result.x)):
        raise RuntimeError(f"{what}: L-BFGS failed: {result.message}")
    return result.x, max(int(result.nit), 1)


class CachedGraphs:
    """Mixin: attributes whose names start with "_graph" hold xgrad Graphs and Programs built from the fitted
    arrays; they are dropped when pickling (and by clone, which copies only the parameters) and rebuilt on
    first use. What a rebuild needs that the public fitted attributes do not hold is kept by
    ``_graph_state()`` (an optimizer's moments, say) and handed back to ``_restore_graph_state``."""

    def __getstate__(self):
        state = {k: v for k, v in super().__getstate__().items() if not k.startswith("_graph")}
        extra = self._graph_state()
        if extra is not None:
            state["_pickled_graph_state"] = extra
        return state

    def __setstate__(self, state):
        extra = state.pop("_pickled_graph_state", None)
        super().__setstate__(state)
        if extra is not None:
            self._restore_graph_state(extra)

    def _graph_state(self):
        return None

    def _restore_graph_state(self, state):
        pass

    def _drop_graphs(self):
        for key in [k for k in self.__dict__ if k.startswith("_graph")]:
            del self.__dict__[key]
