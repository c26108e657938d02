"""Datasets (TensorDataset, Subset, ConcatDataset, TransformDataset, random_split) and the
collate functions, including padding of variable-length sequences with lengths and masks."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import nn
from minidl.data import (
    ConcatDataset,
    DataLoader,
    Dataset,
    Subset,
    TensorDataset,
    TransformDataset,
    default_collate,
    pad_collate,
    random_split,
)
from minidl.data import transforms as T

# ----------------------------------------------------------------------------- datasets


def test_tensor_dataset_items_are_rows():
    x = np.arange(12.0).reshape(4, 3)
    y = minidl.tensor([0, 1, 1, 0])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    xi, yi = ds[2]
    assert isinstance(xi, np.ndarray) and xi.tolist() == [6.0, 7.0, 8.0] and int(yi) == 1
    with pytest.raises(ValueError, match="same first dimension"):
        TensorDataset(x, np.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


def test_abstract_dataset_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


def test_subset_and_concat():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [9, 0, -1])
    assert [int(sub[i][0]) for i in range(len(sub))] == [9, 0, 9]
    with pytest.raises(IndexError, match="out of range"):
        Subset(ds, [10])
    both = ds + TensorDataset(np.arange(100, 103))
    assert isinstance(both, ConcatDataset) and len(both) == 13
    assert [int(both[i][0]) for i in (0, 9, 10, 12, -1)] == [0, 9, 100, 102, 102]
    with pytest.raises(IndexError):
        both[13]


@given(n=st.integers(0, 50), fractions=st.sampled_from([(0.8, 0.2), (0.5, 0.3, 0.2),
                                                         (1.0,), (0.34, 0.33, 0.33)]),
       seed=st.integers(0, 1000))
def test_random_split_is_a_partition(n, fractions, seed):
    parts = random_split(TensorDataset(np.arange(n)), fractions, generator=seed)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == n
    # floor of each share, the remainder handed out one by one from the first subset
    floors = [int(np.floor(f * n)) for f in fractions]
    assert all(0 <= s - f <= 1 for s, f in zip(sizes, floors))
    together = np.concatenate([p.indices for p in parts]) if parts else np.array([])
    assert sorted(together.tolist()) == list(range(n))
    again = random_split(TensorDataset(np.arange(n)), fractions, generator=seed)
    assert [p.indices.tolist() for p in parts] == [p.indices.tolist() for p in again]


def test_random_split_counts_and_errors():
    train, valid = random_split(TensorDataset(np.arange(10)), [7, 3], generator=0)
    assert (len(train), len(valid)) == (7, 3)
    with pytest.raises(ValueError, match="sum to 9"):
        random_split(TensorDataset(np.arange(10)), [7, 2])
    with pytest.raises(ValueError, match="fractions"):
        random_split(TensorDataset(np.arange(10)), [0.5, 0.4])


def test_transform_dataset_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(6, 2, 5, 5)).astype(np.float32)
    masks = (images[:, 0] > 0).astype(np.int64)
    ds = TransformDataset(TensorDataset(images, masks),
                          joint_transform=T.Compose([T.RandomFlip(seed=1), T.RandomRot90(seed=2)]),
                          transform=T.Normalize(0.0, 2.0))
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (2, 5, 5) and y.shape == (5, 5) and y.dtype == np.int64
        np.testing.assert_array_equal(x[0] * 2.0 > 0, y == 1)
    batch_x, batch_y = next(iter(DataLoader(ds, batch_size=6)))
    assert batch_x.shape == (6, 2, 5, 5) and batch_y.dtype == np.int64


# ----------------------------------------------------------------------------- default_collate


def test_default_collate_structures_and_dtypes():
    Pair = namedtuple("Pair", "x y")
    batch = default_collate([Pair(np.zeros(2, np.float16), 1), Pair(np.ones(2, np.float16), 2)])
    assert isinstance(batch, Pair) and batch.x.dtype == np.float16 and batch.y.dtype == np.int64
    batch = default_collate([{"a": 1.5, "b": True, "c": "s0", "d": None},
                             {"a": 2.5, "b": False, "c": "s1", "d": None}])
    assert batch["a"].dtype == minidl.get_default_dtype() and batch["a"].tolist() == [1.5, 2.5]
    assert batch["b"].dtype == np.bool_ and batch["c"] == ["s0", "s1"]
    assert batch["d"] == [None, None]
    single = default_collate([np.arange(3, dtype=np.uint8), np.arange(3, dtype=np.uint8)])
    assert isinstance(single, minidl.Tensor) and single.dtype == np.int64
    tensors = default_collate([minidl.ones(2, requires_grad=True), minidl.zeros(2)])
    assert tensors.shape == (2, 2) and not tensors.requires_grad


def test_default_collate_errors_point_to_the_problem():
    with pytest.raises(ValueError, match=r"samples\[0\] have different shapes.*pad_collate"):
        default_collate([(np.zeros(3), 0), (np.zeros(4), 1)])
    with pytest.raises(ValueError, match="sample 1 has 3 fields, sample 0 has 2"):
        default_collate([(1, 2), (1, 2, 3)])
    with pytest.raises(ValueError, match="keys"):
        default_collate([{"a": 1}, {"b": 1}])
    with pytest.raises(ValueError, match="empty"):
        default_collate([])
    with pytest.raises(TypeError, match="collate_fn"):
        default_collate([object(), object()])


# ----------------------------------------------------------------------------- pad_collate


@st.composite
def _sequences(draw):
    n = draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
    features = draw(st.sampled_from([(), (3,)]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    xs = [rng.normal(size=(length, *features)).astype(np.float32) for length in lengths]
    ys = [rng.integers(0, 4, size=length) for length in lengths]
    return xs, ys


@given(_sequences(), st.sampled_from([0.0, -1.0]))
def test_pad_collate_pads_and_masks(data, pad_value):
    xs, ys = data
    batch = pad_collate(list(zip(xs, ys)), pad_value=pad_value)
    inputs, lengths, mask, targets = (batch[k].numpy() for k in
                                      ("inputs", "lengths", "mask", "targets"))
    longest = max(len(x) for x in xs)
    assert inputs.shape == (len(xs), longest, *xs[0].shape[1:]) and inputs.dtype == np.float32
    assert lengths.dtype == np.int64 and lengths.tolist() == [len(x) for x in xs]
    assert mask.dtype == np.bool_ and mask.shape == (len(xs), longest)
    assert targets.dtype == np.int64 and targets.shape == (len(xs), longest)
    for i, (x, y) in enumerate(zip(xs, ys)):
        n = len(x)
        assert mask[i].tolist() == [True] * n + [False] * (longest - n)
        np.testing.assert_array_equal(inputs[i, :n], x)
        assert np.all(inputs[i, n:] == pad_value)
        np.testing.assert_array_equal(targets[i, :n], y)
        assert np.all(targets[i, n:] == -100)


def test_pad_collate_channels_first_and_sequence_labels():
    onehot = [np.eye(4, dtype=np.float32)[:, [0, 1, 2]], np.eye(4, dtype=np.float32)[:, [3]]]
    batch = pad_collate([(onehot[0], 1), (onehot[1], 0)], length_axis=1)
    assert batch["inputs"].shape == (2, 4, 3)
    np.testing.assert_array_equal(batch["inputs"].numpy()[1], [[0, 0, 0], [0, 0, 0],
                                                               [0, 0, 0], [1, 0, 0]])
    assert batch["lengths"].tolist() == [3, 1]
    assert batch["targets"].tolist() == [1, 0]  # one label per sequence: stacked, not padded
    tokens = pad_collate([np.array([4, 5]), np.array([6])])
    assert set(tokens) == {"inputs", "lengths", "mask"}
    assert tokens["inputs"].tolist() == [[4, 5], [6, 0]]


def test_pad_collate_errors():
    with pytest.raises(ValueError, match="only axis 0"):
        pad_collate([np.zeros((3, 2)), np.zeros((3, 4))])
    with pytest.raises(ValueError, match="length_axis"):
        pad_collate([np.zeros(3)], length_axis=1)
    with pytest.raises(ValueError, match=r"x or \(x, y\)"):
        pad_collate([(np.zeros(3), 1), np.zeros(3)])
    with pytest.raises(ValueError, match="empty"):
        pad_collate([])


def test_padded_positions_drop_out_of_cross_entropy():
    # per-position classification: the loss on the padded batch (ignore_index=-100) equals
    # the loss on the real positions alone
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 2, 4)]
    ys = [rng.integers(0, 3, size=len(x)) for x in xs]
    batch = pad_collate(list(zip(xs, ys)))
    minidl.manual_seed(0)
    head = nn.Linear(3, 3)
    logits = head(batch["inputs"])
    padded_loss = nn.CrossEntropyLoss()(logits.reshape(-1, 3), batch["targets"].reshape(-1))
    real_logits = head(minidl.tensor(np.concatenate(xs)))
    real_loss = nn.CrossEntropyLoss()(real_logits, minidl.tensor(np.concatenate(ys)))
    np.testing.assert_allclose(padded_loss.item(), real_loss.item(), rtol=1e-6)
    flat_mask = batch["mask"].numpy().reshape(-1)
    assert flat_mask.sum() == sum(len(x) for x in xs)


def test_pad_collate_in_a_dataloader():
    rng = np.random.default_rng(1)

    class Sequences(Dataset):
        def __len__(self):
            return 7

        def __getitem__(self, i):
            return rng.normal(size=(i + 1, 2)), np.full(i + 1, i % 3)

    loader = DataLoader(Sequences(), batch_size=3, shuffle=True, generator=0,
                        collate_fn=pad_collate)
    total = 0
    for batch in loader:
        total += int(batch["mask"].numpy().sum())
        assert batch["inputs"].shape[1] == int(batch["lengths"].numpy().max())
    assert total == sum(range(1, 8))
