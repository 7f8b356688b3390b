"""The CUDA backend as Python sees it. Where the machine has the CUDA toolkit, the build must include the
backend (CI builds it); where it has no GPU, xg.cuda says why, and device work is refused with that reason."""
import os
import shutil

import xgrad as xg


def _toolkit_present():
    return shutil.which("nvcc") is not None or os.path.exists("/usr/local/cuda/bin/nvcc")


def test_backend_is_built_where_the_toolkit_is():
    assert isinstance(xg.cuda.is_built(), bool)
    if _toolkit_present():
        assert xg.cuda.is_built(), "nvcc is here, so CMake must have built the CUDA backend"


def test_availability_and_the_reason_agree():
    if xg.cuda.is_available():
        assert xg.cuda.device_count() >= 1 and xg.cuda.why_unavailable() is None
    else:
        reason = xg.cuda.why_unavailable()
        assert isinstance(reason, str) and reason and xg.cuda.device_count() == 0
        if not xg.cuda.is_built():
            assert "built without CUDA" in reason
