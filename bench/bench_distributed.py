"""Data-parallel training on this machine: the MLP 784-512-256-10 (Adam) at a total batch of 256, as

  (a) one process using both cores (xgrad's thread pool), batch 256 per step, and
  (b) two single-threaded processes under mpirun (each bound to its own core), batch 128 each, the gradients
      averaged by allreduce in buckets that overlap the backward pass,

in samples per second, with the share of (b)'s step the communication thread spent in MPI and the share the
step waited for it. Before timing, (b) checks that one averaged step equals one single-process step on the
whole batch. Run by `make bench`; (b) is this script with --worker under mpirun.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

import xgrad as xg
from timing import best_time

SIZES = [784, 512, 256, 10]
BATCH = 256


def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((BATCH, 784)).astype(np.float32), rng.integers(0, 10, BATCH)


def model(allreduce=None, optimizer="Adam"):
    rng = np.random.default_rng(1)
    g = xg.Graph()
    x = g.input("x", (None, 784))
    t = g.input("t", (None,), dtype=xg.int64)
    h, params = x, []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        w = g.param(f"w{i}", (rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32))
        bias = g.param(f"b{i}", np.zeros(b, np.float32))
        params += [w, bias]
        h = h @ w + bias
        if i < len(SIZES) - 2:
            h = xg.relu(h)
    loss = xg.cross_entropy(h, t)
    opt = xg.optim.Adam(params, lr=1e-3) if optimizer == "Adam" else xg.optim.SGD(params, lr=0.1)
    step = g.compile(loss, updates=opt.minimize(loss, allreduce=allreduce))
    return step, params


def worker():
    D = xg.distributed
    D.init()
    rank, world = D.rank(), D.world_size()
    X, T = data()
    half = BATCH // world
    mine = dict(x=X[rank * half:(rank + 1) * half], t=T[rank * half:(rank + 1) * half])
    # The answers agree: one averaged step == one step of a single process on the whole batch (SGD: Adam's
    # first step divides each gradient by its own magnitude, which float32 rounding of near-zero gradients
    # changes, while its reductions are the same).
    step, params = model("mean", "SGD")
    step(mine)
    if rank == 0:
        alone, alone_params = model(None, "SGD")
        alone(x=X, t=T)
        for p, q in zip(params, alone_params):
            np.testing.assert_allclose(p.value, q.value, rtol=1e-4, atol=1e-6, err_msg=p.name)
    step, _ = model("mean")
    reductions = sum("over processes" in line for line in str(step).splitlines())

    for _ in range(20):
        step(mine)
    # A fixed number of steps on every rank (each step is a collective call), best of five rounds.
    steps, seconds, per_step = 100, float("inf"), {}
    for _ in range(5):
        D.barrier()
        D.reset_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step(mine)
        elapsed = (time.perf_counter() - t0) / steps
        if elapsed < seconds:
            s = D.stats()
            seconds = elapsed
            per_step = {k: s[k] / steps for k in ("communicating_seconds", "waiting_seconds")}
            per_step["bytes"] = s["bytes"] / steps
    D.barrier()
    if rank == 0:
        print(json.dumps({"step_seconds": seconds, "buckets": reductions, **per_step,
                          "threads": len(os.sched_getaffinity(0))}))


def main():
    X, T = data()
    step, _ = model()
    one = best_time(lambda: step(x=X, t=T))
    mpirun = shutil.which("mpirun")
    if not mpirun or not xg.distributed.is_available():
        print(f"bench_distributed: skipped, no MPI ({xg.distributed.why_unavailable() or 'mpirun is missing'})")
        return
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    # Shared memory between the two processes; its copy-in/copy-out path, as this VM's cross-memory-attach
    # system calls (Open MPI's default single copy) make a 2 MiB allreduce take 0.4 ms instead of 0.24.
    launch = [mpirun, "-np", "2", "--bind-to", "core", "--mca", "btl", "self,vader",
              "--mca", "btl_vader_single_copy_mechanism", "none"]
    r = subprocess.run(launch + [sys.executable, os.path.abspath(__file__), "--worker"], env=env, capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit("bench_distributed: the mpirun worker failed:\n" + r.stdout + r.stderr)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    two = res["step_seconds"]
    print(f"xgrad {xg.__version__}, {xg.distributed.library()}, {os.cpu_count()} cores; (b) is: "
          + " ".join(os.path.basename(a) if a == mpirun else a for a in launch) + " python bench_distributed.py --worker")
    print(f"MLP {'-'.join(map(str, SIZES))}, Adam, total batch {BATCH}; answers agree (one averaged SGD step == "
          f"one step on the whole batch)\n")
    print(f"{'':44} {'ms/step':>8} {'samples/s':>10}")
    print(f"{'1 process, 2 threads, batch 256':44} {one * 1e3:8.2f} {BATCH / one:10.0f}")
    print(f"{'2 processes x 1 thread, batch 128 each':44} {two * 1e3:8.2f} {BATCH / two:10.0f}")
    print(f"\n2 processes / 1 process: {one / two:.2f}x samples/s (target >= 0.9x)")
    where = ("inline: each process has one core, so its reductions run on the step's thread, together at the first "
             "update" if res["threads"] == 1 else "on the communication thread")
    print(f"per step: {res['buckets']} bucket reductions of {res['bytes'] / 2**20:.2f} MiB in all ({where});\n"
          f"  in MPI {res['communicating_seconds'] * 1e3:.2f} ms ({res['communicating_seconds'] / two:.0%} of the step), "
          f"the step waiting for the communication thread {res['waiting_seconds'] * 1e3:.2f} ms "
          f"({res['waiting_seconds'] / two:.0%})")


if __name__ == "__main__":
    worker() if "--worker" in sys.argv else main()
