r"""Samplers: the order (and choice) of dataset indices a :class:`DataLoader` visits.

A sampler is any iterable of integer indices with ``__len__``.  The random ones take a
``generator`` that is

- ``None``: each epoch draws a fresh seed from minidl's global generator, so
  ``minidl.manual_seed(s)`` makes the whole run reproducible (as in PyTorch);
- an ``int`` seed: epoch ``e`` uses ``numpy.random.default_rng([seed, e])``, so the order
  of epoch ``e`` depends on the seed and ``e`` only.  A run resumed at epoch ``k`` (after
  ``set_epoch(k)``) sees exactly the orders an uninterrupted run would have seen, and
  different epochs get different orders;
- a ``numpy.random.Generator``: drawn from directly; its state advances epoch to epoch.

Each ``iter(sampler)`` is one epoch and advances :attr:`epoch` by one.
:meth:`state_dict` / :meth:`load_state_dict` save and restore the epoch counter (and the
generator's state for a ``Generator``) as plain JSON-able data, for checkpoints.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from minidl import random as _random

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class _EpochRandom:
    """Hands out the ``numpy.random.Generator`` for each epoch (see the module docstring)."""

    def __init__(self, generator, owner):
        if generator is None or isinstance(generator, np.random.Generator):
            self.seed = None
        elif _is_int(generator):
            if generator < 0:
                raise ValueError(f"{owner}: seed must be a non-negative int, got {generator}")
            self.seed = int(generator)
        else:
            raise TypeError(
                f"{owner}: generator must be None, an int seed or a numpy.random.Generator, "
                f"got {type(generator).__name__}"
            )
        self.generator = generator if isinstance(generator, np.random.Generator) else None

    def for_epoch(self, epoch):
        if self.seed is not None:
            # NOTE: [seed, epoch] goes through SeedSequence, which mixes both words, so
            # neighbouring seeds and epochs give unrelated streams.
            return np.random.default_rng([self.seed, epoch])
        if self.generator is not None:
            return self.generator
        seed = int(_random.default_generator().integers(0, 2**63))
        return np.random.default_rng(seed)

    def state(self):
        if self.generator is not None:
            return {"generator": self.generator.bit_generator.state}
        return {}

    def load_state(self, state):
        if self.generator is not None and "generator" in state:
            self.generator.bit_generator.state = state["generator"]


class Sampler:
    """Base class: an iterable of dataset indices with a length.

    Subclasses implement ``__iter__`` and ``__len__``.  :meth:`set_epoch`,
    :meth:`state_dict` and :meth:`load_state_dict` are no-ops here and meaningful for the
    random samplers.
    """

    epoch = 0

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def set_epoch(self, epoch):
        """Make the next ``iter()`` epoch number ``epoch``."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"{type(self).__name__}.set_epoch: epoch must be an int >= 0, "
                             f"got {epoch!r}")
        self.epoch = int(epoch)

    def state_dict(self):
        """The epoch counter (and generator state), as JSON-able data."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""
        self.set_epoch(state["epoch"])


class SequentialSampler(Sampler):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order.

    >>> list(SequentialSampler(range(4)))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        self.epoch += 1
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class _RandomBase(Sampler):
    def _next_generator(self):
        rng = self._random.for_epoch(self.epoch)
        self.epoch += 1
        return rng

    def state_dict(self):
        return {"epoch": self.epoch, **self._random.state()}

    def load_state_dict(self, state):
        self.set_epoch(state["epoch"])
        self._random.load_state(state)


class RandomSampler(_RandomBase):
    r"""A random order of ``0 .. n - 1`` each epoch (a permutation), or, with
    ``replacement=True``, ``num_samples`` indices drawn uniformly with replacement.

    Parameters
    ----------
    data_source : sized
        The dataset (only its length is used).
    replacement : bool, default False
    num_samples : int, optional
        Indices per epoch; defaults to ``len(data_source)``.  Without replacement, a value
        above ``n`` concatenates fresh permutations, so every index appears
        :math:`\lfloor m/n \rfloor` or :math:`\lceil m/n \rceil` times.
    generator : None, int or numpy.random.Generator
        See the module docstring.

    Examples
    --------
    >>> s = RandomSampler(range(5), generator=0)
    >>> sorted(s) == [0, 1, 2, 3, 4], list(s) == list(RandomSampler(range(5), generator=0))
    (True, False)
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        if num_samples is not None and (not _is_int(num_samples) or num_samples <= 0):
            raise ValueError(
                f"RandomSampler: num_samples must be a positive int, got {num_samples!r}"
            )
        self._num_samples = num_samples
        self._random = _EpochRandom(generator, "RandomSampler")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n = len(self.data_source)
        rng = self._next_generator()
        if n == 0:
            return iter(())
        m = self.num_samples
        if self.replacement:
            order = rng.integers(0, n, size=m)
        else:
            order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(m / n))])[:m]
        return iter(order.tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(_RandomBase):
    """The given ``indices`` in a random order each epoch (no replacement).

    >>> sorted(SubsetRandomSampler([7, 3, 5], generator=1))
    [3, 5, 7]
    """

    def __init__(self, indices, generator=None):
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._random = _EpochRandom(generator, "SubsetRandomSampler")

    def __iter__(self):
        rng = self._next_generator()
        return iter(self.indices[rng.permutation(len(self.indices))].tolist())

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(_RandomBase):
    r"""Draw ``num_samples`` indices with probability proportional to ``weights``.

    Index :math:`i` is drawn with probability :math:`p_i = w_i / \sum_j w_j`.  For class
    imbalance, give each sample the inverse frequency of its class,
    :math:`w_i = 1 / n_{y_i}`: every class is then drawn with probability :math:`1/K`.

    Parameters
    ----------
    weights : sequence of float
        Non-negative, finite, not all zero; need not sum to one.
    num_samples : int
        Indices per epoch.
    replacement : bool, default True
        Without replacement, ``num_samples`` may not exceed the number of positive
        weights (each index is drawn at most once).
    generator : None, int or numpy.random.Generator
        See the module docstring.

    Examples
    --------
    >>> labels = [0, 0, 0, 0, 1]
    >>> counts = {0: 4, 1: 1}
    >>> s = WeightedRandomSampler([1 / counts[y] for y in labels], 1000, generator=0)
    >>> drawn = list(s)
    >>> 0.4 < sum(labels[i] for i in drawn) / 1000 < 0.6
    True
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0:
            raise ValueError(
                f"WeightedRandomSampler: weights must be a non-empty 1-D sequence, "
                f"got shape {weights.shape}"
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("WeightedRandomSampler: weights must be finite and non-negative")
        if weights.sum() <= 0:
            raise ValueError("WeightedRandomSampler: weights sum to zero")
        if not _is_int(num_samples) or num_samples <= 0:
            raise ValueError(
                f"WeightedRandomSampler: num_samples must be a positive int, got {num_samples!r}"
            )
        if not replacement and num_samples > np.count_nonzero(weights):
            raise ValueError(
                f"WeightedRandomSampler: cannot draw {num_samples} samples without replacement "
                f"from {np.count_nonzero(weights)} positive weights"
            )
        self.weights = weights
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self._random = _EpochRandom(generator, "WeightedRandomSampler")

    def __iter__(self):
        rng = self._next_generator()
        p = self.weights / self.weights.sum()
        drawn = rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return iter(drawn.tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Group the indices of ``sampler`` into lists of ``batch_size``.

    The last, shorter batch is kept unless ``drop_last``.

    >>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    >>> len(BatchSampler(SequentialSampler(range(5)), 2, drop_last=True))
    2
    """

    def __init__(self, sampler, batch_size, drop_last=False):
        if not _is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def epoch(self):
        return getattr(self.sampler, "epoch", 0)

    def set_epoch(self, epoch):
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self):
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state):
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)
