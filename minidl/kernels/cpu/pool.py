"""Compiled (C, OpenMP) pooling kernels, registered as the ``"cpu"`` backend.

Same signatures and results as the NumPy references in :mod:`minidl.ops.pool`:
``max_pool1d/2d_forward/backward`` and ``avg_pool1d/2d_forward/backward``; the loops
are in ``_pool.pyx``.  (Global max pooling keeps the reference: NumPy's vectorised
``argmax`` beat a compiled loop, 0.21 vs 0.43 ms on W2's (4096, 62) rows.)

The C loops work on a stack of planes ``(R, H, W)``: these wrappers flatten the leading
dimensions of the input into ``R``, run 1-D pooling as 2-D pooling over planes of height
1 (a 1-D position ``l`` is the flat position ``0 * L + l``, so even the indices agree),
turn the divisor of average pooling (a scalar or one value per window) into an
``(H_out, W_out)`` array, and allocate the results.  Anything the C code does not take
(an integer or float16 array, an empty one) goes to the reference.

Importing this module fails (ImportError) when the extension is not built.
"""

from __future__ import annotations

import math

import numpy as np

from minidl import backend
from minidl.kernels.cpu import _pool  # ImportError here = extension not built
from minidl.ops import pool as reference

__all__ = [
    "max_pool1d_forward",
    "max_pool2d_forward",
    "max_pool1d_backward",
    "max_pool2d_backward",
    "avg_pool1d_forward",
    "avg_pool2d_forward",
    "avg_pool1d_backward",
    "avg_pool2d_backward",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
# below this many elements (~0.15 ms of work) one thread is faster than waking a
# second one (measured with OMP_WAIT_POLICY=PASSIVE, where a wake-up costs ~0.05 ms)
_PARALLEL_MIN = 1 << 17
# elements per dynamic scheduling chunk (see minidl.kernels.cpu.conv)
_CHUNK = 1 << 14


def _schedule(tasks, task_size):
    """``(threads, chunk)`` for ``tasks`` planes of ``task_size`` elements."""
    threads = backend.get_num_threads()
    if threads == 1 or tasks * task_size < _PARALLEL_MIN:
        return 1, max(tasks, 1)
    chunk = max(1, min(-(-_CHUNK // max(task_size, 1)), tasks // (4 * threads)))
    return threads, chunk


def _usable(*arrays):
    return all(a.dtype in _FLOATS and a.size for a in arrays)


def _planes(x, nd):
    """``x`` (..., *spatial) as a C-contiguous (R, H, W) stack (H = 1 for 1-D)."""
    spatial = x.shape[x.ndim - nd:]
    if nd == 1:
        spatial = (1,) + spatial
    return np.ascontiguousarray(x).reshape((-1,) + spatial)


def _as_2d(nd, *params):
    """Window parameters as 2-tuples: 1-D pooling is 2-D pooling with a height-1 window.

    ``params`` are (kernel_size, stride, padding, ...) in that order: the height entry is
    1 for each, except 0 for the padding (the third).
    """
    if nd == 2:
        return tuple(tuple(p) for p in params)
    return tuple((first,) + tuple(p) for first, p in zip((1, 1, 0, 1, 1), params))


def _max_forward(nd, x, kernel_size, stride, padding, dilation, output_size, with_indices):
    if not _usable(x):
        ref = reference.max_pool1d_forward if nd == 1 else reference.max_pool2d_forward
        return ref(x, kernel_size, stride, padding, dilation, output_size, with_indices)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), out_hw = _as_2d(
        nd, kernel_size, stride, padding, dilation, output_size
    )
    planes = _planes(x, nd)
    out = np.empty((planes.shape[0],) + out_hw, dtype=x.dtype)
    threads, chunk = _schedule(planes.shape[0], planes[0].size)
    # without indices the C loop still needs a row of scratch per thread for the argmax
    index_shape = out.shape if with_indices else (threads, 1, out_hw[1])
    indices = np.empty(index_shape, dtype=np.int64)
    _pool.max_pool2d_forward(planes, out, indices, with_indices, kh, kw, sh, sw, ph, pw,
                             dh, dw, threads, chunk)
    shape = x.shape[:x.ndim - nd] + tuple(output_size)
    return out.reshape(shape), indices.reshape(shape) if with_indices else None


def max_pool1d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """:func:`minidl.ops.pool.max_pool1d_forward` in C: ``(out, indices or None)``."""
    return _max_forward(1, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """:func:`minidl.ops.pool.max_pool2d_forward` in C: ``(out, indices or None)``."""
    return _max_forward(2, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def _max_backward(nd, grad_out, indices, input_shape):
    if not _usable(grad_out):
        ref = reference.max_pool1d_backward if nd == 1 else reference.max_pool2d_backward
        return ref(grad_out, indices, input_shape)
    plane = math.prod(input_shape[len(input_shape) - nd:])
    rows = math.prod(input_shape[:len(input_shape) - nd])
    grad_in = np.empty((rows, plane), dtype=grad_out.dtype)
    grad_rows = np.ascontiguousarray(grad_out).reshape(rows, -1)
    index_rows = np.ascontiguousarray(indices, dtype=np.int64).reshape(rows, -1)
    threads, chunk = _schedule(rows, plane)
    bad = _pool.max_pool_backward(grad_rows, index_rows, grad_in, threads, chunk)
    if bad:
        raise IndexError(
            f"max_pool{nd}d_backward: {bad} indices lie outside the input planes of "
            f"size {plane} (input shape {tuple(input_shape)})"
        )
    return grad_in.reshape(input_shape)


def max_pool1d_backward(grad_out, indices, input_shape):
    """:func:`minidl.ops.pool.max_pool1d_backward` in C: scatter-add to the maxima."""
    return _max_backward(1, grad_out, indices, input_shape)


def max_pool2d_backward(grad_out, indices, input_shape):
    """:func:`minidl.ops.pool.max_pool2d_backward` in C: scatter-add to the maxima."""
    return _max_backward(2, grad_out, indices, input_shape)


def _divisor_plane(divisor, dtype, output_size):
    """The divisor (a scalar or one per window) as a C-contiguous (H_out, W_out) array."""
    plane = np.broadcast_to(np.asarray(divisor, dtype=dtype), tuple(output_size))
    return np.ascontiguousarray(plane).reshape((-1, plane.shape[-1]))


def _avg_forward(nd, x, kernel_size, stride, padding, output_size, divisor):
    if not _usable(x):
        ref = reference.avg_pool1d_forward if nd == 1 else reference.avg_pool2d_forward
        return ref(x, kernel_size, stride, padding, output_size, divisor)
    (kh, kw), (sh, sw), (ph, pw), out_hw = _as_2d(nd, kernel_size, stride, padding,
                                                  output_size)
    planes = _planes(x, nd)
    out = np.empty((planes.shape[0],) + out_hw, dtype=x.dtype)
    threads, chunk = _schedule(planes.shape[0], planes[0].size)
    _pool.avg_pool2d_forward(planes, out, _divisor_plane(divisor, x.dtype, output_size),
                             kh, kw, sh, sw, ph, pw, threads, chunk)
    return out.reshape(x.shape[:x.ndim - nd] + tuple(output_size))


def avg_pool1d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """:func:`minidl.ops.pool.avg_pool1d_forward` in C."""
    return _avg_forward(1, x, kernel_size, stride, padding, output_size, divisor)


def avg_pool2d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """:func:`minidl.ops.pool.avg_pool2d_forward` in C."""
    return _avg_forward(2, x, kernel_size, stride, padding, output_size, divisor)


def _avg_backward(nd, grad_out, input_shape, kernel_size, stride, padding, divisor):
    if not _usable(grad_out):
        ref = reference.avg_pool1d_backward if nd == 1 else reference.avg_pool2d_backward
        return ref(grad_out, input_shape, kernel_size, stride, padding, divisor)
    output_size = grad_out.shape[grad_out.ndim - nd:]
    (kh, kw), (sh, sw), (ph, pw) = _as_2d(nd, kernel_size, stride, padding)
    grads = _planes(grad_out, nd)
    spatial = tuple(input_shape[len(input_shape) - nd:])
    grad_in = np.empty((grads.shape[0],) + ((1,) if nd == 1 else ()) + spatial,
                       dtype=grad_out.dtype)
    threads, chunk = _schedule(grads.shape[0], grad_in[0].size)
    _pool.avg_pool2d_backward(grads, grad_in,
                              _divisor_plane(divisor, grad_out.dtype, output_size),
                              kh, kw, sh, sw, ph, pw, threads, chunk)
    return grad_in.reshape(tuple(input_shape))


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """:func:`minidl.ops.pool.avg_pool1d_backward` in C."""
    return _avg_backward(1, grad_out, input_shape, kernel_size, stride, padding, divisor)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """:func:`minidl.ops.pool.avg_pool2d_backward` in C."""
    return _avg_backward(2, grad_out, input_shape, kernel_size, stride, padding, divisor)


for _name in __all__:
    backend.register_kernel(_name, "cpu", globals()[_name])
