"""Data loading: datasets, samplers, batching (``DataLoader``) and transforms.

The API is PyTorch's ``torch.utils.data`` on NumPy arrays: a :class:`Dataset` gives samples
by index, a sampler gives the order of the indices, and a :class:`DataLoader` groups them
into batches and *collates* each batch into minidl Tensors.  Shuffling draws from a seeded
NumPy generator, so every epoch's order is reproducible (and resumable: see
:mod:`minidl.data.sampler`).  :mod:`minidl.data.transforms` holds image normalisation and
augmentation that move an image and its mask together.

Examples
--------
>>> import numpy as np
>>> from minidl.data import DataLoader, TensorDataset, random_split
>>> x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
>>> y = (x.sum(axis=1) > 0).astype(np.int64)
>>> train, valid = random_split(TensorDataset(x, y), [0.8, 0.2], generator=0)
>>> loader = DataLoader(train, batch_size=32, shuffle=True, generator=0)
>>> [tuple(xb.shape) for xb, yb in loader]
[(32, 3), (32, 3), (16, 3)]
"""

from minidl.data import transforms
from minidl.data.collate import default_collate, pad_collate
from minidl.data.dataloader import DataLoader
from minidl.data.dataset import (
    ConcatDataset,
    Dataset,
    Subset,
    TensorDataset,
    TransformDataset,
    random_split,
)
from minidl.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "Dataset", "TensorDataset", "Subset", "ConcatDataset", "TransformDataset", "random_split",
    "DataLoader", "default_collate", "pad_collate",
    "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
    "WeightedRandomSampler", "BatchSampler",
    "transforms",
]
