"""Embedding: gradcheck (float64, hypothesis-drawn tables and index shapes), PyTorch parity
of the op and the module (values, weight gradients, padding_idx, scale_grad_by_freq,
max_norm, from_pretrained/freeze, reprs, state_dict keys), initialisation, errors.

Expected values come from PyTorch 2.13 (skipped without torch), central differences, or
sums written out by hand; never from minidl itself.
"""

import contextlib
import doctest

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import check_grad, torch_parity

import minidl
import minidl.nn.sparse as nn_sparse
import minidl.ops.embedding as ops_embedding
from minidl.nn.sparse import Embedding
from minidl.ops.embedding import embedding

FLOATS = [np.float64, np.float32]


#: the reference weight gradient has two strategies: a one-hot matrix product below
#: ``_ONE_HOT_LIMIT`` (index, row) pairs, a bincount per column above; run both
PATHS = pytest.mark.parametrize("one_hot_limit", [ops_embedding._ONE_HOT_LIMIT, 0],
                                ids=["one_hot", "bincount"])


@contextlib.contextmanager
def gradient_path(one_hot_limit):
    saved = ops_embedding._ONE_HOT_LIMIT
    ops_embedding._ONE_HOT_LIMIT = one_hot_limit
    try:
        yield
    finally:
        ops_embedding._ONE_HOT_LIMIT = saved


@st.composite
def lookups(draw, max_vocab=7):
    """(indices, weight shape): a vocabulary, a dimension and indices of any shape,
    with repeats (small vocabularies make them frequent)."""
    vocab = draw(st.integers(1, max_vocab))
    dim = draw(st.integers(1, 4))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    indices = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, vocab - 1)))
    return indices, (vocab, dim)


def weights(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- gradients


@PATHS
@given(case=lookups(), seed=st.integers(0, 2**31 - 1))
def test_gradcheck(one_hot_limit, case, seed):
    # (scale_grad_by_freq deliberately changes the gradient, so it is not a derivative
    # to check numerically: test_matches_torch and test_scale_grad_by_freq cover it)
    indices, shape = case
    with gradient_path(one_hot_limit):
        check_grad(lambda w: embedding(indices, w), weights(shape, seed))


@PATHS
def test_scale_grad_by_freq_divides_by_the_count(one_hot_limit):
    weight = minidl.tensor(np.zeros((3, 1)), requires_grad=True)
    with gradient_path(one_hot_limit):
        out = embedding(minidl.tensor([2, 0, 2, 2]), weight, scale_grad_by_freq=True)
        out.backward(minidl.tensor([[1.0], [5.0], [2.0], [6.0]]))
    # index 2 occurs 3 times: (1 + 2 + 6) / 3; index 0 once
    assert weight.grad.tolist() == [[5.0], [0.0], [3.0]]


def test_gradient_is_a_scatter_add_by_hand():
    weight = minidl.tensor(np.zeros((4, 2)), requires_grad=True)
    out = embedding(minidl.tensor([[3, 1], [3, 3]]), weight)
    out.backward(minidl.tensor([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]))
    # row 3 collects three gradients, row 1 one, rows 0 and 2 none
    assert weight.grad.tolist() == [[0.0, 0.0], [3.0, 4.0], [0.0, 0.0], [13.0, 16.0]]


@PATHS
@pytest.mark.parametrize("dtype", FLOATS)
@given(case=lookups(), seed=st.integers(0, 2**31 - 1), data=st.data())
def test_matches_torch(one_hot_limit, dtype, case, seed, data):
    torch = pytest.importorskip("torch")
    indices, shape = case
    padding_idx = data.draw(st.one_of(st.none(), st.integers(-shape[0], shape[0] - 1)))
    by_freq = data.draw(st.booleans())
    kwargs = dict(padding_idx=padding_idx, scale_grad_by_freq=by_freq)
    with gradient_path(one_hot_limit):
        torch_parity(lambda i, w: embedding(i, w, **kwargs),
                     lambda i, w: torch.nn.functional.embedding(i, w, **kwargs),
                     indices, weights(shape, seed, dtype))


@PATHS
def test_padding_row_gets_no_gradient(one_hot_limit):
    weight = minidl.tensor(np.ones((3, 2)), requires_grad=True)
    with gradient_path(one_hot_limit):
        embedding(minidl.tensor([0, 1, 1, 2]), weight, padding_idx=1).sum().backward()
    assert weight.grad.tolist() == [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, float("inf")])
