r"""Variable-length batches for recurrent layers: packing and padding, as ``torch.nn.utils.rnn``.

A batch of sequences of different lengths is stored either

- **padded**: one array ``(T, B, *)`` (or ``(B, T, *)`` with ``batch_first``), where
  sequence ``b`` owns steps ``0 .. lengths[b] - 1`` and the rest is padding; or
- **packed** (:class:`PackedSequence`): only the valid steps, time-major, with the
  sequences sorted by decreasing length.  ``data`` stacks step 0 of every sequence,
  then step 1 of every sequence still running, and so on; ``batch_sizes[t]`` says how
  many sequences run at step ``t``::

      lengths 3, 2, 1   ->   data = [a0 b0 c0 | a1 b1 | a2],   batch_sizes = [3, 2, 1]

RNN, LSTM and GRU accept a PackedSequence and return one; their padded steps then
change neither the final states nor the reverse direction.

Packing and unpacking are differentiable: each is one gather or scatter of rows whose
backward is the opposite scatter or gather (every valid step appears exactly once, so
no accumulation is needed).

NOTE: with ``enforce_sorted=False`` the batch is sorted by a *stable* sort of the
lengths (ties keep their input order).  PyTorch's sort does not promise stability, so
for tied lengths the order of rows inside ``data`` may differ from PyTorch's; padded
results (``pad_packed_sequence``) and the RNN's outputs and states are the same.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from minidl.autograd import Function
from minidl.backend import array_module
from minidl.tensor import Tensor

__all__ = [
    "PackedSequence",
    "pack_padded_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpad_sequence",
    "pack_sequence",
    "unpack_sequence",
]


# ----------------------------------------------------------------------------- Functions


class _GatherSteps(Function):
    """``x[key]`` where ``key`` picks each valid (time, batch) pair once; backward
    scatters the gradient back (zeros at padding)."""

    def forward(self, x):
        self.in_shape = x.shape
        return x[self.key]

    def backward(self, grad):
        xp = array_module(grad)
        out = xp.zeros(self.in_shape, dtype=grad.dtype)
        out[self.key] = grad  # each position is picked once: assignment, not add.at
        return out


class _ScatterSteps(Function):
    """A ``shape`` array filled with ``padding_value`` and ``out[key] = data``; backward
    gathers ``grad[key]`` (padding gets no gradient)."""

    def forward(self, data):
        xp = array_module(data)
        out = xp.full(self.shape, self.padding_value, dtype=data.dtype)
        out[self.key] = data
        return out

    def backward(self, grad):
        return grad[self.key]


class _PadSequences(Function):
    """Stack sequences of different lengths into one padded array."""

    def forward(self, *sequences):
        xp = array_module(*sequences)
        trailing = sequences[0].shape[1:]
        longest = max(s.shape[0] for s in sequences)
        out = xp.full((len(sequences), longest) + trailing, self.padding_value,
                      dtype=sequences[0].dtype)
        self.spans = []
        for b, seq in enumerate(sequences):
            n = seq.shape[0]
            span = slice(longest - n, longest) if self.left else slice(0, n)
            out[b, span] = seq
            self.spans.append(span)
        return out if self.batch_first else xp.swapaxes(out, 0, 1).copy()

    def backward(self, grad):
        xp = array_module(grad)
        if not self.batch_first:
            grad = xp.swapaxes(grad, 0, 1)
        return tuple(grad[b, span] for b, span in enumerate(self.spans))


# ----------------------------------------------------------------------------- helpers


def _index_array(indices):
    """A host int64 array from an index Tensor / array / list, or None."""
    if indices is None:
        return None
    if isinstance(indices, Tensor):
        indices = indices.numpy()
    return np.asarray(indices, dtype=np.int64)


def _index_tensor(indices):
    """An int64 Tensor (host) from an index Tensor / array / list, or None."""
    if indices is None or isinstance(indices, Tensor):
        return indices
    return Tensor(np.asarray(indices, dtype=np.int64))


def _invert_permutation(permutation):
    if permutation is None:
        return None
    perm = _index_array(permutation)
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size, dtype=np.int64)
    return Tensor(inverse)


def _steps_of(batch_sizes):
    """``(time, slot)`` of every row of packed data: slot ``j`` is the position of the
    sequence in the length-sorted batch."""
    sizes = _index_array(batch_sizes)
    time = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    starts = np.cumsum(sizes) - sizes
    slot = np.arange(time.size, dtype=np.int64) - np.repeat(starts, sizes)
    return time, slot


def _lengths_from_batch_sizes(batch_sizes):
    """Sorted lengths: sequence ``j`` runs while ``batch_sizes[t] > j``."""
    sizes = _index_array(batch_sizes)
    if sizes.size == 0:
        return np.zeros(0, dtype=np.int64)
    return (sizes[None, :] > np.arange(sizes[0])[:, None]).sum(axis=1).astype(np.int64)


def _lengths_array(lengths, op):
    if isinstance(lengths, Tensor):
        lengths = lengths.numpy()
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"{op}: lengths must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{op}: lengths must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _check_tensor(op, name, value):
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")


# ----------------------------------------------------------------------------- PackedSequence


class PackedSequence(
    namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])
):
    r"""A batch of variable-length sequences with the padding left out (see the module doc).

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`, not by hand.

    Attributes
    ----------
    data : Tensor, shape ``(sum(lengths), *)``
        The valid steps, time-major, sequences sorted by decreasing length.
    batch_sizes : Tensor (int64), shape ``(max(lengths),)``
        How many sequences run at each step.
    sorted_indices : Tensor (int64) or None
        ``sorted_indices[j]`` is the original batch index of the ``j``-th longest
        sequence (None when the input was already sorted).
    unsorted_indices : Tensor (int64) or None
        The inverse permutation.
    """

    __slots__ = ()

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None:
            unsorted_indices = _invert_permutation(sorted_indices)
        if batch_sizes is None:
            # PackedSequence((data, batch_sizes)), as PyTorch allows
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise TypeError(
                    "PackedSequence: give data and batch_sizes (or one (data, batch_sizes) "
                    f"pair), got {type(data).__name__}"
                )
            data, batch_sizes = data
        batch_sizes = _index_tensor(batch_sizes)
        sorted_indices = _index_tensor(sorted_indices)
        unsorted_indices = _index_tensor(unsorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        """Move or cast ``data`` (the index tensors stay on the host, as in PyTorch)."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self
        return type(self)(data, self.batch_sizes, self.sorted_indices, self.unsorted_indices)

    def cpu(self):
        return self.to("cpu")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    @property
    def is_cuda(self):
        return self.data.device == "cuda"


# ----------------------------------------------------------------------------- pack / pad


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    r"""Pack a padded batch of variable-length sequences.

    Parameters
    ----------
    input : Tensor, shape ``(T, B, *)``, or ``(B, T, *)`` with ``batch_first``
        The padded batch; sequence ``b`` owns steps ``0 .. lengths[b] - 1``.
    lengths : list of int, ndarray or Tensor, shape ``(B,)``
        Each in ``[1, T]``.
    batch_first : bool, default False
    enforce_sorted : bool, default True
        If True, ``lengths`` must be in decreasing order (an error otherwise); if False
        the batch is sorted here and the permutation kept in the result.

    Returns
    -------
    PackedSequence

    Raises
    ------
    RuntimeError
        For a wrong number of lengths, a length <= 0, or unsorted lengths with
        ``enforce_sorted=True`` (PyTorch's messages).
    ValueError
        For a length longer than the input's time dimension (PyTorch reads past the
        end of the input there).

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.utils.rnn import pack_padded_sequence
    >>> x = minidl.arange(6.0).reshape(3, 2)  # 3 steps, 2 sequences
    >>> packed = pack_padded_sequence(x, [3, 1])
    >>> packed.data.tolist(), packed.batch_sizes.tolist()
    ([0.0, 1.0, 2.0, 4.0], [2, 1, 1])
    """
    op = "pack_padded_sequence"
    _check_tensor(op, "input", input)
    if input.ndim < 2:
        raise ValueError(
            f"{op}: input must have a time and a batch dimension, got shape {tuple(input.shape)}"
        )
    lengths = _lengths_array(lengths, op)
    batch_dim, time_dim = (0, 1) if batch_first else (1, 0)
    batch, steps = input.shape[batch_dim], input.shape[time_dim]
    if lengths.size != batch:
        raise RuntimeError(
            f"{op}: Expected `len(lengths)` to be equal to batch_size, but got {lengths.size} "
            f"(batch_size={batch}, input shape {tuple(input.shape)}, batch_first={batch_first})"
        )
    too_long = np.flatnonzero(lengths > steps)
    if too_long.size:
        b = int(too_long[0])
        raise ValueError(
            f"{op}: sequence {b} has length {int(lengths[b])}, longer than the {steps} time "
            f"steps of the input (input shape {tuple(input.shape)}, batch_first={batch_first})"
        )
    if (lengths <= 0).any():
        raise RuntimeError(
            f"{op}: Length of all samples has to be greater than 0, but found an element in "
            f"'lengths' that is <= 0 (lengths {lengths.tolist()})"
        )
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise RuntimeError(
                f"{op}: `lengths` array must be sorted in decreasing order when "
                "`enforce_sorted` is True. You can pass `enforce_sorted=False` to "
                "pack_padded_sequence and/or pack_sequence to sidestep this requirement if "
                f"you do not need ONNX exportability. (lengths {lengths.tolist()})"
            )
        sorted_indices = None
        order = np.arange(batch, dtype=np.int64)
    else:
        order = np.argsort(-lengths, kind="stable").astype(np.int64)
        sorted_indices = Tensor(order)
    sorted_lengths = lengths[order]
    batch_sizes = (sorted_lengths[None, :] > np.arange(sorted_lengths[0])[:, None]).sum(axis=1)
    time, slot = _steps_of(batch_sizes)
    original = order[slot]
    key = (original, time) if batch_first else (time, original)
    data = _GatherSteps.apply(input, key=key)
    return PackedSequence(data, Tensor(batch_sizes.astype(np.int64)), sorted_indices, None)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    r"""Undo :func:`pack_padded_sequence`: the padded batch, in the original order.

    Parameters
    ----------
    sequence : PackedSequence
    batch_first : bool, default False
        Return ``(B, T, *)`` instead of ``(T, B, *)``.
    padding_value : float, default 0.0
    total_length : int, optional
        Pad to this many steps (at least the longest length), e.g. to get back the
        length of the input that was packed.

    Returns
    -------
    padded : Tensor, shape ``(T, B, *)`` or ``(B, T, *)``
    lengths : Tensor (int64), shape ``(B,)``
        In the original batch order.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    >>> x = minidl.arange(6.0).reshape(3, 2)
    >>> padded, lengths = pad_packed_sequence(
    ...     pack_padded_sequence(x, [1, 3], enforce_sorted=False), padding_value=-1)
    >>> padded.tolist(), lengths.tolist()
    ([[0.0, 1.0], [-1.0, 3.0], [-1.0, 5.0]], [1, 3])
    """
    op = "pad_packed_sequence"
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"{op}: expected a PackedSequence, got {type(sequence).__name__}")
    data = sequence.data
    sorted_lengths = _lengths_from_batch_sizes(sequence.batch_sizes)
    batch = sorted_lengths.size
    longest = int(sorted_lengths[0]) if batch else 0
    if total_length is not None:
        if total_length < longest:
            raise ValueError(
                f"{op}: Expected total_length to be at least the length of the longest "
                f"sequence in input, but got total_length={total_length} and max sequence "
                f"length being {longest}"
            )
        steps = int(total_length)
    else:
        steps = longest
    sorted_indices = _index_array(sequence.sorted_indices)
    unsorted_indices = _index_array(sequence.unsorted_indices)
    time, slot = _steps_of(sequence.batch_sizes)
    original = slot if sorted_indices is None else sorted_indices[slot]
    trailing = tuple(data.shape[1:])
    if batch_first:
        shape, key = (batch, steps) + trailing, (original, time)
    else:
        shape, key = (steps, batch) + trailing, (time, original)
    padded = _ScatterSteps.apply(data, key=key, shape=shape, padding_value=padding_value)
    lengths = sorted_lengths if unsorted_indices is None else sorted_lengths[unsorted_indices]
    return padded, Tensor(lengths.astype(np.int64))


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    r"""Pad a list of sequences of shape ``(L_b, *)`` to one tensor.

    Parameters
    ----------
    sequences : list of Tensor
        Same trailing shape ``*`` and dtype; lengths may differ.
    batch_first : bool, default False
        ``(B, T, *)`` instead of ``(T, B, *)``, with ``T = max L_b``.
    padding_value : float, default 0.0
    padding_side : {"right", "left"}
        Where the padding goes.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.utils.rnn import pad_sequence
    >>> pad_sequence([minidl.ones(3), minidl.ones(1)], batch_first=True).tolist()
    [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
    """
    op = "pad_sequence"
    if padding_side not in ("right", "left"):
        raise ValueError(
            f"{op}: Expected padding_side to be one of left or right, but got {padding_side}."
        )
    sequences = list(sequences)
    if not sequences:
        raise ValueError(f"{op}: received an empty list of sequences")
    for i, seq in enumerate(sequences):
        _check_tensor(op, f"sequences[{i}]", seq)
        if seq.ndim == 0:
            raise ValueError(f"{op}: sequences[{i}] is 0-d; each sequence needs a time dimension")
    first = sequences[0]
    for i, seq in enumerate(sequences[1:], start=1):
        if tuple(seq.shape[1:]) != tuple(first.shape[1:]):
            raise ValueError(
                f"{op}: all sequences must have the same trailing dimensions, got "
                f"{tuple(first.shape)} for sequence 0 and {tuple(seq.shape)} for sequence {i}"
            )
        if seq.dtype != first.dtype:
            raise TypeError(
                f"{op}: all sequences must have the same dtype, got {first.dtype} for "
                f"sequence 0 and {seq.dtype} for sequence {i}"
            )
    return _PadSequences.apply(*sequences, batch_first=bool(batch_first),
                               padding_value=padding_value, left=padding_side == "left")


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    r"""Split a padded batch back into a list of sequences (the inverse of
    :func:`pad_sequence` with right padding).

    Parameters
    ----------
    padded_sequences : Tensor, shape ``(T, B, *)`` or ``(B, T, *)``
    lengths : list of int, ndarray or Tensor, shape ``(B,)``
    batch_first : bool, default False

    Returns
    -------
    list of Tensor, the ``b``-th of shape ``(lengths[b], *)``
    """
    op = "unpad_sequence"
    _check_tensor(op, "padded_sequences", padded_sequences)
    lengths = _lengths_array(lengths, op)
    padded = padded_sequences if batch_first else padded_sequences.transpose(0, 1)
    if lengths.size != padded.shape[0]:
        raise ValueError(
            f"{op}: got {lengths.size} lengths for a batch of {padded.shape[0]} (input shape "
            f"{tuple(padded_sequences.shape)}, batch_first={batch_first})"
        )
    return [padded[b, :int(n)] for b, n in enumerate(lengths)]


def pack_sequence(sequences, enforce_sorted=True):
    r"""Pack a list of variable-length sequences: :func:`pad_sequence` then
    :func:`pack_padded_sequence`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.nn.utils.rnn import pack_sequence
    >>> packed = pack_sequence([minidl.tensor([1.0, 2.0]), minidl.tensor([3.0])])
    >>> packed.data.tolist(), packed.batch_sizes.tolist()
    ([1.0, 3.0, 2.0], [2, 1])
    """
    sequences = list(sequences)
    lengths = [int(s.shape[0]) if isinstance(s, Tensor) and s.ndim else 0 for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences):
    r"""Split a PackedSequence into the list of its sequences, in the original order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)


# ----------------------------------------------------------------------------- for nn.rnn


def _packed_to_padded(packed):
    """Padded time-major data in *sorted* order and the sorted lengths (for the RNNs)."""
    sorted_lengths = _lengths_from_batch_sizes(packed.batch_sizes)
    time, slot = _steps_of(packed.batch_sizes)
    shape = (int(sorted_lengths[0]), sorted_lengths.size) + tuple(packed.data.shape[1:])
    padded = _ScatterSteps.apply(packed.data, key=(time, slot), shape=shape, padding_value=0.0)
    return padded, sorted_lengths


def _padded_to_packed_data(padded, batch_sizes):
    """The inverse of :func:`_packed_to_padded`: packed rows from sorted padded data."""
    time, slot = _steps_of(batch_sizes)
    return _GatherSteps.apply(padded, key=(time, slot))

