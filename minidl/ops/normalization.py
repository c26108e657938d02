r"""Normalisation: ``batch_norm``, ``layer_norm``, ``group_norm``.

All three compute, over some set :math:`S` of :math:`M` elements (a channel of the whole
batch, one sample's trailing dimensions, one group of channels of one sample),

.. math::

    \mu = \frac{1}{M}\sum_{i \in S} x_i, \qquad
    \sigma^2 = \frac{1}{M}\sum_{i \in S} (x_i - \mu)^2, \qquad
    \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    y_i = \gamma\,\hat x_i + \beta,

with the *biased* variance (divide by :math:`M`).  They differ only in what :math:`S` is
and in which axis :math:`\gamma, \beta` follow.

The fused backward
------------------
Writing :math:`g_i = \gamma\,\partial L/\partial y_i` and :math:`r = 1/\sqrt{\sigma^2+\epsilon}`,
differentiating through :math:`\mu` and :math:`\sigma^2` gives, for every element of
:math:`S`,

.. math::

    \frac{\partial L}{\partial x_i} = \frac{r}{M}\Big(M g_i - \sum_{j\in S} g_j
        - \hat x_i \sum_{j\in S} g_j \hat x_j\Big),

and :math:`\partial L/\partial\gamma = \sum \frac{\partial L}{\partial y}\hat x`,
:math:`\partial L/\partial\beta = \sum \frac{\partial L}{\partial y}` (summed over every
position that shares the parameter).  Two reductions and one elementwise pass: this is
why normalisation is one Function with a hand-written backward rather than a chain of
``mean``, ``sub``, ``pow``, ``sqrt`` and ``div`` nodes, each of which would keep its own
activation-sized array for backward.

Kernels
-------
The array work lives in plain functions registered in :mod:`minidl.backend` under
``batch_norm_forward``/``batch_norm_backward``, ``layer_norm_forward``/
``layer_norm_backward`` and ``group_norm_forward``/``group_norm_backward``, so that
compiled versions with the same signatures can replace the NumPy references.  The
references are vectorised NumPy (or CuPy: ``xp`` code), with no Python loop over the
data.

Numerics in float32
-------------------
- The variance is the *two-pass* form :math:`\frac1M\sum (x-\mu)^2`, computed on the
  centred array that the normalisation needs anyway, never :math:`E[x^2] - E[x]^2`,
  which loses every digit in float32 when :math:`|\mu| \gg \sigma`.
- ``batch_norm`` adds the ``N * C`` row sums in float64 (PyTorch accumulates in double on
  the CPU too) and *corrects* the mean with a second look at the centred values (the
  corrected two-pass algorithm of Chan, Golub and LeVeque): the float32 row sums of a
  large offset are off by about :math:`\epsilon |\mu| \sqrt{L}`, and the mean of the
  centred values measures exactly that.  What rounding the mean to float32 loses is
  folded into the per-channel shift, so even a channel at 1000 with std 0.01 normalises
  to float32 precision (PyTorch's float32 kernel, which folds the mean into
  ``x * scale + shift``, is off by ~4e-3 there).
- ``layer_norm``/``group_norm`` sum each row pairwise in the input's dtype (NumPy's
  pairwise summation along contiguous memory), as accurate as PyTorch's float32 kernels.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minidl import backend
from minidl.autograd import Function
from minidl.backend import array_module

__all__ = ["batch_norm", "layer_norm", "group_norm"]

# statistics are accumulated and kept in float64 whatever the input dtype
_ACC = np.float64


# ----------------------------------------------------------------------------- helpers


def _shape(t):
    return tuple(int(s) for s in t.shape)


def _check_tensor(op, name, t, allow_none=True):
    from minidl.tensor import Tensor

    if t is None:
        if allow_none:
            return
        raise TypeError(f"{op}: {name} must be a Tensor, got None")
    if not isinstance(t, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")


def _check_float_input(op, x):
    _check_tensor(op, "input", x, allow_none=False)
    if x.dtype.kind != "f":
        raise TypeError(
            f"{op}: expected a floating-point input, got {x.dtype} (input shape {_shape(x)}); "
            "convert it with .float()"
        )


def _check_param(op, name, t, shape, x):
    """``t`` is None, or a Tensor of exactly ``shape`` and of the input's dtype."""
    if t is None:
        return
    _check_tensor(op, name, t)
    if _shape(t) != tuple(shape):
        raise ValueError(
            f"{op}: {name} must have shape {tuple(shape)} to match input shape {_shape(x)}, "
            f"got {_shape(t)}"
        )
    if t.dtype != x.dtype:
        raise TypeError(
            f"{op}: {name} dtype {t.dtype} does not match input dtype {x.dtype} "
            f"(input shape {_shape(x)}); cast the input (x.float() / x.double()) or the "
            "model (model.float() / model.double())"
        )


