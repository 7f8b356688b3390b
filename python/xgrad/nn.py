"""Layers built into a Graph: Linear, MLP, Conv1d / Conv2d / Conv3d, BatchNorm, LayerNorm, Embedding, Dropout, Sequential.

A layer creates its params in a graph when it is constructed and adds op
nodes each time it is called on a node::

    g = xg.Graph()
    x = g.input("x", (None, 784))
    t = g.input("t", (None,), dtype=xg.int64)
    model = xg.nn.MLP(g, [784, 256, 10], activation="relu", dropout=0.2, name="mlp", seed=0)
    logits = model(x)
    loss = xg.cross_entropy(logits, t)
    grads = xg.grad(loss, model.params)
    sgd = [(p, p - 0.1 * gp) for p, gp in zip(model.params, grads)]
    step = g.compile(loss, updates=sgd + model.updates())   # model.updates(): batch-norm running statistics
    predict = g.compile(logits)                              # no updates: evaluation never changes the params
    step(x=X, t=T, training=True)
    predict(x=X, training=False)

Params are named "<layer name>.<param>" ("mlp.0.weight"), which is what
checkpoints (xg.save / xg.load) key on; a layer gets a fresh default name
("linear0", "linear1", ...) when none is given. Weights use PyTorch's layouts
and default initializations, so torch weights can be copied in as they are.

Train / eval switch: Dropout and BatchNorm read the graph's bool scalar input
"training" (``training_flag(g)``, created on first use) at every run, so one
compiled program serves both modes: feed ``training=True`` to train and
``training=False`` to evaluate (``xg.fit`` feeds True for you). Pass
``training=True`` or ``False`` to a layer's constructor to fix its mode when
the graph is built instead.

Batch norm's running statistics are params too (listed by ``buffers``, not by
``params``, so optimizers leave them alone); each call of a BatchNorm layer
records the (running stat, new value) pairs that ``updates()`` returns for
``compile(..., updates=...)``. In eval mode those updates keep the old values.
"""
import math

import numpy as np

from . import _xgrad as _x
from . import init as _init

__all__ = ["Module", "Linear", "MLP", "Conv1d", "Conv2d", "Conv3d", "BatchNorm", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Embedding",
           "Dropout", "Sequential", "Flatten", "Lambda", "ParamList", "training_flag", "activation"]

TRAINING_INPUT = "training"


def training_flag(graph):
    """The graph's bool scalar input "training" that Dropout and BatchNorm read per run, created on first use."""
    try:
        node = graph.node(TRAINING_INPUT)
    except ValueError:  # not there yet
        return graph.input(TRAINING_INPUT, (), dtype=np.bool_)
    if node.kind != "input" or node.shape != () or node.dtype != np.bool_:
        raise ValueError(f"the graph's node '{TRAINING_INPUT}' is a {node.kind} of {node.dtype} {node.shape}; "
                         "layers need it to be a bool scalar input (the train/eval switch)")
    return node


_ACTIVATIONS = {"relu": _x.relu, "tanh": _x.tanh, "sigmoid": _x.sigmoid, "gelu": _x.gelu, "elu": _x.elu,
                "leaky_relu": _x.leaky_relu, "softplus": _x.softplus}


def activation(spec):
    """A callable node -> node from a name ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu", "softplus"),
    a callable (returned as is), or None / "linear" / "identity" (None: no activation)."""
    if spec is None or spec in ("linear", "identity"):
        return None
    if callable(spec):
        return spec
    try:
        return _ACTIVATIONS[spec]
    except (KeyError, TypeError):
        raise ValueError(f"unknown activation {spec!r}; use one of {sorted(_ACTIVATIONS)}, a callable or None") from None


_get_activation = activation  # MLP's `activation` argument shadows the function


def _initializer(spec, default):
    """An initializer f(shape, dtype=, seed=) from a name in xg.init, a callable, or None (the layer's default)."""
    if spec is None:
        return default
    if callable(spec):
        return spec
    f = getattr(_init, spec, None) if isinstance(spec, str) else None
    if f is None or spec not in _init.__all__ or spec in ("calculate_gain", "fan_in_and_fan_out", "as_generator"):
        raise ValueError(f"unknown initializer {spec!r}")
    return f


def _torch_default(shape, *, dtype, seed):
    # torch.nn.Linear / Conv2d: kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    return _init.kaiming_uniform(shape, a=math.sqrt(5), dtype=dtype, seed=seed)


def _bias_default(fan_in):
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return lambda shape, *, dtype, seed: _init.uniform(shape, -bound, bound, dtype=dtype, seed=seed)


