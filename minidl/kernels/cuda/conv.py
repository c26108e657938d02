r"""Numba-CUDA im2col and col2im kernels, registered as the ``"cuda"`` backend.

Same signatures, layouts and results as the NumPy references in :mod:`minidl.ops.conv`
(``im2col1d``, ``col2im1d``, ``im2col2d``, ``col2im2d``); 1-D is 2-D on images of height
1.  Arrays come in and go out in the array module of the input (CuPy on a GPU; NumPy
under ``NUMBA_ENABLE_CUDASIM=1``).

- ``im2col``: one thread per entry of the ``(C kH kW, N, H_out, W_out)`` result, in
  memory order, so consecutive threads write consecutive addresses (coalesced) and
  read a row of the image with stride ``s_W``:

  .. math:: \text{cols}[(c k_H + i) k_W + j, n, h, v] =
            x[n, c, h s_H + i d_H - p_{top}, v s_W + j d_W - p_{left}]

  (0 where that lies in the padding).
- ``col2im``: a *gather*, one thread per input element, instead of the reference's
  scatter-add: element :math:`(t, u)` receives the column entries whose receptive field
  reads it, :math:`h = (t + p_{top} - i d_H)/s_H` and :math:`v = (u + p_{left} - j
  d_W)/s_W` where those are whole numbers inside the output.  No two threads write the
  same address, so no atomics are needed, and the sum runs over the kernel offsets
  ``(i, j)`` in the reference's order, starting from zero: the same float additions in
  the same order.

Other dtypes (float16, integers) and empty inputs go to the reference, which runs on
CuPy as well.  Importing this module fails with ImportError without Numba.
"""

from __future__ import annotations

from numba import cuda

from minidl import backend
from minidl.kernels.cuda import _common
from minidl.ops import conv as reference

__all__ = ["im2col1d", "col2im1d", "im2col2d", "col2im2d"]


@cuda.jit
def _im2col2d(x, cols, total, out_h, out_w, kh, kw, sh, sw, top, left, dh, dw):
    # x: (N, C, H, W), any strides; cols: the flat C-ordered (C kH kW, N, H_out, W_out)
    batch, _, height, width = x.shape
    zero = x.dtype.type(0)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        v = index % out_w
        rest = index // out_w
        h = rest % out_h
        rest //= out_h
        n = rest % batch
        rest //= batch
        j = rest % kw
        rest //= kw
        i = rest % kh
        c = rest // kh
        row = h * sh + i * dh - top
        col = v * sw + j * dw - left
        if 0 <= row < height and 0 <= col < width:
            cols[index] = x[n, c, row, col]
        else:
            cols[index] = zero


@cuda.jit
def _col2im2d(cols, out, total, channels, height, width, kh, kw, sh, sw, top, left, dh, dw):
    # cols: (C kH kW, N, H_out, W_out), any strides; out: the flat C-ordered (N, C, H, W)
    _, _, out_h, out_w = cols.shape
    zero = cols.dtype.type(0)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        u = index % width
        rest = index // width
        t = rest % height
        rest //= height
        c = rest % channels
        n = rest // channels
        acc = zero
        for i in range(kh):
            a = t + top - i * dh
            if a < 0:
                break  # a only decreases with i: no later offset reaches row t
            if a % sh != 0 or a // sh >= out_h:
                continue
            h = a // sh
            for j in range(kw):
                b = u + left - j * dw
                if b < 0:
                    break
                if b % sw != 0 or b // sw >= out_w:
                    continue
                acc += cols[(c * kh + i) * kw + j, n, h, b // sw]
        out[index] = acc


def _positions(padded, kernel_size, stride, dilation):
    return (padded - dilation * (kernel_size - 1) - 1) // stride + 1


def _im2col(x, kernel_size, stride, padding, dilation):
    """2-D im2col of an ``(N, C, H, W)`` array; None when the reference should run."""
    if x.ndim != 4 or not _common.usable(x):
        return None
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, bottom), (left, right) = padding
    n, c, height, width = x.shape
    out_h = _positions(height + top + bottom, kh, sh, dh)
    out_w = _positions(width + left + right, kw, sw, dw)
    if out_h <= 0 or out_w <= 0:
        return None
    xp = _common.array_module(x)
    cols = xp.empty((c * kh * kw, n, out_h, out_w), dtype=x.dtype)
    _common.launch(_im2col2d, cols.size, x, cols.reshape(-1), cols.size, out_h, out_w,
                   kh, kw, sh, sw, top, left, dh, dw)
    return cols


