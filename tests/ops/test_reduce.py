"""Reductions: gradients (float64 central differences) and parity with PyTorch.

Covers dim/keepdim and NumPy's axis/keepdims spellings, ``max(dim)`` returning
``(values, indices)``, PyTorch's tie rules (``max(dim)`` sends the gradient to the returned
index, ``amax``/``max()`` share it evenly), var/std with ``unbiased`` and ``correction``.
max/min inputs are drawn with distinct values, so no tie meets a finite difference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    arrays,
    check_grad,
    dims_of,
    distinct_arrays,
    reals,
    seeded_array,
    shapes,
    torch_parity,
)

import minidl


@st.composite
def array_and_dims(draw, elements=None, distinct=False, single=False, allow_none=True):
    """An array and the ``dim`` argument of a reduction over it (None, an int or a tuple)."""
    shape = draw(shapes(min_dims=0 if allow_none else 1))
    x = draw(distinct_arrays(shape) if distinct else arrays(shape, elements))
    if x.ndim == 0 or (allow_none and draw(st.booleans())):
        return x, None
    dims = draw(dims_of(x.ndim, max_size=1 if single else None))
    return x, (dims[0] if single or len(dims) == 1 and draw(st.booleans()) else dims)


def _torch_dim(x, dim):
    """torch spells "all dims" for logsumexp as the full tuple."""
    return tuple(range(x.ndim)) if dim is None else dim


# ---------------------------------------------------------------------- sum, mean, logsumexp


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
@given(case=array_and_dims(), keepdim=st.booleans())
def test_sum_mean_logsumexp_gradcheck(name, case, keepdim):
    x, dim = case
    check_grad(lambda t: getattr(t, name)(dim, keepdim), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp"])
@given(case=array_and_dims(), keepdim=st.booleans())
def test_sum_mean_logsumexp_match_torch(torch, name, dtype, case, keepdim):
    x, dim = case
    x = x.astype(dtype)
    assume(not (name == "logsumexp" and x.ndim == 0 and dim is None))
    torch_dim = _torch_dim(x, dim) if name == "logsumexp" else dim
    torch_parity(
        lambda t: getattr(minidl, name)(t, dim, keepdim),
        lambda t: getattr(torch, name)(t, dim=torch_dim, keepdim=keepdim),
        x,
    )


def test_logsumexp_is_stable_for_large_inputs(torch):
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1.0]])
    torch_parity(lambda t: t.logsumexp(1), lambda t: t.logsumexp(1), x)


# ---------------------------------------------------------------------- prod


@given(case=array_and_dims(reals(-1.5, 1.5)), keepdim=st.booleans())
def test_prod_gradcheck(case, keepdim):
    x, dim = case
    check_grad(lambda t: t.prod(dim, keepdim), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@given(case=array_and_dims(reals(-1.5, 1.5), single=True), keepdim=st.booleans())
def test_prod_matches_torch(torch, dtype, case, keepdim):
    x, dim = case
    x = x.astype(dtype)
    if dim is None:  # torch.prod takes one dim or none (and then no keepdim)
        torch_parity(lambda t: t.prod(), lambda t: t.prod(), x)
    else:
        torch_parity(lambda t: t.prod(dim, keepdim), lambda t: t.prod(dim, keepdim), x)


@pytest.mark.parametrize(
    "x",
    [np.array([[2.0, 0.0, 3.0], [1.0, 4.0, 5.0]]), np.array([[0.0, 0.0, 3.0], [0.0, 4.0, 5.0]])],
    ids=["one zero", "two zeros"],
)
def test_prod_gradient_with_zeros_matches_torch(torch, x):
    """d prod / d x_i is the product of the others: finite even where x_i == 0."""
    torch_parity(lambda t: t.prod(), lambda t: t.prod(), x)
    torch_parity(lambda t: t.prod(1), lambda t: t.prod(1), x)
    torch_parity(lambda t: t.prod(0, keepdim=True), lambda t: t.prod(0, keepdim=True), x)
    check_grad(lambda t: t.prod(), x)
    check_grad(lambda t: t.prod((0, 1)), x)


# ---------------------------------------------------------------------- max / min


@pytest.mark.parametrize("name", ["max", "min"])
@given(case=array_and_dims(distinct=True, single=True, allow_none=False), keepdim=st.booleans())
def test_max_min_dim_gradcheck(name, case, keepdim):
    x, dim = case
    check_grad(lambda t: getattr(t, name)(dim, keepdim), x)  # the values output
    check_grad(lambda t: getattr(t, name)(dim, keepdim).values, x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["max", "min"])
@given(case=array_and_dims(distinct=True, single=True, allow_none=False), keepdim=st.booleans())
def test_max_min_dim_match_torch(torch, name, dtype, case, keepdim):
    x, dim = case
    x = x.astype(dtype)
    torch_parity(
        lambda t: getattr(minidl, name)(t, dim, keepdim),
        lambda t: getattr(torch, name)(t, dim, keepdim),
        x,
    )
    # the named fields and the positional pair are the same tensors
    result = getattr(minidl.tensor(x), name)(dim=dim, keepdim=keepdim)
    values, indices = result
    assert result.values is values and result.indices is indices
    assert indices.dtype == np.int64


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
@given(case=array_and_dims(distinct=True))
def test_full_and_multi_dim_max_gradcheck(name, case):
    x, dim = case
    if name in ("max", "min"):
        check_grad(lambda t: getattr(t, name)(), x)
    else:
        check_grad(lambda t: getattr(t, name)(dim), x)
        check_grad(lambda t: getattr(t, name)(dim, keepdim=True), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["amax", "amin"])
@given(case=array_and_dims(distinct=True), keepdim=st.booleans())
def test_amax_amin_match_torch(torch, name, dtype, case, keepdim):
    x, dim = case
    x = x.astype(dtype)
    torch_dim = () if dim is None else dim
    torch_parity(
        lambda t: getattr(minidl, name)(t, dim, keepdim),
        lambda t: getattr(torch, name)(t, torch_dim, keepdim),
        x,
    )
    torch_parity(lambda t: getattr(t, name[1:])(), lambda t: getattr(t, name[1:])(), x)


_TIED = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, -1.0, 5.0, 5.0]])


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_max_dim_ties_send_gradient_to_returned_index_like_torch(torch, name, dim):
    torch_parity(lambda t: getattr(t, name)(dim), lambda t: getattr(t, name)(dim), _TIED)
    torch_parity(
        lambda t: getattr(t, name)(dim, keepdim=True),
        lambda t: getattr(t, name)(dim, keepdim=True),
        _TIED,
    )


@pytest.mark.parametrize("name", ["amax", "amin"])
@pytest.mark.parametrize("dim", [0, 1, (0, 1)])
def test_amax_ties_share_gradient_evenly_like_torch(torch, name, dim):
    torch_parity(lambda t: getattr(t, name)(dim), lambda t: getattr(t, name)(dim), _TIED)


@pytest.mark.parametrize("name", ["max", "min"])
def test_full_max_ties_share_gradient_evenly_like_torch(torch, name):
    torch_parity(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), _TIED)
    x = minidl.tensor(_TIED, requires_grad=True)
    x.max().backward()
    # hand-written: the three 5.0 entries share the unit gradient
    expected = np.zeros_like(_TIED)
    expected[2, [0, 2, 3]] = 1 / 3
    np.testing.assert_allclose(x.grad.numpy(), expected)


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(case=array_and_dims(distinct=True, single=True), keepdim=st.booleans())
def test_argmax_argmin_match_torch(torch, name, case, keepdim):
    x, dim = case
    torch_parity(
        lambda t: getattr(t, name)(dim, keepdim), lambda t: getattr(t, name)(dim, keepdim), x
    )


def test_argmax_ties_return_first_index_like_torch(torch):
    torch_parity(lambda t: t.argmax(1), lambda t: t.argmax(1), _TIED)
    torch_parity(lambda t: t.argmin(0), lambda t: t.argmin(0), _TIED)


def test_max_of_zero_dim_tensor_with_dim_matches_torch(torch):
    torch_parity(lambda t: t.max(0), lambda t: t.max(0), np.array(2.5))


# ---------------------------------------------------------------------- var / std


@st.composite
def var_case(draw):
    x, dim = draw(array_and_dims(distinct=True))
    correction = draw(st.sampled_from([0, 1, 2]))
    n = x.size if dim is None else int(np.prod([x.shape[d] for d in np.atleast_1d(dim)]))
    assume(n - correction > 0 and n >= 2)  # n >= 2 and distinct values: std > 0, smooth
    return x, dim, correction


@pytest.mark.parametrize("name", ["var", "std"])
@given(case=var_case(), keepdim=st.booleans())
def test_var_std_gradcheck(name, case, keepdim):
    x, dim, correction = case
    check_grad(lambda t: getattr(t, name)(dim, correction=correction, keepdim=keepdim), x)
    if correction in (0, 1):
        unbiased = bool(correction)
        check_grad(lambda t: getattr(minidl, name)(t, dim, unbiased, keepdim), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["var", "std"])
@given(case=var_case(), keepdim=st.booleans())
def test_var_std_match_torch(torch, name, dtype, case, keepdim):
    x, dim, correction = case
    x = x.astype(dtype)
    torch_parity(
        lambda t: getattr(t, name)(dim, correction=correction, keepdim=keepdim),
        lambda t: getattr(t, name)(dim, correction=correction, keepdim=keepdim),
        x,
    )
    if correction in (0, 1):
        unbiased = bool(correction)
        torch_parity(
            lambda t: getattr(t, name)(dim, unbiased, keepdim),
            lambda t: getattr(t, name)(dim, unbiased, keepdim),
            x,
        )
        torch_parity(  # the default is unbiased, as in torch
            lambda t: getattr(t, name)(dim), lambda t: getattr(t, name)(dim), x
        )


def test_var_with_positional_dim_matches_torch(torch):
    x = seeded_array((3, 4), seed=5)
    torch_parity(lambda t: t.var(0), lambda t: t.var(0), x)
    torch_parity(lambda t: minidl.var(t, 1), lambda t: torch.var(t, 1), x)


# ---------------------------------------------------------------------- NumPy spellings


_ALIASED = ["sum", "mean", "amax", "amin", "logsumexp", "var", "std", "prod", "max", "min",
            "argmax", "argmin"]


@pytest.mark.parametrize("name", _ALIASED)
@pytest.mark.parametrize("keepdim", [False, True])
def test_numpy_axis_keepdims_aliases_match_torch_dim_keepdim(torch, name, keepdim):
    x = seeded_array((2, 3, 4), seed=6)
    torch_parity(
        lambda t: getattr(t, name)(axis=1, keepdims=keepdim),
        lambda t: getattr(t, name)(dim=1, keepdim=keepdim),
        x,
    )
    torch_parity(
        lambda t: getattr(minidl, name)(t, axis=-1, keepdims=keepdim),
        lambda t: getattr(torch, name)(t, dim=-1, keepdim=keepdim),
        x,
    )


def test_dim_and_axis_together_is_an_error():
    with pytest.raises(TypeError, match="sum"):
        minidl.ones(2, 3).sum(dim=0, axis=1)


@pytest.mark.parametrize("name", ["sum", "mean", "amax"])
def test_empty_dim_tuple_reduces_everything_like_torch(torch, name):
    x = seeded_array((2, 3), seed=7)
    torch_parity(lambda t: getattr(t, name)(()), lambda t: getattr(t, name)(()), x)


# ---------------------------------------------------------------------- dtypes and errors


def test_integer_and_bool_reductions_match_torch(torch):
    ints, bools = np.array([[1, 2, 3], [4, 5, 6]]), np.array([[True, False], [True, True]])
    for fn in (lambda t: t.sum(), lambda t: t.sum(1), lambda t: t.prod(0),
               lambda t: t.amax(1), lambda t: t.max(1), lambda t: t.argmax()):
        torch_parity(fn, fn, ints)
    for fn in (lambda t: t.sum(), lambda t: t.sum(0), lambda t: t.all(), lambda t: t.any(1),
               lambda t: t.all(0, keepdim=True)):
        torch_parity(fn, fn, bools)


def test_mean_of_integers_raises_a_clear_error():
    with pytest.raises(TypeError, match="mean.*int64"):
        minidl.tensor([1, 2, 3]).mean()


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "max", "var", "logsumexp"])
def test_out_of_range_dim_names_the_op(name):
    with pytest.raises(IndexError, match=name):
        getattr(minidl.ones(2, 3), name)(2)


def test_max_over_several_dims_points_to_amax():
    with pytest.raises(TypeError, match="amax"):
        minidl.ones(2, 3).max(dim=(0, 1))


def test_max_of_empty_tensor_raises():
    with pytest.raises(RuntimeError, match="max"):
        minidl.zeros(0).max()
