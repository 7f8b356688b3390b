"""xg.distributed: the allreduce op (op table, in a world of one), the optimizers' allreduce option, sharded
batches, lazy loading of MPI, and `mpirun -np 2` runs of tests/python/mpi/worker.py: two processes training on
half the data each end where one process on all of it does (SGD and Adam, float64), allreduce forward, gradient
and second order against hand-computed sums, shapes that differ across processes, the progress bar and
checkpoints in data-parallel training, a process that dies, and MPI initialised by mpi4py first."""
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xgrad as xg
from optable import Case, any_values as _any, table_tests

D = xg.distributed
WORKER = os.path.join(os.path.dirname(__file__), "mpi", "worker.py")

CASES = [
    Case("allreduce-sum", "allreduce", lambda x: D.allreduce(xg.tanh(x) * 2.0, "sum"), lambda x: np.tanh(x) * 2.0,
         [_any(4, 3)], second_order="strict"),
    Case("allreduce-mean", "allreduce", lambda x: D.allreduce(x * x, "mean"), lambda x: x * x, [_any(2, 5)]),
]

globals().update(table_tests(CASES))


def test_mpi_is_built_and_a_plain_process_is_a_world_of_one():
    assert D.is_available(), D.why_unavailable()
    assert D.why_unavailable() == ""
    assert D.library().startswith("Open MPI"), D.library()
    D.init()
    D.init()  # idempotent
    assert D.is_initialized() and D.rank() == 0 and D.world_size() == 1
    D.barrier()


