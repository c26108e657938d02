"""Reading sequence files: FASTA (streaming) and labelled tables (CSV/TSV).

Both read plain or gzip-compressed files (recognised by their first two bytes, not their
name) and report problems by file, record and line number, because a biologist's file
with one broken record in 40,000 should say which one.

FASTA
-----
``>`` starts a header line (the id is its first word, the rest the description); the
sequence may span any number of lines; blank lines are ignored; ``;`` comment lines (old
FASTA) are skipped.  Errors: sequence text before the first header ("no header"), a
record with no sequence, and, with ``alphabet=`` and ``strict=True``, a character outside
the alphabet (naming record, line and column).

Tables
------
A CSV or TSV (the delimiter is sniffed from the header line) with a header row and at
least the columns ``sequence`` and a label column (``label`` by default); optional
``split`` (``train``/``valid``/``test``) and ``id``.  Labels may be integers or class
names; see :func:`read_labelled_table`.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass
from pathlib import Path

from minidl.bio.alphabets import get_alphabet

__all__ = ["FastaRecord", "read_fasta", "iter_fasta", "write_fasta", "read_labelled_table",
           "open_text", "LabelledTable"]


@dataclass
class FastaRecord:
    """One FASTA record: ``id`` (first word of the header), ``description`` (the rest),
    ``sequence`` (joined lines, no whitespace) and the 1-based ``line`` of its header."""

    id: str
    description: str
    sequence: str
    line: int = 0


def open_text(path):
    """Open a text file for reading, gunzipping it when it starts with the gzip magic."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_fasta(path, alphabet=None, strict=True):
    """Yield the :class:`FastaRecord` s of a FASTA file one at a time (streaming).

    Parameters
    ----------
    path : str or Path
        Plain or gzip-compressed FASTA.
    alphabet : str or Alphabet, optional
        When given with ``strict=True``, every sequence character must belong to it
        (upper or lower case).
    strict : bool

    Raises
    ------
    ValueError
        ``"<file>, line L: sequence before the first header"``, ``"<file>, record 'id'
        (line L): empty sequence"``, ``"<file>, record 'id', line L, column C: invalid
        character 'x' for the dna alphabet"``.
    """
    name = os.fspath(path)
    accepted = None
    if alphabet is not None and strict:
        alpha = get_alphabet(alphabet)
        accepted = set(alpha.accepted()) | set(alpha.accepted().lower())
    header = None
    header_line = 0
    chunks: list[str] = []

    def finish():
        if not chunks:
            raise ValueError(f"{name}, record {header[0]!r} (line {header_line}): empty sequence")
        return FastaRecord(header[0], header[1], "".join(chunks), header_line)

    with open_text(path) as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                if header is not None:
                    yield finish()
                text = line[1:].strip()
                if not text:
                    raise ValueError(f"{name}, line {number}: header without an id")
                parts = text.split(maxsplit=1)
                header = (parts[0], parts[1] if len(parts) > 1 else "")
                header_line = number
                chunks = []
                continue
            if header is None:
                raise ValueError(
                    f"{name}, line {number}: sequence before the first header (a FASTA "
                    "record starts with a '>' line)"
                )
            line = "".join(line.split())
            if accepted is not None:
                for column, ch in enumerate(line, start=1):
                    if ch not in accepted:
                        raise ValueError(
                            f"{name}, record {header[0]!r}, line {number}, column {column}: "
                            f"invalid character {ch!r} for the {get_alphabet(alphabet).name} "
                            "alphabet"
                        )
            chunks.append(line)
    if header is not None:
        yield finish()


def read_fasta(path, alphabet=None, strict=True):
    """All records of a FASTA file as a list (see :func:`iter_fasta`)."""
    records = list(iter_fasta(path, alphabet=alphabet, strict=strict))
    if not records:
        raise ValueError(f"{os.fspath(path)}: no FASTA records found")
    return records


