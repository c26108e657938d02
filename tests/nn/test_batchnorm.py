"""BatchNorm1d/BatchNorm2d against PyTorch: construction, state_dict keys, repr, several
training steps (outputs, every gradient, running statistics, batch count) with
momentum 0.1 and momentum=None, eval after training, track_running_stats=False,
affine=False, and errors that name the layer and the shape.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.nn.batchnorm import BatchNorm1d, BatchNorm2d

torch = pytest.importorskip("torch")

SETTINGS = settings(deadline=None)  # max_examples from the conftest profile
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-5, atol=2e-5)}
LAYERS = {"BatchNorm1d": (BatchNorm1d, torch.nn.BatchNorm1d),
          "BatchNorm2d": (BatchNorm2d, torch.nn.BatchNorm2d)}


def torch_dtype(dtype):
    return getattr(torch, np.dtype(dtype).name)


def make_pair(name, num_features, dtype=np.float32, seed=0, **kwargs):
    """The same layer in minidl and PyTorch, with random affine parameters copied over
    from PyTorch through ``load_state_dict``."""
    ours_cls, theirs_cls = LAYERS[name]
    theirs = theirs_cls(num_features, **kwargs).to(torch_dtype(dtype))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 2 - 0.5)
    ours = ours_cls(num_features, dtype=dtype, **kwargs)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def assert_same_state(ours, theirs, dtype):
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state) == list(theirs_state)
    for key, value in theirs_state.items():
        mine = np.asarray(ours_state[key])
        assert mine.dtype == value.numpy().dtype, key
        np.testing.assert_allclose(mine, value.numpy(), err_msg=key, **TOL[dtype])


def step(ours, theirs, x, upstream, dtype):
    """One forward/backward through both; compare output and every gradient."""
    x_ours = minidl.tensor(x, requires_grad=True)
    x_theirs = torch.tensor(x, requires_grad=True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert out_ours.dtype == dtype and out_ours.shape == tuple(out_theirs.shape)
    np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                               **TOL[dtype])
    out_ours.backward(minidl.tensor(upstream))
    out_theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(), **TOL[dtype])
    theirs_grads = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad.dtype == dtype
        np.testing.assert_allclose(param.grad.numpy(), theirs_grads[name].grad.numpy(),
                                   err_msg=name, **TOL[dtype])
        param.grad = None
        theirs_grads[name].grad = None


SHAPES = {"BatchNorm1d": [(8, 3), (4, 3, 7)], "BatchNorm2d": [(4, 3, 5, 6)]}
CASES = [(name, shape) for name, shapes in SHAPES.items() for shape in shapes]


# ---------------------------------------------------------------------- training parity


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("name,shape", CASES)
def test_training_steps_then_eval_match_torch(name, shape, momentum, dtype):
    ours, theirs = make_pair(name, shape[1], dtype, momentum=momentum)
    rng = np.random.default_rng(7)
    for k in range(4):
        x = (rng.standard_normal(shape) * (1 + k) + 2 * k - 1).astype(dtype)
        upstream = rng.standard_normal(shape).astype(dtype)
        step(ours, theirs, x, upstream, dtype)
    assert_same_state(ours, theirs, dtype)
    assert int(ours.num_batches_tracked.item()) == 4
    assert ours.num_batches_tracked.dtype == np.int64

    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(dtype)
    step(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype)
    assert_same_state(ours, theirs, dtype)  # evaluation leaves the statistics alone


def test_cumulative_average_with_momentum_none():
    """momentum=None: running_mean is the plain average of the batch means so far."""
    bn = BatchNorm1d(2, momentum=None, dtype=np.float64)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((5, 2)) + k for k in range(3)]
    for x in batches:
        bn(minidl.tensor(x))
    np.testing.assert_allclose(bn.running_mean.numpy(),
                               np.mean([x.mean(0) for x in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(),
                               np.mean([x.var(0, ddof=1) for x in batches], axis=0),
                               rtol=1e-12)


@SETTINGS
@given(n=st.integers(2, 5), c=st.integers(1, 4), length=st.integers(1, 4),
       momentum=st.sampled_from([0.1, 0.7, None]), affine=st.booleans(),
       seed=st.integers(0, 2**16))
def test_batchnorm1d_drawn_sizes_match_torch(n, c, length, momentum, affine, seed):
    ours, theirs = make_pair("BatchNorm1d", c, np.float64, momentum=momentum, affine=affine)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        x = rng.standard_normal((n, c, length)) * 2 + 1
        step(ours, theirs, x, rng.standard_normal(x.shape), np.float64)
    assert_same_state(ours, theirs, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_no_running_stats_uses_batch_statistics_in_eval_too(affine, dtype):
    ours, theirs = make_pair("BatchNorm2d", 3, dtype, track_running_stats=False,
                             affine=affine)
    assert ours.running_mean is None and ours.running_var is None
    assert ours.num_batches_tracked is None
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(1)
    for mode in (True, False):
        ours.train(mode)
        theirs.train(mode)
        x = (rng.standard_normal((3, 3, 4, 4)) + 5).astype(dtype)
        step(ours, theirs, x, rng.standard_normal(x.shape).astype(dtype), dtype)
    # with batch statistics, each channel of the output has mean 0 even in eval mode
    out = ours(minidl.tensor(x)).detach().numpy()
    if not affine:
        np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)


@pytest.mark.parametrize("name,shape", CASES)
def test_affine_false_and_bias_false_match_torch(name, shape):
    for kwargs in ({"affine": False}, {"bias": False}):
        ours, theirs = make_pair(name, shape[1], np.float64, **kwargs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        rng = np.random.default_rng(2)
        x = rng.standard_normal(shape)
        step(ours, theirs, x, rng.standard_normal(shape), np.float64)
        assert_same_state(ours, theirs, np.float64)


def test_eval_parity_after_loading_trained_torch_state():
    theirs = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        for _ in range(3):
            theirs(torch.randn(6, 4, 3, 3) * 2 + 1)
    theirs.eval()
    ours = BatchNorm2d(4)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    ours.eval()
    assert int(ours.num_batches_tracked.item()) == 3
    x = np.random.default_rng(3).standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(minidl.tensor(x)).detach().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), **TOL[np.float32])


def test_state_dict_moves_to_torch():
    ours = BatchNorm1d(3)
    ours(minidl.randn(5, 3) * 3 + 1)
    theirs = torch.nn.BatchNorm1d(3)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.numpy()))
                            for k, v in ours.state_dict().items()})
    assert theirs.num_batches_tracked.item() == 1
    np.testing.assert_array_equal(theirs.running_mean.numpy(), ours.running_mean.numpy())


# ---------------------------------------------------------------------- module basics


@pytest.mark.parametrize("kwargs", [
    {}, {"affine": False}, {"track_running_stats": False}, {"momentum": None},
    {"eps": 1e-3, "momentum": 0.01}, {"bias": False},
    {"affine": False, "track_running_stats": False},
])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_construction_matches_torch(name, kwargs):
    ours_cls, theirs_cls = LAYERS[name]
    ours, theirs = ours_cls(5, **kwargs), theirs_cls(5, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for key, value in theirs.state_dict().items():
        mine = ours.state_dict()[key].numpy()
        assert mine.shape == tuple(value.shape) and mine.dtype == value.numpy().dtype
        np.testing.assert_array_equal(mine, value.numpy())
    assert ours.training and ours.num_features == 5


def test_dtype_device_and_reset():
    bn = BatchNorm2d(3, dtype=np.float64)
    assert bn.weight.dtype == bn.running_mean.dtype == np.float64
    bn(minidl.randn(4, 3, 2, 2, dtype=minidl.float64) * 4 + 2)
    with minidl.no_grad():
        bn.weight.fill_(3.0)
    bn.float()
    assert bn.running_var.dtype == np.float32 and bn.num_batches_tracked.dtype == np.int64
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), 0)
    np.testing.assert_array_equal(bn.running_var.numpy(), 1)
    assert int(bn.num_batches_tracked.item()) == 0
    np.testing.assert_array_equal(bn.weight.detach().numpy(), 3)  # parameters untouched
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.weight.detach().numpy(), 1)
    np.testing.assert_array_equal(bn.bias.detach().numpy(), 0)
    with pytest.raises(TypeError, match="floating point"):
        BatchNorm1d(3, dtype=np.int32)


def test_no_grad_training_still_updates_running_stats():
    bn = BatchNorm1d(2)
    with minidl.no_grad():
        out = bn(minidl.tensor([[1.0, 2.0], [3.0, 6.0]]))
    assert not out.requires_grad
    np.testing.assert_allclose(bn.running_mean.numpy(), [0.2, 0.4], rtol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), [0.9 + 0.2, 0.9 + 0.8], rtol=1e-6)


def test_frozen_parameters_get_no_gradient():
    bn = BatchNorm2d(2)
    bn.weight.requires_grad_(False)
    x = minidl.randn(3, 2, 2, 2, requires_grad=True)
    bn(x).sum().backward()
    assert bn.weight.grad is None and bn.bias.grad is not None and x.grad is not None


# ---------------------------------------------------------------------- errors


def test_errors_name_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected 2D or 3D .* got 4D input "
                                         r"of shape \(2, 3, 4, 5\)"):
        BatchNorm1d(3)(minidl.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected 4D \(N, C, H, W\) input, "
                                         r"got 3D input of shape \(2, 3, 4\)"):
        BatchNorm2d(3)(minidl.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"BatchNorm2d: input has 5 channels, expected "
                                         r"num_features=3 \(input shape \(2, 5, 4, 4\)\)"):
        BatchNorm2d(3)(minidl.randn(2, 5, 4, 4))
    with pytest.raises(TypeError, match="dtype float64 does not match input dtype float32"):
        BatchNorm1d(3, dtype=np.float64)(minidl.randn(4, 3))
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm1d(0)


def test_single_value_per_channel_in_training():
    bn = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d: Expected more than 1 value per "
                                         r"channel when training, got input size \(1, 3\)"):
        bn(minidl.randn(1, 3))
    assert int(bn.num_batches_tracked.item()) == 0  # the failed batch was not counted
    with pytest.raises(ValueError, match=r"got input size \(1, 3, 1\)"):
        bn(minidl.randn(1, 3, 1))
    bn.eval()
    assert bn(minidl.randn(1, 3)).shape == (1, 3)  # fine with running statistics
    bn.train()
    x = minidl.randn(1, 3, 4, requires_grad=True)  # one sample of length 4 is 4 values
    bn(x).backward(minidl.randn(1, 3, 4))
    assert x.grad.shape == (1, 3, 4) and int(bn.num_batches_tracked.item()) == 1
