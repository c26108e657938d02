# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled batch normalisation (see :mod:`minidl.kernels.cpu.norm` for the wrappers).

One channel of an ``(N, C, L)`` array is ``N`` runs of ``L`` contiguous values, and
every channel is independent: the channels are shared among OpenMP threads
(``prange``), and each thread does all the work of its channels while their values sit
in its cache (a channel of the W4 workload, 32 x 256 float32 values, is 32 KiB).

Forward (training), per channel
    1. *One* pass for the statistics: :math:`\sum (x - K)` and :math:`\sum (x - K)^2` in
       float64, shifted by the channel's first value :math:`K`.  Then
       :math:`\mu = K + S_1/M` and :math:`\sigma^2 = S_2/M - (S_1/M)^2`.  The shift keeps
       the subtraction harmless: :math:`(\mu - K)^2 \le M\sigma^2` whatever the data, so a
       channel at 1000 with std 0.01 loses nothing (the textbook
       :math:`E[x^2] - E[x]^2` would lose every digit of it in float32).  Float64
       accumulation is as accurate as the reference's corrected two-pass float32 sums.
    2. One pass that writes :math:`y = (x - \bar\mu)\,s + t` in the input's dtype, with
       :math:`\bar\mu` the mean rounded to that dtype, :math:`s = \gamma r` and
       :math:`t = \beta - (\mu - \bar\mu)\, s`: the reference's formula, operation for
       operation (see :func:`minidl.ops.normalization.batch_norm_forward`).

Backward (training), per channel
    1. One pass for :math:`\sum g` and :math:`\sum g\,(x - \bar\mu)` (float64).
    2. One pass that writes
       :math:`\partial L/\partial x = \big(g - (x - \bar\mu)\,p - k\big)\,\gamma r`,
       again the reference's expression with its per-channel constants.

``(N, C)`` inputs (``L = 1``, BatchNorm1d) have a version of their own: there a channel is a
column, read one value per cache line, so each thread walks the rows over its block of
columns instead, with per-column accumulators.

