"""Runs under `mpirun -np 2` (tests/python/test_distributed.py starts it): each scenario named on the command
line asserts on every rank; any failure is an uncaught exception, which ends the job non-zero."""
import os
import sys
import tempfile

import numpy as np

import xgrad as xg

D = xg.distributed


def log(*a):
    """To stdout and to rank<N>.log in the directory given first (mpirun interleaves the processes' output)."""
    line = " ".join(str(v) for v in a)
    print(f"[rank {D.rank()}] {line}", flush=True)
    with open(os.path.join(sys.argv[1], f"rank{D.rank()}.log"), "a") as f:
        f.write(line + "\n")


def data(n=64, p=5, k=3, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    T = rng.integers(0, k, n)
    return X, T


def mlp(p=5, h=8, k=3, seed=3):
    """A small two-layer classifier in float64; returns (graph, inputs, params, loss)."""
    rng = np.random.default_rng(seed)
    g = xg.Graph()
    x = g.input("x", (None, p), dtype=xg.float64)
    t = g.input("t", (None,), dtype=xg.int64)
    w0 = g.param("w0", rng.standard_normal((p, h)) * 0.5)
    b0 = g.param("b0", np.zeros(h))
    w1 = g.param("w1", rng.standard_normal((h, k)) * 0.5)
    b1 = g.param("b1", np.zeros(k))
    loss = xg.cross_entropy(xg.tanh(x @ w0 + b0) @ w1 + b1, t)
    return g, [w0, b0, w1, b1], loss


def scenario_train():
    """Two processes on half the data each, gradients averaged == one process on the whole batch."""
    rank, world = D.rank(), D.world_size()
    assert world == 2, world
    log(f"{len(os.sched_getaffinity(0))} cores for this process")
    X, T = data()
    for name, make in [("SGD", lambda p: xg.optim.SGD(p, lr=0.3, momentum=0.9)),
                       ("Adam", lambda p: xg.optim.Adam(p, lr=0.05))]:
        g, params, loss = mlp()
        # different starting weights on each rank: broadcast_params makes them rank 0's
        for p in params:
            p.value[...] += rank * 0.25
        D.broadcast_params(g)
        # tiny buckets: several reductions per step, overlapping the backward pass
        step = g.compile(loss, updates=make(params).minimize(loss, allreduce="mean", bucket_bytes=200))
        assert str(step).count("bucket of") + str(step).count("over processes") >= 2, str(step)
        half = len(X) // world
        for epoch in range(5):
            step(x=X[rank * half:(rank + 1) * half], t=T[rank * half:(rank + 1) * half])
        g1, params1, loss1 = mlp()  # the same model trained alone on everything
        step1 = g1.compile(loss1, updates=make(params1).minimize(loss1))
        for epoch in range(5):
            step1(x=X, t=T)
        for p, q in zip(params, params1):
            np.testing.assert_allclose(p.value, q.value, rtol=1e-6, atol=1e-12, err_msg=f"{name} {p.name}")
        log(name, "matches single-process training")


def scenario_allreduce():
    """Forward and gradient against hand-computed sums."""
    rank, world = D.rank(), D.world_size()
    g = xg.Graph()
    x = g.input("x", (2, 3), dtype=xg.float64)
    cn = g.input("c", (), dtype=xg.float64)  # each process scales its input differently (an input: the graphs
    c = float(rank + 1)                      # must be the same on every process, constants included)
    s = D.allreduce(x * cn, "sum")
    m = D.allreduce(x * cn, "mean")
    loss = xg.sum(s * s) * cn + xg.sum(m) * 2.0
    gx = xg.grad(loss, [x])[0]
    ggx = xg.grad(xg.sum(gx * gx), [x])[0]  # second order goes through allreduce again
    prog = g.compile([s, m, gx, ggx])
    X = np.arange(6.0).reshape(2, 3) + 1.0
    out_s, out_m, out_gx, out_ggx = prog(x=X, c=np.float64(c))
    cs = sum(r + 1.0 for r in range(world))  # sum over ranks of c_r
    np.testing.assert_allclose(out_s, cs * X)
    np.testing.assert_allclose(out_m, cs / world * X)
    # loss = sum_r [c_r sum(S^2) + 2 sum(M)] with S = cs X, M = cs X / world (all ranks feed the same X);
    # d loss_total / dX on rank r = c_r * sum_k(2 c_k S) + c_r * 2 * world / world ... through each allreduce:
    #   from S: (sum_k c_k * 2 S) * c_r ; from M: (sum_k 2 / world) * c_r
    expect_gx = c * (cs * 2 * cs * X) + c * 2.0
    np.testing.assert_allclose(out_gx, expect_gx)
    # gx = c (2 cs^2 X) + 2c, linear in X on every rank; sum(gx^2)'s gradient through the graph:
    # the graph's gx depends on X only through S (allreduce), so d/dX = c_r * sum_k (c_k * 2 cs * 2 gx_k)
    gx_k = [(k + 1.0) * (2 * cs * cs * X) + 2 * (k + 1.0) for k in range(world)]
    expect_ggx = c * sum((k + 1.0) * 2 * cs * 2 * gx_k[k] for k in range(world))
    np.testing.assert_allclose(out_ggx, expect_ggx)
    log("allreduce forward, gradient and second order match")


def scenario_mismatch():
    """A shape that differs across processes: one ValueError on every process, nothing reduced, params kept."""
    rank = D.rank()
    g = xg.Graph()
    x = g.input("x", (None, 3))
    y = D.allreduce(x, "sum")
    prog = g.compile(y)
    try:
        prog(x=np.ones((2 + rank, 3), np.float32))
    except ValueError as e:
        msg = str(e)
        assert "rank 0" in msg and "rank 1" in msg and "(2, 3)" in msg and "(3, 3)" in msg and "'x'" in msg, msg
        log("mismatch raised:", msg.splitlines()[0])
    else:
        raise AssertionError("no ValueError for shapes that differ across processes")
    # the same program still works once the shapes agree
    np.testing.assert_allclose(prog(x=np.ones((2, 3), np.float32)), 2 * np.ones((2, 3)))

    # an optimizer step whose gradients differ in shape: params and state stay exactly as they were
    g2 = xg.Graph()
    w = g2.param("w", np.ones((2 + rank,), np.float32))
    v = g2.param("v", np.ones((4,), np.float32))
    loss = xg.sum(w * w) + xg.sum(v * v)
    opt = xg.optim.Adam([w, v], lr=0.1)
    step = g2.compile(loss, updates=opt.minimize(loss, allreduce="mean", bucket_bytes=8))
    before = {p.name: p.value.copy() for p in g2.params}
    try:
        step()
    except ValueError as e:
        assert "rank 1" in str(e), e
    else:
        raise AssertionError("no ValueError for gradients that differ across processes")
    for p in g2.params:
        assert np.array_equal(p.value, before[p.name]), p.name

    # broadcast_params with different params
    g3 = xg.Graph()
    g3.param("a", np.zeros((1 + rank,), np.float32))
    try:
        D.broadcast_params(g3)
    except ValueError as e:
        assert "rank 0" in str(e) and "rank 1" in str(e), e
    else:
        raise AssertionError("no ValueError from broadcast_params")
    log("mismatches are ValueErrors on every process")


def scenario_toolkit():
    """Sharded batches, the progress bar on rank 0 only, checkpoints written once."""
    rank, world = D.rank(), D.world_size()
    X = np.arange(21.0).reshape(21, 1)
    mine = np.concatenate([b for b in xg.data.batches(X, batch_size=4, seed=5, shard=(rank, world))])
    everyone = np.zeros((world * len(mine), 1))
    g = xg.Graph()
    seen = g.param("seen", np.zeros((world * len(mine), 1)))
    seen.value[rank * len(mine):(rank + 1) * len(mine)] = mine
    gathered = g.compile(D.allreduce(seen, "sum"))()
    assert len(np.unique(gathered)) == len(gathered) == 2 * (21 // 2), gathered.ravel()  # disjoint, equal parts
    # fit: a bar on rank 0 only
    import xgrad.training as training
    shown = []
    real = training._progress_bar
    training._progress_bar = lambda enabled, total, desc: shown.append(enabled) or real(False, total, desc)
    gm, params, loss = mlp()
    step = gm.compile(loss, updates=xg.optim.SGD(params, lr=0.1).minimize(loss, allreduce="mean"))
    Xd, Td = data()
    xg.fit(step, xg.data.batches(x=Xd, t=Td, batch_size=16, seed=1, shard=(rank, world)), epochs=2)
    training._progress_bar = real
    assert shown == [rank == 0], shown
    # save on every rank: rank 0 writes, the others wait, then all read the same file
    import xgrad.checkpoint as checkpoint
    writes = []
    real_write = checkpoint._write
    checkpoint._write = lambda path, target: writes.append(path) or real_write(path, target)
    path = os.path.join(sys.argv[1], "model.npz")
    xg.save(path, gm)
    checkpoint._write = real_write
    assert len(writes) == (1 if rank == 0 else 0), writes
    g4, params4, _ = mlp(seed=99)
    xg.load(path, g4, strict=False)  # the file also holds the optimizer state
    for p, q in zip(params, params4):
        np.testing.assert_array_equal(p.value, q.value)
    log("shards, progress bar and checkpoint behave")


def scenario_dies():
    """Rank 1 dies in the middle of training; rank 0 would wait for it in the next reduction."""
    rank = D.rank()
    g, params, loss = mlp()
    step = g.compile(loss, updates=xg.optim.SGD(params, lr=0.1).minimize(loss, allreduce="mean"))
    X, T = data()
    for i in range(1000):
        if rank == 1 and i == 3:
            os.kill(os.getpid(), 9)  # SIGKILL: no exception, no MPI_Finalize
        step(x=X, t=T)
    raise AssertionError("rank 0 trained on without its peer")


def scenario_device():
    """A Program compiled for CUDA: its buckets go through host buffers (packed on the device, reduced on the
    host, copied back where first read); the result equals the same training on the CPU."""
    rank, world = D.rank(), D.world_size()
    X, T = data()
    half = len(X) // world
    mine = dict(x=X[rank * half:(rank + 1) * half], t=T[rank * half:(rank + 1) * half])
    results = []
    for device in ("cpu", "cuda"):
        g, params, loss = mlp()
        step = g.compile(loss, updates=xg.optim.Adam(params, lr=0.05).minimize(loss, allreduce="mean", bucket_bytes=200),
                         device=device)
        for _ in range(3):
            step(mine)
        results.append([np.asarray(p.value).copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    log("device programs reduce through host buffers")


def scenario_mpi4py_first():
    from mpi4py import MPI  # initialises MPI before xgrad does
    D.init()
    assert D.rank() == MPI.COMM_WORLD.Get_rank() and D.world_size() == MPI.COMM_WORLD.Get_size()
    g = xg.Graph()
    x = g.input("x", (3,))
    out = g.compile(D.allreduce(x, "sum"))(x=np.full(3, MPI.COMM_WORLD.Get_rank() + 1.0, np.float32))
    np.testing.assert_allclose(out, np.full(3, 3.0))
    log("joins an MPI that mpi4py initialised")


if __name__ == "__main__":
    names = sys.argv[2:]
    if names != ["mpi4py_first"]:
        D.init()
    for name in names:
        globals()["scenario_" + name]()
    D.barrier()
    log("done")
