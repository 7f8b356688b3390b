"""xg.sklearn: scikit-learn's own estimator checks, the same optimum as scikit-learn's estimators on its bundled
data sets, the meta-estimators (Pipeline, GridSearchCV, cross_val_score), pickling, and ONNX export served by
ONNX Runtime."""
import pickle
import subprocess
import sys
import unittest
import warnings

import numpy as np
import pytest
from sklearn import datasets, linear_model
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import xgrad as xg

# Each estimator with its defaults (what check_estimator is for), and the ridge fit by the other solver. Early
# stopping is tested below, not here: on the checks' 30-sample sets its 3-sample validation split stops training
# before every class is learned, as it does for scikit-learn's own MLPClassifier(early_stopping=True).
ESTIMATORS = [xg.sklearn.LinearRegression(), xg.sklearn.LinearRegression(alpha=1.0, solver="lbfgs"),
              xg.sklearn.LogisticRegression(), xg.sklearn.MLPRegressor(), xg.sklearn.MLPClassifier()]


@parametrize_with_checks(ESTIMATORS)
def test_passes_sklearns_estimator_checks(estimator, check):
    """Every check of sklearn.utils.estimator_checks.check_estimator, each as its own test. A check that skips
    itself (SkipTest: a missing optional dependency such as pandas) fails here instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the checks cut max_iter; they expect the warning
        try:
            check(estimator)
        except unittest.SkipTest as e:
            pytest.fail(f"the check skipped itself: {e}", pytrace=False)


def test_no_check_is_marked_expected_to_fail():
    """The README says every check passes: no estimator may hide one behind the _xfail_checks tag."""
    for est in ESTIMATORS:
        assert not est._get_tags().get("_xfail_checks"), type(est).__name__


def test_import_xgrad_does_not_import_sklearn():
    code = "import sys, xgrad; assert 'sklearn' not in sys.modules and 'scipy' not in sys.modules; xgrad.sklearn"
    subprocess.run([sys.executable, "-c", code], check=True)


def _close(a, b, tol=1e-4):
    """Equal to tol relative to the largest magnitude (coefficients of the diabetes fit are in the hundreds)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, np.abs(b).max()))


# --- the convex models reach scikit-learn's optimum -------------------------------------------------------


@pytest.mark.parametrize("solver", ["auto", "cholesky", "lbfgs"])
@pytest.mark.parametrize("alpha", [0.0, 1.0, 100.0])
def test_linear_regression_matches_sklearn_on_diabetes(solver, alpha):
    X, y = datasets.load_diabetes(return_X_y=True)
    ours = xg.sklearn.LinearRegression(alpha=alpha, solver=solver).fit(X, y)
    theirs = (linear_model.LinearRegression() if alpha == 0 else linear_model.Ridge(alpha=alpha)).fit(X, y)
    _close(ours.coef_, theirs.coef_)
    _close(ours.intercept_, theirs.intercept_)
    assert isinstance(ours.intercept_, float) and ours.coef_.shape == (10,)
    assert ours.solver_ == ("lbfgs" if solver == "lbfgs" else "cholesky")
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)
    assert abs(ours.score(X, y) - theirs.score(X, y)) < 1e-8


def test_linear_regression_without_intercept_and_with_several_targets():
    X, Y = datasets.load_linnerud(return_X_y=True)  # 3 targets
    for fit_intercept in (True, False):
        ours = xg.sklearn.LinearRegression(fit_intercept=fit_intercept).fit(X, Y)
        theirs = linear_model.LinearRegression(fit_intercept=fit_intercept).fit(X, Y)
        assert ours.coef_.shape == (3, 3) and np.shape(ours.intercept_) == ((3,) if fit_intercept else ())
        _close(ours.coef_, theirs.coef_, 1e-8)
        _close(ours.intercept_, theirs.intercept_, 1e-8)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8)


