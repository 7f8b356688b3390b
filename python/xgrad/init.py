"""Parameter initializers: numpy arrays for ``g.param(name, value)``.

Each function takes the array's shape and returns a new numpy array of that
shape and ``dtype`` (float32 by default). Randomness comes from ``seed``: an
int (the same int always gives the same array), a ``numpy.random.Generator``
(draws continue from its state, so one generator can initialize a whole model
reproducibly), or None (fresh entropy)::

    rng = np.random.default_rng(0)
    w = g.param("fc1.weight", xg.init.kaiming_uniform((256, 784), nonlinearity="relu", seed=rng))

Fans and gains follow ``torch.nn.init``: a weight is laid out as PyTorch does
((out_features, in_features) for a linear layer, (out_channels,
in_channels / groups, kh, kw) for a convolution), so ``fan_in`` is
``shape[1] * prod(shape[2:])`` and ``fan_out`` is ``shape[0] * prod(shape[2:])``.
"""
import math

import numpy as np

__all__ = ["calculate_gain", "fan_in_and_fan_out", "zeros", "ones", "constant", "uniform", "normal",
           "xavier_uniform", "xavier_normal", "glorot_uniform", "glorot_normal", "kaiming_uniform", "kaiming_normal",
           "he_uniform", "he_normal", "as_generator"]


def as_generator(seed=None):
    """A numpy Generator from an int, a Generator (returned as is, so draws continue) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")


def _shape(shape):
    return (int(shape),) if np.isscalar(shape) else tuple(int(d) for d in shape)


def _finish(values, dtype):
    # Draws are made in float64 and rounded once, so float32 and float64 arrays from one seed agree.
    return np.ascontiguousarray(values, dtype=dtype)


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    linear_like = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                   "conv_transpose3d", "sigmoid")
    if nonlinearity in linear_like:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(shape):
    """(fan_in, fan_out) of a weight of this shape, as PyTorch computes them (needs 2 or more axes)."""
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a shape with at least 2 axes, got {shape}")
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape, mode):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


# The constant initializers take (and ignore) seed so that every initializer can be called alike,
# e.g. by a layer as init(shape, dtype=..., seed=...).
def zeros(shape, *, dtype=np.float32, seed=None):
    return np.zeros(_shape(shape), dtype)


def ones(shape, *, dtype=np.float32, seed=None):
    return np.ones(_shape(shape), dtype)


def constant(shape, value, *, dtype=np.float32, seed=None):
    return np.full(_shape(shape), value, dtype)


def uniform(shape, low=0.0, high=1.0, *, dtype=np.float32, seed=None):
    """Values drawn uniformly from [low, high)."""
    return _finish(as_generator(seed).uniform(low, high, _shape(shape)), dtype)


def normal(shape, mean=0.0, std=1.0, *, dtype=np.float32, seed=None):
    """Values drawn from N(mean, std**2)."""
    return _finish(as_generator(seed).normal(mean, std, _shape(shape)), dtype)


def xavier_uniform(shape, gain=1.0, *, dtype=np.float32, seed=None):
    """Glorot & Bengio (2010): U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -bound, bound, dtype=dtype, seed=seed)


def xavier_normal(shape, gain=1.0, *, dtype=np.float32, seed=None):
    """Glorot & Bengio (2010): N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype, seed=seed)


def kaiming_uniform(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, dtype=np.float32, seed=None):
    """He et al. (2015): U(-b, b) with b = gain * sqrt(3 / fan); torch.nn.init.kaiming_uniform_'s defaults.

    ``a`` is the negative slope of a leaky ReLU (used only with nonlinearity='leaky_relu', where a=0 is a ReLU).
    """
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(shape, mode))
    return uniform(shape, -bound, bound, dtype=dtype, seed=seed)


def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", *, dtype=np.float32, seed=None):
    """He et al. (2015): N(0, std**2) with std = gain / sqrt(fan); torch.nn.init.kaiming_normal_'s defaults."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return normal(shape, 0.0, std, dtype=dtype, seed=seed)


glorot_uniform = xavier_uniform
glorot_normal = xavier_normal
he_uniform = kaiming_uniform
he_normal = kaiming_normal