def write_fasta(path, records, width=80):
    """Write ``(id, sequence)`` pairs or :class:`FastaRecord` s as FASTA (atomic write)."""
    from minidl.io.atomic import atomic_write_bytes

    lines = []
    for rec in records:
        rid, seq = (rec.id, rec.sequence) if isinstance(rec, FastaRecord) else rec
        lines.append(f">{rid}")
        lines.extend(seq[i:i + width] for i in range(0, len(seq), width))
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode("ascii"))


@dataclass
class LabelledTable:
    """A labelled sequence table: parallel lists plus the class names.

    ``labels`` are integers ``0..K-1``; ``classes[k]`` is the name of class ``k`` (the
    integer itself as a string when the file had integers); ``split`` is None when the
    file has no ``split`` column; ``extra`` holds the other columns.
    """

    sequences: list
    labels: list
    classes: list
    ids: list
    split: list | None
    extra: dict


def read_labelled_table(path, sequence_column="sequence", label_column="label",
                        classes=None):
    """Read a CSV/TSV (optionally gzip) of labelled sequences.

    Labels: if every label is an integer the classes are ``0..max`` (names ``"0"``,
    ``"1"``...); otherwise they are class names, numbered in sorted order unless
    ``classes`` gives the order.  At least two classes must be present overall.

    Raises
    ------
    ValueError
        Missing columns (naming those present), empty sequence or label (naming the
        line), an unknown ``split`` value, a label not in ``classes``, fewer than two
        classes.
    """
    name = os.fspath(path)
    with open_text(path) as fh:
        first = fh.readline()
        if not first.strip():
            raise ValueError(f"{name}: empty file (expected a header row)")
        delimiter = "\t" if first.count("\t") > first.count(",") else ","
        reader = csv.DictReader(io.StringIO(first + fh.read()), delimiter=delimiter)
        fields = reader.fieldnames or []
        missing = [c for c in (sequence_column, label_column) if c not in fields]
        if missing:
            raise ValueError(
                f"{name}: missing column(s) {', '.join(missing)}; the header has "
                f"{', '.join(fields)}"
            )
        sequences, raw_labels, ids, split = [], [], [], []
        extra = {f: [] for f in fields if f not in (sequence_column, label_column, "split", "id")}
        has_split, has_id = "split" in fields, "id" in fields
        for number, row in enumerate(reader, start=2):
            seq = (row.get(sequence_column) or "").strip()
            label = (row.get(label_column) or "").strip()
            if not seq:
                raise ValueError(f"{name}, line {number}: empty sequence")
            if not label:
                raise ValueError(f"{name}, line {number}: empty label")
            sequences.append(seq)
            raw_labels.append(label)
            ids.append(row["id"] if has_id and row.get("id") else f"seq{number - 1}")
            if has_split:
                s = (row.get("split") or "").strip().lower()
                s = {"val": "valid", "validation": "valid"}.get(s, s)
                if s not in ("train", "valid", "test"):
                    raise ValueError(
                        f"{name}, line {number}: split must be train, valid or test, got "
                        f"{row.get('split')!r}"
                    )
                split.append(s)
            for f in extra:
                extra[f].append(row.get(f))
    if not sequences:
        raise ValueError(f"{name}: no rows after the header")
    labels, classes = _encode_labels(raw_labels, classes, name)
    return LabelledTable(sequences, labels, classes, ids, split if has_split else None, extra)


def _encode_labels(raw, classes, name):
    if classes is not None:
        classes = [str(c) for c in classes]
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(raw) - set(index))
        if unknown:
            raise ValueError(f"{name}: labels {unknown[:5]} are not among the classes {classes}")
        return [index[v] for v in raw], classes
    try:
        ints = [int(v) for v in raw]
    except ValueError:
        ints = None
    if ints is not None:
        if min(ints) < 0:
            raise ValueError(f"{name}: integer labels must be >= 0, got {min(ints)}")
        classes = [str(i) for i in range(max(ints) + 1)]
        labels = ints
    else:
        classes = sorted(set(raw))
        index = {c: i for i, c in enumerate(classes)}
        labels = [index[v] for v in raw]
    if len(set(labels)) < 2:
        raise ValueError(f"{name}: need at least two classes, found only {sorted(set(raw))}")
    return labels, classes