def _unique_prefix(graph, base):
    """The first "<base><i>" that no node name of the graph starts with (as "<base><i>." or exactly)."""
    names = {p.name for p in graph.params} | {n.name for n in graph.inputs}
    i = 0
    while any(n == f"{base}{i}" or n.startswith(f"{base}{i}.") for n in names):
        i += 1
    return f"{base}{i}"


class ParamList(list):
    """A list of param nodes that can also be called, so ``model.params`` and ``model.params()`` both work."""

    def __call__(self):
        return self


class Module:
    """Base of all layers: owns params and buffers in one graph, and child modules.

    Subclasses create params with ``self._param`` / ``self._buffer`` in ``__init__`` and implement ``forward``.
    A Module attribute set on a module is registered as its child (as in torch.nn).
    """

    _default_base = "module"

    def __init__(self, graph=None, name=None, seed=None):
        object.__setattr__(self, "_children", [])
        self.graph = graph
        self._own_params, self._own_buffers, self._updates = [], [], []
        self.rng = _init.as_generator(seed)
        if graph is not None and name is None:
            name = _unique_prefix(graph, self._default_base)
        self.name = name

    def __setattr__(self, key, value):
        if isinstance(value, Module) and value not in self._children:
            self._children.append(value)
        object.__setattr__(self, key, value)

    def _param(self, local, value):
        p = self.graph.param(f"{self.name}.{local}", value)
        self._own_params.append(p)
        return p

    def _buffer(self, local, value):
        p = self.graph.param(f"{self.name}.{local}", value)
        self._own_buffers.append(p)
        return p

    def modules(self):
        """This module and all modules below it, depth first, each once."""
        # An explicit stack, not a recursive closure: a closure that calls itself is a reference cycle, and
        # the modules it saw (with their params' GPU memory) would wait for the garbage collector.
        seen, out, stack = set(), [], [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            out.append(m)
            stack.extend(reversed(m._children))
        return out

    def _collect(self, attr):
        seen, out = set(), ParamList()
        for m in self.modules():
            for p in getattr(m, attr):
                if p.name not in seen:  # a layer shared by two containers counts once
                    seen.add(p.name)
                    out.append(p)
        return out

    @property
    def params(self):
        """The trainable param nodes of this module and its children (callable too: ``params()``)."""
        return self._collect("_own_params")

    @property
    def buffers(self):
        """Non-trainable state params (batch norm's running statistics); saved in checkpoints, not optimized."""
        return self._collect("_own_buffers")

    def updates(self):
        """(param, new value) pairs that the last calls of the layers recorded (running statistics), to add to
        ``compile(..., updates=...)``. Each layer keeps only its latest call's pairs."""
        out = []
        for m in self.modules():
            out.extend(m._updates)
        return out

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __repr__(self):
        extra = self.extra_repr()
        body = "".join(f"\n  {line}" for c in self._children for line in repr(c).splitlines())
        args = ", ".join(a for a in (repr(self.name) if self.name is not None else "", extra) if a)
        return f"{type(self).__name__}({args}){body}"

    def extra_repr(self):
        return ""


class Linear(Module):
    """y = x @ weight.T + bias with weight (out_features, in_features), as torch.nn.Linear (same default init).

    ``init`` / ``bias_init`` take an xg.init name ("xavier_uniform", "kaiming_normal", ...) or a callable
    f(shape, dtype=, seed=); ``seed`` an int or numpy Generator. x may have any number of leading axes.
    """

    _default_base = "linear"

    def __init__(self, graph, in_features, out_features, bias=True, *, name=None, seed=None, dtype=np.float32,
                 init=None, bias_init=None):
        super().__init__(graph, name, seed)
        self.in_features, self.out_features = int(in_features), int(out_features)
        w = _initializer(init, _torch_default)((self.out_features, self.in_features), dtype=dtype, seed=self.rng)
        self.weight = self._param("weight", w)
        self.bias = None
        if bias:
            b = _initializer(bias_init, _bias_default(self.in_features))((self.out_features,), dtype=dtype, seed=self.rng)
            self.bias = self._param("bias", b)

    def forward(self, x):
        y = x @ self.weight.T  # a transpose flag for BLAS, not a copy
        return y + self.bias if self.bias is not None else y

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"


class Dropout(Module):
    """Zeroes elements with probability p during training (a fresh mask every run) and scales the rest by
    1/(1-p); the identity in eval mode. ``training``: None (the graph's per-run switch) or a fixed bool."""

    def __init__(self, p=0.5, *, training=None, seed=None):
        super().__init__(None, None, seed)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.training = float(p), training
        # The op takes an integer seed; draw it from the layer's generator so seeded models are reproducible.
        self.seed = None if seed is None else int(self.rng.integers(2 ** 63))

    def forward(self, x):
        if self.p == 0.0 or self.training is False:
            return x
        mode = training_flag(x.graph) if self.training is None else True
        return _x.dropout(x, self.p, training=mode, seed=self.seed)

    def extra_repr(self):
        return f"p={self.p}"


class Lambda(Module):
    """A function node -> node as a layer (activations, reshapes) inside Sequential."""

    def __init__(self, fn, label=None):
        super().__init__()
        self.fn, self.label = fn, label or getattr(fn, "__name__", "fn")

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.label


class Flatten(Module):
    """Merges axes start_axis..end_axis (default: all but the batch axis), as torch.nn.Flatten."""

    def __init__(self, start_axis=1, end_axis=-1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x):
        return _x.flatten(x, self.start_axis, self.end_axis)


class Sequential(Module):
    """Layers (Modules or plain callables such as xg.relu) applied in order."""

    def __init__(self, *layers, name=None):
        super().__init__(None, name)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = [l if isinstance(l, Module) else Lambda(l) for l in layers]
        for l in self.layers:
            self._children.append(l)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)


