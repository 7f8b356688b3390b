"""Checkpoints: param values saved by name to a numpy .npz file and loaded back.

::

    xg.save("model.npz", g)      # every param of the graph: weights, running statistics, optimizer state
    ...
    g2 = build_the_same_graph()  # the same layers and optimizer, so the same param names
    xg.load("model.npz", g2)     # checks every name, shape and dtype first, then copies the values in

What is saved or loaded: a Graph (all its params: optimizer moments and step
counts are graph params, so they come along), an xg.nn Module (its params and
buffers, no optimizer state), a param node, a list of param nodes, or a dict
{name: param node} (to store under other names). The file is an ordinary .npz
(``np.load`` reads it), written to exactly the path given, through a temporary
file so a crash never leaves half a checkpoint behind.

Loading refuses, with a ValueError naming the parameter, a shape or dtype
that differs from the graph's, a param the file lacks and a file entry the
target lacks (``strict=False`` allows the last two); nothing is written
unless everything matches. Values are copied into the params' storage, so
every compiled Program sees them and the outputs are bit-identical to those
of the graph that was saved.
"""
import os

import numpy as np

from ._xgrad import Graph, Node

__all__ = ["save", "load", "named_params"]


def named_params(target):
    """{name: param node} of a Graph, a Module, a node, a list of nodes or a dict {name: node}."""
    from .nn import Module  # nn imports this package's modules; import late to keep the import order free

    if isinstance(target, Graph):
        nodes = target.params
    elif isinstance(target, Module):
        nodes = list(target.params) + list(target.buffers)
    elif isinstance(target, Node):
        nodes = [target]
    elif isinstance(target, dict):
        out = {}
        for name, node in target.items():
            out[str(name)] = _check_param(node)
        return out
    else:
        try:
            nodes = list(target)
        except TypeError:
            raise TypeError(f"expected a Graph, an xg.nn Module, a param node, a list or a dict of them, "
                            f"got {type(target).__name__}") from None
    out = {}
    for node in nodes:
        node = _check_param(node)
        if node.name in out and out[node.name] is not node:
            raise ValueError(f"two params are named '{node.name}'")
        out[node.name] = node
    return out


def _check_param(node):
    if not isinstance(node, Node) or node.kind != "param":
        raise TypeError(f"checkpoints hold param nodes, got {node!r}")
    return node


def save(path, target):
    """Writes the values of target's params (see ``named_params``) to the .npz file ``path``.

    In data-parallel training (``xgrad.distributed`` initialised, several processes) call it on every process:
    rank 0 writes the file (the params are equal on every process) and the others wait until it is written."""
    from . import distributed
    world = distributed._shard_of_world()
    if world is not None and world[1] > 1:
        try:
            if world[0] == 0:
                _write(path, target)
        finally:
            distributed.barrier()  # also when rank 0 failed: nobody waits forever (rank 0 raises)
        return
    _write(path, target)


def _write(path, target):
    params = named_params(target)
    path = os.fspath(path)
    for name in params:
        if "\0" in name:  # zipfile would cut the name short at it
            raise ValueError(f"cannot save parameter {name!r} to '{path}': its name holds a NUL character")
    import tempfile  # here, not at module level: `import xgrad` should not pay for them
    import zipfile
    fd, tmp = tempfile.mkstemp(prefix=".xgrad-", suffix=".npz", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "wb") as raw:
            os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is an ordinary data file
            # Stored uncompressed, one .npy member per param (np.savez's layout) but without np.savez's keyword
            # arguments, where a param named "file" would clash with the path.
            with zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for name, node in params.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.require(node.value, requirements="C"), allow_pickle=False)  # keeps 0-d shapes
            raw.flush()
            os.fsync(raw.fileno())  # on disk before the rename: the path never names a complete-looking empty file
        os.replace(tmp, path)  # atomic: the path holds the old checkpoint or the new one, never a part
        _sync_folder(path)
    except BaseException:
        os.unlink(tmp)
        raise


