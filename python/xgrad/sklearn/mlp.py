"""MLPRegressor and MLPClassifier: xg.nn.MLP trained by xg.optim.Adam, with scikit-learn's parameters, stopping
rules (tol / n_iter_no_change, early stopping on a held-out fraction) and fitted attributes.

One compiled program does forward, backward and the Adam update per minibatch; coefs_ and intercepts_ are
views of the network's params (coefs_[i] is layer i's weight transposed: (n_in, n_out), scikit-learn's
layout), so they always show the current weights, and setting their values changes the model.
"""
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .. import _xgrad as _x
from .. import data as _data
from .. import nn as _nn
from .. import optim as _optim
from ._base import CachedGraphs, validate
from .onnx_export import to_onnx as _to_onnx

__all__ = ["MLPRegressor", "MLPClassifier"]

_F64 = np.float64
_ACTIVATIONS = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _Network:
    """The graph of one MLP: a training step (loss, gradients and the Adam update in one program) and a
    prediction program, sharing the params."""

    def __init__(self, sizes, activation, classifier, seed, lr, betas, eps):
        self.sizes, self.classifier = list(sizes), classifier
        g = self.graph = _x.Graph()
        x = g.input("X", (None, sizes[0]), dtype=_F64)
        self.model = _nn.MLP(g, sizes, activation=_ACTIVATIONS[activation], name="mlp", seed=seed, dtype=_F64,
                             init="xavier_uniform")
        out = self.model(x)
        self.weights = [layer.weight for layer in self.model.layers if isinstance(layer, _nn.Linear)]
        self.biases = [layer.bias for layer in self.model.layers if isinstance(layer, _nn.Linear)]
        if classifier:
            t = g.input("t", (None,), dtype=np.int64)
            data_loss = _x.cross_entropy(out, t)
            prediction = _x.softmax(out, -1)
        else:
            t = g.input("t", (None, sizes[-1]), dtype=_F64)
            data_loss = 0.5 * _x.mean(_x.square(out - t))  # scikit-learn's squared_loss: mean over all entries
            prediction = out
        # alpha / 2 * sum of squared weights (not biases) / batch size, as scikit-learn: fed per batch.
        l2 = g.input("l2", (), dtype=_F64)
        penalty = _x.sum(_x.square(self.weights[0]))
        for w in self.weights[1:]:
            penalty = penalty + _x.sum(_x.square(w))
        loss = data_loss + l2 * penalty
        self.optimizer = _optim.Adam(self.model.params, lr=lr, betas=betas, eps=eps)
        self.step = g.compile(loss, updates=self.optimizer)
        self.predict = g.compile(prediction)

    def params(self):
        return list(self.model.params) + list(self.optimizer.state)

    def values(self):
        """Copies of every param's value (weights, biases, Adam's moments and step count), by name."""
        return {p.name: p.value.copy() for p in self.params()}

    def load(self, values):
        for p in self.params():
            p.value[...] = values[p.name]


