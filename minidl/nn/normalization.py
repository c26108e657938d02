r"""Per-sample normalisation layers: ``LayerNorm`` and ``GroupNorm``.

Unlike batch normalisation, their statistics are computed inside each sample, so they
behave the same in training and evaluation and need no running buffers.  The maths and
the fused backward are in :mod:`minidl.ops.normalization`.  Constructor arguments,
parameter names, initialisation (weight 1, bias 0) and ``extra_repr`` are PyTorch's.
"""

from __future__ import annotations

import numpy as np

from minidl.nn import init
from minidl.nn.batchnorm import _check_positive_int, _float_dtype
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.normalization import _group_norm, _layer_norm, _normalized_shape_tuple

__all__ = ["LayerNorm", "GroupNorm"]


class LayerNorm(Module):
    r"""Layer normalisation over the last ``len(normalized_shape)`` dimensions.

    .. math::

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \odot \gamma + \beta

    with mean and biased variance over the trailing ``normalized_shape`` of each sample;
    see :func:`minidl.ops.normalization.layer_norm`.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing shape of the input to normalise over (an int means the last axis).
    eps : float, default 1e-5
    elementwise_affine : bool, default True
        Learn an elementwise :math:`\gamma` (``weight``, of shape ``normalized_shape``,
        initialised to 1) and :math:`\beta` (``bias``, 0).
    bias : bool, default True
        With ``elementwise_affine``, whether to learn :math:`\beta`.
    device, dtype : optional

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.normalization import LayerNorm
    >>> ln = LayerNorm(4)
    >>> ln(minidl.randn(2, 3, 4)).shape
    (2, 3, 4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        shape = _normalized_shape_tuple("LayerNorm", normalized_shape)
        if any(s < 0 for s in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be non-negative, got {shape}")
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        dtype = _float_dtype(dtype, "LayerNorm")
        if elementwise_affine:
            self.weight = Parameter(np.empty(shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.empty(shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Weight 1, bias 0."""
        if self.elementwise_affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        return _layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps,
                           op="LayerNorm")

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(Module):
    r"""Group normalisation: channels split into groups, each normalised per sample.

    For an input ``(N, C, *)``, each sample's ``C`` channels form ``num_groups``
    consecutive groups whose values are normalised together; then each channel is scaled
    and shifted by its own :math:`\gamma_c, \beta_c`.  See
    :func:`minidl.ops.normalization.group_norm`.

    Parameters
    ----------
    num_groups : int
        Must divide ``num_channels``.
    num_channels : int
    eps : float, default 1e-5
    affine : bool, default True
        Learn per-channel ``weight`` (initialised to 1) and ``bias`` (0).
    device, dtype : optional
    bias : bool, keyword-only, default True
        With ``affine``, whether to learn the bias.

    Raises
    ------
    ValueError
        If ``num_channels`` is not divisible by ``num_groups``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.normalization import GroupNorm
    >>> gn = GroupNorm(2, 6)
    >>> gn(minidl.randn(3, 6, 10)).shape
    (3, 6, 10)
    >>> gn
    GroupNorm(2, 6, eps=1e-05, affine=True, bias=True)
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        num_groups = _check_positive_int("GroupNorm", "num_groups", num_groups)
        num_channels = _check_positive_int("GroupNorm", "num_channels", num_channels)
        if num_channels % num_groups != 0:
            raise ValueError(
                f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                f"({num_groups})"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        dtype = _float_dtype(dtype, "GroupNorm")
        if affine:
            self.weight = Parameter(np.empty(num_channels, dtype=dtype))
            if bias:
                self.bias = Parameter(np.empty(num_channels, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Weight 1, bias 0."""
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, input):
        from minidl.tensor import Tensor

        if isinstance(input, Tensor) and input.ndim >= 2 and input.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm: input has {input.shape[1]} channels, expected num_channels="
                f"{self.num_channels} (input shape {tuple(input.shape)})"
            )
        return _group_norm(input, self.num_groups, self.weight, self.bias, self.eps,
                           op="GroupNorm")

    def extra_repr(self):
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )

