"""Data-parallel training from Python: the digits MLP (64-64-10 on scikit-learn's 8x8 digits), every process on
its own part of each epoch, the gradients averaged over the processes inside the compiled step.

    mpirun -np 2 .venv/bin/python examples/distributed/train_digits.py [checkpoint.npz]

Alone (no mpirun) it trains as a world of one. Rank 0 shows the progress bar and writes the checkpoint. Exits
non-zero when the test accuracy is below 90%.
"""
import sys

import numpy as np
from sklearn.datasets import load_digits

import xgrad as xg

xg.distributed.init()
rank, world = xg.distributed.rank(), xg.distributed.world_size()

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target.astype(np.int64)
order = np.random.default_rng(0).permutation(len(X))  # the same split on every process
train, test = order[:1500], order[1500:]

g = xg.Graph()
x = g.input("x", (None, 64))
t = g.input("t", (None,), dtype=xg.int64)
rng = np.random.default_rng(1 + rank)  # different on each process: broadcast_params makes them rank 0's
w0 = g.param("w0", (rng.standard_normal((64, 64)) * np.sqrt(2 / 64)).astype(np.float32))
b0 = g.param("b0", np.zeros(64, np.float32))
w1 = g.param("w1", (rng.standard_normal((64, 10)) * np.sqrt(1 / 64)).astype(np.float32))
b1 = g.param("b1", np.zeros(10, np.float32))
logits = xg.relu(x @ w0 + b0) @ w1 + b1
loss = xg.cross_entropy(logits, t)
xg.distributed.broadcast_params(g)

step = g.compile(loss, updates=xg.optim.Adam([w0, b0, w1, b1], lr=0.01).minimize(loss, allreduce="mean"))
if rank == 0:
    print(f"{world} processes ({xg.distributed.library()}); the step's reductions:")
    print("\n".join(line for line in str(step).splitlines() if "over processes" in line))

batches = xg.data.batches(x=X[train], t=y[train], batch_size=32, seed=42, shard=(rank, world))
history = xg.fit(step, batches, epochs=30, desc="digits")
predict = g.compile(xg.argmax(logits, 1))
accuracy = float(np.mean(predict(x=X[test]) == y[test]))  # every process holds the same weights
print(f"rank {rank}: final epoch loss {history[-1]:.4f} (its own batches), test accuracy {accuracy:.3f}", flush=True)
if len(sys.argv) > 1:
    xg.save(sys.argv[1], g)  # on every process: rank 0 writes, the others wait
sys.exit(0 if accuracy >= 0.9 else 1)
