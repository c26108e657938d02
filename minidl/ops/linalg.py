"""Matrix multiplication (batched, broadcasting, with PyTorch's 1-D rules)."""

from __future__ import annotations

from minidl.autograd import Function, sum_to_shape
from minidl.backend import array_module

__all__ = ["matmul", "mm", "bmm", "dot", "outer"]


def _swap_last(a):
    return array_module(a).swapaxes(a, -1, -2)


class MatMul(Function):
    r"""``a @ b`` over the last two axes, broadcasting the leading (batch) axes.

    For :math:`C = AB`: :math:`\partial L/\partial A = G B^\top` and
    :math:`\partial L/\partial B = A^\top G`, summed over batch axes that were broadcast.
    A 1-D ``a`` is treated as a row vector (1, k) and a 1-D ``b`` as a column (k, 1);
    the added axis is removed from the result, as in ``torch.matmul``.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise RuntimeError(
                f"matmul: both arguments need at least 1 dimension, got shapes "
                f"{tuple(a.shape)} and {tuple(b.shape)}"
            )
        if a.dtype != b.dtype:
            raise TypeError(
                f"matmul: expected both inputs to have the same dtype, got {a.dtype} "
                f"(shape {tuple(a.shape)}) and {b.dtype} (shape {tuple(b.shape)})"
            )
        self.a_shape, self.b_shape = a.shape, b.shape
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            raise ValueError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                f"({a2.shape[-1]} != {b2.shape[-2]})"
            )
        self.a2, self.b2 = a2, b2
        out = a2 @ b2
        if a.ndim == 1:
            out = out[..., 0, :]
        if b.ndim == 1:
            out = out[..., 0]
        return out

    def backward(self, grad):
        # put back the axes that 1-D operands removed
        if len(self.a_shape) == 1:
            grad = grad[..., None, :] if len(self.b_shape) != 1 else grad[..., None]
        if len(self.b_shape) == 1:
            grad = grad[..., None]
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to_shape(grad @ _swap_last(self.b2), self.a2.shape).reshape(self.a_shape)
        if self.needs_input_grad[1]:
            gb = sum_to_shape(_swap_last(self.a2) @ grad, self.b2.shape).reshape(self.b_shape)
        return ga, gb


def matmul(a, b):
    """Matrix product with broadcasting, as ``torch.matmul``.

    Examples
    --------
    >>> import minidl
    >>> a = minidl.ones(2, 3); b = minidl.ones(3, 4)
    >>> (a @ b).shape
    (2, 4)
    """
    return MatMul.apply(a, b)


def mm(a, b):
    """Product of two matrices (both 2-D)."""
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expected 2-D tensors, got shapes {a.shape} and {b.shape}")
    return MatMul.apply(a, b)


def bmm(a, b):
    """Batched product of (B, n, k) and (B, k, m) tensors."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expected (B,n,k) and (B,k,m), got {a.shape} and {b.shape}")
    return MatMul.apply(a, b)


def dot(a, b):
    """Inner product of two 1-D tensors."""
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"dot: expected 1-D tensors, got shapes {a.shape} and {b.shape}")
    return MatMul.apply(a, b)


def outer(a, b):
    """Outer product of two 1-D tensors: ``out[i, j] = a[i] * b[j]``."""
    return a.reshape(-1, 1) * b.reshape(1, -1)
