"""minidl.nn.utils.clip_grad_norm_ / clip_grad_value_ against PyTorch and by hand."""

import doctest
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl
from minidl.nn.utils import clip_grad, clip_grad_norm_, clip_grad_value_

try:
    from minidl.nn import Parameter
except ImportError:  # pragma: no cover - before minidl.nn exists
    Parameter = None


def make_param(array):
    if Parameter is not None:
        return Parameter(array.copy())
    return minidl.from_numpy(array.copy()).requires_grad_()


def both_sides(torch, grads):
    """minidl and torch parameters carrying copies of ``grads`` (None: no gradient)."""
    ours, theirs = [], []
    for g in grads:
        shape = (1,) if g is None else g.shape
        dtype = np.float64 if g is None else g.dtype
        p = make_param(np.zeros(shape, dtype=dtype))
        t = torch.zeros(shape, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype,
                        requires_grad=True)
        if g is not None:
            p.grad = minidl.from_numpy(g.copy())
            t.grad = torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


def assert_same_grads(ours, theirs, rtol):
    for p, t in zip(ours, theirs):
        if t.grad is None:
            assert p.grad is None
        else:
            assert p.grad.dtype == t.grad.numpy().dtype
            np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=rtol, atol=1e-12)


def sample_grads(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((3, 4)).astype(dtype), None,
            (3 * rng.standard_normal(7)).astype(dtype),
            rng.standard_normal((2, 1, 2)).astype(dtype)]


@pytest.mark.torch
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, "inf", 3.5, 0.5, -math.inf, 0])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])
def test_clip_grad_norm_matches_torch(torch, dtype, rtol, norm_type, max_norm):
    ours, theirs = both_sides(torch, sample_grads(dtype))
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, minidl.Tensor) and total.shape == ()
    assert total.dtype == ref.numpy().dtype
    np.testing.assert_allclose(total.data, ref.numpy(), rtol=rtol)
    assert_same_grads(ours, theirs, rtol)


@pytest.mark.torch
@given(
    arrays=st.lists(
        hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                   elements=st.floats(-10, 10)),
        min_size=1, max_size=4),
    norm_type=st.sampled_from([1.0, 2.0, 3.0, math.inf]),
    max_norm=st.floats(0.01, 20.0),
)
def test_clip_grad_norm_matches_torch_on_drawn_gradients(torch, arrays, norm_type, max_norm):
    ours, theirs = both_sides(torch, arrays)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    np.testing.assert_allclose(total.data, ref.numpy(), rtol=1e-12, atol=1e-300)
    assert_same_grads(ours, theirs, rtol=1e-12)


def test_clip_grad_norm_by_hand():
    """3-4-5: the total 2-norm over both gradients is 13; scaled to norm 6.5 exactly-ish."""
    a, b = make_param(np.zeros(2)), make_param(np.zeros(1))
    a.grad = minidl.from_numpy(np.array([3.0, 4.0]))
    b.grad = minidl.from_numpy(np.array([12.0]))
    grad_array = a.grad.data
    total = clip_grad_norm_([a, b], max_norm=6.5)
    assert float(total) == 13.0
    coef = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad.data, [3.0 * coef, 4.0 * coef], rtol=1e-15)
    np.testing.assert_allclose(b.grad.data, [12.0 * coef], rtol=1e-15)
    assert a.grad.data is grad_array  # clipped in place
    # below the limit nothing changes (the factor is clamped at 1)
    total = clip_grad_norm_(a, max_norm=100.0, norm_type="inf")
    assert float(total) == pytest.approx(4.0 * coef)
    np.testing.assert_allclose(a.grad.data, [3.0 * coef, 4.0 * coef], rtol=1e-15)


@pytest.mark.torch
def test_non_finite_norm(torch):
    grads = [np.array([1.0, np.nan]), np.array([2.0])]
    ours, theirs = both_sides(torch, grads)
    with pytest.raises(RuntimeError, match="total norm of order 2.0 .* is non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ours[1].grad.data, [2.0])  # nothing was scaled
    total = clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert np.isnan(total.data) and torch.isnan(ref)
    assert_same_grads(ours, theirs, rtol=0)  # both nan everywhere


def test_no_gradients():
    p = make_param(np.ones(3))
    total = clip_grad_norm_([p], 1.0)
    assert float(total) == 0.0 and total.dtype == np.float32
    assert p.grad is None
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((q for q in []), 1.0)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clip_value", [0.3, 2.0, 10])
def test_clip_grad_value_matches_torch(torch, dtype, clip_value):
    ours, theirs = both_sides(torch, sample_grads(dtype, seed=1))
    arrays = [p.grad.data for p in ours if p.grad is not None]
    assert clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    assert_same_grads(ours, theirs, rtol=0)
    with_grad = [p for p in ours if p.grad is not None]
    assert all(p.grad.data is a for p, a in zip(with_grad, arrays))  # clipped in place


def test_clip_grad_value_by_hand():
    p = make_param(np.zeros(4, dtype=np.float32))
    p.grad = minidl.from_numpy(np.array([-5.0, -0.5, 0.25, 9.0], dtype=np.float32))
    clip_grad_value_(p, 1)  # a single Tensor is accepted
    np.testing.assert_array_equal(p.grad.data, [-1.0, -0.5, 0.25, 1.0])
    assert p.grad.dtype == np.float32


def test_docstring_examples():
    result = doctest.testmod(clip_grad, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
