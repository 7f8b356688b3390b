"""Serving latency of an exported MLP (784-512-256-10, softmax): xgrad's C++ API vs ONNX Runtime running the same
ONNX file vs PyTorch 1.13, at batch 1 and batch 128, on this machine in one run.

- xgrad C++: build/bench_infer (bench/bench_infer.cpp) loads the file, compiles it once, times Program::run.
- ONNX Runtime: the npm package onnxruntime-node (make ort), timed inside Node.js by tools/onnxruntime/bench.js.
- PyTorch: the same weights in torch.nn, eager, under torch.no_grad(), timed from Python.
- xgrad Python: the compiled Program called from Python, for the binding's cost.
xgrad, ONNX Runtime and PyTorch are first checked to give the same probabilities (the C++ API runs the same
Program code as the Python one). Goal: xgrad C++ not slower than ONNX Runtime at batch 1.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from timing import torch_all_cores
torch = torch_all_cores()

import xgrad as xg
from timing import best_time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "onnxruntime"))
import ort_node  # noqa: E402  ONNX Runtime from Python through its npm package

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BATCHES = (1, 128)
SIZES = (784, 512, 256, 10)


def json_lines(text):
    return {r["batch"]: r["us_per_call"] for r in (json.loads(line) for line in text.splitlines() if line.strip())}


def main():
    g = xg.Graph()
    x = g.input("x", (None, SIZES[0]))
    model = xg.nn.MLP(g, list(SIZES), seed=0)
    probs = xg.softmax(model(x), axis=-1)
    tmp = tempfile.mkdtemp(prefix="xgrad-bench-")
    path = os.path.join(tmp, "mlp.onnx")
    try:
        xg.onnx.export(probs, path)
        rows = {}

        exe = os.path.join(ROOT, "build", "bench_infer")
        if os.path.exists(exe):
            rows["xgrad C++ API"] = json_lines(subprocess.run([exe, path, *map(str, BATCHES)], check=True, capture_output=True,
                                                              text=True).stdout)
        else:
            print(f"note: {exe} is missing (cmake --build build --target bench_infer); no C++ column")

        node = shutil.which("node")
        bench_js = os.path.join(ROOT, "tools", "onnxruntime", "bench.js")
        if node and os.path.isdir(os.path.join(ROOT, "tools", "onnxruntime", "node_modules", "onnxruntime-node")):
            out = subprocess.run([node, bench_js, path, "x", str(SIZES[0]), *map(str, BATCHES)], check=True,
                                 capture_output=True, text=True, cwd=os.path.dirname(bench_js)).stdout
            rows["ONNX Runtime (onnxruntime-node)"] = json_lines(out)
        else:
            print("note: onnxruntime-node is not installed (make ort); no ONNX Runtime column")

        predict = g.compile(probs)
        net = torch.nn.Sequential(*[m for i, (a, b) in enumerate(zip(SIZES, SIZES[1:]))
                                    for m in ([torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(SIZES) - 2 else []))],
                                  torch.nn.Softmax(dim=-1))
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        with torch.no_grad():
            for lin, (w, b) in zip(linears, zip(model.params[::2], model.params[1::2])):
                lin.weight.copy_(torch.from_numpy(w.value))
                lin.bias.copy_(torch.from_numpy(b.value))
        rng = np.random.default_rng(0)
        rows["xgrad Python"], rows["PyTorch eager"] = {}, {}
        for batch in BATCHES:
            xb = rng.standard_normal((batch, SIZES[0])).astype(np.float32)
            tb = torch.from_numpy(xb)
            with torch.no_grad():
                want = net(tb).numpy()
            np.testing.assert_allclose(predict(x=xb), want, rtol=1e-4, atol=1e-6)
            if "ONNX Runtime (onnxruntime-node)" in rows:
                (ort_out,) = ort_node.InferenceSession(path).run(None, {"x": xb})
                np.testing.assert_allclose(ort_out, want, rtol=1e-4, atol=1e-6)
            rows["xgrad Python"][batch] = best_time(lambda: predict(x=xb)) * 1e6
            with torch.no_grad():
                rows["PyTorch eager"][batch] = best_time(lambda: net(tb)) * 1e6
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"xgrad {xg.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), {os.cpu_count()} CPUs")
    print(f"\nMLP {'-'.join(map(str, SIZES))} inference, us per call" + "".join(f"{f'batch {b}':>14}" for b in BATCHES))
    for name, times in rows.items():
        print(f"  {name:<34}" + "".join(f"{times[b]:14.1f}" for b in BATCHES))
    if "xgrad C++ API" in rows and "ONNX Runtime (onnxruntime-node)" in rows:
        for b in BATCHES:
            ratio = rows["ONNX Runtime (onnxruntime-node)"][b] / rows["xgrad C++ API"][b]
            print(f"  batch {b}: ONNX Runtime / xgrad C++ = {ratio:.2f}x" + ("" if ratio >= 1 else "  (xgrad slower)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