def test_rank_deficient_least_squares_falls_back_to_the_minimum_norm_solution():
    """A repeated column makes X^T X singular: Cholesky cannot factor it, L-BFGS from zero finds the minimum-norm
    solution, which is what scikit-learn's LinearRegression (lstsq) returns."""
    X, y = datasets.load_diabetes(return_X_y=True)
    X = np.hstack([X, X[:, :3]])
    ours = xg.sklearn.LinearRegression().fit(X, y)
    theirs = linear_model.LinearRegression().fit(X, y)
    assert ours.solver_ == "lbfgs"
    _close(ours.coef_, theirs.coef_)
    with pytest.raises(ValueError, match="positive definite"):
        xg.sklearn.LinearRegression(solver="cholesky").fit(X, y)


@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("data", ["breast_cancer", "iris", "wine"])
def test_logistic_regression_matches_sklearn(data, C):
    """Binary (breast cancer) and multinomial (iris, wine): the same coefficients as scikit-learn at a tight
    tol (its Newton solver, which gets closest to the optimum: its own lbfgs stops ~1e-4 short)."""
    X, y = getattr(datasets, "load_" + data)(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = xg.sklearn.LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
    theirs = linear_model.LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10000).fit(X, y)
    assert ours.coef_.shape == theirs.coef_.shape and ours.intercept_.shape == theirs.intercept_.shape
    _close(ours.coef_, theirs.coef_)
    _close(ours.intercept_, theirs.intercept_)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), atol=1e-4)
    assert (ours.predict(X) == theirs.predict(X)).all()
    # At the default tol both stop early; they still agree on every label and closely on the probabilities.
    default = xg.sklearn.LogisticRegression(C=C, max_iter=1000).fit(X, y)
    np.testing.assert_allclose(default.predict_proba(X), theirs.predict_proba(X), atol=2e-2)


def test_logistic_regression_string_labels_and_no_penalty():
    X, y = datasets.load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = xg.sklearn.LogisticRegression(max_iter=500).fit(X, names)
    assert list(model.classes_) == ["setosa", "versicolor", "virginica"]
    assert model.predict(X).dtype == names.dtype and model.score(X, names) > 0.95
    X2, y2 = X[y > 0], y[y > 0]  # two classes that overlap: the unpenalized optimum exists
    free = xg.sklearn.LogisticRegression(penalty=None, tol=1e-10, max_iter=10000).fit(X2, y2)
    ref = linear_model.LogisticRegression(penalty="none", solver="newton-cg", tol=1e-12, max_iter=10000).fit(X2, y2)
    _close(free.coef_, ref.coef_, 1e-3)


# --- the MLPs --------------------------------------------------------------------------------------------


def _digits():
    X, y = datasets.load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


def test_mlp_classifier_learns_digits_like_sklearns():
    X_train, X_test, y_train, y_test = _digits()
    ours = xg.sklearn.MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=300).fit(X_train, y_train)
    theirs = SklearnMLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=300).fit(X_train, y_train)
    assert ours.score(X_test, y_test) > 0.95
    assert ours.score(X_test, y_test) > theirs.score(X_test, y_test) - 0.02
    assert [c.shape for c in ours.coefs_] == [(64, 64), (64, 10)] and [b.shape for b in ours.intercepts_] == [(64,), (10,)]
    assert ours.n_layers_ == 3 and ours.n_outputs_ == 10 and ours.out_activation_ == "softmax"
    assert len(ours.loss_curve_) == ours.n_iter_ and ours.loss_ == ours.loss_curve_[-1] and ours.t_ == ours.n_iter_ * len(X_train)
    p = ours.predict_proba(X_test)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)
    assert (ours.classes_[p.argmax(1)] == ours.predict(X_test)).all()


