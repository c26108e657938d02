r"""Weight initialisation, as ``torch.nn.init``.

Every function fills a tensor **in place** (its array is overwritten, so views and
optimizers that hold it see the new values), records nothing in the autograd graph,
draws from :func:`minidl.random.default_generator` (or the ``generator`` given), and
returns the tensor.

Fans
----
For a weight of shape ``(out, in, *kernel)`` (Linear: ``(out, in)``; Conv2d:
``(out_channels, in_channels / groups, kH, kW)``):

.. math::

    \text{fan\_in} = \text{in} \cdot \prod \text{kernel}, \qquad
    \text{fan\_out} = \text{out} \cdot \prod \text{kernel}.

Xavier/Glorot keeps the variance of activations and gradients equal across layers for
linear or tanh-like units: :math:`\mathrm{Var}(W) = g^2 \cdot 2 / (\text{fan\_in} +
\text{fan\_out})`.  Kaiming/He accounts for ReLU halving the variance:
:math:`\mathrm{Var}(W) = g^2 / \text{fan}` with gain :math:`g = \sqrt{2}` for ReLU.
A uniform :math:`U(-b, b)` has variance :math:`b^2 / 3`, hence the :math:`\sqrt{3}` in
the uniform bounds.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from minidl import random as _random
from minidl.backend import array_module

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]


# ---------------------------------------------------------------------- helpers


def _generator(generator):
    return _random.default_generator() if generator is None else generator


def _write(tensor, values):
    """Overwrite ``tensor``'s array with host ``values`` (cast to its dtype, moved to its
    device), in place."""
    target = tensor.data
    xp = array_module(target)
    target[...] = xp.asarray(values, dtype=target.dtype)
    return tensor


def _check_float(name, tensor):
    if tensor.dtype.kind not in "fc":
        raise TypeError(
            f"{name}: expected a floating-point tensor, got {tensor.dtype} "
            f"(shape {tuple(tensor.shape)})"
        )


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *receptive_field)``."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(got shape {shape})"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _is_empty(name, tensor):
    if 0 in tuple(tensor.shape):
        warnings.warn(f"{name}: initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


# ---------------------------------------------------------------------- gains


def calculate_gain(nonlinearity, param=None):
    r"""The recommended gain :math:`g` for a nonlinearity (the factor that keeps the
    activations' variance stable through layers).

    ============== ==================================
    nonlinearity   gain
    ============== ==================================
    linear, conv*  1
    sigmoid        1
    tanh           5/3
    relu           :math:`\sqrt{2}`
    leaky_relu     :math:`\sqrt{2 / (1 + s^2)}`, s = ``param`` (default 0.01)
    selu           3/4
    ============== ==================================

    Examples
    --------
    >>> from minidl.nn import init
    >>> round(init.calculate_gain("relu"), 4)
    1.4142
    """
    linear_fns = [
        "linear", "conv1d", "conv2d", "conv3d",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    ]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


# ---------------------------------------------------------------------- simple fills


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with values drawn from :math:`U(a, b)`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn import init
    >>> w = init.uniform_(minidl.empty(100), -0.1, 0.1)
    >>> bool((w.abs() <= 0.1).all())
    True
    """
    _check_float("uniform_", tensor)
    return _write(tensor, _generator(generator).uniform(a, b, size=tuple(tensor.shape)))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    r"""Fill with values drawn from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    _check_float("normal_", tensor)
    return _write(tensor, _generator(generator).normal(mean, std, size=tuple(tensor.shape)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    r"""Fill with values from :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to
    ``[a, b]`` (``a``, ``b`` are absolute bounds, not numbers of standard deviations).

    NOTE: drawn by rejection (redraw what falls outside), which is exact.  When ``[a, b]``
    holds little of the normal's mass but is narrow, proposals are uniform on ``[a, b]``
    accepted with probability :math:`\phi(x) / \max_{[a,b]} \phi` instead.  So, unlike
    PyTorch's inverse-CDF method, a mean far outside ``[a, b]`` is still sampled exactly
    (PyTorch warns there; minidl does not need to).
    """
    _check_float("trunc_normal_", tensor)
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    rng = _generator(generator)
    n = int(np.prod(tensor.shape))
    lo, hi = (a - mean) / std, (b - mean) / std  # bounds in standard units

    def cdf(z):
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

    normal_rate = cdf(hi) - cdf(lo)
    peak = 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))  # where the density is highest
    width = hi - lo
    uniform_rate = (normal_rate * math.sqrt(2 * math.pi) / (width * math.exp(-peak**2 / 2))
                    if math.isfinite(width) else 0.0)
    rate = max(normal_rate, uniform_rate)
    if rate < 1e-6:
        raise ValueError(
            f"trunc_normal_: the interval [{a}, {b}] holds too little of N({mean}, {std}^2) "
            "to sample from"
        )
    values = np.empty(n)
    filled = 0
    while filled < n:
        want = n - filled
        draw = int(want / rate * 1.1) + 16
        if normal_rate >= uniform_rate:
            z = rng.standard_normal(draw)
            z = z[(z >= lo) & (z <= hi)]
        else:
            z = rng.uniform(lo, hi, draw)
            z = z[rng.random(draw) < np.exp((peak**2 - z**2) / 2)]
        take = min(want, z.size)
        values[filled:filled + take] = z[:take]
        filled += take
    values = np.clip(mean + std * values, a, b)  # clip guards against rounding at the ends
    return _write(tensor, values.reshape(tuple(tensor.shape)))


def constant_(tensor, val):
    """Fill with the constant ``val``."""
    tensor.data[...] = val
    return tensor


def ones_(tensor):
    """Fill with ones."""
    return constant_(tensor, 1)


def zeros_(tensor):
    """Fill with zeros."""
    return constant_(tensor, 0)


def eye_(tensor):
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal, rectangular ok)."""
    if tensor.ndim != 2:
        raise ValueError(
            f"eye_: only tensors with 2 dimensions are supported, got shape {tuple(tensor.shape)}"
        )
    return _write(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups=1):
    """Fill a 3-, 4- or 5-D convolution weight so that the convolution is the identity
    (per group, as many channels as fit)."""
    dims = tensor.ndim
    if dims not in (3, 4, 5):
        raise ValueError(
            f"dirac_: only tensors with 3, 4, or 5 dimensions are supported, got shape "
            f"{tuple(tensor.shape)}"
        )
    shape = tuple(tensor.shape)
    if shape[0] % groups != 0:
        raise ValueError(f"dirac_: dim 0 ({shape[0]}) must be divisible by groups ({groups})")
    out_per_group = shape[0] // groups
    min_dim = min(out_per_group, shape[1])
    values = np.zeros(shape)
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min_dim):
            values[(g * out_per_group + d, d) + centre] = 1
    return _write(tensor, values)


