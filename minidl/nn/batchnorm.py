r"""Batch normalisation layers: ``BatchNorm1d`` and ``BatchNorm2d``.

In training a BatchNorm layer normalises each channel with the statistics of the current
batch and keeps running averages of them (``running_mean``, ``running_var``) in buffers;
in evaluation it normalises with those running averages, so one sample's output no longer
depends on the rest of its batch.  The maths and the fused backward are in
:func:`minidl.ops.normalization.batch_norm`.

Buffers, parameters, defaults, ``extra_repr`` and ``state_dict`` keys are PyTorch's:
``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked`` (an int64
scalar counting training batches).
"""

from __future__ import annotations

import numbers

import numpy as np

from minidl.autograd import no_grad
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops.normalization import _batch_norm, _verify_batch_size

__all__ = ["BatchNorm1d", "BatchNorm2d"]


def _float_dtype(dtype, layer):
    if dtype is None:
        from minidl.tensor import get_default_dtype

        dtype = get_default_dtype()
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{layer}: parameters must be floating point, got dtype={dtype}")
    return dtype


def _check_positive_int(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


class _BatchNorm(Module):
    """Shared code of ``BatchNorm1d``/``2d``; subclasses say which input ranks they take."""

    #: input ranks accepted, and how they read in an error message
    _ndims: tuple = ()
    _expected: str = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        layer = type(self).__name__
        self.num_features = _check_positive_int(layer, "num_features", num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = _float_dtype(dtype, layer)
        if affine:
            self.weight = Parameter(np.empty(self.num_features, dtype=dtype))
            if bias:
                self.bias = Parameter(np.empty(self.num_features, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
            # NOTE: int64 like PyTorch's torch.long, so state dicts round-trip exactly
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, batch count 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        """Reset the running statistics, and set weight to 1 and bias to 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, input):
        from minidl.tensor import Tensor

        layer = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{layer}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in self._ndims:
            raise ValueError(
                f"{layer}: expected {self._expected} input, got {input.ndim}D input of shape "
                f"{tuple(input.shape)}"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{layer}: input has {input.shape[1]} channels, expected num_features="
                f"{self.num_features} (input shape {tuple(input.shape)})"
            )

    def forward(self, input):
        self._check_input_dim(input)
        layer = type(self).__name__
        training = self.training
        factor = 0.0 if self.momentum is None else self.momentum
        if training and self.track_running_stats and self.num_batches_tracked is not None:
            # batch_norm's own check, made before this batch is counted
            _verify_batch_size(layer, tuple(input.shape))
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average: all batches weigh alike
                factor = 1.0 / float(self.num_batches_tracked.item())
        # batch statistics in training, and in evaluation when nothing was tracked
        use_batch_stats = training or (self.running_mean is None and self.running_var is None)
        pass_buffers = not training or self.track_running_stats
        return _batch_norm(
            input,
            self.running_mean if pass_buffers else None,
            self.running_var if pass_buffers else None,
            self.weight, self.bias, use_batch_stats, factor, self.eps, op=layer,
        )

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    r"""Batch normalisation of ``(N, C)`` or ``(N, C, L)`` inputs, per channel ``C``.

    .. math::

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \cdot \gamma + \beta

    over the batch (and length) axes; see :func:`minidl.ops.normalization.batch_norm`.

    Parameters
    ----------
    num_features : int
        :math:`C`, the number of channels.
    eps : float, default 1e-5
    momentum : float or None, default 0.1
        Running-average factor; ``None`` keeps a cumulative (equal-weight) average of
        all batches seen, counted by ``num_batches_tracked``.
    affine : bool, default True
        Learn :math:`\gamma` (``weight``, initialised to 1) and :math:`\beta` (``bias``, 0).
    track_running_stats : bool, default True
        Keep running statistics; if False, batch statistics are used in eval mode too.
    device, dtype : optional
    bias : bool, keyword-only, default True
        With ``affine``, whether to learn :math:`\beta`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.batchnorm import BatchNorm1d
    >>> bn = BatchNorm1d(3)
    >>> bn(minidl.randn(8, 3, 5)).shape
    (8, 3, 5)
    >>> int(bn.num_batches_tracked.item())
    1
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    _ndims = (2, 3)
    _expected = "2D or 3D (N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    r"""Batch normalisation of ``(N, C, H, W)`` inputs, per channel ``C``.

    Statistics run over the batch and both spatial axes (:math:`N H W` values per channel);
    see :class:`BatchNorm1d` for the arguments and
    :func:`minidl.ops.normalization.batch_norm` for the maths.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.batchnorm import BatchNorm2d
    >>> bn = BatchNorm2d(4).eval()
    >>> bn(minidl.randn(2, 4, 3, 3)).shape
    (2, 4, 3, 3)
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _ndims = (4,)
    _expected = "4D (N, C, H, W)"
