r"""Recurrent layers over a whole sequence: one layer, one direction, one fused op each.

Layout
------
Every op works **time-major**: the input is ``(T, N, I)`` (time steps, batch, features),
the initial states are ``(N, H)``, and the result is ``output`` of shape ``(T, N, H)``
(the hidden state at every step) plus the final state(s) ``(N, H)``.  The modules in
:mod:`minidl.nn.rnn` stack layers and directions on top of these ops.

How the forward pass is organised
---------------------------------
1. The input projection of **all** time steps is one matrix multiply,
   :math:`X W_{ih}^\top` on ``X`` viewed as ``(T N, I)``: the only part of the work that
   does not depend on the previous step, so it is done at once, at full BLAS speed.
2. A loop over time does what must be sequential: :math:`h_{t-1} W_{hh}^\top` (one small
   GEMM) and the pointwise gate math (a registered kernel, ``lstm_cell_forward`` or
   ``gru_cell_forward``).  The loop works on raw arrays, writes into preallocated
   buffers, and creates no Tensor or Function: Python's per-step overhead is a handful
   of NumPy calls.
3. What backward needs (gate activations, cell states) stays in those buffers.

How backward works (backpropagation through time)
-------------------------------------------------
A reverse loop over the steps carries :math:`\partial L/\partial h_t` (and
:math:`\partial L/\partial c_t`), turns them into the gradient of the gates'
pre-activations with the ``*_cell_backward`` kernel, stores it in a ``(T, N, G)``
array and passes :math:`\partial L/\partial h_{t-1} = \delta_t W_{hh}` on.  The weight
gradients are then **one** matrix multiply each over all steps at once:

.. math::

    \frac{\partial L}{\partial W_{ih}} = \sum_t \delta_t^\top x_t = \Delta^\top X, \qquad
    \frac{\partial L}{\partial W_{hh}} = \sum_t \delta_t^\top h_{t-1}, \qquad
    \frac{\partial L}{\partial X} = \Delta W_{ih},

with :math:`\Delta` the stacked :math:`\delta_t`, shape ``(T N, G)``.

Variable lengths
----------------
``lengths[b]`` (``1 <= lengths[b] <= T``) is the number of valid steps of sequence
``b``.  For :math:`t \ge` ``lengths[b]`` the state of ``b`` is carried over unchanged and
its output is 0, so padding changes neither the final states nor the reverse
direction, which starts at each sequence's own last valid step (as PyTorch's packed
sequences do).  Internally the batch is sorted by decreasing length, so that the
sequences still running at step ``t`` are a prefix ``[:batch_size[t]]`` of the batch:
each step works on that prefix only (no masks), exactly like a packed sequence.

Gate order
----------
NOTE: PyTorch's, so that weights load unchanged.  LSTM rows of ``weight_ih``/
``weight_hh`` are ``[i, f, g, o]`` (input, forget, cell candidate, output); GRU rows are
``[r, z, n]`` (reset, update, new), with
:math:`n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))` -- the reset gate
multiplies the hidden part *including its bias*, as in PyTorch and cuDNN (not as in the
original GRU paper).
"""

from __future__ import annotations

import functools

import numpy as np

from minidl import backend
from minidl.autograd import Function
from minidl.backend import array_module, register_kernel

__all__ = [
    "lstm_layer",
    "gru_layer",
    "rnn_layer",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "gru_cell_forward",
    "gru_cell_backward",
]


# ============================================================================ kernels


@functools.lru_cache(maxsize=64)
def _lstm_gate_constants(hidden, dtype, xp):
    """Per-column constants of the LSTM gate math, cached per (H, dtype, xp).

    With :math:`\\sigma(a) = 1/(1 + e^{-a})` and :math:`\\tanh(a) = 2\\sigma(2a) - 1`, all
    four gates start as ``1 / (1 + exp(neg_scale * a))``: ``neg_scale`` is -1 for the
    sigmoid gates (i, f, o) and -2 for g.  ``is_tanh`` marks the g columns.
    """
    g_cols = slice(2 * hidden, 3 * hidden)
    neg_scale = -np.ones(4 * hidden)
    neg_scale[g_cols] = -2.0
    # 1 for the tanh gate: the derivative is (1 - a)(a + is_tanh), see lstm_cell_backward
    is_tanh = np.zeros(4 * hidden)
    is_tanh[g_cols] = 1.0
    return xp.asarray(neg_scale, dtype=dtype), xp.asarray(is_tanh, dtype=dtype)


