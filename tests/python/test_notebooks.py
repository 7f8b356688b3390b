"""The notebooks in notebooks/ run top to bottom in a fresh Jupyter kernel, in order, as a user would run them.

Each notebook ends with a cell of assertions on its headline numbers, so a wrong result fails here as surely as
an exception does. Each runs in the kernel its own metadata names, as Jupyter would open it: "xgrad" (`make venv`
installs it), the project venv's interpreter; a notebook naming another kernel fails here. Notebooks run
in notebooks/ (04 reads the checkpoints 02 and 03 write there); the executed copies, and every plot in them as a
PNG (graphs drawn by Graphviz as SVG), are written to build/notebooks/.
"""
import base64
import os
import sys
import time

import nbclient  # Debian python3-nbclient, python3-nbformat and python3-ipykernel: `make deps` installs them
import nbformat
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NOTEBOOK_DIR = os.path.join(ROOT, "notebooks")
EXECUTED_DIR = os.path.join(ROOT, "build", "notebooks")
NOTEBOOKS = ["01_linear_regression", "02_logistic_regression", "03_mlp_digits", "04_export_and_serve",
             "05_sklearn_pipeline"]
KERNEL = "xgrad"
CELL_TIMEOUT_S = 300  # a hang guard, not a speed check: each notebook takes seconds


def test_every_notebook_is_listed():
    on_disk = sorted(f[:-len(".ipynb")] for f in os.listdir(NOTEBOOK_DIR) if f.endswith(".ipynb"))
    assert on_disk == NOTEBOOKS


@pytest.fixture(scope="module", autouse=True)
def no_stale_models():
    """04 loads what 02 and 03 save: files from an earlier run must not stand in for this run's."""
    for f in os.listdir(NOTEBOOK_DIR):
        if f.endswith((".npz", ".onnx")):
            os.remove(os.path.join(NOTEBOOK_DIR, f))


@pytest.fixture(scope="module")
def xgrad_kernel():
    """The kernel every notebook names: it must exist and run the interpreter running the tests, so that the
    notebooks import the same xgrad (compared as paths, not resolved: the venv's python is a symlink)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        pytest.fail(f"no Jupyter kernel '{KERNEL}' for {sys.executable}: `make venv` installs it", pytrace=False)
    if os.path.abspath(spec.argv[0]) != os.path.abspath(sys.executable):
        pytest.fail(f"kernel '{KERNEL}' runs {spec.argv[0]}, the tests run {sys.executable}: run the tests with "
                    f"the venv's interpreter (`make test`)", pytrace=False)
    return spec


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_names_the_xgrad_kernel(name):
    """Opened in Jupyter, a notebook starts the kernel its metadata names: Debian's "python3" has no xgrad."""
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name + ".ipynb"), as_version=4)
    spec = nb.metadata.get("kernelspec", {})
    assert spec.get("name") == KERNEL, f"{name}.ipynb names kernel {spec.get('name')!r}, not {KERNEL!r}"
    assert spec.get("display_name") == "Python 3 (xgrad)" and spec.get("language") == "python"


def _save_images(nb, name):
    """Every PNG (and SVG) output, as build/notebooks/<notebook>_cell<NN>_<k>.png; returns the paths."""
    paths = []
    for index, cell in enumerate(nb.cells):
        k = 0
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            for mime, ext in (("image/png", "png"), ("image/svg+xml", "svg")):
                if mime in data:
                    k += 1
                    path = os.path.join(EXECUTED_DIR, f"{name}_cell{index:02d}_{k}.{ext}")
                    payload = data[mime]
                    with open(path, "wb") as f:
                        f.write(base64.b64decode(payload) if ext == "png" else "".join(payload).encode())
                    paths.append(path)
    return paths


def _text_of(cell):
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_checks_pass(name, xgrad_kernel):
    nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name + ".ipynb"), as_version=4)
    os.makedirs(EXECUTED_DIR, exist_ok=True)
    for stale in os.listdir(EXECUTED_DIR):
        if stale.startswith(name + "_cell"):
            os.remove(os.path.join(EXECUTED_DIR, stale))
    # No kernel_name: nbclient starts the kernel the notebook's metadata names, as Jupyter does.
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": NOTEBOOK_DIR}})
    start = time.monotonic()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{name}.ipynb: a cell failed:\n{e}", pytrace=False)
    finally:
        nbformat.write(nb, os.path.join(EXECUTED_DIR, name + ".ipynb"))  # executed copy, errors included
    seconds = time.monotonic() - start

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "all checks passed" in _text_of(code[-1]), f"{name}: the final check cell did not finish"
    images = _save_images(nb, name)
    assert any(p.endswith(".png") for p in images), f"{name} drew no plot"
    if name == "04_export_and_serve":
        assert sum(p.endswith(".svg") for p in images) == 2, "the two model graphs, drawn as inline SVG"
    print(f"{name}: {seconds:.1f} s, {len(images)} images in {EXECUTED_DIR}")
