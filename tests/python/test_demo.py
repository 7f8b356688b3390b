"""The README's demo: gradient descent on the diabetes data reaches the closed-form fit."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_matches_closed_form_least_squares():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "linear_regression.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"training mse ([\d.]+), closed-form mse ([\d.]+)", out.stdout)
    assert m, out.stdout
    trained, exact = float(m.group(1)), float(m.group(2))
    assert abs(trained - exact) <= 1e-3 * exact
    # the loss falls, and both coefficient columns are printed side by side
    losses = [float(v) for v in re.findall(r"mse ([\d.]+)\n", out.stdout)]
    assert losses[0] > 2 * losses[-1]
    assert re.search(r"\s+bmi\s+-?[\d.]+\s+-?[\d.]+", out.stdout)
