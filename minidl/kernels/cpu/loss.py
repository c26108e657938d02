"""Compiled softmax cross entropy, registered as the ``cpu`` backend.

``softmax_cross_entropy_forward`` and ``softmax_cross_entropy_backward`` have the
signatures and results of the NumPy references in :mod:`minidl.ops.loss` (read their
docstrings).  The extension :mod:`minidl.kernels.cpu._loss` takes 2-D ``(N, C)`` logits
of float32 or float64; these wrappers allocate the outputs, convert the targets to int64
and hand anything else (``(N, C, d1, ...)`` logits, other dtypes) to the reference.

Importing this module raises ``ImportError`` when the extension is not built; the
registry then reports the ``cpu`` backend as unavailable for these kernels.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.kernels.cpu import _loss

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: below this many logits the rows run on one thread (the extension's own threshold);
#: asking for the thread count costs more than such a call
_PARALLEL_MIN = 1 << 15


def _threads(size):
    return backend.get_num_threads() if size >= _PARALLEL_MIN else 1


def _reference(name):
    import minidl.ops.loss  # noqa: F401 - registers the references

    return backend._KERNELS[name]["numpy"]


def _supported(values, target, weight):
    """2-D float logits, an integer ``(N,)`` target, a matching weight or None."""
    if not (isinstance(values, np.ndarray) and values.ndim == 2 and values.dtype in _FLOATS):
        return False
    if not (isinstance(target, np.ndarray) and target.shape == values.shape[:1]
            and target.dtype.kind in "iu"):
        return False
    return weight is None or (isinstance(weight, np.ndarray) and weight.dtype == values.dtype
                              and weight.shape == values.shape[1:])


def _int64(target):
    return np.ascontiguousarray(target, dtype=np.int64)


def softmax_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """See :func:`minidl.ops.loss.softmax_cross_entropy_forward` (same signature and
    results)."""
    if not _supported(logits, target, weight):
        return _reference("softmax_cross_entropy_forward")(logits, target, weight,
                                                           ignore_index, label_smoothing)
    logits = np.ascontiguousarray(logits)
    if weight is not None:
        weight = np.ascontiguousarray(weight)
    loss = np.empty(logits.shape[0], dtype=logits.dtype)
    logp = np.empty_like(logits)
    total = _loss.softmax_cross_entropy_forward(
        logits, _int64(target), weight, int(ignore_index), float(label_smoothing), loss, logp,
        _threads(logits.size),
    )
    return loss, logp, logits.dtype.type(total)


def softmax_cross_entropy_backward(grad_loss, logp, target, weight, ignore_index,
                                   label_smoothing):
    """See :func:`minidl.ops.loss.softmax_cross_entropy_backward` (same signature and
    results)."""
    if not _supported(logp, target, weight):
        return _reference("softmax_cross_entropy_backward")(grad_loss, logp, target, weight,
                                                            ignore_index, label_smoothing)
    logp = np.ascontiguousarray(logp)
    # any strides will do (the "mean" reduction passes a stride-0 broadcast view); only
    # the dtype and shape must match
    if not (isinstance(grad_loss, np.ndarray) and grad_loss.dtype == logp.dtype
            and grad_loss.shape == logp.shape[:1]):
        grad_loss = np.broadcast_to(np.asarray(grad_loss, dtype=logp.dtype), logp.shape[:1])
    if weight is not None:
        weight = np.ascontiguousarray(weight)
        weight_sum = float(weight.sum())
    else:
        weight_sum = float(logp.shape[1])
    grad = np.empty_like(logp)
    _loss.softmax_cross_entropy_backward(
        grad_loss, logp, _int64(target), weight, weight_sum, int(ignore_index),
        float(label_smoothing), grad, _threads(logp.size),
    )
    return grad


backend.register_kernel("softmax_cross_entropy_forward", "cpu", softmax_cross_entropy_forward)
backend.register_kernel("softmax_cross_entropy_backward", "cpu", softmax_cross_entropy_backward)
