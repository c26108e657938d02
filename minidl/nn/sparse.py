"""``Embedding``: a lookup table of learnable vectors, one per token id.

The module is PyTorch's ``torch.nn.Embedding``: same constructor, attributes
(``num_embeddings``, ``embedding_dim``, ``padding_idx``, ``max_norm``, ``norm_type``,
``scale_grad_by_freq``, ``sparse``), parameter name (``weight``), initialisation
(:math:`\\mathcal N(0, 1)`, padding row zeroed) and ``from_pretrained``.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import no_grad
from minidl.backend import device_of
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops import embedding as _ops
from minidl.tensor import Tensor

__all__ = ["Embedding"]


def _weight_array(value):
    """A Tensor or a NumPy/CuPy array as is (shared); other array-likes (a PyTorch CPU
    tensor) via NumPy."""
    if isinstance(value, (Tensor, np.ndarray)) or device_of(value) == "cuda":
        return value
    return np.asarray(value)


class Embedding(Module):
    r"""A table of ``num_embeddings`` vectors of size ``embedding_dim``, looked up by index.

    ``Embedding(V, D)(ids)`` returns ``weight[ids]``, of shape ``ids.shape + (D,)``.  See
    :func:`minidl.ops.embedding.embedding` for the gradient.

    Parameters
    ----------
    num_embeddings : int
        Size of the vocabulary, V.
    embedding_dim : int
        Size of each vector, D.
    padding_idx : int, optional
        A row that is initialised to zeros and receives no gradient (negative values count
        from the end and are stored normalised, as in PyTorch).
    max_norm : float, optional
        Rows about to be used are rescaled, in place, to norm at most ``max_norm``.
    norm_type : float, default 2.0
        The p of the p-norm for ``max_norm``.
    scale_grad_by_freq : bool, default False
        Divide gradients by the frequency of each index in the mini-batch.
    sparse : bool, default False
        Sparse gradients are not supported (must be False).
    _weight : Tensor or ndarray, optional
        Use this (V, D) matrix as the weight (shared, not copied) instead of drawing one.
    _freeze : bool, default False
        With ``_weight``: whether the weight is frozen (``requires_grad=False``).
    device, dtype : optional
        Where and in which floating dtype (default float32) to create the weight.

    Attributes
    ----------
    weight : Parameter, shape (num_embeddings, embedding_dim)
        Drawn from :math:`\mathcal N(0, 1)`, with the ``padding_idx`` row zeroed.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.sparse import Embedding
    >>> table = Embedding(10, 3, padding_idx=0)
    >>> table
    Embedding(10, 3, padding_idx=0)
    >>> table(minidl.tensor([[1, 2, 0], [4, 0, 0]])).shape
    (2, 3, 3)
    >>> table.weight[0].tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        for name, value in (("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Embedding: {name} must be a non-negative int, got {value!r}")
        if sparse:
            raise NotImplementedError(
                "Embedding: sparse=True (sparse gradients) is not supported; minidl computes "
                "a dense weight gradient, pass sparse=False"
            )
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.padding_idx = _ops._normalise_padding_idx("Embedding", padding_idx,
                                                       self.num_embeddings)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        if _weight is None:
            if dtype is None:
                from minidl.tensor import get_default_dtype

                dtype = get_default_dtype()
            if np.dtype(dtype).kind != "f":
                raise TypeError(f"Embedding: the weight must be floating point, got {dtype}")
            shape = (self.num_embeddings, self.embedding_dim)
            self.weight = Parameter(np.empty(shape, dtype=dtype), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            _weight = _weight_array(_weight)
            if tuple(_weight.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(
                    f"Embedding: shape of weight {tuple(_weight.shape)} does not match "
                    f"(num_embeddings, embedding_dim) = "
                    f"({self.num_embeddings}, {self.embedding_dim})"
                )
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        self.sparse = sparse
        if device is not None:
            self.to(device)

    def reset_parameters(self):
        """Draw the weight from N(0, 1) again and zero the padding row."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self):
        if self.padding_idx is not None:
            with no_grad():
                self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return _ops.embedding(input, self.weight, self.padding_idx, self.max_norm,
                              self.norm_type, self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse is not False:
            s += ", sparse=True"
        return s

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding whose weight is ``embeddings`` (a 2-D Tensor or array, shared).

        ``freeze=True`` (the default) makes the weight not require grad, so an optimiser
        leaves it alone.  The ``padding_idx`` row is *not* zeroed: pretrained values stay.

        Examples
        --------
        >>> import minidl
        >>> from minidl.nn.sparse import Embedding
        >>> table = Embedding.from_pretrained(minidl.tensor([[1.0, 2.0], [3.0, 4.0]]))
        >>> table(minidl.tensor([1])).tolist(), table.weight.requires_grad
        ([[3.0, 4.0]], False)
        """
        embeddings = _weight_array(embeddings)
        if len(embeddings.shape) != 2:
            raise ValueError(
                "Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, "
                f"embedding_dim), got shape {tuple(embeddings.shape)}"
            )
        rows, cols = embeddings.shape
        return cls(num_embeddings=rows, embedding_dim=cols, _weight=embeddings, _freeze=freeze,
                   padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)
