"""Numba softmax cross entropy, registered as the ``"numba"`` backend.

``softmax_cross_entropy_forward`` and ``softmax_cross_entropy_backward`` have the
signatures and results of the NumPy references in :mod:`minidl.ops.loss`, and do what the
C kernels do (``minidl/kernels/cpu/_loss.pyx``): one pass per row of the ``(N, C)``
logits -- max, log-sum-exp (accumulated in float64), ``log p`` and the row's loss forward;
:math:`g\\,((\\sum_c q_c)\\,p - q)` backward.

Rows are shared among threads (``parallel=True``) only when there are many logits; a
classifier's ``(64, 10)`` batch runs on one thread, in less time than starting the
others would take.  Logits that are not 2-D, and other dtypes, go to the reference.
Each dtype compiles once (the optional class weights reach the compiled code as a
zero-length array and a flag) and is cached on disk.  Importing this module fails with
ImportError when Numba is not installed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from minidl import backend

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: from this many logits on, rows are shared among threads
_PARALLEL_MIN = 1 << 15


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def _forward_row(x, logp, target, weight, has_weight, ignore_index, eps):
    """One row: fill ``logp``; return (the row's loss, its weight)."""
    t = x.dtype.type
    classes = x.shape[0]
    m = x[0]
    for c in range(1, classes):
        if x[c] > m:
            m = x[c]
    s = 0.0
    for c in range(classes):
        s += np.exp(x[c] - m)
    log_s = t(math.log(s))
    for c in range(classes):
        logp[c] = (x[c] - m) - log_s
    if target == ignore_index:
        return t(0), 0.0
    w_t = np.float64(weight[target]) if has_weight else 1.0
    loss = -w_t * logp[target]
    if eps > 0:
        smooth = 0.0
        for c in range(classes):
            smooth -= weight[c] * logp[c] if has_weight else logp[c]
        loss = (1 - eps) * loss + (eps / classes) * smooth
    return t(loss), w_t


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def _backward_row(g, logp, grad, target, weight, has_weight, weight_sum, ignore_index, eps):
    t = logp.dtype.type
    classes = logp.shape[0]
    if target == ignore_index:
        # exactly 0, even when g is nan (a "mean" over no valid target)
        for c in range(classes):
            grad[c] = 0
        return
    w_t = weight[target] if has_weight else t(1)
    hard = t(g * (1 - eps)) * w_t
    smooth_coef = t(g * (eps / classes))
    coeff = hard + t(smooth_coef * weight_sum)
    for c in range(classes):
        grad[c] = np.exp(logp[c]) * coeff
    grad[target] -= hard
    if eps > 0:
        for c in range(classes):
            grad[c] -= smooth_coef * weight[c] if has_weight else smooth_coef


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def _forward(x, target, weight, has_weight, ignore_index, eps, loss, logp):
    total = 0.0
    for n in range(x.shape[0]):
        loss[n], w = _forward_row(x[n], logp[n], target[n], weight, has_weight,
                                  ignore_index, eps)
        total += w
    return total


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _forward_parallel(x, target, weight, has_weight, ignore_index, eps, loss, logp):
    total = 0.0
    for n in numba.prange(x.shape[0]):
        loss[n], w = _forward_row(x[n], logp[n], target[n], weight, has_weight,
                                  ignore_index, eps)
        total += w
    return total


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def _backward(g, logp, target, weight, has_weight, weight_sum, ignore_index, eps, grad):
    for n in range(logp.shape[0]):
        _backward_row(g[n], logp[n], grad[n], target[n], weight, has_weight, weight_sum,
                      ignore_index, eps)


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _backward_parallel(g, logp, target, weight, has_weight, weight_sum, ignore_index, eps,
                       grad):
    for n in numba.prange(logp.shape[0]):
        _backward_row(g[n], logp[n], grad[n], target[n], weight, has_weight, weight_sum,
                      ignore_index, eps)


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


def _parallel(size):
    if size < _PARALLEL_MIN:
        return False
    numba.set_num_threads(min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    return True


def softmax_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    """See :func:`minidl.ops.loss.softmax_cross_entropy_forward` (same signature and
    results)."""
    if not _supported(logits, target, weight):
        return _reference("softmax_cross_entropy_forward")(logits, target, weight,
                                                           ignore_index, label_smoothing)
    logits = np.ascontiguousarray(logits)
    dtype = logits.dtype
    loss = np.empty(logits.shape[0], dtype=dtype)
    logp = np.empty_like(logits)
    run = _forward_parallel if _parallel(logits.size) else _forward
    total = run(logits, np.ascontiguousarray(target, dtype=np.int64),
                np.empty(0, dtype) if weight is None else np.ascontiguousarray(weight),
                weight is not None, int(ignore_index), float(label_smoothing), loss, logp)
    return loss, logp, dtype.type(total)


def softmax_cross_entropy_backward(grad_loss, logp, target, weight, ignore_index,
                                   label_smoothing):
    """See :func:`minidl.ops.loss.softmax_cross_entropy_backward` (same signature and
    results)."""
    if not _supported(logp, target, weight):
        return _reference("softmax_cross_entropy_backward")(grad_loss, logp, target, weight,
                                                            ignore_index, label_smoothing)
    logp = np.ascontiguousarray(logp)
    dtype = logp.dtype
    # a fresh contiguous copy of the (often broadcast, stride-0) row gradients: one
    # compiled signature instead of one per layout and read-only flag
    g = np.empty(logp.shape[0], dtype=dtype)
    g[...] = grad_loss
    weight_sum = float(logp.shape[1]) if weight is None else float(weight.sum())
    grad = np.empty_like(logp)
    run = _backward_parallel if _parallel(logp.size) else _backward
    run(g, logp, np.ascontiguousarray(target, dtype=np.int64),
        np.empty(0, dtype) if weight is None else np.ascontiguousarray(weight),
        weight is not None, weight_sum, int(ignore_index), float(label_smoothing), grad)
    return grad


backend.register_kernel("softmax_cross_entropy_forward", "numba", softmax_cross_entropy_forward)
backend.register_kernel("softmax_cross_entropy_backward", "numba",
                        softmax_cross_entropy_backward)