class MLP(Sequential):
    """Linear layers of the given sizes ([in, hidden..., out]) with an activation and dropout after each one.

    ``activation``: one activation for every hidden layer (the output layer stays linear), or a list with one
    entry per Linear layer (len(sizes) - 1; None for none). ``dropout``: a probability after each hidden
    activation, or a list of one per hidden layer. Linear layers are named "<name>.0", "<name>.1", ...;
    all initial weights and dropout seeds come from ``seed``.
    """

    _default_base = "mlp"

    def __init__(self, graph, sizes, activation="relu", dropout=0.0, *, name=None, seed=None, dtype=np.float32,
                 init=None):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least [in, out], got {sizes}")
        n = len(sizes) - 1
        if isinstance(activation, (list, tuple)):
            acts = list(activation)
        else:
            _get_activation(activation)  # an unknown name is an error even with no hidden layer to use it
            acts = [activation] * (n - 1) + [None]
        if len(acts) != n:
            raise ValueError(f"MLP: {n} linear layers but {len(acts)} activations")
        drops = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * (n - 1)
        if len(drops) != n - 1:
            raise ValueError(f"MLP: {n - 1} hidden layers but {len(drops)} dropout probabilities")
        name = name if name is not None else _unique_prefix(graph, self._default_base)
        rng = _init.as_generator(seed)
        # Dropout seeds come from one draw made first, so the weights do not depend on where dropout goes.
        drop_seed = int(rng.integers(2 ** 62))
        layers = []
        for k in range(n):
            layers.append(Linear(graph, sizes[k], sizes[k + 1], name=f"{name}.{k}", seed=rng, dtype=dtype, init=init))
            act = _get_activation(acts[k])
            if act is not None:
                layers.append(Lambda(act))
            if k < n - 1 and drops[k]:
                layers.append(Dropout(drops[k], seed=drop_seed + k))
        super().__init__(*layers, name=name)
        self.graph, self.sizes = graph, sizes

    def extra_repr(self):
        return "-".join(map(str, self.sizes))


def _ntuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


class _ConvNd(Module):
    """Convolution over `_dims` spatial dims with weight (C_out, C_in / groups, *kernel), as torch.nn.ConvNd
    (same default init)."""

    _default_base = "conv"
    _dims = 2

    def __init__(self, graph, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, name=None, seed=None, dtype=np.float32, init=None, bias_init=None):
        super().__init__(graph, name, seed)
        kind = type(self).__name__
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{kind}: channels {in_channels} -> {out_channels} are not divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _ntuple(kernel_size, self._dims)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = self._param("weight", _initializer(init, _torch_default)(shape, dtype=dtype, seed=self.rng))
        self.bias = None
        if bias:
            fan_in = _init.fan_in_and_fan_out(shape)[0]
            b = _initializer(bias_init, _bias_default(fan_in))((out_channels,), dtype=dtype, seed=self.rng)
            self.bias = self._param("bias", b)

    def forward(self, x):
        op = {1: _x.conv1d, 2: _x.conv2d, 3: _x.conv3d}[self._dims]
        return op(x, self.weight, self.bias, stride=self.stride, padding=self.padding, dilation=self.dilation,
                  groups=self.groups)

    def extra_repr(self):
        return f"{self.in_channels} -> {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"


class Conv1d(_ConvNd):
    """1-D convolution of (N, C_in, L) with weight (C_out, C_in / groups, k), as torch.nn.Conv1d."""
    _dims = 1


class Conv2d(_ConvNd):
    """2-D convolution of (N, C_in, H, W) with weight (C_out, C_in / groups, kh, kw), as torch.nn.Conv2d
    (same default init); padding takes an int, a pair, "valid" or "same"."""
    _dims = 2


