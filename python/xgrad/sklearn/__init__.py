"""scikit-learn estimators built on xgrad graphs: use them where scikit-learn's own go (Pipeline, GridSearchCV,
cross_val_score, clone, pickle), then export the fitted model to ONNX.

::

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.model_selection import GridSearchCV
    import xgrad as xg

    pipe = make_pipeline(StandardScaler(), xg.sklearn.LogisticRegression())
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1, 10]}, cv=5).fit(X, y)
    xg.sklearn.to_onnx(search.best_estimator_, "model.onnx")     # the scaler is folded into the graph

- LinearRegression: least squares / ridge, by the Cholesky op or L-BFGS (scikit-learn's LinearRegression and
  Ridge);
- LogisticRegression: binary and multinomial, L2, by L-BFGS (scikit-learn's with solver="lbfgs");
- MLPRegressor, MLPClassifier: xg.nn.MLP trained by xg.optim.Adam, early stopping, partial_fit.

Each passes scikit-learn's check_estimator. The convex models reach scikit-learn's optimum (the same
coefficients to 1e-4 and closer at a tighter tol). Needs scikit-learn and scipy (Debian: python3-sklearn).
"""
from .linear import LinearRegression, LogisticRegression
from .mlp import MLPClassifier, MLPRegressor
from .onnx_export import to_onnx

__all__ = ["LinearRegression", "LogisticRegression", "MLPRegressor", "MLPClassifier", "to_onnx"]
