"""Pooling modules: PyTorch's constructor arguments, attributes, reprs and (empty)
state_dict; forward values, indices and input gradients against PyTorch's modules for
every option, batched and unbatched, float32 and float64, train and eval; gradcheck
through the modules; errors that name the layer and the shapes.

The ops themselves are tested in depth in tests/ops/test_pool.py.
"""

import doctest

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import check_grad, torch_parity

import minidl
import minidl.nn.pooling as nn_pooling
from minidl.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)

FLOATS = [np.float64, np.float32]

# (module name, constructor kwargs, input shape): every option, batched and unbatched
CASES = [
    ("MaxPool1d", dict(kernel_size=4), (4, 3, 17)),
    ("MaxPool1d", dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
     (2, 3, 12)),
    ("MaxPool1d", dict(kernel_size=2, return_indices=True), (3, 9)),
    ("MaxPool1d", dict(kernel_size=(3,), stride=(1,), padding=(1,)), (2, 2, 7)),
    ("MaxPool2d", dict(kernel_size=2), (2, 3, 8, 9)),
    ("MaxPool2d", dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2),
                       ceil_mode=True, return_indices=True), (2, 2, 9, 8)),
    ("MaxPool2d", dict(kernel_size=3, stride=2, padding=1), (3, 7, 7)),
    ("AvgPool1d", dict(kernel_size=3), (2, 4, 10)),
    ("AvgPool1d", dict(kernel_size=4, stride=3, padding=2, ceil_mode=True,
                       count_include_pad=False), (2, 3, 11)),
    ("AvgPool1d", dict(kernel_size=2, padding=1), (3, 6)),
    ("AvgPool2d", dict(kernel_size=2), (2, 3, 8, 8)),
    ("AvgPool2d", dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), ceil_mode=True,
                       count_include_pad=False), (2, 2, 9, 7)),
    ("AvgPool2d", dict(kernel_size=3, padding=1, divisor_override=4), (3, 6, 6)),
    ("AdaptiveAvgPool1d", dict(output_size=4), (2, 3, 10)),
    ("AdaptiveAvgPool1d", dict(output_size=7), (3, 5)),
    ("AdaptiveAvgPool2d", dict(output_size=(3, 4)), (2, 3, 10, 7)),
    ("AdaptiveAvgPool2d", dict(output_size=(None, 3)), (3, 5, 8)),
    ("AdaptiveAvgPool2d", dict(output_size=1), (2, 4, 5, 5)),
    ("AdaptiveMaxPool1d", dict(output_size=3), (2, 3, 10)),
    ("AdaptiveMaxPool1d", dict(output_size=6, return_indices=True), (3, 4)),
    ("AdaptiveMaxPool2d", dict(output_size=(2, None), return_indices=True), (2, 3, 7, 5)),
    ("AdaptiveMaxPool2d", dict(output_size=3), (3, 8, 10)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def modules(name, kwargs):
    torch = pytest.importorskip("torch")
    return getattr(nn_pooling, name)(**kwargs), getattr(torch.nn, name)(**kwargs)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_attributes_repr_and_state_dict_match_torch(name, kwargs, shape):
    mine, theirs = modules(name, kwargs)
    assert repr(mine) == repr(theirs)
    public = {k: v for k, v in vars(theirs).items() if not k.startswith("_") and k != "training"}
    for attribute, value in public.items():
        assert getattr(mine, attribute) == value, attribute
    assert mine.state_dict() == {} and len(theirs.state_dict()) == 0
    assert list(mine.parameters()) == []


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_forward_and_input_gradient_match_torch(name, kwargs, shape, dtype, train):
    mine, theirs = modules(name, kwargs)
    mine.train(train)
    theirs.train(train)
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    torch_parity(mine, theirs, x)


@pytest.mark.parametrize("name,kwargs,shape", CASES, ids=IDS)
def test_gradcheck_through_the_module(name, kwargs, shape):
    module = getattr(nn_pooling, name)(**kwargs)
    # distinct, well-separated values: no ties for the max-pooling layers
    size = int(np.prod(shape))
    x = np.random.default_rng(0).permutation(size).reshape(shape) * 0.05
    check_grad(module, x)


@given(kernel=st.integers(1, 4), stride=st.integers(1, 3), extra=st.integers(0, 5),
       seed=st.integers(0, 2**31 - 1), ceil_mode=st.booleans())
def test_maxpool1d_drawn_windows_match_torch(kernel, stride, extra, seed, ceil_mode):
    torch = pytest.importorskip("torch")
    padding = kernel // 2
    length = max(1, kernel - 2 * padding) + extra
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                  return_indices=True)
    x = np.random.default_rng(seed).integers(0, 3, (2, 3, length)).astype(np.float64)
    torch_parity(MaxPool1d(**kwargs), torch.nn.MaxPool1d(**kwargs), x)


def test_module_in_float64_and_no_grad():
    x = minidl.randn(2, 3, 8, 8, dtype="float64")
    for module in (MaxPool2d(2), AvgPool2d(2), AdaptiveAvgPool2d(3), AdaptiveMaxPool2d(3)):
        assert module(x).dtype == np.float64
        with minidl.no_grad():
            assert not module(x).requires_grad
    pooled, indices = MaxPool1d(2, return_indices=True)(minidl.randn(2, 3, 8))
    assert pooled.shape == indices.shape == (2, 3, 4) and indices.dtype == np.int64


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D "
                                         r"\(N, C, H, W\) input, got shape \(2, 3, 4, 4, 4\)"):
        MaxPool2d(2)(minidl.randn(2, 3, 4, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool1d: kernel of extent 5 .* larger than the "
                                         r"padded input 4 \(input shape \(1, 2, 4\)"):
        MaxPool1d(5)(minidl.randn(1, 2, 4))
    with pytest.raises(ValueError, match=r"avg_pool2d: kernel of extent \(3, 3\) .* larger "
                                         r"than the padded input \(2, 2\)"):
        AvgPool2d(3)(minidl.randn(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"avg_pool1d: padding should be at most half"):
        AvgPool1d(2, padding=2)(minidl.randn(1, 2, 8))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool1d: expected a 2-D \(C, L\) or "
                                         r"3-D \(N, C, L\) input, got shape \(5,\)"):
        AdaptiveAvgPool1d(2)(minidl.randn(5))
    with pytest.raises(ValueError, match=r"adaptive_max_pool1d: output_size should contain "
                                         r"one int"):
        AdaptiveMaxPool1d((2, 2))(minidl.randn(1, 2, 5))


def test_doctests():
    result = doctest.testmod(nn_pooling,
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
