"""Loss functions with PyTorch's names, arguments and reductions.

Two kinds live here:

- **Compositions** of differentiable primitives (``mse_loss``, ``l1_loss``,
  ``smooth_l1_loss``, ``huber_loss``, ``binary_cross_entropy_with_logits``): autograd
  derives their gradients, for the target too.
- **Functions with a hand-written backward** where fusing or a convention matters:
  ``cross_entropy`` (log-softmax + NLL + class weights + ``ignore_index`` + label smoothing
  in one node, never forming ``log(softmax)``), ``nll_loss`` (a gather), ``binary_cross_entropy``
  (PyTorch clamps the log at -100 and divides the gradient by ``max(x(1-x), 1e-12)``) and
  ``kl_div`` (``0 log 0 = 0``).

Every ``reduction`` is one of ``"none"`` (per-element losses), ``"mean"`` and ``"sum"``
(``kl_div`` adds ``"batchmean"``).  Mean is over elements, except for ``cross_entropy`` and
``nll_loss`` with class-index targets, where it is the *weighted* mean
:math:`\\sum_i l_i / \\sum_i w_{y_i}` over the targets that are not ignored (so a batch
where every target is ignored gives ``nan``, as in PyTorch).

NOTE: PyTorch broadcasts ``input`` and ``target`` of different shapes in the pointwise
losses (with a warning that the result is "likely incorrect").  minidl raises instead:
an (N, 1) prediction against an (N,) target silently becoming an (N, N) loss is a classic
bug.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.autograd import Function
from minidl.backend import array_module, device_of, move, raise_device_mismatch, register_kernel
from minidl.ops import elementwise as _ew
from minidl.ops.activation import LogSigmoid, _as_float_tensor, log_softmax_array

__all__ = [
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
]

_REDUCTIONS = ("none", "mean", "sum")


# ----------------------------------------------------------------------------- helpers


def _tensor(x):
    from minidl.tensor import Tensor

    return x if isinstance(x, Tensor) else Tensor(x)


def _check_reduction(op, reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        names = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{op}: reduction must be one of {names}, got {reduction!r}")


def _check_same_shape(op, input, target):
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"{op}: input {tuple(input.shape)} and target {tuple(target.shape)} must have the "
            "same shape (minidl does not broadcast them; reshape one, e.g. "
            "input.squeeze(-1) or target.unsqueeze(-1))"
        )


def _float_target(op, target):
    target = _tensor(target)
    if target.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point target, got {target.dtype}")
    return target


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _constant_array(op, name, t, like):
    """The array of an optional non-differentiable tensor argument (weight), cast to the
    dtype of the tensor ``like`` (the input) and on its device.

    A tensor on another device than the input is an error (it is not an operand of the
    op's Function, so the engine's device check cannot see it); host data that is not a
    tensor (a list, a NumPy array) is copied to the input's device.
    """
    from minidl.tensor import Tensor

    if t is None:
        return None
    given_tensor = isinstance(t, Tensor)
    t = _tensor(t)
    if t.requires_grad:
        raise RuntimeError(
            f"{op}: {name} is not differentiable (as in PyTorch); pass {name}.detach()"
        )
    array = t.data
    if device_of(array) != device_of(like.data):
        if given_tensor:
            raise_device_mismatch(f"{op} ({name})", [like.data, array])
        array = move(array, device_of(like.data))
    return array.astype(like.dtype, copy=False)


# ----------------------------------------------------------------------------- regression


def mse_loss(input, target, reduction="mean"):
    r"""Mean squared error: :math:`l_i = (x_i - y_i)^2`, then reduced.

    .. math:: \frac{\partial l_i}{\partial x_i} = 2 (x_i - y_i)

    Parameters
    ----------
    input, target : Tensor
        Same shape (minidl raises where PyTorch would broadcast with a warning).
        ``input`` must be floating-point; an integer ``target`` is promoted.
    reduction : {"mean", "sum", "none"}

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import mse_loss
    >>> mse_loss(minidl.tensor([1.0, 2.0]), minidl.tensor([0.0, 0.0])).item()
    2.5
    """
    input = _as_float_tensor("mse_loss", input)
    target = _tensor(target)
    _check_same_shape("mse_loss", input, target)
    _check_reduction("mse_loss", reduction)
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    r"""Mean absolute error: :math:`l_i = |x_i - y_i|`.

    The gradient is :math:`\operatorname{sign}(x_i - y_i)`, taken as 0 where
    :math:`x_i = y_i` (as PyTorch).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import l1_loss
    >>> l1_loss(minidl.tensor([1.0, -3.0]), minidl.tensor([0.0, 0.0]), reduction="sum").item()
    4.0
    """
    input = _as_float_tensor("l1_loss", input)
    target = _tensor(target)
    _check_same_shape("l1_loss", input, target)
    _check_reduction("l1_loss", reduction)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    r"""Smooth L1 loss: quadratic below ``beta``, linear above.

    With :math:`d = x - y`:

    .. math:: l = \begin{cases} \tfrac{1}{2} d^2 / \beta & |d| < \beta \\
              |d| - \tfrac{1}{2}\beta & \text{otherwise} \end{cases}, \qquad
              \frac{\partial l}{\partial x} = \begin{cases} d/\beta & |d| < \beta \\
              \operatorname{sign}(d) & \text{otherwise}\end{cases}

    The two pieces meet with equal value and slope at :math:`|d| = \beta`.
    ``beta = 0`` is the L1 loss, as in PyTorch; a negative ``beta`` raises.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import smooth_l1_loss
    >>> smooth_l1_loss(minidl.tensor([0.5, 3.0]), minidl.tensor([0.0, 0.0]), "none").tolist()
    [0.125, 2.5]
    """
    input = _as_float_tensor("smooth_l1_loss", input)
    target = _tensor(target)
    _check_same_shape("smooth_l1_loss", input, target)
    _check_reduction("smooth_l1_loss", reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    diff = input - target
    abs_diff = diff.abs()
    if beta == 0:
        return _reduce(abs_diff, reduction)
    quadratic = diff * diff * (0.5 / beta)
    linear = abs_diff - 0.5 * beta
    return _reduce(_ew.where(abs_diff.data < beta, quadratic, linear), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    r"""Huber loss: quadratic below ``delta``, linear (slope ``delta``) above.

    .. math:: l = \begin{cases} \tfrac{1}{2} d^2 & |d| < \delta \\
              \delta\,(|d| - \tfrac{1}{2}\delta) & \text{otherwise} \end{cases}

    It equals ``delta * smooth_l1_loss(..., beta=delta)``.  ``delta`` must be positive.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import huber_loss
    >>> huber_loss(minidl.tensor([0.5, 3.0]), minidl.tensor([0.0, 0.0]), "none", 2.0).tolist()
    [0.125, 4.0]
    """
    input = _as_float_tensor("huber_loss", input)
    target = _tensor(target)
    _check_same_shape("huber_loss", input, target)
    _check_reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    diff = input - target
    abs_diff = diff.abs()
    quadratic = diff * diff * 0.5
    linear = (abs_diff - 0.5 * delta) * delta
    return _reduce(_ew.where(abs_diff.data < delta, quadratic, linear), reduction)


# ----------------------------------------------------------------------------- classification


def _class_axis_weight(weight, ndim):
    """Reshape a (C,) weight to broadcast along axis 1 of an (N, C, d1, ...) array."""
    return weight.reshape((1, -1) + (1,) * (ndim - 2))


def _check_class_input(op, input, target, weight, ignore_index, allow_probabilities):
    """Validate (input, target, weight) for cross_entropy / nll_loss.

    Returns ``True`` when ``target`` holds class probabilities (same shape as input).
    """
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None:
        weight = _tensor(weight)
        if tuple(weight.shape) != (n_classes,):
            raise ValueError(
                f"{op}: weight must have shape ({n_classes},), one entry per class, "
                f"got {tuple(weight.shape)} (input {tuple(input.shape)})"
            )
        if weight.dtype.kind != "f":
            raise TypeError(f"{op}: weight must be floating-point, got {weight.dtype}")

    if allow_probabilities and tuple(target.shape) == tuple(input.shape):
        if target.dtype.kind != "f":
            raise TypeError(
                f"{op}: a target of the same shape as input {tuple(input.shape)} holds class "
                f"probabilities and must be floating-point, got {target.dtype}"
            )
        return True

    expected = () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])
    if target.dtype.kind not in "iu":
        hint = (
            f"; for class probabilities pass a target of the input's shape {tuple(input.shape)}"
            if allow_probabilities
            else ""
        )
        raise TypeError(
            f"{op}: class-index target must be an integer tensor, got {target.dtype}{hint}"
        )
    if tuple(target.shape) != expected:
        raise ValueError(
            f"{op}: input {tuple(input.shape)} expects a class-index target of shape "
            f"{expected}, got target {tuple(target.shape)}"
        )
    t = target.data
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        value = int(t[bad].ravel()[0])
        raise IndexError(
            f"{op}: target class index {value} is out of bounds for {n_classes} classes "
            f"(expected 0..{n_classes - 1}, or ignore_index={ignore_index})"
        )
    return False


@register_kernel("softmax_cross_entropy_forward", "numpy")
def softmax_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    r"""Fused log-softmax + weighted NLL with class-index targets (reference kernel).

    Signature: ``softmax_cross_entropy_forward(logits, target, weight, ignore_index,
    label_smoothing) -> (loss, logp, total_weight)``

    Parameters
    ----------
    logits : ndarray, shape ``(N, C)`` (or ``(N, C, d1, ...)``: class axis 1)
        Floating point; the compiled kernels take the 2-D case and fall back to this
        reference for the others.
    target : integer ndarray, shape ``(N,)`` (or ``(N, d1, ...)``)
        Class indices in ``[0, C)``, or ``ignore_index`` (checked by the caller).
    weight : ndarray ``(C,)`` of ``logits``' dtype, or None
        Per-class weights :math:`w` (None: all 1).
    ignore_index : int
    label_smoothing : float
        :math:`\varepsilon \in [0, 1]`.

    Returns
    -------
    loss : ndarray ``(N,)``, dtype of ``logits``
        Per position, with :math:`\log p = x - \max x - \log\sum e^{x - \max x}`:
        :math:`l_n = -(1-\varepsilon)\, w_{y_n} \log p_{n,y_n} - \frac{\varepsilon}{C}
        \sum_c w_c \log p_{n,c}`, exactly 0 where :math:`y_n` is ``ignore_index``.
    logp : ndarray ``(N, C)``, dtype of ``logits``
        The log-probabilities (all that backward needs of the logits).
    total_weight : scalar of ``logits``' dtype
        :math:`\sum_{n \text{ not ignored}} w_{y_n}`, the denominator of ``"mean"``.
    """
    xp = array_module(logits)
    n_classes = logits.shape[1]
    eps = label_smoothing
    logp = log_softmax_array(logits, 1)
    valid = target != ignore_index
    index = xp.expand_dims(xp.where(valid, target, 0), 1)
    picked = xp.take_along_axis(logp, index, axis=1)[:, 0]
    w_t = _target_weight(valid, index, weight, logits.dtype)
    loss = -w_t * picked
    if eps > 0:
        w_b = None if weight is None else _class_axis_weight(weight, logits.ndim)
        smooth = -(logp if w_b is None else logp * w_b).sum(axis=1)
        loss = (1 - eps) * loss + (eps / n_classes) * smooth
    # exact zeros where ignored (0 * -inf would otherwise give nan)
    loss = xp.where(valid, loss, 0).astype(logits.dtype, copy=False)
    return loss, logp, w_t.sum()


@register_kernel("softmax_cross_entropy_backward", "numpy")
def softmax_cross_entropy_backward(grad_loss, logp, target, weight, ignore_index,
                                   label_smoothing):
    r"""Gradient of :func:`softmax_cross_entropy_forward`'s ``loss`` w.r.t. the logits
    (reference kernel).

    Signature: ``softmax_cross_entropy_backward(grad_loss, logp, target, weight,
    ignore_index, label_smoothing) -> grad_logits``

    Parameters
    ----------
    grad_loss : ndarray ``(N,)`` (or ``(N, d1, ...)``)
        :math:`g_n = \partial L/\partial l_n` (for ``"mean"`` already divided by the total
        weight; a broadcast view is fine).
    logp : ndarray ``(N, C)`` (or ``(N, C, d1, ...)``)
        As returned by the forward kernel.
    target, weight, ignore_index, label_smoothing
        As given to the forward kernel.

    Returns
    -------
    grad_logits : ndarray of ``logp``'s shape
        With :math:`p = e^{\log p}` and :math:`q_c = (1-\varepsilon) w_{y_n} [c = y_n] +
        \frac{\varepsilon}{C} w_c` the weighted target distribution:
        :math:`g_n \big((\sum_c q_c)\, p_{n,c} - q_c\big)`; exactly 0 on ignored rows,
        even where :math:`g_n` is ``nan`` (a ``"mean"`` over no valid target).
    """
    xp = array_module(logp)
    n_classes = logp.shape[1]
    eps = label_smoothing
    valid = target != ignore_index
    index = xp.expand_dims(xp.where(valid, target, 0), 1)
    w_t = _target_weight(valid, index, weight, logp.dtype)
    p = xp.exp(logp)
    # ignored positions get exactly 0, even when the mean's denominator is 0
    g = xp.where(valid, grad_loss, 0)
    w_sum = n_classes if weight is None else weight.sum()
    hard = g * (1 - eps) * w_t
    grad_x = p * xp.expand_dims(hard + g * (eps / n_classes) * w_sum, 1)
    at_target = xp.take_along_axis(grad_x, index, axis=1)
    xp.put_along_axis(grad_x, index, at_target - hard[:, None], axis=1)
    if eps > 0:
        smooth_coef = xp.expand_dims(g * (eps / n_classes), 1)
        if weight is not None:
            smooth_coef = smooth_coef * _class_axis_weight(weight, logp.ndim)
        grad_x -= smooth_coef
    return grad_x


def _target_weight(valid, index, weight, dtype):
    """:math:`w_{y_n}` per position (1 without weights), 0 where the target is ignored."""
    xp = array_module(valid)
    if weight is None:
        return valid.astype(dtype)
    return xp.where(valid, weight[index[:, 0]], 0).astype(dtype, copy=False)


class CrossEntropy(Function):
    """Fused log-softmax + negative log-likelihood (+ weights, ignore_index, smoothing).

    Works on (N, C, d1, ...) inputs with the class axis 1 (an unbatched (C,) input is
    given a batch axis of 1 and the result is squeezed).  Every variant is written as a
    "target distribution" ``q`` per position, with ``l = -sum_c q_c log p_c``; then
    ``dl/dx = (sum_c q_c) p - q`` for the logits ``x`` and ``p = softmax(x)``.
    """

    def forward(self, x, t):
        xp = array_module(x)
        self.unbatched = x.ndim == 1
        if self.unbatched:
            x, t = x[None], t[None]
        n_classes = x.shape[1]
        eps = self.label_smoothing
        weight = self.weight

        if self.probabilities:
            self.logp = logp = log_softmax_array(x, 1)
            w_b = None if weight is None else _class_axis_weight(weight, x.ndim)
            self.w_b = w_b
            # q = w_c * ((1 - eps) t_c + eps / C)
            t = t.astype(x.dtype, copy=False)
            q = t * (1 - eps) + eps / n_classes if eps > 0 else t
            if w_b is not None:
                q = q * w_b
            self.q = q
            loss = -(logp * q).sum(axis=1)
            self.denominator = loss.size
        else:
            # q = (1 - eps) w_{y} onehot(y) + (eps / C) w, zero where y is ignored: one
            # registered kernel (compiled versions fuse it into one pass per row)
            kernel = backend.get_kernel("softmax_cross_entropy_forward", backend.device_of(x))
            loss, self.logp, total_weight = kernel(
                x, t, weight, self.ignore_index, eps
            )
            self.target = t
            # NOTE: the mean divides by the total weight of the non-ignored targets, for
            # the smoothing term too, exactly as PyTorch (0/0 = nan if all are ignored)
            self.denominator = total_weight

        if self.reduction == "none":
            return loss[0] if self.unbatched else loss
        total = xp.asarray(loss.sum())
        if self.reduction == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / self.denominator).astype(x.dtype)

    def backward(self, grad):
        xp = array_module(grad)
        logp = self.logp
        eps = self.label_smoothing
        if self.reduction == "none":
            g = grad[None] if self.unbatched else grad
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                g = grad / self.denominator if self.reduction == "mean" else grad
            g = xp.broadcast_to(g, logp.shape[:1] + logp.shape[2:])

        grad_x = grad_t = None
        if self.probabilities:
            g1 = xp.expand_dims(g, 1)
            if self.needs_input_grad[0]:
                p = xp.exp(logp)
                grad_x = (p * self.q.sum(axis=1, keepdims=True) - self.q) * g1
            if self.needs_input_grad[1]:
                # dl/dt_c = -(1 - eps) w_c log p_c
                grad_t = -(1 - eps) * g1 * (logp if self.w_b is None else logp * self.w_b)
        elif self.needs_input_grad[0]:
            kernel = backend.get_kernel("softmax_cross_entropy_backward",
                                        backend.device_of(logp))
            grad_x = kernel(g, logp, self.target, self.weight, self.ignore_index, eps)
        if self.unbatched:
            grad_x = None if grad_x is None else grad_x[0]
            grad_t = None if grad_t is None else grad_t[0]
        return grad_x, grad_t


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    r"""Cross entropy between logits and class indices or class probabilities.

    With :math:`\log p = \mathrm{log\_softmax}(x)` along the class axis 1, a class-index
    target :math:`y_n`, class weights :math:`w` (all 1 by default) and label smoothing
    :math:`\varepsilon`, each position :math:`n` not equal to ``ignore_index`` has

    .. math:: l_n = -(1-\varepsilon)\, w_{y_n} \log p_{n,y_n}
              - \frac{\varepsilon}{C} \sum_{c} w_c \log p_{n,c}

    and ignored positions have :math:`l_n = 0`.  ``"mean"`` divides the sum by
    :math:`\sum_{n \text{ not ignored}} w_{y_n}` (``nan`` if every target is ignored).

    With class probabilities (``target`` of the same shape as ``input``),
    :math:`l_n = -\sum_c w_c \big((1-\varepsilon) t_{n,c} + \varepsilon / C\big)
    \log p_{n,c}` and ``"mean"`` divides by the number of positions :math:`N d_1 \cdots`.

    One fused op: the gradient for the logits is :math:`(\sum_c q_c)\,p - q` with
    :math:`q` the weighted target distribution above, so :math:`\log(\mathrm{softmax})`
    is never formed and logits of :math:`\pm 10^4` are fine.

    Parameters
    ----------
    input : Tensor
        Logits, (N, C), (N, C, d1, ..., dK) or unbatched (C,).
    target : Tensor
        Class indices of shape (N,), (N, d1, ..., dK) or () (any integer dtype; PyTorch
        insists on int64), or class probabilities of ``input``'s shape (floating).
    weight : Tensor, optional
        (C,) rescaling weight per class; not differentiated.
    ignore_index : int, keyword-only
        Target value that contributes neither loss nor gradient nor weight.
    reduction : {"mean", "sum", "none"}, keyword-only
    label_smoothing : float in [0, 1], keyword-only

    The arguments after ``weight`` are keyword-only because PyTorch's positional order
    has the legacy ``size_average``/``reduce`` between them.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import cross_entropy
    >>> logits = minidl.tensor([[0.0, 0.0], [1e4, -1e4]], requires_grad=True)
    >>> loss = cross_entropy(logits, minidl.tensor([0, 1]), reduction="none")
    >>> [round(v, 4) for v in loss.tolist()]
    [0.6931, 20000.0]
    """
    op = "cross_entropy"
    input = _as_float_tensor(op, input)
    target = _tensor(target)
    _check_reduction(op, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    probabilities = _check_class_input(op, input, target, weight, ignore_index, True)
    weight_arr = _constant_array(op, "weight", weight, input)
    return CrossEntropy.apply(
        input, target, weight=weight_arr, ignore_index=int(ignore_index), reduction=reduction,
        label_smoothing=float(label_smoothing), probabilities=probabilities,
    )


class NLLLoss(Function):
    """Negative log-likelihood of log-probabilities: a weighted gather along axis 1."""

    def forward(self, x, t):
        xp = array_module(x)
        self.unbatched = x.ndim == 1
        if self.unbatched:
            x, t = x[None], t[None]
        self.shape = x.shape
        self.valid = valid = t != self.ignore_index
        self.index = xp.expand_dims(xp.where(valid, t, 0), 1)
        picked = xp.take_along_axis(x, self.index, axis=1)[:, 0]
        if self.weight is None:
            w_t = valid.astype(x.dtype)
        else:
            w_t = xp.where(valid, self.weight[self.index[:, 0]], 0).astype(x.dtype, copy=False)
        self.w_t = w_t
        loss = xp.where(valid, -w_t * picked, 0).astype(x.dtype, copy=False)
        self.denominator = w_t.sum()
        if self.reduction == "none":
            return loss[0] if self.unbatched else loss
        total = xp.asarray(loss.sum())
        if self.reduction == "sum":
            return total
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / self.denominator).astype(x.dtype)

    def backward(self, grad):
        xp = array_module(grad)
        if self.reduction == "none":
            g = grad[None] if self.unbatched else grad
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                g = grad / self.denominator if self.reduction == "mean" else grad
            g = xp.broadcast_to(g, self.valid.shape)
        g = xp.where(self.valid, g, 0)
        grad_x = xp.zeros(self.shape, dtype=grad.dtype)
        xp.put_along_axis(grad_x, self.index, -(g * self.w_t)[:, None], axis=1)
        return (grad_x[0] if self.unbatched else grad_x), None


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    r"""Negative log-likelihood loss on log-probabilities (e.g. from ``log_softmax``).

    .. math:: l_n = -w_{y_n}\, x_{n, y_n}, \qquad
              \frac{\partial l_n}{\partial x_{n,c}} = -w_{y_n} [c = y_n]

    Positions whose target equals ``ignore_index`` give 0 and no gradient; ``"mean"``
    divides by the total weight :math:`\sum_{n \text{ not ignored}} w_{y_n}` (``nan``
    if every target is ignored, as in PyTorch).  Shapes as in :func:`cross_entropy` with
    class-index targets; arguments after ``weight`` are keyword-only.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import nll_loss
    >>> logp = minidl.tensor([[-0.1, -2.0], [-3.0, -0.5]])
    >>> round(nll_loss(logp, minidl.tensor([0, 1])).item(), 4)
    0.3
    """
    op = "nll_loss"
    input = _as_float_tensor(op, input)
    target = _tensor(target)
    _check_reduction(op, reduction)
    _check_class_input(op, input, target, weight, ignore_index, False)
    weight_arr = _constant_array(op, "weight", weight, input)
    return NLLLoss.apply(
        input, target, weight=weight_arr, ignore_index=int(ignore_index), reduction=reduction
    )


_BCE_EPS = float(np.float32(1e-12))


class BinaryCrossEntropy(Function):
    def forward(self, x, t):
        xp = array_module(x)
        t = t.astype(x.dtype, copy=False)
        self.x, self.t = x, t
        with np.errstate(divide="ignore"):
            # NOTE: both logs are clamped at -100, as PyTorch does, so a prediction of
            # exactly 0 or 1 costs at most 100 instead of inf
            log_x = xp.maximum(xp.log(x), -100)
            log_1mx = xp.maximum(xp.log1p(-x), -100)
        loss = (t - 1) * log_1mx - t * log_x
        if self.weight is not None:
            loss = loss * self.weight
        return loss

    def backward(self, grad):
        xp = array_module(grad)
        x, t = self.x, self.t
        if self.weight is not None:
            grad = grad * self.weight
        grad_x = grad_t = None
        if self.needs_input_grad[0]:
            # NOTE: dl/dx = (x - t) / (x (1 - x)), with the denominator kept >= 1e-12 as in
            # PyTorch, so x = 0 or 1 gives a large finite gradient rather than inf.  PyTorch's
            # constant is the float32 1e-12, which _BCE_EPS reproduces bit for bit.
            grad_x = grad * (x - t) / xp.maximum(x * (1 - x), _BCE_EPS)
        if self.needs_input_grad[1]:
            # dl/dt = log(1 - x) - log(x), unclamped (inf at x = 0 or 1), as in PyTorch
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_t = grad * (xp.log1p(-x) - xp.log(x))
        return grad_x, grad_t


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    r"""Binary cross entropy between probabilities ``input`` and targets in [0, 1].

    .. math:: l_i = -w_i \big(t_i \log x_i + (1 - t_i) \log(1 - x_i)\big), \qquad
              \frac{\partial l_i}{\partial x_i} = w_i \frac{x_i - t_i}{x_i (1 - x_i)}

    As in PyTorch, each log is clamped at -100 and the gradient's denominator at 1e-12.
    ``input`` must lie in [0, 1] (checked); ``weight`` broadcasts to ``input`` and is not
    differentiated.  For logits use :func:`binary_cross_entropy_with_logits`, which is
    more stable.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import binary_cross_entropy
    >>> probs, target = minidl.tensor([0.0, 1.0]), minidl.tensor([1.0, 1.0])
    >>> binary_cross_entropy(probs, target, reduction="none").tolist()
    [100.0, -0.0]
    """
    op = "binary_cross_entropy"
    input = _as_float_tensor(op, input)
    target = _float_target(op, target)
    _check_same_shape(op, input, target)
    _check_reduction(op, reduction)
    x = input.data
    outside = ~((x >= 0) & (x <= 1))
    if outside.any():
        value = x[outside].ravel()[0].item()
        raise ValueError(
            f"{op}: every input must be a probability in [0, 1], found {value}; "
            "for logits use binary_cross_entropy_with_logits"
        )
    weight_arr = _constant_array(op, "weight", weight, input)
    if weight_arr is not None:
        try:
            np.broadcast_shapes(weight_arr.shape, tuple(input.shape))
        except ValueError:
            raise ValueError(
                f"{op}: weight {weight_arr.shape} does not broadcast to input "
                f"{tuple(input.shape)}"
            ) from None
    loss = BinaryCrossEntropy.apply(input, target, weight=weight_arr)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    r"""Sigmoid + binary cross entropy in one stable expression.

    With logits :math:`x`, targets :math:`t`, ``pos_weight`` :math:`p` (broadcast along
    the last, class, dimension) and :math:`\ell = 1 + (p - 1)\,t`:

    .. math:: l = w\,\big[(1 - t)\,x - \ell \log\sigma(x)\big]
              = w\,\big[(1 - t)\,x + \ell\,(\max(-x, 0) + \log(1 + e^{-|x|}))\big]

    which is :math:`-w[p\,t \log\sigma(x) + (1-t)\log(1-\sigma(x))]` without ever forming
    :math:`\sigma(x)`, so logits of :math:`\pm 10^4` give exact finite losses.  The
    gradient for the logits is :math:`w(\ell\,\sigma(x) - p\,t)`.  A composition of
    primitives, so ``target`` is differentiable too; ``weight`` (broadcast to ``input``)
    and ``pos_weight`` are constants, as in PyTorch.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.loss import binary_cross_entropy_with_logits as bce_logits
    >>> bce_logits(minidl.tensor([1e4, -1e4]), minidl.tensor([0.0, 0.0]), reduction="none").tolist()
    [10000.0, 0.0]
    """
    op = "binary_cross_entropy_with_logits"
    input = _as_float_tensor(op, input)
    target = _float_target(op, target)
    _check_same_shape(op, input, target)
    _check_reduction(op, reduction)
    from minidl.tensor import Tensor

    weight_arr = _constant_array(op, "weight", weight, input)
    pos_weight_arr = _constant_array(op, "pos_weight", pos_weight, input)
    for name, arr in (("weight", weight_arr), ("pos_weight", pos_weight_arr)):
        if arr is not None:
            try:
                np.broadcast_shapes(arr.shape, tuple(input.shape))
            except ValueError:
                raise ValueError(
                    f"{op}: {name} {arr.shape} does not broadcast to input {tuple(input.shape)}"
                ) from None
    # -log sigma(x) = softplus(-x), computed stably by LogSigmoid
    neg_log_sigmoid = -LogSigmoid.apply(input)
    if pos_weight_arr is None:
        loss = (1 - target) * input + neg_log_sigmoid
    else:
        log_weight = 1 + (Tensor._wrap(pos_weight_arr) - 1) * target
        loss = (1 - target) * input + log_weight * neg_log_sigmoid
    if weight_arr is not None:
        loss = loss * Tensor._wrap(weight_arr)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- divergence


class KLDiv(Function):
    def forward(self, x, t):
        xp = array_module(x)
        t = t.astype(x.dtype, copy=False)
        self.x, self.t = x, t
        if self.log_target:
            return xp.exp(t) * (t - x)
        # NOTE: 0 * log 0 is taken as 0, as PyTorch's xlogy does
        with np.errstate(divide="ignore", invalid="ignore"):
            t_log_t = xp.where(t == 0, 0, t * xp.log(t))
        return (t_log_t - t * x).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = array_module(grad)
        x, t = self.x, self.t
        grad_x = grad_t = None
        if self.log_target:
            e = xp.exp(t)
            if self.needs_input_grad[0]:
                grad_x = -grad * e
            if self.needs_input_grad[1]:
                grad_t = grad * e * (t - x + 1)
            return grad_x, grad_t
        if self.needs_input_grad[0]:
            grad_x = -grad * t
        if self.needs_input_grad[1]:
            # d/dt (t log t - t x) = log t + 1 - x.  NOTE: at t == 0 this is nan, as in
            # PyTorch (its xlogy backward divides 0 by 0 there).
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_t = xp.where(t == 0, np.nan, grad * (xp.log(t) + 1 - x))
        return grad_x, grad_t


def kl_div(input, target, reduction="mean", log_target=False):
    r"""Kullback-Leibler divergence, PyTorch's argument convention.

    ``input`` holds log-probabilities :math:`\log q`; ``target`` holds probabilities
    :math:`p` (or :math:`\log p` when ``log_target=True``):

    .. math:: l_i = p_i (\log p_i - \log q_i), \qquad
              \frac{\partial l_i}{\partial \log q_i} = -p_i

    with :math:`0 \log 0 = 0`.  Reductions: ``"batchmean"`` (sum / batch size
    ``input.shape[0]``, the true KL per sample), ``"sum"``, ``"mean"`` (sum / number of
    elements: PyTorch's default, which it warns is not the KL divergence; minidl keeps the
    same value without the warning) and ``"none"``.

    Examples
    --------
    >>> import math, minidl
    >>> from minidl.ops.loss import kl_div
    >>> p = minidl.tensor([[0.5, 0.5]]); log_q = minidl.tensor([[math.log(0.25), math.log(0.75)]])
    >>> round(kl_div(log_q, p, reduction="batchmean").item(), 4)
    0.1438
    """
    op = "kl_div"
    input = _as_float_tensor(op, input)
    target = _float_target(op, target)
    _check_same_shape(op, input, target)
    _check_reduction(op, reduction, ("none", "mean", "sum", "batchmean"))
    loss = KLDiv.apply(input, target, log_target=bool(log_target))
    if reduction == "batchmean":
        batch = input.shape[0] if input.ndim > 0 else 1
        return loss.sum() / batch
    return _reduce(loss, reduction)
