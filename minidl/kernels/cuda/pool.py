r"""Numba-CUDA max and average pooling, registered as the ``"cuda"`` backend.

Same signatures and results as the NumPy references in :mod:`minidl.ops.pool`
(``max_pool1d/2d_forward/backward``, ``avg_pool1d/2d_forward/backward``).  The wrappers
view the input as a stack of planes ``(R, H, W)`` (the leading dimensions flattened;
1-D pooling as planes of height 1) and launch one thread per output (forward) or per
input element (average backward).  Output ``(a, b)`` reads the window of rows
``a s_H - p_H + i d_H`` (``i < k_H``) and columns ``b s_W - p_W + j d_W`` (``j < k_W``);
taps in the padding are skipped, the same as the references' padding with ``-inf``
(max) or ``0`` (average).

Conventions (those of the references, see :mod:`minidl.kernels.cpu.pool`):

- max: a tap replaces the running maximum if it is strictly greater (ties: the first in
  row-major window order) or NaN (``val > max || isnan(val)``: the result is NaN and its
  index the window's last NaN).  The running maximum starts at ``-inf`` with the index of
  the window's first tap inside the input, what PyTorch reports for a window of ``-inf``.
- max backward: :math:`\bar x[r, \text{idx}[r, o]] \mathrel{+}= \bar y[r, o]`, one thread
  per output with ``atomicAdd``, because windows overlap when the stride is shorter than
  the kernel (several outputs may name one input).  The additions then come in no fixed
  order: equal to the reference up to rounding.
- average: :math:`y = (\sum_{\text{taps}} x) / \text{divisor}`, taps added in window
  order from zero; backward is a gather, :math:`\bar x[t, u] = \sum_{(i, j)}
  \bar y[a, b] / \text{divisor}[a, b]` over the windows :math:`(a, b)` that read
  :math:`(t, u)`, offsets in the reference's order.  No atomics.

Other dtypes and empty inputs go to the reference (which runs on CuPy too).  Importing
this module fails with ImportError without Numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from minidl import backend
from minidl.kernels.cuda import _common
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


# NOTE: no built-in max()/min() in these kernels: Numba 0.68's CUDA target fails to type
# them (its vararg overloads of max/min get compiled with the wrong argument count), so
# the clamps are spelled out; tests/kernels/cuda/compile_ptx.py checks this.


@cuda.jit(device=True)
def _clamp_below(a, low):
    return low if a < low else a


@cuda.jit(device=True)
def _clamp_above(a, high):
    return high if a > high else a


@cuda.jit(device=True)
def _ceil_div(a, b):
    """ceil(a / b) for b > 0 and a of either sign (integer floor division rounds down)."""
    return -((-a) // b)


@cuda.jit(device=True)
def _taps_inside(start, size, kernel, dilation):
    """Kernel offsets ``[first, last)`` that put ``start + t dilation`` inside ``[0,
    size)``; ``first`` is not clipped to ``kernel`` (an empty window has first >= last)."""
    first = _clamp_below(_ceil_div(-start, dilation), 0)
    last = _clamp_above(_ceil_div(size - start, dilation), kernel)
    return first, last


@cuda.jit
def _max_pool2d(x, out, indices, with_indices, total, out_h, out_w, kh, kw, sh, sw, ph, pw,
                dh, dw):
    # x: (R, H, W), any strides; out and indices: flat C-ordered (R, H_out, W_out)
    _, height, width = x.shape
    lowest = x.dtype.type(-np.inf)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index % out_w
        rest = index // out_w
        a = rest % out_h
        r = rest // out_h
        row0 = a * sh - ph
        col0 = b * sw - pw
        i0, i1 = _taps_inside(row0, height, kh, dh)
        j0, j1 = _taps_inside(col0, width, kw, dw)
        best = lowest
        best_index = (row0 + i0 * dh) * width + col0 + j0 * dw
        for i in range(i0, i1):
            row = row0 + i * dh
            for j in range(j0, j1):
                col = col0 + j * dw
                value = x[r, row, col]
                if value > best or value != value:
                    best = value
                    best_index = row * width + col
        out[index] = best
        if with_indices:
            indices[index] = best_index


@cuda.jit
def _max_pool_backward(grad_out, indices, grad_in, total, outputs, plane, bad):
    # grad_out, indices: flat (R, outputs); grad_in: flat (R, plane), zeroed
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        position = indices[index]
        if position < 0 or position >= plane:
            cuda.atomic.add(bad, 0, 1)  # counted, never written: the wrapper raises
        else:
            cuda.atomic.add(grad_in, (index // outputs) * plane + position, grad_out[index])


@cuda.jit
def _avg_pool2d(x, out, divisor, total, out_h, out_w, kh, kw, sh, sw, ph, pw):
    # x: (R, H, W), any strides; out: flat (R, H_out, W_out); divisor: flat (H_out W_out)
    _, height, width = x.shape
    zero = x.dtype.type(0)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index % out_w
        rest = index // out_w
        a = rest % out_h
        r = rest // out_h
        row0 = a * sh - ph
        col0 = b * sw - pw
        acc = zero
        for i in range(_clamp_below(-row0, 0), _clamp_above(height - row0, kh)):
            for j in range(_clamp_below(-col0, 0), _clamp_above(width - col0, kw)):
                acc += x[r, row0 + i, col0 + j]
        out[index] = acc / divisor[a * out_w + b]


@cuda.jit
def _avg_pool2d_backward(grad_out, grad_in, divisor, total, height, width, kh, kw, sh, sw,
                         ph, pw):
    # grad_out: (R, H_out, W_out), any strides; grad_in: flat (R, H, W)
    _, out_h, out_w = grad_out.shape
    zero = grad_out.dtype.type(0)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        u = index % width
        rest = index // width
        t = rest % height
        r = rest // height
        acc = zero
        for i in range(kh):
            a = t + ph - i  # window row a starts at a s_H - p_H and reads t at offset i
            if a < 0:
                break
            if a % sh != 0 or a // sh >= out_h:
                continue
            for j in range(kw):
                b = u + pw - j
                if b < 0:
                    break
                if b % sw != 0 or b // sw >= out_w:
                    continue
                # grad / divisor first, in the data's dtype, as the reference does
                acc += grad_out[r, a // sh, b // sw] / divisor[(a // sh) * out_w + b // sw]
        grad_in[index] = acc


def _as_2d(nd, *params):
    """Window parameters as 2-tuples: 1-D pooling is 2-D pooling with a height-1 window.

    ``params`` are (kernel_size, stride, padding, ...): the added height entry is 1 for
    each, except 0 for the padding (the third)."""
    if nd == 2:
        return tuple(tuple(p) for p in params)
    return tuple((first,) + tuple(p) for first, p in zip((1, 1, 0, 1, 1), params))


def _planes(x, nd):
    """``x`` (..., *spatial) as an (R, H, W) stack (H = 1 for 1-D), a view when it can."""
    spatial = tuple(x.shape[x.ndim - nd:])
    if nd == 1:
        spatial = (1,) + spatial
    return x.reshape((-1,) + spatial)


def _divisor_plane(xp, divisor, dtype, output_size):
    """The divisor (a scalar or one per window) as ``H_out * W_out`` contiguous values in
    the data's dtype (the reference divides in that dtype)."""
    plane = xp.broadcast_to(xp.asarray(divisor, dtype=dtype), tuple(output_size))
    return xp.ascontiguousarray(plane).reshape(-1)


