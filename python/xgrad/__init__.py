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

from ._xgrad import (Graph, Node, Program, abs, add, argmax, argmin, astype, broadcast_to, clip, cos, div, elu, eq,
                     erf, exp, expm1, ge, gelu, grad, gt, le, leaky_relu, log, log1p, logsumexp, lt, matmul, max,
                     maximum, mean, min, minimum, mul, ne, neg, pow, prod, registered_ops, relu, reshape, rsqrt,
                     sigmoid, sign, sin, softplus, sqrt, square, std, stop_gradient, sub, sum, tanh, transpose, var,
                     where)
from ._xgrad import avg_pool2d, conv2d, max_pool2d

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
for _name in ("sum", "mean", "max", "min", "prod", "logsumexp"):
    setattr(Node, _name, (lambda f: lambda self, axis=None, keepdims=False: f(self, axis, keepdims))(globals()[_name]))
Node.var = lambda self, axis=None, keepdims=False, ddof=0.0: var(self, axis, keepdims, ddof)
Node.std = lambda self, axis=None, keepdims=False, ddof=0.0: std(self, axis, keepdims, ddof)
Node.argmax = lambda self, axis=None, keepdims=False: argmax(self, axis, keepdims)
Node.argmin = lambda self, axis=None, keepdims=False: argmin(self, axis, keepdims)
Node.astype = lambda self, dtype: astype(self, dtype)
Node.clip = lambda self, min=None, max=None: clip(self, min, max)

__all__ = [
    "Graph", "Node", "Program", "grad", "registered_ops", "float32", "float64", "int64", "bool_",
    # elementwise
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "neg", "abs", "sign", "exp", "expm1", "log", "log1p",
    "sqrt", "rsqrt", "square", "sin", "cos", "erf", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu",
    "softplus", "clip", "astype", "stop_gradient",
    # comparisons
    "eq", "ne", "lt", "le", "gt", "ge", "where",
    # reductions
    "sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "argmax", "argmin",
    # linear algebra and shapes
    "matmul", "reshape", "transpose", "broadcast_to",
    # convolution and pooling
    "conv2d", "max_pool2d", "avg_pool2d",
]