The two reductions are a few lines of C (``mdl_shifted_sums_*``, ``mdl_centred_dot_*``):
a floating-point sum is only vectorised when the compiler may reorder the additions,
which ``#pragma omp simd reduction`` allows for that loop alone (Cython cannot say it).
Like the step kernels of ``_recurrent.pyx`` they are compiled for AVX2 and for the
baseline, and the CPU picks (``target_clones``, GCC on x86-64 Linux).
"""

cimport numpy as cnp
from cython cimport floating

import numpy as np
from cython.parallel cimport prange
from libc.math cimport sqrt

cnp.import_array()

cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define MDL_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define MDL_CLONES
    #endif

    /* s1 += sum(x - shift), s2 += sum((x - shift)^2), accumulated in float64 */
    MDL_CLONES static void mdl_shifted_sums_f32(const float *x, Py_ssize_t n, double shift,
                                                 double *s1, double *s2)
    {
        double a = 0.0, b = 0.0;
        #pragma omp simd reduction(+:a, b)
        for (Py_ssize_t i = 0; i < n; i++) {
            double d = (double)x[i] - shift;
            a += d;
            b += d * d;
        }
        *s1 += a;
        *s2 += b;
    }

    MDL_CLONES static void mdl_shifted_sums_f64(const double *x, Py_ssize_t n, double shift,
                                                 double *s1, double *s2)
    {
        double a = 0.0, b = 0.0;
        #pragma omp simd reduction(+:a, b)
        for (Py_ssize_t i = 0; i < n; i++) {
            double d = x[i] - shift;
            a += d;
            b += d * d;
        }
        *s1 += a;
        *s2 += b;
    }

    /* s_dy += sum(dy), s_dot += sum(dy * (x - centre)), accumulated in float64 */
    MDL_CLONES static void mdl_centred_dot_f32(const float *dy, const float *x, Py_ssize_t n,
                                                double centre, double *s_dy, double *s_dot)
    {
        double a = 0.0, b = 0.0;
        #pragma omp simd reduction(+:a, b)
        for (Py_ssize_t i = 0; i < n; i++) {
            double g = (double)dy[i];
            a += g;
            b += g * ((double)x[i] - centre);
        }
        *s_dy += a;
        *s_dot += b;
    }

    MDL_CLONES static void mdl_centred_dot_f64(const double *dy, const double *x,
                                                Py_ssize_t n, double centre, double *s_dy,
                                                double *s_dot)
    {
        double a = 0.0, b = 0.0;
        #pragma omp simd reduction(+:a, b)
        for (Py_ssize_t i = 0; i < n; i++) {
            a += dy[i];
            b += dy[i] * (x[i] - centre);
        }
        *s_dy += a;
        *s_dot += b;
    }

    /* out = (x - centre) * scale + shift, in the data's dtype (the reference's order) */
    MDL_CLONES static void mdl_affine_f32(const float *restrict x, float *restrict out,
                                           Py_ssize_t n, float centre, float scale,
                                           float shift)
    {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = (x[i] - centre) * scale + shift;
    }

    MDL_CLONES static void mdl_affine_f64(const double *restrict x, double *restrict out,
                                           Py_ssize_t n, double centre, double scale,
                                           double shift)
    {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = (x[i] - centre) * scale + shift;
    }

    /* gx = ((dy - (x - centre) * proj) - k) * gain, in the data's dtype */
    MDL_CLONES static void mdl_bn_grad_f32(const float *restrict dy, const float *restrict x,
                                            float *restrict gx, Py_ssize_t n, float centre,
                                            float proj, float k, float gain)
    {
        for (Py_ssize_t i = 0; i < n; i++)
            gx[i] = ((dy[i] - (x[i] - centre) * proj) - k) * gain;
    }

    MDL_CLONES static void mdl_bn_grad_f64(const double *restrict dy,
                                            const double *restrict x, double *restrict gx,
                                            Py_ssize_t n, double centre, double proj,
                                            double k, double gain)
    {
        for (Py_ssize_t i = 0; i < n; i++)
            gx[i] = ((dy[i] - (x[i] - centre) * proj) - k) * gain;
    }

    /* gx = dy * gain */
    MDL_CLONES static void mdl_scale_f32(const float *restrict dy, float *restrict gx,
                                          Py_ssize_t n, float gain)
    {
        for (Py_ssize_t i = 0; i < n; i++) gx[i] = dy[i] * gain;
    }

    MDL_CLONES static void mdl_scale_f64(const double *restrict dy, double *restrict gx,
                                          Py_ssize_t n, double gain)
    {
        for (Py_ssize_t i = 0; i < n; i++) gx[i] = dy[i] * gain;
    }
    """
    void mdl_shifted_sums_f32(const float *x, Py_ssize_t n, double shift, double *s1,
                              double *s2) noexcept nogil
    void mdl_shifted_sums_f64(const double *x, Py_ssize_t n, double shift, double *s1,
                              double *s2) noexcept nogil
    void mdl_centred_dot_f32(const float *dy, const float *x, Py_ssize_t n, double centre,
                             double *s_dy, double *s_dot) noexcept nogil
    void mdl_centred_dot_f64(const double *dy, const double *x, Py_ssize_t n, double centre,
                             double *s_dy, double *s_dot) noexcept nogil
    void mdl_affine_f32(const float *x, float *out, Py_ssize_t n, float centre, float scale,
                        float shift) noexcept nogil
    void mdl_affine_f64(const double *x, double *out, Py_ssize_t n, double centre,
                        double scale, double shift) noexcept nogil
    void mdl_bn_grad_f32(const float *dy, const float *x, float *gx, Py_ssize_t n,
                         float centre, float proj, float k, float gain) noexcept nogil
    void mdl_bn_grad_f64(const double *dy, const double *x, double *gx, Py_ssize_t n,
                         double centre, double proj, double k, double gain) noexcept nogil
    void mdl_scale_f32(const float *dy, float *gx, Py_ssize_t n, float gain) noexcept nogil
    void mdl_scale_f64(const double *dy, double *gx, Py_ssize_t n, double gain) noexcept nogil


