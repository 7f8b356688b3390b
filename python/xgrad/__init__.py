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

from ._xgrad import (Graph, Node, Program, abs, add, argmax, argmin, astype, batch_norm, binary_cross_entropy_with_logits,
                     broadcast_to, clip, concat, cos, cross_entropy, div, dropout, elu, embedding, eq, erf, exp, expm1, flatten, floor, ge,
                     gelu, grad, gt, huber_loss, index_select, layer_norm, le, leaky_relu, log, log1p, log_softmax,
                     adam_update, lerp, lerp_square, log_softmax_take, logsumexp, lt,
                     linear, matmul, max, maximum, mean, min, minimum, mse_loss, mul, ne, neg, one_hot, pad, pow, prod,
                     registered_ops, relu, reshape, rsqrt, sigmoid, sign, sin, softmax, softplus, sqrt, square, std,
                     split, squeeze, expand_dims, shape_of, expand, arange, slice, stack, stop_gradient, sub, sum, take, take_along_axis, tanh, transpose, var, where)
from ._xgrad import Tensor, cuda, linalg, tensor
from ._xgrad import version as _xgrad_version
from ._xgrad import avg_pool1d, avg_pool2d, avg_pool3d, conv1d, conv2d, conv3d, max_pool1d, max_pool2d, max_pool3d

from . import onnx, optim
from .gradcheck import GradcheckError, gradcheck
# The training toolkit (pure Python over the ops above): initializers, layers, minibatches, checkpoints, a fit loop.
from . import data, distributed, init, nn
from .checkpoint import load, save
from .training import fit, progress

__version__ = _xgrad_version()  # from VERSION, like the C++ library's

float32 = _np.float32
float64 = _np.float64
int64 = _np.int64
bool_ = _np.bool_


def _node_reshape(self, *shape):
    """x.reshape(2, -1) or x.reshape((2, -1)), like numpy."""
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = shape[0]
    return reshape(self, shape if isinstance(shape, Node) else tuple(shape))


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
Node.flatten = lambda self, start_axis=0, end_axis=-1: flatten(self, start_axis, end_axis)
Node.squeeze = lambda self, axis=None: squeeze(self, axis)

__all__ = [
    "Graph", "Node", "Program", "grad", "gradcheck", "GradcheckError", "registered_ops", "onnx", "optim", "float32", "float64", "int64", "bool_",
    # elementwise
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "lerp", "lerp_square", "adam_update", "neg", "abs", "sign", "exp", "expm1", "log", "log1p",
    "sqrt", "rsqrt", "square", "sin", "cos", "erf", "floor", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "gelu",
    "softplus", "clip", "astype", "stop_gradient",
    # comparisons
    "eq", "ne", "lt", "le", "gt", "ge", "where",
    # reductions
    "sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "argmax", "argmin",
    # linear algebra, shapes, indexing
    "matmul", "linear", "reshape", "shape_of", "expand", "arange", "slice", "transpose", "broadcast_to", "flatten", "squeeze", "expand_dims", "concat", "stack", "split", "pad", "take", "take_along_axis", "log_softmax_take", "index_select", "one_hot",
    "embedding",
    # neural nets
    "softmax", "log_softmax", "cross_entropy", "binary_cross_entropy_with_logits", "mse_loss", "huber_loss",
    "dropout", "layer_norm", "batch_norm",
    # xg.linalg: cholesky, solve, triangular_solve, inv, lstsq, det, slogdet, ...
    "linalg",
    # devices: xg.Tensor / xg.tensor (arrays on the CPU or a GPU); xg.cuda: is_built, is_available, ...
    "Tensor", "tensor", "cuda",
    # convolution and pooling
    "conv1d", "conv2d", "conv3d", "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    # training toolkit: xg.init, xg.nn, xg.data modules; checkpoints; the fit loop
    "init", "nn", "data", "save", "load", "fit", "progress",
    # data-parallel training over MPI
    "distributed",
]


def __getattr__(name):
    # xg.sklearn imports scikit-learn and scipy: only when first used, so that `import xgrad` does not need them.
    if name == "sklearn":
        import importlib
        return importlib.import_module(".sklearn", __name__)
    raise AttributeError(f"module 'xgrad' has no attribute {name!r}")
