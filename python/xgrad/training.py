"""xg.fit: runs a compiled training step over minibatches with a progress bar, returns the loss history.

::

    step = g.compile(loss, updates=sgd + model.updates())
    losses = xg.fit(step, xg.data.batches(x=X, t=T, batch_size=128, seed=0), epochs=10)
    plt.plot(losses)                                          # mean loss of each epoch

The loop is plain Python around one Program call per batch, so it costs a
few microseconds per step on top of the step itself; forward, backward and
the update all run inside the Program.
"""
import time
import warnings

import numpy as np

__all__ = ["fit", "progress"]


def progress(iterable=None, **kwargs):
    """A tqdm progress bar (``tqdm.auto``: a widget in notebooks with ipywidgets, text otherwise), for loops of
    your own: ``for i in xg.progress(range(1000), desc="GD"): ...``. Without ipywidgets the bar is text, and
    tqdm's "IProgress not found" warning is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.auto warns at import when ipywidgets is missing, then uses text
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)


def _progress_bar(enabled, total, desc):
    if not enabled:
        return None
    try:
        return progress(total=total, desc=desc, unit="step", leave=True)
    except ImportError:
        warnings.warn("xg.fit: tqdm is not installed (Debian: python3-tqdm), training without a progress bar")
        return None


def _feeds_of(batch, names):
    if isinstance(batch, dict):
        return dict(batch)
    if names is None:
        raise TypeError("xg.fit: batches are tuples; pass names=(...) to say which input each array feeds, or make "
                        "dict batches with xg.data.batches(x=X, t=T, ...)")
    parts = (batch,) if isinstance(batch, np.ndarray) else tuple(batch)
    if len(parts) != len(names):
        raise ValueError(f"xg.fit: a batch has {len(parts)} arrays but names has {len(names)}: {tuple(names)}")
    return dict(zip(names, parts))


def fit(step, data, epochs=1, *, names=None, feeds=None, progress=True, desc="fit", history="epoch", loss_index=0,
        callback=None, check_finite=True):
    """Runs ``step`` once per batch for ``epochs`` passes over ``data``; returns the loss history (float64 array).

    step: a compiled Program (or any callable taking a dict of feeds) whose output is the loss, or whose
        ``loss_index``-th output is when it has several.
    data: a dict {input name: array} (the whole set as one batch: full-batch training, one step per epoch), or
        a re-iterable of batches (``xg.data.batches(...)``, a list): dicts {name: array}, or tuples of arrays
        with ``names`` naming the input each array feeds.
    feeds: extra feeds for every step (a learning rate input, say).
    The graph's "training" input (xg.nn's train/eval switch) is fed True unless the batch or feeds give it.
    progress: a tqdm bar over all steps showing the loss; False hides it (in data-parallel training only rank 0
        shows one).
    history: "epoch" gives the mean loss of each epoch, "step" every step's loss.
    callback: called as callback(epoch, mean_loss) after each epoch (evaluate, save a checkpoint, log);
        returning True stops training there.
    check_finite: raise FloatingPointError at the first NaN or infinite loss instead of training on.
    """
    if history not in ("epoch", "step"):
        raise ValueError(f"xg.fit: history must be 'epoch' or 'step', got {history!r}")
    batches = [data] if isinstance(data, dict) else data
    if iter(batches) is batches and epochs > 1:
        raise ValueError("xg.fit: data is a one-shot iterator, it would be empty after the first epoch; pass "
                         "xg.data.batches(...) or a list")
    extra = dict(feeds or {})
    wants_training = "training" in getattr(step, "input_names", ())
    try:
        total = epochs * len(batches)
    except TypeError:
        total = None
    from . import distributed
    world = distributed._shard_of_world()
    bar = _progress_bar(progress and (world is None or world[0] == 0), total, desc)  # data-parallel: rank 0 shows it
    step_losses, epoch_losses = [], []
    last_shown = 0.0
    try:
        for epoch in range(epochs):
            first = len(step_losses)
            for batch in batches:
                fd = _feeds_of(batch, names)
                fd.update(extra)
                if wants_training and "training" not in fd:
                    fd["training"] = True
                out = step(fd)
                loss = float(np.asarray(out if isinstance(out, np.ndarray) else out[loss_index]))
                if check_finite and not np.isfinite(loss):
                    raise FloatingPointError(f"xg.fit: the loss is {loss} at epoch {epoch}, step {len(step_losses) - first}")
                step_losses.append(loss)
                if bar is not None:
                    bar.update(1)
                    now = time.monotonic()
                    if now - last_shown > 0.2:  # formatting the postfix every step would cost more than small steps
                        bar.set_postfix(epoch=epoch, loss=f"{loss:.4g}", refresh=False)
                        last_shown = now
            if len(step_losses) == first:
                raise ValueError("xg.fit: data gave no batches")
            epoch_losses.append(float(np.mean(step_losses[first:])))
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{epoch_losses[-1]:.4g}")
            if callback is not None and callback(epoch, epoch_losses[-1]) is True:
                break
    finally:
        if bar is not None:
            bar.close()
    return np.array(epoch_losses if history == "epoch" else step_losses, dtype=np.float64)
