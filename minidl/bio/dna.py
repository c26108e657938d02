"""DNA classification workflow: data in, encoded splits out; predictions with strand averaging.

This module is what ``minidl-bio dna ...`` runs, as plain functions a notebook can call:

- :func:`load_dna_data` reads a shipped dataset by name, a labelled table (CSV/TSV, gzip),
  separate train/valid/test tables, or one FASTA file per class (``LABEL=PATH``), and
  splits 80/10/10 (stratified by class, seeded) when the data carry no ``split`` column;
- :func:`encode_split` one-hot encodes sequences at one length (padding with zero columns
  and cropping around the centre);
- :func:`predict_proba` runs a model in evaluation mode and returns class probabilities,
  optionally averaging the forward and reverse-complement strands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minidl.bio import datasets
from minidl.bio.augment import reverse_complement_onehot
from minidl.bio.encode import one_hot
from minidl.bio.io import LabelledTable, read_fasta, read_labelled_table

__all__ = ["DnaData", "load_dna_data", "stratified_split", "encode_split", "predict_proba",
           "probabilities_from_logits"]

SPLITS = ("train", "valid", "test")


@dataclass
class DnaData:
    """Sequences, integer labels and ids per split, and the class names."""

    classes: list
    sequences: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)
    source: str = ""

    def counts(self) -> str:
        parts = []
        for s in SPLITS:
            if s in self.labels:
                per = np.bincount(self.labels[s], minlength=len(self.classes))
                parts.append(f"{s} {len(self.labels[s])} (" + ", ".join(
                    f"{c}: {n}" for c, n in zip(self.classes, per)) + ")")
        return "; ".join(parts)


def stratified_split(labels, fractions=(0.8, 0.1, 0.1), seed=0):
    """Split indices ``0..N-1`` into train/valid/test, stratified by label, seeded.

    Each class is shuffled and cut at the cumulative fractions, so every split keeps the
    class balance (a class with very few members may be missing from a small split).
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = {s: [] for s in SPLITS}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n = len(idx)
        cut1 = int(round(fractions[0] * n))
        cut2 = cut1 + int(round(fractions[1] * n))
        out["train"].extend(idx[:cut1])
        out["valid"].extend(idx[cut1:cut2])
        out["test"].extend(idx[cut2:])
    return {s: np.sort(np.array(v, dtype=np.int64)) for s, v in out.items()}


def _from_table(table: LabelledTable, seed, source):
    data = DnaData(classes=table.classes, source=source)
    labels = np.asarray(table.labels, dtype=np.int64)
    if table.split is not None:
        split = np.asarray(table.split)
        index = {s: np.flatnonzero(split == s) for s in SPLITS}
    else:
        index = stratified_split(labels, seed=seed)
    for s in SPLITS:
        idx = index[s]
        data.sequences[s] = [table.sequences[i] for i in idx]
        data.labels[s] = labels[idx]
        data.ids[s] = [table.ids[i] for i in idx]
    return data


def _from_fasta(pairs, seed):
    classes, sequences, labels, ids = [], [], [], []
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--fasta expects LABEL=PATH, got {pair!r}")
        label, path = pair.split("=", 1)
        if label in classes:
            raise ValueError(f"--fasta: class {label!r} given twice")
        classes.append(label)
        for rec in read_fasta(path, alphabet="dna"):
            sequences.append(rec.sequence)
            labels.append(len(classes) - 1)
            ids.append(rec.id)
    if len(classes) < 2:
        raise ValueError("--fasta: give at least two classes (LABEL=PATH twice or more)")
    table = LabelledTable(sequences, labels, classes, ids, None, {})
    return _from_table(table, seed, "fasta: " + ", ".join(pairs))


def load_dna_data(data=None, train=None, valid=None, test=None, fasta=None, seed=0,
                  classes=None):
    """Load labelled DNA sequences into train/valid/test splits.

    Exactly one of: ``data`` (a shipped dataset name or a table path), ``train`` (+
    ``valid``, ``test``: separate tables), ``fasta`` (``["LABEL=PATH", ...]``).
    """
    given = [x is not None for x in (data, train, fasta)]
    if sum(given) != 1:
        raise ValueError("give exactly one of --data, --train (with --valid/--test), --fasta")
    if fasta:
        return _from_fasta(fasta, seed)
    if data is not None:
        path = Path(data)
        if not path.exists():
            if data in datasets.available():
                path = datasets.dataset_path(data)
            else:
                raise FileNotFoundError(
                    f"{data!r} is neither a file nor a shipped dataset (shipped: "
                    f"{', '.join(datasets.available())})"
                )
        return _from_table(read_labelled_table(path, classes=classes), seed, os.fspath(data))
    if valid is None or test is None:
        raise ValueError("--train needs --valid and --test as well")
    first = read_labelled_table(train, classes=classes)
    out = DnaData(classes=first.classes, source=f"train={train} valid={valid} test={test}")
    for s, path in zip(SPLITS, (train, valid, test)):
        table = first if s == "train" else read_labelled_table(path, classes=first.classes)
        out.sequences[s] = table.sequences
        out.labels[s] = np.asarray(table.labels, dtype=np.int64)
        out.ids[s] = table.ids
    return out


def encode_split(sequences, length, ids=None):
    """One-hot ``(N, 4, length)`` float32, padded with zero columns / centre-cropped."""
    return one_hot(sequences, "dna", length=length, ids=ids)


def probabilities_from_logits(logits, num_classes):
    """Class probabilities ``(N, K)`` from a model's logits: sigmoid of one logit for two
    classes (columns ``1 - p, p``), softmax otherwise."""
    logits = np.asarray(logits, dtype=np.float64)
    if num_classes == 2:
        p = 1.0 / (1.0 + np.exp(-logits.reshape(-1)))
        return np.stack([1.0 - p, p], axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(model, x, num_classes, batch_size=512, rc_average=True):
    """Class probabilities ``(N, K)`` for one-hot ``x`` ``(N, 4, L)``.

    With ``rc_average`` the probabilities of the sequence and of its reverse complement
    are averaged (the model should not care which strand it was given).
    """
    import minidl

    was_training = model.training
    model.eval()
    out = []
    try:
        with minidl.no_grad():
            for start in range(0, len(x), batch_size):
                xb = x[start:start + batch_size]
                p = probabilities_from_logits(model(minidl.from_numpy(xb)).numpy(), num_classes)
                if rc_average:
                    rc = minidl.from_numpy(reverse_complement_onehot(xb))
                    p = 0.5 * (p + probabilities_from_logits(model(rc).numpy(), num_classes))
                out.append(p)
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, num_classes))
    return np.concatenate(out)
