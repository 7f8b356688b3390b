"""LinearRegression and LogisticRegression: the convex models, solved to the same optimum as scikit-learn's.

The solve itself is an xgrad program: normal equations through the Cholesky op, or the loss and its gradient
(graph nodes from xg.grad) evaluated for scipy's L-BFGS-B, the driver scikit-learn's lbfgs solver uses.
"""
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .. import _xgrad as _x
from ._base import CachedGraphs, minimize_lbfgs, validate
from .onnx_export import to_onnx as _to_onnx

__all__ = ["LinearRegression", "LogisticRegression"]

_F64 = np.float64


class _FlatParams:
    """Params of one graph seen as one flat float64 vector: what L-BFGS optimizes."""

    def __init__(self, params):
        self.params = list(params)
        self.sizes = [int(np.prod(p.shape)) for p in self.params]

    def set(self, theta):
        offset = 0
        for p, size in zip(self.params, self.sizes):
            p.value[...] = theta[offset:offset + size].reshape(p.shape)
            offset += size

    @staticmethod
    def flat(arrays):
        return np.concatenate([np.asarray(a, _F64).ravel() for a in arrays])


def _centered(x, y, fit_intercept):
    """(x - mean, y - mean, mean of x, mean of y) over the batch axis; no centering without an intercept."""
    if not fit_intercept:
        return x, y, None, None
    xm, ym = _x.mean(x, 0, True), _x.mean(y, 0, True)
    return x - xm, y - ym, xm, ym


def _intercept(xm, ym, w):
    """ym - xm @ w: the intercept that goes with weights fitted on centered data."""
    return _x.reshape(ym - xm @ w, (-1,))


class _LinearPredictor(CachedGraphs):
    """X @ coef_.T + intercept_ as a compiled program whose weights are fed each call (so a changed coef_ is
    always what runs)."""

    def _compile_predictor(self):
        """Built at the end of fit (and after unpickling): predicting must not change the estimator."""
        g = _x.Graph()
        d, k = self.n_features_in_, np.atleast_2d(self.coef_).shape[0]
        x = g.input("X", (None, d), dtype=_F64)
        w, b = g.input("W", (d, k), dtype=_F64), g.input("b", (k,), dtype=_F64)
        self._graph_predictor = g.compile(self._head(x @ w + b))

    def _restore_graph_state(self, state):
        self._compile_predictor()

    def _graph_state(self):
        return {} if hasattr(self, "coef_") else None

    def _head(self, z):
        return [z]

    def _run_linear(self, X):
        check_is_fitted(self)
        X = validate(self, X, reset=False)
        w = np.ascontiguousarray(np.atleast_2d(self.coef_).T, _F64)
        b = np.broadcast_to(np.asarray(self.intercept_, _F64), (w.shape[1],)).copy()
        out = self._graph_predictor(X=X, W=w, b=b)
        return out if isinstance(out, list) else [out]

    def to_onnx(self, path, dtype=np.float32):
        """Writes the fitted model as an ONNX file (input "X"; outputs as described in xg.sklearn.to_onnx)."""
        _to_onnx(self, path, dtype=dtype)