def test_importing_xgrad_loads_no_mpi():
    code = ("import xgrad as xg, numpy as np\n"
            "g = xg.Graph(); x = g.input('x', (2,)); g.compile(xg.tanh(x))(x=np.ones(2, np.float32))\n"
            "maps = lambda: open('/proc/self/maps').read()\n"
            "assert 'libmpi' not in maps() and 'libxgrad_mpi' not in maps(), 'MPI loaded at import'\n"
            "xg.distributed.init()\n"
            "assert 'libmpi' in maps() and 'libxgrad_mpi' in maps(), 'init() did not load MPI'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _mlp(seed=0):
    rng = np.random.default_rng(seed)
    g = xg.Graph()
    x = g.input("x", (None, 6))
    t = g.input("t", (None,), dtype=xg.int64)
    w0, b0 = g.param("w0", rng.standard_normal((6, 16)).astype(np.float32)), g.param("b0", np.zeros(16, np.float32))
    w1, b1 = g.param("w1", rng.standard_normal((16, 4)).astype(np.float32)), g.param("b1", np.zeros(4, np.float32))
    loss = xg.cross_entropy(xg.relu(x @ w0 + b0) @ w1 + b1, t)
    return g, [w0, b0, w1, b1], loss


@pytest.mark.parametrize("opt", ["SGD", "Adam", "AdamW", "RMSProp", "AdaGrad"])
def test_allreduce_in_a_world_of_one_changes_nothing(opt):
    rng = np.random.default_rng(1)
    X, T = rng.standard_normal((32, 6)).astype(np.float32), rng.integers(0, 4, 32)
    results = []
    for allreduce in (None, "mean", "sum"):
        g, params, loss = _mlp()
        step = g.compile(loss, updates=getattr(xg.optim, opt)(params, lr=0.01).minimize(loss, allreduce=allreduce))
        for _ in range(3):
            step(x=X, t=T)
        results.append([p.value.copy() for p in params])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_buckets_are_listed_and_start_right_after_their_gradients():
    g, params, loss = _mlp()
    step = g.compile(loss, updates=xg.optim.SGD(params, lr=0.1).minimize(loss, allreduce="mean", bucket_bytes=300))
    text = str(step)
    lines = text.splitlines()
    buckets = [i for i, line in enumerate(lines) if "over processes on the communication thread" in line]
    assert len(buckets) >= 2, text
    assert "bucket of w1, b1" in text or "bucket of b1, w1" in text, text
    # The last layer's bucket starts before the first layer's weight gradient is computed (overlap), and every
    # update comes after the reductions it reads.
    w0_grad = max(i for i, line in enumerate(lines) if "matmul(" in line and "-> float32(6, 16)" in line)
    assert buckets[0] < w0_grad, text
    words = lines[0].split("updates: ")[1].rstrip(")").split()  # w0 <- sub_115 b0 <- sub_120 ...
    updates = words[2::3]
    assert len(updates) == 5, lines[0]
    first_update = min(i for i, line in enumerate(lines) if line.lstrip().split(" = ")[0] in updates)
    assert buckets[-1] < first_update, text  # every reduction started before the first param is written


def test_bad_arguments_are_clear_errors():
    g = xg.Graph()
    x = g.input("x", (3,))
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        D.allreduce(x, "max")
    with pytest.raises(TypeError, match="'sum' or 'mean'"):
        D.allreduce(x, 2)
    with pytest.raises(TypeError, match="floating"):
        D.allreduce(g.input("i", (3,), dtype=xg.int64))
    w = g.param("w", np.ones(3, np.float32))
    with pytest.raises(ValueError, match="'sum' or 'mean'"):
        xg.optim.SGD([w]).minimize(xg.sum(w * x), allreduce="median")
    with pytest.raises(ValueError, match="root 1 is not a rank"):
        D.broadcast_params(g, root=1)
    with pytest.raises(ValueError, match="only broadcast params"):
        D.broadcast_params([x])


def test_sharded_batches_are_disjoint_and_equal_in_count():
    X = np.arange(23.0).reshape(23, 1)
    for shuffle in (False, True):
        parts = [np.concatenate(list(xg.data.batches(X, batch_size=3, shuffle=shuffle, seed=4, shard=(r, 3))))
                 for r in range(3)]
        assert [len(p) for p in parts] == [7, 7, 7]
        seen = np.concatenate(parts).ravel()
        assert len(np.unique(seen)) == 21
        counts = {len(list(xg.data.batches(X, batch_size=3, shuffle=shuffle, seed=4, shard=(r, 3)))) for r in range(3)}
        assert counts == {3}
    unshuffled = next(iter(xg.data.batches(X, batch_size=4, shuffle=False, shard=(1, 2))))
    assert np.shares_memory(unshuffled, X) and unshuffled[0, 0] == 11.0  # rank 1 starts at 23 // 2
    with pytest.raises(ValueError, match="int seed"):
        xg.data.batches(X, shard=(0, 2))
    for bad in [(2, 2), (-1, 2), (0, 0), (0,), "01", (0.0, 2)]:
        with pytest.raises(ValueError, match="shard must be"):
            xg.data.batches(X, seed=0, shard=bad)


def _mpirun(*scenarios, tmp_path, timeout=240, bind="core"):
    mpirun = shutil.which("mpirun")
    assert mpirun, "mpirun is missing: make deps installs openmpi-bin"
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    return subprocess.run([mpirun, "-np", "2", "--bind-to", bind, sys.executable, WORKER, str(tmp_path), *scenarios], env=env,
                          capture_output=True, text=True, timeout=timeout)


# Bound to a core each, a process reduces inline at its first wait; unbound (both cores), on its communication
# thread while the step goes on.
@pytest.mark.parametrize("bind", ["core", "none"])
def test_two_processes_train_as_one(tmp_path, bind):
    r = _mpirun("allreduce", "train", "mismatch", "toolkit", tmp_path=tmp_path, bind=bind)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        logged = (tmp_path / f"rank{rank}.log").read_text()
        for line in ("SGD matches single-process training", "Adam matches single-process training",
                     "allreduce forward, gradient and second order match", "mismatches are ValueErrors on every process",
                     "shards, progress bar and checkpoint behave", "done"):
            assert line in logged, logged
        if bind == "core" or len(os.sched_getaffinity(0)) == 1:
            assert "1 cores for this process" in logged, logged  # no worker, no communication thread: inline
        else:
            assert "1 cores for this process" not in logged, logged


def test_a_process_that_dies_ends_the_job(tmp_path):
    start = time.monotonic()
    r = _mpirun("dies", tmp_path=tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert r.returncode != 0, r.stdout + r.stderr
    assert elapsed < 30, f"the job took {elapsed:.1f} s to end"
    assert "trained on without its peer" not in r.stdout + r.stderr


def test_joins_mpi_initialised_by_mpi4py(tmp_path):
    r = _mpirun("mpi4py_first", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert "joins an MPI that mpi4py initialised" in (tmp_path / f"rank{rank}.log").read_text()


def test_python_example_trains_digits_on_two_processes(tmp_path):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "distributed", "train_digits.py")
    mpirun = shutil.which("mpirun")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    checkpoint = tmp_path / "digits.npz"
    r = subprocess.run([mpirun, "-np", "2", sys.executable, example, str(checkpoint)], env=env, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    # the two processes' lines may interleave: pick them out of the whole text
    accuracies = [float(a) for a in re.findall(r"test accuracy (\d\.\d+)", r.stdout)]
    assert len(accuracies) == 2 and accuracies[0] == accuracies[1] >= 0.9, r.stdout  # same weights everywhere
    assert "2 processes" in r.stdout and "bucket of" in r.stdout, r.stdout
    assert r.stderr.count("digits:   0%") == 1, r.stderr  # one progress bar: rank 0's
    assert checkpoint.exists()


def test_device_programs_reduce_through_host_buffers(tmp_path):
    """Runs where CUDA can be used (a GPU, or the emulator build: make test-cuda-emulator runs this test)."""
    if not xg.cuda.is_available():
        pytest.skip(f"no CUDA device: {xg.cuda.why_unavailable()} (make test-cuda-emulator runs it on the emulator)")
    r = _mpirun("device", tmp_path=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert "device programs reduce through host buffers" in (tmp_path / f"rank{rank}.log").read_text()
