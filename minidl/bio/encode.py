r"""Sequences to arrays: one-hot matrices, integer tokens, padding and masks.

One-hot
-------
A sequence :math:`s_1 \dots s_L` over an alphabet with :math:`K` letters becomes a
:math:`K \times L` matrix :math:`X` with :math:`X_{k, t} = P(s_t = \text{letter}_k)`:
a 1 in the letter's row for a known letter, :math:`1/K` in every row for the unknown letter
(``N``: 0.25), an even split for an ambiguity code (``R`` = A or G: 0.5, 0.5).  The layout
is channels-first ``(N, K, L)``, what ``Conv1d`` reads.

Padding and cropping
--------------------
Batches need one length.  A shorter sequence is padded with all-zero columns (padding is
*no* base, unlike ``N`` which is *any* base) and a boolean mask marks the real positions;
a longer one is cropped, keeping the centre by default (promoter and binding-site windows
are usually centred on the site).

Errors name the sequence (its index or id) and the position of the first bad character.
"""

from __future__ import annotations

import numpy as np

from minidl.bio.alphabets import Alphabet, get_alphabet

__all__ = ["one_hot", "tokens", "pad_or_crop", "decode_one_hot"]


def _as_bytes(sequence, index, name):
    if not isinstance(sequence, str):
        raise TypeError(f"{name}: sequence {index} is {type(sequence).__name__}, expected str")
    try:
        return np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        bad = next(i for i, ch in enumerate(sequence) if ord(ch) > 127)
        raise ValueError(
            f"{name}: sequence {index} has a non-ASCII character {sequence[bad]!r} at "
            f"position {bad + 1}"
        ) from None


def _bad_character(alphabet, sequence, positions, index, ids, name):
    where = ids[index] if ids is not None else f"#{index}"
    pos = int(positions[0])
    return ValueError(
        f"{name}: sequence {where} has an invalid character {sequence[pos]!r} at position "
        f"{pos + 1} for the {alphabet.name} alphabet (accepted: {alphabet.accepted()} and "
        "lowercase)"
    )


def _window(n, length, crop):
    """``(start, stop)`` of the kept part of a sequence of ``n`` letters cropped to
    ``length``."""
    if n <= length:
        return 0, n
    if crop == "center":
        start = (n - length) // 2
    elif crop == "left":  # keep the left end
        start = 0
    elif crop == "right":
        start = n - length
    else:
        raise ValueError(f"crop must be 'center', 'left' or 'right', got {crop!r}")
    return start, start + length


def one_hot(sequences, alphabet="dna", length=None, crop="center", ids=None,
            dtype=np.float32, return_mask=False):
    """One-hot encode sequences as a ``(N, K, L)`` array (channels first).

    Parameters
    ----------
    sequences : str or sequence of str
    alphabet : str or Alphabet
        ``"dna"`` (default) or ``"protein"``.
    length : int, optional
        Pad (zero columns) or crop every sequence to this length.  Without it all
        sequences must have the same length.
    crop : {"center", "left", "right"}
        Which part of a longer sequence is kept.
    ids : sequence of str, optional
        Names used in error messages.
    return_mask : bool
        Also return the ``(N, L)`` boolean mask of real (not padded) positions.

    Raises
    ------
    ValueError
        An invalid character (naming the sequence and position), or sequences of
        different lengths without ``length``.

    Examples
    --------
    >>> one_hot("ACGN")[0]
    array([[1.  , 0.  , 0.  , 0.25],
           [0.  , 1.  , 0.  , 0.25],
           [0.  , 0.  , 1.  , 0.25],
           [0.  , 0.  , 0.  , 0.25]], dtype=float32)
    """
    alphabet = get_alphabet(alphabet)
    if isinstance(sequences, str):
        sequences = [sequences]
    sequences = list(sequences)
    lengths = [len(s) for s in sequences]
    if length is None:
        if len(set(lengths)) > 1:
            raise ValueError(
                f"one_hot: sequences have different lengths ({min(lengths)}-{max(lengths)}); "
                "pass length= to pad or crop them to one length"
            )
        length = lengths[0] if lengths else 0
    table = alphabet.one_hot_table(dtype)
    out = np.zeros((len(sequences), length, alphabet.size), dtype=dtype)
    mask = np.zeros((len(sequences), length), dtype=bool)
    for i, seq in enumerate(sequences):
        raw = _as_bytes(seq, i, "one_hot")
        start, stop = _window(len(raw), length, crop)
        rows = table[raw[start:stop]]
        if rows.size and np.isnan(rows[:, 0]).any():
            bad = np.flatnonzero(np.isnan(rows[:, 0])) + start
            raise _bad_character(alphabet, seq, bad, i, ids, "one_hot")
        out[i, : stop - start] = rows
        mask[i, : stop - start] = True
    out = np.ascontiguousarray(out.transpose(0, 2, 1))
    return (out, mask) if return_mask else out


def tokens(sequences, alphabet="dna", length=None, crop="center", pad_token=-1, ids=None,
           return_mask=False):
    """Integer tokens ``(N, L)`` int64: letters in column order ``0..K-1``, unknown and
    ambiguous letters ``K`` (:attr:`Alphabet.unknown_token`), padding ``pad_token``.

    For an :class:`~minidl.nn.Embedding` use ``pad_token=K + 1`` (or ``padding_idx``).

    >>> tokens(["ACGT", "AN"], length=4).tolist()
    [[0, 1, 2, 3], [0, 4, -1, -1]]
    """
    alphabet = get_alphabet(alphabet)
    if isinstance(sequences, str):
        sequences = [sequences]
    sequences = list(sequences)
    lengths = [len(s) for s in sequences]
    if length is None:
        length = max(lengths) if lengths else 0
    table = alphabet.token_table()
    out = np.full((len(sequences), length), pad_token, dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=bool)
    for i, seq in enumerate(sequences):
        raw = _as_bytes(seq, i, "tokens")
        start, stop = _window(len(raw), length, crop)
        values = table[raw[start:stop]]
        if (values < 0).any():
            raise _bad_character(alphabet, seq, np.flatnonzero(values < 0) + start, i, ids,
                                 "tokens")
        out[i, : stop - start] = values
        mask[i, : stop - start] = True
    return (out, mask) if return_mask else out


def pad_or_crop(array, length, axis=-1, crop="center", value=0):
    """Pad with ``value`` (at the end) or crop (keeping ``crop``) ``array`` along ``axis``
    to ``length``."""
    array = np.asarray(array)
    n = array.shape[axis]
    if n >= length:
        start, stop = _window(n, length, crop)
        return np.take(array, np.arange(start, stop), axis=axis)
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, length - n)
    return np.pad(array, widths, constant_values=value)


def decode_one_hot(matrix, alphabet="dna"):
    """The most likely letter at each position of a ``(K, L)`` one-hot (or probability)
    matrix; all-zero (padding) columns are dropped and uniform ones give the unknown
    letter.

    >>> decode_one_hot(one_hot("ACGTN")[0])
    'ACGTN'
    """
    alphabet: Alphabet = get_alphabet(alphabet)
    matrix = np.asarray(matrix)
    letters = []
    for column in matrix.T:
        if not column.any():
            continue
        if np.allclose(column, column[0]):
            letters.append(alphabet.unknown)
        else:
            letters.append(alphabet.letters[int(np.argmax(column))])
    return "".join(letters)