class LinearRegression(_LinearPredictor, RegressorMixin, BaseEstimator):
    """Least squares with optional L2 (ridge) penalty: minimizes ||y - X w - b||^2 + alpha ||w||^2.

    alpha=0 gives scikit-learn's LinearRegression, alpha > 0 its Ridge (the intercept is not penalized).
    solver: "cholesky" solves the normal equations (X_c^T X_c + alpha I) w = X_c^T y_c of the centered data
    with the Cholesky op; "lbfgs" minimizes the loss with L-BFGS from w = 0 (on a rank-deficient X that is
    the minimum-norm solution, as numpy's lstsq gives); "auto" takes Cholesky and falls back to L-BFGS when
    X_c^T X_c + alpha I is singular or too ill-conditioned to factor reliably. y may be 2-D (one model per
    column). Attributes: coef_ (n_features,) or (n_targets, n_features), intercept_, n_iter_, solver_.
    """

    def __init__(self, *, fit_intercept=True, alpha=0.0, solver="auto", max_iter=15000, tol=1e-10):
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol

    def _more_tags(self):
        return {"multioutput": True}

    def fit(self, X, y):
        if self.solver not in ("auto", "cholesky", "lbfgs"):
            raise ValueError(f"LinearRegression: solver must be 'auto', 'cholesky' or 'lbfgs', got {self.solver!r}")
        if not self.alpha >= 0:
            raise ValueError(f"LinearRegression: alpha must be >= 0, got {self.alpha!r}")
        X, y = validate(self, X, y, multi_output=True, y_numeric=True)
        self._drop_graphs()
        y = np.asarray(y, _F64)
        Y = y.reshape(len(y), -1)
        solved = None
        if self.solver in ("auto", "cholesky"):
            solved = self._solve_cholesky(X, Y, strict=self.solver == "cholesky")
        if solved is None:
            solved = self._solve_lbfgs(X, Y)
        w, b, self.n_iter_, self.solver_ = solved
        self.coef_ = w.T.copy() if y.ndim == 2 else w[:, 0].copy()
        # As scikit-learn: a float for one target or without an intercept, else one per target.
        self.intercept_ = float(b[0]) if self.fit_intercept and y.ndim == 1 else b if self.fit_intercept else 0.0
        self._compile_predictor()
        return self

    def _solve_cholesky(self, X, Y, strict):
        g = _x.Graph()
        x, y = g.input("X", (None, X.shape[1]), dtype=_F64), g.input("y", (None, Y.shape[1]), dtype=_F64)
        xc, yc, xm, ym = _centered(x, y, self.fit_intercept)
        gram = xc.T @ xc
        if self.alpha:
            gram = gram + g.const(self.alpha * np.eye(X.shape[1]))
        chol = _x.linalg.cholesky(gram)
        w = _x.linalg.cholesky_solve(chol, xc.T @ yc)
        outputs = [w, chol] + ([_intercept(xm, ym, w)] if self.fit_intercept else [])
        try:
            w_value, l_value, *b_value = g.compile(outputs)(X=X, y=Y)
        except ValueError:  # not positive definite: a singular system
            if strict:
                raise
            return None
        diag = np.abs(np.diag(l_value))
        ill_conditioned = diag.min() <= np.sqrt(X.shape[1] * np.finfo(_F64).eps) * diag.max()
        if ill_conditioned and not strict:
            return None
        return w_value, (b_value[0] if b_value else None), 1, "cholesky"

    def _solve_lbfgs(self, X, Y):
        n, d = X.shape
        g = _x.Graph()
        x, y = g.input("X", (None, d), dtype=_F64), g.input("y", (None, Y.shape[1]), dtype=_F64)
        l2 = g.input("l2", (), dtype=_F64)
        w = g.param("coef", np.zeros((d, Y.shape[1])))
        xc, yc, xm, ym = _centered(x, y, self.fit_intercept)
        # The ridge objective divided by 2n: the scale scikit-learn's lbfgs solvers use, so tol means the same.
        loss = 0.5 * _x.mean(_x.sum(_x.square(xc @ w - yc), 1)) + 0.5 * l2 * _x.sum(_x.square(w))
        (grad,) = _x.grad(loss, [w])
        outputs = [loss, grad] + ([_intercept(xm, ym, w)] if self.fit_intercept else [])
        program, flat = g.compile(outputs), _FlatParams([w])
        feeds = {"X": X, "y": Y, "l2": np.float64(self.alpha / n)}

        def loss_and_grad(theta):
            flat.set(theta)
            out = program(feeds)
            return float(out[0]), out[1].ravel()

        theta, iterations = minimize_lbfgs(loss_and_grad, np.zeros(d * Y.shape[1]), max_iter=self.max_iter,
                                           tol=self.tol, what="LinearRegression")
        flat.set(theta)
        out = program(feeds)
        return w.value.copy(), (out[2] if self.fit_intercept else None), iterations, "lbfgs"

    def predict(self, X):
        (z,) = self._run_linear(X)
        return z[:, 0] if np.ndim(self.coef_) == 1 else z


