r"""Pooling: max, average, adaptive and global pooling over 1-D and 2-D windows.

Windows
-------
A pooling layer slides a window of ``kernel_size`` positions over the spatial
dimensions, moving ``stride`` positions at a time, over the input padded by ``padding``
on both sides; ``dilation`` spaces the window's taps.  Output position ``o`` along a
dimension looks at the (padded) input positions

.. math:: o\,s + j\,d, \qquad j = 0, \dots, k - 1

(``k`` the kernel size, ``s`` the stride, ``d`` the dilation), and the number of
outputs is PyTorch's

.. math:: L_{out} = \left\lfloor \frac{L + 2p - d(k-1) - 1}{s} \right\rfloor + 1

(rounded up instead with ``ceil_mode=True``, except that the last window must start
inside the input or its left padding).

How the reference kernels vectorise
-----------------------------------
For one kernel offset ``j`` the taps of *all* output positions form a strided slice of
the padded input, ``x[..., j*d : j*d + (L_out-1)*s + 1 : s]`` (a view, no copy: the
"sliding window" of stride tricks, one tap at a time).  The kernels loop over the
``k`` (or ``kh * kw``) kernel offsets and combine whole slices with array operations;
there is no loop over positions, channels or samples.

- max pooling keeps a running maximum and the offset that produced it;
- average pooling adds the slices and divides by the window size;
- backward of max pooling scatter-adds each output gradient to the position of its
  maximum; backward of average pooling adds ``grad / divisor`` back through the slices.

NOTE (ties): when several taps of a window hold the maximum, the gradient and the index
go to the *first* one in window order (row-major over the kernel offsets), because a
later tap replaces the running maximum only if it is strictly greater.  PyTorch's CPU
kernels do the same (checked by the tests).  A NaN counts as larger than everything:
the output is NaN and the index is the *last* NaN of the window, again as PyTorch.

Adaptive pooling chooses the windows from the output size instead: output ``i`` of
``L_out`` covers input positions ``floor(i L / L_out)`` to ``ceil((i+1) L / L_out)``
(exclusive), so the windows may differ in size by one and may overlap.

Each hot kernel is a plain array function registered in :mod:`minidl.backend` under a
name (``"max_pool2d_forward"``...); the Functions below look it up with
``get_kernel(name, device)``, so accelerated versions with the same signature can
replace the NumPy reference.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from minidl import autograd, backend
from minidl.autograd import Function
from minidl.backend import array_module

__all__ = [
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "global_max_pool1d",
    "global_max_pool2d",
    "global_avg_pool1d",
    "global_avg_pool2d",
]


# ============================================================================ reference kernels


def _taps(offset, stride, dilation, count):
    """The slice of the padded input read by kernel offset ``offset`` for all ``count``
    output positions (along one dimension)."""
    start = offset * dilation
    return slice(start, start + (count - 1) * stride + 1, stride)


def _window_view(x_pad, offsets, stride, dilation, output_size):
    """Strided view: element ``[..., o1, o2]`` is the tap ``offsets`` of window (o1, o2)."""
    return x_pad[
        (Ellipsis,)
        + tuple(_taps(j, s, d, n) for j, s, d, n in zip(offsets, stride, dilation, output_size))
    ]


def _right_padding(spatial, padding, stride, dilation, kernel_size, output_size):
    """How much to pad after each dimension so that the last window fits: ``ceil_mode``
    windows may reach past the padding, and trailing inputs no window reads need none."""
    return tuple(
        max(0, (n - 1) * s + (k - 1) * d + 1 - (size + p))
        for n, s, k, d, size, p in zip(output_size, stride, kernel_size, dilation, spatial,
                                       padding)
    )


def _pad_spatial(x, padding, stride, dilation, kernel_size, output_size, value):
    """Pad the trailing ``len(kernel_size)`` dimensions with ``value``: ``padding`` before,
    :func:`_right_padding` after.  Returns the input itself when no padding is needed."""
    nd = len(kernel_size)
    spatial = x.shape[-nd:]
    after = _right_padding(spatial, padding, stride, dilation, kernel_size, output_size)
    if not any(padding) and not any(after):
        return x
    xp = array_module(x)
    shape = x.shape[:-nd] + tuple(size + p + a for size, p, a in zip(spatial, padding, after))
    x_pad = xp.full(shape, value, dtype=x.dtype)
    x_pad[(Ellipsis,) + tuple(slice(p, p + size) for p, size in zip(padding, spatial))] = x
    return x_pad


def _offset_dtype(kernel_size):
    """Smallest integer type that numbers every kernel offset (the running argmax)."""
    count = math.prod(kernel_size)
    return np.int8 if count <= 127 else np.int16 if count <= 32767 else np.int32


def _max_pool_forward_nd(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """Max pooling over the trailing ``len(kernel_size)`` dimensions (shared by 1-D, 2-D)."""
    xp = array_module(x)
    nd = len(kernel_size)
    x_pad = _pad_spatial(x, padding, stride, dilation, kernel_size, output_size, -np.inf)
    offsets = list(itertools.product(*(range(k) for k in kernel_size)))

    # the running maximum starts as the first tap of every window
    out = xp.array(_window_view(x_pad, offsets[0], stride, dilation, output_size))
    tap = xp.empty_like(out)
    if not with_indices:
        for offset in offsets[1:]:
            # copy the strided tap into a contiguous buffer first: NumPy's ufuncs on
            # strided operands run several times slower than a copy plus a contiguous ufunc
            tap[...] = _window_view(x_pad, offset, stride, dilation, output_size)
            xp.maximum(out, tap, out=out)
        return out, None

    best = xp.zeros(out.shape, dtype=_offset_dtype(kernel_size))  # number of the best offset
    greater = xp.empty(out.shape, dtype=bool)
    for number, offset in enumerate(offsets[1:], start=1):
        tap[...] = _window_view(x_pad, offset, stride, dilation, output_size)
        # NOTE: strictly greater, so on ties the first maximum in window order is kept
        xp.greater(tap, out, out=greater)
        xp.maximum(out, tap, out=out)  # maximum propagates NaN, as PyTorch does
        # best = where(greater, number, best), branch-free: offsets are numbered in loop
        # order, so ``number`` exceeds every value ``best`` holds so far
        xp.maximum(best, xp.multiply(greater, number, dtype=best.dtype), out=best)
    if xp.isnan(out).any():
        # PyTorch's rule `val > maxval || isnan(val)`: the index is the window's last NaN
        for number, offset in enumerate(offsets):
            xp.putmask(best, xp.isnan(_window_view(x_pad, offset, stride, dilation,
                                                   output_size)), number)

    # flat index of the maximum in each (unpadded) input plane, as PyTorch reports it
    spatial = x.shape[-nd:]
    per_dim = (best,) if nd == 1 else (best // kernel_size[1], best % kernel_size[1])
    indices = None
    for axis, (j, s, p, d, n, size) in enumerate(
        zip(per_dim, stride, padding, dilation, output_size, spatial)
    ):
        shape = (n,) + (1,) * (nd - 1 - axis)
        window_start = xp.arange(n, dtype=np.int64) * s - p
        position = xp.multiply(j, d, dtype=np.int64)
        position += window_start.reshape(shape)
        if p:
            # a window whose real taps are all -inf keeps its first tap, which may lie in
            # the padding; PyTorch reports the window's first tap inside the input instead
            first_inside = xp.where(window_start < 0,
                                    window_start + (-window_start + d - 1) // d * d,
                                    window_start)
            xp.maximum(position, first_inside.reshape(shape), out=position)
        if indices is None:
            indices = position
        else:
            indices *= size
            indices += position
    return out, indices


@backend.register_kernel("max_pool1d_forward", "numpy")
def max_pool1d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """Reference 1-D max pooling.

    Signature: ``(x, kernel_size, stride, padding, dilation, output_size, with_indices)
    -> (out, indices)``.  ``x`` is (..., L) (usually (N, C, L)); the four window
    parameters and ``output_size`` are 1-tuples of ints; ``out`` is (..., L_out) in
    ``x``'s dtype.  ``indices`` (int64, same shape) holds the position in ``[0, L)`` of
    each window's maximum (first one on ties, last NaN if any), or is ``None`` when
    ``with_indices`` is false.  Padding counts as ``-inf``.
    """
    return _max_pool_forward_nd(x, kernel_size, stride, padding, dilation, output_size,
                                with_indices)


@backend.register_kernel("max_pool2d_forward", "numpy")
def max_pool2d_forward(x, kernel_size, stride, padding, dilation, output_size, with_indices):
    """Reference 2-D max pooling.

    Signature: ``(x, kernel_size, stride, padding, dilation, output_size, with_indices)
    -> (out, indices)``.  ``x`` is (..., H, W); window parameters and ``output_size``
    are 2-tuples; ``indices`` (int64) holds ``h * W + w`` of each window's maximum, or
    ``None`` when ``with_indices`` is false.
    """
    return _max_pool_forward_nd(x, kernel_size, stride, padding, dilation, output_size,
                                with_indices)


def _scatter_to_indices(grad_out, indices, input_shape, nd):
    """``grad_in[..., indices[..., o]] += grad_out[..., o]`` in each input plane."""
    xp = array_module(grad_out)
    plane = math.prod(input_shape[-nd:])
    rows = math.prod(input_shape[:-nd])
    grad_in = xp.zeros((rows, plane), dtype=grad_out.dtype)
    if grad_out.size:
        flat = indices.reshape(rows, -1) + xp.arange(rows, dtype=np.int64)[:, None] * plane
        # windows may overlap (stride < kernel), so one input can be the maximum of several
        # windows: add.at accumulates repeated indices, plain assignment would not
        _add_at(grad_in.reshape(-1), flat.reshape(-1), grad_out.reshape(-1))
    return grad_in.reshape(input_shape)


def _add_at(target, index, values):
    """``target[index] += values`` with repeated indices accumulated (``np.add.at``, or
    ``cupyx.scatter_add`` on the GPU)."""
    backend.add_at(target, index, values)


@backend.register_kernel("max_pool1d_backward", "numpy")
def max_pool1d_backward(grad_out, indices, input_shape):
    """Reference backward of 1-D max pooling (and adaptive max pooling).

    Signature: ``(grad_out, indices, input_shape) -> grad_in``: each output gradient is
    added to the input position ``indices`` names (positions along the last axis).
    """
    return _scatter_to_indices(grad_out, indices, input_shape, 1)


@backend.register_kernel("max_pool2d_backward", "numpy")
def max_pool2d_backward(grad_out, indices, input_shape):
    """Reference backward of 2-D max pooling (and adaptive max pooling).

    Signature: ``(grad_out, indices, input_shape) -> grad_in``, ``indices`` flat
    ``h * W + w`` positions in each (H, W) plane.
    """
    return _scatter_to_indices(grad_out, indices, input_shape, 2)


def _avg_pool_forward_nd(x, kernel_size, stride, padding, output_size, divisor):
    xp = array_module(x)
    ones = (1,) * len(kernel_size)
    x_pad = _pad_spatial(x, padding, stride, ones, kernel_size, output_size, 0)
    total = None
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        tap = _window_view(x_pad, offset, stride, ones, output_size)
        if total is None:
            total = xp.array(tap)
        else:
            total += tap
    return total / xp.asarray(divisor, dtype=x.dtype)


def _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """Each window spread its mean over its taps: send ``grad / divisor`` back to each."""
    xp = array_module(grad_out)
    nd = len(kernel_size)
    ones = (1,) * nd
    output_size = grad_out.shape[-nd:]
    grad_scaled = grad_out / xp.asarray(divisor, dtype=grad_out.dtype)
    spatial = tuple(input_shape[-nd:])
    after = _right_padding(spatial, padding, stride, ones, kernel_size, output_size)
    padded = tuple(size + p + a for size, p, a in zip(spatial, padding, after))
    grad_pad = xp.zeros(tuple(input_shape[:-nd]) + padded, dtype=grad_out.dtype)
    for offset in itertools.product(*(range(k) for k in kernel_size)):
        # within one offset, distinct windows read distinct inputs: += through the view
        # is exact; overlapping windows meet across offsets, which the loop accumulates
        grad_pad[(Ellipsis,) + tuple(_taps(j, s, 1, n) for j, s, n in
                                     zip(offset, stride, output_size))] += grad_scaled
    if not any(padding) and padded == tuple(spatial):
        return grad_pad
    crop = tuple(slice(p, p + size) for p, size in zip(padding, spatial))
    return xp.ascontiguousarray(grad_pad[(Ellipsis,) + crop])


@backend.register_kernel("avg_pool1d_forward", "numpy")
def avg_pool1d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """Reference 1-D average pooling.

    Signature: ``(x, kernel_size, stride, padding, output_size, divisor) -> out``.
    ``x`` is (..., L); window parameters and ``output_size`` are 1-tuples; ``divisor`` is
    a scalar or an array of shape (L_out,) holding each window's divisor (which depends
    on ``count_include_pad``/``ceil_mode`` and is computed by the caller).  Padding
    counts as zeros.
    """
    return _avg_pool_forward_nd(x, kernel_size, stride, padding, output_size, divisor)


@backend.register_kernel("avg_pool2d_forward", "numpy")
def avg_pool2d_forward(x, kernel_size, stride, padding, output_size, divisor):
    """Reference 2-D average pooling: ``(x, kernel_size, stride, padding, output_size,
    divisor) -> out`` with 2-tuples and ``divisor`` a scalar or an (H_out, W_out) array."""
    return _avg_pool_forward_nd(x, kernel_size, stride, padding, output_size, divisor)


@backend.register_kernel("avg_pool1d_backward", "numpy")
def avg_pool1d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """Reference backward of 1-D average pooling:
    ``(grad_out, input_shape, kernel_size, stride, padding, divisor) -> grad_in``."""
    return _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding, divisor)


@backend.register_kernel("avg_pool2d_backward", "numpy")
def avg_pool2d_backward(grad_out, input_shape, kernel_size, stride, padding, divisor):
    """Reference backward of 2-D average pooling:
    ``(grad_out, input_shape, kernel_size, stride, padding, divisor) -> grad_in``."""
    return _avg_pool_backward_nd(grad_out, input_shape, kernel_size, stride, padding, divisor)


def _adaptive_windows(xp, size, out):
    """Start and (exclusive) end of each adaptive window: PyTorch's
    ``floor(i * size / out)`` and ``ceil((i + 1) * size / out)``."""
    i = xp.arange(out, dtype=np.int64)
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def _adaptive_avg_matrix(xp, size, out, dtype):
    r"""The (out, size) window matrix :math:`M` (:math:`M_{il} = 1` for
    :math:`s_i \le l < e_i`) and the window sizes :math:`e_i - s_i`.

    Adaptive average pooling is the linear map :math:`y_i = (M x)_i / (e_i - s_i)`: one
    matrix product sums every window, then each sum is divided by its window size (sum
    first, as PyTorch does, so a mean of integers stays exact).
    """
    start, end = _adaptive_windows(xp, size, out)
    position = xp.arange(size)
    inside = (position >= start[:, None]) & (position < end[:, None])
    return inside.astype(dtype), (end - start).astype(dtype)


@backend.register_kernel("adaptive_avg_pool1d_forward", "numpy")
def adaptive_avg_pool1d_forward(x, output_size):
    """Reference adaptive average pooling along the last axis.

    Signature: ``(x, output_size) -> out`` with ``x`` (..., L), ``output_size`` a 1-tuple.
    One matrix product with the window matrix: ``out = (x @ M.T) / sizes``.
    """
    (out,) = output_size
    xp = array_module(x)
    windows, sizes = _adaptive_avg_matrix(xp, x.shape[-1], out, x.dtype)
    return (x @ windows.T) / sizes


@backend.register_kernel("adaptive_avg_pool1d_backward", "numpy")
def adaptive_avg_pool1d_backward(grad_out, input_shape):
    """Reference backward: ``(grad_out, input_shape) -> (grad_out / sizes) @ M``."""
    xp = array_module(grad_out)
    windows, sizes = _adaptive_avg_matrix(xp, input_shape[-1], grad_out.shape[-1],
                                          grad_out.dtype)
    return (grad_out / sizes) @ windows


@backend.register_kernel("adaptive_avg_pool2d_forward", "numpy")
def adaptive_avg_pool2d_forward(x, output_size):
    """Reference 2-D adaptive average pooling: ``(x, output_size) -> out``.

    The 2-D map is separable, :math:`Y = (M_h X M_w^\top) / (h_i w_j)`: one matrix
    product along W for all rows at once, one along H, then one division.
    """
    xp = array_module(x)
    rows, row_sizes = _adaptive_avg_matrix(xp, x.shape[-2], output_size[0], x.dtype)
    cols, col_sizes = _adaptive_avg_matrix(xp, x.shape[-1], output_size[1], x.dtype)
    summed_w = x @ cols.T  # (..., H, W_out)
    summed = xp.swapaxes(xp.swapaxes(summed_w, -1, -2) @ rows.T, -1, -2)
    return summed / (row_sizes[:, None] * col_sizes[None, :])


@backend.register_kernel("adaptive_avg_pool2d_backward", "numpy")
def adaptive_avg_pool2d_backward(grad_out, input_shape):
    """Reference backward: ``(grad_out, input_shape) -> M_h^T (G / sizes) M_w``."""
    xp = array_module(grad_out)
    rows, row_sizes = _adaptive_avg_matrix(xp, input_shape[-2], grad_out.shape[-2],
                                           grad_out.dtype)
    cols, col_sizes = _adaptive_avg_matrix(xp, input_shape[-1], grad_out.shape[-1],
                                           grad_out.dtype)
    grad_w = (grad_out / (row_sizes[:, None] * col_sizes[None, :])) @ cols  # (..., H_out, W)
    return xp.ascontiguousarray(xp.swapaxes(xp.swapaxes(grad_w, -1, -2) @ rows, -1, -2))


def _adaptive_max_forward_nd(x, output_size):
    xp = array_module(x)
    nd = len(output_size)
    spatial = x.shape[-nd:]
    out_shape = x.shape[:-nd] + tuple(output_size)
    if 0 in output_size:
        return xp.empty(out_shape, dtype=x.dtype), xp.empty(out_shape, dtype=np.int64)
    starts, lengths = [], []
    for size, n in zip(spatial, output_size):
        start, end = _adaptive_windows(xp, size, n)
        starts.append(start)
        lengths.append(end - start)
    longest = tuple(int(length.max()) for length in lengths)

    def tap(offset):
        """Tap ``offset`` of every window (a gathered copy) and where it is inside.

        Windows shorter than the offset read their own first element instead: it
        equals a value already seen, so the strict ``>`` below never picks it.
        """
        index, inside = [], None
        for axis, (j, start, length) in enumerate(zip(offset, starts, lengths)):
            shape = (-1,) + (1,) * (nd - 1 - axis)
            valid = j < length
            index.append((start + xp.where(valid, j, 0)).reshape(shape))
            inside = valid.reshape(shape) if inside is None else inside & valid.reshape(shape)
        return x[(Ellipsis,) + tuple(index)], inside

    # the same running maximum as max pooling, over the longest window's offsets
    offsets = list(itertools.product(*(range(k) for k in longest)))
    out = tap(offsets[0])[0]
    best = xp.zeros(out.shape, dtype=_offset_dtype(longest))
    for number, offset in enumerate(offsets[1:], start=1):
        values, _ = tap(offset)
        greater = values > out  # NOTE: first maximum on ties, as in max pooling
        xp.maximum(out, values, out=out)
        xp.maximum(best, xp.multiply(greater, number, dtype=best.dtype), out=best)
    if xp.isnan(out).any():  # the last NaN of the window, as PyTorch
        for number, offset in enumerate(offsets):
            values, inside = tap(offset)
            xp.putmask(best, xp.isnan(values) & inside, number)

    per_dim = (best,) if nd == 1 else (best // longest[1], best % longest[1])
    indices = None
    for axis, (j, start, size) in enumerate(zip(per_dim, starts, spatial)):
        shape = (-1,) + (1,) * (nd - 1 - axis)
        position = start.reshape(shape) + j.astype(np.int64)
        if indices is None:
            indices = position
        else:
            indices *= size
            indices += position
    return out, indices


@backend.register_kernel("adaptive_max_pool1d_forward", "numpy")
def adaptive_max_pool1d_forward(x, output_size):
    """Reference adaptive max pooling along the last axis.

    Signature: ``(x, output_size) -> (out, indices)``; ``indices`` (int64) are positions
    along the last axis (first maximum on ties).  Backward: ``max_pool1d_backward``.
    """
    return _adaptive_max_forward_nd(x, output_size)


@backend.register_kernel("adaptive_max_pool2d_forward", "numpy")
def adaptive_max_pool2d_forward(x, output_size):
    """Reference 2-D adaptive max pooling: ``(x, output_size) -> (out, indices)`` with
    flat ``h * W + w`` indices.  Backward: ``max_pool2d_backward``."""
    return _adaptive_max_forward_nd(x, output_size)


@backend.register_kernel("global_max_pool_forward", "numpy")
def global_max_pool_forward(x):
    """Reference global max pooling of the rows of a 2-D array.

    Signature: ``(x) -> (out, argmax)`` with ``x`` (R, S), ``out`` (R,) and ``argmax``
    (R,) int64, the first maximum of each row (the first NaN if the row has one).
    """
    xp = array_module(x)
    argmax = xp.argmax(x, axis=1)
    return xp.take_along_axis(x, argmax[:, None], axis=1)[:, 0], argmax


@backend.register_kernel("global_max_pool_backward", "numpy")
def global_max_pool_backward(grad_out, argmax, row_size):
    """Reference backward: ``(grad_out, argmax, row_size) -> grad_in`` of shape
    (R, row_size), zero except ``grad_in[r, argmax[r]] = grad_out[r]``."""
    xp = array_module(grad_out)
    rows = grad_out.shape[0]
    grad_in = xp.zeros((rows, row_size), dtype=grad_out.dtype)
    # one maximum per row, so plain assignment at the flat positions is enough
    grad_in.reshape(-1)[xp.arange(rows) * row_size + argmax] = grad_out
    return grad_in


# ============================================================================ Functions


def _kernel(name, array):
    return backend.get_kernel(name, backend.device_of(array))


def _windows_outside(xp, spatial, stride, padding, dilation, output_size):
    """Mask (over the output plane) of the windows whose taps all fall in the padding,
    or None when there are none.

    With dilation a window can straddle the input without touching it (taps at -1 and
    size + 1).  Its output is -inf and its index points past the input (PyTorch reports
    the same index); its gradient must go nowhere.
    """
    nd = len(spatial)
    outside = None
    for axis, (size, s, p, d, n) in enumerate(zip(spatial, stride, padding, dilation,
                                                  output_size)):
        if not p or d == 1:
            continue  # padding <= kernel // 2 keeps an input tap in every window
        start = xp.arange(n) * s - p
        first_inside = xp.where(start < 0, start + (-start + d - 1) // d * d, start)
        empty = (first_inside >= size).reshape((n,) + (1,) * (nd - 1 - axis))
        if bool(empty.any()):
            outside = empty if outside is None else outside | empty
    return outside


class MaxPoolNd(Function):
    """Max pooling over ``nd`` trailing dimensions; outputs (values[, indices])."""

    def forward(self, x):
        name = f"max_pool{self.nd}d_forward"
        out, indices = _kernel(name, x)(x, self.kernel_size, self.stride, self.padding,
                                        self.dilation, self.output_size, self.with_indices)
        if indices is None:
            return out
        self.indices = indices
        self.input_shape = x.shape
        return out, indices

    def backward(self, grad_out, grad_indices=None):
        xp = array_module(grad_out)
        indices = self.indices
        outside = _windows_outside(xp, self.input_shape[-self.nd:], self.stride, self.padding,
                                   self.dilation, self.output_size)
        if outside is not None:  # rare: see _windows_outside
            grad_out = xp.where(outside, grad_out.dtype.type(0), grad_out)
            indices = xp.where(outside, 0, indices)
        return _kernel(f"max_pool{self.nd}d_backward", grad_out)(
            grad_out, indices, self.input_shape
        )


class AvgPoolNd(Function):
    def forward(self, x):
        self.input_shape = x.shape
        return _kernel(f"avg_pool{self.nd}d_forward", x)(
            x, self.kernel_size, self.stride, self.padding, self.output_size, self.divisor
        )

    def backward(self, grad_out):
        return _kernel(f"avg_pool{self.nd}d_backward", grad_out)(
            grad_out, self.input_shape, self.kernel_size, self.stride, self.padding,
            self.divisor,
        )


class AdaptiveAvgPoolNd(Function):
    def forward(self, x):
        self.input_shape = x.shape
        return _kernel(f"adaptive_avg_pool{self.nd}d_forward", x)(x, self.output_size)

    def backward(self, grad_out):
        return _kernel(f"adaptive_avg_pool{self.nd}d_backward", grad_out)(
            grad_out, self.input_shape
        )


class AdaptiveMaxPoolNd(Function):
    def forward(self, x):
        out, indices = _kernel(f"adaptive_max_pool{self.nd}d_forward", x)(x, self.output_size)
        self.indices = indices
        self.input_shape = x.shape
        return out, indices

    def backward(self, grad_out, grad_indices=None):
        return _kernel(f"max_pool{self.nd}d_backward", grad_out)(
            grad_out, self.indices, self.input_shape
        )


class GlobalMaxPool(Function):
    """Max over the trailing ``nd`` dimensions (all spatial positions)."""

    def forward(self, x):
        lead = x.shape[: x.ndim - self.nd]
        rows = x.reshape(math.prod(lead), -1)
        out, self.argmax = _kernel("global_max_pool_forward", x)(rows)
        self.input_shape = x.shape
        return out.reshape(lead)

    def backward(self, grad_out):
        row_size = math.prod(self.input_shape[len(self.input_shape) - self.nd:])
        grad_in = _kernel("global_max_pool_backward", grad_out)(
            grad_out.reshape(-1), self.argmax, row_size
        )
        return grad_in.reshape(self.input_shape)


# ============================================================================ argument checks


_LAYOUT = {1: ("2-D (C, L)", "3-D (N, C, L)"), 2: ("3-D (C, H, W)", "4-D (N, C, H, W)")}


def _float_input(op, x, nd):
    """``x`` as a floating-point Tensor with nd+1 (unbatched) or nd+2 (batched) dims."""
    from minidl.tensor import Tensor

    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point input, got {x.dtype}")
    if x.ndim not in (nd + 1, nd + 2):
        unbatched, batched = _LAYOUT[nd]
        raise ValueError(
            f"{op}: expected a {unbatched} or {batched} input, got shape {x.shape}"
        )
    if 0 in x.shape[-(nd + 1):]:
        raise ValueError(
            f"{op}: expected non-empty channel and spatial dimensions (only the batch may "
            f"be empty), got shape {x.shape}"
        )
    return x


def _ntuple(op, name, value, nd, minimum):
    """An int or a sequence of ``nd`` ints -> a tuple of ``nd`` ints >= ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * nd
    elif isinstance(value, (tuple, list)) and len(value) in (1, nd) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        values = tuple(int(v) for v in value) * (nd if len(value) == 1 else 1)
    else:
        expected = "an int" if nd == 1 else f"an int or a tuple of {nd} ints"
        raise TypeError(f"{op}: {name} must be {expected}, got {value!r}")
    if any(v < minimum for v in values):
        relation = "greater than zero" if minimum == 1 else "non-negative"
        shown = values[0] if nd == 1 else values
        raise ValueError(f"{op}: {name} must be {relation}, but got {shown}")
    return values


