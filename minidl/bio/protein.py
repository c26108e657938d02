r"""Protein secondary structure: per-residue tagging with bidirectional LSTMs.

Data
----
A table (CSV/TSV, gzip) with ``sequence`` and ``ss3`` (``H`` helix, ``E`` strand, ``C``
coil; one letter per residue) or ``ss8`` (DSSP's 8 states, reduced to 3 by the usual
rule: ``H G I`` -> ``H``, ``E B`` -> ``E``, ``T S C`` and ``-`` -> ``C``), an optional
``split`` and an optional mask column (1 = scored: residues not resolved in the structure
have no label to learn from).  Unscored and padded positions get the target ``-100``,
which :class:`~minidl.nn.CrossEntropyLoss` ignores: their gradient is exactly zero.

Batches
-------
Chains are one-hot encoded (21 columns: 20 amino acids + ``X``; rare codes as documented in
:mod:`minidl.bio.alphabets`, an unknown residue is uniform over the 20), grouped by length
(sorted, then batched, then the batch order shuffled) so that little time goes to padding,
and packed (:func:`~minidl.nn.utils.rnn.pack_padded_sequence`) so the LSTM never steps
through padding: a chain's outputs are exactly those of running it alone.

Models
------
:class:`BiLSTMTagger`: (optional convolution over a window of residues, the local
context) -> stacked BiLSTM -> linear layer per residue to 3 logits.

Q3 is the fraction of scored residues whose predicted state is right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from minidl import nn
from minidl.bio.alphabets import PROTEIN
from minidl.bio.io import open_text

__all__ = ["SS3", "SS8_TO_SS3", "ProteinData", "read_ss_table", "encode_chain",
           "length_batches", "collate_chains", "BiLSTMTagger", "build_tagger", "q3_metrics"]

SS3 = "HEC"
SS8_TO_SS3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E",
              "T": "C", "S": "C", "C": "C", "-": "C", " ": "C", "L": "C", "P": "C"}
IGNORE = -100
_MASK_COLUMNS = ("resolved_mask", "eval_mask", "mask")


@dataclass
class ProteinData:
    """Chains per split: ``ids``, ``sequences``, ``labels`` (int arrays, -100 = unscored)."""

    ids: dict = field(default_factory=dict)
    sequences: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    source: str = ""

    def counts(self):
        return "; ".join(
            f"{s} {len(self.sequences[s])} chains, "
            f"{int(sum((lab != IGNORE).sum() for lab in self.labels[s]))} scored residues"
            for s in self.sequences
        )


def _labels_of(states, mask, eight, where):
    table = SS8_TO_SS3 if eight else {c: c for c in SS3}
    out = np.empty(len(states), dtype=np.int64)
    for i, ch in enumerate(states):
        state = table.get(ch.upper())
        if state is None:
            kind = "ss8" if eight else "ss3 (H, E, C)"
            raise ValueError(f"{where}: invalid {kind} state {ch!r} at position {i + 1}")
        out[i] = SS3.index(state)
    if mask is not None:
        out[mask == 0] = IGNORE
    return out


def read_ss_table(path, mask_column=None, seed=0):
    """Read a secondary-structure table into a :class:`ProteinData`.

    ``mask_column``: the column of 0/1 scored flags; default the first present of
    ``resolved_mask``, ``eval_mask``, ``mask`` (none: every residue scored).  Without a
    ``split`` column chains are split 80/10/10 at random (seeded).
    """
    import csv
    import io

    name = os.fspath(path)
    with open_text(path) as fh:
        text = fh.read()
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") >= first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    fields = reader.fieldnames or []
    if "sequence" not in fields or not ({"ss3", "ss8"} & set(fields)):
        raise ValueError(f"{name}: need columns sequence and ss3 (or ss8); the header has "
                         f"{', '.join(fields)}")
    eight = "ss3" not in fields
    label_col = "ss8" if eight else "ss3"
    if mask_column is None:
        mask_column = next((c for c in _MASK_COLUMNS if c in fields), None)
    elif mask_column not in fields:
        raise ValueError(f"{name}: no mask column {mask_column!r}; the header has "
                         f"{', '.join(fields)}")
    rows = []
    for number, row in enumerate(reader, start=2):
        where = f"{name}, line {number}"
        seq, states = (row.get("sequence") or "").strip(), (row.get(label_col) or "").strip()
        if not seq:
            raise ValueError(f"{where}: empty sequence")
        if len(states) != len(seq):
            raise ValueError(f"{where}: {label_col} has {len(states)} states for a sequence "
                             f"of {len(seq)} residues")
        mask = None
        if mask_column:
            flags = (row.get(mask_column) or "").strip()
            if len(flags) != len(seq) or set(flags) - {"0", "1"}:
                raise ValueError(f"{where}: {mask_column} must be one 0/1 per residue")
            mask = np.frombuffer(flags.encode(), dtype=np.uint8) - ord("0")
        split = (row.get("split") or "").strip().lower() or None
        split = {"val": "valid", "validation": "valid"}.get(split, split)
        if split not in (None, "train", "valid", "test"):
            raise ValueError(f"{where}: split must be train, valid or test, got {split!r}")
        rows.append((row.get("id") or f"chain{number - 1}", seq,
                     _labels_of(states, mask, eight, where), split))
    if not rows:
        raise ValueError(f"{name}: no chains")
    if any(r[3] is None for r in rows):
        order = np.random.default_rng(seed).permutation(len(rows))
        cut1, cut2 = int(0.8 * len(rows)), int(0.9 * len(rows))
        for rank, i in enumerate(order):
            split = "train" if rank < cut1 else "valid" if rank < cut2 else "test"
            rows[i] = rows[i][:3] + (split,)
    data = ProteinData(source=name)
    for s in ("train", "valid", "test"):
        chosen = [r for r in rows if r[3] == s]
        data.ids[s] = [r[0] for r in chosen]
        data.sequences[s] = [r[1] for r in chosen]
        data.labels[s] = [r[2] for r in chosen]
    return data


_TABLE = PROTEIN.one_hot_table(np.float32)
# 21 columns: the 20 amino acids, then an "unknown" flag column so the model can tell X
# (uniform over the 20) from a real residue
_INPUT_SIZE = PROTEIN.size + 1


def encode_chain(sequence, where="sequence"):
    """One-hot ``(L, 21)`` float32: 20 amino-acid columns (X and ambiguous codes spread
    evenly) and an unknown flag column."""
    raw = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    rows = _TABLE[raw]
    if np.isnan(rows[:, 0]).any():
        pos = int(np.flatnonzero(np.isnan(rows[:, 0]))[0])
        raise ValueError(f"{where}: invalid amino acid {sequence[pos]!r} at position {pos + 1}")
    unknown = (rows.max(axis=1) < 1.0).astype(np.float32)[:, None]
    return np.concatenate([rows, unknown], axis=1)


def length_batches(lengths, batch_size, shuffle=False, rng=None):
    """Index batches of chains of similar length: sort by length, cut into batches, and
    (when shuffling) shuffle the batch order and the chains within equal-length ties."""
    lengths = np.asarray(lengths)
    if shuffle:
        rng = rng if rng is not None else np.random.default_rng()
        jitter = rng.random(len(lengths))
        order = np.lexsort((jitter, lengths))
    else:
        order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate_chains(encoded, labels=None):
    """Pad a list of ``(L_i, 21)`` chains to ``(N, L_max, 21)``; targets ``(N, L_max)``
    padded with -100; returns ``(x, lengths, y)``."""
    lengths = np.array([len(e) for e in encoded], dtype=np.int64)
    longest = int(lengths.max())
    x = np.zeros((len(encoded), longest, _INPUT_SIZE), dtype=np.float32)
    y = np.full((len(encoded), longest), IGNORE, dtype=np.int64)
    for i, e in enumerate(encoded):
        x[i, : len(e)] = e
        if labels is not None:
            y[i, : len(e)] = labels[i]
    return x, lengths, (y if labels is not None else None)


class BiLSTMTagger(nn.Module):
    """Per-residue tagger: [Conv1d context] -> stacked BiLSTM -> Linear to ``num_classes``.

    Parameters
    ----------
    hidden_size, num_layers, dropout : the LSTM's (dropout between layers and before the
        output layer).
    conv_channels, conv_kernel : a convolution over ``conv_kernel`` neighbouring residues
        before the LSTM (0 channels = none: the plain BiLSTM tagger).
    """

    def __init__(self, input_size=_INPUT_SIZE, hidden_size=128, num_layers=2, dropout=0.25,
                 conv_channels=0, conv_kernel=9, num_classes=3):
        super().__init__()
        self.config = dict(model="bilstm" if not conv_channels else "conv_bilstm",
                           input_size=input_size, hidden_size=hidden_size,
                           num_layers=num_layers, dropout=dropout,
                           conv_channels=conv_channels, conv_kernel=conv_kernel,
                           num_classes=num_classes)
        self.conv = None
        lstm_input = input_size
        if conv_channels:
            self.conv = nn.Sequential(
                nn.Conv1d(input_size, conv_channels, conv_kernel, padding=conv_kernel // 2),
                nn.ReLU())
            lstm_input = conv_channels
        self.lstm = nn.LSTM(lstm_input, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=True, dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, x, lengths=None):
        """``x`` ``(N, L, input_size)``, ``lengths`` ``(N,)`` -> logits ``(N, L, C)``
        (positions past a chain's length are zeros in the LSTM output)."""
        from minidl.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        if self.conv is not None:
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        if lengths is None:
            h, _ = self.lstm(x)
        else:
            lengths = np.asarray(lengths.numpy() if hasattr(lengths, "numpy") else lengths)
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(packed)
            h, _ = pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        return self.out(self.drop(h))


def build_tagger(config):
    """Rebuild a tagger from its ``config``."""
    config = dict(config)
    kind = config.pop("model", None)
    if kind not in ("bilstm", "conv_bilstm"):
        raise ValueError(f"unknown protein model {kind!r}; expected bilstm or conv_bilstm")
    return BiLSTMTagger(**config)


def q3_metrics(y_true, y_pred):
    """Q3 (accuracy over scored residues), per-class precision and recall, counts.

    ``y_true`` and ``y_pred`` are lists of per-chain int arrays; -100 = unscored.
    """
    t = np.concatenate(y_true) if len(y_true) else np.zeros(0, np.int64)
    p = np.concatenate(y_pred) if len(y_pred) else np.zeros(0, np.int64)
    keep = t != IGNORE
    t, p = t[keep], p[keep]
    out = {"q3": float(np.mean(t == p)) if len(t) else float("nan"),
           "precision": {}, "recall": {}, "n_residues": int(len(t)),
           "n_chains": int(len(y_true))}
    for k, state in enumerate(SS3):
        hits, predicted, actual = ((p == k) & (t == k)).sum(), (p == k).sum(), (t == k).sum()
        out["precision"][state] = float(hits / predicted) if predicted else None
        out["recall"][state] = float(hits / actual) if actual else None
    return out
