"""Real datasets shipped inside the package (see README.md beside this file).

>>> from minidl.bio import datasets
>>> rows = datasets.read_table("arabidopsis_nontata_promoters")
>>> sorted(set(rows["split"]))
['test', 'train', 'valid']
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

__all__ = ["available", "dataset_path", "read_table"]

_HERE = Path(__file__).resolve().parent
_FILES = {
    "arabidopsis_nontata_promoters": "arabidopsis_nontata_promoters.csv.gz",
    "netsurfp2_flip_ss3": "netsurfp2_flip_ss3.tsv.gz",
}


def available():
    """Names of the shipped datasets."""
    return sorted(_FILES)


def dataset_path(name: str) -> Path:
    """Path of a shipped dataset file, by name."""
    if name not in _FILES:
        raise KeyError(f"unknown dataset {name!r}; shipped datasets: {', '.join(available())}")
    return _HERE / _FILES[name]


def read_table(name: str) -> dict[str, list[str]]:
    """Read a shipped CSV table into a dict of columns (lists of strings)."""
    path = dataset_path(name)
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        columns: dict[str, list[str]] = {field: [] for field in reader.fieldnames or ()}
        for row in reader:
            for field, value in row.items():
                columns[field].append(value)
    return columns
