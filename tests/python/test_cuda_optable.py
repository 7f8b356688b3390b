"""Every case of every op table, compiled for CUDA: forward and gradient programs.

On a machine with a GPU, each runs there and must equal the CPU's results within float32 tolerance (the
issue's acceptance test). Without one, compiling still checks that every op of the program has a CUDA
kernel (a RuntimeError saying CUDA is unavailable comes only after that check), and that the ops listed in
NOT_ON_CUDA are refused by name, never run on the CPU behind the caller's back.
"""
import re

import numpy as np
import pytest

import xgrad as xg
from optable import Built, _rng_for
from test_ops import _all_table_cases

# Table ops without CUDA kernels yet: compiling a program that uses them for CUDA is a ValueError naming them.
# (Linear algebra: LAPACK's factorizations have no CUDA kernels here; cuSOLVER would be the way.)
# linear (the fused GEMM + epilogue): compile() forms it only for the CPU, so CUDA programs of matmul + add + relu
# run unfused; a graph that calls xg.linear itself is refused for CUDA until it gets a kernel there.
NOT_ON_CUDA = {"cholesky", "triangular_solve", "solve", "inv", "lstsq", "det", "det_sign", "logabsdet", "linear",
               "log_softmax_take", "log_softmax_take_grad"}

CASES = []  # this module adds no op table of its own
_CUDA_CASES = [c for c in _all_table_cases() if c.op not in ("dropout",)]


def _programs(case, part):
    """(graph, outputs, built) for the case's forward program or its gradient program, in float32."""
    b = Built(case, np.float32)
    if part == "forward":
        return b, [b.out]
    R = _rng_for(case).standard_normal(b.reference().shape).astype(np.float32)
    loss = xg.sum(b.out * b.g.const(R))
    return b, [loss] + xg.grad(loss, b.nodes)


def _ops_of(outs):
    """Every op in the graph below outs (walking node.inputs, without recursion)."""
    ops, seen, stack = set(), set(), list(outs)
    while stack:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op:
            ops.add(n.op)
        stack.extend(n.inputs)
    return ops


def _parts(cases):
    return [(c, "forward") for c in cases] + [(c, "gradient") for c in cases if c.grad]


@pytest.mark.skipif(not xg.cuda.is_built(), reason="this build has no CUDA backend (CMake found no nvcc)")
@pytest.mark.parametrize("case,part", _parts(_CUDA_CASES), ids=[f"{c.id}-{p}" for c, p in _parts(_CUDA_CASES)])
def test_table_case_on_cuda(case, part):
    b, outs = _programs(case, part)
    if _ops_of(outs) & NOT_ON_CUDA:
        with pytest.raises(ValueError, match="no cuda kernel for op") as err:
            b.g.compile(outs, device="cuda")
        named = set(re.findall(r"'(\w+)' \(node", str(err.value)))
        assert named and named <= NOT_ON_CUDA, named
        return
    if not xg.cuda.is_available():
        # Every op has a CUDA kernel (that check comes first); only the missing GPU stops it.
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            b.g.compile(outs, device="cuda")
        return
    on_gpu = b.g.compile(outs, device="cuda")
    cpu_b, cpu_outs = _programs(case, part)
    on_cpu = cpu_b.g.compile(cpu_outs)
    got, want = b.run(on_gpu), cpu_b.run(on_cpu)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"{case.id} {part}")


def test_not_on_cuda_lists_only_registered_ops_without_cuda_kernels():
    assert NOT_ON_CUDA <= set(xg.registered_ops())