# ----------------------------------------------------------------------------- fused dispatch


cdef inline void _shifted_sums(const floating *x, Py_ssize_t n, double shift, double *s1,
                               double *s2) noexcept nogil:
    if floating is float:
        mdl_shifted_sums_f32(x, n, shift, s1, s2)
    else:
        mdl_shifted_sums_f64(x, n, shift, s1, s2)


cdef inline void _centred_dot(const floating *dy, const floating *x, Py_ssize_t n,
                              double centre, double *s_dy, double *s_dot) noexcept nogil:
    if floating is float:
        mdl_centred_dot_f32(dy, x, n, centre, s_dy, s_dot)
    else:
        mdl_centred_dot_f64(dy, x, n, centre, s_dy, s_dot)


cdef inline void _affine(const floating *x, floating *out, Py_ssize_t n, floating centre,
                         floating scale, floating shift) noexcept nogil:
    if floating is float:
        mdl_affine_f32(x, out, n, centre, scale, shift)
    else:
        mdl_affine_f64(x, out, n, centre, scale, shift)


cdef inline void _bn_grad(const floating *dy, const floating *x, floating *gx, Py_ssize_t n,
                          floating centre, floating proj, floating k,
                          floating gain) noexcept nogil:
    if floating is float:
        mdl_bn_grad_f32(dy, x, gx, n, centre, proj, k, gain)
    else:
        mdl_bn_grad_f64(dy, x, gx, n, centre, proj, k, gain)


cdef inline void _scale(const floating *dy, floating *gx, Py_ssize_t n,
                        floating gain) noexcept nogil:
    if floating is float:
        mdl_scale_f32(dy, gx, n, gain)
    else:
        mdl_scale_f64(dy, gx, n, gain)


# ----------------------------------------------------------------------------- per channel


cdef inline void _statistics(double s1, double s2, double shift, double count,
                             floating *running_mean, floating *running_var, double momentum,
                             double eps, double *mean, double *invstd) noexcept nogil:
    """Mean and 1/std from the shifted sums; the running statistics updated (if given)."""
    cdef double var, var_unbiased
    mean[0] = shift + s1 / count
    var = s2 / count - (s1 / count) * (s1 / count)
    if var < 0.0:  # rounding, when every value is (nearly) the same
        var = 0.0
    invstd[0] = 1.0 / sqrt(var + eps)
    # the reference's running updates: the old value scaled in the stats' dtype, then
    # the float64 batch statistic added (the unbiased variance, as PyTorch)
    if running_mean != NULL:
        running_mean[0] = <floating>(<floating>((<floating>(1.0 - momentum))
                                                * running_mean[0]) + momentum * mean[0])
    if running_var != NULL:
        var_unbiased = var * (count / (count - 1)) if count > 1 else var
        running_var[0] = <floating>(<floating>((<floating>(1.0 - momentum)) * running_var[0])
                                    + momentum * var_unbiased)


cdef inline void _affine_coefficients(double mean, double invstd, const floating *weight,
                                      const floating *bias, floating *centre,
                                      floating *scale, floating *offset) noexcept nogil:
    """y = (x - centre) * scale + offset, the reference's form: the rounding of the mean
    to the data's dtype (``residual``) is folded into the offset."""
    cdef double residual, s
    centre[0] = <floating>mean
    residual = mean - <double>centre[0]
    s = invstd if weight == NULL else invstd * weight[0]
    scale[0] = <floating>s
    offset[0] = <floating>(-residual * s if bias == NULL else bias[0] - residual * s)


