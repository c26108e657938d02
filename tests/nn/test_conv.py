"""Convolution layers against PyTorch: Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d.

Every layer is built with the same arguments in both libraries; PyTorch's weights are
copied in through ``load_state_dict``; output, input gradient and every parameter
gradient must match in float32 and float64.  Attributes, ``repr``, ``state_dict`` keys,
initialisation and the errors are checked too.  The ops themselves (gradcheck, every
option of the functional forms) are tested in tests/ops/test_conv.py.
"""

import doctest
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeded_array

import minidl
from minidl.nn import conv as conv_modules
from minidl.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

ATTRIBUTES = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
              "groups", "padding_mode", "output_padding", "transposed",
              "_reversed_padding_repeated_twice"]

# (layer name, positional args, keyword args, input shape)
CONFIGS = [
    ("Conv2d", (3, 8, 3), dict(padding=1), (2, 3, 9, 9)),
    ("Conv2d", (3, 8, (3, 5)), dict(stride=2, padding="valid", bias=False), (2, 3, 9, 11)),
    ("Conv2d", (4, 8, (2, 3)), dict(padding="same", dilation=(2, 1), groups=2), (2, 4, 7, 6)),
    ("Conv2d", (6, 6, 3), dict(padding=1, groups=6), (2, 6, 6, 6)),  # depthwise
    ("Conv2d", (4, 8, 3), dict(padding=(1, 2), padding_mode="reflect"), (2, 4, 6, 7)),
    ("Conv2d", (4, 8, 3), dict(padding=1, padding_mode="replicate", stride=2), (2, 4, 7, 7)),
    ("Conv2d", (4, 8, (2, 3)), dict(padding="same", padding_mode="circular"), (2, 4, 6, 5)),
    ("Conv2d", (3, 5, 3), dict(padding=1), (3, 8, 8)),  # unbatched
    ("Conv1d", (4, 16, 19), dict(padding=9), (3, 4, 40)),
    ("Conv1d", (4, 8, 4), dict(padding="same", dilation=2, groups=2, padding_mode="reflect"),
     (2, 4, 15)),
    ("Conv1d", (4, 8, 5), dict(stride=3, padding=2, groups=4), (2, 4, 21)),
    ("Conv1d", (4, 6, 3), dict(padding="same", padding_mode="replicate"), (4, 12)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 5, 5)),
    ("ConvTranspose2d", (4, 6, (4, 3)), dict(stride=(2, 1), groups=2, dilation=(1, 2),
                                            bias=False), (2, 4, 4, 5)),
    ("ConvTranspose2d", (6, 6, 3), dict(groups=6, stride=2), (6, 4, 4)),  # unbatched
    ("ConvTranspose1d", (4, 8, 3), dict(groups=4, dilation=2), (2, 4, 9)),
    ("ConvTranspose1d", (4, 2, 5), dict(stride=3, padding=2, output_padding=2), (2, 4, 10)),
]

DTYPES = [(np.float32, 1e-4), (np.float64, 1e-10)]


def _pair(config, dtype):
    name, args, kwargs, _ = config
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    theirs = getattr(torch.nn, name)(*args, **kwargs).to(torch_dtype)
    ours = getattr(conv_modules, name)(*args, **kwargs, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _ids(config):
    return f"{config[0]}{config[1]}{config[2]}"


# ====================================================================== values and gradients


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_layer_matches_torch(config, dtype, tol):
    ours, theirs = _pair(config, dtype)
    x = seeded_array(config[3], dtype)
    x_ours = minidl.tensor(x.copy(), requires_grad=True)
    x_theirs = torch.tensor(x.copy(), requires_grad=True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert out_ours.shape == tuple(out_theirs.shape) and out_ours.dtype == dtype
    np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                               rtol=tol, atol=tol)

    upstream = seeded_array(out_ours.shape, dtype, seed=7)
    out_ours.backward(minidl.tensor(upstream))
    out_theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), rtol=tol, atol=tol)
    ours_params = dict(ours.named_parameters())
    theirs_params = dict(theirs.named_parameters())
    assert list(ours_params) == list(theirs_params)
    for name, param in ours_params.items():
        assert param.grad.dtype == dtype
        np.testing.assert_allclose(param.grad.numpy(), theirs_params[name].grad.numpy(),
                                   rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("layer", ["ConvTranspose1d", "ConvTranspose2d"])
def test_transposed_output_size_matches_torch(layer):
    nd = 1 if layer.endswith("1d") else 2
    config = (layer, (3, 2, 3), dict(stride=3, padding=1), (2, 3) + (4,) * nd)
    ours, theirs = _pair(config, np.float64)
    x = seeded_array(config[3])
    smallest = (4 - 1) * 3 - 2 + 2 + 1
    for size in range(smallest, smallest + 3):
        output_size = [size] * nd
        out_ours = ours(minidl.tensor(x), output_size=output_size)
        out_theirs = theirs(torch.tensor(x), output_size=output_size)
        assert out_ours.shape[2:] == (size,) * nd
        np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                                   atol=1e-12)
    with pytest.raises(ValueError, match=rf"{layer}: requested an output size of "
                                         rf"\({smallest + 3},"):
        ours(minidl.tensor(x), output_size=[smallest + 3] * nd)


