r"""Convolution: ``conv1d``, ``conv2d`` and their adjoints ``conv_transpose1d/2d``.

What a convolution layer computes
---------------------------------
Deep-learning "convolution" is a cross-correlation: for an input ``x`` of shape
``(N, C, H, W)`` and a weight ``w`` of shape ``(O, C, kH, kW)``,

.. math::

    y[n, o, h, v] = b[o] + \sum_{c, i, j} w[o, c, i, j]\;
                    x_{pad}[n, c,\; h s_h + i d_h,\; v s_w + j d_w]

with stride :math:`s`, dilation :math:`d` and ``x_pad`` the input with zeros around it.

im2col: a convolution is one matrix multiply
--------------------------------------------
Copy every receptive field into a column of a matrix ``cols`` (the *im2col* step):

.. math::

    \text{cols}[(c, i, j),\; (n, h, v)] = x_{pad}[n, c,\; h s_h + i d_h,\; v s_w + j d_w]

Then :math:`Y = W\,\text{cols}` with ``W`` the weight flattened to ``(O, C kH kW)``:
a matrix multiply of ``(O, C kH kW)`` by ``(C kH kW, N Ho Wo)``, which BLAS runs near the
machine's peak.  The columns are built without any Python loop: ``as_strided`` gives a
6-D *view* ``(C, kH, kW, N, Ho, Wo)`` of the padded input (no copy: the view's strides
step through the input in the pattern above), and one ``ascontiguousarray`` materialises
it.

NOTE: layouts, measured on 2 threads.  ``cols`` is stored ``(C kH kW, N, Ho, Wo)``, batch
inside the columns, so that each gradient below is one large GEMM over all ``N Ho Wo``
positions (20-30% faster than per-sample GEMMs for the 2-D benchmark layers, and much
less sensitive to a busy machine), at the price of one transposing copy of the incoming
gradient to ``(O, N Ho Wo)``.  The forward multiplies ``W`` by a transposed *view* of
``cols``, one BLAS call per sample, so that the output is written directly in its
``(N, O, Ho, Wo)`` layout: no transposing copy of the (large) output.

Backward
--------
With :math:`G = \partial L / \partial Y` flattened to ``(O, N Ho Wo)``:

.. math::

    \frac{\partial L}{\partial W} = G\,\text{cols}^\top, \qquad
    \frac{\partial L}{\partial \text{cols}} = W^\top G, \qquad
    \frac{\partial L}{\partial b_o} = \sum_{n, h, v} G[o, n, h, v].

``cols`` holds each input element once per kernel offset that reads it, so the gradient
of ``x`` adds those copies back: *col2im*, the adjoint of im2col, a scatter-add with one
vectorised ``+=`` per kernel offset :math:`(i, j)` (``kH kW`` array operations, never a
loop over pixels), followed by cropping the padding away.

Groups
------
With ``groups = g`` the channels split into ``g`` independent convolutions: ``W`` of shape
``(O, C/g, kH, kW)`` becomes ``(g, O/g, C/g kH kW)`` and ``cols`` ``(g, C/g kH kW, N Ho
Wo)`` (its rows are ordered by channel, so this is a free reshape), and ``matmul``
multiplies the ``g`` pairs.  Depthwise convolution is ``groups = C``.

Transposed convolution
----------------------
``conv_transpose`` is the adjoint (the transpose, as a linear map) of ``conv`` with the
same weight, which is why it upsamples: its forward is conv's input-gradient
(``col2im(W^T x)``) and its backward uses im2col.  Its weight is shaped
``(C_in, C_out / g, kH, kW)``, as in PyTorch.

Kernels
-------
``im2col1d``, ``col2im1d``, ``im2col2d``, ``col2im2d`` are plain array functions
registered in :mod:`minidl.backend`; the ops look them up with ``get_kernel`` so that a C,
Numba or CUDA implementation with the same signature can replace the NumPy reference.
They are ``xp``-generic: the same code runs on CuPy arrays.
"""

from __future__ import annotations

import math
import numbers

from minidl.autograd import Function, is_grad_enabled
from minidl.backend import array_module, device_of, get_kernel, register_kernel

__all__ = [
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "im2col1d",
    "col2im1d",
    "im2col2d",
    "col2im2d",
]


# ============================================================================ kernels


def _pad_spatial(x, pads):
    """``x`` with ``pads[k] = (before, after)`` zeros around spatial axis ``k`` (the axes
    after the first two).  Returns ``x`` itself when there is nothing to pad."""
    if not any(before or after for before, after in pads):
        return x
    xp = array_module(x)
    spatial = tuple(size + before + after for size, (before, after) in zip(x.shape[2:], pads))
    padded = xp.zeros(x.shape[:2] + spatial, dtype=x.dtype)
    inner = tuple(slice(before, before + size) for size, (before, _) in zip(x.shape[2:], pads))
    padded[(slice(None), slice(None)) + inner] = x
    return padded