cdef inline void _input_grad_coefficients(double mean, double invstd, double gamma,
                                          double sum_dy, double dot, double count,
                                          floating *centre, floating *proj, floating *k,
                                          floating *gain) noexcept nogil:
    """dx = ((dy - (x - centre) * proj) - k) * gain, the reference's expression for
    gamma r (dy - mean(dy) - x_hat mean(dy x_hat))."""
    cdef double residual, p
    centre[0] = <floating>mean
    residual = mean - <double>centre[0]
    p = dot * invstd * invstd / count
    proj[0] = <floating>p
    k[0] = <floating>(sum_dy / count - residual * p)
    gain[0] = <floating>(gamma * invstd)


cdef void _forward_channel(const floating *x, floating *out, Py_ssize_t batch,
                           Py_ssize_t row_stride, Py_ssize_t length,
                           const floating *weight, const floating *bias,
                           floating *running_mean, floating *running_var, bint training,
                           double momentum, double eps, double *mean_out,
                           double *invstd_out) noexcept nogil:
    """Channel ``x[n * row_stride + l]`` (n < batch, l < length) -> ``out``, same layout.

    ``weight``/``bias``/``running_*`` point at this channel's entry (or are NULL)."""
    cdef Py_ssize_t n
    cdef double s1 = 0.0, s2 = 0.0, shift
    cdef floating centre, scale, offset
    if training:
        shift = x[0]
        for n in range(batch):
            _shifted_sums(x + n * row_stride, length, shift, &s1, &s2)
        _statistics(s1, s2, shift, <double>(batch * length), running_mean, running_var,
                    momentum, eps, mean_out, invstd_out)
    else:
        mean_out[0] = running_mean[0]
        invstd_out[0] = 1.0 / sqrt(<double>running_var[0] + eps)
    _affine_coefficients(mean_out[0], invstd_out[0], weight, bias, &centre, &scale, &offset)
    for n in range(batch):
        _affine(x + n * row_stride, out + n * row_stride, length, centre, scale, offset)


cdef void _backward_channel(const floating *dy, const floating *x, floating *gx,
                            Py_ssize_t batch, Py_ssize_t row_stride, Py_ssize_t length,
                            double gamma, double mean, double invstd, bint training,
                            bint need_input, bint need_stats, double *grad_weight,
                            double *grad_bias) noexcept nogil:
    """One channel's gradients; ``grad_weight``/``grad_bias`` point at its entries."""
    cdef Py_ssize_t n
    cdef double sum_dy = 0.0, dot = 0.0
    cdef floating centre = <floating>mean, proj, k, gain
    if need_stats:
        for n in range(batch):
            _centred_dot(dy + n * row_stride, x + n * row_stride, length, <double>centre,
                         &sum_dy, &dot)
        dot = dot - (mean - <double>centre) * sum_dy  # sum(dy * (x - mean))
        grad_bias[0] = sum_dy
        grad_weight[0] = dot * invstd
    if not need_input:
        return
    if not training:
        gain = <floating>(gamma * invstd)
        for n in range(batch):
            _scale(dy + n * row_stride, gx + n * row_stride, length, gain)
        return
    _input_grad_coefficients(mean, invstd, gamma, sum_dy, dot, <double>(batch * length),
                             &centre, &proj, &k, &gain)
    for n in range(batch):
        _bn_grad(dy + n * row_stride, x + n * row_stride, gx + n * row_stride, length, centre,
                 proj, k, gain)


# ----------------------------------------------------------------------------- (N, C) inputs
#
# With L = 1 (BatchNorm1d on (N, C)) a channel is a column: walking it reads one value
# per cache line.  These versions walk the rows instead, each thread over its own block
# of columns, with per-column accumulators (a loop over columns vectorises without
# reordering any sum).


