"""Shared fixtures. Keep this importable without xgrad (it may be unbuilt)."""
import pytest


@pytest.fixture(scope="session")
def ort():
    """One ONNX Runtime (CPU, via Node.js) for the whole session: ort.run(model_path, {name: array}) -> [arrays].
    Fails (not skips) when it is not installed: `make ort` installs it, and `make test` runs that first."""
    from ort_node import NOT_INSTALLED, OrtRunner, ort_available  # tools/onnxruntime: pytest's pythonpath

    if not ort_available():
        pytest.fail(NOT_INSTALLED, pytrace=False)
    runner = OrtRunner()
    try:
        yield runner
    finally:
        runner.close()


def pytest_terminal_summary(terminalreporter):
    """The ONNX backend suite's totals (tests/python/test_onnx_backend.py), shown even under -q."""
    import sys
    module = sys.modules.get("test_onnx_backend")
    line = getattr(module, "SUMMARY", None)
    for text in (line or "").splitlines():
        terminalreporter.write_line(text)
