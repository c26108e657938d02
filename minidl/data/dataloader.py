"""``DataLoader``: batches of samples from a dataset, in the order a sampler gives."""

from __future__ import annotations

import numbers

import numpy as np

from minidl.data.collate import default_collate
from minidl.data.dataset import Subset, TensorDataset
from minidl.data.sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader"]


def _batch_reader(dataset):
    """``indices -> batch`` for datasets that can index a whole batch at once (a
    TensorDataset, or Subsets of one), else None."""
    if isinstance(dataset, TensorDataset):
        return dataset._get_batch
    if isinstance(dataset, Subset):
        inner = _batch_reader(dataset.dataset)
        if inner is not None:
            return lambda indices: inner(dataset.indices[indices])
    return None


class DataLoader:
    r"""Iterate over a dataset in batches.

    One pass, ``for batch in loader``, is an epoch: the sampler gives the order of the
    indices, they are grouped into batches of ``batch_size``, and ``collate_fn`` turns
    each list of samples into a batch.  Loading runs in the calling process.

    Parameters
    ----------
    dataset : Dataset
        Anything with ``__len__`` and ``__getitem__``.
    batch_size : int, default 1
    shuffle : bool, default False
        A new random order every epoch, drawn as described for ``generator``.
    sampler : Sampler or iterable of int, optional
        A custom order (e.g. :class:`~minidl.data.WeightedRandomSampler` for class
        imbalance).  Excludes ``shuffle``.
    drop_last : bool, default False
        Drop the last batch if it has fewer than ``batch_size`` samples.
    collate_fn : callable, optional
        ``list of samples -> batch``; default :func:`~minidl.data.default_collate`.  Use
        :func:`~minidl.data.pad_collate` for variable-length sequences.
    generator : None, int or numpy.random.Generator
        The shuffling's randomness.  An int seed makes epoch :math:`e`'s order a function
        of ``(seed, e)`` alone: reproducible, different from epoch to epoch, and right
        after resuming with :meth:`set_epoch`.  ``None`` draws each epoch's seed from
        minidl's global generator (``minidl.manual_seed``).  A Generator is drawn from
        directly.
    batch_sampler : iterable of lists of int, optional
        Gives whole batches; excludes ``batch_size``, ``shuffle``, ``sampler`` and
        ``drop_last``.
    num_workers : int, default 0
        Accepted for PyTorch compatibility; only 0 (load in the calling process).

    Notes
    -----
    ``len(loader)`` is the number of batches: :math:`\lceil n / b \rceil`, or
    :math:`\lfloor n / b \rfloor` with ``drop_last``.  A :class:`TensorDataset` (or a
    :class:`Subset` of one) with the default collate is batched by fancy indexing, one
    copy per array per batch, instead of stacking samples one by one; the batches are
    identical.

    Examples
    --------
    >>> from minidl.data import TensorDataset
    >>> ds = TensorDataset(np.arange(10.0, dtype=np.float32), np.arange(10) % 2)
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, generator=0)
    >>> len(loader)
    3
    >>> seen = sorted(v for x, y in loader for v in x.tolist())
    >>> seen == list(range(10))
    True
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, drop_last=False,
                 collate_fn=None, generator=None, batch_sampler=None, num_workers=0):
        if num_workers != 0:
            raise ValueError(
                f"DataLoader: num_workers={num_workers} is not supported; minidl loads "
                "batches in the calling process (num_workers=0)"
            )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "DataLoader: batch_sampler excludes batch_size, shuffle, sampler and "
                    "drop_last"
                )
            batch_size = None
        else:
            if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) \
                    or batch_size <= 0:
                raise ValueError(
                    f"DataLoader: batch_size must be a positive int, got {batch_size!r}"
                )
            if sampler is not None and shuffle:
                raise ValueError("DataLoader: sampler and shuffle=True are mutually exclusive")
            if sampler is None:
                sampler = (RandomSampler(dataset, generator=generator) if shuffle
                           else SequentialSampler(dataset))
            batch_sampler = BatchSampler(sampler, int(batch_size), drop_last)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.collate_fn = collate_fn
        self.generator = generator

    def __len__(self):
        return len(self.batch_sampler)

    def __iter__(self):
        fast = _batch_reader(self.dataset) if self.collate_fn is None else None
        collate = self.collate_fn if self.collate_fn is not None else default_collate
        for indices in self.batch_sampler:
            if fast is not None:
                yield fast(np.asarray(indices, dtype=np.int64))
            else:
                yield collate([self.dataset[i] for i in indices])

    # ------------------------------------------------------------------ resuming

    @property
    def epoch(self):
        """The number of the next epoch (how many times the loader has been iterated,
        unless :meth:`set_epoch` said otherwise)."""
        return getattr(self.batch_sampler, "epoch", 0)

    def set_epoch(self, epoch):
        """Make the next pass epoch number ``epoch`` (its shuffled order is the one an
        uninterrupted run with the same int seed has at that epoch)."""
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def state_dict(self):
        """The sampler's epoch counter (and generator state), as JSON-able data."""
        if hasattr(self.batch_sampler, "state_dict"):
            return self.batch_sampler.state_dict()
        return {}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        if hasattr(self.batch_sampler, "load_state_dict"):
            self.batch_sampler.load_state_dict(state)
