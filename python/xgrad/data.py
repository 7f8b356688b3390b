"""Minibatches over numpy arrays.

::

    for xb, tb in xg.data.batches(X, T, batch_size=128, seed=0):          # tuples, one array per input
        step(x=xb, t=tb)
    for feeds in xg.data.batches(x=X, t=T, batch_size=128, seed=0):        # dicts keyed by input name
        step(feeds)                                                         # (what xg.fit wants)

Every array is cut along axis 0 with the same permutation. The object
``batches`` returns can be iterated once per epoch: each pass draws a new
permutation from a generator seeded once, so a run of epochs is reproducible
from ``seed``. The last batch is smaller when the length does not divide
(``drop_last=True`` leaves it out); a Program whose inputs have a None batch
axis runs it as it is (it plans that shape once and caches the plan).

Data-parallel training (``xgrad.distributed``): ``shard=(rank, world_size)``
gives each process its own disjoint part of every pass, the same number of
batches on every process::

    xg.data.batches(X, T, batch_size=64, seed=0, shard=(xg.distributed.rank(), xg.distributed.world_size()))

Each pass draws one permutation (the same on every process: the seed must be
given and be the same) and deals it out in world_size equal parts; the
``n % world_size`` samples left over sit out that pass.
"""
import numpy as np

from .init import as_generator

__all__ = ["batches", "Batches"]


class Batches:
    """Re-iterable minibatches; see ``batches``."""

    def __init__(self, arrays, names, batch_size, shuffle, seed, drop_last, shard=None):
        if not arrays:
            raise ValueError("batches: give at least one array")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batches: batch_size must be a positive int, got {batch_size!r}")
        self.arrays = [np.asarray(a) for a in arrays]
        self.names = names
        lengths = {len(a) if a.ndim else None for a in self.arrays}
        if None in lengths or len(lengths) != 1:
            got = ", ".join(f"{n}: {a.shape}" for n, a in zip(names or range(len(self.arrays)), self.arrays))
            raise ValueError(f"batches: arrays must share their first axis, got {got}")
        self.total = lengths.pop()
        self.rank, self.world = _check_shard(shard)
        if self.world > 1 and shuffle and (seed is None or isinstance(seed, np.random.Generator)):
            raise ValueError("batches: shard=(rank, world_size) with shuffle=True needs an int seed, the same on every "
                             "process, so that the processes deal out one permutation (got seed=%r)" % (seed,))
        self.n = self.total // self.world  # this process's samples per pass
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.rng = as_generator(seed) if shuffle else None

    def __len__(self):
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def __iter__(self):
        first = self.rank * self.n  # this process's part of the pass
        order = self.rng.permutation(self.total)[first:first + self.n] if self.shuffle else None
        for k in range(len(self)):
            lo, hi = k * self.batch_size, min((k + 1) * self.batch_size, self.n)
            # Unshuffled batches are slices (views, fed without a copy); shuffled ones gather rows.
            parts = [a[first + lo:first + hi] if order is None else a[order[lo:hi]] for a in self.arrays]
            if self.names is not None:
                yield dict(zip(self.names, parts))
            elif len(parts) == 1:
                yield parts[0]
            else:
                yield tuple(parts)


def _check_shard(shard):
    if shard is None:
        return 0, 1
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
    if not ok or shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"batches: shard must be (rank, world_size) with 0 <= rank < world_size, got {shard!r}")
    return int(shard[0]), int(shard[1])


def batches(*arrays, batch_size=32, shuffle=True, seed=None, drop_last=False, shard=None, **named):
    """Minibatches of arrays cut along their first axis with one shared permutation.

    Positional arrays give a tuple per batch (the array itself when there is one); keyword arrays give a dict
    {name: batch} per batch, ready to feed a Program. ``seed``: an int or numpy Generator for the shuffle
    (None: fresh entropy). ``drop_last``: leave out a final batch smaller than batch_size. ``len()`` is the
    number of batches per pass. ``shard=(rank, world_size)``: this process's part of each pass (see above).
    """
    if arrays and named:
        raise TypeError("batches: give arrays either positionally or by name, not both")
    if named:
        return Batches(list(named.values()), list(named), batch_size, shuffle, seed, drop_last, shard)
    return Batches(list(arrays), None, batch_size, shuffle, seed, drop_last, shard)
