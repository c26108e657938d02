r"""Dropout: zero random elements (or whole channels) while training.

During training each element is kept with probability :math:`1-p` and zeroed otherwise;
the kept ones are scaled by :math:`1/(1-p)` ("inverted" dropout), so the expected value of
every output equals its input and nothing needs rescaling at evaluation time:

.. math:: y = x \odot m \,/\, (1-p), \qquad m_i \sim \mathrm{Bernoulli}(1-p).

The gradient is the same mask: :math:`\partial L/\partial x = \partial L/\partial y \odot
m/(1-p)`.  One small :class:`~minidl.autograd.Function` (``ApplyMask``) multiplies by the
mask and keeps only the mask for backward.

The mask is drawn from :func:`minidl.random.default_generator`, so
``minidl.manual_seed(s)`` makes a run reproducible (the masks are not PyTorch's: the two
libraries use different generators).  For tensors on the GPU the mask is drawn on the host
as well and copied over (as booleans): the same seed gives the same masks on every device,
at the cost of one small host-to-device copy per call.

Channel dropout (``dropout1d``, ``dropout2d``) draws one Bernoulli per (sample, channel)
and broadcasts it over the spatial positions: neighbouring positions in a feature map are
strongly correlated, so dropping single elements there regularises little.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from minidl import autograd
from minidl import random as _random
from minidl.autograd import Function
from minidl.backend import array_module

__all__ = ["dropout", "dropout1d", "dropout2d", "alpha_dropout"]


class ApplyMask(Function):
    """``y = x * mask`` for a fixed float mask (broadcastable to ``x``); backward
    ``grad * mask``.  The mask already holds the scale, so each pass is one multiply."""

    def forward(self, x):
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask


# ----------------------------------------------------------------------------- helpers


def _check_p(op, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:  # also refuses NaN
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def _float_tensor(op, x):
    from minidl.tensor import Tensor

    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got {x.dtype}")
    return x


def _keep_mask(mask_shape, p, dtype, xp):
    """A Bernoulli(1 - p) keep-mask of ``mask_shape`` as 0/1 in ``dtype``, on ``xp``.

    ``u >= p`` with ``u`` uniform on [0, 1) holds with probability ``1 - p``.
    """
    draw_dtype = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    u = _random.default_generator().random(mask_shape, dtype=draw_dtype)
    # NOTE: drawn on the host from minidl's one generator, so a seed gives the same masks
    # on every device; only the boolean mask crosses to a GPU (1 byte per element), and
    # it becomes 0/1 floats there
    return xp.asarray(u >= p).astype(dtype)


def _apply(op, input, mask, inplace):
    """``input * mask``, recorded in the graph; in place when asked and nothing is recorded.

    NOTE: minidl's autograd has no in-place operations, so ``inplace=True`` is honoured
    only when no gradient is recorded (under ``no_grad`` or for a tensor that does not
    require grad).  Otherwise the result is a new tensor, which has the same values.
    """
    if inplace and not (autograd.is_grad_enabled() and input.requires_grad):
        input._check_inplace(op)
        input.data *= mask
        return input
    return ApplyMask.apply(input, mask=mask)


def _dropout_with_mask_shape(op, input, p, training, inplace, mask_shape):
    p = _check_p(op, p)
    input = _float_tensor(op, input)
    # NOTE: p = 0, evaluation mode and empty inputs return the input itself, as PyTorch does
    if not training or p == 0.0 or input.data.size == 0:
        return input
    xp = array_module(input.data)
    dtype = input.dtype
    if p == 1.0:
        # every element dropped: multiply by 0 (no 1/(1-p) = inf, so no 0 * inf = nan)
        mask = xp.zeros(mask_shape, dtype=dtype)
    else:
        mask = _keep_mask(mask_shape, p, dtype, xp)
        # NOTE: the scale is 1 / (1 - p) evaluated in the input's dtype, as PyTorch divides
        # by (1 - p) in float32 for a float32 input (p = 0.999 gives 999.99994, not 1000)
        mask *= dtype.type(1.0) / dtype.type(1.0 - p)
    return _apply(op, input, mask, inplace)


# ----------------------------------------------------------------------------- public


def dropout(input, p=0.5, training=True, inplace=False):
    r"""Zero each element with probability ``p`` and scale the rest by :math:`1/(1-p)`.

    .. math:: y_i = \frac{m_i}{1-p}\,x_i, \quad m_i \sim \mathrm{Bernoulli}(1-p),
              \qquad \frac{\partial y_i}{\partial x_i} = \frac{m_i}{1-p}

    Parameters
    ----------
    input : Tensor
        Floating-point input of any shape.
    p : float, default 0.5
        Probability of zeroing an element, in [0, 1].  ``p = 1`` gives zeros (and a zero
        gradient); ``p = 0`` returns ``input`` unchanged.
    training : bool, default True
        When False, ``input`` is returned unchanged (dropout is the identity at
        evaluation time: the training-time scaling already matches the expectations).
    inplace : bool, default False
        Write the result into ``input`` and return it.  Honoured only when no gradient
        is recorded: minidl's autograd has no in-place operations, so with a graph to
        record a new tensor (with the same values) is returned instead.

    Returns
    -------
    Tensor
        Same shape and dtype as ``input``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.dropout import dropout
    >>> _ = minidl.manual_seed(0)
    >>> y = dropout(minidl.ones(1000), p=0.25)
    >>> sorted(set(y.tolist()))       # dropped, or kept and scaled by 1/(1-0.25)
    [0.0, 1.3333333730697632]
    >>> dropout(minidl.ones(3), p=0.25, training=False).tolist()
    [1.0, 1.0, 1.0]
    """
    input = _float_tensor("dropout", input)
    return _dropout_with_mask_shape("dropout", input, p, training, inplace, input.shape)


def dropout1d(input, p=0.5, training=True, inplace=False):
    r"""Zero whole channels of a (N, C, L) or unbatched (C, L) input with probability ``p``.

    One Bernoulli(1 - p) draw per (sample, channel), broadcast along L; kept channels are
    scaled by :math:`1/(1-p)`.  The mask has shape (N, C, 1) (or (C, 1) unbatched).

    Parameters
    ----------
    input : Tensor
        Floating-point input, 2-D (C, L) or 3-D (N, C, L).
    p, training, inplace
        As in :func:`dropout`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.dropout import dropout1d
    >>> _ = minidl.manual_seed(0)
    >>> y = dropout1d(minidl.ones(2, 6, 4), p=0.5)
    >>> bool(((y == 0).all(dim=-1) | (y == 2).all(dim=-1)).all())   # whole rows
    True
    """
    op = "dropout1d"
    input = _float_tensor(op, input)
    if input.ndim not in (2, 3):
        raise ValueError(
            f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {input.shape}; "
            "dropout1d drops channels of inputs with one spatial dimension"
        )
    mask_shape = input.shape[:-1] + (1,)
    return _dropout_with_mask_shape(op, input, p, training, inplace, mask_shape)


_DROPOUT2D_3D_WARNING = (
    "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout "
    "behavior is desired - input is interpreted as shape (N, C, L), where C is the channel "
    "dim. This behavior will change in a future release to interpret the input as one "
    "without a batch dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise "
    "dropout behavior, please switch to using dropout1d instead."
)


def dropout2d(input, p=0.5, training=True, inplace=False):
    r"""Zero whole channels of a (N, C, H, W) input with probability ``p``.

    One Bernoulli(1 - p) draw per (sample, channel), broadcast over H and W (mask shape
    (N, C, 1, 1)); kept channels are scaled by :math:`1/(1-p)`.

    NOTE: PyTorch's quirks are kept: a 3-D input is read as (N, C, L) (channel-wise 1-D
    dropout, with PyTorch's warning), not as an unbatched (C, H, W); other ranks warn and
    drop along dimension 1 (mask ``shape[:2] + (1,) * (ndim - 2)``).

    Parameters
    ----------
    input : Tensor
        Floating-point input, normally 4-D (N, C, H, W).
    p, training, inplace
        As in :func:`dropout`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.dropout import dropout2d
    >>> _ = minidl.manual_seed(0)
    >>> y = dropout2d(minidl.ones(2, 8, 3, 3), p=0.5)
    >>> per_channel = y.reshape(2, 8, 9)
    >>> bool(((per_channel == 0).all(dim=-1) | (per_channel == 2).all(dim=-1)).all())
    True
    """
    op = "dropout2d"
    input = _float_tensor(op, input)
    if input.ndim < 2:
        raise ValueError(
            f"{op}: expected a 4-D (N, C, H, W) input, got shape {input.shape}"
        )
    if input.ndim == 3:
        warnings.warn(_DROPOUT2D_3D_WARNING, UserWarning, stacklevel=2)
    elif input.ndim != 4:
        warnings.warn(
            f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated "
            "and will result in an error in a future release. To retain the behavior and "
            "silence this warning, please use dropout instead. Note that dropout2d exists "
            "to provide channel-wise dropout on inputs with 2 spatial dimensions, a channel "
            "dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
            UserWarning,
            stacklevel=2,
        )
    mask_shape = input.shape[:2] + (1,) * (input.ndim - 2)
    return _dropout_with_mask_shape(op, input, p, training, inplace, mask_shape)


#: the negative saturation value of SELU, :math:`-\lambda\alpha` (Klambauer et al., 2017)
_SELU_ALPHA_PRIME = 1.7580993408473766


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    r"""Dropout for self-normalising (SELU) networks: keeps mean 0 and variance 1.

    Dropped elements are set to SELU's negative saturation value :math:`-\alpha'`
    (:math:`\alpha' \approx 1.7581`) instead of 0, then an affine map restores the
    input's mean and variance (Klambauer et al., 2017):

    .. math:: y = a\,(x\,m + (m - 1)\,\alpha') + a\,\alpha' p, \qquad
              a = \frac{1}{\sqrt{(\alpha'^2 p + 1)(1-p)}}

    with :math:`m_i \sim \mathrm{Bernoulli}(1-p)`.  The gradient is :math:`a\,m`.
    ``training`` defaults to False, as in PyTorch.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.dropout import alpha_dropout
    >>> alpha_dropout(minidl.ones(2), 0.5).tolist()   # training=False: identity
    [1.0, 1.0]
    """
    op = "alpha_dropout"
    p = _check_p(op, p)
    input = _float_tensor(op, input)
    if not training or p == 0.0 or input.data.size == 0:
        return input
    xp = array_module(input.data)
    dtype = input.dtype
    if p == 1.0:
        return _apply(op, input, xp.zeros(input.shape, dtype=dtype), inplace)
    keep = _keep_mask(input.shape, p, dtype, xp)
    a = 1.0 / math.sqrt((_SELU_ALPHA_PRIME**2 * p + 1.0) * (1.0 - p))
    scale = keep * dtype.type(a)
    shift = (keep - 1) * dtype.type(_SELU_ALPHA_PRIME * a) + dtype.type(_SELU_ALPHA_PRIME * a * p)
    from minidl.tensor import Tensor

    # y = x * (a m) + b: the mask-multiply node carries the gradient, b is a constant
    return ApplyMask.apply(input, mask=scale) + Tensor._wrap(shift.astype(dtype, copy=False))
