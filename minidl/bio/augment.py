r"""Data augmentation for one-hot DNA: reverse complement and random shifts.

Both strands of DNA carry the same information read in opposite directions, so a
binding site or promoter element on the minus strand appears in the sequence as its
*reverse complement*.  Training on both orientations (and, at prediction, averaging the
model's outputs on both) is the standard, nearly free gain for DNA models *whose labels do
not depend on the strand* (a transcription factor binds either).  A promoter has a
direction, so its reverse complement is not a promoter read the other way; there the
augmentation costs accuracy (shipped promoters: 0.937 with it, 0.946-0.957 without), and
``minidl-bio dna train --strand auto`` checks which case a dataset is
(:func:`minidl.bio.kmer_model.choose_strand`).

On a channels-first one-hot batch ``x`` of shape ``(N, 4, L)`` with channels ``A C G T``,
complementing swaps A<->T and C<->G, which is reversing the channel axis, and reversing
the sequence reverses the position axis:

.. math::

    \operatorname{rc}(x)[n, k, t] = x[n, 3 - k, L - 1 - t].

Ambiguity rows follow: ``R`` = (0.5 A, 0.5 G) becomes (0.5 C, 0.5 T) = ``Y``, which is
``R``'s complement.  A random shift moves the sequence up to ``max_shift`` positions left
or right, filling the vacated positions with ``N`` (0.25 in every channel): the model
sees the motif at slightly different offsets, as in real windows around a site.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reverse_complement_onehot", "RandomReverseComplement", "RandomShift"]


def reverse_complement_onehot(x):
    """Reverse complement of a one-hot DNA batch ``(N, 4, L)`` (or one ``(4, L)``), a
    new array.  Also works on a :class:`minidl.Tensor` (differentiably, through indexing)."""
    if hasattr(x, "flip"):
        return x.flip((-2, -1))
    return np.ascontiguousarray(np.asarray(x)[..., ::-1, ::-1])


def _generator(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class RandomReverseComplement:
    """Replace each sequence of a ``(N, 4, L)`` batch by its reverse complement with
    probability ``p`` (seeded).  Call on a NumPy batch; returns a new array."""

    def __init__(self, p=0.5, seed=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomReverseComplement: p must be in [0, 1], got {p}")
        self.p = p
        self.rng = _generator(seed)

    def __call__(self, x):
        x = np.array(x, copy=True)
        flip = self.rng.random(x.shape[0]) < self.p
        x[flip] = x[flip][:, ::-1, ::-1]
        return x


class RandomShift:
    """Shift each sequence of a ``(N, K, L)`` batch by a random offset in
    ``[-max_shift, max_shift]``, filling with ``fill`` (default 1/K: the unknown letter)."""

    def __init__(self, max_shift=3, fill=None, seed=None):
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)
        self.fill = fill
        self.rng = _generator(seed)

    def __call__(self, x):
        x = np.asarray(x)
        if self.max_shift == 0:
            return x.copy()
        n, k, length = x.shape
        fill = 1.0 / k if self.fill is None else self.fill
        out = np.full_like(x, fill)
        shifts = self.rng.integers(-self.max_shift, self.max_shift + 1, size=n)
        for i, s in enumerate(shifts):
            if s >= 0:
                out[i, :, s:] = x[i, :, :length - s]
            else:
                out[i, :, :length + s] = x[i, :, -s:]
        return out
