# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled pointwise LSTM and GRU steps (see :mod:`minidl.kernels.cpu.recurrent`).

These four kernels run once per time step inside the loops of
:mod:`minidl.ops.recurrent` (512 calls per BiLSTM forward on a 256-residue batch), on
small blocks: a batch of 16 and a hidden size of 128 are 8192 gate values.  Three
things decide their speed:

1. **The cost of the call.**  The arguments are typed ``ndarray`` (a type check each) and
   read through ``PyArray_DATA``/``PyArray_STRIDES``, not typed memoryviews: acquiring
   five memoryviews costs more than the arithmetic of a backward step.  Nothing is
   allocated.
2. **Vectorised gate math.**  The C library's ``expf``/``tanhf`` are scalar calls, and
   with the portable compiler flags (no ``-ffast-math``) the C compiler never swaps them
   for vector versions.  So ``exp`` and ``tanh`` are written below as short, branch-free
   polynomials (Cephes' coefficients, accurate to 1-2 units in the last place), which
   the compiler inlines and vectorises like any arithmetic.
3. **One fused loop per row**, written in C (the ``mdl_*_row`` functions) because two
   things it needs cannot be said in Cython: ``restrict`` (the output blocks do not
   overlap the inputs; without it the compiler vectorises only after runtime overlap
   checks, and gives up beyond a few arrays) and ``target_clones`` (an AVX2 and a
   baseline version of each function, the CPU picking at load time).  Cython does the
   rest: argument checks, the float32/float64 dispatch, the loop over the rows.

The formulas, and the order of the floating-point operations, are those of the NumPy
references in :mod:`minidl.ops.recurrent` (e.g. :math:`\tanh` of a gate as
:math:`2\sigma(2a) - 1`), so results agree to the last bit or two (the backward to the
bit).  The cell state's :math:`\tanh(c)` uses the polynomial ``mdl_tanhf`` below, where
the reference calls NumPy's ``tanh``: both are within 2 ulp of the true value.

No OpenMP here: at these sizes a step is a few microseconds, which a parallel region's
start-up and the hand-over of the cores to OpenBLAS (the GEMM between two steps) would
eat.  Measured on W3 (BiLSTM, N=16, H=128, 2 cores): the forward kernel with
``prange(num_threads=2)`` over the rows made a training step 100x *slower* (the OpenMP
and OpenBLAS threads spin against each other).
"""

cimport numpy as cnp
from cython cimport floating

cnp.import_array()

cdef extern from *:
    """
    #include <stdint.h>

    /* NOTE: every choice below is made with a plain C ternary avoided on purpose: GCC
     * turns `x > hi ? hi : x` into a branch (and then refuses to vectorise the loop)
     * unless it may ignore NaN, which the portable flags do not allow.  A select written
     * with bit masks is branch-free for any input, NaN included. */
    typedef union { float f; uint32_t u; } mdl_bits32;
    typedef union { double f; uint64_t u; } mdl_bits64;

    /* cond ? a : b, branch-free */
    static inline float mdl_selectf(int cond, float a, float b)
    {
        mdl_bits32 x, y;
        uint32_t mask = -(uint32_t)(cond != 0);
        x.f = a;
        y.f = b;
        x.u = (x.u & mask) | (y.u & ~mask);
        return x.f;
    }

    static inline double mdl_select(int cond, double a, double b)
    {
        mdl_bits64 x, y;
        uint64_t mask = -(uint64_t)(cond != 0);
        x.f = a;
        y.f = b;
        x.u = (x.u & mask) | (y.u & ~mask);
        return x.f;
    }

    /* exp(x) in float32 (Cephes expf): exp(x) = 2^n exp(r) with n = round(x / ln 2) and
     * r = x - n ln 2 (ln 2 in two parts, so r is exact), exp(r) by a polynomial on
     * |r| <= ln(2)/2.  The input is clamped to [-87, 88], where 2^n is a normal float:
     * exp(88) = 1.7e38 stands in for an overflow, which keeps the limits of
     * 1 / (1 + exp(x)) right.  NaN passes through. */
    static inline float mdl_expf(float x)
    {
        mdl_bits32 k, scale;
        float n, r, p;
        x = mdl_selectf(x > 88.0f, 88.0f, x);
        x = mdl_selectf(x < -87.0f, -87.0f, x);
        /* adding 1.5 * 2^23 rounds x / ln 2 to an integer held in the low mantissa bits */
        k.f = x * 1.44269504088896341f + 12582912.0f;
        n = k.f - 12582912.0f;
        r = x - n * 0.693359375f;
        r = r - n * -2.12194440e-4f;
        p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * r * r + r + 1.0f;
        scale.u = (k.u - 0x4b400000u + 127u) << 23;  /* the bits of 2^n */
        return p * scale.f;
    }

    /* exp(x) in float64 (Cephes exp: a Pade form on |r| <= ln(2)/2), clamped to
     * [-708, 708]. */
    static inline double mdl_exp(double x)
    {
        mdl_bits64 k, scale;
        double n, r, rr, px, qx;
        x = mdl_select(x > 708.0, 708.0, x);
        x = mdl_select(x < -708.0, -708.0, x);
        k.f = x * 1.4426950408889634073599 + 6755399441055744.0;  /* + 1.5 * 2^52 */
        n = k.f - 6755399441055744.0;
        r = x - n * 6.93145751953125e-1;
        r = r - n * 1.42860682030941723212e-6;
        rr = r * r;
        px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
                  + 9.99999999999999999910e-1);
        qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
              + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0;
        scale.u = (k.u - 0x4338000000000000ull + 1023ull) << 52;
        return (1.0 + 2.0 * px / (qx - px)) * scale.f;
    }

    /* tanh(x) in float32 (Cephes tanhf): an odd polynomial below |x| = 0.625 keeps the
     * relative accuracy near 0; above, 1 - 2 / (exp(2|x|) + 1), given x's sign. */
    static inline float mdl_tanhf(float x)
    {
        mdl_bits32 v, big;
        float a, z, small;
        v.f = x;
        v.u &= 0x7fffffffu;
        a = v.f;  /* |x| */
        z = x * x;
        small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z
                   - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z
                 - 3.33332819422e-1f) * z * x + x;
        big.f = 1.0f - 2.0f / (mdl_expf(a + a) + 1.0f);  /* >= 0 */
        v.f = x;
        big.u |= v.u & 0x80000000u;  /* x's sign */
        return mdl_selectf(a < 0.625f, small, big.f);
    }

    /* tanh(x) in float64 (Cephes tanh: x + x^3 P(x^2) / Q(x^2) below 0.625). */
    static inline double mdl_tanh(double x)
    {
        mdl_bits64 v, big;
        double a, z, p, q, small;
        v.f = x;
        v.u &= 0x7fffffffffffffffull;
        a = v.f;
        z = x * x;
        p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z
            - 1.61468768441708447952e3;
        q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z
            + 4.84406305325125486048e3;
        small = x + x * z * p / q;
        big.f = 1.0 - 2.0 / (mdl_exp(a + a) + 1.0);
        v.f = x;
        big.u |= v.u & 0x8000000000000000ull;
        return mdl_select(a < 0.625, small, big.f);
    }

    /* Every row function below is compiled twice, for AVX2 and for the baseline
     * (SSE2), and the loader picks the one the CPU runs (target_clones, GCC on x86-64
     * Linux): AVX2 computes the polynomials about 2.5x faster, and the extension stays
     * portable.  Both clones do the same operations in the same order (no FMA), so
     * results do not depend on the CPU. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define MDL_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define MDL_CLONES
    #endif

    /* The forward rows: one fused loop over the hidden units, all four gates and the
     * cell at once (the reference's formulas and operation order). */
    #define MDL_LSTM_FORWARD_ROW(T, NAME, EXP, TANH)                                    \
    MDL_CLONES static void NAME(                                                        \
        T *restrict i, T *restrict f, T *restrict g, T *restrict o,                     \
        const T *restrict c_prev, T *restrict c, T *restrict tanh_c, T *restrict h,     \
        Py_ssize_t hidden)                                                              \
    {                                                                                   \
        for (Py_ssize_t j = 0; j < hidden; j++) {                                       \
            T ij = 1 / (1 + EXP(-i[j]));                                                \
            T fj = 1 / (1 + EXP(-f[j]));                                                \
            T gj = 1 / (1 + EXP(-(2 * g[j]))) * 2 - 1;  /* tanh(a) = 2 sigma(2a) - 1 */ \
            T oj = 1 / (1 + EXP(-o[j]));                                                \
            T cj = fj * c_prev[j] + ij * gj;                                            \
            T tc = TANH(cj);                                                            \
            i[j] = ij;                                                                  \
            f[j] = fj;                                                                  \
            g[j] = gj;                                                                  \
            o[j] = oj;                                                                  \
            c[j] = cj;                                                                  \
            tanh_c[j] = tc;                                                             \
            h[j] = oj * tc;                                                             \
        }                                                                               \
    }
    MDL_LSTM_FORWARD_ROW(float, mdl_lstm_forward_row_f32, mdl_expf, mdl_tanhf)
    MDL_LSTM_FORWARD_ROW(double, mdl_lstm_forward_row_f64, mdl_exp, mdl_tanh)

    #define MDL_GRU_FORWARD_ROW(T, NAME, EXP, TANH)                                     \
    MDL_CLONES static void NAME(                                                        \
        const T *restrict xr, const T *restrict xz, const T *restrict xn,               \
        const T *restrict hr, const T *restrict hz, const T *restrict hn_in,            \
        const T *restrict h_prev, T *restrict r, T *restrict z, T *restrict n,          \
        T *restrict hn, T *restrict h, Py_ssize_t hidden)                               \
    {                                                                                   \
        for (Py_ssize_t j = 0; j < hidden; j++) {                                       \
            T rj = 1 / (1 + EXP(-(xr[j] + hr[j])));                                     \
            T zj = 1 / (1 + EXP(-(xz[j] + hz[j])));                                     \
            T hnj = hn_in[j];                                                           \
            T nj = TANH(rj * hnj + xn[j]);  /* PyTorch's GRU: r (W_hn h + b_hn) */      \
            r[j] = rj;                                                                  \
            z[j] = zj;                                                                  \
            n[j] = nj;                                                                  \
            hn[j] = hnj;                                                                \
            h[j] = (h_prev[j] - nj) * zj + nj;  /* (1 - z) n + z h_prev */              \
        }                                                                               \
    }
    MDL_GRU_FORWARD_ROW(float, mdl_gru_forward_row_f32, mdl_expf, mdl_tanhf)
    MDL_GRU_FORWARD_ROW(double, mdl_gru_forward_row_f64, mdl_exp, mdl_tanh)

    /* The backward rows: plain arithmetic, one fused loop each.  `restrict` tells the
     * compiler that the output blocks do not overlap the inputs (true: the references'
     * arrays are distinct), so it vectorises without runtime overlap checks; a macro
     * writes the float and the double version from one body. */
    #define MDL_LSTM_BACKWARD_ROW(T, NAME)                                              \
    MDL_CLONES static void NAME(                                                        \
        const T *restrict i, const T *restrict f, const T *restrict g,                  \
        const T *restrict o, const T *restrict c_prev, const T *restrict tanh_c,        \
        const T *restrict grad_h, T *restrict grad_c, T *restrict di, T *restrict df,   \
        T *restrict dg, T *restrict d_o, Py_ssize_t hidden)                             \
    {                                                                                   \
        for (Py_ssize_t j = 0; j < hidden; j++) {                                       \
            /* dL/do = dh tanh(c); dL/dc += dh o (1 - tanh^2 c) = o (dh - do tanh c) */ \
            T grad_o = grad_h[j] * tanh_c[j];                                           \
            T gc = grad_c[j] + (grad_h[j] - grad_o * tanh_c[j]) * o[j];                 \
            /* through c = f c_prev + i g; sigma' = (1 - s) s, tanh' = (1 - t)(t + 1) */ \
            di[j] = gc * g[j] * ((1 - i[j]) * i[j]);                                    \
            df[j] = gc * c_prev[j] * ((1 - f[j]) * f[j]);                               \
            dg[j] = gc * i[j] * ((1 - g[j]) * (g[j] + 1));                              \
            d_o[j] = grad_o * ((1 - o[j]) * o[j]);                                      \
            grad_c[j] = gc * f[j];  /* dL/dc_{t-1} */                                   \
        }                                                                               \
    }
    MDL_LSTM_BACKWARD_ROW(float, mdl_lstm_backward_row_f32)
    MDL_LSTM_BACKWARD_ROW(double, mdl_lstm_backward_row_f64)

    #define MDL_GRU_BACKWARD_ROW(T, NAME)                                               \
    MDL_CLONES static void NAME(                                                        \
        const T *restrict r, const T *restrict z, const T *restrict n,                  \
        const T *restrict hn, const T *restrict h_prev, T *restrict grad_h,             \
        T *restrict dr, T *restrict dz, T *restrict dn, T *restrict hdr,                \
        T *restrict hdz, T *restrict hdn, Py_ssize_t hidden)                            \
    {                                                                                   \
        for (Py_ssize_t j = 0; j < hidden; j++) {                                       \
            T gh = grad_h[j];                                                           \
            /* n block: d/dn of n + z (h_prev - n) is 1 - z; tanh' = 1 - n^2 */         \
            T grad_n = (gh - gh * z[j]) * (1 - n[j] * n[j]);                            \
            /* z block: d/dz is h_prev - n; sigmoid' = z (1 - z) */                     \
            T grad_z = (h_prev[j] - n[j]) * gh * (z[j] - z[j] * z[j]);                  \
            /* r block: n's pre-activation holds r * hn */                              \
            T grad_r = grad_n * hn[j] * (r[j] - r[j] * r[j]);                           \
            dr[j] = grad_r;                                                             \
            dz[j] = grad_z;                                                             \
            dn[j] = grad_n;                                                             \
            hdr[j] = grad_r;  /* r and z: the same for x_gates and h_gates */           \
            hdz[j] = grad_z;                                                            \
            hdn[j] = grad_n * r[j];                                                     \
            grad_h[j] = gh * z[j];  /* the direct part of dL/dh_{t-1} */                \
        }                                                                               \
    }
    MDL_GRU_BACKWARD_ROW(float, mdl_gru_backward_row_f32)
    MDL_GRU_BACKWARD_ROW(double, mdl_gru_backward_row_f64)
    """
    void mdl_lstm_forward_row_f32(float *i, float *f, float *g, float *o,
                                  const float *c_prev, float *c, float *tanh_c, float *h,
                                  Py_ssize_t hidden) noexcept nogil
    void mdl_lstm_forward_row_f64(double *i, double *f, double *g, double *o,
                                  const double *c_prev, double *c, double *tanh_c, double *h,
                                  Py_ssize_t hidden) noexcept nogil
    void mdl_gru_forward_row_f32(const float *xr, const float *xz, const float *xn,
                                 const float *hr, const float *hz, const float *hn_in,
                                 const float *h_prev, float *r, float *z, float *n,
                                 float *hn, float *h, Py_ssize_t hidden) noexcept nogil
    void mdl_gru_forward_row_f64(const double *xr, const double *xz, const double *xn,
                                 const double *hr, const double *hz, const double *hn_in,
                                 const double *h_prev, double *r, double *z, double *n,
                                 double *hn, double *h, Py_ssize_t hidden) noexcept nogil
    void mdl_lstm_backward_row_f32(const float *i, const float *f, const float *g,
                                   const float *o, const float *c_prev, const float *tanh_c,
                                   const float *grad_h, float *grad_c, float *di, float *df,
                                   float *dg, float *d_o, Py_ssize_t hidden) noexcept nogil
    void mdl_lstm_backward_row_f64(const double *i, const double *f, const double *g,
                                   const double *o, const double *c_prev,
                                   const double *tanh_c, const double *grad_h,
                                   double *grad_c, double *di, double *df, double *dg,
                                   double *d_o, Py_ssize_t hidden) noexcept nogil
    void mdl_gru_backward_row_f32(const float *r, const float *z, const float *n,
                                  const float *hn, const float *h_prev, float *grad_h,
                                  float *dr, float *dz, float *dn, float *hdr, float *hdz,
                                  float *hdn, Py_ssize_t hidden) noexcept nogil
    void mdl_gru_backward_row_f64(const double *r, const double *z, const double *n,
                                  const double *hn, const double *h_prev, double *grad_h,
                                  double *dr, double *dz, double *dn, double *hdr,
                                  double *hdz, double *hdn, Py_ssize_t hidden) noexcept nogil


# ----------------------------------------------------------------------------- LSTM


cdef void _lstm_forward(floating *gates, Py_ssize_t gates_stride,
                        const floating *c_prev, Py_ssize_t c_prev_stride,
                        floating *c_out, Py_ssize_t c_stride,
                        floating *tanh_c_out, Py_ssize_t tanh_c_stride,
                        floating *h_out, Py_ssize_t h_stride,
                        Py_ssize_t rows, Py_ssize_t hidden) noexcept nogil:
    cdef Py_ssize_t b
    cdef floating *a
    for b in range(rows):
        a = gates + b * gates_stride  # [i, f, g, o]
        if floating is float:
            mdl_lstm_forward_row_f32(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                     c_prev + b * c_prev_stride, c_out + b * c_stride,
                                     tanh_c_out + b * tanh_c_stride, h_out + b * h_stride,
                                     hidden)
        else:
            mdl_lstm_forward_row_f64(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                     c_prev + b * c_prev_stride, c_out + b * c_stride,
                                     tanh_c_out + b * tanh_c_stride, h_out + b * h_stride,
                                     hidden)


cdef void _lstm_backward(const floating *gates, Py_ssize_t gates_stride,
                         const floating *c_prev, Py_ssize_t c_prev_stride,
                         const floating *tanh_c, Py_ssize_t tanh_c_stride,
                         const floating *grad_h, Py_ssize_t grad_h_stride,
                         floating *grad_c, Py_ssize_t grad_c_stride,
                         floating *grad_gates, Py_ssize_t grad_gates_stride,
                         Py_ssize_t rows, Py_ssize_t hidden) noexcept nogil:
    cdef Py_ssize_t b
    cdef const floating *a
    cdef floating *d
    for b in range(rows):
        a = gates + b * gates_stride  # [i, f, g, o]
        d = grad_gates + b * grad_gates_stride
        if floating is float:
            mdl_lstm_backward_row_f32(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                      c_prev + b * c_prev_stride, tanh_c + b * tanh_c_stride,
                                      grad_h + b * grad_h_stride, grad_c + b * grad_c_stride,
                                      d, d + hidden, d + 2 * hidden, d + 3 * hidden, hidden)
        else:
            mdl_lstm_backward_row_f64(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                      c_prev + b * c_prev_stride, tanh_c + b * tanh_c_stride,
                                      grad_h + b * grad_h_stride, grad_c + b * grad_c_stride,
                                      d, d + hidden, d + 2 * hidden, d + 3 * hidden, hidden)


# ----------------------------------------------------------------------------- GRU


cdef void _gru_forward(const floating *x_gates, Py_ssize_t x_stride,
                       const floating *h_gates, Py_ssize_t h_gates_stride,
                       const floating *h_prev, Py_ssize_t h_prev_stride,
                       floating *gates_out, Py_ssize_t gates_stride,
                       floating *h_out, Py_ssize_t h_stride,
                       Py_ssize_t rows, Py_ssize_t hidden) noexcept nogil:
    cdef Py_ssize_t b
    cdef const floating *xg
    cdef const floating *hg
    cdef floating *out
    for b in range(rows):
        xg = x_gates + b * x_stride  # [r, z, n] of x W_ih + b_ih
        hg = h_gates + b * h_gates_stride  # [r, z, n] of h W_hh + b_hh
        out = gates_out + b * gates_stride  # [r, z, n, hn]
        if floating is float:
            mdl_gru_forward_row_f32(xg, xg + hidden, xg + 2 * hidden,
                                    hg, hg + hidden, hg + 2 * hidden,
                                    h_prev + b * h_prev_stride,
                                    out, out + hidden, out + 2 * hidden, out + 3 * hidden,
                                    h_out + b * h_stride, hidden)
        else:
            mdl_gru_forward_row_f64(xg, xg + hidden, xg + 2 * hidden,
                                    hg, hg + hidden, hg + 2 * hidden,
                                    h_prev + b * h_prev_stride,
                                    out, out + hidden, out + 2 * hidden, out + 3 * hidden,
                                    h_out + b * h_stride, hidden)


cdef void _gru_backward(const floating *gates, Py_ssize_t gates_stride,
                        const floating *h_prev, Py_ssize_t h_prev_stride,
                        floating *grad_h, Py_ssize_t grad_h_stride,
                        floating *grad_x, Py_ssize_t grad_x_stride,
                        floating *grad_hg, Py_ssize_t grad_hg_stride,
                        Py_ssize_t rows, Py_ssize_t hidden) noexcept nogil:
    cdef Py_ssize_t b
    cdef const floating *a
    cdef floating *dx
    cdef floating *dh
    for b in range(rows):
        a = gates + b * gates_stride  # [r, z, n, hn]
        dx = grad_x + b * grad_x_stride
        dh = grad_hg + b * grad_hg_stride
        if floating is float:
            mdl_gru_backward_row_f32(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                     h_prev + b * h_prev_stride, grad_h + b * grad_h_stride,
                                     dx, dx + hidden, dx + 2 * hidden,
                                     dh, dh + hidden, dh + 2 * hidden, hidden)
        else:
            mdl_gru_backward_row_f64(a, a + hidden, a + 2 * hidden, a + 3 * hidden,
                                     h_prev + b * h_prev_stride, grad_h + b * grad_h_stride,
                                     dx, dx + hidden, dx + 2 * hidden,
                                     dh, dh + hidden, dh + 2 * hidden, hidden)


# ----------------------------------------------------------------------------- checks


cdef inline bint _rows_ok(cnp.ndarray a, int typenum, Py_ssize_t rows, Py_ssize_t cols,
                          bint writable) noexcept:
    """``a`` is a 2-D (rows, cols) array of the type, contiguous along each row."""
    if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_TYPE(a) != typenum:
        return False
    if cnp.PyArray_DIM(a, 0) != rows or cnp.PyArray_DIM(a, 1) != cols:
        return False
    if cols > 1 and cnp.PyArray_STRIDE(a, 1) != cnp.PyArray_ITEMSIZE(a):
        return False
    if cnp.PyArray_STRIDE(a, 0) % cnp.PyArray_ITEMSIZE(a) != 0:
        return False
    if not cnp.PyArray_ISALIGNED(a):
        return False
    return not writable or cnp.PyArray_ISWRITEABLE(a)


cdef inline Py_ssize_t _row_stride(cnp.ndarray a) noexcept:
    """The distance between rows, in elements."""
    return cnp.PyArray_STRIDE(a, 0) // cnp.PyArray_ITEMSIZE(a)


cdef inline int _float_type(cnp.ndarray a) noexcept:
    cdef int typenum = cnp.PyArray_TYPE(a)
    if typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64:
        return typenum
    return -1


cdef object _references = {}


cdef object _reference(str name):
    # the NumPy reference runs what these kernels do not handle (other dtypes, mixed
    # dtypes, rows that are not contiguous)
    fn = _references.get(name)
    if fn is None:
        from minidl import backend
        import minidl.ops.recurrent  # noqa: F401 - registers the references

        fn = _references[name] = backend._KERNELS[name]["numpy"]
    return fn


# ----------------------------------------------------------------------------- entry points
#
# Each entry point checks its arrays (dtype, shapes, rows contiguous), reads their data
# pointers and row strides into C variables, and runs the float32 or float64 loop
# without the GIL.  Anything else goes to the NumPy reference.


def lstm_cell_forward(cnp.ndarray gates not None, cnp.ndarray c_prev not None,
                      cnp.ndarray c_out not None, cnp.ndarray tanh_c_out not None,
                      cnp.ndarray h_out not None):
    """Pointwise LSTM step, in place: the signature and results of
    :func:`minidl.ops.recurrent.lstm_cell_forward`."""
    cdef int typenum = _float_type(gates)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(gates, 0) if cnp.PyArray_NDIM(gates) == 2 else -1
    cdef Py_ssize_t hidden = cnp.PyArray_DIM(c_prev, 1) if cnp.PyArray_NDIM(c_prev) == 2 else -1
    if (typenum < 0 or rows < 0 or hidden < 0
            or not _rows_ok(gates, typenum, rows, 4 * hidden, True)
            or not _rows_ok(c_prev, typenum, rows, hidden, False)
            or not _rows_ok(c_out, typenum, rows, hidden, True)
            or not _rows_ok(tanh_c_out, typenum, rows, hidden, True)
            or not _rows_ok(h_out, typenum, rows, hidden, True)):
        return _reference("lstm_cell_forward")(gates, c_prev, c_out, tanh_c_out, h_out)
    cdef void *p0 = cnp.PyArray_DATA(gates)
    cdef void *p1 = cnp.PyArray_DATA(c_prev)
    cdef void *p2 = cnp.PyArray_DATA(c_out)
    cdef void *p3 = cnp.PyArray_DATA(tanh_c_out)
    cdef void *p4 = cnp.PyArray_DATA(h_out)
    cdef Py_ssize_t s0 = _row_stride(gates), s1 = _row_stride(c_prev)
    cdef Py_ssize_t s2 = _row_stride(c_out), s3 = _row_stride(tanh_c_out)
    cdef Py_ssize_t s4 = _row_stride(h_out)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _lstm_forward(<float *>p0, s0, <float *>p1, s1, <float *>p2, s2, <float *>p3, s3,
                          <float *>p4, s4, rows, hidden)
        else:
            _lstm_forward(<double *>p0, s0, <double *>p1, s1, <double *>p2, s2,
                          <double *>p3, s3, <double *>p4, s4, rows, hidden)


def lstm_cell_backward(cnp.ndarray gates not None, cnp.ndarray c_prev not None,
                       cnp.ndarray tanh_c not None, cnp.ndarray grad_h not None,
                       cnp.ndarray grad_c not None, cnp.ndarray grad_gates_out not None):
    """Backward of one LSTM step: the signature and results of
    :func:`minidl.ops.recurrent.lstm_cell_backward`."""
    cdef int typenum = _float_type(gates)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(gates, 0) if cnp.PyArray_NDIM(gates) == 2 else -1
    cdef Py_ssize_t hidden = cnp.PyArray_DIM(c_prev, 1) if cnp.PyArray_NDIM(c_prev) == 2 else -1
    if (typenum < 0 or rows < 0 or hidden < 0
            or not _rows_ok(gates, typenum, rows, 4 * hidden, False)
            or not _rows_ok(c_prev, typenum, rows, hidden, False)
            or not _rows_ok(tanh_c, typenum, rows, hidden, False)
            or not _rows_ok(grad_h, typenum, rows, hidden, False)
            or not _rows_ok(grad_c, typenum, rows, hidden, True)
            or not _rows_ok(grad_gates_out, typenum, rows, 4 * hidden, True)):
        return _reference("lstm_cell_backward")(gates, c_prev, tanh_c, grad_h, grad_c,
                                                 grad_gates_out)
    cdef void *p0 = cnp.PyArray_DATA(gates)
    cdef void *p1 = cnp.PyArray_DATA(c_prev)
    cdef void *p2 = cnp.PyArray_DATA(tanh_c)
    cdef void *p3 = cnp.PyArray_DATA(grad_h)
    cdef void *p4 = cnp.PyArray_DATA(grad_c)
    cdef void *p5 = cnp.PyArray_DATA(grad_gates_out)
    cdef Py_ssize_t s0 = _row_stride(gates), s1 = _row_stride(c_prev)
    cdef Py_ssize_t s2 = _row_stride(tanh_c), s3 = _row_stride(grad_h)
    cdef Py_ssize_t s4 = _row_stride(grad_c), s5 = _row_stride(grad_gates_out)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _lstm_backward(<float *>p0, s0, <float *>p1, s1, <float *>p2, s2, <float *>p3, s3,
                           <float *>p4, s4, <float *>p5, s5, rows, hidden)
        else:
            _lstm_backward(<double *>p0, s0, <double *>p1, s1, <double *>p2, s2,
                           <double *>p3, s3, <double *>p4, s4, <double *>p5, s5, rows, hidden)


def gru_cell_forward(cnp.ndarray x_gates not None, cnp.ndarray h_gates not None,
                     cnp.ndarray h_prev not None, cnp.ndarray gates_out not None,
                     cnp.ndarray h_out not None):
    """Pointwise GRU step: the signature and results of
    :func:`minidl.ops.recurrent.gru_cell_forward`."""
    cdef int typenum = _float_type(x_gates)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x_gates, 0) if cnp.PyArray_NDIM(x_gates) == 2 else -1
    cdef Py_ssize_t hidden = cnp.PyArray_DIM(h_prev, 1) if cnp.PyArray_NDIM(h_prev) == 2 else -1
    if (typenum < 0 or rows < 0 or hidden < 0
            or not _rows_ok(x_gates, typenum, rows, 3 * hidden, False)
            or not _rows_ok(h_gates, typenum, rows, 3 * hidden, False)
            or not _rows_ok(h_prev, typenum, rows, hidden, False)
            or not _rows_ok(gates_out, typenum, rows, 4 * hidden, True)
            or not _rows_ok(h_out, typenum, rows, hidden, True)):
        return _reference("gru_cell_forward")(x_gates, h_gates, h_prev, gates_out, h_out)
    cdef void *p0 = cnp.PyArray_DATA(x_gates)
    cdef void *p1 = cnp.PyArray_DATA(h_gates)
    cdef void *p2 = cnp.PyArray_DATA(h_prev)
    cdef void *p3 = cnp.PyArray_DATA(gates_out)
    cdef void *p4 = cnp.PyArray_DATA(h_out)
    cdef Py_ssize_t s0 = _row_stride(x_gates), s1 = _row_stride(h_gates)
    cdef Py_ssize_t s2 = _row_stride(h_prev), s3 = _row_stride(gates_out)
    cdef Py_ssize_t s4 = _row_stride(h_out)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _gru_forward(<float *>p0, s0, <float *>p1, s1, <float *>p2, s2, <float *>p3, s3,
                         <float *>p4, s4, rows, hidden)
        else:
            _gru_forward(<double *>p0, s0, <double *>p1, s1, <double *>p2, s2,
                         <double *>p3, s3, <double *>p4, s4, rows, hidden)


def gru_cell_backward(cnp.ndarray gates not None, cnp.ndarray h_prev not None,
                      cnp.ndarray grad_h not None, cnp.ndarray grad_x_gates_out not None,
                      cnp.ndarray grad_h_gates_out not None):
    """Backward of one GRU step: the signature and results of
    :func:`minidl.ops.recurrent.gru_cell_backward`."""
    cdef int typenum = _float_type(gates)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(gates, 0) if cnp.PyArray_NDIM(gates) == 2 else -1
    cdef Py_ssize_t hidden = cnp.PyArray_DIM(h_prev, 1) if cnp.PyArray_NDIM(h_prev) == 2 else -1
    if (typenum < 0 or rows < 0 or hidden < 0
            or not _rows_ok(gates, typenum, rows, 4 * hidden, False)
            or not _rows_ok(h_prev, typenum, rows, hidden, False)
            or not _rows_ok(grad_h, typenum, rows, hidden, True)
            or not _rows_ok(grad_x_gates_out, typenum, rows, 3 * hidden, True)
            or not _rows_ok(grad_h_gates_out, typenum, rows, 3 * hidden, True)):
        return _reference("gru_cell_backward")(gates, h_prev, grad_h, grad_x_gates_out,
                                                grad_h_gates_out)
    cdef void *p0 = cnp.PyArray_DATA(gates)
    cdef void *p1 = cnp.PyArray_DATA(h_prev)
    cdef void *p2 = cnp.PyArray_DATA(grad_h)
    cdef void *p3 = cnp.PyArray_DATA(grad_x_gates_out)
    cdef void *p4 = cnp.PyArray_DATA(grad_h_gates_out)
    cdef Py_ssize_t s0 = _row_stride(gates), s1 = _row_stride(h_prev)
    cdef Py_ssize_t s2 = _row_stride(grad_h), s3 = _row_stride(grad_x_gates_out)
    cdef Py_ssize_t s4 = _row_stride(grad_h_gates_out)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _gru_backward(<float *>p0, s0, <float *>p1, s1, <float *>p2, s2, <float *>p3, s3,
                          <float *>p4, s4, rows, hidden)
        else:
            _gru_backward(<double *>p0, s0, <double *>p1, s1, <double *>p2, s2,
                          <double *>p3, s3, <double *>p4, s4, rows, hidden)
