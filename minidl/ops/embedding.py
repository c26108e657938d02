r"""Embedding lookup: integer indices select rows of a weight matrix.

Forward is a gather, :math:`y_{\dots,:} = W_{i_{\dots},:}`.  Backward is the matching
scatter-add: every occurrence of index :math:`v` adds its output gradient to row
:math:`v` of the weight gradient,

.. math:: \frac{\partial L}{\partial W_{v,:}} = \sum_{t:\, i_t = v}
          \frac{\partial L}{\partial y_{t,:}},

so rows that never occur get zero and a row that occurs twice gets the sum.  The indices
themselves get no gradient.  With ``padding_idx`` the padding row gets no gradient at all
(it stays what it is, usually zeros), which is how padded positions of a batch of
variable-length sequences are kept from training anything.
"""

from __future__ import annotations

import numbers

import numpy as np

from minidl import backend
from minidl.autograd import Function, no_grad
from minidl.backend import array_module, device_of, move, raise_device_mismatch

__all__ = ["embedding"]

#: below this many (index, row) pairs the weight gradient is one matrix product with a
#: one-hot matrix (BLAS); above, a weighted bincount per embedding column
_ONE_HOT_LIMIT = 1 << 22


@backend.register_kernel("embedding_forward", "numpy")
def embedding_forward(weight, indices):
    """Reference lookup: ``(weight, indices) -> out``.

    ``weight`` is (V, D), ``indices`` an integer array of any shape with values in
    ``[0, V)``; ``out`` has shape ``indices.shape + (D,)``.
    """
    xp = array_module(weight)
    return xp.take(weight, indices, axis=0)


@backend.register_kernel("embedding_backward", "numpy")
def embedding_backward(grad_out, indices, num_embeddings, padding_idx, scale_grad_by_freq):
    """Reference weight gradient: ``(grad_out, indices, num_embeddings, padding_idx,
    scale_grad_by_freq) -> grad_weight`` of shape (V, D).

    Equivalent to ``grad_weight = zeros((V, D)); np.add.at(grad_weight, indices,
    grad_out)``, then the ``padding_idx`` row zeroed.  ``scale_grad_by_freq`` divides
    each occurrence's gradient by how often its index occurs in ``indices``.
    """
    xp = array_module(grad_out)
    dim = grad_out.shape[-1]
    flat = indices.reshape(-1)
    grad = grad_out.reshape(-1, dim)
    if scale_grad_by_freq:
        counts = xp.bincount(flat, minlength=num_embeddings)
        grad = grad / counts[flat][:, None].astype(grad.dtype)
    if flat.size * num_embeddings <= _ONE_HOT_LIMIT:
        # one_hot[t, v] = 1 where indices[t] == v, so one_hot.T @ grad sums each row's
        # gradients: a single BLAS call
        one_hot = (flat[:, None] == xp.arange(num_embeddings)).astype(grad.dtype)
        grad_weight = one_hot.T @ grad
    else:
        # bincount adds the weights of equal indices (accumulating in float64); one call
        # per column avoids the (T, V) one-hot matrix, which would be too large here
        grad_weight = xp.empty((num_embeddings, dim), dtype=grad.dtype)
        for column in range(dim):
            grad_weight[:, column] = xp.bincount(flat, weights=grad[:, column],
                                                 minlength=num_embeddings)
    if padding_idx is not None:
        grad_weight[padding_idx] = 0
    return grad_weight


class Embedding(Function):
    """Row lookup ``weight[indices]``; the indices are a parameter, not an input."""

    def forward(self, weight):
        self.num_embeddings = weight.shape[0]
        device = backend.device_of(weight)
        return backend.get_kernel("embedding_forward", device)(weight, self.indices)

    def backward(self, grad_out):
        device = backend.device_of(grad_out)
        return backend.get_kernel("embedding_backward", device)(
            grad_out, self.indices, self.num_embeddings, self.padding_idx,
            self.scale_grad_by_freq,
        )


