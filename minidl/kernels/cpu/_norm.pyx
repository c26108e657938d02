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

The two reductions are a few lines of C (``mdl_shifted_sums_*``, ``mdl_centred_dot_*``):
a floating-point sum is only vectorised when the compiler may reorder the additions,
which ``#pragma omp simd reduction`` allows for that loop alone (Cython cannot say it).
Like the step kernels of ``_recurrent.pyx`` they are compiled for AVX2 and for the
baseline, and the CPU picks (``target_clones``, GCC on x86-64 Linux).
"""

cimport numpy as cnp
from cython cimport floating
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


# ----------------------------------------------------------------------------- one channel


cdef void _forward_channel(const floating *x, floating *out, Py_ssize_t batch,
                           Py_ssize_t row_stride, Py_ssize_t length,
                           const floating *weight, const floating *bias,
                           floating *running_mean, floating *running_var, bint training,
                           double momentum, double eps, double *mean_out,
                           double *invstd_out) noexcept nogil:
    """Channel ``x[n * row_stride + l]`` (n < batch, l < length) -> ``out``, same layout.

    ``weight``/``bias``/``running_*`` point at this channel's entry (or are NULL)."""
    cdef Py_ssize_t n
    cdef double count = <double>(batch * length)
    cdef double s1 = 0.0, s2 = 0.0, shift, mean, var, var_unbiased, invstd
    cdef double residual, scale, offset
    cdef floating centre
    if training:
        shift = x[0]
        for n in range(batch):
            _shifted_sums(x + n * row_stride, length, shift, &s1, &s2)
        mean = shift + s1 / count
        var = s2 / count - (s1 / count) * (s1 / count)
        if var < 0.0:  # rounding, when every value is (nearly) the same
            var = 0.0
        invstd = 1.0 / sqrt(var + eps)
        # the reference's running updates: the old value scaled in the stats' dtype,
        # then the float64 batch statistic added (unbiased variance, as PyTorch)
        if running_mean != NULL:
            running_mean[0] = <floating>(<floating>((<floating>(1.0 - momentum))
                                                    * running_mean[0]) + momentum * mean)
        if running_var != NULL:
            if count > 1:
                var_unbiased = var * (count / (count - 1))
            else:
                var_unbiased = var
            running_var[0] = <floating>(<floating>((<floating>(1.0 - momentum))
                                                   * running_var[0])
                                        + momentum * var_unbiased)
    else:
        mean = running_mean[0]
        invstd = 1.0 / sqrt(<double>running_var[0] + eps)
    mean_out[0] = mean
    invstd_out[0] = invstd
    # y = (x - centre) * scale + (bias - residual * scale): the rounding of the mean to
    # the data's dtype folded into the shift
    centre = <floating>mean
    residual = mean - <double>centre
    scale = invstd if weight == NULL else invstd * weight[0]
    offset = -residual * scale if bias == NULL else bias[0] - residual * scale
    for n in range(batch):
        _affine(x + n * row_stride, out + n * row_stride, length, centre, <floating>scale,
                <floating>offset)


cdef void _backward_channel(const floating *dy, const floating *x, floating *gx,
                            Py_ssize_t batch, Py_ssize_t row_stride, Py_ssize_t length,
                            double gamma, double mean, double invstd, bint training,
                            bint need_input, bint need_stats, double *grad_weight,
                            double *grad_bias) noexcept nogil:
    """One channel's gradients; ``grad_weight``/``grad_bias`` point at its entries."""
    cdef Py_ssize_t n
    cdef double count = <double>(batch * length)
    cdef double sum_dy = 0.0, dot = 0.0, proj, gamma_invstd = gamma * invstd
    cdef floating centre = <floating>mean
    cdef double residual = mean - <double>centre
    if need_stats:
        for n in range(batch):
            _centred_dot(dy + n * row_stride, x + n * row_stride, length, <double>centre,
                         &sum_dy, &dot)
        dot = dot - residual * sum_dy  # sum(dy * (x - mean))
        grad_bias[0] = sum_dy
        grad_weight[0] = dot * invstd
    if not need_input:
        return
    if not training:
        for n in range(batch):
            _scale(dy + n * row_stride, gx + n * row_stride, length, <floating>gamma_invstd)
        return
    # dx = gamma r (dy - mean(dy) - x_hat mean(dy x_hat)), with x_hat = (x - centre - res) r
    proj = dot * invstd * invstd / count
    for n in range(batch):
        _bn_grad(dy + n * row_stride, x + n * row_stride, gx + n * row_stride, length, centre,
                 <floating>proj, <floating>(sum_dy / count - residual * proj),
                 <floating>gamma_invstd)


# ----------------------------------------------------------------------------- entry points


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
    cdef Py_ssize_t c, row_stride = channels * length
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *b = &bias[0] if bias is not None else NULL
    cdef floating *rm = &running_mean[0] if running_mean is not None else NULL
    cdef floating *rv = &running_var[0] if running_var is not None else NULL
    cdef const floating *xp = &x[0, 0, 0]
    cdef floating *op = &out[0, 0, 0]
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
    cdef Py_ssize_t c, row_stride = channels * length
    cdef const floating *w = &weight[0] if weight is not None else NULL
    cdef const floating *dyp = &grad_out[0, 0, 0]
    cdef const floating *xp = &x[0, 0, 0]
    cdef floating *gxp = &grad_input[0, 0, 0] if grad_input is not None else NULL
    cdef bint need_input = grad_input is not None
    cdef double *gw = &grad_weight[0]
    cdef double *gb = &grad_bias[0]
    for c in prange(channels, nogil=True, num_threads=num_threads, schedule="static"):
        _backward_channel(dyp + c * length, xp + c * length,
                          gxp + c * length if gxp != NULL else NULL, batch, row_stride,
                          length, w[c] if w != NULL else 1.0, save_mean[c], save_invstd[c],
                          training, need_input, need_stats, gw + c, gb + c)
