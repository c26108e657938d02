# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False
r"""Compiled im2col and col2im (see :mod:`minidl.kernels.cpu.conv` for the wrappers).

The layout is the one of the NumPy references in :mod:`minidl.ops.conv`:

.. math::

    \text{cols}[(c k_H + i) k_W + j,\; n,\; h,\; v] =
    x_{pad}[n, c,\; h s_H + i d_H,\; v s_W + j d_W]

so ``cols`` is a stack of ``C kH kW N`` *planes* of ``H_out x W_out`` values, plane
``(row, n)`` being image ``x[n, c]`` shifted by the kernel offset ``(i, j)`` and sampled
with the stride.  The 1-D kernels are the 2-D ones with ``H = kH = 1`` (same layout).

Why these loops
---------------
- **im2col** writes every plane once, in memory order: per output row, a run of zeros
  (left padding), one contiguous copy (``memcpy`` when the stride is 1) and a run of
  zeros (right padding).  Which rows and columns fall inside the image is computed once
  per row of ``cols`` (a kernel offset), not tested per element.  Threads split each
  row of ``cols`` into blocks of consecutive samples.
- **col2im** is the scatter-add.  The reference does one strided ``+=`` per kernel
  offset over the whole array, so with small images (16 x 16) each NumPy inner loop is
  16 elements long and the overhead dominates.  Here a thread owns one *image* plane
  ``(n, c)`` at a time (a few KB, in the L1 cache), zeroes it and adds the ``kH kW``
  shifted column planes into it: every output element is written by one thread only, so
  there is no race and no atomic, and the additions happen in the reference's order
  (kernel offsets row-major), so the results are bit for bit the same.

Padding is never materialised: rows and columns that fall in it are skipped.
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memcpy, memset


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and a of either sign (C division truncates toward zero)."""
    if a <= 0:
        return -((-a) // b)
    return (a + b - 1) // b


cdef inline void _valid_range(Py_ssize_t offset, Py_ssize_t size, Py_ssize_t stride,
                              Py_ssize_t count, Py_ssize_t* first,
                              Py_ssize_t* last) noexcept nogil:
    """Output positions ``o`` in ``[first, last)`` read an input position
    ``o * stride + offset`` inside ``[0, size)`` (``offset`` = tap offset - padding)."""
    cdef Py_ssize_t lo, hi
    if stride == 1:  # the usual case, without the two integer divisions
        lo = -offset
        hi = size - offset
    else:
        lo = _ceil_div(-offset, stride)
        hi = _ceil_div(size - offset, stride)
    # clipped to [0, count]: a padding longer than the output leaves no valid position
    if lo < 0:
        lo = 0
    if lo > count:
        lo = count
    if hi > count:
        hi = count
    if hi < lo:
        hi = lo
    first[0] = lo
    last[0] = hi


cdef void _im2col_planes(const floating* image, Py_ssize_t image_step, floating* planes,
                         Py_ssize_t count, Py_ssize_t height, Py_ssize_t width,
                         Py_ssize_t out_h, Py_ssize_t out_w, Py_ssize_t row_offset,
                         Py_ssize_t col_offset, Py_ssize_t sh,
                         Py_ssize_t sw) noexcept nogil:
    """``count`` consecutive column planes of one row of cols (consecutive samples):
    ``plane[h, v] = image[h sh + row_offset, v sw + col_offset]``, zero where that lies
    outside the image; the images are ``image_step`` apart."""
    cdef Py_ssize_t s, h, v, v0, v1, h0, h1
    cdef const floating* src
    cdef floating* dst
    cdef floating* plane
    # which rows and columns are inside: once for all the samples (with 1-D inputs a
    # plane is a single short row, where this is most of the work)
    _valid_range(row_offset, height, sh, out_h, &h0, &h1)
    _valid_range(col_offset, width, sw, out_w, &v0, &v1)
    for s in range(count):
        plane = planes + s * out_h * out_w
        if h0 > 0:
            memset(plane, 0, h0 * out_w * sizeof(floating))
        for h in range(h0, h1):
            dst = plane + h * out_w
            src = image + s * image_step + (h * sh + row_offset) * width + col_offset
            if v0 > 0:
                memset(dst, 0, v0 * sizeof(floating))
            if sw == 1:
                memcpy(dst + v0, src + v0, (v1 - v0) * sizeof(floating))
            else:
                for v in range(v0, v1):
                    dst[v] = src[v * sw]
            if v1 < out_w:
                memset(dst + v1, 0, (out_w - v1) * sizeof(floating))
        if h1 < out_h:
            memset(plane + h1 * out_w, 0, (out_h - h1) * out_w * sizeof(floating))


def im2col2d(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] cols,
             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
             Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
             int num_threads, Py_ssize_t samples_per_task):
    """Fill ``cols`` (C kH kW, N, H_out, W_out) with the receptive fields of ``x``
    (N, C, H, W); ``top``/``left`` are the paddings before (those after are implied by
    the output size).  A task fills ``samples_per_task`` consecutive planes of one row
    of ``cols`` (consecutive in memory too)."""
    cdef Py_ssize_t batch = x.shape[0], channels = x.shape[1]
    cdef Py_ssize_t height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_h = cols.shape[2], out_w = cols.shape[3]
    cdef Py_ssize_t taps = kh * kw, plane = out_h * out_w, image = height * width
    cdef Py_ssize_t blocks = (batch + samples_per_task - 1) // samples_per_task
    cdef Py_ssize_t task, row, first, count, c, i, j
    cdef const floating* x_ptr = &x[0, 0, 0, 0]
    cdef floating* cols_ptr = &cols[0, 0, 0, 0]
    with nogil:
        for task in prange(channels * taps * blocks, num_threads=num_threads,
                           schedule="dynamic", chunksize=1):
            row = task // blocks
            first = (task - row * blocks) * samples_per_task
            count = batch - first
            if count > samples_per_task:
                count = samples_per_task
            c = row // taps
            i = (row - c * taps) // kw
            j = row - c * taps - i * kw
            _im2col_planes(x_ptr + (first * channels + c) * image, channels * image,
                           cols_ptr + (row * batch + first) * plane, count, height, width,
                           out_h, out_w, i * dh - top, j * dw - left, sh, sw)