cdef void _forward_columns(const floating *x, floating *out, Py_ssize_t batch,
                           Py_ssize_t channels, Py_ssize_t c0, Py_ssize_t c1,
                           const floating *weight, const floating *bias,
                           floating *running_mean, floating *running_var, bint training,
                           double momentum, double eps, double *mean, double *invstd,
                           double *s1, double *s2, floating *centre, floating *scale,
                           floating *offset) noexcept nogil:
    cdef Py_ssize_t n, c
    cdef const floating *row
    cdef floating *orow
    cdef double d
    if training:
        for c in range(c0, c1):
            s1[c] = 0.0
            s2[c] = 0.0
        for n in range(batch):
            row = x + n * channels
            for c in range(c0, c1):
                d = <double>row[c] - <double>x[c]  # shifted by the column's first value
                s1[c] += d
                s2[c] += d * d
    for c in range(c0, c1):
        if training:
            _statistics(s1[c], s2[c], <double>x[c], <double>batch,
                        running_mean + c if running_mean != NULL else NULL,
                        running_var + c if running_var != NULL else NULL,
                        momentum, eps, &mean[c], &invstd[c])
        else:
            mean[c] = running_mean[c]
            invstd[c] = 1.0 / sqrt(<double>running_var[c] + eps)
        _affine_coefficients(mean[c], invstd[c], weight + c if weight != NULL else NULL,
                             bias + c if bias != NULL else NULL,
                             &centre[c], &scale[c], &offset[c])
    for n in range(batch):
        row = x + n * channels
        orow = out + n * channels
        for c in range(c0, c1):
            orow[c] = (row[c] - centre[c]) * scale[c] + offset[c]


cdef void _backward_columns(const floating *dy, const floating *x, floating *gx,
                            Py_ssize_t batch, Py_ssize_t channels, Py_ssize_t c0,
                            Py_ssize_t c1, const floating *weight, const double *mean,
                            const double *invstd, bint training, bint need_input,
                            bint need_stats, double *grad_weight, double *grad_bias,
                            floating *centre, floating *proj, floating *k,
                            floating *gain) noexcept nogil:
    cdef Py_ssize_t n, c
    cdef const floating *row
    cdef const floating *dyrow
    cdef floating *grow
    cdef double g
    for c in range(c0, c1):
        centre[c] = <floating>mean[c]
    if need_stats:
        for c in range(c0, c1):
            grad_bias[c] = 0.0
            grad_weight[c] = 0.0
        for n in range(batch):
            row = x + n * channels
            dyrow = dy + n * channels
            for c in range(c0, c1):
                g = dyrow[c]
                grad_bias[c] += g
                grad_weight[c] += g * (<double>row[c] - <double>centre[c])
        for c in range(c0, c1):
            # sum(dy (x - mean)), then times r: sum(dy x_hat)
            grad_weight[c] = grad_weight[c] - (mean[c] - <double>centre[c]) * grad_bias[c]
            if need_input and training:
                _input_grad_coefficients(mean[c], invstd[c],
                                         weight[c] if weight != NULL else 1.0, grad_bias[c],
                                         grad_weight[c], <double>batch, &centre[c], &proj[c],
                                         &k[c], &gain[c])
            grad_weight[c] = grad_weight[c] * invstd[c]
    if not need_input:
        return
    if not training:
        for c in range(c0, c1):
            gain[c] = <floating>((weight[c] if weight != NULL else 1.0) * invstd[c])
        for n in range(batch):
            dyrow = dy + n * channels
            grow = gx + n * channels
            for c in range(c0, c1):
                grow[c] = dyrow[c] * gain[c]
        return
    for n in range(batch):
        row = x + n * channels
        dyrow = dy + n * channels
        grow = gx + n * channels
        for c in range(c0, c1):
            grow[c] = ((dyrow[c] - (row[c] - centre[c]) * proj[c]) - k[c]) * gain[c]


# ----------------------------------------------------------------------------- entry points


cdef inline Py_ssize_t _block_start(Py_ssize_t block, Py_ssize_t blocks,
                                    Py_ssize_t channels) noexcept nogil:
    return block * channels // blocks