def _row(coefficient, dtype):
    """A per-row (or per-channel) float64 vector as a column in the data's dtype.

    NOTE: mixing a float64 vector into float32 arrays would silently promote the whole
    activation to float64, so every coefficient is cast to the data's dtype first.
    """
    return coefficient.astype(dtype, copy=False)[:, None]


def _channel_sum(a):
    """:math:`\\sum_{n,l} a_{ncl}` of an ``(N, C, L)`` array, in float64: shape ``(C,)``."""
    if a.shape[2] == 1:
        return a[:, :, 0].sum(axis=0, dtype=_ACC)
    xp = array_module(a)
    # the row sums run over contiguous memory in the input's dtype (fast); only the
    # N*C partial sums are added in float64
    return xp.einsum("ncl->nc", a).sum(axis=0, dtype=_ACC)


def _channel_dot(a, b):
    """:math:`\\sum_{n,l} a_{ncl} b_{ncl}` of two ``(N, C, L)`` arrays, in float64."""
    if a.shape[2] == 1:
        return (a[:, :, 0] * b[:, :, 0]).sum(axis=0, dtype=_ACC)
    xp = array_module(a)
    return xp.einsum("ncl,ncl->nc", a, b).sum(axis=0, dtype=_ACC)


def _row_dot(a, b):
    """:math:`\\sum_d a_{rd} b_{rd}` of two ``(R, D)`` arrays, as float64 ``(R,)``."""
    xp = array_module(a)
    return xp.einsum("rd,rd->r", a, b).astype(_ACC)


# ----------------------------------------------------------------------------- kernels


@backend.register_kernel("batch_norm_forward", "numpy")
def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    r"""Batch normalisation forward on an ``(N, C, L)`` array (reference kernel).

    Parameters
    ----------
    x : ndarray, shape ``(N, C, L)``
        The input with every spatial axis flattened into ``L`` (``L = 1`` for ``(N, C)``).
    weight, bias : ndarray ``(C,)`` or None
        :math:`\gamma` and :math:`\beta` (None: 1 and 0).
    running_mean, running_var : ndarray ``(C,)`` or None
        Updated **in place** when ``training``; used as the statistics otherwise.
    training : bool
        Normalise with the batch's statistics (and update the running ones) or with the
        running statistics.
    momentum : float
        :math:`\hat\mu \leftarrow (1-m)\hat\mu + m\mu`; the running variance takes the
        unbiased batch variance :math:`\sigma^2 M/(M-1)`, as in PyTorch.
    eps : float

    Returns
    -------
    out : ndarray, shape ``(N, C, L)``, dtype of ``x``
    save_mean, save_invstd : ndarray ``(C,)``, float64
        The :math:`\mu` and :math:`1/\sqrt{\sigma^2+\epsilon}` that normalised ``x``:
        all that :func:`batch_norm_backward` needs besides ``x``.
    """
    xp = array_module(x)
    n, c, length = x.shape
    count = n * length
    if training:
        # corrected two-pass statistics: centre on a first estimate of the mean, then
        # measure what is left.  The first estimate carries the rounding of large float32
        # row sums (about eps * |mean| * sqrt(L)); the mean of the centred values is that
        # error, found exactly because the centred values are small.
        mean = _channel_sum(x) / count
        centre = mean.astype(x.dtype)
        out = xp.subtract(x, _row(centre, x.dtype))  # centred input; becomes the output
        residual = _channel_sum(out) / count  # true mean - centre
        mean = centre.astype(_ACC) + residual
        var = _channel_dot(out, out) / count - residual**2  # biased: the one that normalises
        invstd = 1.0 / xp.sqrt(var + eps)
        if running_mean is not None:
            running_mean[...] = (1.0 - momentum) * running_mean + momentum * mean
        if running_var is not None:
            unbiased = var * (count / (count - 1)) if count > 1 else var
            running_var[...] = (1.0 - momentum) * running_var + momentum * unbiased
    else:
        mean = running_mean.astype(_ACC)
        invstd = 1.0 / xp.sqrt(running_var.astype(_ACC) + eps)
        centre = mean.astype(x.dtype)
        residual = mean - centre  # what rounding the mean to x's dtype lost
        out = xp.subtract(x, _row(centre, x.dtype))
    # y = (x - centre - residual) * scale + bias, the residual folded into the shift.
    # NOTE: PyTorch folds everything into y = x * scale + (bias - mean * scale), one pass
    # less, but in float32 that loses ~eps * |mean| / std when |mean| >> std.
    scale = invstd if weight is None else invstd * weight
    shift = -residual * scale if bias is None else bias - residual * scale
    out *= _row(scale, x.dtype)
    out += _row(shift, x.dtype)
    return out, mean, invstd


