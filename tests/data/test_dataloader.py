"""DataLoader and samplers: coverage of every sample per epoch, seeded reproducibility,
resuming at an epoch, the fast TensorDataset path, weighted sampling."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
)


def _index_dataset(n):
    # the sample's value is its index, so a batch tells which samples it holds
    return TensorDataset(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.float32) * 2)


def _epoch_indices(loader):
    return [int(v) for idx, _ in loader for v in idx.tolist()]


# ----------------------------------------------------------------------------- coverage


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), shuffle=st.booleans(),
       seed=st.integers(0, 2**32))
def test_every_sample_exactly_once_per_epoch(n, batch_size, shuffle, seed):
    loader = DataLoader(_index_dataset(n), batch_size=batch_size, shuffle=shuffle,
                        generator=seed)
    for _ in range(3):
        seen = _epoch_indices(loader)
        assert sorted(seen) == list(range(n))
        if not shuffle:
            assert seen == list(range(n))
    sizes = [len(idx) for idx, _ in loader]
    assert len(sizes) == len(loader) == -(-n // batch_size)
    assert all(s == batch_size for s in sizes[:-1]) and 1 <= sizes[-1] <= batch_size


@given(n=st.integers(1, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 1000))
def test_drop_last_drops_only_the_short_batch(n, batch_size, seed):
    loader = DataLoader(_index_dataset(n), batch_size=batch_size, shuffle=True,
                        drop_last=True, generator=seed)
    batches = [idx.tolist() for idx, _ in loader]
    assert len(batches) == len(loader) == n // batch_size
    assert all(len(b) == batch_size for b in batches)
    seen = [v for b in batches for v in b]
    assert len(set(seen)) == len(seen) == (n // batch_size) * batch_size


def test_batches_keep_pairs_together_and_have_the_collated_dtypes():
    x = np.arange(10, dtype=np.float32)
    y = np.arange(10, dtype=np.int32)
    flags = np.arange(10) % 2 == 0
    loader = DataLoader(TensorDataset(x, y, flags, np.arange(10.0)), batch_size=4,
                        shuffle=True, generator=3)
    for xb, yb, fb, db in loader:
        assert isinstance(xb, minidl.Tensor)
        assert (xb.dtype, yb.dtype, fb.dtype, db.dtype) == (np.float32, np.int64, np.bool_,
                                                            np.float64)
        assert xb.numpy().tolist() == yb.numpy().astype(np.float32).tolist()
        assert fb.numpy().tolist() == (yb.numpy() % 2 == 0).tolist()
        assert not xb.requires_grad


# ----------------------------------------------------------------------------- seeding


def test_same_seed_same_orders_and_epochs_differ():
    a = DataLoader(_index_dataset(30), batch_size=7, shuffle=True, generator=11)
    b = DataLoader(_index_dataset(30), batch_size=7, shuffle=True, generator=11)
    epochs_a = [_epoch_indices(a) for _ in range(4)]
    epochs_b = [_epoch_indices(b) for _ in range(4)]
    assert epochs_a == epochs_b
    assert len({tuple(e) for e in epochs_a}) == 4  # each epoch has its own order
    other = DataLoader(_index_dataset(30), batch_size=7, shuffle=True, generator=12)
    assert _epoch_indices(other) != epochs_a[0]


def test_resume_at_an_epoch_gives_the_uninterrupted_order():
    full = DataLoader(_index_dataset(25), batch_size=4, shuffle=True, generator=5)
    orders = [_epoch_indices(full) for _ in range(5)]
    assert full.epoch == 5

    resumed = DataLoader(_index_dataset(25), batch_size=4, shuffle=True, generator=5)
    resumed.set_epoch(3)
    assert [_epoch_indices(resumed) for _ in range(2)] == orders[3:]

    # and through state_dict, which is plain JSON
    again = DataLoader(_index_dataset(25), batch_size=4, shuffle=True, generator=5)
    state = json.loads(json.dumps(full.state_dict()))
    assert state == {"epoch": 5}
    again.load_state_dict({"epoch": 2})
    assert _epoch_indices(again) == orders[2]


def test_numpy_generator_is_drawn_from_and_its_state_round_trips():
    a = DataLoader(_index_dataset(20), batch_size=5, shuffle=True,
                   generator=np.random.default_rng(7))
    b = DataLoader(_index_dataset(20), batch_size=5, shuffle=True,
                   generator=np.random.default_rng(7))
    first = _epoch_indices(a)
    assert first == _epoch_indices(b)
    state = json.loads(json.dumps(a.state_dict()))  # JSON-able, for checkpoints
    second = _epoch_indices(a)
    assert second != first
    a.load_state_dict(state)
    assert _epoch_indices(a) == second


def test_without_generator_the_global_seed_decides():
    loader = DataLoader(_index_dataset(30), batch_size=8, shuffle=True)
    minidl.manual_seed(123)
    first = [_epoch_indices(loader) for _ in range(2)]
    minidl.manual_seed(123)
    second = [_epoch_indices(loader) for _ in range(2)]
    assert first == second and first[0] != first[1]


def test_bad_generators_and_arguments_are_rejected():
    ds = _index_dataset(5)
    with pytest.raises(TypeError, match="generator"):
        DataLoader(ds, shuffle=True, generator="seed")
    with pytest.raises(ValueError, match="non-negative"):
        DataLoader(ds, shuffle=True, generator=-1)
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(ds, shuffle=True, sampler=SequentialSampler(ds))
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=2)
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0, 1]])


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize("subset", [False, True])
def test_fast_batching_equals_sample_by_sample_collation(subset):
    rng = np.random.default_rng(0)
    ds = TensorDataset(rng.normal(size=(23, 3, 2)).astype(np.float32),
                       rng.integers(0, 4, 23).astype(np.int16),
                       rng.normal(size=23))
    if subset:
        ds = Subset(ds, rng.permutation(23)[:17])
    fast = DataLoader(ds, batch_size=5, shuffle=True, generator=1)
    slow = DataLoader(ds, batch_size=5, shuffle=True, generator=1, collate_fn=default_collate)
    n_batches = 0
    expected_batches = 4 if subset else 5  # 17 or 23 samples in batches of 5
    for fast_batch, slow_batch in zip(fast, slow, strict=True):
        n_batches += 1
        for f, s in zip(fast_batch, slow_batch, strict=True):
            assert f.dtype == s.dtype and f.shape == s.shape
            np.testing.assert_array_equal(f.numpy(), s.numpy())
    assert n_batches == len(fast) == expected_batches


def test_custom_collate_and_plain_sequences():
    data = [{"x": [i, i + 1], "name": f"s{i}"} for i in range(5)]
    loader = DataLoader(data, batch_size=2, collate_fn=lambda batch: [b["name"] for b in batch])
    assert list(loader) == [["s0", "s1"], ["s2", "s3"], ["s4"]]
    batches = list(DataLoader(data, batch_size=3))
    # a list field is collated position by position, as in PyTorch
    assert [t.tolist() for t in batches[0]["x"]] == [[0, 1, 2], [1, 2, 3]]
    assert batches[1]["name"] == ["s3", "s4"]


def test_sampler_and_batch_sampler_arguments():
    ds = _index_dataset(10)
    loader = DataLoader(ds, batch_size=3, sampler=[9, 8, 7, 1])
    assert [idx.tolist() for idx, _ in loader] == [[9, 8, 7], [1]]
    loader = DataLoader(ds, batch_sampler=[[0, 5], [2]])
    assert [idx.tolist() for idx, _ in loader] == [[0, 5], [2]] and len(loader) == 2


# ----------------------------------------------------------------------------- samplers


def test_sequential_and_batch_sampler():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    batches = BatchSampler(SequentialSampler(range(7)), 3, drop_last=False)
    assert list(batches) == [[0, 1, 2], [3, 4, 5], [6]] and len(batches) == 3
    batches = BatchSampler(SequentialSampler(range(7)), 3, drop_last=True)
    assert list(batches) == [[0, 1, 2], [3, 4, 5]] and len(batches) == 2


def test_random_sampler_with_and_without_replacement():
    with_replacement = list(RandomSampler(range(5), replacement=True, num_samples=50,
                                          generator=0))
    assert len(with_replacement) == 50 and set(with_replacement) <= set(range(5))
    assert len(set(with_replacement)) == 5  # 50 draws of 5 values: all appear (p ~ 1e-4 miss)
    # more samples than the dataset without replacement: whole permutations, then a part
    counts = Counter(RandomSampler(range(4), num_samples=10, generator=0))
    assert sorted(counts.values()) == [2, 2, 3, 3]
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler(range(4), num_samples=0)


def test_subset_random_sampler():
    sampler = SubsetRandomSampler([3, 9, 4], generator=2)
    orders = [list(sampler) for _ in range(6)]
    assert all(sorted(o) == [3, 4, 9] for o in orders) and len(sampler) == 3
    assert len({tuple(o) for o in orders}) > 1


def test_weighted_sampler_frequencies_follow_the_weights():
    weights = np.array([1.0, 0.0, 3.0, 6.0])
    drawn = list(WeightedRandomSampler(weights, 20000, generator=0))
    freq = np.bincount(drawn, minlength=4) / 20000
    # binomial standard error <= 0.0036: 5 sigma
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.018)
    assert freq[1] == 0


def test_weighted_sampler_balances_classes():
    labels = np.array([0] * 90 + [1] * 10)
    weights = 1.0 / np.bincount(labels)[labels]
    sampler = WeightedRandomSampler(weights, num_samples=4000, generator=1)
    loader = DataLoader(TensorDataset(labels), batch_size=100, sampler=sampler)
    fraction = np.mean([y.numpy().mean() for (y,) in loader])
    assert 0.45 < fraction < 0.55  # 1 in 10 without the sampler


def test_weighted_sampler_without_replacement_and_errors():
    drawn = list(WeightedRandomSampler([1, 2, 3, 0, 4], 4, replacement=False, generator=3))
    assert sorted(drawn) == [0, 1, 2, 4]
    a = WeightedRandomSampler([1, 2, 3], 10, generator=4)
    b = WeightedRandomSampler([1, 2, 3], 10, generator=4)
    assert list(a) == list(b) and list(a) != list(WeightedRandomSampler([1, 2, 3], 10,
                                                                        generator=4))
    with pytest.raises(ValueError, match="without replacement"):
        WeightedRandomSampler([1, 0, 1], 3, replacement=False)
    with pytest.raises(ValueError, match="sum to zero"):
        WeightedRandomSampler([0, 0], 3)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([1, -1], 3)
    with pytest.raises(ValueError, match="1-D"):
        WeightedRandomSampler([[1, 2]], 3)
    with pytest.raises(ValueError, match="num_samples"):
        WeightedRandomSampler([1, 2], 0)
