"""Dropout layers: ``Dropout``, ``Dropout1d``, ``Dropout2d``, ``AlphaDropout``.

Each is a thin Module around a function of :mod:`minidl.ops.dropout`; it drops only in
training mode (``model.train()``) and is the identity after ``model.eval()``.
"""

from __future__ import annotations

import numbers

from minidl.nn.module import Module
from minidl.ops import dropout as _ops

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "AlphaDropout"]


class _DropoutNd(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: dropout probability has to be between 0 and 1, "
                f"but got {p}"
            )
        self.p = p
        self.inplace = inplace

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    r"""Zero each element with probability ``p`` during training; scale the rest by
    :math:`1/(1-p)`.  Identity in evaluation mode.  See :func:`minidl.ops.dropout.dropout`.

    Parameters
    ----------
    p : float, default 0.5
        Probability of zeroing an element.
    inplace : bool, default False
        Overwrite the input when no gradient is recorded.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.dropout import Dropout
    >>> layer = Dropout(p=0.2)
    >>> layer
    Dropout(p=0.2, inplace=False)
    >>> layer.eval()(minidl.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def forward(self, input):
        return _ops.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Zero whole channels of a (N, C, L) or (C, L) input with probability ``p`` during
    training.  See :func:`minidl.ops.dropout.dropout1d`."""

    def forward(self, input):
        return _ops.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Zero whole channels of a (N, C, H, W) input with probability ``p`` during training.
    See :func:`minidl.ops.dropout.dropout2d` (3-D inputs are read as (N, C, L), as in
    PyTorch)."""

    def forward(self, input):
        return _ops.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps zero mean and unit variance, for SELU networks.  See
    :func:`minidl.ops.dropout.alpha_dropout`."""

    def forward(self, input):
        return _ops.alpha_dropout(input, self.p, self.training)
