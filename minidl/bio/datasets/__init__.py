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

__all__ = ["available", "dataset_path", "read_table", "published", "PUBLISHED", "class_names"]

_HERE = Path(__file__).resolve().parent
_FILES = {
    "arabidopsis_nontata_promoters": "arabidopsis_nontata_promoters.csv.gz",
    "netsurfp2_flip_ss3": "netsurfp2_flip_ss3.tsv.gz",
    "pbc_bloodmnist_like_28": "pbc_bloodmnist_like_28.npz",
}

#: class names of shipped image datasets whose files store integer labels only
CLASS_NAMES = {
    "pbc_bloodmnist_like_28": ["basophil", "eosinophil", "erythroblast",
                               "immature_granulocyte", "lymphocyte", "monocyte", "neutrophil",
                               "platelet"],
}


#: published results on each shipped dataset (see README.md beside this file), printed
#: beside minidl's own by the command-line tools
PUBLISHED = {
    "arabidopsis_nontata_promoters": [
        ("CNNProm (Umarov & Solovyev 2017)", {"accuracy": 0.938, "mcc": 0.86}),
        ("iPTT(2L)-CNN (2021, 10-fold CV)", {"accuracy": 0.957, "mcc": 0.907}),
        ("logistic regression, 6-mer counts (this split)", {"accuracy": 0.925, "mcc": 0.831}),
    ],
    "netsurfp2_flip_ss3": [
        ("single-sequence deep models (published range)", {"q3": "0.70-0.75"}),
        ("window-15 one-hot logistic regression (this split)", {"q3": 0.615}),
    ],
    "pbc_bloodmnist_like_28": [
        ("MedMNIST v2 ResNet-18 (28), official BloodMNIST split", {"accuracy": 0.958,
                                                                    "auroc": 0.998}),
        ("MedMNIST v2 Google AutoML Vision, official split", {"accuracy": 0.966, "auroc": 0.998}),
        ("logistic regression, standardised pixels (this split)", {"accuracy": 0.854}),
    ],
}


def published(name):
    """``[(method, {metric: value})]`` published for a shipped dataset (empty if none)."""
    return PUBLISHED.get(str(name), [])


def class_names(name):
    """Class names of a shipped image dataset (None when the file's labels are the names)."""
    return list(CLASS_NAMES[name]) if name in CLASS_NAMES else None


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