@register_kernel("lstm_cell_forward", "numpy")
def lstm_cell_forward(gates, c_prev, c_out, tanh_c_out, h_out):
    r"""Pointwise LSTM step (NumPy reference), in place.

    Signature: ``lstm_cell_forward(gates, c_prev, c_out, tanh_c_out, h_out) -> None``

    Parameters
    ----------
    gates : array (B, 4H), in/out
        On entry the pre-activations :math:`a = x W_{ih}^\top + h W_{hh}^\top + b` in
        PyTorch's order ``[i, f, g, o]``; on exit the activations
        :math:`[\sigma(a_i), \sigma(a_f), \tanh(a_g), \sigma(a_o)]` (backward needs them).
    c_prev : array (B, H)
        The previous cell state :math:`c_{t-1}`.
    c_out, tanh_c_out, h_out : arrays (B, H), out
        Receive :math:`c_t = f \odot c_{t-1} + i \odot g`, :math:`\tanh(c_t)` and
        :math:`h_t = o \odot \tanh(c_t)`.

    Notes
    -----
    One ``exp`` serves all four gates: :math:`\tanh(a) = 2\sigma(2a) - 1`, and NumPy's
    ``exp`` is about twice as fast as its ``tanh``.  NOTE: near :math:`a = 0` this
    ``tanh`` has an absolute (not relative) error of about one unit in the last place
    (1e-7 in float32), far below what matters for a gate.  ``exp`` overflows to ``inf``
    for pre-activations below about -88 (float32; -709 in float64), which still gives
    the right limit (0, or -1 for g); the layer ops run their loop under
    ``errstate(over="ignore")``.
    """
    xp = array_module(gates)
    hidden = c_prev.shape[-1]
    neg_scale, _ = _lstm_gate_constants(hidden, gates.dtype, xp)
    gates *= neg_scale
    xp.exp(gates, out=gates)
    gates += 1
    xp.reciprocal(gates, out=gates)  # sigmoid(a) for i, f, o; sigmoid(2a) for g
    i = gates[:, :hidden]
    f = gates[:, hidden:2 * hidden]
    g = gates[:, 2 * hidden:3 * hidden]
    o = gates[:, 3 * hidden:]
    g *= 2
    g -= 1  # tanh(a) = 2 sigmoid(2a) - 1
    xp.multiply(f, c_prev, out=c_out)
    c_out += i * g
    xp.tanh(c_out, out=tanh_c_out)
    xp.multiply(o, tanh_c_out, out=h_out)


@register_kernel("lstm_cell_backward", "numpy")
def lstm_cell_backward(gates, c_prev, tanh_c, grad_h, grad_c, grad_gates_out):
    r"""Backward of one LSTM step (NumPy reference).

    Signature:
    ``lstm_cell_backward(gates, c_prev, tanh_c, grad_h, grad_c, grad_gates_out) -> None``

    Parameters
    ----------
    gates : array (B, 4H)
        The activations ``[i, f, g, o]`` that :func:`lstm_cell_forward` left.
    c_prev, tanh_c : arrays (B, H)
        :math:`c_{t-1}` and :math:`\tanh(c_t)`.
    grad_h : array (B, H)
        :math:`\partial L/\partial h_t` (from the output at step t and from step t+1).
    grad_c : array (B, H), in/out
        On entry :math:`\partial L/\partial c_t` coming from step t+1; on exit
        :math:`\partial L/\partial c_{t-1}`.
    grad_gates_out : array (B, 4H), out
        Receives the gradient w.r.t. the pre-activations :math:`a`.

    Notes
    -----
    With :math:`h = o \tanh(c)` and :math:`c = f c_{t-1} + i g`:

    .. math::

        \bar o = \bar h \tanh c, \qquad
        \bar c = \bar c_{t+1} + \bar h\, o\, (1 - \tanh^2 c),

    .. math::

        \bar i = \bar c\, g, \qquad \bar f = \bar c\, c_{t-1}, \qquad
        \bar g = \bar c\, i, \qquad \bar c_{t-1} = \bar c\, f,

    then through the activations: :math:`\sigma' = \sigma(1 - \sigma)` and
    :math:`\tanh' = (1 - \tanh)(1 + \tanh)`, both written as :math:`(1 - a)(a + k)`
    with :math:`k = 1` for the tanh gate and 0 for the sigmoid gates, so one expression
    covers all four column blocks.
    """
    xp = array_module(gates)
    hidden = c_prev.shape[-1]
    _, is_tanh = _lstm_gate_constants(hidden, gates.dtype, xp)
    i = gates[:, :hidden]
    f = gates[:, hidden:2 * hidden]
    g = gates[:, 2 * hidden:3 * hidden]
    o = gates[:, 3 * hidden:]
    grad_o = grad_gates_out[:, 3 * hidden:]
    xp.multiply(grad_h, tanh_c, out=grad_o)
    # through h: grad_h * o * (1 - tanh(c)^2) = o * (grad_h - grad_o * tanh(c))
    through_h = grad_o * tanh_c
    xp.subtract(grad_h, through_h, out=through_h)
    through_h *= o
    grad_c += through_h
    xp.multiply(grad_c, g, out=grad_gates_out[:, :hidden])  # d i
    xp.multiply(grad_c, c_prev, out=grad_gates_out[:, hidden:2 * hidden])  # d f
    xp.multiply(grad_c, i, out=grad_gates_out[:, 2 * hidden:3 * hidden])  # d g
    grad_c *= f
    derivative = 1 - gates
    derivative *= gates + is_tanh
    grad_gates_out *= derivative


