"""What a CPU user pays to start: `import xgrad` against `import numpy` (which xgrad imports), and the peak
resident memory of a process that trains the MLP 784-512-256-10 (batch 128, Adam, 20 steps) with xgrad, with
hand-written numpy and with PyTorch. Each number comes from fresh interpreters; the CUDA backend (when built) must
not be loaded by any of this, which the bench checks in the same processes.
"""
import statistics
import subprocess
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train  # noqa: E402

IMPORT = """
import time, re
t = time.perf_counter()
import {module}
dt = time.perf_counter() - t
maps = open("/proc/self/maps").read()
print(dt, int(bool(re.search(r"libcublas|libcudart|libxgrad_cuda", maps))))
"""


def import_seconds(module, runs=7):
    times, cuda = [], 0
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", IMPORT.format(module=module)], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        cuda |= int(out[1])
    return statistics.median(times), bool(cuda)


def main():
    import xgrad as xg
    print(f"xgrad {xg.__version__} (CUDA backend built: {xg.cuda.is_built()})")
    t_np, _ = import_seconds("numpy")
    t_xg, cuda_loaded = import_seconds("xgrad")
    assert not cuda_loaded, "import xgrad mapped a CUDA library"
    print(f"\nimport, median of 7 fresh processes: numpy {t_np * 1e3:.0f} ms, xgrad {t_xg * 1e3:.0f} ms "
          f"(numpy + {(t_xg - t_np) * 1e3:.0f} ms; the goal is <= numpy + 60 ms)")
    peaks = {fw: bench_train.peak_memory_mb(fw) for fw in ("numpy", "xgrad", "torch")}
    print("\npeak RSS training the MLP 20 steps (import alone in brackets):")
    for fw, (peak, base) in peaks.items():
        print(f"  {fw:<6} {peak:6.0f} MB ({base:.0f} MB)")
    print(f"xgrad - numpy: {peaks['xgrad'][0] - peaks['numpy'][0]:+.0f} MB (the goal is <= +30 MB)")


if __name__ == "__main__":
    main()