def _sync_folder(path):
    """Flushes the folder's entry for path to disk, so a power cut after the rename keeps the new file."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return  # a folder that cannot be opened for reading: the rename stands, unflushed
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder
    finally:
        os.close(fd)


def _read(path):
    """{name: array} of the .npz file ``path``; a file that is not a whole, sound checkpoint is one ValueError
    naming it and saying what is wrong (bad archive, bad member, bad header)."""
    import zipfile
    path = os.fspath(path)
    raw = open(path, "rb")  # a missing or unreadable file is the filesystem's error (FileNotFoundError, ...)
    try:
        archive = zipfile.ZipFile(raw)
    except Exception as e:  # anything the zip reader meets in a corrupt file
        raw.close()
        raise ValueError(f"checkpoint '{path}': bad archive: {e}") from None
    stored = {}
    with raw, archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if name in stored:
                raise ValueError(f"checkpoint '{path}': bad archive: entry '{name}' appears twice")
            stored[name] = _read_member(archive, info, path, name, zipfile)
    return stored


def _read_member(archive, info, path, name, zipfile):
    where = f"checkpoint '{path}', entry '{name}'"
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{where}: bad member: compressed entries are not supported (np.savez writes stored ones)")
    try:
        with archive.open(info) as f:
            data = f.read()  # checks the member's CRC-32 and length
    except Exception as e:  # a bad CRC, a short member, a broken local header
        raise ValueError(f"{where}: bad member: {e}") from None
    import io
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy format version {version[0]}.{version[1]} (1.0 and 2.0 are read)")
    except Exception as e:  # numpy's header parser meets anything in a corrupt header (tokenize errors too)
        raise ValueError(f"{where}: bad header: {e}") from None
    if dtype.hasobject:
        raise ValueError(f"{where}: bad header: object arrays are not checkpoint values")
    if dtype.itemsize == 0 and not dtype.names:
        raise ValueError(f"{where}: bad header: dtype {dtype} has no size")
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: bad header: shape {tuple(shape)} has a negative dimension")
    count = 1
    for d in shape:
        count *= d
    stored = len(data) - f.tell()
    if count * dtype.itemsize != stored:
        raise ValueError(f"{where}: bad member: shape {tuple(shape)} of {dtype.name} is {count * dtype.itemsize} bytes, "
                         f"the entry holds {stored}")
    a = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
    return (a.reshape(shape[::-1]).T if fortran_order else a.reshape(shape)).copy()


def _describe(a):
    return f"{np.dtype(a.dtype).name} {tuple(a.shape)}"


def load(path, target, strict=True):
    """Copies the values saved in ``path`` into target's params, matched by name.

    Raises ValueError naming the parameter on a shape or dtype mismatch and, when ``strict``, on a param the
    file lacks or an entry the target lacks. Returns the names that were loaded.
    """
    params = named_params(target)
    stored = _read(path)
    missing = [n for n in params if n not in stored]
    extra = [n for n in stored if n not in params]
    if strict and missing:
        raise ValueError(f"checkpoint '{path}' has no value for parameter '{missing[0]}'"
                         + (f" (nor for {len(missing) - 1} more: {', '.join(missing[1:6])})" if len(missing) > 1 else ""))
    if strict and extra:
        raise ValueError(f"checkpoint '{path}' holds parameter '{extra[0]}', which the target does not have"
                         + (f" (and {len(extra) - 1} more: {', '.join(extra[1:6])})" if len(extra) > 1 else ""))
    loaded = [n for n in params if n in stored]
    for name in loaded:  # everything is checked before anything is written
        want, got = params[name], stored[name]
        if got.shape != tuple(want.shape) or got.dtype != np.dtype(want.dtype):
            raise ValueError(f"parameter '{name}': the checkpoint has {_describe(got)}, the graph has "
                             f"{np.dtype(want.dtype).name} {tuple(want.shape)}")
    for name in loaded:
        params[name].value = stored[name]  # copied into the param's storage (on its device), which Programs share
    return loaded
