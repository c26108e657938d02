"""Numba LSTM and GRU step kernels, registered as the ``"numba"`` backend.

Same signatures, in-place conventions and results as the NumPy references in
:mod:`minidl.ops.recurrent` (``lstm_cell_forward``, ``lstm_cell_backward``,
``gru_cell_forward``, ``gru_cell_backward``), and the same loops as the C kernels
(``minidl/kernels/cpu/_recurrent.pyx``, whose docstring explains the choices):

- one pass per row over the gate columns, with the reference's formulas operation for
  operation (:math:`\\tanh` of the LSTM's g gate as :math:`2\\sigma(2a) - 1`);
- ``exp`` and ``tanh`` as branch-free polynomials (Cephes' coefficients, 1-2 ulp):
  Numba's ``math.exp`` is a scalar call to the C library, 4x slower here than the
  polynomial, which LLVM vectorises.  Building :math:`2^n` needs the bits of a float,
  which :func:`_float_from_bits` (an LLVM ``bitcast``) provides;
- no ``parallel=True``: a step is a few microseconds, and at these sizes threads only
  fight OpenBLAS (the GEMM between two steps) for the two cores.

The registered functions call the jitted ones after a single dtype check (one call per
time step makes every microsecond count: the check costs about 0.1 us).  They accept
any strides; each dtype/layout combination compiles once and is cached on disk
(``cache=True``).  Importing this module fails with ImportError when Numba is missing.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from minidl import backend

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward"]


# ----------------------------------------------------------------------------- math


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float whose IEEE bits are the int32 (-> float32) or int64 (-> float64)."""
    if bits == types.int32:
        return types.float32(bits), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.FloatType())
    if bits == types.int64:
        return types.float64(bits), lambda context, builder, sig, args: builder.bitcast(
            args[0], ir.DoubleType())
    return None


_f = np.float32


@numba.njit(cache=True, error_model="numpy")
def _exp32(x):
    # Cephes expf: exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts;
    # clamped to [-87, 88] where 2^n is a normal float (NaN passes through)
    x = _f(88.0) if x > _f(88.0) else x
    x = _f(-87.0) if x < _f(-87.0) else x
    n = np.floor(x * _f(1.44269504088896341) + _f(0.5))
    r = x - n * _f(0.693359375)
    r = r - n * _f(-2.12194440e-4)
    p = _f(1.9875691500e-4)
    p = p * r + _f(1.3981999507e-3)
    p = p * r + _f(8.3334519073e-3)
    p = p * r + _f(4.1665795894e-2)
    p = p * r + _f(1.6666665459e-1)
    p = p * r + _f(5.0000001201e-1)
    p = p * r * r + r + _f(1.0)
    scale = _float_from_bits(np.int32((np.int32(n) + 127) << 23))
    return p * scale