@register_kernel("gru_cell_forward", "numpy")
def gru_cell_forward(x_gates, h_gates, h_prev, gates_out, h_out):
    r"""Pointwise GRU step (NumPy reference).

    Signature: ``gru_cell_forward(x_gates, h_gates, h_prev, gates_out, h_out) -> None``

    Parameters
    ----------
    x_gates : array (B, 3H)
        :math:`x_t W_{ih}^\top + b_{ih}`, rows ``[r, z, n]`` (PyTorch's order).
    h_gates : array (B, 3H)
        :math:`h_{t-1} W_{hh}^\top + b_{hh}`.
    h_prev : array (B, H)
    gates_out : array (B, 4H), out
        Receives ``[r, z, n, hn]``: the three activations and :math:`hn = W_{hn} h_{t-1}
        + b_{hn}` (backward needs it for :math:`\partial n / \partial r`).
    h_out : array (B, H), out
        Receives :math:`h_t = (1 - z) \odot n + z \odot h_{t-1}`.

    Notes
    -----
    .. math::

        r = \sigma(x_r + h_r), \quad z = \sigma(x_z + h_z), \quad
        n = \tanh(x_n + r \odot hn).

    NOTE: PyTorch's convention: ``r`` multiplies the hidden projection including
    :math:`b_{hn}`.
    """
    xp = array_module(x_gates)
    hidden = h_prev.shape[-1]
    rz = gates_out[:, :2 * hidden]
    n = gates_out[:, 2 * hidden:3 * hidden]
    hn = gates_out[:, 3 * hidden:]
    # sigmoid(a) = 1 / (1 + exp(-a)): NumPy's exp is much faster than its tanh
    xp.add(x_gates[:, :2 * hidden], h_gates[:, :2 * hidden], out=rz)
    xp.negative(rz, out=rz)
    xp.exp(rz, out=rz)
    rz += 1
    xp.reciprocal(rz, out=rz)
    hn[...] = h_gates[:, 2 * hidden:]
    xp.multiply(rz[:, :hidden], hn, out=n)
    n += x_gates[:, 2 * hidden:]
    xp.tanh(n, out=n)
    # h = (1 - z) n + z h_prev = n + z (h_prev - n)
    xp.subtract(h_prev, n, out=h_out)
    h_out *= rz[:, hidden:]
    h_out += n


@register_kernel("gru_cell_backward", "numpy")
def gru_cell_backward(gates, h_prev, grad_h, grad_x_gates_out, grad_h_gates_out):
    r"""Backward of one GRU step (NumPy reference).

    Signature:
    ``gru_cell_backward(gates, h_prev, grad_h, grad_x_gates_out, grad_h_gates_out) -> None``

    Parameters
    ----------
    gates : array (B, 4H)
        ``[r, z, n, hn]`` as left by :func:`gru_cell_forward`.
    h_prev : array (B, H)
    grad_h : array (B, H), in/out
        On entry :math:`\bar h = \partial L/\partial h_t`; on exit the part of
        :math:`\partial L/\partial h_{t-1}` that flows directly (not through the
        gates): :math:`\bar h \odot z`.  The caller adds :math:`\bar a_h W_{hh}`.
    grad_x_gates_out, grad_h_gates_out : arrays (B, 3H), out
        Gradients w.r.t. ``x_gates`` and ``h_gates`` (they differ only in the n block).

    Notes
    -----
    .. math::

        \bar n_a = \bar h (1 - z)(1 - n^2), \quad
        \bar z_a = \bar h (h_{t-1} - n)\, z (1 - z), \quad
        \bar r_a = \bar n_a\, hn\, r (1 - r),

    and the n block of the ``h_gates`` gradient is :math:`\bar n_a \odot r`.
    """
    hidden = h_prev.shape[-1]
    r = gates[:, :hidden]
    z = gates[:, hidden:2 * hidden]
    n = gates[:, 2 * hidden:3 * hidden]
    hn = gates[:, 3 * hidden:]
    grad_r = grad_x_gates_out[:, :hidden]
    grad_z = grad_x_gates_out[:, hidden:2 * hidden]
    grad_n = grad_x_gates_out[:, 2 * hidden:]
    # n block: d/dn of (n + z (h_prev - n)) is 1 - z; tanh' = 1 - n^2
    grad_n[...] = grad_h - grad_h * z
    grad_n *= 1 - n * n
    # z block: d/dz is h_prev - n; sigmoid' = z (1 - z)
    grad_z[...] = h_prev - n
    grad_z *= grad_h
    grad_z *= z - z * z
    # r block: n's pre-activation holds r * hn
    grad_r[...] = grad_n * hn
    grad_r *= r - r * r
    grad_h_gates_out[:, :2 * hidden] = grad_x_gates_out[:, :2 * hidden]
    grad_h_gates_out[:, 2 * hidden:] = grad_n * r
    grad_h *= z


# ============================================================================ helpers