def _positions(padded_size, kernel_size, stride, dilation):
    """Number of output positions along one axis: :math:`\\lfloor (L_p - d(k-1) - 1)/s
    \\rfloor + 1`."""
    return (padded_size - dilation * (kernel_size - 1) - 1) // stride + 1


def _as_strided(x, shape, strides):
    xp = array_module(x)
    return xp.lib.stride_tricks.as_strided(x, shape=shape, strides=strides)


@register_kernel("im2col1d", "numpy")
def im2col1d(x, kernel_size, stride=1, padding=(0, 0), dilation=1):
    r"""Receptive fields of a 1-D convolution as the columns of a matrix.

    Signature (every backend): ``im2col1d(x, kernel_size, stride, padding, dilation) ->
    cols``.

    .. math::

        \text{cols}[c k + i,\; n,\; l] = x_{pad}[n, c,\; l s + i d]

    Parameters
    ----------
    x : ndarray, shape ``(N, C, L)``
    kernel_size, stride, dilation : int
    padding : (int, int)
        Zeros added before and after the input (may differ: ``padding="same"`` with an
        even kernel).

    Returns
    -------
    cols : ndarray, shape ``(C * kernel_size, N, L_out)``, C-contiguous, ``x``'s dtype
        :math:`L_{out} = \lfloor (L + p_0 + p_1 - d(k-1) - 1) / s \rfloor + 1`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(5.0).reshape(1, 1, 5)
    >>> im2col1d(x, 3)[:, 0]
    array([[0., 1., 2.],
           [1., 2., 3.],
           [2., 3., 4.]])
    """
    x_pad = _pad_spatial(x, (tuple(padding),))
    n, c, padded = x_pad.shape
    out_len = _positions(padded, kernel_size, stride, dilation)
    sn, sc, sl = x_pad.strides
    # a view with axes (channel, kernel offset, sample, output position): moving one
    # kernel offset steps d elements, moving one output position steps s elements
    windows = _as_strided(
        x_pad, (c, kernel_size, n, out_len), (sc, dilation * sl, sn, stride * sl)
    )
    xp = array_module(x)
    return xp.ascontiguousarray(windows).reshape(c * kernel_size, n, out_len)


@register_kernel("col2im1d", "numpy")
def col2im1d(cols, input_shape, kernel_size, stride=1, padding=(0, 0), dilation=1):
    r"""The adjoint of :func:`im2col1d`: add every column entry back where it was read.

    Signature (every backend): ``col2im1d(cols, input_shape, kernel_size, stride,
    padding, dilation) -> x``.

    .. math::

        x[n, c, t] = \sum_{i, l \,:\, l s + i d - p_0 = t} \text{cols}[c k + i, n, l]

    so that :math:`\langle \text{im2col}(x), y \rangle = \langle x, \text{col2im}(y)
    \rangle` for all ``x`` and ``y``.  One vectorised ``+=`` per kernel offset ``i``.

    Parameters
    ----------
    cols : ndarray, shape ``(C * kernel_size, N, L_out)``
    input_shape : (int, int, int)
        ``(N, C, L)``, the shape of the result.  ``L + p_0 + p_1`` must hold the
        ``L_out`` positions; it may be longer (the rest gets zeros).
    kernel_size, stride, dilation : int
    padding : (int, int)

    Returns
    -------
    ndarray, shape ``(N, C, L)``, C-contiguous, a new array.
    """
    xp = array_module(cols)
    n, c, length = input_shape
    out_len = cols.shape[2]
    before, after = padding
    # accumulate channel-major, like cols, so every += reads cols[:, i] contiguously
    acc = xp.zeros((c, n, length + before + after), dtype=cols.dtype)
    cols = cols.reshape(c, kernel_size, n, out_len)
    span = stride * (out_len - 1) + 1
    for i in range(kernel_size):
        start = i * dilation
        acc[:, :, start:start + span:stride] += cols[:, i]
    acc = acc[:, :, before:before + length]
    return xp.ascontiguousarray(acc.transpose(1, 0, 2))


