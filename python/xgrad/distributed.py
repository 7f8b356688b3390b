"""Data-parallel training across processes, on MPI (Open MPI; started by ``mpirun`` or Slurm's ``srun``).

Every process builds the same graph, starts from the same weights and trains on its own part of the data;
the compiled step averages the gradients over all processes before the update::

    import xgrad as xg
    xg.distributed.init()
    rank, world = xg.distributed.rank(), xg.distributed.world_size()
    ...                                                   # build the model
    xg.distributed.broadcast_params(g)                    # rank 0's initial weights everywhere
    step = g.compile(loss, updates=xg.optim.Adam(params).minimize(loss, allreduce="mean"))
    for xb, tb in xg.data.batches(X, T, batch_size=64, shard=(rank, world)):
        step(x=xb, t=tb)

    $ mpirun -np 4 .venv/bin/python train.py

Outside ``mpirun`` the world is one process and all of this still works (the allreduce is the identity).
MPI is loaded by ``init()`` (the plugin ``libxgrad_mpi.so`` beside the extension), never by ``import xgrad``.
Collective calls (``init``, programs with an allreduce, ``broadcast_params``, ``barrier``, ``xg.save``) must be
made by every process, in the same order, from one thread.

After ``init()`` in a world of several processes, an exception that nobody catches ends the whole job
(``MPI_Abort``): the other processes would otherwise wait for this one forever.
"""
import sys as _sys

from . import _xgrad

_d = _xgrad._distributed

is_available = _d.is_available
why_unavailable = _d.why_unavailable
is_initialized = _d.is_initialized
library = _d.library

_hook_installed = False


def init():
    """Initialises MPI once (idempotent), or joins the MPI that mpi4py already initialised. Without MPI (or
    outside mpirun) the world is one process; inside a job of several processes without MPI, RuntimeError."""
    global _hook_installed
    _d.init()
    if _d.world_size() > 1 and not _hook_installed:
        previous = _sys.excepthook

        def abort_job(kind, value, tb):
            previous(kind, value, tb)
            _sys.stderr.write(f"xgrad.distributed: rank {_d.rank()} ends the job (uncaught {kind.__name__})\n")
            _sys.stderr.flush()
            _d.abort(1)

        _sys.excepthook = abort_job
        _hook_installed = True


def rank():
    """This process's rank, 0 .. world_size() - 1 (initialises MPI on first use)."""
    return _d.rank()


def world_size():
    """How many processes train together (1 outside mpirun)."""
    return _d.world_size()


def barrier():
    """Waits until every process has reached this call."""
    _d.barrier()


def stats():
    """This process's reductions since the last reset_stats(): {"reductions", "bytes", "communicating_seconds"
    (the communication thread inside MPI), "waiting_seconds" (Programs blocked on a result: the part of the
    communication the rest of the step did not hide)}."""
    return _d.stats()


def reset_stats():
    _d.reset_stats()


def allreduce(node, op="sum"):
    """A graph op: the elementwise sum ("sum") or mean ("mean") of node over all processes. Differentiable:
    its gradient is the allreduce of the incoming gradient with the same op. A node whose shape or dtype
    differs between processes is a ValueError on every process when the program runs."""
    if not isinstance(op, str):
        raise TypeError(f"allreduce: op must be 'sum' or 'mean', got {op!r}")
    return _d.allreduce(node, op)


def _params_of(target):
    from .nn import Module
    if isinstance(target, (_xgrad.Graph, Module)):
        return list(target.params)
    if isinstance(target, _xgrad.Node):
        return [target]
    try:
        params = list(target)
    except TypeError:
        raise TypeError(f"broadcast_params: expected a Graph, an xg.nn.Module or a list of params, got {type(target).__name__}") from None
    return params


def broadcast_params(target, root=0):
    """Every process gets root's values of target's params (a Graph: all its params; an xg.nn.Module; or a
    list of params), so that all start from the same weights. Names, shapes and dtypes must agree on every
    process (ValueError on every process otherwise)."""
    _d.broadcast_params(_params_of(target), root)


def _shard_of_world():
    """(rank, world_size) when MPI was initialised, else None (no collective call is made)."""
    if not is_initialized():
        return None
    return _d.rank(), _d.world_size()


__all__ = ["init", "is_available", "why_unavailable", "is_initialized", "rank", "world_size", "library", "barrier",
           "allreduce", "broadcast_params", "stats", "reset_stats"]