@backend.register_kernel("batch_norm_backward", "numpy")
def batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training, output_mask):
    r"""Batch normalisation backward on ``(N, C, L)`` arrays (reference kernel).

    Parameters
    ----------
    grad_out, x : ndarray, shape ``(N, C, L)``
    weight : ndarray ``(C,)`` or None
    save_mean, save_invstd : ndarray ``(C,)``
        As returned by :func:`batch_norm_forward`.
    training : bool
        Whether the forward used batch statistics (then the statistics depend on ``x``)
        or running statistics (then the layer is a per-channel affine map).
    output_mask : tuple of 3 bool
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.

    Returns
    -------
    grad_input : ndarray ``(N, C, L)`` or None
        Training: :math:`\frac{\gamma r}{M}(M g - \sum g - \hat x \sum g\hat x)` with
        :math:`g = \partial L/\partial y`; evaluation: :math:`\gamma r\, g`.
    grad_weight, grad_bias : ndarray ``(C,)`` (float64) or None
        :math:`\sum g \hat x` and :math:`\sum g` over batch and spatial positions.
    """
    xp = array_module(x)
    n, c, length = x.shape
    count = n * length
    need_input, need_weight, need_bias = output_mask
    dtype = x.dtype
    gamma_invstd = save_invstd if weight is None else save_invstd * weight
    # centre on the mean rounded to x's dtype; ``residual`` (float64) is what that
    # rounding lost, and is folded into per-channel constants below
    centre = save_mean.astype(dtype)
    residual = save_mean - centre

    grad_input = grad_weight = grad_bias = None
    sum_dy = _channel_sum(grad_out) if (need_bias or need_weight or need_input) else None
    if need_bias:
        grad_bias = sum_dy
    centred = None
    if need_weight or (need_input and training):
        centred = xp.subtract(x, _row(centre, dtype))
        # sum(dy * (x - mean)) per channel
        dot = _channel_dot(grad_out, centred) - residual * sum_dy
        if need_weight:
            grad_weight = dot * save_invstd  # sum(dy * x_hat)

    if need_input:
        if not training:
            grad_input = xp.multiply(grad_out, _row(gamma_invstd, dtype))
        else:
            # dx = gamma r (dy - mean(dy) - x_hat mean(dy x_hat)), x_hat = (x - mean) r,
            # built in the buffer of ``centred`` (no other activation-sized array):
            # x_hat mean(dy x_hat) = (centred - residual) * proj
            proj = dot * save_invstd**2 / count
            grad_input = centred
            grad_input *= _row(proj, dtype)
            xp.subtract(grad_out, grad_input, out=grad_input)
            grad_input -= _row(sum_dy / count - residual * proj, dtype)
            grad_input *= _row(gamma_invstd, dtype)
    return grad_input, grad_weight, grad_bias


def _rows_normalise(rows, eps):
    """Centre and scale each row of an ``(R, D)`` array: ``(x_hat, mean, invstd)``."""
    xp = array_module(rows)
    width = rows.shape[1]
    # pairwise summation along the contiguous row keeps float32 means accurate
    mean = rows.sum(axis=1).astype(_ACC) / width
    x_hat = xp.subtract(rows, _row(mean, rows.dtype))
    var = _row_dot(x_hat, x_hat) / width
    invstd = 1.0 / xp.sqrt(var + eps)
    x_hat *= _row(invstd, rows.dtype)
    return x_hat, mean, invstd


def _rows_recompute_x_hat(rows, mean, invstd):
    xp = array_module(rows)
    x_hat = xp.subtract(rows, _row(mean, rows.dtype))
    x_hat *= _row(invstd, rows.dtype)
    return x_hat


