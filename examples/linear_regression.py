"""Linear regression on scikit-learn's diabetes data, trained by gradient descent with xgrad.

Prints the loss as it falls, then the fitted coefficients beside the closed-form
least-squares solution, and fails (exit 1) if the training MSE is not within
0.1% of the closed-form MSE.
"""
import sys

import numpy as np
from sklearn.datasets import load_diabetes

import xgrad as xg


def main():
    data = load_diabetes()
    X = data.data.astype(np.float64)
    y = data.target.astype(np.float64).reshape(-1, 1)
    # Standardize features and target so one learning rate suits every coefficient.
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    n, p = X.shape

    g = xg.Graph()
    x = g.input("x", (None, p))
    t = g.input("t", (None, 1))
    w = g.param("w", np.zeros((p, 1), np.float32))
    b = g.param("b", np.zeros((1,), np.float32))
    pred = x @ w + b
    loss = xg.mean(xg.square(pred - t))
    gw, gb = xg.grad(loss, [w, b])
    step = g.compile([loss, gw, gb])

    lr, steps = 0.2, 3000
    print(f"diabetes: {n} samples, {p} features; gradient descent, lr={lr}")
    for i in range(steps + 1):
        mse, dw, db = step(x=X, t=y)
        if i % 300 == 0:
            print(f"step {i:5d}  mse {float(mse):.6f}")
        w.value -= lr * dw  # in place: w.value is a view of the parameter
        b.value -= lr * db
    mse = float(step(x=X, t=y)[0])

    # Closed form: least squares on [X, 1], in float64.
    A = np.hstack([X.astype(np.float64), np.ones((n, 1))])
    coef, *_ = np.linalg.lstsq(A, y.astype(np.float64), rcond=None)
    exact_mse = float(np.mean((A @ coef - y) ** 2))

    print(f"\n{'feature':>8} {'xgrad':>10} {'closed form':>12}")
    for name, wi, ci in zip(data.feature_names, w.value.ravel(), coef[:p, 0]):
        print(f"{name:>8} {wi:10.5f} {ci:12.5f}")
    print(f"{'bias':>8} {b.value[0]:10.5f} {coef[p, 0]:12.5f}")
    gap = abs(mse - exact_mse) / exact_mse
    print(f"\ntraining mse {mse:.6f}, closed-form mse {exact_mse:.6f}, relative gap {gap:.2e}")
    if not gap <= 1e-3:  # also catches NaN
        print("FAIL: the gradient-descent fit is not within 0.1% of the closed-form fit")
        return 1
    print("OK: within 0.1% of the closed-form least-squares fit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
