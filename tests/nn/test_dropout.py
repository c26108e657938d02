"""Dropout ops and modules: mask statistics, inverted scaling, p = 0 / p = 1, evaluation
identity, reproducibility under manual_seed, gradient = mask * scale, channel dropout,
PyTorch's formulas and error messages.

Masks cannot match PyTorch's (different generators), so parity is checked on what is
deterministic: the scale of kept elements, the values of alpha dropout, the p = 0 / p = 1 /
eval cases, shapes and module reprs.  Everything random is checked against the formula.
"""

import doctest
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import torch_parity

import minidl
import minidl.nn.dropout as nn_dropout
import minidl.ops.dropout as ops_dropout
from minidl.nn.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d
from minidl.ops.dropout import alpha_dropout, dropout, dropout1d, dropout2d

FLOATS = [np.float32, np.float64]


def nonzero_input(shape, dtype, seed=0):
    """Values in [0.5, 1.5] with random signs: never 0, so y / x recovers the mask."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return values.astype(dtype)


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_statistics_and_scaling(p, dtype):
    minidl.manual_seed(123)
    n = 200_000
    y = dropout(minidl.tensor(np.ones(n, dtype=dtype)), p=p).numpy()
    assert y.dtype == dtype
    dropped = np.mean(y == 0)
    # binomial standard deviation sqrt(p(1-p)/n) <= 0.0012: 6 sigma
    assert abs(dropped - p) < 6 * np.sqrt(p * (1 - p) / n)
    kept = np.unique(y[y != 0])
    assert kept.tolist() == [dtype(1.0) / dtype(1.0 - p)]


@pytest.mark.parametrize("dtype", FLOATS)
def test_kept_scale_equals_torch(torch, dtype):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    for p in (0.1, 0.2, 0.3, 0.33, 0.7, 0.999):
        expected = torch.nn.functional.dropout(torch.ones(4000, dtype=tdtype), p)
        expected = expected[expected != 0].unique().numpy()
        y = dropout(minidl.tensor(np.ones(4000, dtype=dtype)), p).numpy()
        assert np.array_equal(np.unique(y[y != 0]), expected), p


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=6),
    p=st.floats(0.05, 0.95),
    dtype=st.sampled_from(FLOATS),
    seed=st.integers(0, 2**31 - 1),
)
def test_output_and_gradient_follow_the_mask(shape, p, dtype, seed):
    """y = x * m / (1-p) with m in {0, 1}, and dL/dx = dL/dy * m / (1-p)."""
    minidl.manual_seed(seed)
    x_np = nonzero_input(shape, dtype, seed=seed % 1000)
    x = minidl.tensor(x_np, requires_grad=True)
    y = dropout(x, p=p)
    assert y.shape == x.shape and y.dtype == dtype and y.requires_grad
    scale = dtype(1.0) / dtype(1.0 - p)
    out = y.detach().numpy()
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x_np[kept] * scale)
    upstream = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    y.backward(minidl.tensor(upstream))
    np.testing.assert_array_equal(x.grad.numpy(), upstream * (kept * scale).astype(dtype))


def test_p_zero_is_identity_and_p_one_gives_zeros():
    x = minidl.tensor(nonzero_input((5, 7), np.float64) * 1e30, requires_grad=True)
    assert dropout(x, p=0.0) is x
    y = dropout(x, p=1.0)
    assert not np.isnan(y.detach().numpy()).any()
    np.testing.assert_array_equal(y.detach().numpy(), np.zeros((5, 7)))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((5, 7)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_deterministic_cases_match_torch(torch, dtype):
    x = nonzero_input((3, 4, 5), dtype)
    F = torch.nn.functional
    torch_parity(lambda t: dropout(t, 0.0), lambda t: F.dropout(t, 0.0), x)
    torch_parity(lambda t: dropout(t, 1.0), lambda t: F.dropout(t, 1.0), x)
    torch_parity(lambda t: dropout(t, 0.5, training=False),
                 lambda t: F.dropout(t, 0.5, training=False), x)
    torch_parity(lambda t: dropout2d(t, 1.0), lambda t: F.dropout2d(t, 1.0),
                 nonzero_input((2, 3, 4, 5), dtype))
    torch_parity(lambda t: dropout1d(t, 1.0), lambda t: F.dropout1d(t, 1.0), x)


def test_eval_mode_is_identity():
    x = minidl.randn(4, 6)
    for layer in (Dropout(0.5), Dropout1d(0.5), AlphaDropout(0.5)):
        layer.eval()
        assert layer(x) is x
    layer = Dropout2d(0.5).eval()
    x4 = minidl.randn(2, 3, 4, 4)
    assert layer(x4) is x4
    train = Dropout(0.5).train()
    assert not np.array_equal(train(minidl.ones(1000)).numpy(), np.ones(1000))


def test_reproducible_under_manual_seed():
    x = minidl.ones(64, 32)
    minidl.manual_seed(7)
    a = dropout(x, 0.5).numpy()
    b = dropout2d(minidl.ones(8, 16, 2, 2), 0.5).numpy()
    minidl.manual_seed(7)
    np.testing.assert_array_equal(dropout(x, 0.5).numpy(), a)
    np.testing.assert_array_equal(dropout2d(minidl.ones(8, 16, 2, 2), 0.5).numpy(), b)
    minidl.manual_seed(8)
    assert not np.array_equal(dropout(x, 0.5).numpy(), a)
    # the generator's state is what matters, so a restored state replays the mask too
    state = minidl.random.get_rng_state()
    c = dropout(x, 0.5).numpy()
    minidl.random.set_rng_state(state)
    np.testing.assert_array_equal(dropout(x, 0.5).numpy(), c)


def test_inplace():
    x = minidl.tensor(nonzero_input((50,), np.float32))
    before = x.detach().numpy().copy()
    minidl.manual_seed(0)
    y = dropout(x, 0.5, inplace=True)
    assert y is x
    after = x.detach().numpy()
    assert np.all((after == 0) | (after == before * 2)) and (after == 0).any()
    # with a graph to record, the result is a new tensor and the input is untouched
    leaf = minidl.tensor(before.copy(), requires_grad=True)
    out = Dropout(0.5, inplace=True)(leaf)
    assert out is not leaf
    np.testing.assert_array_equal(leaf.detach().numpy(), before)


def test_empty_input():
    x = minidl.zeros(0, 3)
    assert dropout(x, 0.5).shape == (0, 3)


# ----------------------------------------------------------------------------- channels


@given(
    n=st.integers(1, 4), c=st.integers(1, 8), length=st.integers(1, 6),
    p=st.floats(0.1, 0.9), seed=st.integers(0, 2**31 - 1), batched=st.booleans(),
)
def test_dropout1d_drops_whole_channels(n, c, length, p, seed, batched):
    minidl.manual_seed(seed)
    shape = (n, c, length) if batched else (c, length)
    x_np = nonzero_input(shape, np.float64, seed=seed % 1000)
    x = minidl.tensor(x_np, requires_grad=True)
    y = dropout1d(x, p)
    # one draw per (sample, channel), constant along L: each row is 0 or x / (1-p)
    kept = (y.detach().numpy() != 0)[..., :1]
    scale = 1.0 / (1.0 - p)
    np.testing.assert_array_equal(y.detach().numpy(), np.where(kept, x_np * scale, 0.0))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.where(kept, scale, 0.0) + 0 * x_np)


@given(
    n=st.integers(1, 4), c=st.integers(1, 8), h=st.integers(1, 4), w=st.integers(1, 4),
    p=st.floats(0.1, 0.9), seed=st.integers(0, 2**31 - 1),
)
def test_dropout2d_drops_whole_channels(n, c, h, w, p, seed):
    minidl.manual_seed(seed)
    x_np = nonzero_input((n, c, h, w), np.float32, seed=seed % 1000)
    x = minidl.tensor(x_np, requires_grad=True)
    y = dropout2d(x, p)
    kept = (y.detach().numpy() != 0)[:, :, :1, :1]
    scale = np.float32(1.0) / np.float32(1.0 - p)
    np.testing.assert_array_equal(y.detach().numpy(), np.where(kept, x_np * scale, 0))
    y.sum().backward()
    expected_grad = np.broadcast_to(np.where(kept, scale, np.float32(0)), x_np.shape)
    np.testing.assert_array_equal(x.grad.numpy(), expected_grad)


def test_channel_statistics():
    minidl.manual_seed(3)
    y = dropout2d(minidl.ones(400, 100, 2, 2), 0.3).numpy()
    per_channel = y[:, :, 0, 0]
    assert np.all(y == per_channel[:, :, None, None])
    assert abs(np.mean(per_channel == 0) - 0.3) < 0.015


def test_dropout2d_3d_input_is_read_as_n_c_l_with_torch_warning(torch):
    x = minidl.ones(4, 16, 5)
    minidl.manual_seed(0)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        y = dropout2d(x, 0.5).numpy()
    # one draw per (dim 0, dim 1) pair, constant along the last dimension
    assert np.all(y == y[:, :, :1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.nn.functional.dropout2d(torch.ones(4, 16, 5), 0.5)
    assert any("Received a 3D input to dropout2d" in str(w.message) for w in caught)


def test_channel_dropout_errors():
    with pytest.raises(ValueError, match=r"dropout1d: expected a 2-D \(C, L\) or 3-D"):
        dropout1d(minidl.ones(2, 3, 4, 5), 0.5)
    with pytest.raises(ValueError, match=r"dropout1d: .*got shape \(5,\)"):
        Dropout1d()(minidl.ones(5))
    with pytest.raises(ValueError, match=r"dropout2d: expected a 4-D"):
        dropout2d(minidl.ones(5), 0.5)
    with pytest.warns(UserWarning, match="Received a 5-D input"):
        dropout2d(minidl.ones(2, 3, 2, 2, 2), 0.5)


# ----------------------------------------------------------------------------- alpha


def test_alpha_dropout_values_match_torch_formula(torch):
    for p in (0.1, 0.5, 0.8):
        expected = torch.nn.functional.alpha_dropout(
            torch.zeros(5000, dtype=torch.float64), p, training=True
        ).unique().numpy()
        y = alpha_dropout(minidl.zeros(5000, dtype="float64"), p, training=True).numpy()
        np.testing.assert_allclose(np.unique(y), expected, rtol=1e-12)


def test_alpha_dropout_keeps_mean_and_variance_and_gradient():
    minidl.manual_seed(11)
    x = minidl.randn(200_000, dtype="float64", requires_grad=True)
    y = alpha_dropout(x, 0.2, training=True)
    assert abs(y.mean().item()) < 0.01 and abs(y.var().item() - 1.0) < 0.02
    y.sum().backward()
    alpha, p = 1.7580993408473766, 0.2
    a = 1.0 / np.sqrt((alpha**2 * p + 1) * (1 - p))
    grad = x.grad.numpy()
    assert set(np.unique(grad).round(12).tolist()) == {0.0, round(a, 12)}
    # kept exactly where the output is a * x + a * alpha * p
    kept = grad != 0
    x_np = x.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy()[kept], a * x_np[kept] + a * alpha * p)
    assert alpha_dropout(x, 1.0, training=True).detach().numpy().max() == 0.0


# ----------------------------------------------------------------------------- modules


def test_module_reprs_and_state_match_torch(torch):
    pairs = [
        (Dropout(), torch.nn.Dropout()),
        (Dropout(0.2, inplace=True), torch.nn.Dropout(0.2, inplace=True)),
        (Dropout1d(0.3), torch.nn.Dropout1d(0.3)),
        (Dropout2d(), torch.nn.Dropout2d()),
        (AlphaDropout(0.1), torch.nn.AlphaDropout(0.1)),
        (Dropout(1), torch.nn.Dropout(1)),
    ]
    for mine, theirs in pairs:
        assert repr(mine) == repr(theirs)
        assert mine.p == theirs.p and mine.inplace == theirs.inplace
        assert list(mine.state_dict()) == list(theirs.state_dict()) == []


@pytest.mark.parametrize("cls", [Dropout, Dropout1d, Dropout2d, AlphaDropout])
def test_module_rejects_bad_p(cls):
    with pytest.raises(ValueError, match=r"dropout probability has to be between 0 and 1, "
                                         r"but got 1.5"):
        cls(1.5)
    with pytest.raises(ValueError, match=r"but got -0.1"):
        cls(-0.1)


def test_function_errors():
    with pytest.raises(ValueError, match=r"dropout: dropout probability has to be between 0 "
                                         r"and 1, but got 1.5"):
        dropout(minidl.ones(3), 1.5)
    with pytest.raises(ValueError, match="but got nan"):
        dropout(minidl.ones(3), float("nan"))
    with pytest.raises(TypeError, match="dropout: expected a floating-point tensor, got int64"):
        dropout(minidl.tensor(np.arange(3)), 0.5)
    with pytest.raises(TypeError, match="dropout: p must be a number"):
        dropout(minidl.ones(3), "0.5")


def test_float32_and_float64_modules_in_train_and_eval():
    for dtype in FLOATS:
        x = minidl.tensor(np.ones((4, 3, 5, 5), dtype=dtype), requires_grad=True)
        for layer in (Dropout(0.3), Dropout2d(0.3)):
            for mode in (True, False):
                layer.train(mode)
                y = layer(x)
                assert y.dtype == dtype and y.shape == x.shape
        y = Dropout(0.3).train()(x)
        y.sum().backward()
        assert x.grad.dtype == dtype


@pytest.mark.parametrize("module", [ops_dropout, nn_dropout])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
