r"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and the single-step cells.

Constructor arguments, parameter names and shapes, initialisation, input and output
layouts are PyTorch's, so a ``state_dict`` moves between the two unchanged:

- for layer ``k`` and each direction (suffix ``_reverse`` for the backward one):
  ``weight_ih_l{k}`` ``(G*H, I_k)``, ``weight_hh_l{k}`` ``(G*H, H)``, ``bias_ih_l{k}``,
  ``bias_hh_l{k}`` ``(G*H,)``, with ``G`` = 4 (LSTM), 3 (GRU), 1 (RNN), ``I_0`` =
  ``input_size`` and ``I_k = H * num_directions`` above;
- every parameter starts from :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`;
- input ``(T, N, I)`` (``(N, T, I)`` with ``batch_first``), or unbatched ``(T, I)``, or
  a :class:`~minidl.nn.utils.rnn.PackedSequence`;
- output ``(T, N, D*H)`` (the last layer's hidden state at every step, both directions
  concatenated) and ``h_n`` ``(num_layers*D, N, H)`` (layer-major: layer 0 forward,
  layer 0 reverse, layer 1 forward, ...); ``c_n`` likewise for the LSTM.

Each layer and direction is one fused op from :mod:`minidl.ops.recurrent` (the input
projection of all steps as one matrix multiply, a loop over time for the recurrence, a
hand-written backward through time).  With ``dropout > 0`` in training mode, dropout is
applied to the outputs of every layer but the last.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from minidl.autograd import Function
from minidl.backend import array_module
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.nn.utils.rnn import PackedSequence, _packed_to_padded, _padded_to_packed_data
from minidl.ops.dropout import dropout
from minidl.ops.recurrent import gru_layer, lstm_layer, rnn_layer
from minidl.ops.shape import stack
from minidl.tensor import Tensor

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _new_parameter(shape, dtype):
    """An uninitialised Parameter; ``reset_parameters`` fills it."""
    if dtype is None:
        from minidl.tensor import get_default_dtype

        dtype = get_default_dtype()
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"recurrent layer parameters must be floating point, got dtype={dtype}")
    return Parameter(np.empty(shape, dtype=dtype))


def _check_size(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} should be of type int, got: {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{layer}: {name} must be greater than zero, got {value}")
    return int(value)


def _shape(t):
    return tuple(t.shape)


def _check_float_input(layer, input, weight):
    if not isinstance(input, Tensor):
        raise TypeError(f"{layer}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(
            f"{layer}: input must be floating point, got {input.dtype} (input shape "
            f"{_shape(input)}); convert it with .float()"
        )
    if input.dtype != weight.dtype:
        raise TypeError(
            f"{layer}: input dtype {input.dtype} does not match the parameters' dtype "
            f"{weight.dtype} (input shape {_shape(input)}); cast the input (x.float() / "
            "x.double()) or the module (.float() / .double())"
        )


class RNNBase(Module):
    r"""What RNN, LSTM and GRU share: parameters, argument checks, the layer loop.

    ``mode`` is ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``.  Use the
    subclasses.
    """

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, proj_size=0,
                 device=None, dtype=None):
        super().__init__()
        name = "LSTM" if mode == "LSTM" else "GRU" if mode == "GRU" else "RNN"
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if (isinstance(dropout, bool) or not isinstance(dropout, numbers.Real)
                or not 0 <= dropout <= 1):
            raise ValueError(
                f"{name}: dropout should be a number in range [0, 1] representing the "
                f"probability of an element being zeroed, got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        for flag_name, flag in (("bias", bias), ("batch_first", batch_first),
                                ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(
                    f"{name}: {flag_name} should be of type bool, got: {type(flag).__name__}"
                )
        input_size = _check_size(name, "input_size", input_size)
        hidden_size = _check_size(name, "hidden_size", hidden_size)
        num_layers = _check_size(name, "num_layers", num_layers)
        if proj_size != 0:
            if mode != "LSTM":
                raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
            raise NotImplementedError(
                f"LSTM: proj_size={proj_size} is not supported by minidl (only proj_size=0)"
            )

        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0

        gate_size = _GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            layer_input_size = input_size if layer == 0 else hidden_size * num_directions
            for direction in range(num_directions):
                suffix = "_reverse" if direction == 1 else ""
                shapes = [((gate_size, layer_input_size), f"weight_ih_l{layer}{suffix}"),
                          ((gate_size, hidden_size), f"weight_hh_l{layer}{suffix}")]
                if bias:
                    shapes += [((gate_size,), f"bias_ih_l{layer}{suffix}"),
                               ((gate_size,), f"bias_hh_l{layer}{suffix}")]
                for shape, param_name in shapes:
                    setattr(self, param_name, _new_parameter(shape, dtype))
                names = [param_name for _, param_name in shapes]
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        r"""Draw every weight and bias from :math:`U(-1/\sqrt{H}, 1/\sqrt{H})` (PyTorch's
        default, in parameter order)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def flatten_parameters(self):
        """No-op, for compatibility: PyTorch compacts weights for cuDNN here."""

    @property
    def all_weights(self):
        """The parameters grouped per layer and direction, as in PyTorch."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self):
        return [getattr(self, name) for name in self._flat_weights_names]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ------------------------------------------------------------------ forward

    @property
    def _layer_name(self):
        return type(self).__name__

    def _prepare_input(self, input):
        """``(x (T, N, I) time-major, lengths or None, batched, packed input or None)``."""
        name = self._layer_name
        weight = self.weight_ih_l0
        if isinstance(input, PackedSequence):
            _check_float_input(name, input.data, weight)
            if input.data.ndim != 2:
                raise ValueError(
                    f"{name}: packed data must be 2-D (steps, features), got shape "
                    f"{_shape(input.data)}"
                )
            self._check_input_size(input.data, input.data)
            x, lengths = _packed_to_padded(input)
            return x, lengths, True, input
        _check_float_input(name, input, weight)
        if input.ndim not in (2, 3):
            raise ValueError(
                f"{name}: Expected input to be 2D or 3D, got {input.ndim}D instead "
                f"(input shape {_shape(input)})"
            )
        self._check_input_size(input, input)
        batched = input.ndim == 3
        if input.shape[1 if batched and self.batch_first else 0] == 0:
            raise RuntimeError(
                f"{name}: Expected sequence length to be larger than 0 (input shape "
                f"{_shape(input)}, batch_first={self.batch_first})"
            )
        if not batched:
            x = input.unsqueeze(1)
        elif self.batch_first:
            x = input.transpose(0, 1)
        else:
            x = input
        return x, None, batched, None

    def _check_input_size(self, x, shown):
        if x.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{self._layer_name}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {x.shape[-1]} (input shape {_shape(shown)})"
            )

    def _prepare_state(self, state, which, batched, batch, packed):
        """Check one initial state (h0 or c0) and make it ``(L*D, N, H)``, sorted like a
        packed batch."""
        name = self._layer_name
        num_directions = 2 if self.bidirectional else 1
        expected = (self.num_layers * num_directions, batch, self.hidden_size)
        label = "hidden" if which is None else f"hidden[{which}]"
        if not isinstance(state, Tensor):
            raise TypeError(f"{name}: {label} must be a Tensor, got {type(state).__name__}")
        if batched and state.ndim != 3:
            raise RuntimeError(
                f"{name}: For batched 3-D input, hx should also be 3-D but got "
                f"{state.ndim}-D tensor ({label} shape {_shape(state)})"
            )
        if not batched:
            if state.ndim != 2:
                raise RuntimeError(
                    f"{name}: For unbatched 2-D input, hx should also be 2-D but got "
                    f"{state.ndim}-D tensor ({label} shape {_shape(state)})"
                )
            state = state.unsqueeze(1)
        if _shape(state) != expected:
            raise RuntimeError(
                f"{name}: Expected {label} size {expected}, got {list(state.shape)}"
            )
        if state.dtype != self.weight_ih_l0.dtype:
            raise TypeError(
                f"{name}: {label} has dtype {state.dtype}, the parameters {self.weight_ih_l0.dtype}"
            )
        if packed is not None and packed.sorted_indices is not None:
            # the caller's state follows the caller's batch order; the layers run sorted
            state = state[:, packed.sorted_indices.numpy()]
        return state

    def _run_layers(self, x, lengths, h0, c0, batch_first_output=False):
        """The layer loop on time-major ``x``; returns ``(output, h_n, c_n or None)``.

        The output is time-major, or ``(N, T, D*H)`` and contiguous when
        ``batch_first_output`` (so that the layer after it reads memory in order).
        """
        xp = array_module(x.data)
        batch = x.shape[1]
        num_directions = 2 if self.bidirectional else 1
        zeros = None
        if h0 is None or (self.mode == "LSTM" and c0 is None):
            zeros = Tensor._wrap(xp.zeros((batch, self.hidden_size), dtype=x.dtype))
        layer_input = x
        h_finals, c_finals = [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(num_directions):
                k = layer * num_directions + direction
                params = [getattr(self, name) for name in self._all_weights[k]]
                h_init = zeros if h0 is None else h0[k]
                reverse = direction == 1
                if self.mode == "LSTM":
                    c_init = zeros if c0 is None else c0[k]
                    out, h_n, c_n = lstm_layer(layer_input, h_init, c_init, *params,
                                               lengths=lengths, reverse=reverse)
                    c_finals.append(c_n)
                elif self.mode == "GRU":
                    out, h_n = gru_layer(layer_input, h_init, *params, lengths=lengths,
                                         reverse=reverse)
                else:
                    nonlinearity = "tanh" if self.mode == "RNN_TANH" else "relu"
                    out, h_n = rnn_layer(layer_input, h_init, *params, lengths=lengths,
                                         reverse=reverse, nonlinearity=nonlinearity)
                outputs.append(out)
                h_finals.append(h_n)
            last = layer == self.num_layers - 1
            if num_directions == 1:
                layer_output = outputs[0]
                if last and batch_first_output:
                    layer_output = layer_output.transpose(0, 1)
            else:
                layer_output = _MergeDirections.apply(
                    *outputs, batch_first=last and batch_first_output
                )
            if self.dropout > 0 and self.training and not last:
                layer_output = dropout(layer_output, p=self.dropout, training=True)
            layer_input = layer_output
        h_n = stack(h_finals, dim=0)
        c_n = stack(c_finals, dim=0) if c_finals else None
        return layer_input, h_n, c_n

    def _forward(self, input, hx):
        """Shared forward: returns ``(output, h_n, c_n)`` laid out as the input."""
        x, lengths, batched, packed = self._prepare_input(input)
        batch = x.shape[1]
        h0 = c0 = None
        if hx is not None:
            if self.mode == "LSTM":
                if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                    raise TypeError(
                        f"{self._layer_name}: hx must be a tuple (h_0, c_0), got "
                        f"{type(hx).__name__}"
                    )
                h0 = self._prepare_state(hx[0], 0, batched, batch, packed)
                c0 = self._prepare_state(hx[1], 1, batched, batch, packed)
            else:
                h0 = self._prepare_state(hx, None, batched, batch, packed)
        output, h_n, c_n = self._run_layers(
            x, lengths, h0, c0, batch_first_output=batched and packed is None and self.batch_first
        )

        if packed is not None:
            data = _padded_to_packed_data(output, packed.batch_sizes)
            output = PackedSequence(data, packed.batch_sizes, packed.sorted_indices,
                                    packed.unsorted_indices)
            if packed.unsorted_indices is not None:
                order = packed.unsorted_indices.numpy()
                h_n = h_n[:, order]
                c_n = c_n[:, order] if c_n is not None else None
        elif not batched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return output, h_n, c_n


class _MergeDirections(Function):
    """The directions' outputs ``(T, N, H)`` side by side along the last axis, as one
    contiguous array ``(T, N, D*H)``, or ``(N, T, D*H)`` with ``batch_first`` (the
    concatenation and the transpose in one copy)."""

    def forward(self, *outputs):
        xp = array_module(*outputs)
        steps, batch, hidden = outputs[0].shape
        if not self.batch_first:
            return xp.concatenate(outputs, axis=2)
        merged = xp.empty((batch, steps, hidden * len(outputs)), dtype=outputs[0].dtype)
        for d, out in enumerate(outputs):
            merged[:, :, d * hidden:(d + 1) * hidden] = out.transpose(1, 0, 2)
        return merged

    def backward(self, grad):
        hidden = grad.shape[-1] // len(self.needs_input_grad)
        if self.batch_first:
            grad = grad.transpose(1, 0, 2)
        return tuple(grad[..., d * hidden:(d + 1) * hidden]
                     for d in range(len(self.needs_input_grad)))



class RNN(RNNBase):
    r"""Multi-layer Elman RNN: :math:`h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} +
    b_{hh})`, :math:`\phi` = tanh or relu.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    nonlinearity : {"tanh", "relu"}, default "tanh"
    bias : bool, default True
    batch_first : bool, default False
        Input and output as ``(N, T, *)`` instead of ``(T, N, *)`` (not the states).
    dropout : float, default 0
        Dropout on the outputs of each layer except the last, in training mode.
    bidirectional : bool, default False
    device, dtype : optional

    Forward
    -------
    ``rnn(input, h_0=None) -> (output, h_n)``: input ``(T, N, I)``, ``(N, T, I)``,
    ``(T, I)`` or a PackedSequence; ``h_0`` ``(num_layers*D, N, H)`` (zeros if None).

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.rnn import RNN
    >>> rnn = RNN(10, 20, 2)
    >>> output, h_n = rnn(minidl.randn(5, 3, 10))
    >>> output.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        # NOTE: PyTorch's positional order: (input_size, hidden_size, num_layers,
        # nonlinearity, bias, batch_first, dropout, bidirectional)
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(
                f"RNN: Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(mode, *args, **kwargs)

    def forward(self, input, hx=None):
        output, h_n, _ = self._forward(input, hx)
        return output, h_n


class LSTM(RNNBase):
    r"""Multi-layer long short-term memory network.

    .. math::

        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t &= \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t &= \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t &= \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)
        \end{aligned}

    NOTE: PyTorch's gate order: the rows of ``weight_ih_l{k}`` are ``[W_ii; W_if; W_ig;
    W_io]``.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    bias : bool, default True
    batch_first : bool, default False
    dropout : float, default 0
    bidirectional : bool, default False
    proj_size : int, default 0
        Only 0 is supported (a positive value raises NotImplementedError).
    device, dtype : optional

    Forward
    -------
    ``lstm(input, (h_0, c_0)=None) -> (output, (h_n, c_n))``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.rnn import LSTM
    >>> lstm = LSTM(21, 16, bidirectional=True, batch_first=True)
    >>> output, (h_n, c_n) = lstm(minidl.randn(4, 30, 21))
    >>> output.shape, h_n.shape
    ((4, 30, 32), (2, 4, 16))
    """

    def __init__(self, *args, **kwargs):
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input, hx=None):
        output, h_n, c_n = self._forward(input, hx)
        return output, (h_n, c_n)


class GRU(RNNBase):
    r"""Multi-layer gated recurrent unit network.

    .. math::

        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}

    NOTE: PyTorch's gate order ``[r, z, n]``.  Arguments as :class:`LSTM` (no
    ``proj_size``).

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.rnn import GRU
    >>> output, h_n = GRU(10, 20, 2)(minidl.randn(5, 3, 10))
    >>> output.shape, h_n.shape
    ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input, hx=None):
        output, h_n, _ = self._forward(input, hx)
        return output, h_n


# ============================================================================ cells


class RNNCellBase(Module):
    """Parameters and checks shared by the single-step cells."""

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.input_size = _check_size(name, "input_size", input_size)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        if not isinstance(bias, bool):
            raise TypeError(f"{name}: bias should be of type bool, got: {type(bias).__name__}")
        self.bias = bias
        gate_size = num_chunks * self.hidden_size
        self.weight_ih = _new_parameter((gate_size, self.input_size), dtype)
        self.weight_hh = _new_parameter((gate_size, self.hidden_size), dtype)
        if bias:
            self.bias_ih = _new_parameter((gate_size,), dtype)
            self.bias_hh = _new_parameter((gate_size,), dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        r"""Every parameter from :math:`U(-1/\sqrt{H}, 1/\sqrt{H})`, as in PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nonlinearity = self.__dict__.get("nonlinearity", "tanh")
        if nonlinearity != "tanh":
            s += f", nonlinearity={nonlinearity}"
        return s

    def _params(self):
        params = [self.weight_ih, self.weight_hh]
        if self.bias:
            params += [self.bias_ih, self.bias_hh]
        return params

    def _prepare(self, input, states):
        """Checks; returns ``(x (1, N, I), [state (N, H), ...], batched)``; missing
        states become zeros."""
        name = type(self).__name__
        _check_float_input(name, input, self.weight_ih)
        if input.ndim not in (1, 2):
            raise ValueError(
                f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead "
                f"(input shape {_shape(input)})"
            )
        if input.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{name}: input has inconsistent input_size: got {input.shape[-1]} expected "
                f"{self.input_size} (input shape {_shape(input)})"
            )
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        batch = x.shape[0]
        prepared = []
        for k, state in enumerate(states):
            if state is None:
                xp = array_module(x.data)
                state = Tensor._wrap(xp.zeros((batch, self.hidden_size), dtype=x.dtype))
            else:
                if not isinstance(state, Tensor):
                    raise TypeError(
                        f"{name}: hidden{k} must be a Tensor, got {type(state).__name__}"
                    )
                if state.ndim != input.ndim:
                    raise ValueError(
                        f"{name}: Expected hidden{k} to be {input.ndim}D like the input, got "
                        f"{state.ndim}D (hidden shape {_shape(state)}, input shape "
                        f"{_shape(input)})"
                    )
                if not batched:
                    state = state.unsqueeze(0)
                if state.shape[0] != batch:
                    raise RuntimeError(
                        f"{name}: Input batch size {batch} doesn't match hidden{k} batch size "
                        f"{state.shape[0]}"
                    )
                if state.shape[1] != self.hidden_size:
                    raise RuntimeError(
                        f"{name}: hidden{k} has inconsistent hidden_size: got {state.shape[1]}, "
                        f"expected {self.hidden_size}"
                    )
                if state.dtype != x.dtype:
                    raise TypeError(
                        f"{name}: hidden{k} has dtype {state.dtype}, the input {x.dtype}"
                    )
            prepared.append(state)
        return x.unsqueeze(0), prepared, batched


class RNNCell(RNNCellBase):
    r"""One step of an Elman RNN: :math:`h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh})`.

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool, default True
    nonlinearity : {"tanh", "relu"}, default "tanh"

    Forward
    -------
    ``cell(input, hx=None) -> h'``: input ``(N, I)`` or ``(I,)``, hx ``(N, H)`` or ``(H,)``.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device,
                         dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [hx])
        _, h_new = rnn_layer(x, h, *self._params(), nonlinearity=self.nonlinearity)
        return h_new if batched else h_new.squeeze(0)


class LSTMCell(RNNCellBase):
    r"""One LSTM step (gates as in :class:`LSTM`, PyTorch's order ``[i, f, g, o]``).

    Forward
    -------
    ``cell(input, (h, c)=None) -> (h', c')``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.rnn import LSTMCell
    >>> h, c = LSTMCell(10, 20)(minidl.randn(3, 10))
    >>> h.shape, c.shape
    ((3, 20), (3, 20))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device,
                         dtype=dtype)

    def forward(self, input, hx=None):
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        x, (h, c), batched = self._prepare(input, list(hx))
        _, h_new, c_new = lstm_layer(x, h, c, *self._params())
        if not batched:
            return h_new.squeeze(0), c_new.squeeze(0)
        return h_new, c_new


class GRUCell(RNNCellBase):
    r"""One GRU step (gates as in :class:`GRU`, PyTorch's order ``[r, z, n]``).

    Forward
    -------
    ``cell(input, hx=None) -> h'``.
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device,
                         dtype=dtype)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [hx])
        _, h_new = gru_layer(x, h, *self._params())
        return h_new if batched else h_new.squeeze(0)
