"""Nothing the user owns is lost when a process dies mid-write: processes saving checkpoints (xg.save, the C++
writer io::write_npz) and exporting ONNX files are killed with SIGKILL at random moments, hundreds of times,
and the file on disk is always a complete version: the last one the writer finished, or the one it was
finishing (renamed into place just before the kill)."""
import os
import random
import signal
import time

import numpy as np
import pytest

import xgrad as xg
from xgrad import _xgrad

KILLS_PER_WRITER = 120
SIZE = 256 * 1024  # floats per param: 1 MiB, so that a write takes long enough to be cut short


def graph_at(version):
    g = xg.Graph()
    x = g.input("x", (None, 512))
    w = g.param("w", np.full((512, SIZE // 512), version, np.float32))
    b = g.param("b", np.full(SIZE // 512, -version, np.float32))
    return g, x @ w + b


def write_xg_save(path, version):
    xg.save(path, graph_at(version)[0])


def write_cpp_npz(path, version):
    _xgrad._write_npz(str(path), {"w": np.full(SIZE, version, np.float32), "b": np.full(7, -version, np.float32)})


def write_onnx(path, version):
    xg.onnx.export(graph_at(version)[1], path)


def version_of_npz(path):
    with np.load(path) as f:  # numpy's reader: the file must be whole for it, too
        w, b = f["w"], f["b"]
    v = w.flat[0]
    assert np.all(w == v) and np.all(b == -v), "a mix of two versions"
    return int(v)


def version_of_onnx(path):
    model = xg.onnx.load(path)
    values = {p.name: p.value for p in model.graph.params}
    w = values["w"]
    v = w.flat[0]
    assert np.all(w == v) and np.all(values["b"] == -v), "a mix of two versions"
    return int(v)


WRITERS = {"xg.save": (write_xg_save, version_of_npz, ".npz"),
           "io::write_npz": (write_cpp_npz, version_of_npz, ".npz"),
           "onnx export": (write_onnx, version_of_onnx, ".onnx")}


def writer_process(write, path, report):
    """The child: writes versions 1, 2, 3, ... forever, reporting each one finished."""
    try:
        for version in range(1, 1 << 30):
            write(path, version)
            os.write(report, version.to_bytes(4, "little"))
    finally:
        os._exit(1)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_sigkill_mid_write_leaves_a_complete_file(tmp_path, writer):
    write, version_of, ext = WRITERS[writer]
    path = str(tmp_path / f"model{ext}")
    rng = random.Random(hash(writer) & 0xFFFF)
    write(path, 1)
    # How long a fresh writer process takes for its first write: the kills land anywhere in up to three.
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        write(path, 1)
        os._exit(0)
    os.waitpid(pid, 0)
    one_write = time.perf_counter() - t0
    finished = 1
    for kill in range(KILLS_PER_WRITER):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            writer_process(lambda p, v: write(p, finished + v), path, write_end)
        os.close(write_end)
        time.sleep(rng.uniform(0, 3 * one_write))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        reports = b""
        while chunk := os.read(read_end, 4096):
            reports += chunk
        os.close(read_end)
        done = len(reports) // 4
        on_disk = version_of(path)
        # The last version reported finished, or the next one: renamed into place before its report was sent.
        assert on_disk in (finished + done, finished + done + 1), (kill, finished, done, on_disk)
        finished = on_disk
    # Leftovers of killed writers are temporary files beside it, never the file itself.
    others = [f for f in os.listdir(tmp_path) if f != os.path.basename(path)]
    assert all(f.startswith(".xgrad-") or ".xgrad-tmp-" in f for f in others), others
    assert finished > KILLS_PER_WRITER // 4  # the writers got through many versions, so kills hit all phases
