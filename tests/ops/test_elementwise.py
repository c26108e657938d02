"""Elementwise ops: gradients (float64 central differences) and parity with PyTorch.

Values are drawn away from each op's kinks: |x| and 1/x away from 0, log/sqrt on
positive numbers, clip away from its bounds, maximum/minimum on values that never tie.
The expected values and gradients come from PyTorch; gradcheck only compares backward
with differences of forward, so it never trusts the code under test for the answer.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    FLOAT_DTYPES,
    arrays,
    away_from_zero,
    broadcastable_shapes,
    check_grad,
    positives,
    reals,
    seeded_array,
    shapes,
    torch_dtype_to_numpy,
    torch_parity,
)

import minidl

# values on a 0.1 grid for one operand and shifted by 0.05 for the other: never a tie
_grid = st.integers(-20, 20).map(lambda k: k * 0.1)
_grid_shifted = st.integers(-20, 20).map(lambda k: k * 0.1 + 0.05)

# name -> (elements of a, elements of b); the same name is a function in minidl and torch
BINARY = {
    "add": (reals(), reals()),
    "sub": (reals(), reals()),
    "mul": (reals(), reals()),
    "div": (reals(), away_from_zero()),
    "pow": (positives(), reals()),
    "maximum": (_grid, _grid_shifted),
    "minimum": (_grid, _grid_shifted),
}

# name -> domain; each is a function and a Tensor method in both libraries
UNARY = {
    "neg": reals(),
    "exp": reals(),
    "log": positives(),
    "log1p": reals(-0.75, 2.0),
    "sqrt": positives(),
    "abs": away_from_zero(0.05),
    "sin": reals(-3.0, 3.0),
    "cos": reals(-3.0, 3.0),
    "square": reals(),
    "reciprocal": away_from_zero(),
}

OPERATORS = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _draw_binary(data, name, dtype=np.float64):
    shape_a, shape_b = data.draw(broadcastable_shapes(), label="shapes")
    elements_a, elements_b = BINARY[name]
    a = data.draw(arrays(shape_a, elements_a), label="a").astype(dtype)
    b = data.draw(arrays(shape_b, elements_b), label="b").astype(dtype)
    return a, b


# ---------------------------------------------------------------------- binary ops


@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_gradcheck(name, data):
    a, b = _draw_binary(data, name)
    check_grad(getattr(minidl, name), a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", sorted(BINARY))
@given(data=st.data())
def test_binary_matches_torch(torch, name, dtype, data):
    a, b = _draw_binary(data, name, dtype)
    torch_parity(getattr(minidl, name), getattr(torch, name), a, b)


@pytest.mark.parametrize("symbol", sorted(OPERATORS))
@given(data=st.data())
def test_operators_match_torch_both_ways_round(torch, symbol, data):
    """``a op b``, ``a op 2.5`` and ``2.5 op a`` (the reflected operator)."""
    op = OPERATORS[symbol]
    shape_a, shape_b = data.draw(broadcastable_shapes())
    a = data.draw(arrays(shape_a, away_from_zero()))
    b = data.draw(arrays(shape_b, away_from_zero()))
    torch_parity(op, op, a, b)
    torch_parity(lambda x: op(x, 2.5), lambda x: op(x, 2.5), a)
    torch_parity(lambda x: op(2.5, x), lambda x: op(2.5, x), a)


@pytest.mark.parametrize("name", ["add", "sub"])
def test_add_sub_alpha_matches_torch(torch, name):
    a, b = seeded_array((2, 3), seed=1), seeded_array((3,), seed=2)
    torch_parity(
        lambda x, y: getattr(minidl, name)(x, y, alpha=2.5),
        lambda x, y: getattr(torch, name)(x, y, alpha=2.5),
        a, b,
    )
    torch_parity(
        lambda x, y: getattr(x, name)(y, alpha=-3),
        lambda x, y: getattr(x, name)(y, alpha=-3),
        a, b,
    )


def test_ndarray_on_the_left_defers_to_tensor():
    """``ndarray + Tensor`` must give a Tensor in the graph, not a plain array."""
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for y in (np.ones(3, dtype=np.float32) + x, np.full(3, 2.0, dtype=np.float32) * x):
        assert isinstance(y, minidl.Tensor)
        assert y.requires_grad
    (np.full(3, 2.0, dtype=np.float32) * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


# ---------------------------------------------------------------------- unary ops


@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_gradcheck(name, data):
    x = data.draw(arrays(shapes(), UNARY[name]))
    check_grad(getattr(minidl, name), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", sorted(UNARY))
@given(data=st.data())
def test_unary_matches_torch(torch, name, dtype, data):
    x = data.draw(arrays(shapes(), UNARY[name])).astype(dtype)
    torch_parity(getattr(minidl, name), getattr(torch, name), x)
    # the Tensor method spells the same op
    torch_parity(lambda t: getattr(t, name)(), lambda t: getattr(t, name)(), x)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "cos", "log1p"])
def test_unary_on_int_tensor_gives_float32_like_torch(torch, name):
    torch_parity(getattr(minidl, name), getattr(torch, name), np.array([1, 2, 3]))


def test_abs_gradient_at_zero_is_zero_like_torch(torch):
    torch_parity(minidl.abs, torch.abs, np.array([-1.5, 0.0, 2.0]))


# ---------------------------------------------------------------------- powers

_EXPONENTS = [0, 1, 2, 3, 0.5, -1.5, 2.5, -1]


@pytest.mark.parametrize("exponent", _EXPONENTS)
@given(data=st.data())
def test_pow_scalar_exponent_gradcheck(exponent, data):
    x = data.draw(arrays(shapes(), positives()))
    check_grad(lambda t: t**exponent, x)
    if float(exponent).is_integer():  # integer powers are defined for negative bases too
        x = data.draw(arrays(shapes(), away_from_zero()))
        check_grad(lambda t: minidl.pow(t, exponent), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("exponent", _EXPONENTS)
@given(data=st.data())
def test_pow_scalar_exponent_matches_torch(torch, exponent, dtype, data):
    x = data.draw(arrays(shapes(), positives())).astype(dtype)
    torch_parity(lambda t: t**exponent, lambda t: t**exponent, x)
    torch_parity(lambda t: t.pow(exponent), lambda t: t.pow(exponent), x)


@pytest.mark.parametrize("base", [2.0, 0.5, 3.7, 2])
@given(x=arrays(shapes(), reals()))
def test_scalar_base_pow_tensor_gradcheck(base, x):
    check_grad(lambda t: base**t, x)
    check_grad(lambda t: minidl.pow(base, t), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("base", [2.0, 0.5, 3.7, 2])
@given(x=arrays(shapes(), reals()))
def test_scalar_base_pow_tensor_matches_torch(torch, base, dtype, x):
    torch_parity(lambda t: base**t, lambda t: base**t, x.astype(dtype))
    torch_parity(lambda t: minidl.pow(base, t), lambda t: torch.pow(base, t), x.astype(dtype))


def test_pow_tensor_exponent_with_zero_base_matches_torch(torch):
    """At base 0 PyTorch defines both gradients as finite (0 where the exponent is >= 0)."""
    a = np.array([0.0, 0.0, 2.0, 0.0])
    b = np.array([2.0, 0.0, 1.5, 1.0])
    torch_parity(minidl.pow, torch.pow, a, b)


def test_int_tensor_pow_float_gives_float32_like_torch(torch):
    torch_parity(lambda t: t**0.5, lambda t: t**0.5, np.array([4, 9, 16]))
    torch_parity(lambda t: t**2, lambda t: t**2, np.array([4, 9, 16]))


# ---------------------------------------------------------------------- clip


_BOUNDS = [(-0.5, 0.5), (None, 0.3), (-0.2, None), (0.0, 1.0)]


@pytest.mark.parametrize("bounds", _BOUNDS)
@given(data=st.data())
def test_clamp_gradcheck(bounds, data):
    lo, hi = bounds
    x = data.draw(arrays(shapes(), reals(avoid=[v for v in bounds if v is not None])))
    check_grad(lambda t: minidl.clamp(t, lo, hi), x)
    check_grad(lambda t: t.clip(min=lo, max=hi), x)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bounds", _BOUNDS)
@given(data=st.data())
def test_clamp_matches_torch(torch, bounds, dtype, data):
    lo, hi = bounds
    x = data.draw(arrays(shapes(), reals(avoid=[v for v in bounds if v is not None])))
    x = x.astype(dtype)
    torch_parity(lambda t: t.clamp(lo, hi), lambda t: t.clamp(lo, hi), x)
    torch_parity(lambda t: minidl.clip(t, lo, hi), lambda t: torch.clip(t, lo, hi), x)


def test_clamp_gradient_at_the_bounds_matches_torch(torch):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    torch_parity(lambda t: t.clamp(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5), x)


def test_clamp_without_bounds_raises():
    with pytest.raises(ValueError, match="clamp"):
        minidl.clamp(minidl.ones(2))


# ---------------------------------------------------------------------- maximum / minimum ties


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_maximum_minimum_ties_split_gradient_like_torch(torch, name):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 0.0, 5.0, -1.0])
    torch_parity(getattr(minidl, name), getattr(torch, name), a, b)


def test_max_of_two_tensors_is_elementwise(torch):
    a, b = seeded_array((2, 3), seed=3), seeded_array((3,), seed=4)
    torch_parity(minidl.max, torch.max, a, b)
    torch_parity(minidl.min, torch.min, a, b)


# ---------------------------------------------------------------------- where


@given(data=st.data())
def test_where_gradcheck(data):
    cond_shape, a_shape, b_shape = data.draw(broadcastable_shapes(num_shapes=3))
    cond = data.draw(arrays(cond_shape, st.booleans(), dtype=bool))
    a, b = data.draw(arrays(a_shape)), data.draw(arrays(b_shape))
    check_grad(lambda x, y: minidl.where(cond, x, y), a, b)
    check_grad(lambda x, y: minidl.where(minidl.tensor(cond), x, y), a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@given(data=st.data())
def test_where_matches_torch(torch, dtype, data):
    cond_shape, a_shape, b_shape = data.draw(broadcastable_shapes(num_shapes=3))
    cond = data.draw(arrays(cond_shape, st.booleans(), dtype=bool))
    a = data.draw(arrays(a_shape)).astype(dtype)
    b = data.draw(arrays(b_shape)).astype(dtype)
    torch_parity(
        lambda x, y: minidl.where(minidl.tensor(cond), x, y),
        lambda x, y: torch.where(torch.tensor(cond), x, y),
        a, b,
    )
    torch_parity(  # a Python number on either side takes the tensor's dtype
        lambda x: minidl.where(minidl.tensor(cond), x, 0.5),
        lambda x: torch.where(torch.tensor(cond), x, 0.5),
        a,
    )


# ---------------------------------------------------------------------- comparisons

_COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]
_SYMBOLS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@pytest.mark.parametrize("name", _COMPARISONS)
@given(data=st.data())
def test_comparisons_match_torch_and_have_no_grad(torch, name, data):
    shape_a, shape_b = data.draw(broadcastable_shapes())
    small_ints = st.integers(-2, 2).map(float)  # equal values happen often
    a = data.draw(arrays(shape_a, small_ints))
    b = data.draw(arrays(shape_b, small_ints))
    torch_parity(getattr(minidl, name), getattr(torch, name), a, b)
    op = getattr(operator, name)
    torch_parity(op, op, a, b)
    torch_parity(lambda x: op(x, 0.0), lambda x: op(x, 0.0), a)

    x = minidl.tensor(a, requires_grad=True)
    result = op(x, minidl.tensor(b))
    assert result.dtype == np.bool_
    assert not result.requires_grad and result.grad_fn is None, _SYMBOLS[name]


def test_isnan_isfinite_sign_values_match_torch(torch):
    x = np.array([1.5, -2.0, 0.0, np.nan, np.inf, -np.inf])
    for name in ("isnan", "isfinite", "sign"):
        if name == "sign":
            x = x[~np.isnan(x)]  # NOTE: sign(nan) is nan here (NumPy), 0 in PyTorch
        got = getattr(minidl, name)(minidl.tensor(x, requires_grad=True))
        expected = getattr(torch, name)(torch.tensor(x))
        assert got.dtype == torch_dtype_to_numpy(expected.dtype), name
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
        # NOTE: minidl treats these as non-differentiable (torch.sign has a zero gradient)
        assert not got.requires_grad


# ---------------------------------------------------------------------- dtype promotion

# each case builds the same expression with either library as ``lib``
_PROMOTION_CASES = {
    "tensor of ints is int64": lambda lib: lib.tensor([1, 2]),
    "tensor of floats is float32": lambda lib: lib.tensor([1.0, 2.0]),
    "tensor of bools is bool": lambda lib: lib.tensor([True, False]),
    "int * 2.5": lambda lib: lib.tensor([1, 2]) * 2.5,
    "int * 2": lambda lib: lib.tensor([1, 2]) * 2,
    "2.5 - int": lambda lib: 2.5 - lib.tensor([1, 2]),
    "int / int": lambda lib: lib.tensor([1, 3]) / lib.tensor([2, 2]),
    "int / 2": lambda lib: lib.tensor([1, 3]) / 2,
    "float32 * float64": lambda lib: (
        lib.tensor([1.0, 2.0], dtype=lib.float32) * lib.tensor([3.0, 4.0], dtype=lib.float64)
    ),
    "int64 + float32": lambda lib: lib.tensor([1, 2]) + lib.tensor([0.5, 0.5]),
    "float32 + int64": lambda lib: lib.tensor([0.5, 0.5]) + lib.tensor([1, 2]),
    "int32 + int64": lambda lib: (
        lib.tensor([1, 2], dtype=lib.int32) + lib.tensor([3, 4], dtype=lib.int64)
    ),
    "float32 * python float": lambda lib: lib.tensor([1.0, 2.0]) * 0.1,
    "float64 + python float": lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float64) + 0.1,
    "float64 * python int": lambda lib: lib.tensor([1.0, 2.0], dtype=lib.float64) * 3,
    "int32 * python int": lambda lib: lib.tensor([1, 2], dtype=lib.int32) * 3,
    "int ** 0.5": lambda lib: lib.tensor([4, 9]) ** 0.5,
    "int ** 2": lambda lib: lib.tensor([4, 9]) ** 2,
    "2.0 ** int": lambda lib: 2.0 ** lib.tensor([1, 2]),
    "float32 maximum float64": lambda lib: lib.maximum(
        lib.tensor([1.0], dtype=lib.float32), lib.tensor([2.0], dtype=lib.float64)
    ),
    "exp(int)": lambda lib: lib.exp(lib.tensor([1, 2])),
    "sum(bool)": lambda lib: lib.tensor([True, True, False]).sum(),
    "sum(int32)": lambda lib: lib.tensor([1, 2], dtype=lib.int32).sum(),
}


@pytest.mark.parametrize("case", sorted(_PROMOTION_CASES))
def test_dtype_promotion_matches_torch(torch, case):
    build = _PROMOTION_CASES[case]
    got, expected = build(minidl), build(torch)
    assert got.dtype == torch_dtype_to_numpy(expected.dtype), case
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
def test_shape_mismatch_error_names_op_and_both_shapes(name):
    a, b = minidl.ones(2, 3), minidl.ones(4)
    with pytest.raises(ValueError) as info:
        getattr(minidl, name)(a, b)
    message = str(info.value)
    assert name in message
    assert "(2, 3)" in message and "(4,)" in message


def test_operator_shape_mismatch_error():
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\)"):
        minidl.ones(2, 3) + minidl.ones(4)
