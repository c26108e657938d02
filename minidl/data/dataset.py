"""Datasets: indexable collections of samples (``torch.utils.data`` on NumPy arrays).

A map-style dataset answers ``len(dataset)`` and ``dataset[i]`` for ``0 <= i < len``.
:class:`TensorDataset` holds equally long arrays and gives row ``i`` of each;
:class:`Subset` and :func:`random_split` select samples without copying them;
:class:`TransformDataset` applies transforms (augmentation) on the fly.

A :class:`TensorDataset` (or a :class:`Subset` of one) read with the default collate is
batched by the :class:`~minidl.data.DataLoader` with one fancy-indexing copy per array
instead of a Python loop over samples; the batches are the same.
"""

from __future__ import annotations

import bisect
import math
import numbers

import numpy as np

from minidl.data.collate import _batch_tensor, _host_array, default_collate
from minidl.data.sampler import _EpochRandom

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "TransformDataset",
    "random_split",
]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Dataset:
    """A map-style dataset: ``dataset[i]`` is sample ``i``, ``len(dataset)`` their number.

    Subclasses implement ``__getitem__`` and ``__len__``.  ``a + b`` concatenates.

    Examples
    --------
    >>> class Squares(Dataset):
    ...     def __len__(self):
    ...         return 4
    ...     def __getitem__(self, i):
    ...         return i, i * i
    >>> Squares()[3]
    (3, 9)
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Samples are the ``i``-th rows of equally long arrays (or Tensors).

    ``TensorDataset(x, y)[i]`` is ``(x[i], y[i])``: NumPy arrays (NumPy scalars for 1-D
    inputs), views into the stored arrays.  Tensors are stored as their host arrays
    (detached), so items are NumPy in every case.

    Parameters
    ----------
    *arrays : array-like or Tensor
        At least one; all with the same first dimension.

    Examples
    --------
    >>> ds = TensorDataset(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))
    >>> len(ds), ds[1]
    (3, (array([2., 3.]), np.int64(1)))
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset needs at least one array")
        arrays = tuple(_host_array(a) for a in arrays)
        for i, a in enumerate(arrays):
            if a.ndim == 0:
                raise ValueError(f"TensorDataset: array {i} is a scalar; every array needs a "
                                 "first (sample) dimension")
        sizes = [len(a) for a in arrays]
        if len(set(sizes)) != 1:
            raise ValueError(
                "TensorDataset: arrays must have the same first dimension, got lengths "
                + ", ".join(str(s) for s in sizes)
            )
        self.arrays = arrays

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])

    def _get_batch(self, indices):
        out = []
        for a in self.arrays:
            rows = a[indices]
            # object/string columns go through the general collate (lists, not Tensors)
            out.append(default_collate(list(rows)) if rows.dtype.kind in "OUS"
                       else _batch_tensor(rows))
        return tuple(out)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (no copy).

    >>> s = Subset(TensorDataset(np.arange(5)), [4, 0])
    >>> len(s), int(s[0][0]), int(s[1][0])
    (2, 4, 0)
    """

    def __init__(self, dataset, indices):
        indices = np.asarray(indices)
        if indices.size and (indices.ndim != 1 or indices.dtype.kind not in "iu"):
            raise ValueError(
                f"Subset: indices must be a 1-D sequence of ints, got {indices.dtype} "
                f"shape {indices.shape}"
            )
        indices = indices.astype(np.int64).reshape(-1)
        n = len(dataset)
        bad = indices[(indices < -n) | (indices >= n)]
        if bad.size:
            raise IndexError(
                f"Subset: indices {bad[:5].tolist()} out of range for a dataset of {n}"
            )
        self.dataset = dataset
        self.indices = np.where(indices < 0, indices + n, indices)

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return [self.dataset[int(self.indices[i])] for i in index]
        return self.dataset[int(self.indices[index])]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Datasets one after another: indices ``0 .. len(a) - 1`` are ``a``'s, then ``b``'s.

    >>> ds = ConcatDataset([TensorDataset(np.arange(2)), TensorDataset(np.arange(10, 13))])
    >>> len(ds), int(ds[3][0])
    (5, 11)
    """

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: needs at least one dataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if not _is_int(index):
            raise TypeError(f"ConcatDataset: index must be an int, got {type(index).__name__}")
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)}")
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


class TransformDataset(Dataset):
    """Apply transforms to the samples of ``dataset`` as they are read.

    For a sample ``(x, y)``: ``joint_transform(x, y) -> (x, y)`` first (geometric
    augmentation that must move an image and its mask together), then
    ``transform(x)`` and ``target_transform(y)``.  A sample that is not a tuple is
    passed to ``transform`` alone.  Random transforms draw new parameters on every read,
    so each epoch sees different augmentations.

    Examples
    --------
    >>> from minidl.data import transforms as T
    >>> images, masks = np.zeros((4, 1, 8, 8)), np.zeros((4, 8, 8), dtype=np.int64)
    >>> ds = TransformDataset(TensorDataset(images, masks),
    ...                       joint_transform=T.RandomRot90(seed=0))
    >>> x, y = ds[0]
    >>> x.shape, y.shape
    ((1, 8, 8), (8, 8))
    """

    def __init__(self, dataset, transform=None, target_transform=None, joint_transform=None):
        self.dataset = dataset
        self.transform = transform
        self.target_transform = target_transform
        self.joint_transform = joint_transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        sample = self.dataset[index]
        if not isinstance(sample, tuple):
            return self.transform(sample) if self.transform is not None else sample
        x, y, *rest = sample
        if self.joint_transform is not None:
            x, y = self.joint_transform(x, y)
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return (x, y, *rest)


def random_split(dataset, lengths, generator=None):
    r"""Split ``dataset`` into non-overlapping random :class:`Subset`\ s.

    Parameters
    ----------
    dataset : Dataset
    lengths : sequence of int or float
        Sample counts summing to ``len(dataset)``, or fractions summing to 1.  Fractions
        become :math:`\lfloor f_i n \rfloor` samples and the remainder is handed out one
        by one to the first subsets (as PyTorch does).
    generator : None, int or numpy.random.Generator
        None draws from minidl's global generator (``minidl.manual_seed``); an int seed
        gives the same split every time.

    Examples
    --------
    >>> train, valid = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], generator=0)
    >>> len(train), len(valid), sorted(list(train.indices) + list(valid.indices)) == list(range(10))
    (8, 2, True)
    """
    n = len(dataset)
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if all(isinstance(x, numbers.Real) and not _is_int(x) for x in lengths):
        if any(x < 0 for x in lengths) or not math.isclose(sum(lengths), 1.0, abs_tol=1e-6):
            raise ValueError(
                f"random_split: fractions must be >= 0 and sum to 1, got {lengths}"
            )
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if not all(_is_int(x) and x >= 0 for x in lengths):
        raise ValueError(
            f"random_split: lengths must be all counts (ints >= 0) or all fractions, got {lengths}"
        )
    if sum(lengths) != n:
        raise ValueError(
            f"random_split: lengths sum to {sum(lengths)} but the dataset has {n} samples"
        )
    rng = _EpochRandom(generator, "random_split").for_epoch(0)
    order = rng.permutation(n)
    subsets, start = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[start:start + length]))
        start += length
    return subsets