class Conv3d(_ConvNd):
    """3-D convolution of (N, C_in, D, H, W) with weight (C_out, C_in / groups, kd, kh, kw), as torch.nn.Conv3d;
    C, D, H and W must be static."""
    _dims = 3


class BatchNorm(Module):
    """Per-channel normalization of (N, C) or (N, C, ...) inputs, as torch.nn.BatchNorm1d / 2d.

    Training uses the batch's statistics and moves the running ones (mean, unbiased variance) by ``momentum``;
    evaluation uses the running ones. ``training``: None (the graph's per-run switch) or a fixed bool. The
    running-statistics updates of the latest call are in ``updates()``: pass them to compile.
    """

    _default_base = "bn"

    def __init__(self, graph, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 name=None, dtype=np.float32, training=None):
        super().__init__(graph, name)
        self.num_features, self.eps, self.momentum, self.training = int(num_features), eps, momentum, training
        c = self.num_features
        self.weight = self._param("weight", np.ones(c, dtype)) if affine else None
        self.bias = self._param("bias", np.zeros(c, dtype)) if affine else None
        self.running_mean = self.running_var = None
        if track_running_stats:
            self.running_mean = self._buffer("running_mean", np.zeros(c, dtype))
            self.running_var = self._buffer("running_var", np.ones(c, dtype))

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{self.name}: expects (N, {self.num_features}, ...) inputs, got {x.shape}")
        if self.running_mean is None:  # batch statistics always, as torch with track_running_stats=False
            self._updates = []
            return _x.batch_norm(x, self.weight, self.bias, training=True, eps=self.eps)
        if self.training is not None:  # the mode is fixed now: the C++ op builds just that branch
            ups = []
            y = _x.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, training=bool(self.training),
                              momentum=self.momentum, eps=self.eps, updates=ups if self.training else None)
            self._updates = ups
            return y
        return self._switched(x, training_flag(x.graph))

    def _switched(self, x, flag):
        # The mode is a run-time bool: choose the (C,) statistics with where, so the full-size normalization is
        # computed once; the batch statistics cost one reduction pass even in eval mode.
        axes = (0,) + tuple(range(2, x.ndim))
        c = self.num_features
        batch_mean = _x.reshape(_x.mean(x, axes, True), (c,))
        batch_var = _x.var(x, axes)
        unbiased_var = _x.var(x, axes, ddof=1.0)  # shares the sum of squares with batch_var
        mu = _x.where(flag, batch_mean, self.running_mean)
        var = _x.where(flag, batch_var, self.running_var)
        chan = (c,) + (1,) * (x.ndim - 2)
        y = (x - _x.reshape(mu, chan)) * _x.rsqrt(_x.reshape(var, chan) + self.eps)
        if self.weight is not None:
            y = y * _x.reshape(self.weight, chan) + _x.reshape(self.bias, chan)
        m = self.momentum
        rm, rv = self.running_mean, self.running_var
        self._updates = [
            (rm, _x.stop_gradient(_x.where(flag, rm * (1.0 - m) + batch_mean * m, rm))),
            (rv, _x.stop_gradient(_x.where(flag, rv * (1.0 - m) + unbiased_var * m, rv))),
        ]
        return y

    def extra_repr(self):
        return f"{self.num_features}, momentum={self.momentum}"


BatchNorm1d = BatchNorm
BatchNorm2d = BatchNorm


class LayerNorm(Module):
    """Normalization over the trailing ``normalized_shape`` axes with an elementwise affine, as torch.nn.LayerNorm."""

    _default_base = "ln"

    def __init__(self, graph, normalized_shape, eps=1e-5, elementwise_affine=True, *, name=None, dtype=np.float32):
        super().__init__(graph, name)
        self.normalized_shape = _init._shape(normalized_shape)
        self.eps = eps
        self.weight = self._param("weight", np.ones(self.normalized_shape, dtype)) if elementwise_affine else None
        self.bias = self._param("bias", np.zeros(self.normalized_shape, dtype)) if elementwise_affine else None

    def forward(self, x):
        return _x.layer_norm(x, self.normalized_shape, self.weight, self.bias, eps=self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}"


class Embedding(Module):
    """A lookup table (num_embeddings, embedding_dim) indexed by int64 ids; N(0, 1) init as torch.nn.Embedding."""

    _default_base = "embedding"

    def __init__(self, graph, num_embeddings, embedding_dim, *, name=None, seed=None, dtype=np.float32, init=None):
        super().__init__(graph, name, seed)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        shape = (self.num_embeddings, self.embedding_dim)
        self.weight = self._param("weight", _initializer(init, _init.normal)(shape, dtype=dtype, seed=self.rng))

    def forward(self, ids):
        return _x.embedding(self.weight, ids)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
