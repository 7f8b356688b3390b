"""ONNX export of fitted xgrad estimators, and of Pipelines that end in one after StandardScaler steps.

The fitted arrays become constants of a fresh xgrad graph, which xg.onnx.export writes as usual. The model's
input is "X" (batch, n_features) of the given dtype; its outputs:

- regressors: "y", (batch,) or (batch, n_targets) as predict returns;
- classifiers: "probabilities" (batch, n_classes) as predict_proba, and "label": predict's labels when the
  classes are numbers, otherwise "label_index", the position of the label in classes_.
"""
import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .. import _xgrad as _x
from .. import onnx as _onnx

__all__ = ["to_onnx"]


def _scaled(g, x, scaler, dtype):
    check_is_fitted(scaler)
    if scaler.mean_ is not None:
        x = x - g.const(np.asarray(scaler.mean_, dtype))
    if scaler.scale_ is not None:
        x = x / g.const(np.asarray(scaler.scale_, dtype))
    return x


def _dense(g, x, weight, bias, dtype):
    """x @ weight + bias with weight (n_in, n_out)."""
    return x @ g.const(np.ascontiguousarray(weight, dtype)) + g.const(np.asarray(bias, dtype).reshape(-1))


def _linear_scores(g, x, est, dtype):
    coef = np.atleast_2d(est.coef_)
    return _dense(g, x, coef.T, np.broadcast_to(np.asarray(est.intercept_), (coef.shape[0],)), dtype)


def _mlp_scores(g, x, est, dtype):
    activation = {"identity": None, "logistic": _x.sigmoid, "tanh": _x.tanh, "relu": _x.relu}[est.activation]
    last = len(est.coefs_) - 1
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        x = _dense(g, x, w, b, dtype)
        if i < last and activation is not None:
            x = activation(x)
    return x


def _outputs(g, x, est, dtype):
    from .linear import LinearRegression, LogisticRegression
    from .mlp import MLPClassifier, MLPRegressor

    if isinstance(est, (LinearRegression, MLPRegressor)):
        y = _linear_scores(g, x, est, dtype) if isinstance(est, LinearRegression) else _mlp_scores(g, x, est, dtype)
        one_target = np.ndim(est.coef_) == 1 if isinstance(est, LinearRegression) else est._y_ndim == 1
        return [_x.reshape(y, (-1,)) if one_target else y], ["y"]
    if isinstance(est, LogisticRegression):
        z = _linear_scores(g, x, est, dtype)
        probabilities = _x.concat([1.0 - _x.sigmoid(z), _x.sigmoid(z)], 1) if z.shape[-1] == 1 else _x.softmax(z, -1)
    elif isinstance(est, MLPClassifier):
        probabilities = _x.softmax(_mlp_scores(g, x, est, dtype), -1)
    else:
        raise TypeError(f"to_onnx: {type(est).__name__} is not an xgrad estimator (xg.sklearn.LinearRegression, "
                        "LogisticRegression, MLPRegressor, MLPClassifier)")
    index = _x.argmax(probabilities, 1)
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "biuf":
        # take gathers floats: integer labels (exact below 2**53) go through float64 and back.
        label = _x.take(g.const(classes.astype(np.float64)), index)
        return [probabilities, label if classes.dtype.kind == "f" else _x.astype(label, np.int64)], ["probabilities", "label"]
    return [probabilities, index], ["probabilities", "label_index"]


def to_onnx(model, path, dtype=np.float32):
    """Writes a fitted xgrad estimator, or a fitted Pipeline of StandardScaler steps ending in one, to an ONNX
    file at path (see the module docstring for its input and outputs). dtype: float32 (what servers feed) or
    float64. Raises TypeError naming a step it cannot export."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"to_onnx: dtype must be float32 or float64, got {dtype}")
    steps = [model]
    if isinstance(model, Pipeline):
        steps = [step for _, step in model.steps if step is not None and step != "passthrough"]
    *preprocessing, final = steps
    check_is_fitted(final)
    g = _x.Graph()
    x_in = g.input("X", (None, final.n_features_in_), dtype=dtype)
    x = x_in
    for step in preprocessing:
        if not isinstance(step, StandardScaler):
            raise TypeError(f"to_onnx: cannot export the pipeline step {type(step).__name__}; supported before the "
                            "estimator: StandardScaler")
        x = _scaled(g, x, step, dtype)
    outputs, names = _outputs(g, x, final, dtype)
    _onnx.export(outputs, path, inputs=[x_in], output_names=names)