def test_mlp_regressor_on_diabetes():
    X, y = datasets.load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(StandardScaler().fit_transform(X), y / 100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = xg.sklearn.MLPRegressor(hidden_layer_sizes=(32,), alpha=1.0, max_iter=500, random_state=0).fit(X_train, y_train)
    # A small, noisy set (a linear fit scores ~0.35 here): as good as scikit-learn's MLPRegressor (0.28).
    assert model.score(X_test, y_test) > 0.2
    assert model.n_iter_ < 500, "tol / n_iter_no_change should stop it before max_iter"
    assert model.predict(X_test).shape == y_test.shape


def test_mlp_early_stopping_keeps_the_best_validation_weights():
    X_train, X_test, y_train, y_test = _digits()
    model = xg.sklearn.MLPClassifier(early_stopping=True, n_iter_no_change=5, random_state=0, max_iter=500)
    model.fit(X_train, y_train)
    assert model.best_loss_ is None and len(model.validation_scores_) == model.n_iter_ < 500
    assert model.best_validation_score_ == max(model.validation_scores_)
    assert model.score(X_test, y_test) > 0.88  # scikit-learn's: 0.907 with the same settings


def test_partial_fit_continues_and_pickling_keeps_the_optimizer_state():
    X_train, _, y_train, _ = _digits()
    model = xg.sklearn.MLPClassifier(hidden_layer_sizes=(32,), random_state=0, shuffle=False)
    with pytest.raises(ValueError, match="classes"):
        model.partial_fit(X_train, y_train)
    losses = [model.partial_fit(X_train, y_train, classes=np.arange(10)).loss_]
    for _ in range(5):
        losses.append(model.partial_fit(X_train, y_train).loss_)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert model.n_iter_ == 6
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict_proba(X_train), model.predict_proba(X_train))
    # Adam's moments and step count travel with it: the next steps are the same on both.
    model.partial_fit(X_train, y_train), copy.partial_fit(X_train, y_train)
    for a, b in zip(model.coefs_, copy.coefs_):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not in classes_"):
        model.partial_fit(X_train[:5], np.array([0, 1, 2, 3, 11]))


def test_coefs_are_views_of_the_network():
    X_train, X_test, y_train, _ = _digits()
    model = xg.sklearn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    model.coefs_[-1][...] = 0.0  # the output layer's weights: every class scores its bias alone
    p = model.predict_proba(X_test)
    np.testing.assert_allclose(p, np.broadcast_to(p[0], p.shape), rtol=1e-12)


def test_warm_start_continues_from_the_fitted_weights():
    X_train, _, y_train, _ = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = xg.sklearn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0, warm_start=True)
        first = model.fit(X_train, y_train).loss_
        second = model.fit(X_train, y_train).loss_
        cold = xg.sklearn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X_train, y_train)
    assert model.n_iter_ == 10 and second < first and cold.n_iter_ == 5


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("est, message", [
    (xg.sklearn.LinearRegression(solver="qr"), "LinearRegression: solver"),
    (xg.sklearn.LinearRegression(alpha=-1), "LinearRegression: alpha"),
    (xg.sklearn.LogisticRegression(C=0), "LogisticRegression: C"),
    (xg.sklearn.LogisticRegression(penalty="l1"), "LogisticRegression: penalty"),
    (xg.sklearn.MLPClassifier(hidden_layer_sizes=(10, 0)), "MLPClassifier: hidden_layer_sizes"),
    (xg.sklearn.MLPRegressor(activation="swish"), "MLPRegressor: activation"),
    (xg.sklearn.MLPRegressor(batch_size=0), "MLPRegressor: batch_size"),
    (xg.sklearn.MLPRegressor(learning_rate_init=0), "MLPRegressor: learning_rate_init"),
])
def test_bad_parameters_raise_value_error_naming_the_estimator(est, message):
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)


def test_predict_before_fit_and_wrong_feature_count():
    X, y = datasets.load_iris(return_X_y=True)
    for est in (xg.sklearn.LogisticRegression(), xg.sklearn.LinearRegression()):
        with pytest.raises(NotFittedError):
            est.predict(X)
        est.fit(X, y)
        with pytest.raises(ValueError, match="features"):
            est.predict(X[:, :3])


# --- meta-estimators -------------------------------------------------------------------------------------


def test_grid_search_over_the_l2_strength_matches_sklearns():
    X, y = datasets.load_diabetes(return_X_y=True)
    grid = {"alpha": [0.01, 0.1, 1.0, 10.0, 100.0]}
    ours = GridSearchCV(make_pipeline(StandardScaler(), xg.sklearn.LinearRegression()),
                        {"linearregression__" + k: v for k, v in grid.items()}, cv=5).fit(X, y)
    theirs = GridSearchCV(make_pipeline(StandardScaler(), linear_model.Ridge()),
                          {"ridge__" + k: v for k, v in grid.items()}, cv=5).fit(X, y)
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], rtol=1e-8)
    assert ours.best_params_["linearregression__alpha"] == theirs.best_params_["ridge__alpha"]
    _close(ours.best_estimator_[-1].coef_, theirs.best_estimator_[-1].coef_)


