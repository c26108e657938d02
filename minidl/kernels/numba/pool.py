"""Numba pooling kernels, registered as the ``"numba"`` backend.

Same signatures and results (bit for bit) as the NumPy references in
:mod:`minidl.ops.pool` (``max_pool1d/2d_forward/backward``,
``avg_pool1d/2d_forward/backward``), and the same loops as the C kernels in
``minidl/kernels/cpu/_pool.pyx``, whose docstring gives the conventions (ties, NaN,
``-inf`` windows, summation order).  The wrappers flatten the input to a stack of planes
``(R, H, W)``, with 1-D pooling as planes of height 1; threads split the planes.  Global
max pooling keeps the reference: NumPy's vectorised ``argmax`` is faster than a loop.

The summing and copying inner loops index the flat arrays with unsigned ints: Numba
wraps a possibly negative signed index around (``index + size``) element by element,
which keeps LLVM from vectorising the loop.  Importing this module fails with
ImportError when Numba is not installed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from minidl import backend
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
# below this many elements (~0.15 ms of work) one thread is faster than waking a second
_PARALLEL_MIN = 1 << 17
# elements per dynamic scheduling chunk (see minidl.kernels.cpu.conv)
_CHUNK = 1 << 14
# stands in for the indices when the caller does not want them
_NO_INDICES = np.zeros(1, dtype=np.int64)


@numba.njit(cache=True, inline="always")
def _ceil_div(a, b):
    """ceil(a / b) for b > 0 and a of either sign."""
    return -((-a) // b)


@numba.njit(cache=True, inline="always")
def _taps_inside(start, size, kernel, dilation):
    """Kernel offsets ``t`` in ``[first, last)`` put ``start + t dilation`` inside
    ``[0, size)``; ``first`` is not clipped to ``kernel``."""
    first = max(_ceil_div(-start, dilation), 0)
    last = min(_ceil_div(size - start, dilation), kernel)
    return first, last


@numba.njit(cache=True, inline="always")
def _window_taps(start, size, kernel, dilation):
    """:func:`_taps_inside` without its divisions for windows wholly inside the input."""
    if start >= 0 and start + (kernel - 1) * dilation < size:
        return 0, kernel
    return _taps_inside(start, size, kernel, dilation)


@numba.njit(parallel=True, cache=True, fastmath=False)
def _max_pool2d(x, out, indices, with_indices, lowest, shape, kh, kw, sh, sw, ph, pw, dh,
                dw):
    planes, height, width, out_h, out_w = shape
    for r in numba.prange(planes):
        image = r * height * width
        for a in range(out_h):
            row0 = a * sh - ph
            i0, i1 = _window_taps(row0, height, kh, dh)
            result = r * out_h * out_w + a * out_w
            for b in range(out_w):
                col0 = b * sw - pw
                j0, j1 = _window_taps(col0, width, kw, dw)
                best = lowest  # -inf in x's dtype
                # the first tap inside the input (see the C kernel), as a position in x
                first = image + (row0 + i0 * dh) * width + col0 + j0 * dw
                best_position = first
                for i in range(i1 - i0):
                    row = first + i * dh * width
                    for j in range(j1 - j0):
                        position = row + j * dw
                        value = x[position]
                        # `|`, not `or`: no short-circuit branch.  The position takes a
                        # conditional move; the value np.maximum (NaN-propagating, the
                        # same result as "take if greater or NaN"), which LLVM compiles
                        # without a jump, where it makes `value if take else best` a
                        # mispredicted branch (measured 3.5x slower on random data)
                        take = (value > best) | (value != value)
                        best_position = position if take else best_position
                        best = np.maximum(best, value)
                best_index = best_position - image
                out[numba.uint64(result + b)] = best
                if with_indices:
                    indices[numba.uint64(result + b)] = best_index


@numba.njit(parallel=True, cache=True, fastmath=False)
def _max_pool_backward(grad_out, indices, grad_in, planes, plane, outputs):
    bad = 0
    for r in numba.prange(planes):
        start = numba.uint64(r * plane)
        for k in range(numba.uint64(plane)):
            grad_in[start + k] = 0
        for o in range(outputs):
            position = indices[numba.uint64(r * outputs + o)]
            if position < 0 or position >= plane:
                bad += 1
            else:
                grad_in[start + numba.uint64(position)] += grad_out[
                    numba.uint64(r * outputs + o)]
    return bad


@numba.njit(cache=True, inline="always")
def _interior(size, count, kernel, stride, pad, dilation):
    """Output positions ``[first, last)`` whose windows lie wholly inside the input."""
    first = min(_ceil_div(pad, stride), count)
    reach = size - 1 - (kernel - 1) * dilation + pad
    last = min(reach // stride + 1 if reach >= 0 else 0, count)
    return first, max(first, last)


@numba.njit(cache=True)
def _window_sum(x, image, row0, col0, height, width, kh, kw, zero):
    """Sum of one window that may reach into the padding (its taps inside)."""
    i0, i1 = _taps_inside(row0, height, kh, 1)
    j0, j1 = _taps_inside(col0, width, kw, 1)
    total = zero
    for i in range(i0, i1):
        for j in range(j0, j1):
            total = total + x[numba.uint64(image + (row0 + i) * width + col0 + j)]
    return total


@numba.njit(parallel=True, cache=True, fastmath=False)
def _avg_pool2d(x, out, divisor, zero, shape, kh, kw, sh, sw, ph, pw):
    planes, height, width, out_h, out_w = shape
    b0, b1 = _interior(width, out_w, kw, sw, pw, 1)
    for r in numba.prange(planes):
        image = r * height * width
        for a in range(out_h):
            row0 = a * sh - ph
            result = numba.uint64(r * out_h * out_w + a * out_w)
            # each sum starts at zero (`zero`: x's dtype) and adds its taps in row-major
            # order, as the reference; the border windows one by one...
            for b in range(out_w):
                if b0 <= b < b1:
                    continue
                out[result + b] = _window_sum(x, image, row0, b * sw - pw, height, width,
                                              kh, kw, zero)
            # ...the inside ones tap by tap, side by side
            i0, i1 = _taps_inside(row0, height, kh, 1)
            for b in range(b0, b1):
                out[result + b] = zero
            for i in range(i0, i1):
                for j in range(kw):
                    tap = numba.uint64(image + (row0 + i) * width + j - pw + b0 * sw)
                    step = numba.uint64(sw)
                    dst = result + numba.uint64(b0)
                    for k in range(numba.uint64(b1 - b0)):
                        out[dst + k] = out[dst + k] + x[tap + k * step]
            for b in range(out_w):
                out[result + b] = out[result + b] / divisor[numba.uint64(a * out_w + b)]


@numba.njit(parallel=True, cache=True, fastmath=False)
def _avg_pool2d_backward(grad_out, grad_in, divisor, shape, kh, kw, sh, sw, ph, pw):
    planes, height, width, out_h, out_w = shape
    step = numba.uint64(sw)
    for r in numba.prange(planes):
        image = r * height * width
        grads = r * out_h * out_w
        for k in range(numba.uint64(height * width)):
            grad_in[numba.uint64(image) + k] = 0
        # kernel offsets outside, as the reference, so sums come in the same order
        for i in range(kh):
            a0 = max(_ceil_div(ph - i, sh), 0)
            a1 = min(_ceil_div(height + ph - i, sh), out_h)
            for j in range(kw):
                b0 = max(_ceil_div(pw - j, sw), 0)
                b1 = min(_ceil_div(width + pw - j, sw), out_w)
                for a in range(a0, a1):
                    dst = numba.uint64(image + (a * sh - ph + i) * width + b0 * sw - pw + j)
                    g = numba.uint64(grads + a * out_w + b0)
                    d = numba.uint64(a * out_w + b0)
                    for k in range(numba.uint64(max(b1 - b0, 0))):
                        grad_in[dst + k * step] += grad_out[g + k] / divisor[d + k]


def _run(kernel, tasks, task_size, *args):
    """Call a parallel kernel with the thread count setting and dynamic chunks."""
    threads = min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if tasks * task_size < _PARALLEL_MIN:
        threads = 1
    numba.set_num_threads(threads)
    chunk = max(1, min(-(-_CHUNK // max(task_size, 1)), tasks // (4 * threads)))
    with numba.parallel_chunksize(chunk if threads > 1 else 0):
        return kernel(*args)


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
    indices = np.empty(out.shape, dtype=np.int64) if with_indices else _NO_INDICES
    _run(_max_pool2d, planes.shape[0], planes[0].size, planes.reshape(-1), out.reshape(-1),
         indices.reshape(-1), bool(with_indices), x.dtype.type(-np.inf), planes.shape + out_hw,
         kh, kw, sh, sw, ph, pw, dh, dw)
    shape = x.shape[:x.ndim - nd] + tuple(output_size)
    return out.reshape(shape), indices.reshape(shape) if with_indices else None


def max_pool1d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """:func:`minidl.ops.pool.max_pool1d_forward` in Numba: ``(out, indices or None)``."""
    return _max_forward(1, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """:func:`minidl.ops.pool.max_pool2d_forward` in Numba: ``(out, indices or None)``."""
    return _max_forward(2, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def _max_backward(nd, grad_out, indices, input_shape):
    if not _usable(grad_out):
        ref = reference.max_pool1d_backward if nd == 1 else reference.max_pool2d_backward
        return ref(grad_out, indices, input_shape)
    plane = math.prod(input_shape[len(input_shape) - nd:])
    rows = math.prod(input_shape[:len(input_shape) - nd])
    grad_in = np.empty(rows * plane, dtype=grad_out.dtype)
    bad = _run(_max_pool_backward, rows, plane, np.ascontiguousarray(grad_out).reshape(-1),
               np.ascontiguousarray(indices, dtype=np.int64).reshape(-1), grad_in, rows,
               plane, grad_out.size // rows)
    if bad:
        raise IndexError(
            f"max_pool{nd}d_backward: {bad} indices lie outside the input planes of "
            f"size {plane} (input shape {tuple(input_shape)})"
        )
    return grad_in.reshape(input_shape)


def max_pool1d_backward(grad_out, indices, input_shape):
    """:func:`minidl.ops.pool.max_pool1d_backward` in Numba: scatter-add to the maxima."""
    return _max_backward(1, grad_out, indices, input_shape)


def max_pool2d_backward(grad_out, indices, input_shape):
    """:func:`minidl.ops.pool.max_pool2d_backward` in Numba: scatter-add to the maxima."""
    return _max_backward(2, grad_out, indices, input_shape)


def _divisor_plane(divisor, dtype, output_size):
    """The divisor (a scalar or one per window) as a flat C-contiguous array of
    ``H_out * W_out`` values."""
    plane = np.broadcast_to(np.asarray(divisor, dtype=dtype), tuple(output_size))
    return np.ascontiguousarray(plane).reshape(-1)


def _avg_forward(nd, x, kernel_size, stride, padding, output_size, divisor):
    if not _usable(x):
        ref = reference.avg_pool1d_forward if nd == 1 else reference.avg_pool2d_forward
        return ref(x, kernel_size, stride, padding, output_size, divisor)
    (kh, kw), (sh, sw), (ph, pw), out_hw = _as_2d(nd, kernel_size, stride, padding,
                                                  output_size)
    planes = _planes(x, nd)
    out = np.empty((planes.shape[0],) + out_hw, dtype=x.dtype)
    _run(_avg_pool2d, planes.shape[0], planes[0].size, planes.reshape(-1), out.reshape(-1),
         _divisor_plane(divisor, x.dtype, output_size), x.dtype.type(0), planes.shape + out_hw,
         kh, kw, sh, sw, ph, pw)
    return out.reshape(x.shape[:x.ndim - nd] + tuple(output_size))


def avg_pool1d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """:func:`minidl.ops.pool.avg_pool1d_forward` in Numba."""
    return _avg_forward(1, x, kernel_size, stride, padding, output_size, divisor)


def avg_pool2d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """:func:`minidl.ops.pool.avg_pool2d_forward` in Numba."""
    return _avg_forward(2, x, kernel_size, stride, padding, output_size, divisor)


def _avg_backward(nd, grad_out, input_shape, kernel_size, stride, padding, divisor):
    if not _usable(grad_out):
        ref = reference.avg_pool1d_backward if nd == 1 else reference.avg_pool2d_backward
        return ref(grad_out, input_shape, kernel_size, stride, padding, divisor)
    output_size = grad_out.shape[grad_out.ndim - nd:]
    (kh, kw), (sh, sw), (ph, pw), out_hw = _as_2d(nd, kernel_size, stride, padding,
                                                  output_size)
    grads = _planes(grad_out, nd)
    spatial = ((1,) if nd == 1 else ()) + tuple(input_shape[len(input_shape) - nd:])
    grad_in = np.empty(grads.shape[0] * math.prod(spatial), dtype=grad_out.dtype)
    _run(_avg_pool2d_backward, grads.shape[0], math.prod(spatial), grads.reshape(-1),
         grad_in, _divisor_plane(divisor, grad_out.dtype, output_size),
         (grads.shape[0],) + spatial + out_hw, kh, kw, sh, sw, ph, pw)
    return grad_in.reshape(tuple(input_shape))


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """:func:`minidl.ops.pool.avg_pool1d_backward` in Numba."""
    return _avg_backward(1, grad_out, input_shape, kernel_size, stride, padding, divisor)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """:func:`minidl.ops.pool.avg_pool2d_backward` in Numba."""
    return _avg_backward(2, grad_out, input_shape, kernel_size, stride, padding, divisor)


for _name in __all__:
    backend.register_kernel(_name, "numba", globals()[_name])
