"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``.

Both act in place on the ``.grad`` arrays of the given parameters (skipping those whose
``.grad`` is None) and are meant to run between ``loss.backward()`` and
``optimizer.step()``.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np

from ...backend import array_module
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]


def _as_list(tensors):
    """A single Tensor becomes ``[tensor]``; any other iterable is listed."""
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _vector_norm(x, norm_type, xp):
    r"""The p-norm of all entries of ``x`` (any shape), as a 0-d array of x's dtype.

    .. math:: \|x\|_p = \Big(\sum_i |x_i|^p\Big)^{1/p},\quad
              \|x\|_\infty = \max_i |x_i|,\quad \|x\|_{-\infty} = \min_i |x_i|,\quad
              \|x\|_0 = \#\{i : x_i \ne 0\}
    """
    magnitude = xp.abs(x)
    if x.size == 0:
        return xp.zeros((), dtype=x.dtype)
    if norm_type == math.inf:
        return magnitude.max()
    if norm_type == -math.inf:
        return magnitude.min()
    if norm_type == 0:
        return xp.asarray(xp.count_nonzero(x), dtype=x.dtype)
    if norm_type == 1:
        return magnitude.sum()
    if norm_type == 2:
        return xp.sqrt((magnitude * magnitude).sum())
    return (magnitude**norm_type).sum() ** (1.0 / norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""The norm of a collection of tensors, as if they were concatenated into one vector.

    Computed as the norm of the per-tensor norms, which for a p-norm is the same thing:
    :math:`\|(\|g_1\|_p, \ldots, \|g_k\|_p)\|_p`.

    Parameters
    ----------
    tensors : Tensor or iterable of Tensor
        Usually the gradients ``[p.grad for p in params if p.grad is not None]``.
    norm_type : float, default 2.0
        The p of the p-norm; ``math.inf`` for the largest absolute value.
    error_if_nonfinite : bool, default False
        Raise if the total norm is nan or infinite.
    foreach : None
        Accepted for PyTorch compatibility; has no effect.

    Returns
    -------
    Tensor
        0-d, in the tensors' (promoted) dtype; float32 0 for no tensors.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> grads = [minidl.from_numpy(np.array([3.0])), minidl.from_numpy(np.array([4.0]))]
    >>> float(get_total_norm(grads))
    5.0
    """
    arrays = [t.data if isinstance(t, Tensor) else t for t in _as_list(tensors)]
    norm_type = float(norm_type)
    if len(arrays) == 0:
        return Tensor._wrap(np.zeros((), dtype=np.float32))
    xp = array_module(arrays[0])
    norms = [_vector_norm(a, norm_type, xp) for a in arrays]
    dtype = xp.result_type(*norms)
    total = _vector_norm(xp.stack([n.astype(dtype) for n in norms]), norm_type, xp)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} for gradients from "
            f"`parameters` is non-finite ({float(total)}), so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    return Tensor._wrap(total)


def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    r"""Scale the parameters' gradients in place, given their precomputed total norm.

    .. math:: g \leftarrow g \cdot \min\left(\frac{\text{max\_norm}}
              {\text{total\_norm} + 10^{-6}},\ 1\right)

    The factor is clamped at 1, so gradients are only ever scaled down.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Parameters whose ``.grad`` is scaled (those without a gradient are skipped).
    max_norm : float
        Largest allowed norm.
    total_norm : Tensor or float
        The gradients' total norm (from :func:`get_total_norm`).
    foreach : None
        Accepted for PyTorch compatibility; has no effect.
    """
    grads = [p.grad.data for p in _as_list(parameters) if p.grad is not None]
    if len(grads) == 0:
        return
    total = total_norm.data if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    xp = array_module(grads[0])
    total = xp.asarray(total)
    if not np.issubdtype(total.dtype, np.floating):
        total = total.astype(np.float64)
    # computed in the norm's dtype (float32 for float32 gradients), as PyTorch does
    coef = xp.asarray(float(max_norm), dtype=total.dtype) / (
        total + xp.asarray(1e-6, dtype=total.dtype)
    )
    coef = xp.minimum(coef, xp.asarray(1.0, dtype=total.dtype))
    for g in grads:
        g *= coef.astype(g.dtype)


def clip_grad_norm_(
    parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None
):
    r"""Clip the total norm of the parameters' gradients to ``max_norm``, in place.

    The norm is taken over all gradients together, as if concatenated into one vector;
    when it exceeds ``max_norm`` every gradient is multiplied by
    :math:`\text{max\_norm} / (\text{total\_norm} + 10^{-6})`.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Parameters whose gradients are clipped (those without a gradient are skipped).
    max_norm : float
        Largest allowed total norm.
    norm_type : float, default 2.0
        The p of the p-norm; ``math.inf`` (or ``float("inf")``) for the max norm.
    error_if_nonfinite : bool, default False
        Raise a RuntimeError if the total norm is nan or infinite (otherwise the
        gradients are scaled by the non-finite factor, which makes them nan).
    foreach : None
        Accepted for PyTorch compatibility; has no effect.

    Returns
    -------
    Tensor
        The total norm of the gradients *before* clipping (0-d).

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([0.0, 0.0])).requires_grad_()
    >>> w.grad = minidl.from_numpy(np.array([3.0, 4.0]))
    >>> float(clip_grad_norm_([w], max_norm=1.0))
    5.0
    >>> np.round(w.grad.data, 6)
    array([0.6, 0.8])
    """
    if isinstance(parameters, types.GeneratorType):
        parameters = list(parameters)
        if len(parameters) == 0:
            warnings.warn(
                "`parameters` is an empty generator, no gradient clipping will occur.",
                stacklevel=2,
            )
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm)
    return total_norm


def clip_grad_value_(parameters, clip_value, foreach=None):
    r"""Clamp every gradient entry into ``[-clip_value, clip_value]``, in place.

    Parameters
    ----------
    parameters : Tensor or iterable of Tensor
        Parameters whose gradients are clipped (those without a gradient are skipped).
    clip_value : float
        Largest allowed absolute value of a gradient entry.
    foreach : None
        Accepted for PyTorch compatibility; has no effect.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([0.0, 0.0, 0.0])).requires_grad_()
    >>> w.grad = minidl.from_numpy(np.array([-3.0, 0.5, 2.0]))
    >>> clip_grad_value_([w], 1.0)
    >>> w.grad.data
    array([-1. ,  0.5,  1. ])
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.data
            xp = array_module(g)
            xp.clip(g, -clip_value, clip_value, out=g)