class _Schedule:
    """Which batch rows run at which step.

    ``sizes[t]`` is how many sequences are still running at time ``t`` (a prefix of the
    length-sorted batch); ``order`` lists the times in processing order (backwards for
    the reverse direction); ``perm`` sorts the batch by decreasing length (None when it
    already is) and ``inverse`` undoes it.  ``varlen`` is False when every sequence is
    full length, which lets the loops skip all slicing.
    """

    def __init__(self, lengths, steps, batch, reverse, op):
        self.order = range(steps - 1, -1, -1) if reverse else range(steps)
        self.reverse = reverse
        self.perm = self.inverse = None
        self.lengths = None
        if lengths is None:
            self.varlen = False
            self.sizes = [batch] * steps
            return
        lengths = _as_lengths(lengths, op)
        if lengths.shape != (batch,):
            raise ValueError(
                f"{op}: lengths must have one entry per sequence, got shape "
                f"{lengths.shape} for a batch of {batch}"
            )
        if batch and (lengths.min() < 1 or lengths.max() > steps):
            raise ValueError(
                f"{op}: lengths must lie in [1, {steps}] (the input has {steps} time "
                f"steps), got min {lengths.min()} and max {lengths.max()}"
            )
        perm = np.argsort(-lengths, kind="stable")
        if (perm != np.arange(batch)).any():
            self.perm = perm
            self.inverse = np.argsort(perm)
            lengths = lengths[perm]
        self.lengths = lengths
        self.varlen = bool(batch) and int(lengths.min()) < steps
        # sizes[t] = number of sequences with length > t
        self.sizes = (lengths[None, :] > np.arange(steps)[:, None]).sum(axis=1).tolist()

    def last_steps(self):
        """The time index of each (sorted) sequence's final state."""
        if self.reverse:
            return np.zeros(len(self.lengths), dtype=np.int64)
        return self.lengths - 1


def _as_lengths(lengths, op):
    from minidl.tensor import Tensor

    if isinstance(lengths, Tensor):
        lengths = lengths.numpy()
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{op}: lengths must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1) if arr.ndim <= 1 else arr


def _previous(buffer, init, step, order, sizes, bs, xp):
    """The state entering step ``step`` for the ``bs`` running rows.

    Rows that ran at the previous step read it from ``buffer`` (the outputs or cell
    states written so far); rows that start now (only in the reverse direction of a
    variable-length batch, where shorter sequences join late) read the initial state.
    """
    if step == 0:
        return init[:bs]
    t_prev = order[step - 1]
    bs_prev = sizes[t_prev]
    if bs_prev >= bs:
        return buffer[t_prev, :bs]
    return xp.concatenate([buffer[t_prev, :bs_prev], init[bs_prev:bs]])


def _rows(array, bs, batch):
    """``array[:bs]`` without the cost of a view when every row runs."""
    return array if bs == batch else array[:bs]


def _recurrent_weight_grad(grad_pre, output, init, sched):
    r""":math:`\sum_t \delta_t^\top h_{t-1}` as one GEMM over all steps (plus a small
    correction for the initial state).

    In processing order the state entering time ``t`` is the output at the previous
    time (``t - 1`` forward, ``t + 1`` reverse) for every row that ran then, and the
    initial state for a row's first step.  Rows that did not run have zero ``grad_pre``
    and zero output, so they add nothing.
    """
    steps, batch, gate_size = grad_pre.shape
    hidden = output.shape[-1]
    if sched.reverse:
        later, earlier = grad_pre[:-1], output[1:]
    else:
        later, earlier = grad_pre[1:], output[:-1]
    grad_w = later.reshape(-1, gate_size).T @ earlier.reshape(-1, hidden)
    if sched.varlen and sched.reverse:
        # each sequence's first (reverse) step is its own last valid time
        first = grad_pre[sched.lengths - 1, np.arange(batch)]
    else:
        first = grad_pre[sched.order[0]]
    grad_w += first.T @ init
    return grad_w


def _check_layer_args(op, x, states, weight_ih, weight_hh, biases, gate_size):
    """Validate shapes and dtypes; errors name the op and show the shapes."""
    from minidl.tensor import Tensor

    for name, t in (("input", x), ("weight_ih", weight_ih), ("weight_hh", weight_hh)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {x.dtype}")
    if x.ndim != 3:
        raise ValueError(
            f"{op}: input must be 3-D (time, batch, features), got shape {tuple(x.shape)}"
        )
    steps, batch, features = x.shape
    if steps == 0:
        raise ValueError(f"{op}: input has no time steps (shape {tuple(x.shape)})")
    hidden = weight_hh.shape[-1] if weight_hh.ndim == 2 else -1
    if weight_ih.shape != (gate_size * hidden, features):
        raise ValueError(
            f"{op}: weight_ih must have shape ({gate_size * hidden}, {features}) for input "
            f"{tuple(x.shape)} and hidden size {hidden}, got {tuple(weight_ih.shape)}"
        )
    if weight_hh.shape != (gate_size * hidden, hidden):
        raise ValueError(
            f"{op}: weight_hh must have shape ({gate_size * hidden}, {hidden}), got "
            f"{tuple(weight_hh.shape)}"
        )
    for name, t in list(states.items()) + list(biases.items()):
        if t is None:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        expected = (batch, hidden) if name in ("h0", "c0") else (gate_size * hidden,)
        if tuple(t.shape) != expected:
            raise ValueError(
                f"{op}: {name} must have shape {expected}, got {tuple(t.shape)} "
                f"(input {tuple(x.shape)}, weight_hh {tuple(weight_hh.shape)})"
            )
    for name, t in ([("weight_ih", weight_ih), ("weight_hh", weight_hh)]
                    + list(states.items()) + list(biases.items())):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{op}: {name} has dtype {t.dtype} but the input has {x.dtype}; cast the "
                "input (x.float() / x.double()) or the module (.float() / .double())"
            )
    if (biases["bias_ih"] is None) != (biases["bias_hh"] is None):
        raise ValueError(f"{op}: give both bias_ih and bias_hh, or neither")


