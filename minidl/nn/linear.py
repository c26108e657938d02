"""Affine layers: ``Identity``, ``Linear``, ``Bilinear``."""

from __future__ import annotations

import math

import numpy as np

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter

__all__ = ["Identity", "Linear", "Bilinear"]


def _empty_parameter(shape, dtype):
    """An uninitialised Parameter; the layer's ``reset_parameters`` fills it."""
    if dtype is None:
        from minidl.tensor import get_default_dtype

        dtype = get_default_dtype()
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"layer parameters must be floating point, got dtype={dtype}")
    return Parameter(np.empty(shape, dtype=dtype))


def _check_features(layer, **features):
    for name, value in features.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{layer}: {name} must be a non-negative int, got {value!r}")


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. to remove a layer from a model).

    Any constructor arguments are accepted and ignored, as in PyTorch.
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    r"""Fully connected layer: :math:`y = x W^\top + b`.

    Parameters
    ----------
    in_features, out_features : int
        Size of each input sample and of each output sample.
    bias : bool, default True
        Whether to learn an additive bias.
    device : str, optional
        "cpu" (default) or "cuda".
    dtype : dtype, optional
        Parameter dtype (default float32).

    Attributes
    ----------
    weight : Parameter, shape ``(out_features, in_features)``
        Initialised from :math:`U(-1/\sqrt{\text{in}}, 1/\sqrt{\text{in}})` (PyTorch's
        ``kaiming_uniform_(a=sqrt(5))``).
    bias : Parameter, shape ``(out_features,)``, or None
        Initialised from the same uniform distribution.

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> layer = nn.Linear(20, 30)
    >>> layer(minidl.randn(128, 20)).shape
    (128, 30)
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        _check_features("Linear", in_features=in_features, out_features=out_features)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = _empty_parameter((self.out_features, self.in_features), dtype)
        if bias:
            self.bias = _empty_parameter((self.out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Draw the weights again (PyTorch's default initialisation)."""
        # NOTE: a=sqrt(5) makes kaiming's bound gain*sqrt(3/fan_in) equal 1/sqrt(fan_in);
        # PyTorch keeps it for backward compatibility, and so do we, so that models match.
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Bilinear(Module):
    r"""Bilinear layer: :math:`y = x_1^\top A\, x_2 + b`, one matrix :math:`A` per output.

    Parameters
    ----------
    in1_features, in2_features, out_features : int
    bias : bool, default True

    Attributes
    ----------
    weight : Parameter, shape ``(out_features, in1_features, in2_features)``
    bias : Parameter, shape ``(out_features,)``
        Both from :math:`U(-1/\sqrt{\text{in1}}, 1/\sqrt{\text{in1}})`, as in PyTorch.
    """

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__()
        _check_features("Bilinear", in1_features=in1_features, in2_features=in2_features,
                        out_features=out_features)
        self.in1_features = int(in1_features)
        self.in2_features = int(in2_features)
        self.out_features = int(out_features)
        self.weight = _empty_parameter(
            (self.out_features, self.in1_features, self.in2_features), dtype
        )
        if bias:
            self.bias = _empty_parameter((self.out_features,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Draw the weights again from :math:`U(-1/\\sqrt{in1}, 1/\\sqrt{in1})`."""
        bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight.shape[1] > 0 else 0
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )
