# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled max and average pooling (see :mod:`minidl.kernels.cpu.pool` for the wrappers).

Every kernel works on a stack of ``R`` planes ``(R, H, W)``: the leading dimensions of
the input (usually ``N C``) flattened, and 1-D pooling as planes of height 1.  Threads
split the planes; a plane is a few KB, so each thread works in its L1/L2 cache and
writes a part of the result no other thread touches (no atomics, no races).

Window of output ``(a, b)``: rows ``a s_H - p_H + i d_H`` (``i < k_H``), columns
``b s_W - p_W + j d_W`` (``j < k_W``).  Taps in the padding are skipped, which is the
same as the references' padding with ``-inf`` (max) or ``0`` (average): the range of
``i`` (and ``j``) that lands inside the input is computed once per window, so the inner
loops have no bounds test.

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

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset


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


cdef void _max_plane(const floating* x, floating* out, int64_t* indices, bint with_indices,
                     Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h,
                     Py_ssize_t out_w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                     Py_ssize_t dw) noexcept nogil:
    cdef Py_ssize_t a, b, i, j, i0, i1, j0, j1, row, col, row0, col0, best_index, position
    cdef floating best, value
    for a in range(out_h):
        row0 = a * sh - ph
        _taps_inside(row0, height, kh, dh, &i0, &i1)
        for b in range(out_w):
            col0 = b * sw - pw
            _taps_inside(col0, width, kw, dw, &j0, &j1)
            best = -INFINITY
            # the first tap inside the input (past it if the window has none, as the
            # reference computes it; the op masks such windows)
            best_index = (row0 + i0 * dh) * width + col0 + j0 * dw
            for i in range(i0, i1):
                row = (row0 + i * dh) * width
                for j in range(j0, j1):
                    position = row + col0 + j * dw
                    value = x[position]
                    if value > best or value != value:
                        best = value
                        best_index = position
            out[a * out_w + b] = best
            if with_indices:
                indices[a * out_w + b] = best_index


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                       int64_t[:, :, ::1] indices, bint with_indices, Py_ssize_t kh,
                       Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph,
                       Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, int num_threads,
                       Py_ssize_t chunk):
    """Max pooling of the planes of ``x`` (R, H, W) into ``out`` (R, H_out, W_out); the
    flat position ``h W + w`` of each maximum into ``indices`` when ``with_indices``
    (else ``indices`` is not touched and may be any small array)."""
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t out_h = out.shape[1], out_w = out.shape[2]
    cdef Py_ssize_t r
    cdef const floating* x_ptr = &x[0, 0, 0]
    cdef floating* out_ptr = &out[0, 0, 0]
    cdef int64_t* index_ptr = &indices[0, 0, 0]
    cdef Py_ssize_t index_step = out_h * out_w if with_indices else 0
    with nogil:
        for r in prange(planes, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            _max_plane(x_ptr + r * height * width, out_ptr + r * out_h * out_w,
                       index_ptr + r * index_step, with_indices, height, width, out_h,
                       out_w, kh, kw, sh, sw, ph, pw, dh, dw)


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


cdef void _avg_plane(const floating* x, floating* out, const floating* divisor,
                     Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_h,
                     Py_ssize_t out_w, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    cdef Py_ssize_t a, b, i, j, i0, i1, j0, j1, row0, col0
    cdef const floating* src
    cdef floating total
    for a in range(out_h):
        row0 = a * sh - ph
        _taps_inside(row0, height, kh, 1, &i0, &i1)
        for b in range(out_w):
            col0 = b * sw - pw
            _taps_inside(col0, width, kw, 1, &j0, &j1)
            total = 0
            for i in range(i0, i1):
                src = x + (row0 + i) * width + col0
                for j in range(j0, j1):
                    total = total + src[j]
            out[a * out_w + b] = total / divisor[a * out_w + b]


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


def global_max_pool_forward(const floating[:, ::1] x, floating[::1] out,
                            int64_t[::1] argmax, int num_threads, Py_ssize_t chunk):
    """Maximum of each row of ``x`` (R, S) and its first position (the first NaN if the
    row has one, as ``numpy.argmax``)."""
    cdef Py_ssize_t rows = x.shape[0], size = x.shape[1]
    cdef Py_ssize_t r, s, best_index
    cdef floating best, value
    cdef const floating* row
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            row = &x[r, 0]
            best = row[0]
            best_index = 0
            if best == best:
                for s in range(1, size):
                    value = row[s]
                    if value > best:
                        best = value
                        best_index = s
                    elif value != value:
                        best = value
                        best_index = s
                        break
            out[r] = best
            argmax[r] = best_index


def global_max_pool_backward(const floating[::1] grad_out, const int64_t[::1] argmax,
                             floating[:, ::1] grad_in, int num_threads, Py_ssize_t chunk):
    """``grad_in`` (R, S) zero except ``grad_in[r, argmax[r]] = grad_out[r]``; returns
    the number of positions outside ``[0, S)`` (skipped)."""
    cdef Py_ssize_t rows = grad_in.shape[0], size = grad_in.shape[1]
    cdef Py_ssize_t r, position
    cdef Py_ssize_t bad = 0
    with nogil:
        for r in prange(rows, num_threads=num_threads, schedule="dynamic",
                        chunksize=chunk):
            memset(&grad_in[r, 0], 0, size * sizeof(floating))
            position = argmax[r]
            if position < 0 or position >= size:
                bad += 1
            else:
                grad_in[r, position] = grad_out[r]
    return bad