@given(
    in_per_group=st.integers(1, 3), out_per_group=st.integers(1, 3), groups=st.integers(1, 3),
    kernel=st.integers(1, 4), stride=st.integers(1, 2), dilation=st.integers(1, 2),
    padding=st.sampled_from([0, 1, "same", "valid"]), length=st.integers(7, 12),
    bias=st.booleans(), padding_mode=st.sampled_from(["zeros", "reflect", "circular"]),
)
def test_conv1d_layer_matches_torch_for_drawn_options(in_per_group, out_per_group, groups,
                                                      kernel, stride, dilation, padding, length,
                                                      bias, padding_mode):
    if padding == "same":
        stride = 1
    args = (in_per_group * groups, out_per_group * groups, kernel)
    kwargs = dict(stride=stride, dilation=dilation, padding=padding, groups=groups, bias=bias,
                  padding_mode=padding_mode)
    test_layer_matches_torch(("Conv1d", args, kwargs, (2, args[0], length)), np.float64, 1e-10)


# ====================================================================== structure


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_attributes_repr_and_state_dict_match_torch(config):
    name, args, kwargs, _ = config
    ours = getattr(conv_modules, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    for attribute in ATTRIBUTES:
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert repr(ours) == repr(theirs)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        assert ours_state[key].shape == tuple(value.shape)
        assert ours_state[key].dtype == np.float32


@pytest.mark.parametrize("kwargs,text", [
    (dict(), "Conv1d(4, 8, kernel_size=(3,), stride=(1,))"),
    (dict(bias=False, groups=2, dilation=2),
     "Conv1d(4, 8, kernel_size=(3,), stride=(1,), dilation=(2,), groups=2, bias=False)"),
    (dict(padding="same", padding_mode="circular"),
     "Conv1d(4, 8, kernel_size=(3,), stride=(1,), padding=same, padding_mode=circular)"),
])
def test_repr_is_torchs(kwargs, text):
    assert repr(Conv1d(4, 8, 3, **kwargs)) == text
    assert repr(torch.nn.Conv1d(4, 8, 3, **kwargs)) == text


def test_parameter_shapes_and_dtypes():
    assert Conv2d(6, 12, (3, 5), groups=3).weight.shape == (12, 2, 3, 5)
    assert ConvTranspose2d(6, 12, 3, groups=3).weight.shape == (6, 4, 3, 3)
    assert ConvTranspose1d(6, 12, 3, bias=False).bias is None
    layer = Conv1d(4, 8, 3, dtype=np.float64)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    assert layer.weight.requires_grad and layer.bias.requires_grad


# ====================================================================== initialisation


@pytest.mark.parametrize("layer,args,fan_in", [
    (Conv2d, (16, 32, 3), 16 * 9),
    (Conv1d, (4, 128, 19), 4 * 19),
    (Conv2d, (16, 32, 3, 1, 0, 1, 4), 4 * 9),  # groups=4
    # transposed: weight (in, out/groups, k...), so fan_in = out/groups * prod(k)
    (ConvTranspose2d, (16, 32, 3), 32 * 9),
    (ConvTranspose1d, (16, 32, 5, 1, 0, 0, 2), 16 * 5),  # groups=2
])
def test_init_is_uniform_within_one_over_sqrt_fan_in(layer, args, fan_in):
    minidl.manual_seed(0)
    module = layer(*args)
    bound = 1 / math.sqrt(fan_in)
    weight = module.weight.detach().numpy()
    bias = module.bias.detach().numpy()
    assert np.abs(weight).max() <= bound and np.abs(bias).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3); thousands of draws land within 10%
    assert abs(weight.std() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)
    assert np.abs(weight).max() > 0.9 * bound
    # and PyTorch's layer draws from the same interval
    theirs = getattr(torch.nn, layer.__name__)(*args)
    torch_bound = np.abs(theirs.weight.detach().numpy()).max()
    assert 0.9 * bound < torch_bound <= bound


