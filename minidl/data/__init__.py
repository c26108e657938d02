"""Data loading: datasets, samplers, batching (``DataLoader``) and transforms.

The API is PyTorch's (``torch.utils.data``), on NumPy arrays: a :class:`Dataset` gives
items by index, a sampler gives the order of the indices, and a :class:`DataLoader`
groups them into batches and *collates* each batch into arrays/tensors.  Shuffling is
driven by a seeded NumPy generator so that an epoch's order is reproducible.
"""

from minidl.data import transforms
from minidl.data.collate import default_collate, pad_collate
from minidl.data.dataloader import DataLoader
from minidl.data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from minidl.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    WeightedRandomSampler,
)

__all__ = [
    "Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
    "DataLoader", "default_collate", "pad_collate",
    "Sampler", "SequentialSampler", "RandomSampler", "WeightedRandomSampler", "BatchSampler",
    "transforms",
]