def _rows_grad_input(g, x_hat, invstd):
    r"""Per row: :math:`r\,(g - \overline{g} - \hat x\,\overline{g\hat x})`, in ``x_hat``'s
    buffer (which is overwritten)."""
    xp = array_module(g)
    width = g.shape[1]
    dtype = g.dtype
    mean_g = g.sum(axis=1).astype(_ACC) / width
    mean_g_x_hat = _row_dot(g, x_hat) / width
    grad = x_hat
    grad *= _row(mean_g_x_hat, dtype)
    xp.subtract(g, grad, out=grad)
    grad -= _row(mean_g, dtype)
    grad *= _row(invstd, dtype)
    return grad


@backend.register_kernel("layer_norm_forward", "numpy")
def layer_norm_forward(x, weight, bias, eps):
    r"""Layer normalisation of each row of an ``(R, D)`` array (reference kernel).

    Parameters
    ----------
    x : ndarray, shape ``(R, D)``
        Leading dimensions flattened into ``R``, the normalised ones into ``D``.
    weight, bias : ndarray ``(D,)`` or None
        Elementwise :math:`\gamma, \beta`, flattened.
    eps : float

    Returns
    -------
    out : ndarray ``(R, D)``
    mean, invstd : ndarray ``(R,)``, float64
    """
    out, mean, invstd = _rows_normalise(x, eps)
    if weight is not None:
        out *= weight
    if bias is not None:
        out += bias
    return out, mean, invstd


@backend.register_kernel("layer_norm_backward", "numpy")
def layer_norm_backward(grad_out, x, weight, mean, invstd, output_mask):
    r"""Layer normalisation backward on ``(R, D)`` arrays (reference kernel).

    Parameters
    ----------
    grad_out, x : ndarray ``(R, D)``
    weight : ndarray ``(D,)`` or None
    mean, invstd : ndarray ``(R,)``
        As returned by :func:`layer_norm_forward`.
    output_mask : tuple of 3 bool
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute.

    Returns
    -------
    grad_input : ndarray ``(R, D)`` or None
        :math:`r(g - \overline{g} - \hat x\,\overline{g \hat x})` per row, :math:`g = \gamma
        \odot \partial L/\partial y`.
    grad_weight, grad_bias : ndarray ``(D,)`` or None
        :math:`\sum_r \frac{\partial L}{\partial y}\hat x` and :math:`\sum_r
        \frac{\partial L}{\partial y}`.
    """
    xp = array_module(x)
    need_input, need_weight, need_bias = output_mask
    x_hat = _rows_recompute_x_hat(x, mean, invstd)
    grad_weight = xp.einsum("rd,rd->d", grad_out, x_hat) if need_weight else None
    grad_bias = grad_out.sum(axis=0) if need_bias else None
    grad_input = None
    if need_input:
        g = grad_out if weight is None else grad_out * weight
        grad_input = _rows_grad_input(g, x_hat, invstd)
    return grad_input, grad_weight, grad_bias


