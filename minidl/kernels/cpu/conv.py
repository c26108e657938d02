"""Compiled (C, OpenMP) im2col and col2im kernels, registered as the ``"cpu"`` backend.

Same signatures, layouts and results as the NumPy references in :mod:`minidl.ops.conv`
(``im2col1d``, ``col2im1d``, ``im2col2d``, ``col2im2d``); the loops are in
``_conv.pyx``.  These wrappers make the arguments what the C code expects (a
C-contiguous float32 or float64 array, ints) and allocate the result; anything else (an
integer or float16 array, an empty one) goes to the reference.

A 1-D convolution is a 2-D one over images of height 1, so the 1-D kernels call the
2-D loops with ``H = kH = 1``: ``cols`` comes out as ``(C k, N, 1, L_out)``, which is
``(C k, N, L_out)`` in memory.

Importing this module fails (ImportError) when the extension is not built; the registry
then records ``cpu.conv`` as unavailable and the references run.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.kernels.cpu import _conv  # ImportError here = extension not built
from minidl.ops import conv as reference

__all__ = ["im2col1d", "col2im1d", "im2col2d", "col2im2d"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# below this many elements (~0.2 ms of copying) one thread is faster than waking a
# second one (measured with OMP_WAIT_POLICY=PASSIVE, where a wake-up costs ~0.05 ms)
_PARALLEL_MIN = 1 << 20
# elements per scheduling chunk: large enough that taking a chunk costs nothing, small
# enough that the other thread can take over the rest when one is descheduled (on a busy
# 2-core machine a static split waits for the slowest thread: measured 2-20x slower)
_CHUNK = 1 << 14


def _schedule(tasks, task_size):
    """``(threads, chunk)`` for a parallel loop of ``tasks`` tasks of ``task_size``
    elements each: one thread for small work, else dynamic chunks of ~``_CHUNK``
    elements, at least 4 per thread."""
    threads = backend.get_num_threads()
    if threads == 1 or tasks * task_size < _PARALLEL_MIN:
        return 1, max(tasks, 1)
    chunk = max(1, min(-(-_CHUNK // max(task_size, 1)), tasks // (4 * threads)))
    return threads, chunk


def _positions(padded, kernel_size, stride, dilation):
    return (padded - dilation * (kernel_size - 1) - 1) // stride + 1


def _im2col(x, kernel_size, stride, padding, dilation):
    """2-D im2col on a (N, C, H, W) float32/float64 array; ``None`` if the C loops cannot
    take it (the caller then runs the reference)."""
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
    threads, per_task = _schedule(cols.shape[0] * n, out_h * out_w)
    if threads > 1:
        # tasks are blocks of samples within a row of cols: at least 8 tasks per thread
        per_task = max(1, min(n, per_task, -(-cols.shape[0] * n // (8 * threads))))
    else:
        per_task = n
    _conv.im2col2d(np.ascontiguousarray(x), cols, kh, kw, sh, sw, top, left, dh, dw,
                   threads, per_task)
    return cols


def _col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """2-D col2im of a (C kH kW, N, H_out, W_out) array; ``None`` if unsupported."""
    if cols.dtype not in _FLOATS or cols.size == 0:
        return None
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, _), (left, _) = padding
    out = np.empty(tuple(input_shape), dtype=cols.dtype)
    images = out.shape[0] * out.shape[1]
    threads, chunk = _schedule(images, cols.size // max(images, 1))
    _conv.col2im2d(np.ascontiguousarray(cols), out, kh, kw, sh, sw, top, left, dh, dw,
                   threads, chunk)
    return out


def im2col2d(x, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """:func:`minidl.ops.conv.im2col2d` in C: ``(C kH kW, N, H_out, W_out)`` columns."""
    cols = _im2col(x, kernel_size, stride, padding, dilation)
    if cols is None:
        return reference.im2col2d(x, kernel_size, stride, padding, dilation)
    return cols


def col2im2d(cols, input_shape, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)),
             dilation=(1, 1)):
    """:func:`minidl.ops.conv.col2im2d` in C: the scatter-add back to ``input_shape``."""
    out = _col2im(cols, input_shape, kernel_size, stride, padding, dilation)
    if out is None:
        return reference.col2im2d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out


def im2col1d(x, kernel_size, stride=1, padding=(0, 0), dilation=1):
    """:func:`minidl.ops.conv.im2col1d` in C: ``(C k, N, L_out)`` columns."""
    n, c, length = x.shape
    cols = _im2col(x.reshape(n, c, 1, length), (1, kernel_size), (1, stride),
                   ((0, 0), tuple(padding)), (1, dilation))
    if cols is None:
        return reference.im2col1d(x, kernel_size, stride, padding, dilation)
    return cols.reshape(cols.shape[0], n, cols.shape[3])


def col2im1d(cols, input_shape, kernel_size, stride=1, padding=(0, 0), dilation=1):
    """:func:`minidl.ops.conv.col2im1d` in C: the scatter-add back to ``(N, C, L)``."""
    n, c, length = input_shape
    rows, _, out_len = cols.shape
    out = _col2im(cols.reshape(rows, n, 1, out_len), (n, c, 1, length), (1, kernel_size),
                  (1, stride), ((0, 0), tuple(padding)), (1, dilation))
    if out is None:
        return reference.col2im1d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out.reshape(n, c, length)


for _name in __all__:
    backend.register_kernel(_name, "cpu", globals()[_name])
