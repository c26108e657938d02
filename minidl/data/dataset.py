"""Datasets: indexable collections of samples."""

from __future__ import annotations

import bisect
import numbers

import numpy as np

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split"]


def _generator(generator):
    """An ``np.random.Generator`` from a seed, a generator, or None (fresh entropy)."""
    if isinstance(generator, np.random.Generator):
        return generator
    return np.random.default_rng(generator)


class Dataset:
    """A map-style dataset: ``dataset[i]`` is sample ``i``, ``len(dataset)`` their number.

    Subclasses implement ``__getitem__`` and ``__len__``.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the ``i``-th rows of equally long arrays (or Tensors).

    ``TensorDataset(x, y)[i]`` is ``(x[i], y[i])`` as NumPy arrays / scalars.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
                       for a in arrays)
        sizes = {len(a) for a in arrays}
        if len(sizes) != 1:
            raise ValueError(
                "TensorDataset: arrays must have the same length, got "
                + ", ".join(str(len(a)) for a in arrays)
            )
        self.arrays = arrays

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        n = len(dataset)
        bad = [i for i in self.indices if not -n <= i < n]
        if bad:
            raise IndexError(f"Subset: indices {bad[:5]} out of range for a dataset of {n}")

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[self.indices[i]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.cumulative = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative[-1] if self.cumulative else 0

    def __getitem__(self, index):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        k = bisect.bisect_right(self.cumulative, index)
        start = self.cumulative[k - 1] if k else 0
        return self.datasets[k][index - start]


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping random :class:`Subset` s.

    ``lengths`` are sample counts summing to ``len(dataset)``, or fractions summing to 1
    (rounded down, the remainder given one by one to the first subsets, as PyTorch).
    """
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1.0) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not all(isinstance(x, numbers.Integral) and x >= 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be counts or fractions, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths sum to {sum(lengths)} but the dataset has {n} samples"
        )
    order = _generator(generator).permutation(n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, order[start:start + length]))
        start += length
    return out
