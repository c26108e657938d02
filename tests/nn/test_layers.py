"""Layers against PyTorch: Linear/Bilinear forward and gradients, F.linear's errors,
the wiring and arguments of every activation and loss module, Flatten/Unflatten.

The activation and loss functions themselves are tested in tests/ops; here one input
per module checks that the module passes its arguments through as PyTorch's does.
"""

import math

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(1234)


def to_torch(a, requires_grad=False):
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(requires_grad) if requires_grad else t


def to_minidl(a, requires_grad=False):
    return minidl.tensor(np.array(a, copy=True), requires_grad=requires_grad)


def copy_weights(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


# ---------------------------------------------------------------------- Linear


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_backward_matches_torch(dtype, tol, shape, bias):
    theirs = torch.nn.Linear(4, 3, bias=bias).to(getattr(torch, np.dtype(dtype).name))
    ours = nn.Linear(4, 3, bias=bias, dtype=dtype)
    copy_weights(ours, theirs)
    x = RNG.standard_normal(shape).astype(dtype)
    upstream = RNG.standard_normal(shape[:-1] + (3,)).astype(dtype)

    x_ours, x_theirs = to_minidl(x, True), to_torch(x, True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert out_ours.shape == tuple(out_theirs.shape) and out_ours.dtype == dtype
    np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                               rtol=tol, atol=tol)

    out_ours.backward(minidl.tensor(upstream))
    out_theirs.backward(to_torch(upstream))
    pairs = [(x_ours.grad, x_theirs.grad), (ours.weight.grad, theirs.weight.grad)]
    if bias:
        pairs.append((ours.bias.grad, theirs.bias.grad))
    else:
        assert ours.bias is None and list(ours.state_dict()) == ["weight"]
    for g_ours, g_theirs in pairs:
        assert g_ours.dtype == dtype
        np.testing.assert_allclose(g_ours.numpy(), g_theirs.numpy(), rtol=tol * 10, atol=tol * 10)


def test_linear_gradcheck_float64():
    x = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    w = minidl.randn(2, 4, dtype=minidl.float64, requires_grad=True)
    b = minidl.randn(2, dtype=minidl.float64, requires_grad=True)
    assert minidl.gradcheck(F.linear, (x, w, b))
    assert minidl.gradcheck(lambda x, w: F.linear(x, w), (x, w))


def test_linear_only_requested_grads():
    layer = nn.Linear(3, 2)
    layer.weight.requires_grad_(False)
    x = minidl.randn(4, 3)
    layer(x).sum().backward()
    assert layer.weight.grad is None
    np.testing.assert_allclose(layer.bias.grad.numpy(), [4.0, 4.0])


def test_linear_errors_are_clear():
    weight = minidl.randn(3, 4)
    with pytest.raises(ValueError) as err:
        F.linear(minidl.randn(2, 5), weight)
    assert str(err.value) == (
        "linear: input has 5 features (input shape (2, 5)), weight expects 4 "
        "(weight shape (3, 4))"
    )
    with pytest.raises(TypeError, match=r"linear: input must be floating point, got int64"):
        F.linear(minidl.tensor([[1, 2, 3, 4]]), weight)
    with pytest.raises(TypeError, match="float64 does not match weight dtype float32"):
        F.linear(minidl.randn(2, 4, dtype=minidl.float64), weight)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        F.linear(minidl.randn(2, 4), weight, minidl.zeros(4))
    with pytest.raises(ValueError, match="non-negative int"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match="input has 3 features"):
        nn.Linear(4, 3)(minidl.randn(2, 3))


def test_linear_default_init_bounds_like_torch():
    minidl.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives 1/sqrt(fan_in)
    theirs = torch.nn.Linear(400, 300)
    for ours_p, theirs_p in ((layer.weight, theirs.weight), (layer.bias, theirs.bias)):
        values = ours_p.data
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        assert np.abs(theirs_p.detach().numpy()).max() <= bound
    w = layer.weight.data
    assert np.abs(w).max() > 0.999 * bound
    assert abs(w.mean()) < 5 * bound / math.sqrt(3 * w.size)
    np.testing.assert_allclose(w.std(), bound / math.sqrt(3), rtol=0.01)
    assert np.abs(layer.bias.data).max() > 0.9 * bound
    # the global generator drives init: same seed, same weights
    minidl.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.data, w)


