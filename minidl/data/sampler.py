r"""Samplers: the order in which a :class:`~minidl.data.DataLoader` visits the indices."""

from __future__ import annotations

import numpy as np

from minidl.data.dataset import _generator

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "WeightedRandomSampler",
           "BatchSampler"]


class Sampler:
    """An iterable of dataset indices with a length."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """``0, 1, ..., n - 1``."""

    def __init__(self, data_source):
        self.n = len(data_source)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


class RandomSampler(Sampler):
    """A random permutation each epoch (or ``num_samples`` draws with replacement).

    ``generator`` (a seed or ``np.random.Generator``) is advanced every epoch, so epochs
    differ from each other while a whole run is reproducible from the seed.
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.n = len(data_source)
        self.replacement = replacement
        self.num_samples = self.n if num_samples is None else int(num_samples)
        if not replacement and self.num_samples > self.n:
            raise ValueError("RandomSampler: num_samples > dataset size needs replacement=True")
        self.generator = _generator(generator)

    def __iter__(self):
        if self.replacement:
            return iter(self.generator.integers(0, self.n, self.num_samples).tolist())
        return iter(self.generator.permutation(self.n)[: self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class WeightedRandomSampler(Sampler):
    r"""Draw ``num_samples`` indices with probability proportional to ``weights``.

    For class imbalance give each sample the weight :math:`1 / n_{c}` of its class
    :math:`c`, so that every class is drawn equally often on average.
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or len(weights) == 0:
            raise ValueError(f"WeightedRandomSampler: weights must be 1-D, got {weights.shape}")
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() == 0:
            raise ValueError("WeightedRandomSampler: weights must be finite, >= 0, not all 0")
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError("WeightedRandomSampler: num_samples > nonzero weights without "
                             "replacement")
        self.p = weights / weights.sum()
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = _generator(generator)

    def __iter__(self):
        idx = self.generator.choice(len(self.p), size=self.num_samples,
                                    replace=self.replacement, p=self.p)
        return iter(idx.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Group a sampler's indices into lists of ``batch_size`` (the last may be shorter
    unless ``drop_last``)."""

    def __init__(self, sampler, batch_size, drop_last=False):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