@pytest.mark.parametrize("dtype", FLOATS)
def test_max_norm_renormalises_used_rows_like_torch(norm_type, dtype):
    torch = pytest.importorskip("torch")
    w = weights((6, 4), 3, dtype) * 2
    indices = np.array([[0, 2], [2, 5]])
    kwargs = dict(max_norm=1.5, norm_type=norm_type)
    torch_parity(lambda i, t: embedding(i, t, **kwargs),
                 lambda i, t: torch.nn.functional.embedding(i, t, **kwargs), indices, w)
    # the table itself is rescaled in place, only at the rows that were looked up
    mine, theirs = minidl.tensor(w.copy()), torch.tensor(w.copy())
    embedding(indices, mine, **kwargs)
    torch.nn.functional.embedding(torch.tensor(indices), theirs, **kwargs)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=tol, atol=tol)
    np.testing.assert_array_equal(mine.numpy()[[1, 3, 4]], w[[1, 3, 4]])


def test_index_dtypes_and_shapes():
    weight = minidl.tensor(np.arange(12.0).reshape(4, 3))
    for dtype in (np.int64, np.int32, np.int16, np.uint8):
        out = embedding(minidl.tensor(np.array([[3, 0]], dtype=dtype)), weight)
        assert out.tolist() == [[[9.0, 10.0, 11.0], [0.0, 1.0, 2.0]]]
    assert embedding(minidl.tensor(2), weight).tolist() == [6.0, 7.0, 8.0]  # 0-d index
    assert embedding(np.zeros((2, 0), dtype=np.int64), weight).shape == (2, 0, 3)
    assert embedding([1, 1], weight).tolist() == [[3.0, 4.0, 5.0]] * 2  # a plain list


# ----------------------------------------------------------------------------- module


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("options", [
    {}, {"padding_idx": 0}, {"padding_idx": -2}, {"scale_grad_by_freq": True},
    {"max_norm": 1.0}, {"padding_idx": 3, "max_norm": 2.0, "norm_type": 1.0},
])
def test_module_matches_torch_after_load_state_dict(dtype, options):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    theirs = torch.nn.Embedding(10, 5, dtype=tdtype, **options)
    mine = Embedding(10, 5, dtype=dtype, **options)
    assert list(mine.state_dict()) == list(theirs.state_dict()) == ["weight"]
    assert repr(mine) == repr(theirs)
    assert mine.padding_idx == theirs.padding_idx
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    indices = np.array([[1, 2, 3, 3], [0, 8, 9, 2], [3, 3, 3, 5]])
    out_mine = mine(minidl.tensor(indices))
    out_theirs = theirs(torch.tensor(indices))
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out_mine.detach().numpy(), out_theirs.detach().numpy(), **tol)
    upstream = np.random.default_rng(1).standard_normal(out_mine.shape).astype(dtype)
    out_mine.backward(minidl.tensor(upstream))
    out_theirs.backward(torch.tensor(upstream))
    assert mine.weight.grad.dtype == dtype
    np.testing.assert_allclose(mine.weight.grad.numpy(), theirs.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(mine.weight.detach().numpy(), theirs.weight.detach().numpy(),
                               **tol)


def test_module_attributes_and_reprs_match_torch():
    torch = pytest.importorskip("torch")
    configs = [
        dict(num_embeddings=10, embedding_dim=3),
        dict(num_embeddings=10, embedding_dim=3, padding_idx=-2, max_norm=1.0, norm_type=3.0,
             scale_grad_by_freq=True),
        dict(num_embeddings=4, embedding_dim=2, norm_type=2),
    ]
    for config in configs:
        mine, theirs = Embedding(**config), torch.nn.Embedding(**config)
        assert repr(mine) == repr(theirs)
        for name in ("num_embeddings", "embedding_dim", "padding_idx", "max_norm",
                     "norm_type", "scale_grad_by_freq", "sparse"):
            assert getattr(mine, name) == getattr(theirs, name), name
        assert mine.weight.shape == tuple(theirs.weight.shape)
        assert mine.weight.dtype == np.float32 and mine.weight.requires_grad


def test_initialisation_is_standard_normal_with_zero_padding_row():
    minidl.manual_seed(0)
    table = Embedding(1000, 100, padding_idx=7)
    w = table.weight.detach().numpy()
    assert np.all(w[7] == 0)
    rest = np.delete(w, 7, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1.0) < 0.01
    minidl.manual_seed(0)
    np.testing.assert_array_equal(Embedding(1000, 100, padding_idx=7).weight.detach().numpy(),
                                  w)
    table.weight.data[7] = 5.0
    table.reset_parameters()
    assert np.all(table.weight.detach().numpy()[7] == 0)


def test_custom_weight_and_freeze():
    w = np.arange(6.0).reshape(3, 2)
    table = Embedding(3, 2, _weight=w)
    assert np.shares_memory(table.weight.detach().numpy(), w)  # shared, as in PyTorch
    assert table.weight.requires_grad
    assert not Embedding(3, 2, _weight=w, _freeze=True).weight.requires_grad


@pytest.mark.parametrize("freeze", [True, False])
def test_from_pretrained_matches_torch(freeze):
    torch = pytest.importorskip("torch")
    pretrained = weights((5, 3), 4)
    mine = Embedding.from_pretrained(minidl.tensor(pretrained.copy()), freeze=freeze,
                                     padding_idx=1)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(pretrained.copy()), freeze=freeze,
                                                padding_idx=1)
    assert repr(mine) == repr(theirs)
    assert mine.weight.requires_grad == theirs.weight.requires_grad == (not freeze)
    # the pretrained padding row is kept, not zeroed
    np.testing.assert_array_equal(mine.weight.detach().numpy(), pretrained)
    indices = np.array([[1, 0, 4], [1, 1, 2]])
    out_mine, out_theirs = mine(minidl.tensor(indices)), theirs(torch.tensor(indices))
    np.testing.assert_allclose(out_mine.detach().numpy(), out_theirs.detach().numpy())
    assert out_mine.requires_grad == out_theirs.requires_grad
    if not freeze:
        out_mine.sum().backward()
        out_theirs.sum().backward()
        np.testing.assert_allclose(mine.weight.grad.numpy(), theirs.weight.grad.numpy())
        assert np.all(mine.weight.grad.numpy()[1] == 0)
    # a PyTorch tensor or an ndarray works too
    assert Embedding.from_pretrained(torch.ones(2, 3)).weight.shape == (2, 3)
    assert Embedding.from_pretrained(np.ones((2, 3))).weight.dtype == np.float64


