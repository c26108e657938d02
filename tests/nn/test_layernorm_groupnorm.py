"""LayerNorm and GroupNorm against PyTorch: construction, repr, state_dict keys, outputs
and every gradient (drawn shapes, float32 and float64, train and eval), errors.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn.normalization import GroupNorm, LayerNorm

torch = pytest.importorskip("torch")

SETTINGS = settings(deadline=None)  # max_examples from the conftest profile
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-5, atol=2e-5)}


def torch_dtype(dtype):
    return getattr(torch, np.dtype(dtype).name)


def copy_from_torch(ours, theirs, seed=0):
    """Random non-trivial parameters in PyTorch's layer, loaded into ours."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 0.5)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def compare(ours, theirs, x, dtype, seed=0):
    """Forward, input gradient and every parameter gradient, in train and eval mode."""
    upstream = np.random.default_rng(seed).standard_normal(x.shape).astype(dtype)
    for mode in (True, False):
        ours.train(mode)
        theirs.train(mode)
        x_ours = minidl.tensor(x, requires_grad=True)
        x_theirs = torch.tensor(x, requires_grad=True)
        out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
        assert out_ours.dtype == dtype and out_ours.shape == tuple(out_theirs.shape)
        np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                                   **TOL[dtype])
        out_ours.backward(minidl.tensor(upstream))
        out_theirs.backward(torch.tensor(upstream))
        np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), **TOL[dtype])
        theirs_params = dict(theirs.named_parameters())
        assert [n for n, _ in ours.named_parameters()] == list(theirs_params)
        for name, param in ours.named_parameters():
            assert param.grad.dtype == dtype and param.grad.shape == param.shape
            np.testing.assert_allclose(param.grad.numpy(), theirs_params[name].grad.numpy(),
                                       err_msg=name, **TOL[dtype])
            param.grad = None
            theirs_params[name].grad = None


# ---------------------------------------------------------------------- LayerNorm


@SETTINGS
@given(lead=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       normalized=st.lists(st.integers(1, 5), min_size=1, max_size=2),
       affine=st.booleans(), bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_layer_norm_matches_torch(lead, normalized, affine, bias, dtype, seed):
    assume(int(np.prod(normalized)) > 1)
    shape = tuple(normalized) if len(normalized) > 1 or seed % 2 else normalized[0]
    ours = LayerNorm(shape, elementwise_affine=affine, bias=bias, dtype=dtype)
    theirs = torch.nn.LayerNorm(shape, elementwise_affine=affine, bias=bias,
                                dtype=torch_dtype(dtype))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_from_torch(ours, theirs, seed)
    x = (np.random.default_rng(seed).standard_normal(tuple(lead) + tuple(normalized)) * 3
         + 1).astype(dtype)
    # nearly equal values in a row make 1/std huge and float32 gradients ill-conditioned
    assume(x.astype(np.float64).reshape(-1, int(np.prod(normalized))).var(axis=1).min() > 0.05)
    compare(ours, theirs, x, dtype, seed)


@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-3}, {"elementwise_affine": False},
                                    {"bias": False}])
@pytest.mark.parametrize("shape", [5, (3, 4), [2, 3]])
def test_layer_norm_construction_matches_torch(shape, kwargs):
    ours, theirs = LayerNorm(shape, **kwargs), torch.nn.LayerNorm(shape, **kwargs)
    assert repr(ours) == repr(theirs)
    assert ours.normalized_shape == theirs.normalized_shape
    assert isinstance(ours.normalized_shape, tuple)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        mine = ours.state_dict()[key].numpy()
        assert mine.dtype == np.float32 and mine.shape == tuple(value.shape)
        np.testing.assert_array_equal(mine, value.numpy())
    assert LayerNorm(4, dtype=np.float64).weight.dtype == np.float64


def test_layer_norm_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape=\(4,\) expects an "
                                         r"input of shape \(\*, 4\), got input shape \(2, 3\)"):
        LayerNorm(4)(minidl.randn(2, 3))
    with pytest.raises(ValueError, match=r"LayerNorm: normalized_shape=\(3, 4\).*\(2, 4, 3\)"):
        LayerNorm((3, 4))(minidl.randn(2, 4, 3))
    with pytest.raises(TypeError, match="LayerNorm: weight dtype float32 does not match input "
                                        "dtype float64"):
        LayerNorm(3)(minidl.randn(2, 3, dtype=minidl.float64))
    with pytest.raises(TypeError, match="normalized_shape must be an int or a sequence"):
        LayerNorm(3.5)


# ---------------------------------------------------------------------- GroupNorm


@SETTINGS
@given(n=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), min_size=0, max_size=2), affine=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_group_norm_matches_torch(n, groups, per_group, spatial, affine, dtype, seed):
    assume(per_group * int(np.prod(spatial)) > 1)
    channels = groups * per_group
    ours = GroupNorm(groups, channels, affine=affine, dtype=dtype)
    theirs = torch.nn.GroupNorm(groups, channels, affine=affine, dtype=torch_dtype(dtype))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_from_torch(ours, theirs, seed)
    x = (np.random.default_rng(seed).standard_normal((n, channels) + tuple(spatial)) * 2
         - 1).astype(dtype)
    # a group of nearly equal values makes 1/std huge and float32 gradients ill-conditioned
    # (in both libraries): keep the drawn groups well spread
    assume(x.astype(np.float64).reshape(n * groups, -1).var(axis=1).min() > 0.05)
    compare(ours, theirs, x, dtype, seed)


@pytest.mark.parametrize("kwargs", [{}, {"eps": 1e-3}, {"affine": False}, {"bias": False}])
def test_group_norm_construction_matches_torch(kwargs):
    ours, theirs = GroupNorm(2, 6, **kwargs), torch.nn.GroupNorm(2, 6, **kwargs)
    assert repr(ours) == repr(theirs)
    assert (ours.num_groups, ours.num_channels) == (2, 6)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key].numpy(), value.numpy())


def test_group_norm_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(6\) must be divisible by "
                                         r"num_groups \(4\)"):
        GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"GroupNorm: input has 5 channels, expected "
                                         r"num_channels=6 \(input shape \(2, 5, 3\)\)"):
        GroupNorm(2, 6)(minidl.randn(2, 5, 3))
    with pytest.raises(ValueError, match=r"GroupNorm: expected an input .* got shape \(6,\)"):
        GroupNorm(2, 6)(minidl.randn(6))
    with pytest.raises(ValueError, match="num_groups must be a positive int"):
        GroupNorm(0, 6)


def test_group_norm_batch_of_one_and_extremes():
    """GroupNorm's statistics never mix samples: a batch of one works in training, and
    num_groups=C is instance normalisation."""
    x = np.random.default_rng(0).standard_normal((1, 4, 6))
    out = GroupNorm(4, 4, affine=False, dtype=np.float64)(minidl.tensor(x)).numpy()
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    out = GroupNorm(1, 4, affine=False, dtype=np.float64)(minidl.tensor(x)).numpy()
    np.testing.assert_allclose(out, (x - x.mean()) / np.sqrt(x.var() + 1e-5), rtol=1e-12)
