r"""Numba-CUDA LSTM and GRU gate math, registered as the ``"cuda"`` backend.

Same signatures and in-place conventions as the NumPy references in
:mod:`minidl.ops.recurrent` (``lstm_cell_forward``, ``lstm_cell_backward``,
``gru_cell_forward``, ``gru_cell_backward``): the caller passes preallocated (often
strided: a prefix of the batch, one step of a ``(T, N, G)`` buffer) arrays, and the
kernels write into them.  One thread per ``(b, k)``, ``b < B`` a batch row and ``k < H``
a hidden unit: it reads the unit's 4 (LSTM) or 3 (GRU) gate pre-activations, applies the
whole step and writes every output of that unit, so one launch replaces the reference's
dozen array operations and their temporaries.  Gate order is PyTorch's (``[i, f, g, o]``
and ``[r, z, n]``); see the references for the formulas.

The activations use the GPU's ``exp`` and ``tanh`` (``expf``/``tanhf`` in float32):

.. math::

    \sigma(a) = \begin{cases} 1/(1 + e^{-a}) & a \ge 0 \\ e^{a}/(1 + e^{a}) & a < 0
    \end{cases}

so the exponential never overflows (the reference lets ``exp`` overflow to ``inf``,
which gives the same limits).  The LSTM's g gate is :math:`\tanh(a)` itself, where the
reference writes :math:`2\sigma(2a) - 1`: the same function, equal up to rounding.

Constants are made in the arrays' dtype (``gates.dtype.type(1)``), so float32 steps stay
in float32 arithmetic.  Other dtypes, shapes and empty batches go to the reference.
Importing this module fails with ImportError without Numba.
"""

from __future__ import annotations

import math

from numba import cuda

from minidl import backend
from minidl.kernels.cuda import _common
from minidl.ops import recurrent as reference

__all__ = ["lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward"]


@cuda.jit(device=True)
def _sigmoid(a, one):
    # two forms, each with exp of a non-positive number: no overflow in either
    if a >= 0:
        return one / (one + math.exp(-a))
    e = math.exp(a)
    return e / (one + e)


@cuda.jit
def _lstm_forward(gates, c_prev, c_out, tanh_c_out, h_out, total, hidden):
    one = gates.dtype.type(1)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index // hidden
        k = index % hidden
        i = _sigmoid(gates[b, k], one)
        f = _sigmoid(gates[b, hidden + k], one)
        g = math.tanh(gates[b, 2 * hidden + k])
        o = _sigmoid(gates[b, 3 * hidden + k], one)
        gates[b, k] = i
        gates[b, hidden + k] = f
        gates[b, 2 * hidden + k] = g
        gates[b, 3 * hidden + k] = o
        c = f * c_prev[b, k] + i * g
        tanh_c = math.tanh(c)
        c_out[b, k] = c
        tanh_c_out[b, k] = tanh_c
        h_out[b, k] = o * tanh_c


@cuda.jit
def _lstm_backward(gates, c_prev, tanh_c, grad_h, grad_c, grad_gates, total, hidden):
    one = gates.dtype.type(1)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index // hidden
        k = index % hidden
        i = gates[b, k]
        f = gates[b, hidden + k]
        g = gates[b, 2 * hidden + k]
        o = gates[b, 3 * hidden + k]
        tc = tanh_c[b, k]
        gh = grad_h[b, k]
        grad_o = gh * tc
        # dL/dc = dL/dc_{t+1} + gh * o * (1 - tanh(c)^2), written as the reference does
        gc = grad_c[b, k] + (gh - grad_o * tc) * o
        grad_c[b, k] = gc * f  # dL/dc_{t-1}
        # through the activations: sigma' = s (1 - s), tanh' = (1 - t)(1 + t)
        grad_gates[b, k] = gc * g * ((one - i) * i)
        grad_gates[b, hidden + k] = gc * c_prev[b, k] * ((one - f) * f)
        grad_gates[b, 2 * hidden + k] = gc * i * ((one - g) * (g + one))
        grad_gates[b, 3 * hidden + k] = grad_o * ((one - o) * o)


@cuda.jit
def _gru_forward(x_gates, h_gates, h_prev, gates_out, h_out, total, hidden):
    one = x_gates.dtype.type(1)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index // hidden
        k = index % hidden
        r = _sigmoid(x_gates[b, k] + h_gates[b, k], one)
        z = _sigmoid(x_gates[b, hidden + k] + h_gates[b, hidden + k], one)
        hn = h_gates[b, 2 * hidden + k]
        # NOTE: r multiplies the hidden projection including its bias (PyTorch, cuDNN)
        n = math.tanh(r * hn + x_gates[b, 2 * hidden + k])
        gates_out[b, k] = r
        gates_out[b, hidden + k] = z
        gates_out[b, 2 * hidden + k] = n
        gates_out[b, 3 * hidden + k] = hn
        # h = (1 - z) n + z h_prev = n + z (h_prev - n)
        h_out[b, k] = (h_prev[b, k] - n) * z + n