def _max_forward(nd, x, kernel_size, stride, padding, dilation, output_size, with_indices):
    if x.ndim < nd or not _common.usable(x) or 0 in tuple(output_size):
        ref = reference.max_pool1d_forward if nd == 1 else reference.max_pool2d_forward
        return ref(x, kernel_size, stride, padding, dilation, output_size, with_indices)
    xp = _common.array_module(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (out_h, out_w) = _as_2d(
        nd, kernel_size, stride, padding, dilation, output_size)
    planes = _planes(x, nd)
    out = xp.empty((planes.shape[0], out_h, out_w), dtype=x.dtype)
    # a one-element stand-in when the indices are not wanted: one compiled signature
    indices = xp.empty(out.shape if with_indices else (1,), dtype=np.int64)
    _common.launch(_max_pool2d, out.size, planes, out.reshape(-1), indices.reshape(-1),
                   bool(with_indices), out.size, out_h, out_w, kh, kw, sh, sw, ph, pw, dh, dw)
    shape = tuple(x.shape[:x.ndim - nd]) + tuple(output_size)
    return out.reshape(shape), indices.reshape(shape) if with_indices else None


def max_pool1d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    r""":func:`minidl.ops.pool.max_pool1d_forward` on the GPU: :math:`y[o] = \max_j
    x[o s - p + j d]` over the taps inside the input, and the position of the first
    maximum (last NaN) when ``with_indices``; ``(out, indices or None)``."""
    return _max_forward(1, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def max_pool2d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    r""":func:`minidl.ops.pool.max_pool2d_forward` on the GPU: :math:`y[a, b] = \max_{i, j}
    x[a s_H - p_H + i d_H, b s_W - p_W + j d_W]` and its flat index ``h * W + w``."""
    return _max_forward(2, x, kernel_size, stride, padding, dilation, output_size,
                        with_indices)


def _max_backward(nd, grad_out, indices, input_shape):
    input_shape = tuple(input_shape)
    if grad_out.ndim < nd or not _common.usable(grad_out):
        ref = reference.max_pool1d_backward if nd == 1 else reference.max_pool2d_backward
        return ref(grad_out, indices, input_shape)
    xp = _common.array_module(grad_out)
    plane = math.prod(input_shape[len(input_shape) - nd:])
    rows = math.prod(input_shape[:len(input_shape) - nd])
    grad_in = xp.zeros(rows * plane, dtype=grad_out.dtype)
    bad = xp.zeros(1, dtype=np.int64)
    flat_grad = xp.ascontiguousarray(grad_out).reshape(-1)
    flat_indices = xp.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
    _common.launch(_max_pool_backward, flat_grad.size, flat_grad, flat_indices, grad_in,
                   flat_grad.size, flat_grad.size // max(rows, 1), plane, bad)
    # NOTE: reading the count waits for the kernel (one synchronisation per call); the
    # price of the same IndexError as the other backends instead of silently lost gradient
    count = int(bad[0])
    if count:
        raise IndexError(
            f"max_pool{nd}d_backward: {count} indices lie outside the input planes of "
            f"size {plane} (input shape {input_shape})"
        )
    return grad_in.reshape(input_shape)


def max_pool1d_backward(grad_out, indices, input_shape):
    r""":func:`minidl.ops.pool.max_pool1d_backward` on the GPU: :math:`\bar x[r,
    \text{idx}[r, o]] \mathrel{+}= \bar y[r, o]` (atomic adds)."""
    return _max_backward(1, grad_out, indices, input_shape)


def max_pool2d_backward(grad_out, indices, input_shape):
    r""":func:`minidl.ops.pool.max_pool2d_backward` on the GPU: :math:`\bar x[r,
    \text{idx}[r, o]] \mathrel{+}= \bar y[r, o]` with flat ``h * W + w`` indices."""
    return _max_backward(2, grad_out, indices, input_shape)


def _avg_forward(nd, x, kernel_size, stride, padding, output_size, divisor):
    if x.ndim < nd or not _common.usable(x) or 0 in tuple(output_size):
        ref = reference.avg_pool1d_forward if nd == 1 else reference.avg_pool2d_forward
        return ref(x, kernel_size, stride, padding, output_size, divisor)
    xp = _common.array_module(x)
    (kh, kw), (sh, sw), (ph, pw), (out_h, out_w) = _as_2d(nd, kernel_size, stride, padding,
                                                          output_size)
    planes = _planes(x, nd)
    out = xp.empty((planes.shape[0], out_h, out_w), dtype=x.dtype)
    _common.launch(_avg_pool2d, out.size, planes, out.reshape(-1),
                   _divisor_plane(xp, divisor, x.dtype, output_size), out.size, out_h, out_w,
                   kh, kw, sh, sw, ph, pw)
    return out.reshape(tuple(x.shape[:x.ndim - nd]) + tuple(output_size))


def avg_pool1d_forward(x, kernel_size, stride, padding, output_size, divisor):
    r""":func:`minidl.ops.pool.avg_pool1d_forward` on the GPU: :math:`y[o] = \sum_j
    x[o s - p + j] / \text{divisor}[o]` (taps in the padding count as 0)."""
    return _avg_forward(1, x, kernel_size, stride, padding, output_size, divisor)


def avg_pool2d_forward(x, kernel_size, stride, padding, output_size, divisor):
    r""":func:`minidl.ops.pool.avg_pool2d_forward` on the GPU: :math:`y[a, b] = \sum_{i, j}
    x[a s_H - p_H + i, b s_W - p_W + j] / \text{divisor}[a, b]`."""
    return _avg_forward(2, x, kernel_size, stride, padding, output_size, divisor)


def _avg_backward(nd, grad_out, input_shape, kernel_size, stride, padding, divisor):
    input_shape = tuple(input_shape)
    if grad_out.ndim < nd or not _common.usable(grad_out) or 0 in input_shape:
        ref = reference.avg_pool1d_backward if nd == 1 else reference.avg_pool2d_backward
        return ref(grad_out, input_shape, kernel_size, stride, padding, divisor)
    xp = _common.array_module(grad_out)
    output_size = tuple(grad_out.shape[grad_out.ndim - nd:])
    (kh, kw), (sh, sw), (ph, pw) = _as_2d(nd, kernel_size, stride, padding)
    height, width = ((1,) if nd == 1 else ()) + input_shape[len(input_shape) - nd:]
    grad_in = xp.empty(input_shape, dtype=grad_out.dtype)
    _common.launch(_avg_pool2d_backward, grad_in.size, _planes(grad_out, nd),
                   grad_in.reshape(-1), _divisor_plane(xp, divisor, grad_out.dtype, output_size),
                   grad_in.size, height, width, kh, kw, sh, sw, ph, pw)
    return grad_in


def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    r""":func:`minidl.ops.pool.avg_pool1d_backward` on the GPU: :math:`\bar x[t] =
    \sum_{o, j \,:\, o s - p + j = t} \bar y[o] / \text{divisor}[o]`, a gather."""
    return _avg_backward(1, grad_out, input_shape, kernel_size, stride, padding, divisor)


def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    r""":func:`minidl.ops.pool.avg_pool2d_backward` on the GPU: every input element gathers
    :math:`\bar y[a, b] / \text{divisor}[a, b]` from the windows that read it."""
    return _avg_backward(2, grad_out, input_shape, kernel_size, stride, padding, divisor)


for _name in __all__:
    backend.register_kernel(_name, "cuda", globals()[_name])