def test_cross_val_score_matches_sklearns():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    ours = cross_val_score(make_pipeline(StandardScaler(), xg.sklearn.LogisticRegression(tol=1e-8, max_iter=1000)), X, y, cv=5)
    theirs = cross_val_score(make_pipeline(StandardScaler(), linear_model.LogisticRegression(tol=1e-8, max_iter=1000)), X, y, cv=5)
    np.testing.assert_allclose(ours, theirs, atol=0.01)  # the same labels but for a sample at the boundary
    assert ours.mean() > 0.95


def test_clone_gives_an_unfitted_copy_with_the_same_params():
    model = xg.sklearn.MLPClassifier(hidden_layer_sizes=(8,), alpha=0.1).fit(*datasets.load_iris(return_X_y=True))
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coefs_")


# --- ONNX export, served by ONNX Runtime -----------------------------------------------------------------


def _fitted_models():
    X, y = datasets.load_iris(return_X_y=True)
    Xr, yr = datasets.load_diabetes(return_X_y=True)
    Xl, Yl = datasets.load_linnerud(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield "linear", xg.sklearn.LinearRegression(alpha=0.5).fit(Xr, yr), Xr
        yield "linear_multi", xg.sklearn.LinearRegression().fit(Xl, Yl), Xl
        yield "logistic_binary", xg.sklearn.LogisticRegression().fit(X, y > 0), X
        yield "logistic_multi", xg.sklearn.LogisticRegression(max_iter=500).fit(X, y), X
        yield "mlp_regressor", xg.sklearn.MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0).fit(Xr, yr / 100), Xr
        yield "mlp_classifier", xg.sklearn.MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", max_iter=50,
                                                         random_state=0).fit(X, y + 3), X
        yield "pipeline", make_pipeline(StandardScaler(), xg.sklearn.LogisticRegression()).fit(X, y), X
        yield "string_labels", xg.sklearn.LogisticRegression(max_iter=500).fit(X, np.array(list("abc"))[y]), X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_onnx_export_serves_the_same_predictions(ort, tmp_path, dtype):
    for name, model, X in _fitted_models():
        path = str(tmp_path / f"{name}.onnx")
        if hasattr(model, "to_onnx"):
            model.to_onnx(path, dtype=dtype)
        else:  # a Pipeline
            xg.sklearn.to_onnx(model, path, dtype=dtype)
        outputs = ort.run(path, {"X": X.astype(dtype)})
        tol = 1e-4 if dtype == np.float32 else 1e-9
        final = model[-1] if hasattr(model, "steps") else model
        if hasattr(final, "predict_proba"):
            probabilities, label = outputs
            np.testing.assert_allclose(probabilities, model.predict_proba(X), atol=tol, err_msg=name)
            expected = model.predict(X) if final.classes_.dtype.kind in "iuf" else np.searchsorted(final.classes_, model.predict(X))
            assert (label == expected).mean() > 0.99, name  # a probability tie within rounding may flip
        else:
            (y,) = outputs
            np.testing.assert_allclose(y, model.predict(X), rtol=tol, atol=tol * np.abs(model.predict(X)).max(), err_msg=name)


def test_onnx_export_refuses_what_it_cannot_lower(tmp_path):
    from sklearn.decomposition import PCA

    X, y = datasets.load_iris(return_X_y=True)
    pipe = make_pipeline(PCA(2), xg.sklearn.LogisticRegression()).fit(X, y)
    with pytest.raises(TypeError, match="PCA"):
        xg.sklearn.to_onnx(pipe, str(tmp_path / "m.onnx"))
    with pytest.raises(TypeError, match="not an xgrad estimator"):
        xg.sklearn.to_onnx(linear_model.LinearRegression().fit(X, y), str(tmp_path / "m.onnx"))
