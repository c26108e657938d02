"""Loss layers: Modules around the functions of :mod:`minidl.ops.loss`.

A loss module stores the reduction and the options; class weights (``weight``,
``pos_weight``) are registered as *buffers*, as in PyTorch, so they follow
``model.to(...)`` and appear in ``state_dict()`` when given.
"""

from __future__ import annotations

import warnings

from minidl.nn import functional as F
from minidl.nn.module import Module

__all__ = [
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
]


def _legacy_reduction(size_average, reduce):
    """Map PyTorch's deprecated ``size_average``/``reduce`` flags to a ``reduction``."""
    warnings.warn(
        "size_average and reduce args will be deprecated, please use reduction='mean', "
        "'sum' or 'none' instead.",
        stacklevel=3,
    )
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        self.reduction = reduction


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    r"""Mean squared error, :math:`(x - y)^2` reduced by ``reduction``.

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> nn.MSELoss()(minidl.tensor([1.0, 3.0]), minidl.tensor([0.0, 0.0])).item()
    5.0
    """

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    r"""Mean absolute error, :math:`|x - y|` reduced by ``reduction``."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    r""":math:`\tfrac12 d^2 / \beta` for :math:`|d| < \beta`, else :math:`|d| - \tfrac12\beta`."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    r""":math:`\tfrac12 d^2` for :math:`|d| < \delta`, else
    :math:`\delta(|d| - \tfrac12\delta)`."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    r"""Softmax cross entropy between logits ``(N, C, *)`` and class indices ``(N, *)``
    (or class probabilities shaped like the input).

    Parameters
    ----------
    weight : Tensor of shape (C,), optional
        Per-class rescaling weight (a buffer).
    ignore_index : int, default -100
        Targets equal to it contribute nothing (nor to the mean's denominator).
    reduction : {"mean", "sum", "none"}
    label_smoothing : float in [0, 1]
        Mixes the one-hot target with the uniform distribution.

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> logits = minidl.tensor([[0.0, 0.0]]); target = minidl.tensor([1])
    >>> round(nn.CrossEntropyLoss()(logits, target).item(), 4)
    0.6931
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    r"""Negative log-likelihood of log-probabilities ``(N, C, *)`` at class indices.

    Use after ``LogSoftmax(dim=1)``; ``CrossEntropyLoss`` fuses the two.
    """

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(
            input, target, weight=self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCELoss(_WeightedLoss):
    r"""Binary cross entropy between probabilities and targets in [0, 1]:
    :math:`-w[y \log x + (1 - y)\log(1 - x)]`."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    r"""Sigmoid + binary cross entropy, computed stably from logits.

    Parameters
    ----------
    weight : Tensor, optional
        Rescaling weight, broadcast to the input (a buffer).
    reduction : {"mean", "sum", "none"}
    pos_weight : Tensor, optional
        Weight of positive examples per class (last dimension); a buffer.
        ``pos_weight > 1`` raises recall on imbalanced data.
    """

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


class KLDivLoss(_Loss):
    r"""Kullback-Leibler divergence :math:`y(\log y - x)` with ``input`` = log-probabilities
    (and ``target`` probabilities, or log-probabilities if ``log_target``).

    Use ``reduction="batchmean"`` for the mathematical KL divergence per sample.
    """

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