def _normalise_padding_idx(op, padding_idx, num_embeddings):
    """``padding_idx`` in ``[-V, V)`` -> its row in ``[0, V)`` (negative counts from the
    end, as in PyTorch); ``None`` stays ``None``."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"{op}: padding_idx must be an int or None, got {padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(
            f"{op}: padding_idx must be within num_embeddings ({-num_embeddings} to "
            f"{num_embeddings - 1}), got {padding_idx}"
        )
    return int(padding_idx) % num_embeddings


def _index_array(op, input, num_embeddings, weight=None):
    """The indices as an integer array, checked to lie in ``[0, num_embeddings)``, on the
    device of ``weight``: host data that is not a tensor is copied there, a tensor on
    another device is an error (as in PyTorch)."""
    from minidl.tensor import Tensor

    indices = input.data if isinstance(input, Tensor) else np.asarray(input)
    if weight is not None and device_of(indices) != device_of(weight.data):
        if isinstance(input, Tensor):
            raise_device_mismatch(op, [indices, weight.data])
        indices = move(indices, device_of(weight.data))
    if indices.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: indices must be an integer tensor (int64 or int32), got {indices.dtype}; "
            "convert token ids with .long()"
        )
    if indices.size:
        low, high = int(indices.min()), int(indices.max())
        bad = low if low < 0 else high if high >= num_embeddings else None
        if bad is not None:
            raise IndexError(
                f"{op}: index {bad} is out of range for num_embeddings={num_embeddings} "
                f"(valid indices are 0 to {num_embeddings - 1})"
            )
    return indices


def _renorm_rows_(weight, indices, max_norm, norm_type):
    """Rescale, in place, the rows ``indices`` whose ``norm_type``-norm exceeds
    ``max_norm`` to norm ``max_norm`` (PyTorch's ``embedding_renorm_``)."""
    xp = array_module(weight.data)
    rows = xp.unique(indices.reshape(-1))
    values = weight.data[rows]
    if norm_type == float("inf"):
        norms = xp.abs(values).max(axis=1)
    else:
        norms = (xp.abs(values) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    too_long = norms > max_norm
    if bool(too_long.any()):
        # PyTorch's scale, with its 1e-7 guard against a zero norm
        scale = (max_norm / (norms[too_long] + 1e-7)).astype(weight.dtype)
        with no_grad():
            weight.data[rows[too_long]] = values[too_long] * scale[:, None]


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    r"""Look up rows of ``weight``: ``output[..., :] = weight[input[...], :]``.

    The gradient with respect to ``weight`` scatter-adds the output gradient into the
    selected rows (:math:`\partial L/\partial W_v = \sum_{t: i_t = v} \partial L/\partial
    y_t`); ``input`` gets none.

    Parameters
    ----------
    input : Tensor or array of ints
        Indices of any shape, each in ``[0, num_embeddings)``.
    weight : Tensor
        (num_embeddings, embedding_dim) floating-point matrix.
    padding_idx : int, optional
        A row that receives no gradient (negative values count from the end).
    max_norm : float, optional
        Before the lookup, rows about to be used whose ``norm_type``-norm exceeds
        ``max_norm`` are rescaled, in place, to norm ``max_norm``.
    norm_type : float, default 2.0
        The p of the p-norm for ``max_norm``.
    scale_grad_by_freq : bool, default False
        Divide each row's gradient by how often its index occurs in ``input``.
    sparse : bool, default False
        Sparse gradients are not supported: must be False.

    Returns
    -------
    Tensor
        Shape ``input.shape + (embedding_dim,)``, ``weight``'s dtype.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.embedding import embedding
    >>> weight = minidl.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> out = embedding(minidl.tensor([[1, 2], [2, 2]]), weight)
    >>> out.shape
    (2, 2, 2)
    >>> out.sum().backward()
    >>> weight.grad.tolist()   # row 2 was used three times
    [[0.0, 0.0], [1.0, 1.0], [3.0, 3.0]]
    """
    from minidl.tensor import Tensor

    op = "embedding"
    if not isinstance(weight, Tensor):
        weight = Tensor(weight)
    if weight.ndim != 2:
        raise ValueError(
            f"{op}: weight must be 2-D (num_embeddings, embedding_dim), got shape "
            f"{weight.shape}"
        )
    if weight.dtype.kind != "f":
        raise TypeError(f"{op}: weight must be floating point, got {weight.dtype}")
    if sparse:
        raise NotImplementedError(
            f"{op}: sparse=True (sparse gradients) is not supported; minidl computes a dense "
            "weight gradient, pass sparse=False"
        )
    num_embeddings = weight.shape[0]
    padding_idx = _normalise_padding_idx(op, padding_idx, num_embeddings)
    indices = _index_array(op, input, num_embeddings, weight)
    if max_norm is not None:
        _renorm_rows_(weight, indices, float(max_norm), float(norm_type))
    return Embedding.apply(weight, indices=indices, padding_idx=padding_idx,
                           scale_grad_by_freq=bool(scale_grad_by_freq))