def batch_norm_forward(floating[:, :, ::1] x, const floating[::1] weight,
                       const floating[::1] bias, floating[::1] running_mean,
                       floating[::1] running_var, bint training, double momentum, double eps,
                       floating[:, :, ::1] out, double[::1] mean, double[::1] invstd,
                       int num_threads):
    """Fill ``out``, ``mean`` and ``invstd`` (and update the running statistics in place).

    ``x`` and ``out`` are C-contiguous ``(N, C, L)``; the ``(C,)`` vectors may be None
    (``running_*`` not in evaluation).  The wrapper in ``norm.py`` checks all that.
    """
    cdef Py_ssize_t batch = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, block, blocks, row_stride = channels * length
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *b = &bias[0] if bias is not None else NULL
    cdef floating *rm = &running_mean[0] if running_mean is not None else NULL
    cdef floating *rv = &running_var[0] if running_var is not None else NULL
    cdef const floating *xp = &x[0, 0, 0]
    cdef floating *op = &out[0, 0, 0]
    cdef double[::1] s1, s2
    cdef floating[:, ::1] coefficients
    if length == 1:
        s1 = np.empty(channels)
        s2 = np.empty(channels)
        coefficients = np.empty((3, channels), dtype=np.asarray(x).dtype)
        blocks = min(channels, num_threads)
        for block in prange(blocks, nogil=True, num_threads=num_threads, schedule="static"):
            _forward_columns(xp, op, batch, channels, _block_start(block, blocks, channels),
                             _block_start(block + 1, blocks, channels), w, b, rm, rv,
                             training, momentum, eps, &mean[0], &invstd[0], &s1[0], &s2[0],
                             &coefficients[0, 0], &coefficients[1, 0], &coefficients[2, 0])
        return
    for c in prange(channels, nogil=True, num_threads=num_threads, schedule="static"):
        _forward_channel(xp + c * length, op + c * length, batch, row_stride, length,
                         w + c if w != NULL else NULL, b + c if b != NULL else NULL,
                         rm + c if rm != NULL else NULL, rv + c if rv != NULL else NULL,
                         training, momentum, eps, &mean[c], &invstd[c])


def batch_norm_backward(const floating[:, :, ::1] grad_out, const floating[:, :, ::1] x,
                        const floating[::1] weight, const double[::1] save_mean,
                        const double[::1] save_invstd, bint training,
                        floating[:, :, ::1] grad_input, double[::1] grad_weight,
                        double[::1] grad_bias, bint need_stats, int num_threads):
    """Fill ``grad_input`` (unless None) and, if ``need_stats``, ``grad_weight`` and
    ``grad_bias`` (``(C,)`` float64, always given: the wrapper returns those asked for).

    Shapes as in :func:`batch_norm_forward`; the wrapper in ``norm.py`` allocates.
    ``need_stats`` must be true when ``grad_input`` is wanted in training.
    """
    cdef Py_ssize_t batch = x.shape[0], channels = x.shape[1], length = x.shape[2]
    cdef Py_ssize_t c, block, blocks, row_stride = channels * length
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *dyp = &grad_out[0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0]
    cdef floating *gxp = &grad_input[0, 0, 0] if grad_input is not None else NULL
    cdef bint need_input = grad_input is not None
    cdef double *gw = &grad_weight[0]
    cdef double *gb = &grad_bias[0]
    cdef floating[:, ::1] coefficients
    if length == 1:
        coefficients = np.empty((4, channels), dtype=np.asarray(x).dtype)
        blocks = min(channels, num_threads)
        for block in prange(blocks, nogil=True, num_threads=num_threads, schedule="static"):
            _backward_columns(dyp, xp, gxp, batch, channels,
                              _block_start(block, blocks, channels),
                              _block_start(block + 1, blocks, channels), w, &save_mean[0],
                              &save_invstd[0], training, need_input, need_stats, gw, gb,
                              &coefficients[0, 0], &coefficients[1, 0], &coefficients[2, 0],
                              &coefficients[3, 0])
        return
    for c in prange(channels, nogil=True, num_threads=num_threads, schedule="static"):
        _backward_channel(dyp + c * length, xp + c * length,
                          gxp + c * length if gxp != NULL else NULL, batch, row_stride,
                          length, w[c] if w != NULL else 1.0, save_mean[c], save_invstd[c],
                          training, need_input, need_stats, gw + c, gb + c)