def test_linear_options():
    layer = nn.Linear(3, 2, dtype=minidl.float64)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    assert repr(layer) == repr(torch.nn.Linear(3, 2))
    assert repr(nn.Linear(3, 2, bias=False)) == repr(torch.nn.Linear(3, 2, bias=False))
    with pytest.warns(UserWarning, match="zero-element"):
        empty = nn.Linear(0, 3)
    assert np.all(empty.bias.data == 0) and empty(minidl.zeros(2, 0)).shape == (2, 3)
    with pytest.raises(TypeError, match="floating point"):
        nn.Linear(3, 2, dtype=np.int32)


def test_bilinear_matches_torch():
    theirs = torch.nn.Bilinear(3, 4, 2).double()
    ours = nn.Bilinear(3, 4, 2, dtype=np.float64)
    assert repr(ours) == repr(theirs)
    copy_weights(ours, theirs)
    x1, x2 = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 4))
    a1, a2 = to_minidl(x1, True), to_minidl(x2, True)
    b1, b2 = to_torch(x1, True), to_torch(x2, True)
    out_ours, out_theirs = ours(a1, a2), theirs(b1, b2)
    np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                               rtol=1e-12)
    (out_ours ** 2).sum().backward()
    (out_theirs ** 2).sum().backward()
    for g_ours, g_theirs in ((a1.grad, b1.grad), (a2.grad, b2.grad),
                             (ours.weight.grad, theirs.weight.grad),
                             (ours.bias.grad, theirs.bias.grad)):
        np.testing.assert_allclose(g_ours.numpy(), g_theirs.numpy(), rtol=1e-10, atol=1e-12)
    bound = 1 / math.sqrt(3)
    assert np.abs(nn.Bilinear(3, 4, 2).weight.data).max() <= bound


# ---------------------------------------------------------------------- shape layers


def test_flatten_unflatten_identity_match_torch():
    x = RNG.standard_normal((2, 3, 4, 5))
    cases = [
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (nn.Flatten(-3, -2), torch.nn.Flatten(-3, -2)),
        (nn.Unflatten(2, (2, 2)), torch.nn.Unflatten(2, (2, 2))),
        (nn.Unflatten(-1, (5, -1)), torch.nn.Unflatten(-1, (5, -1))),
        (nn.Identity(3, unused=True), torch.nn.Identity(3, unused=True)),
    ]
    for ours, theirs in cases:
        assert repr(ours) == repr(theirs)
        np.testing.assert_array_equal(ours(to_minidl(x)).numpy(), theirs(to_torch(x)).numpy())
    x_ours = to_minidl(x, True)
    nn.Flatten()(x_ours).sum().backward()
    assert x_ours.grad.shape == x.shape
    with pytest.raises(ValueError, match="Unflatten: cannot split dimension 1 of size 3"):
        nn.Unflatten(1, (2, 2))(to_minidl(x))


# ---------------------------------------------------------------------- activations

ACTIVATIONS = [
    ("ReLU", (), {}),
    ("ReLU", (), {"inplace": True}),
    ("LeakyReLU", (0.2,), {}),
    ("LeakyReLU", (), {"negative_slope": 0.05, "inplace": True}),
    ("ELU", (), {"alpha": 0.7}),
    ("GELU", (), {}),
    ("GELU", (), {"approximate": "tanh"}),
    ("Sigmoid", (), {}),
    ("LogSigmoid", (), {}),
    ("Tanh", (), {}),
    ("Softplus", (), {"beta": 2.0, "threshold": 5.0}),
    ("SiLU", (), {}),
    ("Softmax", (), {"dim": 1}),
    ("Softmax", (0,), {}),
    ("LogSoftmax", (), {"dim": -1}),
    ("Hardtanh", (-0.5, 0.8), {}),
    ("ReLU6", (), {}),
]


@pytest.mark.parametrize("name,args,kwargs", ACTIVATIONS)
def test_activation_module_matches_torch(name, args, kwargs):
    ours = getattr(nn, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    assert list(ours.parameters()) == [] and ours.state_dict() == {}
    # values spread over the interesting ranges (ReLU6 saturates at 6), kinks avoided
    x = RNG.standard_normal((4, 5)) * 4 + 0.123
    upstream = RNG.standard_normal((4, 5))
    x_ours, x_theirs = to_minidl(x, True), to_torch(x.copy(), True)
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs.clone())
    np.testing.assert_allclose(out_ours.detach().numpy(), out_theirs.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    out_ours.backward(minidl.tensor(upstream))
    out_theirs.backward(to_torch(upstream))
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(x_ours.detach().numpy(), x)  # input left untouched


def test_softmax_without_dim_asks_for_it():
    with pytest.raises(TypeError, match="dim is required"):
        nn.Softmax()(minidl.randn(2, 3))
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")


# ---------------------------------------------------------------------- losses


def regression():
    return RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3))