def _check_reverse(op, reverse):
    if not isinstance(reverse, (bool, np.bool_)):
        raise TypeError(f"{op}: reverse must be a bool, got {type(reverse).__name__}")
    return bool(reverse)


# ============================================================================ LSTM


class LSTMLayer(Function):
    r"""One LSTM layer in one direction over a whole (time-major) sequence.

    Inputs ``(x, h0, c0, weight_ih, weight_hh[, bias_ih, bias_hh])``; outputs
    ``(output, h_n, c_n)``.  Parameters: ``lengths`` (sorted or not, or None) and
    ``reverse``.
    """

    def forward(self, x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        xp = array_module(x)
        steps, batch, features = x.shape
        hidden = weight_hh.shape[1]
        sched = _Schedule(self.lengths, steps, batch, self.reverse, "lstm_layer")
        if sched.perm is not None:
            x, h0, c0 = x[:, sched.perm], h0[sched.perm], c0[sched.perm]
        device = backend.device_of(x)
        cell = backend.get_kernel("lstm_cell_forward", device)

        # 1. the input projection of every step at once; both biases are folded in here
        x_flat = x.reshape(steps * batch, features)
        gates = (x_flat @ weight_ih.T).reshape(steps, batch, 4 * hidden)
        if bias_ih is not None:
            gates += bias_ih + bias_hh
        # 2. the recurrence: outputs of padded steps must read 0, so zero those buffers
        alloc = xp.zeros if sched.varlen else xp.empty
        output = alloc((steps, batch, hidden), dtype=x.dtype)
        cells = alloc((steps, batch, hidden), dtype=x.dtype)
        tanh_cells = alloc((steps, batch, hidden), dtype=x.dtype)
        recurrent = xp.empty((batch, 4 * hidden), dtype=x.dtype)
        weight_hh_t = weight_hh.T
        order, sizes = sched.order, sched.sizes
        with np.errstate(over="ignore"):
            for step, t in enumerate(order):
                bs = sizes[t]
                h_prev = _previous(output, h0, step, order, sizes, bs, xp)
                c_prev = _previous(cells, c0, step, order, sizes, bs, xp)
                g = _rows(gates[t], bs, batch)
                rec = _rows(recurrent, bs, batch)
                xp.matmul(h_prev, weight_hh_t, out=rec)
                g += rec
                cell(g, c_prev, _rows(cells[t], bs, batch), _rows(tanh_cells[t], bs, batch),
                     _rows(output[t], bs, batch))
        h_n, c_n = _final_states(sched, output, cells, batch)

        self.sched = sched
        self.gates, self.cells, self.tanh_cells = gates, cells, tanh_cells
        self.output, self.h0, self.c0 = output, h0, c0
        self.x_flat = x_flat
        self.weight_ih, self.weight_hh = weight_ih, weight_hh
        self.has_bias = bias_ih is not None
        if sched.perm is not None:
            inv = sched.inverse
            return output[:, inv], h_n[inv], c_n[inv]
        return output, h_n, c_n

    def backward(self, grad_output, grad_h_n, grad_c_n):
        sched = self.sched
        xp = array_module(grad_output)
        steps, batch, hidden = self.output.shape
        if sched.perm is not None:
            perm = sched.perm
            grad_output, grad_h_n, grad_c_n = grad_output[:, perm], grad_h_n[perm], grad_c_n[perm]
        cell_backward = backend.get_kernel("lstm_cell_backward", backend.device_of(grad_output))
        gates, cells, tanh_cells, c0 = self.gates, self.cells, self.tanh_cells, self.c0
        weight_hh = self.weight_hh

        # rows that do not run at a step must keep a zero gradient there
        grad_pre = (xp.zeros if sched.varlen else xp.empty)(
            (steps, batch, 4 * hidden), dtype=grad_output.dtype
        )
        grad_h = xp.array(grad_h_n, dtype=grad_output.dtype, copy=True)
        grad_c = xp.array(grad_c_n, dtype=grad_output.dtype, copy=True)
        order, sizes = sched.order, sched.sizes
        for step in range(steps - 1, -1, -1):
            t = order[step]
            bs = sizes[t]
            gh = _rows(grad_h, bs, batch)
            gh += _rows(grad_output[t], bs, batch)
            c_prev = _previous(cells, c0, step, order, sizes, bs, xp)
            gp = _rows(grad_pre[t], bs, batch)
            cell_backward(_rows(gates[t], bs, batch), c_prev, _rows(tanh_cells[t], bs, batch),
                          gh, _rows(grad_c, bs, batch), gp)
            xp.matmul(gp, weight_hh, out=gh)

        needs = self.needs_input_grad
        flat = grad_pre.reshape(steps * batch, 4 * hidden)
        grad_x = grad_w_ih = grad_w_hh = grad_b = None
        if needs[0]:
            grad_x = (flat @ self.weight_ih).reshape(steps, batch, -1)
        if needs[3]:
            grad_w_ih = flat.T @ self.x_flat
        if needs[4]:
            grad_w_hh = _recurrent_weight_grad(grad_pre, self.output, self.h0, sched)
        if self.has_bias and (needs[5] or needs[6]):
            grad_b = flat.sum(axis=0)
        grad_h0, grad_c0 = grad_h, grad_c
        if sched.perm is not None:
            inv = sched.inverse
            grad_h0, grad_c0 = grad_h0[inv], grad_c0[inv]
            if grad_x is not None:
                grad_x = grad_x[:, inv]
        grads = (grad_x, grad_h0, grad_c0, grad_w_ih, grad_w_hh)
        if self.has_bias:
            grads += (grad_b, grad_b)
        return grads


def _final_states(sched, output, cells, batch):
    """Each sequence's state after its last valid step (copies, not views)."""
    if not sched.varlen:
        t_last = sched.order[-1]
        h_n = output[t_last].copy()
        return h_n, (cells[t_last].copy() if cells is not None else None)
    rows = np.arange(batch)
    last = sched.last_steps()
    return output[last, rows], (cells[last, rows] if cells is not None else None)


def _bias_args(bias_ih, bias_hh):
    if bias_ih is None and bias_hh is None:
        return ()
    return (bias_ih, bias_hh)


def lstm_layer(input, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None,
               lengths=None, reverse=False):
    r"""One LSTM layer, one direction, over a whole sequence (time-major).

    .. math::

        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    NOTE: the rows of the weights are in PyTorch's gate order ``[i, f, g, o]``.

    Parameters
    ----------
    input : Tensor, shape ``(T, N, I)``
    h0, c0 : Tensor, shape ``(N, H)``
        Initial hidden and cell states.
    weight_ih : Tensor, shape ``(4H, I)``
    weight_hh : Tensor, shape ``(4H, H)``
    bias_ih, bias_hh : Tensor, shape ``(4H,)``, optional
        Both or neither.
    lengths : sequence of int, optional
        Valid steps per sequence, each in ``[1, T]``; any order.  Steps at and after
        ``lengths[b]`` leave sequence ``b``'s state unchanged and output 0.
    reverse : bool, default False
        Run from the last valid step of each sequence back to step 0.

    Returns
    -------
    output : Tensor, shape ``(T, N, H)``
        :math:`h_t` at every step (0 at padded steps).
    h_n, c_n : Tensor, shape ``(N, H)``
        The states after each sequence's last processed step.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.recurrent import lstm_layer
    >>> x = minidl.randn(5, 2, 3); h0 = c0 = minidl.zeros(2, 4)
    >>> w_ih, w_hh = minidl.randn(16, 3), minidl.randn(16, 4)
    >>> out, h_n, c_n = lstm_layer(x, h0, c0, w_ih, w_hh, lengths=[5, 3])
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 4))
    >>> float(out[3:, 1].abs().sum())  # sequence 1 has 3 valid steps
    0.0
    """
    _check_layer_args("lstm_layer", input, {"h0": h0, "c0": c0}, weight_ih, weight_hh,
                      {"bias_ih": bias_ih, "bias_hh": bias_hh}, 4)
    reverse = _check_reverse("lstm_layer", reverse)
    args = (input, h0, c0, weight_ih, weight_hh) + _bias_args(bias_ih, bias_hh)
    return LSTMLayer.apply(*args, lengths=lengths, reverse=reverse)


# ============================================================================ GRU


class GRULayer(Function):
    r"""One GRU layer in one direction; inputs ``(x, h0, weight_ih, weight_hh[, bias_ih,
    bias_hh])``, outputs ``(output, h_n)``."""

    def forward(self, x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        xp = array_module(x)
        steps, batch, features = x.shape
        hidden = weight_hh.shape[1]
        sched = _Schedule(self.lengths, steps, batch, self.reverse, "gru_layer")
        if sched.perm is not None:
            x, h0 = x[:, sched.perm], h0[sched.perm]
        cell = backend.get_kernel("gru_cell_forward", backend.device_of(x))

        x_flat = x.reshape(steps * batch, features)
        x_gates = (x_flat @ weight_ih.T).reshape(steps, batch, 3 * hidden)
        if bias_ih is not None:
            x_gates += bias_ih
        alloc = xp.zeros if sched.varlen else xp.empty
        output = alloc((steps, batch, hidden), dtype=x.dtype)
        gates = alloc((steps, batch, 4 * hidden), dtype=x.dtype)  # [r, z, n, hn] per step
        h_gates = xp.empty((batch, 3 * hidden), dtype=x.dtype)
        weight_hh_t = weight_hh.T
        order, sizes = sched.order, sched.sizes
        with np.errstate(over="ignore"):
            for step, t in enumerate(order):
                bs = sizes[t]
                h_prev = _previous(output, h0, step, order, sizes, bs, xp)
                hg = _rows(h_gates, bs, batch)
                xp.matmul(h_prev, weight_hh_t, out=hg)
                if bias_hh is not None:
                    hg += bias_hh
                cell(_rows(x_gates[t], bs, batch), hg, h_prev, _rows(gates[t], bs, batch),
                     _rows(output[t], bs, batch))
        h_n, _ = _final_states(sched, output, None, batch)

        self.sched = sched
        self.gates, self.output, self.h0 = gates, output, h0
        self.x_flat = x_flat
        self.weight_ih, self.weight_hh = weight_ih, weight_hh
        self.has_bias = bias_ih is not None
        if sched.perm is not None:
            return output[:, sched.inverse], h_n[sched.inverse]
        return output, h_n

    def backward(self, grad_output, grad_h_n):
        sched = self.sched
        xp = array_module(grad_output)
        steps, batch, hidden = self.output.shape
        if sched.perm is not None:
            grad_output, grad_h_n = grad_output[:, sched.perm], grad_h_n[sched.perm]
        cell_backward = backend.get_kernel("gru_cell_backward", backend.device_of(grad_output))
        gates, output, h0, weight_hh = self.gates, self.output, self.h0, self.weight_hh
        alloc = xp.zeros if sched.varlen else xp.empty
        grad_x_gates = alloc((steps, batch, 3 * hidden), dtype=grad_output.dtype)
        grad_h_gates = alloc((steps, batch, 3 * hidden), dtype=grad_output.dtype)
        grad_h = xp.array(grad_h_n, dtype=grad_output.dtype, copy=True)
        through_gates = xp.empty((batch, hidden), dtype=grad_output.dtype)
        order, sizes = sched.order, sched.sizes
        for step in range(steps - 1, -1, -1):
            t = order[step]
            bs = sizes[t]
            gh = _rows(grad_h, bs, batch)
            gh += _rows(grad_output[t], bs, batch)
            h_prev = _previous(output, h0, step, order, sizes, bs, xp)
            ghg = _rows(grad_h_gates[t], bs, batch)
            cell_backward(_rows(gates[t], bs, batch), h_prev, gh,
                          _rows(grad_x_gates[t], bs, batch), ghg)
            tg = _rows(through_gates, bs, batch)
            xp.matmul(ghg, weight_hh, out=tg)
            gh += tg

        needs = self.needs_input_grad
        flat_x = grad_x_gates.reshape(steps * batch, 3 * hidden)
        grad_x = grad_w_ih = grad_w_hh = grad_b_ih = grad_b_hh = None
        if needs[0]:
            grad_x = (flat_x @ self.weight_ih).reshape(steps, batch, -1)
        if needs[2]:
            grad_w_ih = flat_x.T @ self.x_flat
        if needs[3]:
            grad_w_hh = _recurrent_weight_grad(grad_h_gates, output, h0, sched)
        if self.has_bias:
            if needs[4]:
                grad_b_ih = flat_x.sum(axis=0)
            if needs[5]:
                grad_b_hh = grad_h_gates.reshape(steps * batch, 3 * hidden).sum(axis=0)
        grad_h0 = grad_h
        if sched.perm is not None:
            grad_h0 = grad_h0[sched.inverse]
            if grad_x is not None:
                grad_x = grad_x[:, sched.inverse]
        grads = (grad_x, grad_h0, grad_w_ih, grad_w_hh)
        if self.has_bias:
            grads += (grad_b_ih, grad_b_hh)
        return grads


def gru_layer(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, lengths=None,
              reverse=False):
    r"""One GRU layer, one direction, over a whole sequence (time-major).

    .. math::

        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    NOTE: PyTorch's gate order ``[r, z, n]`` and its placement of :math:`b_{hn}` inside
    the reset product.

    Parameters
    ----------
    input : Tensor, shape ``(T, N, I)``
    h0 : Tensor, shape ``(N, H)``
    weight_ih : Tensor, shape ``(3H, I)``
    weight_hh : Tensor, shape ``(3H, H)``
    bias_ih, bias_hh : Tensor, shape ``(3H,)``, optional
    lengths : sequence of int, optional
        As in :func:`lstm_layer`.
    reverse : bool, default False

    Returns
    -------
    output : Tensor, shape ``(T, N, H)``
    h_n : Tensor, shape ``(N, H)``

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.recurrent import gru_layer
    >>> out, h_n = gru_layer(minidl.randn(4, 2, 3), minidl.zeros(2, 5),
    ...                      minidl.randn(15, 3), minidl.randn(15, 5), reverse=True)
    >>> bool((out[0] == h_n).all())  # the reverse direction ends at step 0
    True
    """
    _check_layer_args("gru_layer", input, {"h0": h0}, weight_ih, weight_hh,
                      {"bias_ih": bias_ih, "bias_hh": bias_hh}, 3)
    reverse = _check_reverse("gru_layer", reverse)
    args = (input, h0, weight_ih, weight_hh) + _bias_args(bias_ih, bias_hh)
    return GRULayer.apply(*args, lengths=lengths, reverse=reverse)


# ============================================================================ Elman RNN


class RNNLayer(Function):
    r"""One Elman RNN layer (tanh or relu) in one direction; inputs ``(x, h0, weight_ih,
    weight_hh[, bias_ih, bias_hh])``, outputs ``(output, h_n)``."""

    def forward(self, x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
        xp = array_module(x)
        steps, batch, features = x.shape
        hidden = weight_hh.shape[1]
        sched = _Schedule(self.lengths, steps, batch, self.reverse, "rnn_layer")
        if sched.perm is not None:
            x, h0 = x[:, sched.perm], h0[sched.perm]
        relu = self.nonlinearity == "relu"

        x_flat = x.reshape(steps * batch, features)
        pre = (x_flat @ weight_ih.T).reshape(steps, batch, hidden)
        if bias_ih is not None:
            pre += bias_ih + bias_hh
        output = (xp.zeros if sched.varlen else xp.empty)((steps, batch, hidden), dtype=x.dtype)
        recurrent = xp.empty((batch, hidden), dtype=x.dtype)
        weight_hh_t = weight_hh.T
        order, sizes = sched.order, sched.sizes
        for step, t in enumerate(order):
            bs = sizes[t]
            h_prev = _previous(output, h0, step, order, sizes, bs, xp)
            p = _rows(pre[t], bs, batch)
            rec = _rows(recurrent, bs, batch)
            xp.matmul(h_prev, weight_hh_t, out=rec)
            p += rec
            if relu:
                xp.maximum(p, 0, out=_rows(output[t], bs, batch))
            else:
                xp.tanh(p, out=_rows(output[t], bs, batch))
        h_n, _ = _final_states(sched, output, None, batch)

        self.sched, self.output, self.h0 = sched, output, h0
        self.x_flat = x_flat
        self.weight_ih, self.weight_hh = weight_ih, weight_hh
        self.has_bias = bias_ih is not None
        if sched.perm is not None:
            return output[:, sched.inverse], h_n[sched.inverse]
        return output, h_n

    def backward(self, grad_output, grad_h_n):
        sched = self.sched
        xp = array_module(grad_output)
        steps, batch, hidden = self.output.shape
        if sched.perm is not None:
            grad_output, grad_h_n = grad_output[:, sched.perm], grad_h_n[sched.perm]
        output, weight_hh = self.output, self.weight_hh
        # the activation's derivative from its output: tanh' = 1 - h^2, relu' = [h > 0]
        # NOTE: relu'(0) = 0, as in PyTorch
        if self.nonlinearity == "relu":
            derivative = (output > 0).astype(output.dtype)
        else:
            derivative = 1 - output * output
        grad_pre = (xp.zeros if sched.varlen else xp.empty)(
            (steps, batch, hidden), dtype=grad_output.dtype
        )
        grad_h = xp.array(grad_h_n, dtype=grad_output.dtype, copy=True)
        order, sizes = sched.order, sched.sizes
        for step in range(steps - 1, -1, -1):
            t = order[step]
            bs = sizes[t]
            gh = _rows(grad_h, bs, batch)
            gh += _rows(grad_output[t], bs, batch)
            gp = _rows(grad_pre[t], bs, batch)
            xp.multiply(gh, _rows(derivative[t], bs, batch), out=gp)
            xp.matmul(gp, weight_hh, out=gh)

        needs = self.needs_input_grad
        flat = grad_pre.reshape(steps * batch, hidden)
        grad_x = grad_w_ih = grad_w_hh = grad_b = None
        if needs[0]:
            grad_x = (flat @ self.weight_ih).reshape(steps, batch, -1)
        if needs[2]:
            grad_w_ih = flat.T @ self.x_flat
        if needs[3]:
            grad_w_hh = _recurrent_weight_grad(grad_pre, output, self.h0, sched)
        if self.has_bias and (needs[4] or needs[5]):
            grad_b = flat.sum(axis=0)
        grad_h0 = grad_h
        if sched.perm is not None:
            grad_h0 = grad_h0[sched.inverse]
            if grad_x is not None:
                grad_x = grad_x[:, sched.inverse]
        grads = (grad_x, grad_h0, grad_w_ih, grad_w_hh)
        if self.has_bias:
            grads += (grad_b, grad_b)
        return grads


def rnn_layer(input, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, lengths=None,
              reverse=False, nonlinearity="tanh"):
    r"""One Elman RNN layer, one direction, over a whole sequence (time-major).

    .. math::

        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}), \qquad
        \phi \in \{\tanh, \mathrm{relu}\}.

    Parameters
    ----------
    input : Tensor, shape ``(T, N, I)``
    h0 : Tensor, shape ``(N, H)``
    weight_ih : Tensor, shape ``(H, I)``
    weight_hh : Tensor, shape ``(H, H)``
    bias_ih, bias_hh : Tensor, shape ``(H,)``, optional
    lengths : sequence of int, optional
        As in :func:`lstm_layer`.
    reverse : bool, default False
    nonlinearity : {"tanh", "relu"}

    Returns
    -------
    output : Tensor, shape ``(T, N, H)``
    h_n : Tensor, shape ``(N, H)``

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.recurrent import rnn_layer
    >>> out, h_n = rnn_layer(minidl.randn(4, 2, 3), minidl.zeros(2, 5), minidl.randn(5, 3),
    ...                      minidl.randn(5, 5), nonlinearity="relu")
    >>> bool((out >= 0).all())
    True
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(
            f"rnn_layer: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
        )
    _check_layer_args("rnn_layer", input, {"h0": h0}, weight_ih, weight_hh,
                      {"bias_ih": bias_ih, "bias_hh": bias_hh}, 1)
    reverse = _check_reverse("rnn_layer", reverse)
    args = (input, h0, weight_ih, weight_hh) + _bias_args(bias_ih, bias_hh)
    return RNNLayer.apply(*args, lengths=lengths, reverse=reverse, nonlinearity=nonlinearity)

