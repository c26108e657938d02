"""Activation layers: thin Modules around the functions of :mod:`minidl.ops.activation`.

They hold the function's settings (a slope, a dim) so that they can sit in a
``Sequential`` and show in the model's repr; they have no parameters.

NOTE: ``inplace=True`` is accepted for PyTorch compatibility and shown in the repr, but
the result is always a new tensor: writing into the input would corrupt arrays that the
graph saved for backward, and the memory it saves matters little here.
"""

from __future__ import annotations

from minidl.nn import functional as F
from minidl.nn.module import Module

__all__ = [
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Sigmoid",
    "LogSigmoid",
    "Tanh",
    "Softplus",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "Hardtanh",
    "ReLU6",
]


def _inplace_repr(inplace):
    return "inplace=True" if inplace else ""


class ReLU(Module):
    r""":math:`\max(x, 0)` elementwise.  See :func:`minidl.ops.activation.relu`.

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> nn.ReLU()(minidl.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input)

    def extra_repr(self):
        return _inplace_repr(self.inplace)


class LeakyReLU(Module):
    r""":math:`x` for :math:`x > 0`, else :math:`\text{negative\_slope} \cdot x`."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    r""":math:`x` for :math:`x > 0`, else :math:`\alpha (e^x - 1)`."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    r""":math:`x \Phi(x)` (``approximate="none"``) or its tanh approximation
    (``approximate="tanh"``)."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    r""":math:`1 / (1 + e^{-x})`."""

    def forward(self, input):
        return F.sigmoid(input)


class LogSigmoid(Module):
    r""":math:`\log(1 / (1 + e^{-x}))`, computed stably."""

    def forward(self, input):
        return F.logsigmoid(input)


class Tanh(Module):
    r""":math:`\tanh(x)`."""

    def forward(self, input):
        return F.tanh(input)


class Softplus(Module):
    r""":math:`\frac{1}{\beta} \log(1 + e^{\beta x})`, linear where
    :math:`\beta x > \text{threshold}`."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class SiLU(Module):
    r""":math:`x \sigma(x)` (also called swish)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.silu(input)

    def extra_repr(self):
        return _inplace_repr(self.inplace)


class Softmax(Module):
    r"""Softmax along ``dim``: :math:`e^{x_i} / \sum_j e^{x_j}`.

    ``dim`` must be given before the module is called: PyTorch's implicit choice of
    axis is not reproduced (see :func:`minidl.ops.activation.softmax`).
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    r""":math:`\log \mathrm{softmax}(x)` along ``dim``, computed stably."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Hardtanh(Module):
    r"""Clamp to :math:`[\text{min\_val}, \text{max\_val}]` (gradient 0 outside)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError(
                f"Hardtanh: min_val ({min_val}) must not be greater than max_val ({max_val})"
            )
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (
            ", inplace=True" if self.inplace else ""
        )


class ReLU6(Hardtanh):
    r""":math:`\min(\max(x, 0), 6)`."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def forward(self, input):
        return F.relu6(input)

    def extra_repr(self):
        return _inplace_repr(self.inplace)
