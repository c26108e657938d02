"""Sequence alphabets as data: which letters exist, what they mean, how they encode.

An :class:`Alphabet` names the *canonical* letters (one one-hot column each, in order), the
letters that stand for an unknown or ambiguous residue, and, for nucleic acids, the
complement of every letter.  Encoders (:mod:`minidl.bio.encode`) read everything from here,
so a new alphabet is a new instance, not new code.

DNA
---
``A C G T`` are the four columns.  Lowercase (soft-masked repeats in genome FASTA files) is
the same base.  ``N`` and the other IUPAC ambiguity codes are accepted:

==========  ===============  =====================  ==========
code        meaning          one-hot row            complement
==========  ===============  =====================  ==========
``R``       A or G           0.5 A + 0.5 G          ``Y``
``Y``       C or T           0.5 C + 0.5 T          ``R``
``S``       C or G           0.5 C + 0.5 G          ``S``
``W``       A or T           0.5 A + 0.5 T          ``W``
``K``       G or T           0.5 G + 0.5 T          ``M``
``M``       A or C           0.5 A + 0.5 C          ``K``
``B``       not A            1/3 C, G, T            ``V``
``D``       not C            1/3 A, G, T            ``H``
``H``       not G            1/3 A, C, T            ``D``
``V``       not T            1/3 A, C, G            ``B``
``N``       any base         0.25 everywhere        ``N``
==========  ===============  =====================  ==========

so every row of a one-hot matrix sums to 1 and is the probability of each base.  ``U``
(RNA) reads as ``T``.  Integer tokens are ``A=0, C=1, G=2, T=3`` and ``4`` for any other
accepted letter (an ambiguity code becomes the unknown token: a token cannot be half A).

Protein
-------
The 20 standard amino acids ``ACDEFGHIKLMNPQRSTVWY`` are the columns, ``X`` is unknown
(uniform row, 1/20 each).  Rare codes are mapped as documented by IUPAC-IUBMB and as
single-sequence predictors usually do: ``U`` (selenocysteine) -> ``C``, ``O``
(pyrrolysine) -> ``K``, ``B`` (D or N) -> half ``D`` half ``N``, ``Z`` (E or Q) -> half
``E`` half ``Q``, ``J`` (I or L) -> half ``I`` half ``L``; ``*`` (stop) and ``-``
(gap) are rejected.  Integer tokens are ``0..19`` in column order and ``20`` for ``X``
and the ambiguous codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Alphabet", "DNA", "PROTEIN", "get_alphabet", "reverse_complement"]


@dataclass(frozen=True)
class Alphabet:
    """A sequence alphabet.

    Parameters
    ----------
    name : str
    letters : str
        The canonical letters, one one-hot column each, in column order.
    unknown : str
        The letter for "any residue" (uniform one-hot row).
    ambiguous : dict of str to str
        Other accepted letters -> the canonical letters they may stand for (a one-hot row
        spreads evenly over them).  A one-letter value is a synonym (``U`` -> ``T``).
    complement : dict of str to str, optional
        For nucleic acids: the complement of every accepted upper-case letter.
    """

    name: str
    letters: str
    unknown: str
    ambiguous: dict = field(default_factory=dict)
    complement: dict | None = None

    @property
    def size(self) -> int:
        """Number of one-hot columns."""
        return len(self.letters)

    @property
    def unknown_token(self) -> int:
        """The integer token of unknown and ambiguous letters (``size``)."""
        return len(self.letters)

    def accepted(self) -> str:
        """Every accepted upper-case letter (canonical, unknown, ambiguous)."""
        return self.letters + self.unknown + "".join(self.ambiguous)

    def one_hot_table(self, dtype=np.float32) -> np.ndarray:
        """A ``(256, size)`` lookup: row ``b`` is the one-hot row of byte ``b``.

        Rows of bytes that are not accepted letters are NaN, so an encoder can find them
        (and name them) with one ``isnan`` instead of a Python loop over characters.
        """
        table = np.full((256, self.size), np.nan, dtype=dtype)
        rows = {letter: np.eye(self.size, dtype=dtype)[i] for i, letter in enumerate(self.letters)}
        rows[self.unknown] = np.full(self.size, 1.0 / self.size, dtype=dtype)
        for code, meaning in self.ambiguous.items():
            row = np.zeros(self.size, dtype=dtype)
            for letter in meaning:
                row[self.letters.index(letter)] += 1.0 / len(meaning)
            rows[code] = row
        for letter, row in rows.items():
            table[ord(letter)] = row
            table[ord(letter.lower())] = row
        return table

    def token_table(self) -> np.ndarray:
        """A ``(256,)`` int16 lookup: canonical letters -> ``0..size-1``, synonyms -> their
        letter's token, other accepted letters -> :attr:`unknown_token`, the rest -> -1."""
        table = np.full(256, -1, dtype=np.int16)
        for letter in self.accepted():
            if letter in self.letters:
                token = self.letters.index(letter)
            elif len(self.ambiguous.get(letter, "")) == 1:
                token = self.letters.index(self.ambiguous[letter])
            else:
                token = self.unknown_token
            table[ord(letter)] = token
            table[ord(letter.lower())] = token
        return table


_IUPAC_DNA = {
    "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT", "M": "AC",
    "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "U": "T",
}
_DNA_COMPLEMENT = {
    "A": "T", "C": "G", "G": "C", "T": "A", "U": "A", "N": "N",
    "R": "Y", "Y": "R", "S": "S", "W": "W", "K": "M", "M": "K",
    "B": "V", "V": "B", "D": "H", "H": "D",
}

#: DNA: A, C, G, T; N unknown; IUPAC ambiguity codes and lowercase accepted
DNA = Alphabet("dna", "ACGT", "N", _IUPAC_DNA, _DNA_COMPLEMENT)

#: protein: the 20 standard amino acids; X unknown; U->C, O->K, B, Z, J ambiguous
PROTEIN = Alphabet(
    "protein", "ACDEFGHIKLMNPQRSTVWY", "X",
    {"U": "C", "O": "K", "B": "DN", "Z": "EQ", "J": "IL"},
)

_ALPHABETS = {"dna": DNA, "protein": PROTEIN}


def get_alphabet(name) -> Alphabet:
    """An :class:`Alphabet` by name (``"dna"``, ``"protein"``), or the one given."""
    if isinstance(name, Alphabet):
        return name
    try:
        return _ALPHABETS[str(name).lower()]
    except KeyError:
        raise ValueError(
            f"unknown alphabet {name!r}; expected one of {', '.join(sorted(_ALPHABETS))}"
        ) from None


def _complement_table():
    table = np.arange(256, dtype=np.uint8)
    for letter, comp in _DNA_COMPLEMENT.items():
        table[ord(letter)] = ord(comp)
        table[ord(letter.lower())] = ord(comp.lower())
    return table


_COMPLEMENT_BYTES = _complement_table()


def reverse_complement(sequence: str) -> str:
    """The reverse complement of a DNA sequence: reversed *and* complemented.

    Case and IUPAC codes are kept (``R`` <-> ``Y``, ``N`` stays ``N``); ``U`` becomes ``A``.

    >>> reverse_complement("ACGTN")
    'NACGT'
    >>> reverse_complement("aaCR")
    'YGtt'
    """
    raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    return _COMPLEMENT_BYTES[raw][::-1].tobytes().decode("ascii")