@register_kernel("im2col2d", "numpy")
def im2col2d(x, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    r"""Receptive fields of a 2-D convolution as the columns of a matrix.

    Signature (every backend): ``im2col2d(x, kernel_size, stride, padding, dilation) ->
    cols``.

    .. math::

        \text{cols}[(c k_H + i) k_W + j,\; n,\; h,\; v] =
        x_{pad}[n, c,\; h s_H + i d_H,\; v s_W + j d_W]

    Parameters
    ----------
    x : ndarray, shape ``(N, C, H, W)``
    kernel_size, stride, dilation : (int, int)
    padding : ((int, int), (int, int))
        ``((top, bottom), (left, right))`` zeros around the input.

    Returns
    -------
    cols : ndarray, shape ``(C * kH * kW, N, H_out, W_out)``, C-contiguous, ``x``'s dtype
        Reshaped to ``(C kH kW, N H_out W_out)`` (free) it is the right factor of the
        convolution's matrix multiply.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> im2col2d(x, (2, 2)).reshape(4, 4)
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    x_pad = _pad_spatial(x, padding)
    n, c, height, width = x_pad.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    out_h = _positions(height, kh, sh, dh)
    out_w = _positions(width, kw, sw, dw)
    sn, sc, s_row, s_col = x_pad.strides
    windows = _as_strided(
        x_pad,
        (c, kh, kw, n, out_h, out_w),
        (sc, dh * s_row, dw * s_col, sn, sh * s_row, sw * s_col),
    )
    xp = array_module(x)
    return xp.ascontiguousarray(windows).reshape(c * kh * kw, n, out_h, out_w)


@register_kernel("col2im2d", "numpy")
def col2im2d(cols, input_shape, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)),
             dilation=(1, 1)):
    r"""The adjoint of :func:`im2col2d`: scatter-add the columns back into an image.

    Signature (every backend): ``col2im2d(cols, input_shape, kernel_size, stride,
    padding, dilation) -> x``.

    .. math::

        x[n, c, t, u] = \sum_{\substack{i, j, h, v \,:\, h s_H + i d_H - p_{top} = t \\
        v s_W + j d_W - p_{left} = u}} \text{cols}[(c k_H + i) k_W + j, n, h, v]

    One vectorised ``+=`` per kernel offset ``(i, j)``: ``kH * kW`` array operations.

    Parameters
    ----------
    cols : ndarray, shape ``(C * kH * kW, N, H_out, W_out)``
    input_shape : (int, int, int, int)
        ``(N, C, H, W)``, the shape of the result.  The padded size must hold the
        ``H_out x W_out`` positions; it may be larger (the rest gets zeros).
    kernel_size, stride, dilation : (int, int)
    padding : ((int, int), (int, int))

    Returns
    -------
    ndarray, shape ``(N, C, H, W)``, C-contiguous, a new array.
    """
    xp = array_module(cols)
    n, c, height, width = input_shape
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, bottom), (left, right) = padding
    out_h, out_w = cols.shape[2:]
    acc = xp.zeros((c, n, height + top + bottom, width + left + right), dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, out_h, out_w)
    span_h, span_w = sh * (out_h - 1) + 1, sw * (out_w - 1) + 1
    for i in range(kh):
        for j in range(kw):
            row, col = i * dh, j * dw
            acc[:, :, row:row + span_h:sh, col:col + span_w:sw] += cols[:, i, j]
    acc = acc[:, :, top:top + height, left:left + width]
    return xp.ascontiguousarray(acc.transpose(1, 0, 2, 3))


def _im2col(x, kernel_size, stride, padding, dilation):
    """Dispatch to the registered ``im2col1d``/``im2col2d`` (tuples in, either way)."""
    if len(kernel_size) == 1:
        fn = get_kernel("im2col1d", device_of(x))
        return fn(x, kernel_size[0], stride[0], padding[0], dilation[0])
    return get_kernel("im2col2d", device_of(x))(x, kernel_size, stride, padding, dilation)


def _col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    if len(kernel_size) == 1:
        fn = get_kernel("col2im1d", device_of(cols))
        return fn(cols, input_shape, kernel_size[0], stride[0], padding[0], dilation[0])
    fn = get_kernel("col2im2d", device_of(cols))
    return fn(cols, input_shape, kernel_size, stride, padding, dilation)


def _channels_first(a, groups):
    """``(N, C, *S)`` -> ``(groups, C / groups, N * prod(S))``: channels become rows."""
    xp = array_module(a)
    rows = xp.ascontiguousarray(xp.moveaxis(a, 1, 0))
    return rows.reshape(groups, a.shape[1] // groups, rows[0].size)


def _batch_first(rows, shape):
    """``(g, C / g, N * prod(S))`` -> contiguous ``(N, C, *S)`` for ``shape = (N, C, *S)``."""
    xp = array_module(rows)
    rows = rows.reshape((shape[1], shape[0]) + tuple(shape[2:]))
    return xp.ascontiguousarray(xp.moveaxis(rows, 0, 1))


def _bias_shape(channels, nd):
    return (channels,) + (1,) * nd


# ============================================================================ Functions


# Column matrices larger than this are built a slice of the batch at a time.
#
# NOTE: ``cols`` repeats every input element ``prod(kernel)`` times: 90 MB for W2's
# Conv1d(128, 128, 11) on (64, 128, 250), 11x its input.  glibc serves blocks above its
# mmap threshold (at most 32 MiB) straight from the OS and unmaps them on free, so a
# block that large is page-faulted in again on every step, and keeping it for backward
# holds it through the whole step.  Above this size the forward builds the columns for a
# slice of the batch, multiplies, and reuses the (heap-recycled) block for the next slice;
# backward rebuilds each slice from the input, which the graph holds anyway.  Below it,
# one GEMM over the whole batch is faster (measured on 2 threads: slicing W1b's 9 MB
# columns in two made its backward slower, and smaller slices shrink the GEMMs).
CHUNK_BYTES = 32 << 20


def _batch_slices(batch, bytes_per_sample):
    """``[(start, stop), ...]`` covering the batch with at most ``CHUNK_BYTES`` of
    columns each (at least one sample per slice)."""
    if batch == 0:
        return [(0, 0)]
    step = max(1, CHUNK_BYTES // max(1, bytes_per_sample))
    return [(start, min(start + step, batch)) for start in range(0, batch, step)]


class ConvNd(Function):
    r"""Fused N-d convolution (N = 1 or 2): forward and the three gradients.

    Parameters set by the public functions: ``stride``, ``padding`` (``(before, after)``
    per spatial axis), ``dilation`` (tuples), ``groups``, ``batched`` (False for an
    unbatched ``(C, *S)`` input), ``save_cols`` / ``save_weight`` (whether the weight /
    input gradient can be asked for: forward keeps only what those need).

    When the column matrix is larger than :data:`CHUNK_BYTES` both passes work on slices
    of the batch (see the note there); the arithmetic is the same.
    """

    def forward(self, x, weight, bias=None):
        xp = array_module(x)
        if not self.batched:
            x = x[None]
        batch, groups = x.shape[0], self.groups
        out_channels, kernel = weight.shape[0], weight.shape[2:]
        spatial = tuple(
            _positions(size + before + after, k, s, d)
            for size, (before, after), k, s, d
            in zip(x.shape[2:], self.padding, kernel, self.stride, self.dilation)
        )
        rows = x.shape[1] * math.prod(kernel)
        w_groups = weight.reshape(groups, out_channels // groups, -1)
        slices = _batch_slices(batch, rows * math.prod(spatial) * x.itemsize)
        out = xp.empty((batch, out_channels) + spatial, dtype=x.dtype)
        for start, stop in slices:
            cols = _im2col(x[start:stop], kernel, self.stride, self.padding, self.dilation)
            # (g, O/g, C/g * K) @ (n, g, C/g * K, S) -> (n, g, O/g, S), which is (n, O, *S):
            # the columns are read through a transposed view (every per-sample matrix is
            # still a BLAS operand), so the output comes out in its final layout, with no
            # transposing copy (measured: 40% faster than one GEMM + transpose for
            # Conv1d(4, 128, 19) on (64, 4, 1000), the same for the small 2-D layers)
            n = stop - start
            cols_view = cols.reshape(groups, rows // groups, n, math.prod(spatial))
            xp.matmul(w_groups, cols_view.transpose(2, 0, 1, 3),
                      out=out[start:stop].reshape(n, groups, out_channels // groups,
                                                  math.prod(spatial)))
        if bias is not None:
            out += bias.reshape(_bias_shape(out_channels, len(kernel)))
        self.x_shape, self.weight_shape = x.shape, weight.shape
        self.slices = slices
        if self.save_cols:
            # one slice: keep the columns; several: keep the input and rebuild them
            if len(slices) == 1:
                self.cols = cols
            else:
                self.x = x
        if self.save_weight:
            self.weight = weight
        return out if self.batched else out[0]

    def backward(self, grad):
        xp = array_module(grad)
        if not self.batched:
            grad = grad[None]
        needs = self.needs_input_grad
        groups, nd = self.groups, len(self.weight_shape) - 2
        kernel = self.weight_shape[2:]
        rows = self.x_shape[1] * math.prod(kernel)
        want_bias = len(needs) > 2 and needs[2]
        grad_x = grad_weight = grad_bias = None
        if needs[0]:
            weight_t = self.weight.reshape(groups, self.weight_shape[0] // groups, -1)
            weight_t = weight_t.transpose(0, 2, 1)
            grad_x = xp.empty(self.x_shape, dtype=grad.dtype)
        if needs[1]:
            grad_weight = xp.zeros((groups, self.weight_shape[0] // groups, rows // groups),
                                   dtype=grad.dtype)
        if want_bias and (needs[0] or needs[1]):
            grad_bias = xp.zeros(self.weight_shape[0], dtype=grad.dtype)
        elif want_bias:
            grad_bias = grad.sum(axis=(0,) + tuple(range(2, nd + 2)))
        if needs[0] or needs[1]:
            for start, stop in self.slices:
                grad_rows = _channels_first(grad[start:stop], groups)  # (g, O/g, n * S)
                if needs[1]:
                    if len(self.slices) == 1:
                        cols = self.cols
                    else:
                        cols = _im2col(self.x[start:stop], kernel, self.stride,
                                       self.padding, self.dilation)
                    cols = cols.reshape(groups, rows // groups, -1)
                    grad_weight += xp.matmul(grad_rows, cols.transpose(0, 2, 1))
                if needs[0]:
                    grad_cols = xp.matmul(weight_t, grad_rows)
                    grad_cols = grad_cols.reshape((rows, stop - start) + grad.shape[2:])
                    grad_x[start:stop] = _col2im(
                        grad_cols, (stop - start,) + self.x_shape[1:], kernel,
                        self.stride, self.padding, self.dilation)
                if want_bias:
                    # G 1: a matrix-vector product over the rows we already have, which
                    # BLAS streams at memory speed (3x faster than .sum here)
                    ones = xp.ones(grad_rows.shape[2], dtype=grad_rows.dtype)
                    grad_bias += xp.matmul(grad_rows, ones).reshape(-1)
        if needs[0] and not self.batched:
            grad_x = grad_x[0]
        if needs[1]:
            grad_weight = grad_weight.reshape(self.weight_shape)
        if len(needs) == 2:
            return grad_x, grad_weight
        return grad_x, grad_weight, grad_bias


class ConvTransposeNd(Function):
    r"""Fused N-d transposed convolution: the adjoint of :class:`ConvNd`.

    Forward is ``col2im(W^T x)`` (conv's input gradient), backward uses im2col.
    Parameters as :class:`ConvNd` plus ``output_shape`` (the spatial output size);
    ``padding`` is symmetric here and ``save_x`` replaces ``save_cols``.
    """

    def forward(self, x, weight, bias=None):
        xp = array_module(x)
        if not self.batched:
            x = x[None]
        batch, groups = x.shape[0], self.groups
        kernel = weight.shape[2:]
        out_channels = weight.shape[1] * groups
        x_rows = _channels_first(x, groups)  # (g, C_in/g, N * S_in)
        weight_groups = weight.reshape(groups, weight.shape[0] // groups, -1)
        # (g, C_out/g * K, C_in/g) @ (g, C_in/g, N * S_in): the columns conv would read
        cols = xp.matmul(weight_groups.transpose(0, 2, 1), x_rows)
        cols = cols.reshape((out_channels * math.prod(kernel), batch) + x.shape[2:])
        out = _col2im(cols, (batch, out_channels) + tuple(self.output_shape), kernel,
                      self.stride, self.padding, self.dilation)
        if bias is not None:
            out += bias.reshape(_bias_shape(out_channels, len(kernel)))
        self.x_shape, self.weight_shape = x.shape, weight.shape
        if self.save_x:
            self.x_rows = x_rows
        if self.save_weight:
            self.weight = weight
        return out if self.batched else out[0]

    def backward(self, grad):
        xp = array_module(grad)
        if not self.batched:
            grad = grad[None]
        needs = self.needs_input_grad
        groups, kernel = self.groups, self.weight_shape[2:]
        in_spatial = self.x_shape[2:]
        grad_x = grad_weight = grad_bias = None
        if needs[0] or needs[1]:
            grad_cols = _im2col(grad, kernel, self.stride, self.padding, self.dilation)
            if grad_cols.shape[2:] != in_spatial:
                # output_padding >= stride (allowed when dilation is larger) leaves whole
                # extra positions at the end that the forward never wrote: drop them
                keep = tuple(slice(0, size) for size in in_spatial)
                grad_cols = xp.ascontiguousarray(grad_cols[(slice(None), slice(None)) + keep])
            grad_cols = grad_cols.reshape(groups, grad_cols.shape[0] // groups,
                                          grad_cols[0].size)
        if needs[0]:
            weight = self.weight.reshape(groups, self.weight_shape[0] // groups, -1)
            grad_rows = xp.matmul(weight, grad_cols)  # (g, C_in/g, N * S_in)
            grad_x = _batch_first(grad_rows, self.x_shape)
            if not self.batched:
                grad_x = grad_x[0]
        if needs[1]:
            grad_weight = xp.matmul(self.x_rows, grad_cols.transpose(0, 2, 1))
            grad_weight = grad_weight.reshape(self.weight_shape)
        if len(needs) > 2 and needs[2]:
            grad_bias = grad.sum(axis=(0,) + tuple(range(2, len(kernel) + 2)))
        if len(needs) == 2:
            return grad_x, grad_weight
        return grad_x, grad_weight, grad_bias


# ============================================================================ argument checks


def _shape(t):
    return tuple(int(s) for s in t.shape)


def _int_tuple(op, name, value, nd, minimum):
    """An int or a sequence of 1 or ``nd`` ints -> a tuple of ``nd`` ints >= minimum."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        values = (int(value),) * nd
    elif isinstance(value, (tuple, list)) and len(value) in (1, nd) and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        values = tuple(int(v) for v in value) * (nd if len(value) == 1 else 1)
    else:
        raise ValueError(
            f"{op}: {name} must be an int or a tuple of {nd} ints, got {value!r}"
        )
    if any(v < minimum for v in values):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {kind}, got {value!r}")
    return values


def _conv_padding(op, padding, kernel, stride, dilation):
    """PyTorch's padding argument -> ``((before, after), ...)`` per spatial axis."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise ValueError(
                f"{op}: invalid padding string {padding!r}, should be 'same' or 'valid'"
            )
        if any(s != 1 for s in stride):
            raise ValueError(
                f"{op}: padding='same' is not supported for strided convolutions "
                f"(stride {stride})"
            )
        # NOTE: as PyTorch, an odd total (even kernel, odd dilation) puts the extra zero
        # after the input (right / bottom), so that output[t] is centred on input[t].
        pairs = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    return tuple((p, p) for p in _int_tuple(op, "padding", padding, nd, 0))


def _check_tensors(op, input, weight, bias):
    from minidl.tensor import Tensor

    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(
            f"{op}: input must be floating point, got {input.dtype} (input "
            f"{_shape(input)}); convert it with .float()"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(
                f"{op}: input dtype {input.dtype} does not match {name} dtype {t.dtype} "
                f"(input {_shape(input)}, {name} {_shape(t)}); cast the input "
                "(x.float() / x.double()) or the model (model.float() / model.double())"
            )


def _spatial_names(nd):
    return "L" if nd == 1 else "H, W"


def _check_dims(op, nd, input, weight, weight_layout):
    if weight.ndim != nd + 2:
        raise ValueError(
            f"{op}: weight must be {nd + 2}-D {weight_layout}, got weight {_shape(weight)}"
        )
    if input.ndim not in (nd + 1, nd + 2):
        names = _spatial_names(nd)
        raise ValueError(
            f"{op}: expected a {nd + 1}-D unbatched (C, {names}) or {nd + 2}-D batched "
            f"(N, C, {names}) input, got input {_shape(input)} (weight {_shape(weight)})"
        )


def _check_groups(op, groups, weight, dim_name):
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.shape[0] % groups:
        raise ValueError(
            f"{op}: groups={groups} must divide the weight's {dim_name} "
            f"{weight.shape[0]} (weight {_shape(weight)})"
        )
    return int(groups)


def _channel_error(op, nd, input, weight, expected, groups):
    per_group = (
        f" ({expected // groups} per group x groups={groups})" if groups > 1 else ""
    )
    message = (
        f"{op}: input has {input.shape[-nd - 1]} channels, weight expects {expected}"
        f"{per_group} (input {_shape(input)}, weight {_shape(weight)})"
    )
    if input.ndim == nd + 1:
        message += (
            f"; a {nd + 1}-D input is read as one unbatched sample (C, "
            f"{_spatial_names(nd)}): for a batch of single-channel inputs add the channel "
            "axis with x.unsqueeze(1)"
        )
    return ValueError(message)


def _check_bias(op, bias, channels, weight):
    if bias is not None and _shape(bias) != (channels,):
        raise ValueError(
            f"{op}: bias must have shape ({channels},) for weight {_shape(weight)}, got "
            f"bias {_shape(bias)}"
        )


def _saving(input, weight):
    """What forward must keep: the columns only if the weight's gradient can be asked
    for, the weight only if the input's can."""
    recording = is_grad_enabled()
    return recording and weight.requires_grad, recording and input.requires_grad


def _conv(op, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(op, input, weight, bias)
    _check_dims(op, nd, input, weight,
                "(out_channels, in_channels / groups, " + ("kL" if nd == 1 else "kH, kW") + ")")
    groups = _check_groups(op, groups, weight, "out_channels")
    expected = weight.shape[1] * groups
    if input.shape[-nd - 1] != expected:
        raise _channel_error(op, nd, input, weight, expected, groups)
    kernel = _shape(weight)[2:]
    stride = _int_tuple(op, "stride", stride, nd, 1)
    dilation = _int_tuple(op, "dilation", dilation, nd, 1)
    pads = _conv_padding(op, padding, kernel, stride, dilation)
    spatial = _shape(input)[-nd:]
    padded = tuple(size + a + b for size, (a, b) in zip(spatial, pads))
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(r > p for r, p in zip(reach, padded)):
        dilated = "" if reach == kernel else f" (dilated to {reach})"
        raise ValueError(
            f"{op}: kernel size {kernel}{dilated} is larger than the padded input size "
            f"{padded} (input {_shape(input)}, padding {tuple(pads)})"
        )
    _check_bias(op, bias, weight.shape[0], weight)
    save_cols, save_weight = _saving(input, weight)
    params = dict(stride=stride, padding=pads, dilation=dilation, groups=groups,
                  batched=input.ndim == nd + 2, save_cols=save_cols, save_weight=save_weight)
    if bias is None:
        return ConvNd.apply(input, weight, **params)
    return ConvNd.apply(input, weight, bias, **params)


def _transposed_output_shape(op, spatial, kernel, stride, padding, output_padding, dilation):
    """:math:`(L - 1) s - 2p + d (k - 1) + p_{out} + 1` per axis, checked positive."""
    for op_, s, d in zip(output_padding, stride, dilation):
        if op_ >= max(s, d):
            raise ValueError(
                f"{op}: output_padding {output_padding} must be smaller than either stride "
                f"{stride} or dilation {dilation}"
            )
    shape = tuple(
        (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        for size, k, s, p, op_, d in zip(spatial, kernel, stride, padding, output_padding,
                                          dilation)
    )
    if any(size < 1 for size in shape):
        raise ValueError(
            f"{op}: the output size {shape} is too small (input size {spatial}, kernel "
            f"{kernel}, stride {stride}, padding {padding}, dilation {dilation})"
        )
    return shape


def _conv_transpose(op, nd, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    _check_tensors(op, input, weight, bias)
    _check_dims(op, nd, input, weight,
                "(in_channels, out_channels / groups, " + ("kL" if nd == 1 else "kH, kW")
                + ")")
    groups = _check_groups(op, groups, weight, "in_channels")
    if input.shape[-nd - 1] != weight.shape[0]:
        raise _channel_error(op, nd, input, weight, weight.shape[0], 1)
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    kernel = _shape(weight)[2:]
    stride = _int_tuple(op, "stride", stride, nd, 1)
    dilation = _int_tuple(op, "dilation", dilation, nd, 1)
    pads = _int_tuple(op, "padding", padding, nd, 0)
    output_padding = _int_tuple(op, "output_padding", output_padding, nd, 0)
    output_shape = _transposed_output_shape(op, _shape(input)[-nd:], kernel, stride, pads,
                                            output_padding, dilation)
    _check_bias(op, bias, weight.shape[1] * groups, weight)
    save_x, save_weight = _saving(input, weight)
    params = dict(stride=stride, padding=tuple((p, p) for p in pads), dilation=dilation,
                  groups=groups, batched=input.ndim == nd + 2, output_shape=output_shape,
                  save_x=save_x, save_weight=save_weight)
    if bias is None:
        return ConvTransposeNd.apply(input, weight, **params)
    return ConvTransposeNd.apply(input, weight, bias, **params)


# ============================================================================ public functions


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""1-D convolution (cross-correlation) over sequences, as ``torch.nn.functional.conv1d``.

    .. math::

        y[n, o, l] = b[o] + \sum_{c=0}^{C/g-1} \sum_{i=0}^{k-1}
        w[o, c, i]\; x_{pad}[n,\; g_o C/g + c,\; l s + i d]

    where :math:`g_o = \lfloor o / (O/g) \rfloor` is the group of output channel ``o``.
    Computed as im2col and one matrix multiply per group; the backward (input, weight
    and bias gradients) is fused, and gradients nobody needs are skipped.

    Parameters
    ----------
    input : Tensor, shape ``(N, C_in, L)`` or unbatched ``(C_in, L)``
    weight : Tensor, shape ``(C_out, C_in / groups, k)``
    bias : Tensor, shape ``(C_out,)``, optional
    stride : int or (int,), default 1
    padding : int, (int,), "valid" or "same", default 0
        Zeros added on both sides.  ``"same"`` keeps the length (stride 1 only); with an
        even ``dilation * (k - 1)`` total the extra zero goes on the right, as in PyTorch.
    dilation : int or (int,), default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split the channels into independent groups (``groups = C_in``: depthwise).

    Returns
    -------
    Tensor, shape ``(N, C_out, L_out)``
        :math:`L_{out} = \lfloor (L + 2p - d(k-1) - 1) / s \rfloor + 1`.

    Raises
    ------
    ValueError
        Wrong channel count, kernel larger than the padded input, groups not dividing the
        channels, bad stride/padding/dilation; the message names the shapes.
    TypeError
        Non-float input or mismatched dtypes.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(1, 1, 5)
    >>> w = minidl.ones(1, 1, 3)
    >>> conv1d(x, w, padding=1).tolist()
    [[[2.0, 3.0, 3.0, 3.0, 2.0]]]
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    r"""2-D convolution (cross-correlation) over images, as ``torch.nn.functional.conv2d``.

    .. math::

        y[n, o, h, v] = b[o] + \sum_{c, i, j} w[o, c, i, j]\;
        x_{pad}[n,\; g_o C/g + c,\; h s_H + i d_H,\; v s_W + j d_W]

    Computed as im2col and one matrix multiply per group (see the module docstring for
    the maths of the fused backward).

    Parameters
    ----------
    input : Tensor, shape ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``
    weight : Tensor, shape ``(C_out, C_in / groups, kH, kW)``
    bias : Tensor, shape ``(C_out,)``, optional
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int), "valid" or "same", default 0
        ``"same"`` (stride 1 only) pads ``d (k - 1)`` in total per axis, the odd zero
        (if any) at the bottom / right, as in PyTorch.
    groups : int, default 1

    Returns
    -------
    Tensor, shape ``(N, C_out, H_out, W_out)``
        :math:`H_{out} = \lfloor (H + 2p_H - d_H(k_H-1) - 1) / s_H \rfloor + 1`, same for W.

    Raises
    ------
    ValueError
        e.g. ``conv2d: input has 3 channels, weight expects 4 (input (8, 3, 32, 32),
        weight (16, 4, 3, 3))``.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(2, 3, 8, 8)
    >>> w = minidl.ones(4, 3, 3, 3)
    >>> conv2d(x, w, stride=2, padding=1).shape
    (2, 4, 4, 4)
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    r"""1-D transposed convolution (the adjoint of :func:`conv1d`), as PyTorch's.

    For the same weight, ``conv_transpose1d`` is the transpose of the linear map
    ``x -> conv1d(x, weight, stride=s, padding=p, dilation=d, groups=g)``: it sends a
    length-``L`` signal back to the longer length

    .. math::

        L_{out} = (L - 1) s - 2p + d(k - 1) + p_{out} + 1,

    which is how generators and decoders upsample.  Each input element adds ``k``
    weighted copies of itself into the output: forward is col2im of :math:`W^\top x`,
    and backward is an im2col.

    Parameters
    ----------
    input : Tensor, shape ``(N, C_in, L)`` or unbatched ``(C_in, L)``
    weight : Tensor, shape ``(C_in, C_out / groups, k)``
    bias : Tensor, shape ``(C_out,)``, optional
    stride, padding, dilation : int or (int,)
        Those of the convolution this is the transpose of; ``padding`` crops ``p``
        elements from both ends of the output.
    output_padding : int or (int,), default 0
        Extra length added at the end, to pick one of the ``s`` input lengths that a
        strided convolution maps to the same output length; must be smaller than
        ``stride`` or ``dilation``.
    groups : int, default 1

    Returns
    -------
    Tensor, shape ``(N, C_out, L_out)``

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(1, 1, 3)
    >>> w = minidl.ones(1, 1, 2)
    >>> conv_transpose1d(x, w, stride=2).tolist()
    [[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]]
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    r"""2-D transposed convolution (the adjoint of :func:`conv2d`), as PyTorch's.

    .. math::

        H_{out} = (H - 1) s_H - 2p_H + d_H(k_H - 1) + p_{out,H} + 1, \quad
        \text{same for } W.

    Parameters
    ----------
    input : Tensor, shape ``(N, C_in, H, W)`` or unbatched ``(C_in, H, W)``
    weight : Tensor, shape ``(C_in, C_out / groups, kH, kW)``
    bias : Tensor, shape ``(C_out,)``, optional
    stride, padding, output_padding, dilation : int or (int, int)
    groups : int, default 1

    Returns
    -------
    Tensor, shape ``(N, C_out, H_out, W_out)``

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(1, 8, 4, 4)
    >>> w = minidl.ones(8, 3, 4, 4)
    >>> conv_transpose2d(x, w, stride=2, padding=1).shape
    (1, 3, 8, 8)
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)