cdef void _col2im_image(const floating* cols, floating* out, Py_ssize_t task,
                        Py_ssize_t batch, Py_ssize_t channels, Py_ssize_t height,
                        Py_ssize_t width, Py_ssize_t out_h, Py_ssize_t out_w,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh,
                        Py_ssize_t dw) noexcept nogil:
    """Image plane ``x[n, c]`` for ``task = c N + n``: zero it, then add the ``kH kW``
    column planes."""
    cdef Py_ssize_t c = task // batch
    cdef Py_ssize_t n = task - c * batch
    cdef Py_ssize_t plane = out_h * out_w
    cdef floating* image = out + (n * channels + c) * height * width
    cdef Py_ssize_t i, j, h, v, h0, h1, v0, v1, row_offset, col_offset
    cdef const floating* src
    cdef const floating* src_row
    cdef floating* dst
    memset(image, 0, height * width * sizeof(floating))
    for i in range(kh):
        row_offset = i * dh - top
        _valid_range(row_offset, height, sh, out_h, &h0, &h1)
        for j in range(kw):
            col_offset = j * dw - left
            _valid_range(col_offset, width, sw, out_w, &v0, &v1)
            src = cols + ((((c * kh + i) * kw + j) * batch) + n) * plane
            for h in range(h0, h1):
                dst = image + (h * sh + row_offset) * width + col_offset
                src_row = src + h * out_w
                if sw == 1:
                    for v in range(v0, v1):
                        dst[v] += src_row[v]
                else:
                    for v in range(v0, v1):
                        dst[v * sw] += src_row[v]


def col2im2d(const floating[:, :, :, ::1] cols, floating[:, :, :, ::1] out,
             Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
             Py_ssize_t top, Py_ssize_t left, Py_ssize_t dh, Py_ssize_t dw,
             int num_threads, Py_ssize_t chunk):
    """Overwrite ``out`` (N, C, H, W) with the scatter-add of ``cols``
    (C kH kW, N, H_out, W_out), the adjoint of :func:`im2col2d`."""
    cdef Py_ssize_t batch = out.shape[0], channels = out.shape[1]
    cdef Py_ssize_t height = out.shape[2], width = out.shape[3]
    cdef Py_ssize_t out_h = cols.shape[2], out_w = cols.shape[3]
    cdef Py_ssize_t task
    cdef const floating* cols_ptr = &cols[0, 0, 0, 0]
    cdef floating* out_ptr = &out[0, 0, 0, 0]
    with nogil:
        for task in prange(batch * channels, num_threads=num_threads, schedule="dynamic",
                           chunksize=chunk):
            # tasks channel-major: consecutive tasks read consecutive planes of the same
            # `kH kW` rows of cols (a few sequential streams the prefetcher follows)
            # rather than one small piece of every row (measured 2-3x slower for 1-D)
            _col2im_image(cols_ptr, out_ptr, task, batch, channels, height, width, out_h,
                          out_w, kh, kw, sh, sw, top, left, dh, dw)
