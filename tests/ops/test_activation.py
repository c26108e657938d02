"""Activation ops: PyTorch parity (values and gradients), gradcheck, kinks, stability, errors.

Expected values come from PyTorch 2.13 (skipped without torch) or from formulas written
out here, never from minidl itself.
"""

import doctest
import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import torch_parity

import minidl
from minidl.ops import activation as A

# max_examples comes from the hypothesis profile in tests/conftest.py
SETTINGS = settings(deadline=None)
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}


# ----------------------------------------------------------------------------- helpers


@st.composite
def arrays(draw, min_dims=1, max_dims=4, max_side=5, scale=3.0):
    """A float64 array of a drawn shape, filled from a drawn seed (fast to generate)."""
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape) * scale


def away_from(x, kinks, gap=0.02):
    """Move values closer than ``gap`` to any kink out to distance ``gap`` (for gradcheck)."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, gap, -gap)
    return x


def assert_parity(mini_fn, torch_fn, x, dtype):
    """Same input through minidl and PyTorch: shape, dtype, values and gradient agree."""
    torch_parity(mini_fn, torch_fn, x.astype(dtype), **TOL[dtype])


def _torch_ops():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    return torch, F


# (name, minidl function, torch function name + kwargs, kinks to avoid in gradcheck)
ELEMENTWISE = [
    ("relu", A.relu, ("relu", {}), [0.0]),
    ("relu6", A.relu6, ("relu6", {}), [0.0, 6.0]),
    ("hardtanh", lambda x: A.hardtanh(x, -0.5, 2.0), ("hardtanh", dict(min_val=-0.5, max_val=2.0)),
     [-0.5, 2.0]),
    ("leaky_relu", A.leaky_relu, ("leaky_relu", {}), [0.0]),
    ("leaky_relu_0.3", lambda x: A.leaky_relu(x, 0.3), ("leaky_relu", dict(negative_slope=0.3)),
     [0.0]),
    ("elu", A.elu, ("elu", {}), [0.0]),
    ("elu_2", lambda x: A.elu(x, alpha=2.0), ("elu", dict(alpha=2.0)), [0.0]),
    ("gelu", A.gelu, ("gelu", {}), []),
    ("gelu_tanh", lambda x: A.gelu(x, approximate="tanh"), ("gelu", dict(approximate="tanh")), []),
    ("sigmoid", A.sigmoid, ("sigmoid", {}), []),
    ("logsigmoid", A.logsigmoid, ("logsigmoid", {}), []),
    ("tanh", A.tanh, ("tanh", {}), []),
    ("softplus", A.softplus, ("softplus", {}), []),
    # beta * x crosses the threshold inside the drawn range: a kink at x = threshold / beta
    ("softplus_b2_t3", lambda x: A.softplus(x, beta=2.0, threshold=3.0),
     ("softplus", dict(beta=2.0, threshold=3.0)), [1.5]),
    ("softplus_b0.5", lambda x: A.softplus(x, beta=0.5), ("softplus", dict(beta=0.5)), []),
    ("silu", A.silu, ("silu", {}), []),
]
IDS = [case[0] for case in ELEMENTWISE]


def _torch_fn(spec):
    name, kwargs = spec

    def fn(x):
        torch, F = _torch_ops()
        return getattr(F, name)(x, **kwargs)

    return fn


# ----------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, fn, torch_spec, kinks", ELEMENTWISE, ids=IDS)
@SETTINGS
@given(x=arrays())
def test_elementwise_parity_with_torch(name, fn, torch_spec, kinks, dtype, x):
    assert_parity(fn, _torch_fn(torch_spec), x, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@SETTINGS
@given(x=arrays(), data=st.data())
def test_softmax_parity_with_torch_every_dim(op, dtype, x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    _torch_ops()

    def torch_fn(t):
        import torch

        return getattr(torch, op)(t, dim=dim)

    assert_parity(lambda t: getattr(A, op)(t, dim=dim), torch_fn, x, dtype)


def test_gelu_values_at_large_arguments_match_torch():
    # the erf tails: gelu(-x) underflows gracefully, gelu(x) -> x
    x = np.array([-40.0, -30.0, -10.0, -6.0, -4.5, -0.3, 0.3, 4.5, 6.0, 10.0, 40.0])
    for approximate in ("none", "tanh"):
        assert_parity(lambda t, a=approximate: A.gelu(t, approximate=a),
                      lambda t, a=approximate: _torch_ops()[1].gelu(t, approximate=a),
                      x, np.float64)


def test_softplus_threshold_switches_exactly_like_torch():
    # beta * x on both sides of the threshold, and on it (the identity starts strictly above)
    x = np.array([-25.0, 9.999999, 10.0, 10.000001, 30.0])
    assert_parity(lambda t: A.softplus(t, beta=2.0, threshold=20.0),
                  lambda t: _torch_ops()[1].softplus(t, beta=2.0, threshold=20.0), x, np.float64)


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("name, fn, torch_spec, kinks", ELEMENTWISE, ids=IDS)
@SETTINGS
@given(x=arrays(max_dims=3, max_side=4))
def test_elementwise_gradcheck(name, fn, torch_spec, kinks, x):
    x = minidl.Tensor(away_from(x, kinks), requires_grad=True)
    assert minidl.gradcheck(fn, [x])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@SETTINGS
@given(x=arrays(max_dims=3, max_side=4), data=st.data())
def test_softmax_gradcheck(op, x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1), label="dim")
    x = minidl.Tensor(x, requires_grad=True)
    assert minidl.gradcheck(lambda t: getattr(A, op)(t, dim=dim), [x])


@SETTINGS
@given(x=arrays(max_dims=2, max_side=4))
def test_erf_gradcheck(x):
    assert minidl.gradcheck(A.erf, [minidl.Tensor(x, requires_grad=True)])


# ----------------------------------------------------------------------------- conventions


def _grad_at(fn, values):
    x = minidl.tensor(values, dtype="float64", requires_grad=True)
    fn(x).sum().backward()
    return x.grad.tolist()


def test_gradients_at_kinks_follow_pytorch_conventions():
    # written out by hand from PyTorch's kernels (and checked against torch below)
    assert _grad_at(A.relu, [-1.0, 0.0, 1.0]) == [0.0, 0.0, 1.0]
    assert _grad_at(lambda x: A.leaky_relu(x, 0.1), [-1.0, 0.0, 1.0]) == [0.1, 0.1, 1.0]
    assert _grad_at(lambda x: A.elu(x, 2.0), [0.0, 1.0]) == [2.0, 1.0]
    assert _grad_at(lambda x: A.hardtanh(x, -1.0, 1.0), [-1.0, 0.0, 1.0]) == [0.0, 1.0, 0.0]
    assert _grad_at(A.relu6, [0.0, 3.0, 6.0]) == [0.0, 1.0, 0.0]


def test_gradients_at_kinks_match_torch():
    x = np.array([-1.0, 0.0, 1.0, 6.0])
    torch, F = _torch_ops()
    for fn, torch_fn in [
        (A.relu, F.relu),
        (lambda t: A.leaky_relu(t, 0.1), lambda t: F.leaky_relu(t, 0.1)),
        (lambda t: A.elu(t, 2.0), lambda t: F.elu(t, 2.0)),
        (A.hardtanh, F.hardtanh),
        (A.relu6, F.relu6),
    ]:
        assert_parity(fn, torch_fn, x, np.float64)


def test_nan_propagates_like_torch():
    torch, F = _torch_ops()
    x = np.array([np.nan, 1.0])
    for fn, torch_fn in [(A.relu, F.relu), (A.sigmoid, torch.sigmoid), (A.gelu, F.gelu),
                         (A.leaky_relu, F.leaky_relu), (A.elu, F.elu), (A.softplus, F.softplus)]:
        mine = fn(minidl.tensor(x)).data
        theirs = torch_fn(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))


def test_erf_matches_math_erf_to_float64_precision():
    x = np.concatenate([np.linspace(-8, 8, 20001), [0.46875, 4.0, 26.0, 27.0, -27.0, 1e-300]])
    expected = np.array([math.erf(v) for v in x])
    got = A.erf(minidl.tensor(x)).data
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=4e-16)
    assert A.erf(minidl.tensor([np.inf, -np.inf])).tolist() == [1.0, -1.0]


def test_softmax_of_zero_dim_tensor_is_one():
    torch, _ = _torch_ops()
    x = minidl.tensor(3.0, dtype="float64")
    assert A.softmax(x, 0).item() == torch.softmax(torch.tensor(3.0), 0).item() == 1.0
    assert A.log_softmax(x, -1).item() == 0.0


def test_softmax_dtype_argument_casts_and_grad_comes_back_in_input_dtype():
    x = minidl.tensor([[1.0, 2.0, 3.0]], requires_grad=True)  # float32
    y = A.softmax(x, dim=1, dtype="float64")
    assert y.dtype == np.float64
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(y.data[0], e / e.sum(), rtol=1e-15)
    (y * minidl.tensor([[1.0, 0.0, 0.0]], dtype="float64")).sum().backward()
    assert x.grad.dtype == np.float32


def test_tensor_methods_use_these_ops():
    x = minidl.tensor([[1e4, -1e4], [0.0, 0.0]], dtype="float64")
    np.testing.assert_array_equal(x.softmax(1).data, [[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_array_equal(x.log_softmax(1).data, [[0.0, -2e4], [-math.log(2)] * 2])
    np.testing.assert_array_equal(x.sigmoid().data, [[1.0, 0.0], [0.5, 0.5]])


# ----------------------------------------------------------------------------- stability


EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, -1e4, -1e4], [1e4, 1e4, -2.0, 5e3]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "op", ["sigmoid", "logsigmoid", "softplus", "tanh", "silu", "gelu", "elu", "softmax",
           "log_softmax"],
)
def test_extreme_logits_are_finite_warning_free_and_match_torch(op, dtype):
    fn = getattr(A, op)
    if op in ("softmax", "log_softmax"):
        fn = lambda t, f=fn: f(t, dim=1)  # noqa: E731
    x = minidl.Tensor(EXTREME.astype(dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            y = fn(x)
            y.backward(minidl.ones(*y.shape, dtype=dtype))
    assert np.all(np.isfinite(y.data)) and np.all(np.isfinite(x.grad.data))

    torch, F = _torch_ops()
    torch_fn = {"softmax": lambda t: F.softmax(t, 1), "log_softmax": lambda t: F.log_softmax(t, 1),
                "sigmoid": torch.sigmoid, "tanh": torch.tanh}.get(op) or getattr(F, op)
    assert_parity(fn, torch_fn, EXTREME, dtype)


def test_sigmoid_extremes_are_exact():
    y = A.sigmoid(minidl.tensor([-1e4, -800.0, 800.0, 1e4], dtype="float64"))
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- errors

ALL_OPS = [
    "relu", "relu6", "hardtanh", "leaky_relu", "elu", "gelu", "erf", "sigmoid", "logsigmoid",
    "tanh", "softplus", "silu",
]


@pytest.mark.parametrize("op", ALL_OPS)
def test_integer_input_raises_type_error_naming_op_and_dtype(op):
    with pytest.raises(TypeError, match=rf"^{op}: expected a floating-point tensor, got int64$"):
        getattr(A, op)(minidl.tensor([1, 2, 3]))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_errors(op):
    fn = getattr(A, op)
    with pytest.raises(TypeError, match=f"{op}: expected a floating-point tensor, got int64"):
        fn(minidl.tensor([1, 2]), dim=0)
    with pytest.raises(TypeError, match=f"{op}: dim is required"):
        fn(minidl.tensor([1.0, 2.0]))
    with pytest.raises(IndexError, match=rf"{op}: dim 2 is out of range .* 2 dimensions"):
        fn(minidl.zeros(2, 3), dim=2)
    with pytest.raises(TypeError, match=f"{op}: dtype must be a floating-point type"):
        fn(minidl.zeros(2, 3), dim=1, dtype="int32")


def test_bool_input_raises_and_bad_options_raise():
    with pytest.raises(TypeError, match="sigmoid: expected a floating-point tensor, got bool"):
        A.sigmoid(minidl.tensor([True, False]))
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'"):
        A.gelu(minidl.zeros(2), approximate="fast")
    with pytest.raises(ValueError, match="hardtanh: min_val .* must not be greater"):
        A.hardtanh(minidl.zeros(2), 1.0, -1.0)


def test_docstring_examples_run():
    result = doctest.testmod(A, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0
