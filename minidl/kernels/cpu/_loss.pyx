# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled softmax cross entropy (see :mod:`minidl.kernels.cpu.loss` for the wrappers).

Each row of the ``(N, C)`` logits is handled in one go, while it sits in the L1 cache:

forward
    :math:`m = \max_c x_c`, :math:`s = \sum_c e^{x_c - m}` (accumulated in float64),
    :math:`\log p_c = (x_c - m) - \log s` written out, and the row's loss
    :math:`-(1-\varepsilon) w_y \log p_y - \frac{\varepsilon}{C}\sum_c w_c \log p_c`
    (0 where the target is ``ignore_index``), plus the row's weight :math:`w_y`.
backward
    :math:`g\,\big((\textstyle\sum_c q_c)\, p_c - q_c\big)` with :math:`p = e^{\log p}` and
    :math:`q_c = (1-\varepsilon) w_y [c = y] + \frac{\varepsilon}{C} w_c` (the reference's
    expression, :func:`minidl.ops.loss.softmax_cross_entropy_backward`).

Rows are shared among OpenMP threads only when there are many values (a classifier's
``(64, 10)`` batch is done by one thread in far less time than a parallel region takes
to start).  ``exp`` and ``log`` are the C library's: a handful per row.
"""

cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, log

cnp.import_array()

cdef enum:
    # below this many logits one thread does all rows
    PARALLEL_MIN = 1 << 15


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef double _forward_row(const floating *x, floating *logp, Py_ssize_t classes,
                         long long target, const floating *weight, long long ignore_index,
                         double eps, floating *loss) noexcept nogil:
    """One row: write ``logp`` and ``loss``; return the row's weight (0 if ignored)."""
    cdef Py_ssize_t c
    cdef floating m = x[0]
    cdef floating log_s
    cdef double s = 0.0, smooth = 0.0, w_t
    cdef floating row_loss
    if target == ignore_index:
        # log p is still written (backward reads it); the row adds no loss and no weight
        w_t = 0.0
    else:
        w_t = 1.0 if weight == NULL else weight[target]
    for c in range(1, classes):
        if x[c] > m:
            m = x[c]
    for c in range(classes):
        s += _exp(<floating>(x[c] - m))
    log_s = <floating>log(s)
    for c in range(classes):
        logp[c] = (x[c] - m) - log_s
    if target == ignore_index:
        loss[0] = 0
        return 0.0
    row_loss = <floating>(-w_t * logp[target])
    if eps > 0:
        for c in range(classes):
            smooth -= logp[c] if weight == NULL else weight[c] * logp[c]
        row_loss = <floating>((1 - eps) * row_loss + (eps / classes) * smooth)
    loss[0] = row_loss
    return w_t


cdef void _backward_row(floating g, const floating *logp, floating *grad,
                        Py_ssize_t classes, long long target, const floating *weight,
                        double weight_sum, long long ignore_index,
                        double eps) noexcept nogil:
    cdef Py_ssize_t c
    cdef floating w_t, hard, coeff, smooth_coef
    if target == ignore_index:
        # exactly 0, even when g is nan (a "mean" over no valid target)
        for c in range(classes):
            grad[c] = 0
        return
    w_t = 1 if weight == NULL else weight[target]
    hard = <floating>(g * (1 - eps)) * w_t
    smooth_coef = <floating>(g * (eps / classes))
    coeff = hard + <floating>(smooth_coef * weight_sum)
    for c in range(classes):
        grad[c] = _exp(logp[c]) * coeff
    grad[target] -= hard
    if eps > 0:
        for c in range(classes):
            grad[c] -= smooth_coef if weight == NULL else smooth_coef * weight[c]


def softmax_cross_entropy_forward(const floating[:, ::1] logits, const long long[::1] target,
                                  const floating[::1] weight, long long ignore_index,
                                  double label_smoothing, floating[::1] loss,
                                  floating[:, ::1] logp, int num_threads):
    """Fill ``loss`` ``(N,)`` and ``logp`` ``(N, C)``; return the total target weight.

    ``target`` is int64 and already checked (each entry in ``[0, C)`` or
    ``ignore_index``); ``weight`` is None or ``(C,)``.  The wrapper in ``loss.py`` checks
    dtypes and layouts and allocates.
    """
    cdef Py_ssize_t rows = logits.shape[0], classes = logits.shape[1], n
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef double total = 0.0
    if rows == 0:
        return 0.0
    if num_threads > 1 and rows * classes >= PARALLEL_MIN:
        for n in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            total += _forward_row(&logits[n, 0], &logp[n, 0], classes, target[n], w,
                                  ignore_index, label_smoothing, &loss[n])
    else:
        with nogil:
            for n in range(rows):
                total += _forward_row(&logits[n, 0], &logp[n, 0], classes, target[n], w,
                                      ignore_index, label_smoothing, &loss[n])
    return total


def softmax_cross_entropy_backward(const floating[:] grad_loss, const floating[:, ::1] logp,
                                   const long long[::1] target, const floating[::1] weight,
                                   double weight_sum, long long ignore_index,
                                   double label_smoothing, floating[:, ::1] grad,
                                   int num_threads):
    """Fill ``grad`` ``(N, C)``.  ``grad_loss`` may be a broadcast (stride 0) view;
    ``weight_sum`` is :math:`\\sum_c w_c` (``C`` without weights)."""
    cdef Py_ssize_t rows = logp.shape[0], classes = logp.shape[1], n
    cdef const floating *w = &weight[0] if weight is not None else NULL
    if rows == 0:
        return
    if num_threads > 1 and rows * classes >= PARALLEL_MIN:
        for n in prange(rows, nogil=True, num_threads=num_threads, schedule="static"):
            _backward_row(grad_loss[n], &logp[n, 0], &grad[n, 0], classes, target[n], w,
                          weight_sum, ignore_index, label_smoothing)
    else:
        with nogil:
            for n in range(rows):
                _backward_row(grad_loss[n], &logp[n, 0], &grad[n, 0], classes, target[n],
                              w, weight_sum, ignore_index, label_smoothing)
