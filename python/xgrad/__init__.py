"""xgrad: a computation-graph engine with symbolic reverse-mode gradients.

Build a graph of tensor nodes, ask for gradients (which are graph nodes too),
compile the nodes you need into a Program and run it with numpy feeds::

    import numpy as np, xgrad as xg
    g = xg.Graph()
    x = g.input("x", (None, 10))
    w = g.param("w", np.zeros((10, 1), np.float32))
    loss = xg.mean(xg.square(x @ w))
    (gw,) = xg.grad(loss, [w])
    step = g.compile([loss, gw])
    l, dw = step(x=np.ones((4, 10), np.float32))
"""
import numpy as _np

from ._xgrad import (Graph, Node, Program, add, broadcast_to, div, exp, grad, log, matmul, mean, mul, neg, pow, registered_ops,
                     relu, reshape, sigmoid, sqrt, square, sub, sum, tanh, transpose)

__version__ = "0.1.0"

float32 = _np.float32
float64 = _np.float64
int64 = _np.int64
bool_ = _np.bool_


def _node_reshape(self, *shape):
    """x.reshape(2, -1) or x.reshape((2, -1)), like numpy."""
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = shape[0]
    return reshape(self, tuple(shape))


def _node_transpose(self, *axes):
    """x.transpose() reverses the axes; x.transpose(1, 0, 2) permutes them."""
    if len(axes) == 1 and not isinstance(axes[0], int):
        axes = axes[0]
    return transpose(self, tuple(axes) if axes else None)


Node.reshape = _node_reshape
Node.transpose = _node_transpose
Node.T = property(lambda self: transpose(self), doc="The node with its axes reversed (a view).")
Node.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims)
Node.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims)

__all__ = [
    "Graph", "Node", "Program", "grad", "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "tanh", "sigmoid",
    "relu", "square", "sqrt", "sum", "mean", "matmul", "reshape", "transpose", "broadcast_to", "registered_ops", "float32", "float64",
    "int64", "bool_",
]
