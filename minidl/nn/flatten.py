"""Shape layers: ``Flatten`` and ``Unflatten``."""

from __future__ import annotations

import math

from minidl.nn.module import Module

__all__ = ["Flatten", "Unflatten"]


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` into one (by default all but the batch).

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> nn.Flatten()(minidl.zeros(32, 1, 5, 5)).shape
    (32, 25)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dimension ``dim`` into ``unflattened_size`` (the inverse of ``Flatten``).

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> nn.Unflatten(1, (2, 5))(minidl.zeros(3, 10)).shape
    (3, 2, 5)
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(
                f"Unflatten: unflattened_size must be a tuple of ints, got "
                f"{type(unflattened_size).__name__}"
            )
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input):
        shape = tuple(input.shape)
        dim = self.dim + len(shape) if self.dim < 0 else self.dim
        if not 0 <= dim < len(shape):
            raise IndexError(
                f"Unflatten: dim {self.dim} is out of range for input shape {shape}"
            )
        known = math.prod(s for s in self.unflattened_size if s != -1)
        fits = (shape[dim] % known == 0) if -1 in self.unflattened_size else (
            known == shape[dim])
        if not fits:
            raise ValueError(
                f"Unflatten: cannot split dimension {self.dim} of size {shape[dim]} "
                f"(input shape {shape}) into {self.unflattened_size}"
            )
        return input.reshape(shape[:dim] + self.unflattened_size + shape[dim + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
