"""Writes the seed corpora of the libFuzzer targets (make fuzz): <out>/<target>/seeds/.

fuzz_onnx_import: every model of libonnx-testdata's node, pytorch-converted, pytorch-operator and simple
folders, and models xgrad exports (an MLP, a small conv net). fuzz_npz: checkpoints that xg.save and
np.savez write (float32, float64, int64, bool; 0-d, empty and zip64 members). fuzz_program: feeds in the
target's byte encoding (tests/fuzz/fuzz_program.cpp), valid ones and near misses.
"""
import glob
import os
import shutil
import struct
import sys

import numpy as np

import xgrad as xg

TESTDATA = "/usr/share/libonnx-testdata/data"


def onnx_seeds(out):
    n = 0
    for folder in ("node", "pytorch-converted", "pytorch-operator", "simple"):
        for model in sorted(glob.glob(f"{TESTDATA}/{folder}/*/model.onnx")):
            if os.path.getsize(model) <= 65536:  # the fuzzer's -max_len
                shutil.copy(model, os.path.join(out, f"{folder}-{os.path.basename(os.path.dirname(model))}.onnx"))
                n += 1
    rng = np.random.default_rng(0)
    g = xg.Graph()
    x = g.input("x", (None, 8))
    w = g.param("w", rng.standard_normal((8, 4)).astype(np.float32))
    b = g.param("b", np.zeros(4, np.float32))
    y = xg.softmax(xg.tanh(x @ w + b), axis=1)
    xg.onnx.export(y, os.path.join(out, "xgrad-mlp.onnx"))
    g = xg.Graph()
    img = g.input("img", (None, 1, 6, 6))
    k = g.param("k", rng.standard_normal((2, 1, 3, 3)).astype(np.float32))
    z = xg.max_pool2d(xg.relu(xg.conv2d(img, k, padding=1)), 2)
    xg.onnx.export(xg.reshape(z, (-1, 18)), os.path.join(out, "xgrad-conv.onnx"))
    # shapes computed from the batch: Shape, Slice, Concat, Reshape, Expand, Range
    g = xg.Graph()
    d = g.input("d", (None, 3, 4))
    dims = xg.shape_of(d)
    flat = xg.reshape(d, xg.concat([dims[:1], g.const(np.array([-1]), "rest")]))
    count = xg.reshape(dims[:1], ())
    rows = xg.astype(xg.arange(0, count, 1), np.float32)
    spread = xg.expand(xg.reshape(rows, (-1, 1)), xg.shape_of(flat))
    xg.onnx.export([flat + spread, xg.slice(d, dims[1:2], [100], axes=(0,))], os.path.join(out, "xgrad-shapes.onnx"))
    return n + 3


def npz_seeds(out):
    g = xg.Graph()
    g.param("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    g.param("b", np.zeros(4))
    g.param("step", np.array(7, np.int64))
    g.param("mask", np.array([True, False, True]))
    g.param("empty", np.zeros((0, 3), np.float32))
    xg.save(os.path.join(out, "xgrad.npz"), g)  # zip64 members, as xg.save writes them
    np.savez(os.path.join(out, "numpy.npz"), a=np.ones((2, 2), np.float32), b=np.array(1.5))
    np.savez(os.path.join(out, "numpy-one.npz"), x=np.arange(5, dtype=np.int64))
    return 3


def feed(name_code, dtype_code, shape, payload=b""):
    return bytes([name_code, dtype_code, len(shape), *shape]) + payload


def program_seeds(out):
    x = np.linspace(-1, 1, 6, dtype=np.float32).tobytes()
    idx = np.array([0, 1], np.int64).tobytes()
    seeds = {
        "valid": bytes([2]) + feed(0, 0, (2, 3), x) + feed(1, 2, (2,), idx),
        "empty-batch": bytes([2]) + feed(0, 0, (0, 3)) + feed(1, 2, (0,)),
        "float64-x": bytes([2]) + feed(0, 1, (2, 3), np.zeros(6).tobytes()) + feed(1, 2, (2,), idx),
        "bad-index": bytes([2]) + feed(0, 0, (2, 3), x) + feed(1, 2, (1,), struct.pack("<q", 9)),
        "missing": bytes([1]) + feed(0, 0, (2, 3), x),
        "unknown-name": bytes([3]) + feed(0, 0, (2, 3), x) + feed(1, 2, (2,), idx) + feed(2, 0, (1,), b"\0" * 4),
        "wrong-rank": bytes([2]) + feed(0, 0, (3,), x[:12]) + feed(1, 2, (2,), idx),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return len(seeds)


def main(root):
    for target, write in (("fuzz_onnx_import", onnx_seeds), ("fuzz_npz", npz_seeds), ("fuzz_program", program_seeds)):
        out = os.path.join(root, target, "seeds")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        print(f"{target}: {write(out)} seeds")


if __name__ == "__main__":
    main(sys.argv[1])