@cuda.jit
def _gru_backward(gates, h_prev, grad_h, grad_x_gates, grad_h_gates, total, hidden):
    one = gates.dtype.type(1)
    for index in range(cuda.grid(1), total, cuda.gridsize(1)):
        b = index // hidden
        k = index % hidden
        r = gates[b, k]
        z = gates[b, hidden + k]
        n = gates[b, 2 * hidden + k]
        hn = gates[b, 3 * hidden + k]
        gh = grad_h[b, k]
        grad_n = (gh - gh * z) * (one - n * n)  # d/dn (1 - z), tanh' = 1 - n^2
        grad_z = (h_prev[b, k] - n) * gh * (z - z * z)  # d/dz (h_prev - n), sigma'
        grad_r = grad_n * hn * (r - r * r)  # n's pre-activation holds r * hn
        grad_x_gates[b, k] = grad_r
        grad_x_gates[b, hidden + k] = grad_z
        grad_x_gates[b, 2 * hidden + k] = grad_n
        grad_h_gates[b, k] = grad_r
        grad_h_gates[b, hidden + k] = grad_z
        grad_h_gates[b, 2 * hidden + k] = grad_n * r
        grad_h[b, k] = gh * z


def _fits(hidden_arrays, gate_arrays, gate_width):
    """All 2-D, one float dtype, non-empty, ``(B, H)`` and ``(B, gate_width * H)``."""
    arrays = hidden_arrays + gate_arrays
    if any(getattr(a, "ndim", 0) != 2 for a in arrays) or not _common.usable(*arrays):
        return False
    batch, hidden = hidden_arrays[0].shape
    return (all(tuple(a.shape) == (batch, hidden) for a in hidden_arrays)
            and all(tuple(a.shape) == (batch, width * hidden)
                    for a, width in zip(gate_arrays, gate_width)))


def lstm_cell_forward(gates, c_prev, c_out, tanh_c_out, h_out):
    r""":func:`minidl.ops.recurrent.lstm_cell_forward` on the GPU, in place: ``gates``
    ``[i, f, g, o]`` pre-activations become :math:`[\sigma, \sigma, \tanh, \sigma]` of
    themselves; :math:`c_t = f c_{t-1} + i g`, :math:`\tanh c_t` and :math:`h_t = o
    \tanh c_t` go to ``c_out``, ``tanh_c_out`` and ``h_out``.  One thread per unit."""
    if not _fits((c_prev, c_out, tanh_c_out, h_out), (gates,), (4,)):
        return reference.lstm_cell_forward(gates, c_prev, c_out, tanh_c_out, h_out)
    _common.launch(_lstm_forward, c_prev.size, gates, c_prev, c_out, tanh_c_out, h_out,
                   c_prev.size, c_prev.shape[1])


def lstm_cell_backward(gates, c_prev, tanh_c, grad_h, grad_c, grad_gates_out):
    r""":func:`minidl.ops.recurrent.lstm_cell_backward` on the GPU: with :math:`\bar c =
    \bar c_{t+1} + \bar h\, o (1 - \tanh^2 c)`, the pre-activation gradients
    :math:`[\bar c g\, \sigma_i', \bar c c_{t-1} \sigma_f', \bar c i \tanh_g', \bar h
    \tanh c\, \sigma_o']` go to ``grad_gates_out`` and ``grad_c`` becomes :math:`\bar c
    f`."""
    if not _fits((c_prev, tanh_c, grad_h, grad_c), (gates, grad_gates_out), (4, 4)):
        return reference.lstm_cell_backward(gates, c_prev, tanh_c, grad_h, grad_c,
                                            grad_gates_out)
    _common.launch(_lstm_backward, c_prev.size, gates, c_prev, tanh_c, grad_h, grad_c,
                   grad_gates_out, c_prev.size, c_prev.shape[1])


def gru_cell_forward(x_gates, h_gates, h_prev, gates_out, h_out):
    r""":func:`minidl.ops.recurrent.gru_cell_forward` on the GPU: :math:`r = \sigma(x_r +
    h_r)`, :math:`z = \sigma(x_z + h_z)`, :math:`n = \tanh(x_n + r\, hn)` and :math:`h_t =
    (1 - z) n + z h_{t-1}`; ``gates_out`` receives ``[r, z, n, hn]``."""
    if not _fits((h_prev, h_out), (x_gates, h_gates, gates_out), (3, 3, 4)):
        return reference.gru_cell_forward(x_gates, h_gates, h_prev, gates_out, h_out)
    _common.launch(_gru_forward, h_prev.size, x_gates, h_gates, h_prev, gates_out, h_out,
                   h_prev.size, h_prev.shape[1])


def gru_cell_backward(gates, h_prev, grad_h, grad_x_gates_out, grad_h_gates_out):
    r""":func:`minidl.ops.recurrent.gru_cell_backward` on the GPU: :math:`\bar n_a = \bar
    h (1 - z)(1 - n^2)`, :math:`\bar z_a = \bar h (h_{t-1} - n) z (1 - z)`, :math:`\bar r_a
    = \bar n_a hn\, r (1 - r)`; ``grad_h`` becomes :math:`\bar h z`."""
    if not _fits((h_prev, grad_h), (gates, grad_x_gates_out, grad_h_gates_out), (4, 3, 3)):
        return reference.gru_cell_backward(gates, h_prev, grad_h, grad_x_gates_out,
                                           grad_h_gates_out)
    _common.launch(_gru_backward, h_prev.size, gates, h_prev, grad_h, grad_x_gates_out,
                   grad_h_gates_out, h_prev.size, h_prev.shape[1])


for _name in __all__:
    backend.register_kernel(_name, "cuda", globals()[_name])