def classification():
    logits = RNG.standard_normal((6, 4))
    target = np.array([0, 3, 2, 1, 2, 3], dtype=np.int64)
    return logits, target


def log_probs():
    logits, target = classification()
    return logits - np.log(np.exp(logits).sum(1, keepdims=True)), target


def spatial():
    return RNG.standard_normal((2, 4, 3, 3)), RNG.integers(0, 4, (2, 3, 3))


def probabilities():
    return 1 / (1 + np.exp(-RNG.standard_normal((4, 3)))), RNG.uniform(0, 1, (4, 3))


def logits_and_targets():
    return RNG.standard_normal((4, 3)) * 3, RNG.uniform(0, 1, (4, 3))


def kl_pair(log_target):
    def make():
        inp = np.log(RNG.dirichlet(np.ones(5), size=3))
        target = RNG.dirichlet(np.ones(5), size=3)
        return inp, (np.log(target) if log_target else target)
    return make


CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])

LOSSES = [
    ("MSELoss", {}, regression),
    ("MSELoss", {"reduction": "sum"}, regression),
    ("L1Loss", {"reduction": "none"}, regression),
    ("SmoothL1Loss", {"beta": 0.5}, regression),
    ("HuberLoss", {"delta": 0.7, "reduction": "sum"}, regression),
    ("CrossEntropyLoss", {}, classification),
    ("CrossEntropyLoss", {"weight": CLASS_WEIGHT, "ignore_index": 2,
                          "label_smoothing": 0.1}, classification),
    ("CrossEntropyLoss", {"reduction": "none"}, spatial),
    ("NLLLoss", {"weight": CLASS_WEIGHT, "ignore_index": 1}, log_probs),
    ("NLLLoss", {"reduction": "sum"}, log_probs),
    ("BCELoss", {"weight": np.array([1.0, 0.5, 2.0])}, probabilities),
    ("BCELoss", {"reduction": "none"}, probabilities),
    ("BCEWithLogitsLoss", {}, logits_and_targets),
    ("BCEWithLogitsLoss", {"weight": np.array([1.0, 0.5, 2.0]),
                           "pos_weight": np.array([3.0, 1.0, 0.5]), "reduction": "sum"},
     logits_and_targets),
    ("KLDivLoss", {"reduction": "batchmean"}, kl_pair(False)),
    ("KLDivLoss", {"reduction": "sum", "log_target": True}, kl_pair(True)),
]


def _lib_kwargs(kwargs, convert):
    return {k: convert(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}


@pytest.mark.parametrize("name,kwargs,make_inputs", LOSSES)
def test_loss_module_matches_torch(name, kwargs, make_inputs):
    ours = getattr(nn, name)(**_lib_kwargs(kwargs, to_minidl))
    theirs = getattr(torch.nn, name)(**_lib_kwargs(kwargs, to_torch))
    assert repr(ours) == repr(theirs)
    # class weights are buffers, saved under PyTorch's keys
    assert list(ours.state_dict()) == list(theirs.state_dict())
    inp, target = make_inputs()
    x_ours, x_theirs = to_minidl(inp, True), to_torch(inp, True)
    loss_ours = ours(x_ours, to_minidl(target))
    loss_theirs = theirs(x_theirs, to_torch(target))
    assert loss_ours.shape == tuple(loss_theirs.shape)
    np.testing.assert_allclose(loss_ours.detach().numpy(), loss_theirs.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    upstream = RNG.standard_normal(loss_ours.shape)
    (loss_ours * minidl.tensor(upstream)).sum().backward()
    (loss_theirs * to_torch(upstream)).sum().backward()
    np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(),
                               rtol=1e-9, atol=1e-12)


def test_loss_weight_buffer_follows_dtype_and_legacy_flags():
    loss = nn.CrossEntropyLoss(weight=minidl.tensor(CLASS_WEIGHT.astype(np.float32)))
    assert "weight" in dict(loss.named_buffers())
    loss.double()
    assert loss.weight.dtype == np.float64
    assert nn.BCEWithLogitsLoss().weight is None
    with pytest.warns(UserWarning, match="deprecated"):
        assert nn.MSELoss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning):
        assert nn.L1Loss(size_average=False).reduction == "sum"
