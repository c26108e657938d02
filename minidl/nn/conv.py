r"""Convolution layers: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``.

Constructor signatures, attributes, parameter shapes, initialisation, ``repr`` and
``state_dict`` keys are PyTorch's, so weights move between the two with a dict of arrays.
The maths lives in :mod:`minidl.ops.conv`.

Initialisation (PyTorch's ``reset_parameters``): the weight from
``kaiming_uniform_(a=sqrt(5))``, i.e. :math:`U(-1/\sqrt{\text{fan\_in}},
1/\sqrt{\text{fan\_in}})`, and the bias from the same interval, with ``fan_in`` computed
from the weight's shape as ``shape[1] * prod(kernel_size)``.  NOTE: for the transposed
layers the weight is ``(in_channels, out_channels / groups, *kernel)``, so their
``fan_in`` is ``out_channels / groups * prod(kernel)``; PyTorch does the same.
"""

from __future__ import annotations

import math
import numbers

from minidl.nn import init
from minidl.nn.linear import _empty_parameter
from minidl.nn.module import Module
from minidl.ops import conv as conv_ops
from minidl.ops.shape import pad as _pad

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(layer, name, value, nd):
    """PyTorch's ``_single`` / ``_pair``: an int is repeated, a sequence kept (checked)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value),) * nd
    if isinstance(value, (tuple, list)) and len(value) == nd and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        return tuple(int(v) for v in value)
    raise ValueError(f"{layer}: {name} must be an int or a tuple of {nd} ints, got {value!r}")


def _check_positive(layer, name, values, minimum=1):
    if any(v < minimum for v in values):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{layer}: {name} must be {kind}, got {values}")


class _ConvNd(Module):
    """What the four convolution layers share: arguments, parameters, init and repr."""

    _nd = 0
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 output_padding, groups, bias, padding_mode, device, dtype):
        super().__init__()
        layer, nd = type(self).__name__, self._nd
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"{layer}: groups must be a positive integer, got {groups!r}")
        if in_channels % groups:
            raise ValueError(
                f"{layer}: in_channels ({in_channels}) must be divisible by groups ({groups})"
            )
        if out_channels % groups:
            raise ValueError(
                f"{layer}: out_channels ({out_channels}) must be divisible by groups ({groups})"
            )
        kernel_size = _ntuple(layer, "kernel_size", kernel_size, nd)
        stride = _ntuple(layer, "stride", stride, nd)
        dilation = _ntuple(layer, "dilation", dilation, nd)
        output_padding = _ntuple(layer, "output_padding", output_padding, nd)
        _check_positive(layer, "kernel_size", kernel_size)
        _check_positive(layer, "stride", stride)
        _check_positive(layer, "dilation", dilation)
        _check_positive(layer, "output_padding", output_padding, 0)
        if isinstance(padding, str):
            if self._transposed:
                raise ValueError(
                    f"{layer}: padding must be an int or a tuple of {nd} ints, got "
                    f"{padding!r} ('same' and 'valid' exist only for convolutions)"
                )
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"{layer}: invalid padding string {padding!r}, should be one of "
                    "'same', 'valid'"
                )
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError(
                    f"{layer}: padding='same' is not supported for strided convolutions "
                    f"(stride {stride})"
                )
        else:
            padding = _ntuple(layer, "padding", padding, nd)
            _check_positive(layer, "padding", padding, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"{layer}: padding_mode must be one of {', '.join(map(repr, _PADDING_MODES))}, "
                f"but got padding_mode={padding_mode!r}"
            )
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {layer}')

        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = self._transposed
        self.output_padding = output_padding
        self.groups = int(groups)
        self.padding_mode = padding_mode
        # the padding in F.pad's order (last axis first), as PyTorch keeps it for the
        # non-zero padding modes; "same" splits d(k-1) with the odd element after
        if isinstance(padding, str):
            reversed_padding = [0, 0] * nd
            if padding == "same":
                for axis, (d, k) in enumerate(zip(dilation, kernel_size)):
                    total = d * (k - 1)
                    slot = 2 * (nd - 1 - axis)
                    reversed_padding[slot] = total // 2
                    reversed_padding[slot + 1] = total - total // 2
            self._reversed_padding_repeated_twice = reversed_padding
        else:
            self._reversed_padding_repeated_twice = tuple(
                p for p in reversed(padding) for _ in range(2)
            )

        if self._transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + kernel_size
        self.weight = _empty_parameter(shape, dtype)
        if bias:
            self.bias = _empty_parameter((self.out_channels,), dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Draw the weights again (PyTorch's default initialisation)."""
        # NOTE: a=sqrt(5) makes kaiming's bound equal 1/sqrt(fan_in), as in PyTorch
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        nd = self._nd
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * nd:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * nd:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * nd:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """Forward of ``Conv1d``/``Conv2d``: optional non-zero padding, then the op."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         0, groups, bias, padding_mode, device, dtype)

    def forward(self, input):
        layer, nd = type(self).__name__, self._nd
        padding = self.padding
        if self.padding_mode != "zeros":
            # check the shape before padding, so that errors show the caller's input
            conv_ops._check_tensors(layer, input, self.weight, self.bias)
            conv_ops._check_dims(layer, nd, input, self.weight, "")
            expected = self.in_channels
            if input.shape[-nd - 1] != expected:
                raise conv_ops._channel_error(layer, nd, input, self.weight, expected,
                                              self.groups)
            input = _pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        return conv_ops._conv(layer, nd, input, self.weight, self.bias, self.stride, padding,
                              self.dilation, self.groups)


class Conv1d(_Conv):
    r"""1-D convolution over sequences (e.g. one-hot DNA of shape ``(N, 4, L)``).

    .. math::

        y[n, o, l] = b[o] + \sum_{c, i} w[o, c, i]\; x_{pad}[n, c, l s + i d]

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int,)
    stride : int or (int,), default 1
    padding : int, (int,), "valid" or "same", default 0
    dilation : int or (int,), default 1
    groups : int, default 1
        ``in_channels`` and ``out_channels`` must both be divisible by it.
    bias : bool, default True
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
    device, dtype : optional

    Attributes
    ----------
    weight : Parameter, shape ``(out_channels, in_channels / groups, kernel_size)``
    bias : Parameter, shape ``(out_channels,)``, or None

    Shape
    -----
    ``(N, C_in, L)`` or ``(C_in, L)`` -> ``(N, C_out, L_out)`` with
    :math:`L_{out} = \lfloor (L + 2p - d(k-1) - 1)/s \rfloor + 1`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.conv import Conv1d
    >>> layer = Conv1d(4, 128, 19, padding=9)
    >>> layer(minidl.randn(2, 4, 100)).shape
    (2, 128, 100)
    """

    _nd = 1


class Conv2d(_Conv):
    r"""2-D convolution over images.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int), "valid" or "same", default 0
    groups : int, default 1
    bias : bool, default True
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, default "zeros"
    device, dtype : optional

    Attributes
    ----------
    weight : Parameter, shape ``(out_channels, in_channels / groups, kH, kW)``
    bias : Parameter, shape ``(out_channels,)``, or None

    Shape
    -----
    ``(N, C_in, H, W)`` or ``(C_in, H, W)`` -> ``(N, C_out, H_out, W_out)``; a 3-D input
    is one unbatched image, as in PyTorch (its first axis must be ``in_channels``).

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.conv import Conv2d
    >>> layer = Conv2d(3, 32, 3, padding=1)
    >>> layer
    Conv2d(3, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> layer(minidl.randn(8, 3, 32, 32)).shape
    (8, 32, 32, 32)
    """

    _nd = 2


class _ConvTranspose(_ConvNd):
    """Forward of ``ConvTranspose1d``/``ConvTranspose2d``, with PyTorch's ``output_size``."""

    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size):
        """The ``output_padding`` that gives ``output_size`` (PyTorch's rule)."""
        if output_size is None:
            return self.output_padding
        layer, nd = type(self).__name__, self._nd
        output_size = tuple(int(s) for s in output_size)
        if len(output_size) == input.ndim:
            output_size = output_size[-nd:]
        if len(output_size) != nd:
            raise ValueError(
                f"{layer}: output_size must have {nd} or {input.ndim} elements, got "
                f"{output_size} (input {tuple(input.shape)})"
            )
        spatial = tuple(input.shape[-nd:])
        smallest = tuple(
            (size - 1) * s - 2 * p + d * (k - 1) + 1
            for size, s, p, d, k in zip(spatial, self.stride, self.padding, self.dilation,
                                        self.kernel_size)
        )
        largest = tuple(m + s - 1 for m, s in zip(smallest, self.stride))
        if any(not lo <= want <= hi for want, lo, hi in zip(output_size, smallest, largest)):
            raise ValueError(
                f"{layer}: requested an output size of {output_size}, but valid sizes range "
                f"from {smallest} to {largest} (for an input of {spatial})"
            )
        return tuple(want - lo for want, lo in zip(output_size, smallest))

    def forward(self, input, output_size=None):
        layer, nd = type(self).__name__, self._nd
        output_padding = self._output_padding(input, output_size)
        return conv_ops._conv_transpose(layer, nd, input, self.weight, self.bias, self.stride,
                                        self.padding, output_padding, self.groups,
                                        self.dilation)


