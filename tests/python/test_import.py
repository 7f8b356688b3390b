"""import xgrad costs a CPU user nothing for the CUDA backend: no CUDA library is mapped after the import or after
compiling and running a CPU program; the first device request opens the plugin (and says why when it cannot)."""
import subprocess
import sys
import textwrap

import xgrad as xg

PROBE = textwrap.dedent("""
    import re, sys
    import numpy as np
    def cuda_libraries():
        maps = open("/proc/self/maps").read()
        return sorted(set(re.findall(r"/\\S*(?:libcuda|libcudart|libcublas|libxgrad_cuda)\\S*", maps)))
    import xgrad as xg
    after_import = cuda_libraries()
    g = xg.Graph()
    x = g.input("x", (None, 4))
    w = g.param("w", np.ones((4, 2), np.float32))
    loss = xg.mean(xg.square(x @ w))
    step = g.compile(loss, updates={w: w - 0.1 * xg.grad(loss, [w])[0]})
    step(x=np.ones((3, 4), np.float32))
    xg.onnx.export_bytes(loss)
    after_cpu_program = cuda_libraries()
    built = xg.cuda.is_built()
    after_is_built = cuda_libraries()
    available = xg.cuda.is_available()
    reason = xg.cuda.why_unavailable()
    print(repr((after_import, after_cpu_program, after_is_built, built, available, reason, cuda_libraries())))
""")


def test_importing_and_running_on_the_cpu_loads_no_cuda_library():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    after_import, after_cpu, after_is_built, built, available, reason, after_request = eval(out.strip().splitlines()[-1])
    assert after_import == [] and after_cpu == [] and after_is_built == []
    if xg.cuda.is_emulated():
        return  # the emulator is compiled into the module: there is no plugin to open
    if built:
        # The device request opened the plugin beside the module; it either works or says why it does not.
        assert any(p.endswith("libxgrad_cuda.so") for p in after_request), after_request
        assert available or (isinstance(reason, str) and reason)
    else:
        assert after_request == [] and not available and "without CUDA" in reason
