"""Pooling layers with PyTorch's names, arguments, attributes and reprs.

``MaxPool1d/2d``, ``AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d``, ``AdaptiveMaxPool1d/2d``.
They hold no parameters or buffers (their ``state_dict`` is empty); each forwards to a
function of :mod:`minidl.ops.pool`, where the maths and the reference kernels live.
Inputs may be batched (N, C, ...) or unbatched (C, ...), as in PyTorch.
"""

from __future__ import annotations

from minidl.nn.module import Module
from minidl.ops import pool as _pool

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
]


def _single(value):
    """PyTorch's ``_single``: a sequence becomes a tuple, anything else a 1-tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool1d(_MaxPoolNd):
    r"""1-D max pooling over (N, C, L) or (C, L) inputs.  See
    :func:`minidl.ops.pool.max_pool1d`.

    Parameters
    ----------
    kernel_size : int
        Window size.
    stride : int, optional
        Step between windows (default ``kernel_size``).
    padding : int, default 0
        :math:`-\infty` padding on both sides, at most ``kernel_size // 2``.
    dilation : int, default 1
        Spacing between the window's taps.
    return_indices : bool, default False
        Also return the positions of the maxima.
    ceil_mode : bool, default False
        Round the output length up.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.pooling import MaxPool1d
    >>> pool = MaxPool1d(4)
    >>> pool
    MaxPool1d(kernel_size=4, stride=4, padding=0, dilation=1, ceil_mode=False)
    >>> pool(minidl.randn(8, 16, 100)).shape
    (8, 16, 25)
    """

    def forward(self, input):
        return _pool.max_pool1d(input, self.kernel_size, self.stride, self.padding,
                                self.dilation, ceil_mode=self.ceil_mode,
                                return_indices=self.return_indices)


class MaxPool2d(_MaxPoolNd):
    r"""2-D max pooling over (N, C, H, W) or (C, H, W) inputs; arguments as
    :class:`MaxPool1d`, each an int or an (h, w) pair.  See
    :func:`minidl.ops.pool.max_pool2d`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.pooling import MaxPool2d
    >>> MaxPool2d(2)(minidl.randn(4, 3, 32, 32)).shape
    (4, 3, 16, 16)
    """

    def forward(self, input):
        return _pool.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                                self.dilation, ceil_mode=self.ceil_mode,
                                return_indices=self.return_indices)


class AvgPool1d(Module):
    r"""1-D average pooling over (N, C, L) or (C, L) inputs.  See
    :func:`minidl.ops.pool.avg_pool1d`.

    As in PyTorch, ``kernel_size``, ``stride`` and ``padding`` are stored as 1-tuples.

    Examples
    --------
    >>> from minidl.nn.pooling import AvgPool1d
    >>> AvgPool1d(3, stride=2)
    AvgPool1d(kernel_size=(3,), stride=(2,), padding=(0,))
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size = _single(kernel_size)
        self.stride = _single(stride if stride is not None else kernel_size)
        self.padding = _single(padding)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input):
        return _pool.avg_pool1d(input, self.kernel_size, self.stride, self.padding,
                                self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    r"""2-D average pooling over (N, C, H, W) or (C, H, W) inputs.  See
    :func:`minidl.ops.pool.avg_pool2d`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.pooling import AvgPool2d
    >>> AvgPool2d(2)(minidl.ones(1, 1, 4, 4)).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if (stride is not None) else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input):
        return _pool.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                                self.ceil_mode, self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptivePoolNd(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePoolNd):
    """Average pooling to a fixed length ``output_size``.  See
    :func:`minidl.ops.pool.adaptive_avg_pool1d`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.pooling import AdaptiveAvgPool1d
    >>> AdaptiveAvgPool1d(5)(minidl.randn(2, 3, 17)).shape
    (2, 3, 5)
    """

    def forward(self, input):
        return _pool.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveAvgPool2d(_AdaptivePoolNd):
    """Average pooling to a fixed (H, W) ``output_size`` (entries may be None).  See
    :func:`minidl.ops.pool.adaptive_avg_pool2d`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.pooling import AdaptiveAvgPool2d
    >>> AdaptiveAvgPool2d((None, 3))(minidl.randn(2, 3, 7, 9)).shape
    (2, 3, 7, 3)
    """

    def forward(self, input):
        return _pool.adaptive_avg_pool2d(input, self.output_size)


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    def __init__(self, output_size, return_indices=False):
        super().__init__(output_size)
        self.return_indices = return_indices


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed length ``output_size``.  See
    :func:`minidl.ops.pool.adaptive_max_pool1d`.

    Examples
    --------
    >>> from minidl.nn.pooling import AdaptiveMaxPool1d
    >>> AdaptiveMaxPool1d(3, return_indices=True)
    AdaptiveMaxPool1d(output_size=3)
    """

    def forward(self, input):
        return _pool.adaptive_max_pool1d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max pooling to a fixed (H, W) ``output_size`` (entries may be None).  See
    :func:`minidl.ops.pool.adaptive_max_pool2d`."""

    def forward(self, input):
        return _pool.adaptive_max_pool2d(input, self.output_size, self.return_indices)