def test_init_is_reproducible_under_manual_seed():
    minidl.manual_seed(123)
    first = Conv2d(3, 8, 3)
    minidl.manual_seed(123)
    second = Conv2d(3, 8, 3)
    np.testing.assert_array_equal(first.weight.detach().numpy(), second.weight.detach().numpy())
    np.testing.assert_array_equal(first.bias.detach().numpy(), second.bias.detach().numpy())
    assert not np.array_equal(first.weight.detach().numpy(),
                              Conv2d(3, 8, 3).weight.detach().numpy())


# ====================================================================== errors


def test_error_3d_input_to_conv2d_names_layer_and_shapes():
    layer = Conv2d(3, 16, 3)
    with pytest.raises(ValueError) as info:
        layer(minidl.zeros(8, 32, 32))
    message = str(info.value)
    assert message.startswith("Conv2d: input has 8 channels, weight expects 3")
    assert "input (8, 32, 32)" in message and "weight (16, 3, 3, 3)" in message
    assert "unsqueeze(1)" in message


def test_error_2d_input_to_conv2d_and_4d_input_to_conv1d():
    with pytest.raises(ValueError, match=r"Conv2d: expected a 3-D unbatched \(C, H, W\) or "
                                         r"4-D batched \(N, C, H, W\) input, got input "
                                         r"\(8, 32\)"):
        Conv2d(3, 16, 3)(minidl.zeros(8, 32))
    with pytest.raises(ValueError, match=r"Conv1d: expected a 2-D unbatched \(C, L\) or 3-D "
                                         r"batched \(N, C, L\) input, got input \(1, 4, 1, 50\)"):
        Conv1d(4, 8, 3)(minidl.zeros(1, 4, 1, 50))


def test_error_wrong_channels_with_non_zero_padding_mode_shows_callers_shape():
    with pytest.raises(ValueError, match=r"Conv1d: input has 5 channels, weight expects 4 "
                                         r"\(input \(2, 5, 10\), weight \(8, 4, 3\)\)"):
        Conv1d(4, 8, 3, padding=1, padding_mode="reflect")(minidl.zeros(2, 5, 10))


def test_error_kernel_larger_than_input_names_layer():
    with pytest.raises(ValueError, match=r"Conv1d: kernel size \(19,\) is larger than the "
                                         r"padded input size \(10,\)"):
        Conv1d(4, 8, 19)(minidl.zeros(2, 4, 10))


def test_error_transposed_channels():
    with pytest.raises(ValueError, match=r"ConvTranspose2d: input has 3 channels, weight "
                                         r"expects 4 \(input \(1, 3, 5, 5\), weight "
                                         r"\(4, 2, 3, 3\)\)"):
        ConvTranspose2d(4, 2, 3)(minidl.zeros(1, 3, 5, 5))


@pytest.mark.parametrize("build,message", [
    (lambda: Conv2d(3, 8, 3, groups=2), r"Conv2d: in_channels \(3\) must be divisible by "
                                        r"groups \(2\)"),
    (lambda: Conv2d(4, 6, 3, groups=4), r"Conv2d: out_channels \(6\) must be divisible"),
    (lambda: Conv2d(4, 6, 3, groups=0), r"Conv2d: groups must be a positive integer"),
    (lambda: Conv1d(4, 6, 3, padding="full"), r"Conv1d: invalid padding string 'full'"),
    (lambda: Conv1d(4, 6, 3, padding="same", stride=2), r"padding='same' is not supported "
                                                          r"for strided convolutions"),
    (lambda: Conv1d(4, 6, 3, padding_mode="mirror"), r"Conv1d: padding_mode must be one of"),
    (lambda: Conv2d(4, 6, 0), r"Conv2d: kernel_size must be positive"),
    (lambda: Conv2d(4, 6, (3, 3, 3)), r"Conv2d: kernel_size must be an int or a tuple of 2"),
    (lambda: Conv2d(4, 6, 3, stride=0), r"Conv2d: stride must be positive"),
    (lambda: Conv2d(4, 6, 3, padding=-1), r"Conv2d: padding must be non-negative"),
    (lambda: ConvTranspose2d(4, 6, 3, padding_mode="reflect"),
     r'Only "zeros" padding mode is supported for ConvTranspose2d'),
    (lambda: ConvTranspose1d(4, 6, 3, padding="same"), r"ConvTranspose1d: padding must be an "
                                                         r"int or a tuple of 1 ints"),
])
def test_constructor_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_docstring_examples_run():
    result = doctest.testmod(conv_modules, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