@backend.register_kernel("group_norm_forward", "numpy")
def group_norm_forward(x, num_groups, weight, bias, eps):
    r"""Group normalisation of an ``(N, C, L)`` array (reference kernel).

    Each sample's channels are split into ``num_groups`` consecutive groups of ``C / G``
    channels; a group's ``C / G * L`` values are normalised together, then channel ``c``
    is scaled by ``weight[c]`` and shifted by ``bias[c]``.

    Returns
    -------
    out : ndarray ``(N, C, L)``
    mean, invstd : ndarray ``(N * G,)``, float64, one per (sample, group) in C order
    """
    n, c, length = x.shape
    rows = x.reshape(n * num_groups, (c // num_groups) * length)
    x_hat, mean, invstd = _rows_normalise(rows, eps)
    out = x_hat.reshape(n, c, length)
    if weight is not None:
        out *= weight[:, None]
    if bias is not None:
        out += bias[:, None]
    return out, mean, invstd


@backend.register_kernel("group_norm_backward", "numpy")
def group_norm_backward(grad_out, x, num_groups, weight, mean, invstd, output_mask):
    r"""Group normalisation backward on ``(N, C, L)`` arrays (reference kernel).

    ``mean``/``invstd`` are those of :func:`group_norm_forward`; ``output_mask`` says
    which of ``(grad_input, grad_weight, grad_bias)`` to compute.  The input gradient is
    the per-group formula of :func:`layer_norm_backward` with :math:`g = \gamma_c
    \partial L/\partial y`; the parameter gradients are per channel (``(C,)``, float64).
    """
    n, c, length = x.shape
    need_input, need_weight, need_bias = output_mask
    shape_rows = (n * num_groups, (c // num_groups) * length)
    x_hat = _rows_recompute_x_hat(x.reshape(shape_rows), mean, invstd)
    grad_weight = _channel_dot(grad_out, x_hat.reshape(n, c, length)) if need_weight else None
    grad_bias = _channel_sum(grad_out) if need_bias else None
    grad_input = None
    if need_input:
        g = grad_out if weight is None else grad_out * weight[:, None]
        grad_input = _rows_grad_input(g.reshape(shape_rows), x_hat, invstd)
        grad_input = grad_input.reshape(n, c, length)
    return grad_input, grad_weight, grad_bias


# ----------------------------------------------------------------------------- Functions


def _unpack_params(fn, params):
    """Split the optional trailing inputs ``(weight?, bias?)`` as flagged on ``fn``."""
    params = list(params)
    weight = params.pop(0) if fn.has_weight else None
    bias = params.pop(0) if fn.has_bias else None
    return weight, bias


def _output_mask(fn):
    """``(input, weight, bias)`` gradient flags from ``needs_input_grad``."""
    needs = list(fn.needs_input_grad)
    need_input = needs.pop(0)
    need_weight = needs.pop(0) if fn.has_weight else False
    need_bias = needs.pop(0) if fn.has_bias else False
    return need_input, need_weight, need_bias


def _pack_grads(fn, grad_input, grad_weight, grad_bias, param_dtype):
    grads = [grad_input]
    if fn.has_weight:
        grads.append(None if grad_weight is None else grad_weight.astype(param_dtype))
    if fn.has_bias:
        grads.append(None if grad_bias is None else grad_bias.astype(param_dtype))
    return tuple(grads) if len(grads) > 1 else grads[0]


def _empty_forward(fn, x, weight, bias):
    """An input with no elements gives an empty output (as PyTorch) and zero gradients."""
    fn.empty = True
    fn.param_like = weight if weight is not None else bias
    return array_module(x).empty_like(x)


def _empty_backward(fn, grad):
    xp = array_module(grad)
    zeros = None if fn.param_like is None else xp.zeros_like(fn.param_like)
    return _pack_grads(fn, xp.zeros_like(grad), zeros, zeros, grad.dtype)


class _Normalization(Function):
    #: set by forward when the input has no elements
    empty = False


class BatchNorm(_Normalization):
    """Fused batch normalisation over axis 1 (see :func:`batch_norm`).

    Inputs: ``x`` and, when present, ``weight`` then ``bias``; the running statistics
    are keyword parameters (arrays updated in place, not graph inputs).
    """

    def forward(self, x, *params):
        weight, bias = _unpack_params(self, params)
        if x.size == 0:  # an empty batch: nothing to normalise, running stats untouched
            return _empty_forward(self, x, weight, bias)
        x3 = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
        device = backend.device_of(x)
        out, mean, invstd = backend.get_kernel("batch_norm_forward", device)(
            x3, weight, bias, self.running_mean, self.running_var, self.training,
            self.momentum, self.eps,
        )
        del self.running_mean, self.running_var  # the module owns them; backward does not
        self.x3, self.weight, self.mean, self.invstd = x3, weight, mean, invstd
        return out.reshape(x.shape)

    def backward(self, grad):
        if self.empty:
            return _empty_backward(self, grad)
        x3 = self.x3
        device = backend.device_of(x3)
        grad_input, grad_weight, grad_bias = backend.get_kernel("batch_norm_backward", device)(
            grad.reshape(x3.shape), x3, self.weight, self.mean, self.invstd, self.training,
            _output_mask(self),
        )
        if grad_input is not None:
            grad_input = grad_input.reshape(self.inputs[0].shape)
        return _pack_grads(self, grad_input, grad_weight, grad_bias, x3.dtype)


class LayerNorm(_Normalization):
    """Fused layer normalisation over the trailing ``D`` elements (see :func:`layer_norm`)."""

    def forward(self, x, *params):
        weight, bias = _unpack_params(self, params)
        if x.size == 0:
            return _empty_forward(self, x, weight, bias)
        width = math.prod(self.normalized_shape)
        x2 = x.reshape(-1, width)
        w = None if weight is None else weight.reshape(width)
        b = None if bias is None else bias.reshape(width)
        out, mean, invstd = backend.get_kernel("layer_norm_forward", backend.device_of(x))(
            x2, w, b, self.eps
        )
        self.x2, self.weight, self.mean, self.invstd = x2, w, mean, invstd
        return out.reshape(x.shape)

    def backward(self, grad):
        if self.empty:
            return _empty_backward(self, grad)
        x2 = self.x2
        grad_input, grad_weight, grad_bias = backend.get_kernel(
            "layer_norm_backward", backend.device_of(x2)
        )(grad.reshape(x2.shape), x2, self.weight, self.mean, self.invstd, _output_mask(self))
        if grad_input is not None:
            grad_input = grad_input.reshape(self.inputs[0].shape)
        shape = tuple(self.normalized_shape)
        if grad_weight is not None:
            grad_weight = grad_weight.reshape(shape)
        if grad_bias is not None:
            grad_bias = grad_bias.reshape(shape)
        return _pack_grads(self, grad_input, grad_weight, grad_bias, x2.dtype)


class GroupNorm(_Normalization):
    """Fused group normalisation over ``(C/G, *)`` blocks (see :func:`group_norm`)."""

    def forward(self, x, *params):
        weight, bias = _unpack_params(self, params)
        if x.size == 0:
            return _empty_forward(self, x, weight, bias)
        x3 = x.reshape(x.shape[0], x.shape[1], math.prod(x.shape[2:]))
        out, mean, invstd = backend.get_kernel("group_norm_forward", backend.device_of(x))(
            x3, self.num_groups, weight, bias, self.eps
        )
        self.x3, self.weight, self.mean, self.invstd = x3, weight, mean, invstd
        return out.reshape(x.shape)

    def backward(self, grad):
        if self.empty:
            return _empty_backward(self, grad)
        x3 = self.x3
        grad_input, grad_weight, grad_bias = backend.get_kernel(
            "group_norm_backward", backend.device_of(x3)
        )(grad.reshape(x3.shape), x3, self.num_groups, self.weight, self.mean, self.invstd,
          _output_mask(self))
        if grad_input is not None:
            grad_input = grad_input.reshape(self.inputs[0].shape)
        return _pack_grads(self, grad_input, grad_weight, grad_bias, x3.dtype)


def _apply(fn_class, x, weight, bias, **params):
    inputs = [x] + [t for t in (weight, bias) if t is not None]
    return fn_class.apply(
        *inputs, has_weight=weight is not None, has_bias=bias is not None, **params
    )


# ----------------------------------------------------------------------------- public API


def _check_eps(op, eps, training):
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool):
        raise TypeError(f"{op}: eps must be a float, got {type(eps).__name__}")
    if training and eps <= 0.0:
        raise ValueError(f"{op}: eps must be positive during training, but got {eps}")
    if eps < 0.0:
        raise ValueError(f"{op}: eps must be non-negative, but got {eps}")


def _verify_batch_size(op, shape):
    """PyTorch's check: batch statistics need more than one value per channel."""
    values = shape[0] * math.prod(shape[2:])
    if values == 1:
        raise ValueError(
            f"{op}: Expected more than 1 value per channel when training, got input size "
            f"{tuple(shape)}"
        )


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps,
                op="batch_norm"):
    """:func:`batch_norm` with the name used in error messages (a module passes its own)."""
    _check_float_input(op, input)
    shape = _shape(input)
    if input.ndim < 2:
        raise ValueError(
            f"{op}: expected an input of shape (N, C) or (N, C, *), got shape {shape}"
        )
    channels = shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        _check_tensor(op, name, t)
        if t is not None and _shape(t) != (channels,):
            raise ValueError(
                f"{op}: input has {channels} channels (input shape {shape}), but {name} has "
                f"shape {_shape(t)}; expected ({channels},)"
            )
        if t is not None and t.dtype != input.dtype:
            raise TypeError(
                f"{op}: {name} dtype {t.dtype} does not match input dtype {input.dtype} "
                f"(input shape {shape}); cast the input or the model"
            )
    _check_param(op, "weight", weight, (channels,), input)
    _check_param(op, "bias", bias, (channels,), input)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(
            f"{op}: running_mean and running_var must be given in evaluation mode "
            "(training=False); pass training=True to normalise with batch statistics"
        )
    if training:
        _verify_batch_size(op, shape)
    _check_eps(op, eps, training)
    if momentum is None:
        raise TypeError(
            f"{op}: momentum must be a float; the cumulative average of momentum=None is "
            "kept by the BatchNorm modules (factor 1 / num_batches_tracked)"
        )
    momentum = float(momentum)
    return _apply(
        BatchNorm, input, weight, bias,
        running_mean=None if running_mean is None else running_mean.data,
        running_var=None if running_var is None else running_var.data,
        training=bool(training), momentum=momentum, eps=float(eps),
    )


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    r"""Batch normalisation over axis 1 (the channels), as ``torch.nn.functional.batch_norm``.

    For each channel :math:`c`, over the batch and every spatial position
    (:math:`M = N \cdot L` values):

    .. math::

        y = \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}\,\gamma_c + \beta_c .

    In training :math:`\mu_c, \sigma^2_c` are the batch's mean and biased variance, and the
    running statistics (if given) are updated in place, outside the graph:

    .. math::

        \hat\mu_c \leftarrow (1-m)\,\hat\mu_c + m\,\mu_c, \qquad
        \hat\sigma^2_c \leftarrow (1-m)\,\hat\sigma^2_c + m\,\sigma^2_c \frac{M}{M-1}

    (the *unbiased* variance, as PyTorch).  In evaluation the running statistics are used,
    and the layer is the per-channel affine map :math:`y = x\,\gamma r + (\beta - \hat\mu
    \gamma r)` with :math:`r = 1/\sqrt{\hat\sigma^2+\epsilon}`.

    The backward is fused (see the module docstring): in training
    :math:`\partial L/\partial x = \frac{\gamma r}{M}\big(M g - \sum g - \hat x \sum
    g\hat x\big)` with :math:`g = \partial L / \partial y`.

    Parameters
    ----------
    input : Tensor, shape ``(N, C)`` or ``(N, C, *)``
    running_mean, running_var : Tensor ``(C,)`` or None
        Needed in evaluation; updated in place in training (None: not tracked).
    weight, bias : Tensor ``(C,)``, optional
        :math:`\gamma` (default 1) and :math:`\beta` (default 0).
    training : bool, default False
        Use (and track) batch statistics.
    momentum : float, default 0.1
        The running-average factor :math:`m`.  (``momentum=None``, the cumulative average,
        needs a batch count and is handled by :class:`~minidl.nn.BatchNorm1d`/``2d``.)
    eps : float, default 1e-5

    Returns
    -------
    Tensor, same shape and dtype as ``input``

    Raises
    ------
    ValueError
        Shapes that do not fit (the message shows them), a training batch with a single
        value per channel, no running statistics in evaluation, or a bad ``eps``.
    TypeError
        A non-float input, or parameters of another dtype.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.normalization import batch_norm
    >>> x = minidl.tensor([[1.0, 10.0], [3.0, 30.0]], dtype=minidl.float64)
    >>> mean, var = minidl.zeros(2, dtype=minidl.float64), minidl.ones(2, dtype=minidl.float64)
    >>> batch_norm(x, mean, var, training=True).numpy().round(4).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> mean.numpy().round(6).tolist()   # 0.9 * 0 + 0.1 * batch mean
    [0.2, 2.0]
    >>> var.numpy().round(6).tolist()    # 0.9 * 1 + 0.1 * unbiased batch variance
    [1.1, 20.9]
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _normalized_shape_tuple(op, normalized_shape):
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        return (int(normalized_shape),)
    try:
        shape = tuple(int(s) for s in normalized_shape)
    except TypeError:
        raise TypeError(
            f"{op}: normalized_shape must be an int or a sequence of ints, got "
            f"{normalized_shape!r}"
        ) from None
    return shape


def _layer_norm(input, normalized_shape, weight, bias, eps, op="layer_norm"):
    _check_float_input(op, input)
    shape = _shape(input)
    normalized_shape = _normalized_shape_tuple(op, normalized_shape)
    k = len(normalized_shape)
    if k == 0 or any(s <= 0 for s in normalized_shape):
        raise ValueError(
            f"{op}: normalized_shape must be a non-empty tuple of positive sizes, got "
            f"{normalized_shape}"
        )
    if len(shape) < k or shape[len(shape) - k:] != normalized_shape:
        raise ValueError(
            f"{op}: normalized_shape={normalized_shape} expects an input of shape "
            f"(*, {', '.join(map(str, normalized_shape))}), got input shape {shape}"
        )
    _check_param(op, "weight", weight, normalized_shape, input)
    _check_param(op, "bias", bias, normalized_shape, input)
    _check_eps(op, eps, training=False)
    return _apply(LayerNorm, input, weight, bias, normalized_shape=normalized_shape,
                  eps=float(eps))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    r"""Layer normalisation over the trailing dimensions, as ``torch.nn.functional.layer_norm``.

    Each sample's last ``len(normalized_shape)`` dimensions (:math:`D` values) are
    normalised on their own, then scaled and shifted elementwise:

    .. math::

        y = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot \gamma + \beta, \qquad
        \mu = \frac1D\sum x, \quad \sigma^2 = \frac1D\sum (x-\mu)^2 .

    The statistics never mix samples, so train and eval behave alike.  Backward is fused:
    :math:`\partial L/\partial x = r\,(g - \overline{g} - \hat x\,\overline{g\hat x})` per
    sample, with :math:`g = \gamma \odot \partial L/\partial y` and bars meaning the mean
    over the :math:`D` values.

    Parameters
    ----------
    input : Tensor, shape ``(*, *normalized_shape)``
    normalized_shape : int or tuple of int
    weight, bias : Tensor of shape ``normalized_shape``, optional
    eps : float, default 1e-5

    Returns
    -------
    Tensor, same shape and dtype as ``input``

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.normalization import layer_norm
    >>> layer_norm(minidl.tensor([[1.0, 3.0], [0.0, 10.0]]), 2, eps=0.0).tolist()
    [[-1.0, 1.0], [-1.0, 1.0]]
    """
    return _layer_norm(input, normalized_shape, weight, bias, eps)


def _group_norm(input, num_groups, weight, bias, eps, op="group_norm"):
    _check_float_input(op, input)
    shape = _shape(input)
    if input.ndim < 2:
        raise ValueError(
            f"{op}: expected an input of shape (N, C) or (N, C, *) (at least 2 dimensions), "
            f"got shape {shape}"
        )
    if (not isinstance(num_groups, numbers.Integral) or isinstance(num_groups, bool)
            or num_groups <= 0):
        raise ValueError(f"{op}: num_groups must be a positive int, got {num_groups!r}")
    num_groups = int(num_groups)
    channels = shape[1]
    if channels % num_groups != 0:
        raise ValueError(
            f"{op}: input has {channels} channels (input shape {shape}), which is not "
            f"divisible by num_groups={num_groups}"
        )
    _verify_batch_size(op, (shape[0] * channels // num_groups, num_groups) + shape[2:])
    _check_param(op, "weight", weight, (channels,), input)
    _check_param(op, "bias", bias, (channels,), input)
    _check_eps(op, eps, training=False)
    return _apply(GroupNorm, input, weight, bias, num_groups=num_groups, eps=float(eps))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    r"""Group normalisation, as ``torch.nn.functional.group_norm``.

    The :math:`C` channels of each sample are split into ``num_groups`` consecutive groups;
    each group's :math:`D = (C/G)\cdot L` values are normalised together, then every
    channel gets its own :math:`\gamma_c, \beta_c`:

    .. math::

        y_{ncl} = \frac{x_{ncl} - \mu_{ng}}{\sqrt{\sigma^2_{ng} + \epsilon}}\,\gamma_c
        + \beta_c, \qquad g = \lfloor c / (C/G) \rfloor .

    ``num_groups=1`` normalises over all of ``(C, *)`` (a LayerNorm with per-channel
    affine); ``num_groups=C`` is instance normalisation.  The statistics never mix
    samples, so it works with a batch of one.  Backward is fused as for
    :func:`layer_norm`, per group.

    Parameters
    ----------
    input : Tensor, shape ``(N, C, *)``
    num_groups : int
        Must divide ``C``.
    weight, bias : Tensor ``(C,)``, optional
    eps : float, default 1e-5

    Returns
    -------
    Tensor, same shape and dtype as ``input``

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.normalization import group_norm
    >>> x = minidl.tensor([[[1.0, 3.0], [5.0, 7.0]]])      # N=1, C=2, L=2
    >>> group_norm(x, 2, eps=0.0).tolist()                   # each channel alone
    [[[-1.0, 1.0], [-1.0, 1.0]]]
    """
    return _group_norm(input, num_groups, weight, bias, eps)