def _fmt(values):
    return values[0] if len(values) == 1 else values


def _pool_geometry(op, x, nd, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate the window parameters and return them with the output size (tuples)."""
    kernel = _ntuple(op, "kernel_size", kernel_size, nd, 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel  # PyTorch's default: non-overlapping windows
    else:
        stride = _ntuple(op, "stride", stride, nd, 1)
    padding = _ntuple(op, "padding", padding, nd, 0)
    dilation = _ntuple(op, "dilation", dilation, nd, 1)
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{op}: padding should be at most half of kernel size, but got "
            f"padding={_fmt(padding)} and kernel_size={_fmt(kernel)}"
        )
    spatial = x.shape[-nd:]
    output_size = []
    for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        n = (span + (s - 1 if ceil_mode else 0)) // s + 1
        # NOTE: PyTorch's ceil_mode rule: the last window must start inside the input or
        # its left padding, never in the right padding only
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1
        output_size.append(n)
    output_size = tuple(output_size)
    if any(n < 1 for n in output_size):
        effective = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
        padded = tuple(size + 2 * p for size, p in zip(spatial, padding))
        raise ValueError(
            f"{op}: kernel of extent {_fmt(effective)} (kernel_size={_fmt(kernel)}, "
            f"dilation={_fmt(dilation)}) is larger than the padded input {_fmt(padded)} "
            f"(input shape {x.shape}, padding={_fmt(padding)}); output size would be "
            f"{_fmt(output_size)}"
        )
    return kernel, stride, padding, dilation, output_size


# ============================================================================ public functions


def _max_pool(op, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    input = _float_input(op, input, nd)
    kernel, stride, padding, dilation, output_size = _pool_geometry(
        op, input, nd, kernel_size, stride, padding, dilation, ceil_mode
    )
    # the argmax is needed for backward, or when asked for; inference skips it
    with_indices = bool(return_indices) or (autograd.is_grad_enabled() and input.requires_grad)
    result = MaxPoolNd.apply(input, nd=nd, kernel_size=kernel, stride=stride, padding=padding,
                             dilation=dilation, output_size=output_size,
                             with_indices=with_indices)
    if isinstance(result, tuple):
        return result if return_indices else result[0]
    return result


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    r"""1-D max pooling: the largest value of each window along the last axis.

    .. math:: y_{n,c,o} = \max_{j=0}^{k-1} x_{n,c,\,o s - p + j d}

    with padding positions counting as :math:`-\infty`.  The gradient of each output goes
    to the input position of its maximum.

    NOTE: on ties the gradient (and the index) goes to the first maximum in window order,
    as in PyTorch.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or unbatched (C, L), floating point.
    kernel_size : int
        Window size ``k``.
    stride : int, optional
        Step between windows; defaults to ``kernel_size``.
    padding : int, default 0
        Implicit :math:`-\infty` padding on both sides, at most ``kernel_size // 2``.
    dilation : int, default 1
        Spacing between the window's taps.
    ceil_mode : bool, default False
        Round the output length up instead of down (the last window may then hang over
        the end; it must still start inside the input or the left padding).
    return_indices : bool, default False
        Also return the position (in ``[0, L)``) of each maximum, as an int64 tensor.

    Returns
    -------
    Tensor, or (Tensor, Tensor)
        (N, C, L_out) values, with
        :math:`L_{out} = \lfloor (L + 2p - d(k-1) - 1)/s \rfloor + 1`
        (ceiling with ``ceil_mode``); and the indices when ``return_indices``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import max_pool1d
    >>> x = minidl.tensor([[[1.0, 3.0, 2.0, 5.0, 4.0, 0.0]]])
    >>> max_pool1d(x, 2).tolist()
    [[[3.0, 5.0, 4.0]]]
    >>> max_pool1d(x, 3, stride=1, return_indices=True)[1].tolist()
    [[[1, 3, 3, 3]]]
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    r"""2-D max pooling: the largest value of each ``kh x kw`` window.

    .. math:: y_{n,c,a,b} = \max_{i<k_h,\,j<k_w} x_{n,c,\,a s_h - p_h + i d_h,\,
              b s_w - p_w + j d_w}

    Arguments as :func:`max_pool1d`, each an int or an (h, w) pair.  ``input`` is
    (N, C, H, W) or unbatched (C, H, W).  Indices are flat positions ``h * W + w`` in each
    input plane, as in PyTorch; on ties the first maximum in row-major window order wins.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import max_pool2d
    >>> x = minidl.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation,
                     ceil_mode, return_indices)


def _avg_divisors(xp, size, k, s, p, n, count_include_pad):
    """Per-window divisors along one dimension, PyTorch's rule: windows are clipped to
    the padded input; padding counts only with ``count_include_pad``."""
    start = xp.arange(n) * s - p
    end = xp.minimum(start + k, size + p)
    if count_include_pad:
        return end - start
    return xp.minimum(end, size) - xp.maximum(start, 0)


def _avg_pool(op, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
              divisor_override=None):
    input = _float_input(op, input, nd)
    kernel, stride, padding, _, output_size = _pool_geometry(
        op, input, nd, kernel_size, stride, padding, 1, ceil_mode
    )
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override,
                                                                numbers.Integral):
            raise TypeError(f"{op}: divisor_override must be an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor must be not zero")
        divisor = input.dtype.type(divisor_override)
    else:
        xp = array_module(input.data)
        per_dim = [
            _avg_divisors(xp, size, k, s, p, n, count_include_pad)
            for size, k, s, p, n in zip(input.shape[-nd:], kernel, stride, padding, output_size)
        ]
        divisor = per_dim[0] if nd == 1 else per_dim[0][:, None] * per_dim[1][None, :]
        divisor = divisor.astype(input.dtype)
    return AvgPoolNd.apply(input, nd=nd, kernel_size=kernel, stride=stride, padding=padding,
                           output_size=output_size, divisor=divisor)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    r"""1-D average pooling: the mean of each window along the last axis.

    .. math:: y_{n,c,o} = \frac{1}{D_o} \sum_{j=0}^{k-1} x_{n,c,\,o s - p + j}

    Padding contributes zeros.  The divisor :math:`D_o` is the window size clipped to the
    padded input (``count_include_pad=True``) or the number of real input positions in
    the window (``False``).  Backward sends :math:`g_o / D_o` to every tap of window o.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or unbatched (C, L), floating point.
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool1d` (no dilation).
    count_include_pad : bool, default True
        Whether zero padding counts in the divisor.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import avg_pool1d
    >>> x = minidl.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    >>> avg_pool1d(x, 2).tolist()
    [[[1.5, 3.5]]]
    >>> avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False).tolist()
    [[[1.5, 3.0]]]
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    r"""2-D average pooling: the mean of each ``kh x kw`` window.

    Arguments as :func:`avg_pool1d`, each an int or an (h, w) pair; ``input`` is
    (N, C, H, W) or unbatched (C, H, W).  ``divisor_override``, if given, replaces every
    window's divisor (the output is then the window sum divided by it).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import avg_pool2d
    >>> x = minidl.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    >>> avg_pool2d(x, 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_output_size(op, output_size, spatial):
    nd = len(spatial)
    if isinstance(output_size, numbers.Integral) and not isinstance(output_size, bool):
        sizes = (int(output_size),) * nd
    elif isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(
                f"{op}: output_size should contain {'one int' if nd == 1 else f'{nd} values'} "
                f"(got {len(output_size)})"
            )
        sizes = []
        for size, value in zip(spatial, output_size):
            if value is None and nd > 1:
                sizes.append(size)  # None keeps the input's size along that dimension
            elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
                sizes.append(int(value))
            else:
                raise TypeError(f"{op}: output_size entries must be ints, got {output_size!r}")
        sizes = tuple(sizes)
    else:
        raise TypeError(f"{op}: output_size must be an int or a tuple, got {output_size!r}")
    if any(v < 0 for v in sizes):
        raise ValueError(f"{op}: output_size must be non-negative, got {_fmt(sizes)}")
    return sizes


def adaptive_avg_pool1d(input, output_size):
    r"""Average pooling to a fixed output length, whatever the input length.

    Output :math:`i` of :math:`L_{out}` is the mean of input positions
    :math:`s_i = \lfloor iL/L_{out} \rfloor` to :math:`e_i = \lceil (i+1)L/L_{out} \rceil`
    (exclusive).  The map is linear, :math:`y = P x` with
    :math:`P_{il} = 1/(e_i - s_i)` inside window i, so forward is one matrix product and
    backward is :math:`P^\top g`.

    Parameters
    ----------
    input : Tensor
        (N, C, L) or (C, L).
    output_size : int
        :math:`L_{out}`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import adaptive_avg_pool1d
    >>> adaptive_avg_pool1d(minidl.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist()
    [[[2.0, 4.0]]]
    """
    op = "adaptive_avg_pool1d"
    input = _float_input(op, input, 1)
    sizes = _adaptive_output_size(op, output_size, input.shape[-1:])
    return AdaptiveAvgPoolNd.apply(input, nd=1, output_size=sizes)


def adaptive_avg_pool2d(input, output_size):
    r"""2-D adaptive average pooling to ``output_size`` (an int, or an (h, w) pair whose
    entries may be None to keep that input size).  Windows per dimension as in
    :func:`adaptive_avg_pool1d`; the 2-D map is :math:`Y = P_h X P_w^\top`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import adaptive_avg_pool2d
    >>> x = minidl.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    >>> adaptive_avg_pool2d(x, 1).tolist()
    [[[[7.5]]]]
    >>> adaptive_avg_pool2d(x, (None, 2)).shape
    (1, 1, 4, 2)
    """
    op = "adaptive_avg_pool2d"
    input = _float_input(op, input, 2)
    sizes = _adaptive_output_size(op, output_size, input.shape[-2:])
    return AdaptiveAvgPoolNd.apply(input, nd=2, output_size=sizes)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    r"""Max pooling to a fixed output length: output i is the maximum over the adaptive
    window :math:`[\lfloor iL/L_{out} \rfloor, \lceil (i+1)L/L_{out} \rceil)`.

    The gradient goes to the position of each maximum (the first one on ties);
    ``return_indices`` also returns those positions (int64).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import adaptive_max_pool1d
    >>> x = minidl.tensor([[[1.0, 5.0, 2.0, 0.0, 3.0]]])
    >>> adaptive_max_pool1d(x, 2, return_indices=True)[1].tolist()
    [[[1, 4]]]
    """
    op = "adaptive_max_pool1d"
    input = _float_input(op, input, 1)
    sizes = _adaptive_output_size(op, output_size, input.shape[-1:])
    out, indices = AdaptiveMaxPoolNd.apply(input, nd=1, output_size=sizes)
    return (out, indices) if return_indices else out


def adaptive_max_pool2d(input, output_size, return_indices=False):
    r"""2-D adaptive max pooling to ``output_size`` (int or (h, w), entries may be None);
    indices are flat ``h * W + w`` positions, first maximum on ties.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import adaptive_max_pool2d
    >>> x = minidl.arange(16, dtype="float32").reshape(1, 1, 4, 4)
    >>> adaptive_max_pool2d(x, 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    op = "adaptive_max_pool2d"
    input = _float_input(op, input, 2)
    sizes = _adaptive_output_size(op, output_size, input.shape[-2:])
    out, indices = AdaptiveMaxPoolNd.apply(input, nd=2, output_size=sizes)
    return (out, indices) if return_indices else out


def global_max_pool1d(input):
    r"""The maximum over the whole length: (N, C, L) -> (N, C) (or (C, L) -> (C,)).

    Same as ``adaptive_max_pool1d(input, 1)`` without the trailing axis; the gradient
    goes to the first maximum of each channel.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import global_max_pool1d
    >>> global_max_pool1d(minidl.tensor([[[1.0, 4.0, 2.0], [0.0, -1.0, 3.0]]])).tolist()
    [[4.0, 3.0]]
    """
    input = _float_input("global_max_pool1d", input, 1)
    return GlobalMaxPool.apply(input, nd=1)


def global_max_pool2d(input):
    r"""The maximum over each whole feature map: (N, C, H, W) -> (N, C).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import global_max_pool2d
    >>> global_max_pool2d(minidl.arange(8, dtype="float32").reshape(1, 2, 2, 2)).tolist()
    [[3.0, 7.0]]
    """
    input = _float_input("global_max_pool2d", input, 2)
    return GlobalMaxPool.apply(input, nd=2)


def global_avg_pool1d(input):
    r"""The mean over the whole length: (N, C, L) -> (N, C).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import global_avg_pool1d
    >>> global_avg_pool1d(minidl.tensor([[[1.0, 2.0, 6.0]]])).tolist()
    [[3.0]]
    """
    input = _float_input("global_avg_pool1d", input, 1)
    return input.mean(dim=-1)


def global_avg_pool2d(input):
    r"""The mean over each whole feature map: (N, C, H, W) -> (N, C).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.pool import global_avg_pool2d
    >>> global_avg_pool2d(minidl.arange(8, dtype="float32").reshape(1, 2, 2, 2)).tolist()
    [[1.5, 5.5]]
    """
    input = _float_input("global_avg_pool2d", input, 2)
    return input.mean(dim=(-2, -1))
