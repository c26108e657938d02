r"""Numba-CUDA softmax cross entropy, registered as the ``"cuda"`` backend.

``softmax_cross_entropy_forward`` and ``softmax_cross_entropy_backward`` have the
signatures and results of the NumPy references in :mod:`minidl.ops.loss`, for ``(N, C)``
logits and an integer ``(N,)`` target (other layouts go to the reference, which runs on
CuPy as well).

Forward: one block per row (grid-striding over rows), the row's classes shared among the
block's threads.  Three block reductions in shared memory give, per row,

.. math::

    m = \max_c x_c, \qquad \log s = \log \sum_c e^{x_c - m}\ \text{(float64)}, \qquad
    \log p_c = (x_c - m) - \log s,

then :math:`l = -(1-\varepsilon) w_y \log p_y - \frac{\varepsilon}{C} \sum_c w_c \log p_c`
(the smoothing sum is a third reduction, only when :math:`\varepsilon > 0`), 0 where
the target is ``ignore_index``.  The total weight :math:`\sum_n w_{y_n}` is the sum of a
per-row array, on the device: no transfer to the host.

Backward: one thread per logit, :math:`g_n ((\sum_c q_c)\, p_{n,c} - q_{n,c})` with
:math:`q_c = (1-\varepsilon) w_y [c = y] + \frac{\varepsilon}{C} w_c`; exactly 0 on
ignored rows.  The class-weight sum :math:`\sum_c w_c` stays a one-element device array.

A target outside ``[0, C)`` (other than ``ignore_index``) is the caller's to reject (the
op checks it); the kernels only make sure never to read outside the row for one, and
give that row a NaN loss.  Importing this module fails with ImportError without Numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from minidl import backend
from minidl.kernels.cuda import _common
from minidl.kernels.cuda._common import MAX_THREADS, block_max, block_sum

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward"]


@cuda.jit
def _forward(x, target, weight, has_weight, ignore_index, eps, loss, logp, row_weight):
    rows, classes = x.shape
    t = x.dtype.type
    shared = cuda.shared.array(MAX_THREADS, float64)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    for n in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        # -inf is the identity of max; float64 holds every float32 exactly
        m = -math.inf
        for c in range(tid, classes, threads):
            value = float64(x[n, c])
            if value > m or value != value:
                m = value
        m = block_max(shared, m)
        m_t = t(m)
        s = 0.0
        for c in range(tid, classes, threads):
            s += math.exp(float64(x[n, c] - m_t))
        s = block_sum(shared, s)
        log_s = t(math.log(s))
        smooth = 0.0
        for c in range(tid, classes, threads):
            value = (x[n, c] - m_t) - log_s
            logp[n, c] = value
            if eps > 0:
                smooth -= float64(weight[c]) * float64(value) if has_weight else float64(value)
        if eps > 0:
            smooth = block_sum(shared, smooth)
        if tid == 0:
            y = target[n]
            if y == ignore_index:
                loss[n] = 0
                row_weight[n] = 0
            elif y < 0 or y >= classes:
                loss[n] = math.nan  # rejected by the op before it gets here
                row_weight[n] = 0
            else:
                w_y = float64(weight[y]) if has_weight else 1.0
                # logp[n, y] written by thread y % threads: this thread's own write, or
                # recomputed (a read would race with the writing thread)
                value = float64((x[n, y] - m_t) - log_s)
                row_loss = -w_y * value
                if eps > 0:
                    row_loss = (1 - eps) * row_loss + (eps / classes) * smooth
                loss[n] = row_loss
                row_weight[n] = w_y
        # thread 0 is done with the shared slots before the next row's reductions
        cuda.syncthreads()


@cuda.jit
def _backward(g, logp, target, weight, has_weight, weight_sum, ignore_index, eps, total,
              grad):
    _, classes = logp.shape
    t = logp.dtype.type
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        n = index // classes
        c = index % classes
        y = target[n]
        if y == ignore_index or y < 0 or y >= classes:
            # exactly 0, even when g is nan (a "mean" over no valid target)
            grad[n, c] = 0
            continue
        w_y = weight[y] if has_weight else t(1)
        hard = t(g[n] * (1 - eps)) * w_y
        smooth_coef = t(g[n] * (eps / classes))
        value = math.exp(logp[n, c]) * (hard + t(smooth_coef * weight_sum[0]))
        if c == y:
            value -= hard
        if eps > 0:
            value -= smooth_coef * weight[c] if has_weight else smooth_coef
        grad[n, c] = value


def _reference(name):
    import minidl.ops.loss  # noqa: F401 - registers the references

    return backend._KERNELS[name]["numpy"]


def _supported(values, target, weight):
    """2-D float logits, an integer ``(N,)`` target, a matching weight or None."""
    if getattr(values, "ndim", 0) != 2 or not _common.usable(values):
        return False
    if getattr(target, "dtype", np.dtype(object)).kind not in "iu" \
            or tuple(target.shape) != tuple(values.shape[:1]):
        return False
    return weight is None or (weight.dtype == values.dtype
                              and tuple(weight.shape) == tuple(values.shape[1:]))


def softmax_cross_entropy_forward(logits, target, weight, ignore_index, label_smoothing):
    r"""Fused log-softmax and weighted NLL on the GPU: see
    :func:`minidl.ops.loss.softmax_cross_entropy_forward` (same signature and results).

    Per row :math:`n`: :math:`\log p = x - \max x - \log\sum e^{x - \max x}` and
    :math:`l_n = -(1-\varepsilon) w_{y_n} \log p_{n,y_n} - \frac{\varepsilon}{C}\sum_c w_c
    \log p_{n,c}` (0 where ignored); returns ``(loss, logp, total_weight)``.  One block
    per row, reductions in shared memory.
    """
    if not _supported(logits, target, weight):
        return _reference("softmax_cross_entropy_forward")(logits, target, weight,
                                                           ignore_index, label_smoothing)
    xp = _common.array_module(logits)
    rows, classes = logits.shape
    dtype = logits.dtype
    loss = xp.empty(rows, dtype=dtype)
    logp = xp.empty(logits.shape, dtype=dtype)
    row_weight = xp.empty(rows, dtype=dtype)
    _common.launch_blocks(
        _forward, rows, classes, logits, target,
        xp.empty(1, dtype=dtype) if weight is None else weight, weight is not None,
        int(ignore_index), float(label_smoothing), loss, logp, row_weight)
    return loss, logp, row_weight.sum()


def softmax_cross_entropy_backward(grad_loss, logp, target, weight, ignore_index,
                                   label_smoothing):
    r"""Gradient of the cross entropy w.r.t. the logits on the GPU: see
    :func:`minidl.ops.loss.softmax_cross_entropy_backward` (same signature and results).

    :math:`\bar x_{n,c} = g_n \big((\sum_c q_c)\, p_{n,c} - q_c\big)`, :math:`q_c =
    (1-\varepsilon) w_{y_n} [c = y_n] + \frac{\varepsilon}{C} w_c`; exactly 0 on ignored
    rows.  One thread per logit.
    """
    if not _supported(logp, target, weight):
        return _reference("softmax_cross_entropy_backward")(grad_loss, logp, target, weight,
                                                            ignore_index, label_smoothing)
    xp = _common.array_module(logp)
    rows, classes = logp.shape
    dtype = logp.dtype
    # a contiguous copy of the (often broadcast, stride-0) row gradients
    g = xp.empty(rows, dtype=dtype)
    g[...] = grad_loss
    if weight is None:
        weight_sum = xp.full(1, classes, dtype=np.float64)
    else:
        weight_sum = weight.sum(dtype=np.float64).reshape(1)  # stays on the device
    grad = xp.empty(logp.shape, dtype=dtype)
    _common.launch(_backward, grad.size, g, logp, target,
                   xp.empty(1, dtype=dtype) if weight is None else weight, weight is not None,
                   weight_sum, int(ignore_index), float(label_smoothing), grad.size, grad)
    return grad


backend.register_kernel("softmax_cross_entropy_forward", "cuda", softmax_cross_entropy_forward)
backend.register_kernel("softmax_cross_entropy_backward", "cuda",
                        softmax_cross_entropy_backward)