class LogisticRegression(_LinearPredictor, ClassifierMixin, BaseEstimator):
    """Logistic regression with an L2 penalty, as scikit-learn's with solver="lbfgs": binary for two classes
    (coef_ of shape (1, n_features)), multinomial (softmax) for more (coef_ (n_classes, n_features)).

    Minimizes C * sum(log loss) + ||w||^2 / 2 (penalty="l2"; None: no penalty); the intercept is not
    penalized. Solved by L-BFGS on the mean loss, with scikit-learn's stopping rule (gradient max-norm <= tol).
    Labels may be any sortable values (ints, strings); classes_ holds them in order.
    """

    def __init__(self, *, penalty="l2", C=1.0, fit_intercept=True, max_iter=100, tol=1e-4):
        self.penalty = penalty
        self.C = C
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        if self.penalty not in ("l2", None, "none"):
            raise ValueError(f"LogisticRegression: penalty must be 'l2' or None, got {self.penalty!r}")
        if not self.C > 0:
            raise ValueError(f"LogisticRegression: C must be > 0, got {self.C!r}")
        X, y = validate(self, X, y)
        check_classification_targets(y)
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"LogisticRegression needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {self.classes_[0]!r}")
        self._drop_graphs()
        n, d = X.shape
        binary = len(self.classes_) == 2
        k = 1 if binary else len(self.classes_)
        g = _x.Graph()
        x, l2 = g.input("X", (None, d), dtype=_F64), g.input("l2", (), dtype=_F64)
        w, b = g.param("coef", np.zeros((d, k))), g.param("intercept", np.zeros(k))
        z = x @ w + b if self.fit_intercept else x @ w
        if binary:
            t = g.input("t", (None, 1), dtype=_F64)
            data_loss = _x.binary_cross_entropy_with_logits(z, t)
            feeds = {"t": labels.reshape(-1, 1).astype(_F64)}
        else:
            t = g.input("t", (None,), dtype=np.int64)
            data_loss = _x.cross_entropy(z, t)
            feeds = {"t": labels.astype(np.int64)}
        loss = data_loss + 0.5 * l2 * _x.sum(_x.square(w))
        params = [w, b] if self.fit_intercept else [w]
        program, flat = g.compile([loss] + list(_x.grad(loss, params))), _FlatParams(params)
        penalized = self.penalty == "l2"
        feeds.update(X=X, l2=np.float64(1.0 / (self.C * n) if penalized else 0.0))

        def loss_and_grad(theta):
            flat.set(theta)
            out = program(feeds)
            return float(out[0]), _FlatParams.flat(out[1:])

        theta, iterations = minimize_lbfgs(loss_and_grad, np.zeros(sum(flat.sizes)), max_iter=self.max_iter,
                                           tol=self.tol, what="LogisticRegression")
        flat.set(theta)
        self.coef_ = w.value.T.copy()
        self.intercept_ = b.value.copy() if self.fit_intercept else np.zeros(k)
        self.n_iter_ = np.array([iterations])
        self._compile_predictor()
        return self

    def _head(self, z):
        if z.shape[-1] == 1:
            return [z, _x.sigmoid(z)]
        return [z, _x.softmax(z, -1)]

    def decision_function(self, X):
        """Scores: (n_samples,) for two classes (positive: classes_[1]), (n_samples, n_classes) otherwise."""
        z, _ = self._run_linear(X)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in the order of classes_."""
        _, p = self._run_linear(X)
        return np.hstack([1.0 - p, p]) if p.shape[1] == 1 else p

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        z, _ = self._run_linear(X)
        index = (z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else z.argmax(axis=1)
        return self.classes_[index]
