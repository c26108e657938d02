# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled max and average pooling (see :mod:`minidl.kernels.cpu.pool` for the wrappers).

Every kernel works on a stack of ``R`` planes ``(R, H, W)``: the leading dimensions of
the input (usually ``N C``) flattened, and 1-D pooling as planes of height 1.  Threads
split the planes; a plane is a few KB, so each thread works in its L1/L2 cache and
writes a part of the result no other thread touches (no atomics, no races).

Window of output ``(a, b)``: rows ``a s_H - p_H + i d_H`` (``i < k_H``), columns
``b s_W - p_W + j d_W`` (``j < k_W``).  Taps in the padding are skipped, which is the
same as the references' padding with ``-inf`` (max) or ``0`` (average).

Speed: the windows of a row that lie wholly inside the input (all but a few at the
borders) are computed *tap by tap across the row*: for each kernel offset, one pass
over all those windows.  Computed window by window, each running maximum (or sum) is a
chain of dependent operations, one per tap, that the CPU must run one after the other;
across the row the chains are independent and run side by side (measured 3x faster for
max pooling).  The windows at the borders are computed one by one, reading only their
taps inside the input.  The running maximum is updated without a branch (see
``mdl_pool_selectf``).

The conventions are those of the references in :mod:`minidl.ops.pool`, reproduced
exactly (the tests compare bit for bit):

