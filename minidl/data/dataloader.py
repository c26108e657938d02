"""``DataLoader``: batches of samples from a dataset, in the order a sampler gives."""

from __future__ import annotations

import numpy as np

from minidl.data.collate import _to_tensor, default_collate
from minidl.data.dataset import TensorDataset, _generator
from minidl.data.sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over a dataset in batches.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
    shuffle : bool
        A new random order every epoch (from ``generator``).
    sampler : Sampler, optional
        Custom order (e.g. :class:`WeightedRandomSampler`); excludes ``shuffle``.
    drop_last : bool
        Drop the last, incomplete batch.
    collate_fn : callable, optional
        list of samples -> batch (default: :func:`default_collate`).
    generator : int or np.random.Generator, optional
        Seed of the shuffling: the same seed gives the same order of every epoch.

    Notes
    -----
    A :class:`TensorDataset` with the default collate is batched by fancy indexing (one
    copy per array per batch) instead of stacking samples one by one.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, drop_last=False,
                 collate_fn=None, generator=None):
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive")
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.generator = _generator(generator)
        if sampler is None:
            sampler = (RandomSampler(dataset, generator=self.generator) if shuffle
                       else SequentialSampler(dataset))
        self.sampler = sampler
        self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is None
        for indices in self.batch_sampler:
            if fast:
                idx = np.asarray(indices, dtype=np.int64)
                yield tuple(default_collate(list(a[idx])) if a.dtype == object
                            else _to_tensor(a[idx]) for a in self.dataset.arrays)
            else:
                samples = [self.dataset[i] for i in indices]
                yield (self.collate_fn or default_collate)(samples)