# ---------------------------------------------------------------------- scaled inits


def xavier_uniform_(tensor, gain=1.0, generator=None):
    r"""Glorot uniform: :math:`U(-b, b)` with
    :math:`b = g \sqrt{6 / (\text{fan\_in} + \text{fan\_out})}`."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    r"""Glorot normal: :math:`\mathcal{N}(0, \sigma^2)` with
    :math:`\sigma = g \sqrt{2 / (\text{fan\_in} + \text{fan\_out})}`."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    r"""He uniform: :math:`U(-b, b)` with :math:`b = g \sqrt{3 / \text{fan}}`.

    Parameters
    ----------
    tensor : Tensor
        At least 2-D, shaped ``(out, in, *kernel)``.
    a : float, default 0
        Negative slope of the leaky ReLU that follows (0 for ReLU); used in the gain.
    mode : {"fan_in", "fan_out"}
        ``fan_in`` preserves the forward pass' variance, ``fan_out`` the backward's.
    nonlinearity : str, default "leaky_relu"
        Passed to :func:`calculate_gain` with ``param=a``.

    Examples
    --------
    ``nn.Linear`` uses ``a = sqrt(5)``, giving :math:`b = 1 / \sqrt{\text{fan\_in}}`:

    >>> import math, minidl
    >>> from minidl.nn import init
    >>> w = init.kaiming_uniform_(minidl.empty(64, 16), a=math.sqrt(5))
    >>> bool((w.abs() <= 0.25).all())
    True
    """
    if _is_empty("kaiming_uniform_", tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    r"""He normal: :math:`\mathcal{N}(0, \sigma^2)` with :math:`\sigma = g / \sqrt{\text{fan}}`.

    Arguments as :func:`kaiming_uniform_`.
    """
    if _is_empty("kaiming_normal_", tensor):
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor, gain=1, generator=None):
    r"""Fill with a (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013).

    The tensor is viewed as a matrix of shape ``(shape[0], prod(shape[1:]))``; its rows
    (or columns, whichever are fewer) are orthonormal, so :math:`W W^\top = g^2 I` when
    rows <= columns.  Made from the QR decomposition of a Gaussian matrix, with the signs
    of R's diagonal folded into Q so that the result is uniformly distributed.
    """
    if tensor.ndim < 2:
        raise ValueError(
            "orthogonal_: only tensors with 2 or more dimensions are supported, got shape "
            f"{tuple(tensor.shape)}"
        )
    if 0 in tuple(tensor.shape):
        return tensor
    rows = tensor.shape[0]
    cols = int(np.prod(tensor.shape)) // rows
    flat = _generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, (gain * q).reshape(tuple(tensor.shape)))
