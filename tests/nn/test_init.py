"""nn.init: gains and fans against PyTorch; drawn values against the formulas of the
PyTorch documentation (bounds, means and standard deviations of large samples).

Sample statistics of n = 10^6 draws: the sample mean is within 5 sigma/sqrt(n) of the
true mean, and the sample standard deviation within 1% of the true one (its relative
standard error is about 1/sqrt(2n) = 0.07%).
"""

import math

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.nn import init

torch = pytest.importorskip("torch")

N_ROWS, N_COLS = 1000, 1000  # 10^6 draws per statistical test


def assert_stats(values, mean, std):
    values = np.asarray(values, dtype=np.float64)
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(values.size)
    np.testing.assert_allclose(values.std(), std, rtol=0.01)


def assert_uniform(values, low, high):
    assert values.min() >= low and values.max() <= high
    width = high - low
    assert values.min() < low + 1e-3 * width and values.max() > high - 1e-3 * width
    assert_stats(values, (low + high) / 2, width / math.sqrt(12))


# ---------------------------------------------------------------------- gains and fans


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv_transpose2d", None),
    ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
    ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", math.sqrt(5)), ("selu", None),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-15)


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="not a valid number"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape", [(7, 3), (16, 4, 3, 3), (8, 2, 5), (3, 2, 2, 2, 2), (5, 1)])
def test_fans_match_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(minidl.empty(*shape))
    assert ours == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    receptive = math.prod(shape[2:])
    assert ours == (shape[1] * receptive, shape[0] * receptive)


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(minidl.empty(5))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(minidl.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(minidl.empty(3, 3), mode="fan_avg")


# ---------------------------------------------------------------------- basic fills


def test_fills_are_in_place_and_untracked():
    param = nn.Parameter(np.zeros((N_ROWS, N_COLS), np.float32))
    array = param.data
    result = init.uniform_(param, -2.0, 3.0)
    assert result is param and param.data is array  # same tensor, same array
    assert param.grad_fn is None and param.is_leaf and param.requires_grad
    assert param.dtype == np.float32
    assert_uniform(param.data, -2.0, 3.0)
    init.normal_(param, 1.5, 0.3)
    assert_stats(param.data, 1.5, 0.3)
    init.constant_(param, 0.25)
    assert np.all(param.data == 0.25)
    assert np.all(init.ones_(minidl.empty(3, 2, dtype=minidl.float64)).data == 1.0)
    assert np.all(init.zeros_(param).data == 0.0)


def test_deterministic_fills_match_torch():
    np.testing.assert_array_equal(init.eye_(minidl.empty(3, 5)).numpy(),
                                  torch.nn.init.eye_(torch.empty(3, 5)).numpy())
    for shape, groups in (((4, 4, 3), 1), ((6, 2, 3, 3), 2), ((2, 3, 3, 3, 3), 1)):
        np.testing.assert_array_equal(
            init.dirac_(minidl.empty(*shape), groups).numpy(),
            torch.nn.init.dirac_(torch.empty(*shape), groups).numpy(),
        )
    with pytest.raises(ValueError, match="2 dimensions"):
        init.eye_(minidl.empty(2, 2, 2))
    with pytest.raises(TypeError, match="floating-point"):
        init.uniform_(minidl.zeros(3, dtype=minidl.int64))


def test_seeded_draws_are_reproducible():
    minidl.manual_seed(7)
    a = init.kaiming_normal_(minidl.empty(20, 30)).numpy().copy()
    minidl.manual_seed(7)
    b = init.kaiming_normal_(minidl.empty(20, 30)).numpy()
    np.testing.assert_array_equal(a, b)
    own = np.random.default_rng(3)
    c = init.normal_(minidl.empty(10), generator=own).numpy().copy()
    d = init.normal_(minidl.empty(10), generator=np.random.default_rng(3)).numpy()
    np.testing.assert_array_equal(c, d)


# ---------------------------------------------------------------------- scaled inits


@pytest.mark.parametrize("shape", [(N_ROWS, N_COLS), (250, 100, 5, 8)])
def test_xavier(shape):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    gain = 5 / 3
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    assert_uniform(init.xavier_uniform_(minidl.empty(*shape), gain=gain).data, -bound, bound)
    assert_stats(init.xavier_normal_(minidl.empty(*shape), gain=gain).data, 0.0, std)


@pytest.mark.parametrize("shape", [(N_ROWS, N_COLS), (400, 50, 7, 7)])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.1),
                                            ("leaky_relu", math.sqrt(5)), ("tanh", 0)])
def test_kaiming(shape, mode, nonlinearity, a):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    fan = fan_in if mode == "fan_in" else fan_out
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    w = init.kaiming_uniform_(minidl.empty(*shape), a=a, mode=mode, nonlinearity=nonlinearity)
    assert_uniform(w.data, -bound, bound)
    w = init.kaiming_normal_(minidl.empty(*shape), a=a, mode=mode, nonlinearity=nonlinearity)
    assert_stats(w.data, 0.0, std)


def test_kaiming_on_empty_tensor_warns():
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_uniform_(minidl.empty(0, 3))


def _truncated_normal_moments(mean, std, a, b):
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    mass = cdf(beta) - cdf(alpha)
    shift = (pdf(alpha) - pdf(beta)) / mass
    var = 1 + (alpha * pdf(alpha) - beta * pdf(beta)) / mass - shift**2
    return mean + std * shift, std * math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [
    (0.0, 1.0, -2.0, 2.0),     # PyTorch's defaults
    (0.5, 0.02, 0.47, 0.6),    # asymmetric, as used for ViT weights
    (0.0, 1.0, 3.0, 3.5),      # far in the tail: few normal draws would land here
])
def test_trunc_normal(mean, std, a, b):
    w = init.trunc_normal_(minidl.empty(N_ROWS, N_COLS, dtype=minidl.float64), mean, std, a, b)
    values = w.data
    assert values.min() >= a and values.max() <= b
    expected_mean, expected_std = _truncated_normal_moments(mean, std, a, b)
    assert_stats(values, expected_mean, expected_std)


@pytest.mark.parametrize("shape,gain", [((30, 50), 1.0), ((50, 30), 2.0), ((8, 3, 2, 2), 0.5)])
def test_orthogonal(shape, gain):
    w = init.orthogonal_(minidl.empty(*shape, dtype=minidl.float64), gain=gain).numpy()
    flat = w.reshape(shape[0], -1)
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-12)
    w32 = init.orthogonal_(minidl.empty(*shape), gain=gain).numpy().reshape(rows, cols)
    gram32 = w32 @ w32.T if rows <= cols else w32.T @ w32
    np.testing.assert_allclose(gram32, gain**2 * np.eye(min(rows, cols)), atol=1e-5)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal_(minidl.empty(4))