@numba.njit(cache=True, error_model="numpy")
def _exp64(x):
    # Cephes exp: a Pade form on |r| <= ln(2) / 2, clamped to [-708, 708]
    x = 708.0 if x > 708.0 else x
    x = -708.0 if x < -708.0 else x
    n = np.floor(x * 1.4426950408889634073599 + 0.5)
    r = x - n * 6.93145751953125e-1
    r = r - n * 1.42860682030941723212e-6
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = ((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
          + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0
    scale = _float_from_bits(np.int64((np.int64(n) + 1023) << 52))
    return (1.0 + 2.0 * px / (qx - px)) * scale


@numba.njit(cache=True, error_model="numpy")
def _tanh32(x):
    # Cephes tanhf: an odd polynomial below |x| = 0.625, else 1 - 2 / (exp(2|x|) + 1)
    a = abs(x)
    z = x * x
    small = ((((_f(-5.70498872745e-3) * z + _f(2.06390887954e-2)) * z
               - _f(5.37397155531e-2)) * z + _f(1.33314422036e-1)) * z
             - _f(3.33332819422e-1)) * z * x + x
    big = _f(1.0) - _f(2.0) / (_exp32(a + a) + _f(1.0))
    big = -big if x < _f(0.0) else big
    return small if a < _f(0.625) else big


@numba.njit(cache=True, error_model="numpy")
def _tanh64(x):
    # Cephes tanh: x + x^3 P(x^2) / Q(x^2) below 0.625
    a = abs(x)
    z = x * x
    p = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z \
        - 1.61468768441708447952e3
    q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z \
        + 4.84406305325125486048e3
    small = x + x * z * p / q
    big = 1.0 - 2.0 / (_exp64(a + a) + 1.0)
    big = -big if x < 0.0 else big
    return small if a < 0.625 else big


def _exp(x):
    """exp in the argument's precision (dispatched at compile time)."""


def _tanh(x):
    """tanh in the argument's precision (dispatched at compile time)."""


@overload(_exp)
def _exp_impl(x):
    return (lambda x: _exp32(x)) if x == types.float32 else (lambda x: _exp64(x))


@overload(_tanh)
def _tanh_impl(x):
    return (lambda x: _tanh32(x)) if x == types.float32 else (lambda x: _tanh64(x))


@numba.njit(cache=True, error_model="numpy")
def _sigmoid(a, one):
    # 1 / (1 + exp(-a)), as the reference
    return one / (one + _exp(-a))


# ----------------------------------------------------------------------------- kernels
# NOTE: two habits keep these loops vectorised and in the data's precision:
# - constants are made in the arrays' dtype (``one = gates.dtype.type(1)``): a Python
#   literal such as ``1 - x`` would promote a float32 ``x`` to float64 (NumPy's rules);
# - the column loops run on unsigned indices: with a signed one Numba must allow
#   negative indices (wrap around), and LLVM does not vectorise that.


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def lstm_cell_forward(gates, c_prev, c_out, tanh_c_out, h_out):
    """Pointwise LSTM step: see :func:`minidl.ops.recurrent.lstm_cell_forward`."""
    one = gates.dtype.type(1)
    two = gates.dtype.type(2)
    rows = gates.shape[0]
    hidden = numba.uint64(c_prev.shape[1])
    for b in range(rows):
        # one view per gate block: LLVM vectorises a loop over a view it is handed,
        # not the same loop over an offset range of the whole row
        i = gates[b, :hidden]
        f = gates[b, hidden:2 * hidden]
        g = gates[b, 2 * hidden:3 * hidden]
        o = gates[b, 3 * hidden:]
        i_f = gates[b, :2 * hidden]
        cp = c_prev[b]
        c = c_out[b]
        tc = tanh_c_out[b]
        h = h_out[b]
        for j in range(2 * hidden):  # i and f are adjacent
            i_f[j] = _sigmoid(i_f[j], one)
        for j in range(hidden):  # tanh(a) = 2 sigmoid(2a) - 1, the reference's formula
            g[j] = _sigmoid(two * g[j], one) * two - one
        for j in range(hidden):
            o[j] = _sigmoid(o[j], one)
        for j in range(hidden):
            c[j] = f[j] * cp[j] + i[j] * g[j]
            tc[j] = c[j]
        for j in range(hidden):
            tc[j] = _tanh(tc[j])
        for j in range(hidden):
            h[j] = o[j] * tc[j]


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def lstm_cell_backward(gates, c_prev, tanh_c, grad_h, grad_c, grad_gates_out):
    """Backward of one LSTM step: see :func:`minidl.ops.recurrent.lstm_cell_backward`."""
    one = gates.dtype.type(1)
    rows = gates.shape[0]
    hidden = numba.uint64(c_prev.shape[1])
    for b in range(rows):
        i = gates[b, :hidden]
        f = gates[b, hidden:2 * hidden]
        g = gates[b, 2 * hidden:3 * hidden]
        o = gates[b, 3 * hidden:]
        di = grad_gates_out[b, :hidden]
        df = grad_gates_out[b, hidden:2 * hidden]
        dg = grad_gates_out[b, 2 * hidden:3 * hidden]
        do = grad_gates_out[b, 3 * hidden:]
        cp = c_prev[b]
        tc = tanh_c[b]
        gh = grad_h[b]
        gc = grad_c[b]
        for j in range(hidden):
            # dL/do = dh tanh(c); dL/dc += dh o (1 - tanh(c)^2) = o (dh - (dh tanh c) tanh c)
            grad_o = gh[j] * tc[j]
            gc[j] = gc[j] + (gh[j] - grad_o * tc[j]) * o[j]
            do[j] = grad_o * ((one - o[j]) * o[j])
        # then through c = f c_prev + i g, and each activation: sigma' = (1 - s) s,
        # tanh' = (1 - t)(t + 1)
        for j in range(hidden):
            di[j] = gc[j] * g[j] * ((one - i[j]) * i[j])
            df[j] = gc[j] * cp[j] * ((one - f[j]) * f[j])
            dg[j] = gc[j] * i[j] * ((one - g[j]) * (g[j] + one))
            gc[j] = gc[j] * f[j]  # dL/dc_{t-1}


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def gru_cell_forward(x_gates, h_gates, h_prev, gates_out, h_out):
    """Pointwise GRU step: see :func:`minidl.ops.recurrent.gru_cell_forward`."""
    one = x_gates.dtype.type(1)
    rows = x_gates.shape[0]
    hidden = numba.uint64(h_prev.shape[1])
    for b in range(rows):
        xg = x_gates[b]
        hg = h_gates[b]
        hp = h_prev[b]
        rz = gates_out[b, :2 * hidden]
        r = gates_out[b, :hidden]
        z = gates_out[b, hidden:2 * hidden]
        n = gates_out[b, 2 * hidden:3 * hidden]
        hn = gates_out[b, 3 * hidden:]
        xn = x_gates[b, 2 * hidden:]
        hgn = h_gates[b, 2 * hidden:]
        h = h_out[b]
        for j in range(2 * hidden):  # r and z are adjacent
            rz[j] = _sigmoid(xg[j] + hg[j], one)
        for j in range(hidden):
            hn[j] = hgn[j]
            # NOTE: PyTorch's GRU: r multiplies W_hn h + b_hn
            n[j] = r[j] * hgn[j] + xn[j]
        for j in range(hidden):
            n[j] = _tanh(n[j])
        for j in range(hidden):
            h[j] = (hp[j] - n[j]) * z[j] + n[j]  # (1 - z) n + z h_prev


@numba.njit(cache=True, fastmath=False, error_model="numpy")
def gru_cell_backward(gates, h_prev, grad_h, grad_x_gates_out, grad_h_gates_out):
    """Backward of one GRU step: see :func:`minidl.ops.recurrent.gru_cell_backward`."""
    one = gates.dtype.type(1)
    rows = gates.shape[0]
    hidden = numba.uint64(h_prev.shape[1])
    for b in range(rows):
        r = gates[b, :hidden]
        z = gates[b, hidden:2 * hidden]
        n = gates[b, 2 * hidden:3 * hidden]
        hn = gates[b, 3 * hidden:]
        dr = grad_x_gates_out[b, :hidden]
        dz = grad_x_gates_out[b, hidden:2 * hidden]
        dn = grad_x_gates_out[b, 2 * hidden:]
        hdr = grad_h_gates_out[b, :hidden]
        hdz = grad_h_gates_out[b, hidden:2 * hidden]
        hdn = grad_h_gates_out[b, 2 * hidden:]
        hp = h_prev[b]
        gh = grad_h[b]
        for j in range(hidden):
            # n block: d/dn of n + z (h_prev - n) is 1 - z; tanh' = 1 - n^2
            dn[j] = (gh[j] - gh[j] * z[j]) * (one - n[j] * n[j])
            # z block: d/dz is h_prev - n; sigmoid' = z (1 - z)
            dz[j] = (hp[j] - n[j]) * gh[j] * (z[j] - z[j] * z[j])
        for j in range(hidden):
            # r block: n's pre-activation holds r * hn
            dr[j] = dn[j] * hn[j] * (r[j] - r[j] * r[j])
            hdr[j] = dr[j]  # r and z: the same for x_gates and h_gates
            hdz[j] = dz[j]
            hdn[j] = dn[j] * r[j]
            gh[j] = gh[j] * z[j]  # the direct part of dL/dh_{t-1}


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _register(name, jitted):
    """Register ``jitted`` behind a dtype check: other dtypes (float16) go to the reference
    (Numba would fail to compile them, again on every call)."""
    def kernel(first, *rest):
        if first.dtype in _FLOATS:
            return jitted(first, *rest)
        from minidl.ops import recurrent as reference

        return getattr(reference, name)(first, *rest)

    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = jitted.__doc__
    kernel.jitted = jitted
    backend.register_kernel(name, "numba", kernel)


for _name, _fn in (("lstm_cell_forward", lstm_cell_forward),
                   ("lstm_cell_backward", lstm_cell_backward),
                   ("gru_cell_forward", gru_cell_forward),
                   ("gru_cell_backward", gru_cell_backward)):
    _register(_name, _fn)
