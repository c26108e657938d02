"""The Tensor class: creation and dtypes, conversion to NumPy/Python, casts, randomness,
in-place helpers.  Expected dtypes and values come from PyTorch or are written out here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from strategies import (
    arrays,
    check_grad,
    seeded_array,
    shapes,
    torch_dtype_to_numpy,
    torch_parity,
)

import minidl

# ---------------------------------------------------------------------- creation


_CREATION = {
    "tensor ints": lambda lib: lib.tensor([1, 2]),
    "tensor floats": lambda lib: lib.tensor([[1.0, 2.0]]),
    "tensor bools": lambda lib: lib.tensor([True, False]),
    "tensor python scalar": lambda lib: lib.tensor(3.5),
    "tensor dtype=float64": lambda lib: lib.tensor([1, 2], dtype=lib.float64),
    "zeros": lambda lib: lib.zeros(2, 3),
    "zeros tuple": lambda lib: lib.zeros((2, 3)),
    "ones int64": lambda lib: lib.ones(2, dtype=lib.int64),
    "full float": lambda lib: lib.full((2, 2), 1.5),
    "full int": lambda lib: lib.full((2,), 7),
    "full bool": lambda lib: lib.full((2,), True),
    "arange int": lambda lib: lib.arange(5),
    "arange start stop step": lambda lib: lib.arange(1, 10, 3),
    "arange float": lambda lib: lib.arange(0.0, 1.0, 0.25),
    "linspace": lambda lib: lib.linspace(0, 1, 5),
    "eye": lambda lib: lib.eye(3),
    "eye rectangular": lambda lib: lib.eye(2, 3),
    "zeros_like int": lambda lib: lib.zeros_like(lib.tensor([1, 2])),
    "ones_like float64": lambda lib: lib.ones_like(lib.zeros(2, dtype=lib.float64)),
    "full_like": lambda lib: lib.full_like(lib.zeros(2, 2), 3.0),
}


@pytest.mark.parametrize("case", sorted(_CREATION))
def test_creation_dtype_shape_values_match_torch(torch, case):
    got, expected = _CREATION[case](minidl), _CREATION[case](torch)
    assert got.shape == tuple(expected.shape)
    assert got.dtype == torch_dtype_to_numpy(expected.dtype)
    np.testing.assert_allclose(got.data, expected.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["rand", "randn", "zeros", "ones", "empty"])
def test_random_and_empty_creation_dtype_and_shape_match_torch(torch, name):
    for args in [(2, 3), ((4,),)]:
        got, expected = getattr(minidl, name)(*args), getattr(torch, name)(*args)
        assert got.shape == tuple(expected.shape)
        assert got.dtype == torch_dtype_to_numpy(expected.dtype) == np.float32
    assert getattr(minidl, name)(2, dtype=minidl.float64).dtype == np.float64
    assert getattr(minidl, name)(2, requires_grad=True).requires_grad


def test_tensor_copies_but_from_numpy_and_as_tensor_share():
    a = np.arange(4.0)
    copied, shared, as_t = minidl.tensor(a), minidl.from_numpy(a), minidl.as_tensor(a)
    a[0] = 100.0
    assert copied.data[0] == 0.0
    assert shared.data[0] == 100.0 and as_t.data[0] == 100.0
    assert shared.dtype == np.float64  # NumPy arrays keep their dtype
    with pytest.raises(TypeError, match="from_numpy"):
        minidl.from_numpy([1.0, 2.0])


def test_default_dtype_can_be_changed():
    minidl.set_default_dtype(minidl.float64)  # the autouse fixture restores float32
    assert minidl.tensor([1.0]).dtype == np.float64
    assert minidl.zeros(2).dtype == np.float64
    assert minidl.tensor([1]).dtype == np.int64
    with pytest.raises(TypeError, match="floating"):
        minidl.set_default_dtype(minidl.int64)


def test_unsupported_data_raises():
    with pytest.raises(TypeError, match="tensor"):
        minidl.tensor([object()])


# ---------------------------------------------------------------------- properties


def test_shape_properties_match_torch(torch):
    def snippet(lib):
        t, m = lib.zeros(2, 3, 4), lib.zeros(2, 5)
        return [tuple(t.shape), t.ndim, t.dim(), t.numel(), tuple(t.size()), t.size(1), len(t),
                tuple(m.T.shape), tuple(t.mT.shape), t.is_leaf, str(t.device)]

    assert snippet(minidl) == snippet(torch)


def test_bool_of_a_multi_element_tensor_is_ambiguous():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(minidl.ones(2))
    assert bool(minidl.ones(1)) is True


def test_repr_shows_values_and_grad_state():
    assert repr(minidl.tensor([1.0, 2.0])).startswith("tensor([1., 2.]")
    assert "requires_grad=True" in repr(minidl.ones(1, requires_grad=True))
    assert "grad_fn" in repr(minidl.ones(1, requires_grad=True) * 2)
    assert "float64" in repr(minidl.ones(1, dtype=minidl.float64))


# ---------------------------------------------------------------------- NumPy and Python


def test_array_protocol_shares_memory():
    t = minidl.tensor([[1.0, 2.0], [3.0, 4.0]])
    arr = np.asarray(t)
    assert isinstance(arr, np.ndarray) and np.shares_memory(arr, t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(np.array(t), [[1.0, 2.0], [3.0, 4.0]])


def test_numpy_raises_on_requires_grad_like_torch(torch):
    for lib in (minidl, torch):
        x = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match="requires grad"):
            x.numpy()
        assert x.detach().numpy().tolist() == [1.0, 1.0]


def test_item_and_tolist_match_torch(torch):
    def snippet(lib):
        f, i = lib.tensor([[2.5]]), lib.tensor(7)
        m = lib.tensor([[1.0, 2.0], [3.0, 4.0]])
        return [f.item(), type(f.item()).__name__, i.item(), type(i.item()).__name__,
                m.tolist(), lib.tensor([1, 2]).tolist(), float(f), int(i)]

    assert snippet(minidl) == snippet(torch)


def test_item_of_many_elements_raises():
    with pytest.raises(ValueError, match=r"item.*\(2,\)"):
        minidl.ones(2).item()


@pytest.mark.parametrize(
    "make",
    [lambda: minidl.ones(3).sum(), lambda: minidl.tensor(2.0) * 3, lambda: minidl.ones(2).mean(),
     lambda: minidl.tensor(1.0).exp(), lambda: minidl.tensor(2.0) + minidl.tensor(1.0)],
    ids=["sum", "scalar mul", "mean", "exp", "add"],
)
def test_zero_dim_results_are_arrays(make):
    t = make()
    assert isinstance(t.data, np.ndarray)
    assert np.asarray(t).shape == ()
    assert isinstance(t.tolist(), float)
    assert isinstance(t.numpy(), np.ndarray)


# ---------------------------------------------------------------------- casts


@given(x=arrays(shapes()))
def test_to_float32_cast_gradcheck(x):
    # float32 rounding makes eps=1e-6 differences useless: the cast is linear, so a large
    # eps is exact up to that rounding
    check_grad(lambda t: t.to(minidl.float32) * 2.0, x, eps=1e-2, atol=1e-4)
    check_grad(lambda t: t.float().double(), x, eps=1e-2, atol=1e-4)


def test_to_float32_cast_gradient_dtype():
    x = minidl.tensor(seeded_array((3,)), requires_grad=True)
    y = x.to(minidl.float32)
    assert y.dtype == np.float32 and y.requires_grad and not y.is_leaf
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64  # the gradient comes back in the input's dtype
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


@pytest.mark.parametrize(
    "cast",
    [lambda t: t.to(t.dtype), lambda t: t.float(), lambda t: t.double(),
     lambda t: t.type_as(t.double())],
    ids=["to same", "float", "double", "type_as"],
)
@given(x=arrays(shapes()))
def test_float_casts_match_torch(torch, cast, x):
    torch_parity(cast, cast, x)
    torch_parity(cast, cast, x.astype(np.float32))


def test_cast_to_integer_matches_torch_and_has_no_grad(torch):
    def snippet(lib):
        x = lib.tensor([1.7, -2.3, 0.5], requires_grad=True)
        y = x.to(lib.int64)
        return y.tolist(), y.requires_grad, str(y.dtype).split(".")[-1]

    assert snippet(minidl) == snippet(torch)
    assert minidl.tensor([1.0]).long().dtype == np.int64
    assert minidl.tensor([1.0]).int().dtype == np.int32
    assert minidl.tensor([1.0, 0.0]).bool().tolist() == [True, False]


def test_to_same_dtype_and_cpu_return_the_same_tensor(torch):
    x = minidl.ones(2)
    assert x.to(minidl.float32) is x
    assert x.to("cpu") is x and x.cpu() is x
    with pytest.raises(ValueError, match="device"):
        x.to("tpu")


# ---------------------------------------------------------------------- randomness


def test_manual_seed_makes_random_tensors_reproducible():
    def draw():
        minidl.manual_seed(42)
        return (minidl.randn(3, 2).numpy(), minidl.rand(4).numpy(),
                minidl.randint(0, 10, (5,)).numpy(), minidl.randperm(6).numpy())

    first, second = draw(), draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    minidl.manual_seed(43)
    assert not np.array_equal(minidl.randn(3, 2).numpy(), first[0])


def test_random_values_are_in_range_and_typed():
    minidl.manual_seed(0)
    u = minidl.rand(1000)
    assert 0 <= u.numpy().min() and u.numpy().max() < 1
    ints = minidl.randint(3, 7, (1000,))
    assert ints.dtype == np.int64 and set(ints.tolist()) == {3, 4, 5, 6}
    assert sorted(minidl.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    normal = minidl.randn(20_000).numpy()
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1) < 0.05


def test_randint_high_size_form_like_torch():
    ints = minidl.randint(10, (4,))
    assert ints.shape == (4,) and ints.dtype == np.int64
    assert all(0 <= v < 10 for v in ints.tolist())


def test_rng_state_is_json_and_restores_the_stream():
    minidl.manual_seed(7)
    minidl.randn(3)
    state = json.loads(json.dumps(minidl.get_rng_state()))
    expected = minidl.randn(5).numpy()
    minidl.randn(11)
    minidl.set_rng_state(state)
    np.testing.assert_array_equal(minidl.randn(5).numpy(), expected)
    with pytest.raises(ValueError, match="set_rng_state"):
        minidl.set_rng_state({"not": "a state"})
    with pytest.raises(TypeError, match="manual_seed"):
        minidl.manual_seed(1.5)


# ---------------------------------------------------------------------- in-place helpers


def test_in_place_helpers_under_no_grad():
    w = minidl.ones(3, requires_grad=True)
    with minidl.no_grad():
        w.mul_(2).add_(minidl.tensor([1.0, 2.0, 3.0]), alpha=0.5).sub_(1)
        np.testing.assert_allclose(w.data, [1.5, 2.0, 2.5])
        w.div_(0.5)
        np.testing.assert_allclose(w.data, [3.0, 4.0, 5.0])
        w.clamp_(max=4.0)
        np.testing.assert_allclose(w.data, [3.0, 4.0, 4.0])
        w.fill_(7.0)
        np.testing.assert_allclose(w.data, [7.0, 7.0, 7.0])
        w.copy_(minidl.tensor([1.0, 2.0, 3.0]))
        np.testing.assert_allclose(w.data, [1.0, 2.0, 3.0])
        w[0] = 9.0
        np.testing.assert_allclose(w.data, [9.0, 2.0, 3.0])
        w.zero_()
        np.testing.assert_allclose(w.data, [0.0, 0.0, 0.0])
    assert w.requires_grad and w.is_leaf and w.dtype == np.float32


def test_in_place_on_a_leaf_requiring_grad_raises_outside_no_grad():
    w = minidl.ones(3, requires_grad=True)
    for update in (lambda: w.add_(1), lambda: w.zero_(), lambda: w.__setitem__(0, 2.0)):
        with pytest.raises(RuntimeError, match="in-place"):
            update()


def test_copy_of_wrong_shape_raises():
    with pytest.raises(RuntimeError, match=r"copy_.*\(2,\).*\(3,\)"):
        minidl.zeros(3).copy_(minidl.zeros(2))


def test_uniform_and_normal_fill_in_place():
    minidl.manual_seed(0)
    w = minidl.zeros(2000)
    w.uniform_(-1.0, 1.0)
    assert -1 <= w.data.min() and w.data.max() < 1 and w.dtype == np.float32
    w.normal_(2.0, 0.5)
    assert abs(w.data.mean() - 2.0) < 0.05 and abs(w.data.std() - 0.5) < 0.05


def test_masked_fill_matches_torch(torch):
    mask = np.array([[True, False, True], [False, False, True]])
    torch_parity(
        lambda t: t.masked_fill(minidl.tensor(mask), -1.0),
        lambda t: t.masked_fill(torch.tensor(mask), -1.0),
        seeded_array((2, 3)),
    )