class ConvTranspose1d(_ConvTranspose):
    r"""1-D transposed convolution: the adjoint of ``Conv1d``, used to upsample.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int,)
    stride, padding, output_padding, dilation : int or (int,)
    groups : int, default 1
    bias : bool, default True
    padding_mode : "zeros" (the only one supported, as in PyTorch)
    device, dtype : optional

    Attributes
    ----------
    weight : Parameter, shape ``(in_channels, out_channels / groups, kernel_size)``
    bias : Parameter, shape ``(out_channels,)``, or None

    Shape
    -----
    ``(N, C_in, L)`` -> ``(N, C_out, L_out)`` with
    :math:`L_{out} = (L - 1)s - 2p + d(k-1) + p_{out} + 1`; ``forward(input,
    output_size)`` picks ``output_padding`` to reach ``output_size``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.conv import ConvTranspose1d
    >>> ConvTranspose1d(16, 8, 4, stride=2, padding=1)(minidl.randn(2, 16, 50)).shape
    (2, 8, 100)
    """

    _nd = 1


class ConvTranspose2d(_ConvTranspose):
    r"""2-D transposed convolution: the adjoint of ``Conv2d``, used to upsample images.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, padding, output_padding, dilation : int or (int, int)
    groups : int, default 1
    bias : bool, default True
    padding_mode : "zeros" (the only one supported, as in PyTorch)
    device, dtype : optional

    Attributes
    ----------
    weight : Parameter, shape ``(in_channels, out_channels / groups, kH, kW)``
    bias : Parameter, shape ``(out_channels,)``, or None

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.conv import ConvTranspose2d
    >>> up = ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    >>> up(minidl.randn(1, 64, 8, 8)).shape
    (1, 32, 16, 16)
    """

    _nd = 2
