"""``minidl.nn.utils.spectral_norm``: sigma against NumPy's SVD, PyTorch parity, removal."""

import numpy as np
import pytest

import minidl
from minidl import nn


def _largest_singular_value(weight):
    return np.linalg.svd(weight.reshape(weight.shape[0], -1), compute_uv=False)[0]


@pytest.mark.parametrize("make", [lambda: nn.Linear(7, 5), lambda: nn.Conv1d(4, 6, 5),
                                  lambda: nn.Conv2d(3, 4, 3)],
                         ids=["linear", "conv1d", "conv2d"])
def test_power_iteration_finds_the_largest_singular_value(make):
    minidl.manual_seed(0)
    layer = nn.utils.spectral_norm(make(), n_power_iterations=1)
    x = minidl.randn(2, *({"Linear": (7,), "Conv1d": (4, 12), "Conv2d": (3, 6, 6)}[
        type(layer).__name__]))
    for _ in range(100):  # one iteration per forward pass, as in training
        layer(x)
    original = layer.weight_orig.detach().numpy()
    normalised = layer.weight.detach().numpy()
    np.testing.assert_allclose(normalised * _largest_singular_value(original), original,
                               rtol=1e-4, atol=1e-6)
    assert _largest_singular_value(normalised) == pytest.approx(1.0, abs=1e-4)


def test_state_dict_keys_gradient_and_eval_mode():
    minidl.manual_seed(1)
    layer = nn.utils.spectral_norm(nn.Conv1d(4, 3, 3))
    assert sorted(layer.state_dict()) == ["bias", "weight_orig", "weight_u", "weight_v"]
    assert [name for name, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    x = minidl.randn(2, 4, 9)
    layer(x).sum().backward()
    assert layer.weight_orig.grad is not None and layer.weight_orig.grad.shape == (3, 4, 3)
    layer.eval()
    u = layer.weight_u.numpy().copy()
    layer(x)
    np.testing.assert_array_equal(layer.weight_u.numpy(), u)  # no power iteration in eval


def test_matches_torch_spectral_norm(torch):
    minidl.manual_seed(2)
    ours = nn.utils.spectral_norm(nn.Conv1d(4, 6, 5))
    theirs = torch.nn.utils.spectral_norm(torch.nn.Conv1d(4, 6, 5))
    theirs.load_state_dict({k: torch.tensor(v.detach().numpy())
                            for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 4, 11)).astype(np.float32)
    for _ in range(3):  # several training steps: u and v are carried over identically
        x_ours = minidl.tensor(x, requires_grad=True)
        x_theirs = torch.tensor(x, requires_grad=True)
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        np.testing.assert_allclose(y_ours.detach().numpy(), y_theirs.detach().numpy(),
                                   rtol=1e-5, atol=1e-5)
        ours.zero_grad()
        theirs.zero_grad()
        (y_ours ** 2).sum().backward()
        (y_theirs ** 2).sum().backward()
        np.testing.assert_allclose(ours.weight_orig.grad.numpy(),
                                   theirs.weight_orig.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(x_ours.grad.numpy(), x_theirs.grad.numpy(),
                                   rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.weight_u.numpy(), theirs.weight_u.numpy(), atol=1e-5)


def test_remove_spectral_norm_keeps_the_normalised_weight():
    minidl.manual_seed(3)
    layer = nn.utils.spectral_norm(nn.Linear(5, 4), n_power_iterations=30)
    x = minidl.randn(2, 5)
    expected = layer(x).detach().numpy()
    layer.eval()
    nn.utils.remove_spectral_norm(layer)
    assert sorted(layer.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="not found"):
        nn.utils.remove_spectral_norm(layer)


def test_errors():
    with pytest.raises(AttributeError, match="no parameter 'kernel'"):
        nn.utils.spectral_norm(nn.Linear(2, 2), name="kernel")
    layer = nn.utils.spectral_norm(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="already"):
        nn.utils.spectral_norm(layer)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(out_features=st.integers(1, 5), in_features=st.integers(1, 6), seed=st.integers(0, 99))
def test_normalised_weight_gradcheck_float64(out_features, in_features, seed):
    """The normalised weight W / (u^T W v), u and v held fixed as in PyTorch, has the
    gradient central differences give (float64)."""
    from minidl.gradcheck import gradcheck

    minidl.manual_seed(seed)
    layer = nn.utils.spectral_norm(nn.Linear(in_features, out_features).double())
    layer.train()
    layer(minidl.tensor(np.ones((1, in_features))))          # one power-iteration step
    hook = next(h for h in layer._forward_pre_hooks.values()
                if type(h).__name__ == "_SpectralNormHook")
    u = layer.weight_u.data.copy()
    v = layer.weight_v.data.copy()
    x = minidl.tensor(np.random.default_rng(seed).standard_normal((3, in_features)))

    def normalised_forward(w):
        sigma = ((w @ minidl.tensor(v)) * minidl.tensor(u)).sum()
        return x @ (w / sigma).T

    w = minidl.tensor(layer.weight_orig.data.copy(), requires_grad=True)
    assert gradcheck(normalised_forward, [w])
    # the hook builds the same weight
    np.testing.assert_allclose(hook.compute_weight(layer).detach().numpy(),
                               (w / ((w @ minidl.tensor(v)) * minidl.tensor(u)).sum())
                               .detach().numpy(), rtol=1e-12)
