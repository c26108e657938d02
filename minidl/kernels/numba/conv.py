"""Numba im2col and col2im kernels, registered as the ``"numba"`` backend.

Same signatures, layouts and results as the NumPy references in :mod:`minidl.ops.conv`
(``im2col1d``, ``col2im1d``, ``im2col2d``, ``col2im2d``), and the same loops as the C
kernels (``minidl/kernels/cpu/_conv.pyx``, whose docstring explains them):

- ``im2col``: one parallel task per block of consecutive column planes ``(row, n)``
  (one kernel offset, consecutive samples), written in memory order: zeros where the
  receptive field lies in the padding, a strided copy elsewhere;
- ``col2im``: one parallel task per image plane ``x[n, c]``, which the task owns: it is
  zeroed, then the ``kH kW`` shifted column planes are added in the reference's order
  (so the results are bit for bit the reference's).

1-D kernels are the 2-D ones on images of height 1.  The loops compile once per dtype
(float32, float64) on first use and are cached on disk (``cache=True``).  Importing this
module fails with ImportError when Numba is not installed.
"""

from __future__ import annotations

import numba
import numpy as np

from minidl import backend
from minidl.ops import conv as reference

__all__ = ["im2col1d", "col2im1d", "im2col2d", "col2im2d"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# below this many elements (~0.2 ms of copying) one thread is faster than waking a second
_PARALLEL_MIN = 1 << 20
# elements per dynamic scheduling chunk (see minidl.kernels.cpu.conv)
_CHUNK = 1 << 14


@numba.njit(cache=True, inline="always")
def _ceil_div(a, b):
    """ceil(a / b) for b > 0 and a of either sign."""
    return -((-a) // b)


@numba.njit(cache=True, inline="always")
def _valid_range(offset, size, stride, count):
    """Output positions ``o`` in ``[first, last)`` read ``o * stride + offset`` inside
    ``[0, size)``."""
    if stride == 1:  # the usual case, without integer divisions
        first = -offset
        last = size - offset
    else:
        first = _ceil_div(-offset, stride)
        last = _ceil_div(size - offset, stride)
    # clipped to [0, count]: a padding longer than the output leaves no valid position
    first = min(max(first, 0), count)
    return first, max(first, min(last, count))


@numba.njit(cache=True, inline="always")
def _fill_zero(a, start, count):
    # NOTE: every inner loop indexes with unsigned ints.  A signed index may be negative
    # to Numba, which then wraps it around (index + size) element by element, and LLVM
    # does not vectorise that: measured 5x slower than the same loop on uint64
    base = numba.uint64(start)
    for k in range(numba.uint64(max(count, 0))):
        a[base + k] = 0


@numba.njit(parallel=True, cache=True, fastmath=False)
def _im2col2d(x, cols, shape, kh, kw, sh, sw, top, left, dh, dw, per_task):
    # flat arrays and explicit offsets: a sliced view per row costs Numba a reference
    # count update, several times slower than this on the small W1 planes.  A task is
    # a block of `per_task` consecutive samples of one row of cols (as in the C kernel)
    batch, channels, height, width, out_h, out_w = shape
    taps = kh * kw
    plane = out_h * out_w
    step = numba.uint64(sw)
    blocks = (batch + per_task - 1) // per_task
    for task in numba.prange(channels * taps * blocks):
        row = task // blocks
        first = (task - row * blocks) * per_task
        c = row // taps
        i = (row - c * taps) // kw
        j = row - c * taps - i * kw
        row_offset = i * dh - top
        col_offset = j * dw - left
        h0, h1 = _valid_range(row_offset, height, sh, out_h)
        v0, v1 = _valid_range(col_offset, width, sw, out_w)
        for n in range(first, min(first + per_task, batch)):
            start = (row * batch + n) * plane
            _fill_zero(cols, start, h0 * out_w)
            for h in range(h0, h1):
                dst = start + h * out_w
                _fill_zero(cols, dst, v0)
                # first element read: x[n, c, h sh + row_offset, v0 sw + col_offset] >= 0
                src = numba.uint64((n * channels + c) * height * width
                                   + (h * sh + row_offset) * width + v0 * sw + col_offset)
                out = numba.uint64(dst + v0)
                if sw == 1:  # a unit-stride copy, vectorised
                    for k in range(numba.uint64(v1 - v0)):
                        cols[out + k] = x[src + k]
                else:
                    for k in range(numba.uint64(v1 - v0)):
                        cols[out + k] = x[src + k * step]
                _fill_zero(cols, dst + v1, out_w - v1)
            _fill_zero(cols, start + h1 * out_w, (out_h - h1) * out_w)


@numba.njit(parallel=True, cache=True, fastmath=False)
def _col2im2d(cols, out, shape, kh, kw, sh, sw, top, left, dh, dw):
    batch, channels, height, width, out_h, out_w = shape
    plane = out_h * out_w
    step = numba.uint64(sw)
    # tasks channel-major, as in the C kernel: sequential reads of cols
    for task in numba.prange(batch * channels):
        c = task // batch
        n = task - c * batch
        image = (n * channels + c) * height * width
        _fill_zero(out, image, height * width)
        for i in range(kh):
            row_offset = i * dh - top
            h0, h1 = _valid_range(row_offset, height, sh, out_h)
            for j in range(kw):
                col_offset = j * dw - left
                v0, v1 = _valid_range(col_offset, width, sw, out_w)
                src_plane = (((c * kh + i) * kw + j) * batch + n) * plane
                for h in range(h0, h1):
                    dst = numba.uint64(image + (h * sh + row_offset) * width + v0 * sw
                                       + col_offset)
                    src = numba.uint64(src_plane + h * out_w + v0)
                    if sw == 1:
                        for k in range(numba.uint64(v1 - v0)):
                            out[dst + k] += cols[src + k]
                    else:
                        for k in range(numba.uint64(v1 - v0)):
                            out[dst + k * step] += cols[src + k]


def _run(kernel, tasks, task_size, *args):
    """Call a parallel kernel with the thread count setting and dynamic chunks."""
    threads = min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if tasks * task_size < _PARALLEL_MIN:
        threads = 1
    numba.set_num_threads(threads)
    chunk = max(1, min(-(-_CHUNK // max(task_size, 1)), tasks // (4 * threads)))
    with numba.parallel_chunksize(chunk if threads > 1 else 0):
        kernel(*args)


def _positions(padded, kernel_size, stride, dilation):
    return (padded - dilation * (kernel_size - 1) - 1) // stride + 1


def _im2col(x, kernel_size, stride, padding, dilation):
    """2-D im2col of a (N, C, H, W) float array, ``None`` if unsupported."""
    if x.dtype not in _FLOATS or x.size == 0:
        return None
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, bottom), (left, right) = padding
    n, c, height, width = x.shape
    out_h = _positions(height + top + bottom, kh, sh, dh)
    out_w = _positions(width + left + right, kw, sw, dw)
    if out_h <= 0 or out_w <= 0:
        return None
    cols = np.empty((c * kh * kw, n, out_h, out_w), dtype=x.dtype)
    rows, plane = cols.shape[0], out_h * out_w
    threads = min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    per_task = n
    if threads > 1 and rows * n * plane >= _PARALLEL_MIN:
        # blocks of samples within a row of cols: at least 8 tasks per thread
        per_task = max(1, min(n, -(-_CHUNK // plane), -(-rows * n // (8 * threads))))
    _run(_im2col2d, rows * -(-n // per_task), per_task * plane,
         np.ascontiguousarray(x).reshape(-1), cols.reshape(-1),
         (n, c, height, width, out_h, out_w), kh, kw, sh, sw, top, left, dh, dw, per_task)
    return cols


def _col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """2-D col2im of a (C kH kW, N, H_out, W_out) array, ``None`` if unsupported."""
    if cols.dtype not in _FLOATS or cols.size == 0:
        return None
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, _), (left, _) = padding
    out = np.empty(tuple(input_shape), dtype=cols.dtype)
    images = out.shape[0] * out.shape[1]
    _run(_col2im2d, images, cols.size // max(images, 1), np.ascontiguousarray(cols).reshape(-1),
         out.reshape(-1), tuple(input_shape) + cols.shape[2:], kh, kw, sh, sw, top, left, dh,
         dw)
    return out


def im2col2d(x, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """:func:`minidl.ops.conv.im2col2d` in Numba: ``(C kH kW, N, H_out, W_out)``."""
    cols = _im2col(x, kernel_size, stride, padding, dilation)
    if cols is None:
        return reference.im2col2d(x, kernel_size, stride, padding, dilation)
    return cols


def col2im2d(cols, input_shape, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)),
             dilation=(1, 1)):
    """:func:`minidl.ops.conv.col2im2d` in Numba: the scatter-add back to the image."""
    out = _col2im(cols, input_shape, kernel_size, stride, padding, dilation)
    if out is None:
        return reference.col2im2d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out


def im2col1d(x, kernel_size, stride=1, padding=(0, 0), dilation=1):
    """:func:`minidl.ops.conv.im2col1d` in Numba: ``(C k, N, L_out)`` columns."""
    n, c, length = x.shape
    cols = _im2col(x.reshape(n, c, 1, length), (1, kernel_size), (1, stride),
                   ((0, 0), tuple(padding)), (1, dilation))
    if cols is None:
        return reference.im2col1d(x, kernel_size, stride, padding, dilation)
    return cols.reshape(cols.shape[0], n, cols.shape[3])


def col2im1d(cols, input_shape, kernel_size, stride=1, padding=(0, 0), dilation=1):
    """:func:`minidl.ops.conv.col2im1d` in Numba: the scatter-add back to ``(N, C, L)``."""
    n, c, length = input_shape
    rows, _, out_len = cols.shape
    out = _col2im(cols.reshape(rows, n, 1, out_len), (n, c, 1, length), (1, kernel_size),
                  (1, stride), ((0, 0), tuple(padding)), (1, dilation))
    if out is None:
        return reference.col2im1d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out.reshape(n, c, length)


for _name in __all__:
    backend.register_kernel(_name, "numba", globals()[_name])