def _col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """2-D col2im of a ``(C kH kW, N, H_out, W_out)`` array; None for the reference."""
    if cols.ndim != 4 or not _common.usable(cols):
        return None
    (kh, kw), (sh, sw), (dh, dw) = kernel_size, stride, dilation
    (top, _), (left, _) = padding
    n, c, height, width = input_shape
    xp = _common.array_module(cols)
    out = xp.empty((n, c, height, width), dtype=cols.dtype)
    if out.size == 0:
        return out
    _common.launch(_col2im2d, out.size, cols, out.reshape(-1), out.size, c, height, width,
                   kh, kw, sh, sw, top, left, dh, dw)
    return out


def im2col2d(x, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    r""":func:`minidl.ops.conv.im2col2d` on the GPU: the ``(C kH kW, N, H_out, W_out)``
    columns :math:`\text{cols}[(c k_H + i) k_W + j, n, h, v] = x_{pad}[n, c, h s_H + i
    d_H, v s_W + j d_W]`, one thread per entry."""
    cols = _im2col(x, kernel_size, stride, padding, dilation)
    if cols is None:
        return reference.im2col2d(x, kernel_size, stride, padding, dilation)
    return cols


def col2im2d(cols, input_shape, kernel_size, stride=(1, 1), padding=((0, 0), (0, 0)),
             dilation=(1, 1)):
    r""":func:`minidl.ops.conv.col2im2d` on the GPU, as a gather: :math:`x[n, c, t, u] =
    \sum_{i, j} \text{cols}[(c k_H + i) k_W + j, n, h, v]` over the offsets with
    :math:`h s_H + i d_H - p_{top} = t` and :math:`v s_W + j d_W - p_{left} = u`, one
    thread per input element."""
    out = _col2im(cols, input_shape, kernel_size, stride, padding, dilation)
    if out is None:
        return reference.col2im2d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out


def im2col1d(x, kernel_size, stride=1, padding=(0, 0), dilation=1):
    r""":func:`minidl.ops.conv.im2col1d` on the GPU: :math:`\text{cols}[c k + i, n, l] =
    x_{pad}[n, c, l s + i d]`, shape ``(C k, N, L_out)`` (2-D im2col of height 1)."""
    if x.ndim != 3:
        return reference.im2col1d(x, kernel_size, stride, padding, dilation)
    n, c, length = x.shape
    cols = _im2col(x.reshape(n, c, 1, length), (1, kernel_size), (1, stride),
                   ((0, 0), tuple(padding)), (1, dilation))
    if cols is None:
        return reference.im2col1d(x, kernel_size, stride, padding, dilation)
    return cols.reshape(cols.shape[0], n, cols.shape[3])


def col2im1d(cols, input_shape, kernel_size, stride=1, padding=(0, 0), dilation=1):
    r""":func:`minidl.ops.conv.col2im1d` on the GPU: :math:`x[n, c, t] = \sum_{i, l \,:\,
    l s + i d - p_0 = t} \text{cols}[c k + i, n, l]`, as a gather (2-D of height 1)."""
    if cols.ndim != 3:
        return reference.col2im1d(cols, input_shape, kernel_size, stride, padding, dilation)
    n, c, length = input_shape
    rows, _, out_len = cols.shape
    out = _col2im(cols.reshape(rows, n, 1, out_len), (n, c, 1, length), (1, kernel_size),
                  (1, stride), ((0, 0), tuple(padding)), (1, dilation))
    if out is None:
        return reference.col2im1d(cols, input_shape, kernel_size, stride, padding, dilation)
    return out.reshape(n, c, length)


for _name in __all__:
    backend.register_kernel(_name, "cuda", globals()[_name])