def test_frozen_table_in_a_model_gets_no_gradient():
    table = Embedding.from_pretrained(minidl.tensor(weights((4, 2), 0)))
    head = minidl.tensor(np.ones((2, 1)), requires_grad=True)
    (table(minidl.tensor([0, 3])) @ head).sum().backward()
    assert table.weight.grad is None and head.grad is not None


# ----------------------------------------------------------------------------- errors


def test_errors():
    weight = minidl.randn(10, 3)
    with pytest.raises(TypeError, match=r"embedding: indices must be an integer tensor "
                                        r"\(int64 or int32\), got float32"):
        embedding(minidl.tensor([1.0]), weight)
    with pytest.raises(IndexError, match=r"embedding: index 12 is out of range for "
                                         r"num_embeddings=10 \(valid indices are 0 to 9\)"):
        embedding(minidl.tensor([[1, 12], [3, 4]]), weight)
    with pytest.raises(IndexError, match=r"embedding: index -1 is out of range for "
                                         r"num_embeddings=10"):
        Embedding(10, 3)(minidl.tensor([-1, 2]))
    with pytest.raises(ValueError, match=r"padding_idx must be within num_embeddings \(-4 to "
                                         r"3\), got 4"):
        Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match=r"got -5"):
        Embedding(4, 2, padding_idx=-5)
    with pytest.raises(ValueError, match=r"embedding: padding_idx must be within"):
        embedding(minidl.tensor([1]), minidl.randn(4, 2), padding_idx=5)
    with pytest.raises(ValueError, match=r"Embedding: shape of weight \(3, 2\) does not match "
                                         r"\(num_embeddings, embedding_dim\) = \(4, 2\)"):
        Embedding(4, 2, _weight=minidl.randn(3, 2))
    with pytest.raises(ValueError, match=r"from_pretrained: embeddings must be 2-D"):
        Embedding.from_pretrained(minidl.randn(4))
    with pytest.raises(ValueError, match=r"embedding: weight must be 2-D"):
        embedding(minidl.tensor([0]), minidl.randn(4))
    with pytest.raises(NotImplementedError, match=r"sparse=True"):
        Embedding(4, 2, sparse=True)
    with pytest.raises(ValueError, match=r"Embedding: num_embeddings must be a non-negative"):
        Embedding(-1, 2)


@pytest.mark.parametrize("module", [ops_embedding, nn_sparse])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