- max: a tap replaces the running maximum if it is strictly greater (ties: the first in
  row-major window order) or NaN (``val > max || isnan(val)``, PyTorch's rule: the
  result is NaN and its index the window's last NaN).  The running maximum starts at
  ``-inf`` with the index of the window's first tap inside the input, which is what
  PyTorch reports for a window of ``-inf`` values.
- average: taps added in window order, starting from zero, then one division by the
  window's divisor; the backward adds ``grad / divisor`` to each tap, kernel offsets in
  the outer loop as the reference does, so every input gradient is summed in the same
  order.
"""

cimport openmp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    /* cond ? a : b without a branch.  GCC compiles a plain ternary on floats into a
     * conditional jump (it may not assume the absence of NaN with portable flags), and
     * with random data the running maximum's jump is mispredicted about once per tap
     * (measured: 3x slower max pooling).  A select through bit masks has no branch. */
    static inline float mdl_pool_selectf(int cond, float a, float b)
    {
        uint32_t x, y, mask = -(uint32_t)(cond != 0);
        memcpy(&x, &a, 4);
        memcpy(&y, &b, 4);
        x = (x & mask) | (y & ~mask);
        memcpy(&a, &x, 4);
        return a;
    }

    static inline double mdl_pool_select(int cond, double a, double b)
    {
        uint64_t x, y, mask = -(uint64_t)(cond != 0);
        memcpy(&x, &a, 8);
        memcpy(&y, &b, 8);
        x = (x & mask) | (y & ~mask);
        memcpy(&a, &x, 8);
        return a;
    }

    static inline int64_t mdl_pool_selecti(int cond, int64_t a, int64_t b)
    {
        uint64_t mask = -(uint64_t)(cond != 0);
        return (int64_t)(((uint64_t)a & mask) | ((uint64_t)b & ~mask));
    }
    """
    float mdl_pool_selectf(int cond, float a, float b) noexcept nogil
    double mdl_pool_select(int cond, double a, double b) noexcept nogil
    int64_t mdl_pool_selecti(int cond, int64_t a, int64_t b) noexcept nogil


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and a of either sign (C division truncates toward zero)."""
    if a <= 0:
        return -((-a) // b)
    return (a + b - 1) // b


cdef inline void _taps_inside(Py_ssize_t start, Py_ssize_t size, Py_ssize_t kernel,
                              Py_ssize_t dilation, Py_ssize_t* first,
                              Py_ssize_t* last) noexcept nogil:
    """Kernel offsets ``t`` in ``[first, last)`` put ``start + t dilation`` inside
    ``[0, size)``; ``first`` is not clipped to ``kernel`` (see ``_max_plane``)."""
    cdef Py_ssize_t lo = _ceil_div(-start, dilation)
    cdef Py_ssize_t hi = _ceil_div(size - start, dilation)
    if lo < 0:
        lo = 0
    if hi > kernel:
        hi = kernel
    first[0] = lo
    last[0] = hi


cdef inline void _interior(Py_ssize_t size, Py_ssize_t count, Py_ssize_t kernel,
                           Py_ssize_t stride, Py_ssize_t pad, Py_ssize_t dilation,
                           Py_ssize_t* first, Py_ssize_t* last) noexcept nogil:
    """Output positions ``[first, last)`` whose windows lie wholly inside the input:
    ``o s - p >= 0`` and ``o s - p + (k - 1) d <= size - 1``."""
    cdef Py_ssize_t lo = _ceil_div(pad, stride)
    cdef Py_ssize_t reach = size - 1 - (kernel - 1) * dilation + pad
    cdef Py_ssize_t hi = reach // stride + 1 if reach >= 0 else 0
    # clipped to [0, count]: with padding the first inside window may not exist
    if lo > count:
        lo = count
    if hi > count:
        hi = count
    if hi < lo:
        hi = lo
    first[0] = lo
    last[0] = hi


cdef inline void _max_update(floating value, Py_ssize_t position, floating* best,
                             int64_t* best_index) noexcept nogil:
    """Take ``value`` if it is greater than the running maximum, or NaN; branch-free
    (see mdl_pool_selectf)."""
    cdef int take = (value > best[0]) | (value != value)
    if floating is float:
        best[0] = mdl_pool_selectf(take, value, best[0])
    else:
        best[0] = mdl_pool_select(take, value, best[0])
    best_index[0] = mdl_pool_selecti(take, position, best_index[0])


cdef void _max_window(const floating* x, floating* out, int64_t* index, Py_ssize_t row0,
                      Py_ssize_t col0, Py_ssize_t height, Py_ssize_t width, Py_ssize_t kh,
                      Py_ssize_t kw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    """One window that may reach into the padding: only its taps inside are read."""
    cdef Py_ssize_t i, j, i0, i1, j0, j1, row
    cdef floating best = -INFINITY
    cdef int64_t best_index
    _taps_inside(row0, height, kh, dh, &i0, &i1)
    _taps_inside(col0, width, kw, dw, &j0, &j1)
    # the first tap inside the input (past it if the window has none, as the reference
    # computes it; the op masks such windows)
    best_index = (row0 + i0 * dh) * width + col0 + j0 * dw
    for i in range(i0, i1):
        row = (row0 + i * dh) * width + col0
        for j in range(j0, j1):
            _max_update(x[row + j * dw], row + j * dw, &best, &best_index)
    out[0] = best
    index[0] = best_index


cdef void _max_plane(const floating* x, floating* out, int64_t* indices,
                     bint with_indices, Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h,
                     Py_ssize_t out_w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                     Py_ssize_t dw) noexcept nogil:
    """Max pooling of one plane into ``out`` and ``indices`` (``out_h`` rows each); without
    ``with_indices``, ``indices`` is one row of ``out_w`` scratch values."""
    cdef Py_ssize_t a, b, i, j, i0, i1, b0, b1, row0, tap, position
    cdef Py_ssize_t index_step = out_w if with_indices else 0
    cdef floating* best
    cdef int64_t* best_index
    _interior(width, out_w, kw, sw, pw, dw, &b0, &b1)
    for a in range(out_h):
        row0 = a * sh - ph
        best = out + a * out_w
        best_index = indices + a * index_step
        for b in range(b0):
            _max_window(x, best + b, best_index + b, row0, b * sw - pw, height, width, kh,
                        kw, dh, dw)
        for b in range(b1, out_w):
            _max_window(x, best + b, best_index + b, row0, b * sw - pw, height, width, kh,
                        kw, dh, dw)
        # windows inside along the row: tap by tap over all of them.  One window's
        # running maximum is a chain of dependent compare-and-selects (~10 cycles per
        # tap); interleaving the windows lets the CPU run the chains side by side
        # (measured 3-4x faster).  Each window still sees its taps in row-major order.
        _taps_inside(row0, height, kh, dh, &i0, &i1)
        for b in range(b0, b1):
            best[b] = -INFINITY
            best_index[b] = (row0 + i0 * dh) * width + b * sw - pw
        for i in range(i0, i1):
            for j in range(kw):
                tap = (row0 + i * dh) * width + j * dw - pw
                for b in range(b0, b1):
                    position = tap + b * sw
                    _max_update(x[position], position, best + b, best_index + b)


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       int64_t[:, :, ::1] indices, bint with_indices, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                       Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int num_threads,
                       Py_ssize_t chunk):
    """Max pooling of the planes of ``x`` (R, H, W) into ``out`` (R, H_out, W_out); the
    flat position ``h W + w`` of each maximum into ``indices`` (R, H_out, W_out) when
    ``with_indices``, else ``indices`` is scratch of at least ``num_threads * W_out``
    values."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t r
    cdef const floating* x_ptr = &x[0, 0, 0]
    cdef floating* out_ptr = &out[0, 0, 0]
    cdef int64_t* index_ptr = &indices[0, 0, 0]
    cdef int64_t* scratch
    with nogil:
        for r in prange(planes, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            if with_indices:
                scratch = index_ptr + r * out_h * out_w
            else:
                # the running argmax still needs a row to live in: each thread has its
                # own out_w values of `indices` (the caller passes threads * out_w)
                scratch = index_ptr + openmp.omp_get_thread_num() * out_w
            _max_plane(x_ptr + r * height * width, out_ptr + r * out_h * out_w, scratch,
                       with_indices, height, width, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw)


def max_pool_backward(const floating[:, ::1] grad_out, const int64_t[:, ::1] indices,
                      floating[:, ::1] grad_in, int num_threads, Py_ssize_t chunk):
    """``grad_in[r, indices[r, o]] += grad_out[r, o]`` (``grad_in`` is overwritten).
    Returns the number of indices outside ``[0, plane size)``, which are skipped."""
    cdef Py_ssize_t planes = grad_in.shape[0], plane = grad_in.shape[1]
    cdef Py_ssize_t outputs = grad_out.shape[1]
    cdef Py_ssize_t r, o, position
    cdef Py_ssize_t bad = 0
    cdef const floating* g
    cdef const int64_t* where
    cdef floating* dst
    with nogil:
        for r in prange(planes, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            dst = &grad_in[r, 0]
            g = &grad_out[r, 0]
            where = &indices[r, 0]
            memset(dst, 0, plane * sizeof(floating))
            for o in range(outputs):
                position = where[o]
                if position < 0 or position >= plane:
                    bad += 1
                else:
                    dst[position] += g[o]
    return bad


cdef floating _window_sum(const floating* x, Py_ssize_t row0, Py_ssize_t col0,
                          Py_ssize_t height, Py_ssize_t width, Py_ssize_t kh,
                          Py_ssize_t kw) noexcept nogil:
    """Sum of one window that may reach into the padding (only its taps inside)."""
    cdef Py_ssize_t i, j, i0, i1, j0, j1
    cdef floating total = 0
    _taps_inside(row0, height, kh, 1, &i0, &i1)
    _taps_inside(col0, width, kw, 1, &j0, &j1)
    for i in range(i0, i1):
        for j in range(j0, j1):
            total = total + x[(row0 + i) * width + col0 + j]
    return total


cdef void _avg_plane(const floating* x, floating* out, const floating* divisor,
                     Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h,
                     Py_ssize_t out_w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t a, b, i, j, i0, i1, b0, b1, row0, tap
    cdef floating* total
    _interior(width, out_w, kw, sw, pw, 1, &b0, &b1)
    for a in range(out_h):
        row0 = a * sh - ph
        total = out + a * out_w
        # every window's sum starts at zero and adds its taps in row-major order, as in
        # the reference: the windows at the borders one by one...
        for b in range(b0):
            total[b] = _window_sum(x, row0, b * sw - pw, height, width, kh, kw)
        for b in range(b1, out_w):
            total[b] = _window_sum(x, row0, b * sw - pw, height, width, kh, kw)
        # ...and the inside ones tap by tap, side by side: independent additions rather
        # than one chain of dependent ones per window
        _taps_inside(row0, height, kh, 1, &i0, &i1)
        for b in range(b0, b1):
            total[b] = 0
        for i in range(i0, i1):
            for j in range(kw):
                tap = (row0 + i) * width + j - pw
                for b in range(b0, b1):
                    total[b] = total[b] + x[tap + b * sw]
        for b in range(out_w):
            total[b] = total[b] / divisor[a * out_w + b]


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       const floating[:, ::1] divisor, Py_ssize_t kh, Py_ssize_t kw,
                       Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                       int num_threads, Py_ssize_t chunk):
    """Average pooling of the planes of ``x`` (R, H, W): window sums divided by
    ``divisor`` (H_out, W_out), into ``out`` (R, H_out, W_out)."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t r
    cdef const floating* x_ptr = &x[0, 0, 0]
    cdef floating* out_ptr = &out[0, 0, 0]
    cdef const floating* div_ptr = &divisor[0, 0]
    with nogil:
        for r in prange(planes, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            _avg_plane(x_ptr + r * height * width, out_ptr + r * out_h * out_w, div_ptr,
                       height, width, out_h, out_w, kh, kw, sh, sw, ph, pw)


cdef void _avg_backward_plane(const floating* grad_out, floating* grad_in,
                              const floating* divisor, Py_ssize_t height, Py_ssize_t width,
                              Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t kh,
                              Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                              Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t a, b, i, j, a0, a1, b0, b1
    cdef floating* dst
    cdef const floating* g
    cdef const floating* d
    memset(grad_in, 0, height * width * sizeof(floating))
    for i in range(kh):
        # outputs whose tap i lies inside the input: a sh - ph + i in [0, height)
        a0 = _ceil_div(ph - i, sh)
        a1 = _ceil_div(height + ph - i, sh)
        a0 = a0 if a0 > 0 else 0
        a1 = a1 if a1 < out_h else out_h
        for j in range(kw):
            b0 = _ceil_div(pw - j, sw)
            b1 = _ceil_div(width + pw - j, sw)
            b0 = b0 if b0 > 0 else 0
            b1 = b1 if b1 < out_w else out_w
            for a in range(a0, a1):
                dst = grad_in + (a * sh - ph + i) * width - pw + j
                g = grad_out + a * out_w
                d = divisor + a * out_w
                for b in range(b0, b1):
                    dst[b * sw] += g[b] / d[b]


def avg_pool2d_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                        const floating[:, ::1] divisor, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                        int num_threads, Py_ssize_t chunk):
    """Backward of :func:`avg_pool2d_forward`: ``grad_in`` (R, H, W) is overwritten with
    the sum over windows of ``grad_out / divisor`` at each of their taps."""
    cdef Py_ssize_t planes = grad_in.shape[0], height = grad_in.shape[1]
    cdef Py_ssize_t width = grad_in.shape[2]
    cdef Py_ssize_t out_h = grad_out.shape[1], out_w = grad_out.shape[2]
    cdef Py_ssize_t r
    cdef const floating* g_ptr = &grad_out[0, 0, 0]
    cdef floating* in_ptr = &grad_in[0, 0, 0]
    cdef const floating* div_ptr = &divisor[0, 0]
    with nogil:
        for r in prange(planes, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            _avg_backward_plane(g_ptr + r * out_h * out_w, in_ptr + r * height * width,
                                div_ptr, height, width, out_h, out_w, kh, kw, sh, sw, ph,
                                pw)