class _BaseMLP(CachedGraphs, BaseEstimator):
    _classifier = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=0.0001, batch_size="auto",
                 learning_rate_init=0.001, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 warm_start=False, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.warm_start = warm_start
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # --- checks -------------------------------------------------------------------------------------------

    def _check_params(self):
        name = type(self).__name__
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if np.isscalar(hidden) else list(hidden)
        if not all(isinstance(h, (int, np.integer)) and h > 0 for h in hidden):
            raise ValueError(f"{name}: hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"{name}: activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        checks = [("alpha", self.alpha >= 0), ("learning_rate_init", self.learning_rate_init > 0),
                  ("max_iter", self.max_iter >= 1), ("tol", self.tol >= 0), ("n_iter_no_change", self.n_iter_no_change >= 1),
                  ("validation_fraction", 0 < self.validation_fraction < 1), ("beta_1", 0 <= self.beta_1 < 1),
                  ("beta_2", 0 <= self.beta_2 < 1), ("epsilon", self.epsilon > 0)]
        for param, ok in checks:
            if not ok:
                raise ValueError(f"{name}: {param}={getattr(self, param)!r} is out of range")
        if self.batch_size != "auto" and not (isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1):
            raise ValueError(f"{name}: batch_size must be 'auto' or a positive int, got {self.batch_size!r}")
        return [int(h) for h in hidden]

    # --- the network --------------------------------------------------------------------------------------

    def _build(self, n_features, n_outputs, rng):
        hidden = self._check_params()
        self._graph_net = _Network([n_features] + hidden + [n_outputs], self.activation, self._classifier,
                                   seed=int(rng.randint(2 ** 31 - 1)), lr=self.learning_rate_init,
                                   betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        self._expose()

    def _expose(self):
        net = self._graph_net
        self.coefs_ = [w.value.T for w in net.weights]  # views: (n_in, n_out)
        self.intercepts_ = [b.value for b in net.biases]
        self.n_layers_ = len(net.sizes)
        self.n_outputs_ = net.sizes[-1]
        self.out_activation_ = "softmax" if self._classifier else "identity"

    def _graph_state(self):
        net = self.__dict__.get("_graph_net")
        return None if net is None else {"sizes": net.sizes, "values": net.values()}

    def _restore_graph_state(self, state):  # unpickled: rebuild the network, then load every value back
        self._graph_net = _Network(state["sizes"], self.activation, self._classifier, seed=0,
                                   lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        self._graph_net.load(state["values"])
        self._expose()

    # --- training -----------------------------------------------------------------------------------------

    def _batch_size(self, n):
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    def _epoch(self, X, T, rng):
        """One pass over (X, T) in minibatches; returns the mean training loss of the pass."""
        net, n = self._graph_net, len(X)
        total = 0.0
        for xb, tb in _data.batches(X, T, batch_size=self._batch_size(n), shuffle=self.shuffle,
                                    seed=int(rng.randint(2 ** 31 - 1))):
            m = len(xb)
            total += float(net.step(X=xb, t=tb, l2=np.float64(0.5 * self.alpha / m))) * m
        self.t_ += n
        return total / n

    def _fit(self, X, T, rng, incremental):
        if incremental:
            epochs, early = 1, False
        else:
            epochs, early = int(self.max_iter), bool(self.early_stopping)
        if early:
            stratify = T if self._classifier else None
            if stratify is not None:  # as scikit-learn, but a split too small to hold every class is not stratified
                counts = np.bincount(T)
                n_val = int(np.ceil(self.validation_fraction * len(T)))
                if counts[counts > 0].min() < 2 or min(n_val, len(T) - n_val) < np.count_nonzero(counts):
                    stratify = None
            seed = int(rng.randint(2 ** 31 - 1))
            X, X_val, T, T_val = train_test_split(X, T, test_size=self.validation_fraction, random_state=seed,
                                                  stratify=stratify)
            y_val = self.classes_[T_val] if self._classifier else T_val
        if not hasattr(self, "loss_curve_"):
            self.loss_curve_, self.t_, self._no_improvement = [], 0, 0
            self.best_loss_ = np.inf
            if early:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        best_values = None
        for _ in range(epochs):
            self.loss_curve_.append(self._epoch(X, T, rng))
            self.n_iter_ = getattr(self, "n_iter_", 0) + 1
            self.loss_ = self.loss_curve_[-1]
            if incremental:
                self.best_loss_ = min(self.best_loss_, self.loss_) if self.best_loss_ is not None else None
                continue
            if early:
                score = self._score_validation(X_val, y_val)
                self.validation_scores_.append(score)
                improved = score > self.best_validation_score_ + self.tol
                if score > self.best_validation_score_:
                    self.best_validation_score_ = score
                    best_values = self._graph_net.values()
            else:
                improved = self.loss_ < self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, self.loss_)
            self._no_improvement = 0 if improved else self._no_improvement + 1
            if self._no_improvement >= self.n_iter_no_change:
                break
        else:
            if not incremental:
                warnings.warn(f"{type(self).__name__}: stochastic optimizer: maximum iterations ({self.max_iter}) "
                              "reached and the optimization hasn't converged yet", ConvergenceWarning,
                              stacklevel=4)  # the caller of fit
        if best_values is not None:
            self._graph_net.load(best_values)
        return self

    def _start(self, X, T, n_outputs, incremental):
        """Builds a fresh network unless this is warm_start or a partial_fit of a fitted model."""
        fresh = not ((self.warm_start or incremental) and hasattr(self, "coefs_"))
        if fresh or not hasattr(self, "_rng"):  # later partial_fit calls draw on: each pass its own shuffle
            self._rng = check_random_state(self.random_state)
        rng = self._rng
        if fresh:
            for attr in ("loss_curve_", "n_iter_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(attr, None)
            self._drop_graphs()
            self._build(X.shape[1], n_outputs, rng)
        elif self.coefs_[0].shape[0] != X.shape[1] or self._graph_net.sizes[-1] != n_outputs:
            raise ValueError(f"{type(self).__name__}: the model has {self.coefs_[0].shape[0]} inputs and "
                             f"{self._graph_net.sizes[-1]} outputs, the data {X.shape[1]} and {n_outputs}")
        return self._fit(X, T, rng, incremental)

    def _forward(self, X):
        check_is_fitted(self, "coefs_")
        X = validate(self, X, reset=False)
        return self._graph_net.predict(X=X)

    def to_onnx(self, path, dtype=np.float32):
        """Writes the fitted network as an ONNX file (input "X"; outputs as described in xg.sklearn.to_onnx)."""
        _to_onnx(self, path, dtype=dtype)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multi-layer perceptron for regression (squared loss, identity output), trained with Adam; the
    parameters and fitted attributes of scikit-learn's MLPRegressor with solver="adam". y may be 2-D."""

    def _more_tags(self):
        return {"multioutput": True}

    def fit(self, X, y):
        X, y = validate(self, X, y, multi_output=True, y_numeric=True)
        y = np.asarray(y, _F64)
        self._y_ndim = y.ndim
        return self._start(X, y.reshape(len(y), -1), y.reshape(len(y), -1).shape[1], incremental=False)

    def partial_fit(self, X, y):
        """One pass of Adam over (X, y); the first call builds the network."""
        first = not hasattr(self, "coefs_")
        X, y = validate(self, X, y, multi_output=True, y_numeric=True, reset=first)
        y = np.asarray(y, _F64)
        if first:
            self._y_ndim = y.ndim
        return self._start(X, y.reshape(len(y), -1), y.reshape(len(y), -1).shape[1], incremental=True)

    def _score_validation(self, X, y):
        return self.score(X, y)

    def predict(self, X):
        out = self._forward(X)
        return out[:, 0] if self._y_ndim == 1 else out


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multi-layer perceptron classifier (softmax output, cross-entropy loss), trained with Adam; the
    parameters and fitted attributes of scikit-learn's MLPClassifier with solver="adam". The output layer has
    one unit per class, two classes included (scikit-learn uses one logistic unit there)."""

    _classifier = True

    def _labels(self, y, classes=None):
        """Class indices of y; classes_ is set from ``classes`` when given, else kept when there is one."""
        check_classification_targets(y)
        if classes is not None:
            self.classes_ = np.unique(classes)
        elif not hasattr(self, "classes_"):
            self.classes_ = np.unique(y)
        unknown = np.setdiff1d(y, self.classes_)
        if len(unknown):
            raise ValueError(f"MLPClassifier: y holds labels that are not in classes_: {unknown[:5].tolist()}")
        if len(self.classes_) < 2:
            raise ValueError(f"MLPClassifier needs samples of at least 2 classes in the data, but the data "
                             f"contains only one class: {self.classes_[0]!r}")
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def fit(self, X, y):
        X, y = validate(self, X, y)
        if not (self.warm_start and hasattr(self, "coefs_")):
            self.__dict__.pop("classes_", None)  # a fresh fit learns the classes again
        labels = self._labels(y)
        return self._start(X, labels, len(self.classes_), incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One pass of Adam over (X, y). The first call needs ``classes``, every label the model will see."""
        first = not hasattr(self, "coefs_")
        if first and classes is None:
            raise ValueError("MLPClassifier.partial_fit: pass classes=... (all labels) on the first call")
        X, y = validate(self, X, y, reset=first)
        labels = self._labels(y, classes if first else None)
        return self._start(X, labels, len(self.classes_), incremental=True)

    def _score_validation(self, X, y):
        return self.score(X, y)

    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in the order of classes_."""
        return self._forward(X)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        index = self.predict_proba(X).argmax(axis=1)
        return self.classes_[index]
