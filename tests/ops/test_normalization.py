"""Normalisation ops (batch_norm, layer_norm, group_norm): gradcheck, PyTorch parity,
running statistics, numerics in float32, errors.

Expected values come from PyTorch 2.13 (skipped without torch) or from the formulas
written out here in float64 NumPy, never from minidl itself.
"""

import doctest

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import check_grad

import minidl
from minidl import backend
from minidl.ops import normalization as N
from minidl.ops.normalization import batch_norm, group_norm, layer_norm

SETTINGS = settings(deadline=None)  # max_examples comes from the conftest profile
TOL = {np.float64: dict(rtol=1e-10, atol=1e-11), np.float32: dict(rtol=2e-5, atol=2e-5)}


# ----------------------------------------------------------------------------- helpers


def md(a, requires_grad=False):
    return minidl.tensor(np.array(a, copy=True), requires_grad=requires_grad)


def th(a, requires_grad=False):
    torch = pytest.importorskip("torch")
    return torch.tensor(np.array(a, copy=True), requires_grad=requires_grad)


def values(t):
    return np.asarray(t.detach())


@st.composite
def bn_cases(draw, max_n=3, max_c=3, max_side=3):
    """(x, weight or None, bias or None, training) for batch_norm, float64."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    spatial = tuple(draw(st.lists(st.integers(1, max_side), min_size=0, max_size=2)))
    training = draw(st.booleans())
    if training:
        # at least 3 values per channel, so the batch variance is well defined and the
        # finite differences stay far from its singularity
        assume(n * int(np.prod(spatial)) >= 3)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c) + spatial) * 2 + rng.uniform(-1, 1)
    if training:
        per_channel = np.moveaxis(x, 1, 0).reshape(c, -1)
        assume(per_channel.var(axis=1).min() > 0.05)
    weight = rng.uniform(0.5, 1.5, c) * rng.choice([-1, 1], c) if draw(st.booleans()) else None
    bias = rng.standard_normal(c) if draw(st.booleans()) else None
    return x, weight, bias, training


def _reference_batch_norm(x, running_mean, running_var, weight, bias, training, eps):
    """Float64 NumPy, straight from the definition (the oracle without torch)."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = running_mean, running_var
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


# ----------------------------------------------------------------------------- batch_norm


@SETTINGS
@given(bn_cases())
def test_batch_norm_gradcheck(case):
    x, weight, bias, training = case
    c = x.shape[1]
    running_mean = np.linspace(-0.5, 0.5, c)
    running_var = np.linspace(0.5, 2.0, c)
    arrays = [x] + [a for a in (weight, bias) if a is not None]

    def fn(x_t, *params):
        params = list(params)
        w = params.pop(0) if weight is not None else None
        b = params.pop(0) if bias is not None else None
        # fresh running buffers each call: training updates them, evaluation reads them
        return batch_norm(x_t, md(running_mean), md(running_var), w, b, training=training)

    check_grad(fn, *arrays)


@SETTINGS
@given(bn_cases(max_n=4, max_c=4, max_side=4), st.sampled_from([np.float32, np.float64]))
def test_batch_norm_forward_matches_definition(case, dtype):
    x, weight, bias, training = case
    c = x.shape[1]
    running_mean = np.linspace(-0.5, 0.5, c)
    running_var = np.linspace(0.5, 2.0, c)
    as_md = [None if a is None else md(a.astype(dtype)) for a in (weight, bias)]
    out = batch_norm(md(x.astype(dtype)), md(running_mean.astype(dtype)),
                     md(running_var.astype(dtype)), *as_md, training=training, eps=1e-3)
    expected = _reference_batch_norm(x.astype(dtype).astype(np.float64), running_mean,
                                     running_var, weight, bias, training, 1e-3)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(values(out), expected, **TOL[dtype])


@SETTINGS
@given(bn_cases(max_n=4, max_c=4, max_side=4), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([0.1, 0.5]))
def test_batch_norm_matches_torch(torch, case, dtype, momentum):
    """Output, input/weight/bias gradients and the updated running statistics."""
    F = torch.nn.functional
    x, weight, bias, training = case
    x = x.astype(dtype)
    c = x.shape[1]
    stats = [np.linspace(-0.5, 0.5, c).astype(dtype), np.linspace(0.5, 2.0, c).astype(dtype)]
    params = [None if a is None else a.astype(dtype) for a in (weight, bias)]
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)

    ours_in = [md(x, True)] + [None if p is None else md(p, True) for p in params]
    ours_stats = [md(s) for s in stats]
    theirs_in = [th(x, True)] + [None if p is None else th(p, True) for p in params]
    theirs_stats = [th(s) for s in stats]
    out = batch_norm(ours_in[0], *ours_stats, *ours_in[1:], training=training,
                     momentum=momentum)
    ref = F.batch_norm(theirs_in[0], *theirs_stats, *theirs_in[1:], training=training,
                       momentum=momentum)
    assert out.dtype == dtype
    np.testing.assert_allclose(values(out), ref.detach().numpy(), **TOL[dtype])
    out.backward(md(upstream))
    ref.backward(th(upstream))
    for mine, theirs in zip(ours_in, theirs_in):
        if theirs is None:
            continue
        assert mine.grad.dtype == dtype and mine.grad.shape == tuple(theirs.shape)
        np.testing.assert_allclose(values(mine.grad), theirs.grad.numpy(), **TOL[dtype])
    for mine, theirs in zip(ours_stats, theirs_stats):
        np.testing.assert_allclose(values(mine), theirs.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_running_statistics_over_several_steps_match_torch(torch, dtype):
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    ours = [md(np.zeros(4, dtype)), md(np.ones(4, dtype))]
    theirs = [th(np.zeros(4, dtype)), th(np.ones(4, dtype))]
    for step in range(5):
        x = (rng.standard_normal((6, 4, 5)) * (step + 1) + step).astype(dtype)
        batch_norm(md(x), *ours, training=True, momentum=0.1)
        F.batch_norm(th(x), *theirs, training=True, momentum=0.1)
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(values(mine), ref.numpy(), **TOL[dtype])
    # the unbiased variance (M - 1 in the denominator) feeds running_var, as in PyTorch
    x = rng.standard_normal((3, 2)).astype(dtype)
    mean, var = md(np.zeros(2, dtype)), md(np.zeros(2, dtype))
    batch_norm(md(x), mean, var, training=True, momentum=1.0)
    np.testing.assert_allclose(values(var), x.astype(np.float64).var(axis=0, ddof=1),
                               **TOL[dtype])


@pytest.mark.parametrize("training", [True, False])
def test_float32_batch_norm_is_numerically_sound(torch, training):
    """A large common offset (|mean| >> std) must not wreck float32 batch norm.

    E[x^2] - E[x]^2 would lose every digit; float32 running sums of 1000s lose ~1e-2 of a
    std of 0.01.  The oracle is PyTorch in float64 on the same (float32-rounded) input;
    minidl in float32 must be within a few float32 roundings of it.  (PyTorch in float32
    folds the mean into one shift and is off by ~4e-3 here.)
    """
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = (1000.0 + 0.01 * rng.standard_normal((64, 3, 50))).astype(np.float32)
    x64 = x.astype(np.float64)
    stats = [x64.mean(axis=(0, 2)) + 0.002, x64.var(axis=(0, 2)) * 1.5]
    upstream = rng.standard_normal(x.shape)

    ours_x = md(x, True)
    ours_stats = [md(s.astype(np.float32)) for s in stats]
    out = batch_norm(ours_x, *ours_stats, training=training)
    out.backward(md(upstream.astype(np.float32)))
    ref_x = th(x64, True)
    ref_stats = [th(s.astype(np.float32).astype(np.float64)) for s in stats]
    ref = F.batch_norm(ref_x, *ref_stats, training=training)
    ref.backward(th(upstream))
    np.testing.assert_allclose(values(out), ref.detach().numpy(), atol=2e-5)
    np.testing.assert_allclose(values(ours_x.grad), ref_x.grad.numpy(), rtol=1e-4, atol=2e-3)


def test_batch_norm_eval_backward_is_affine_and_only_requested_grads():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2))
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    w = md(rng.standard_normal(3), requires_grad=False)
    b = md(rng.standard_normal(3), requires_grad=True)
    xt = md(x, True)
    batch_norm(xt, md(rm), md(rv), w, b, training=False).sum().backward()
    expected = np.broadcast_to((values(w) / np.sqrt(rv + 1e-5))[None, :, None], x.shape)
    np.testing.assert_allclose(values(xt.grad), expected, rtol=1e-12)
    assert w.grad is None
    np.testing.assert_allclose(values(b.grad), [8.0, 8.0, 8.0])


def test_batch_norm_training_without_running_stats_and_under_no_grad():
    x = np.random.default_rng(2).standard_normal((5, 2))
    out = batch_norm(md(x), None, None, training=True)
    np.testing.assert_allclose(values(out), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5))
    mean, var = md(np.zeros(2)), md(np.ones(2))
    with minidl.no_grad():
        out = batch_norm(md(x, True), mean, var, training=True)
    assert not out.requires_grad
    np.testing.assert_allclose(values(mean), 0.1 * x.mean(0))  # updated without a graph


def test_batch_norm_empty_batch(torch):
    mean, var = md(np.zeros(3)), md(np.ones(3))
    w = md(np.ones(3), True)
    x = md(np.zeros((0, 3)), True)
    out = batch_norm(x, mean, var, w, None, training=True)
    assert out.shape == (0, 3)
    out.sum().backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(values(w.grad), np.zeros(3))
    np.testing.assert_array_equal(values(mean), np.zeros(3))  # untouched, as in PyTorch
    np.testing.assert_array_equal(values(var), np.ones(3))


# ----------------------------------------------------------------------------- layer_norm


@st.composite
def ln_cases(draw, max_side=4):
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    normalized = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=2)))
    assume(int(np.prod(normalized)) >= 2)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal(lead + normalized) * 2 + rng.uniform(-1, 1)
    rows = x.reshape(-1, int(np.prod(normalized)))
    assume(rows.var(axis=1).min() > 0.05)
    weight = rng.uniform(0.5, 1.5, normalized) if draw(st.booleans()) else None
    bias = rng.standard_normal(normalized) if draw(st.booleans()) else None
    return x, normalized, weight, bias


def _split(params, weight, bias):
    params = list(params)
    w = params.pop(0) if weight is not None else None
    b = params.pop(0) if bias is not None else None
    return w, b


@SETTINGS
@given(ln_cases())
def test_layer_norm_gradcheck(case):
    x, normalized, weight, bias = case
    arrays = [x] + [a for a in (weight, bias) if a is not None]
    check_grad(lambda x_t, *p: layer_norm(x_t, normalized, *_split(p, weight, bias)), *arrays)


@SETTINGS
@given(ln_cases(max_side=5), st.sampled_from([np.float32, np.float64]))
def test_layer_norm_matches_torch(torch, case, dtype):
    F = torch.nn.functional
    x, normalized, weight, bias = case
    arrays = [a.astype(dtype) for a in [x] + [a for a in (weight, bias) if a is not None]]
    ours = [md(a, True) for a in arrays]
    theirs = [th(a, True) for a in arrays]
    out = layer_norm(ours[0], normalized, *_split(ours[1:], weight, bias), eps=1e-4)
    ref = F.layer_norm(theirs[0], normalized, *_split(theirs[1:], weight, bias), eps=1e-4)
    assert out.dtype == dtype
    np.testing.assert_allclose(values(out), ref.detach().numpy(), **TOL[dtype])
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    out.backward(md(upstream))
    ref.backward(th(upstream))
    for mine, ref_t in zip(ours, theirs):
        assert mine.grad.dtype == dtype
        np.testing.assert_allclose(values(mine.grad), ref_t.grad.numpy(), **TOL[dtype])


def test_layer_norm_definition_and_int_shape():
    x = np.random.default_rng(5).standard_normal((2, 3, 4))
    out = layer_norm(md(x), 4)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(values(out), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12)
    out = layer_norm(md(x), (3, 4), eps=0.1)
    mean, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    np.testing.assert_allclose(values(out), (x - mean) / np.sqrt(var + 0.1), rtol=1e-12)


# ----------------------------------------------------------------------------- group_norm


@st.composite
def gn_cases(draw, max_side=3):
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    per_group = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, max_side), min_size=0, max_size=2)))
    assume(per_group * int(np.prod(spatial)) >= 2)
    c = groups * per_group
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c) + spatial) * 2 + rng.uniform(-1, 1)
    assume(x.reshape(n * groups, -1).var(axis=1).min() > 0.05)
    weight = rng.uniform(0.5, 1.5, c) if draw(st.booleans()) else None
    bias = rng.standard_normal(c) if draw(st.booleans()) else None
    return x, groups, weight, bias


@SETTINGS
@given(gn_cases())
def test_group_norm_gradcheck(case):
    x, groups, weight, bias = case
    arrays = [x] + [a for a in (weight, bias) if a is not None]
    check_grad(lambda x_t, *p: group_norm(x_t, groups, *_split(p, weight, bias)), *arrays)


@SETTINGS
@given(gn_cases(max_side=4), st.sampled_from([np.float32, np.float64]))
def test_group_norm_matches_torch(torch, case, dtype):
    F = torch.nn.functional
    x, groups, weight, bias = case
    arrays = [a.astype(dtype) for a in [x] + [a for a in (weight, bias) if a is not None]]
    ours = [md(a, True) for a in arrays]
    theirs = [th(a, True) for a in arrays]
    out = group_norm(ours[0], groups, *_split(ours[1:], weight, bias))
    theirs_w, theirs_b = _split(theirs[1:], weight, bias)
    if theirs_w is None and theirs_b is not None:
        # PyTorch 2.13's backward fails ("tensor does not have a device") for a bias
        # without a weight; a constant weight of ones is the same function
        theirs_w = torch.ones(x.shape[1], dtype=theirs_b.dtype)
    ref = F.group_norm(theirs[0], groups, theirs_w, theirs_b)
    assert out.dtype == dtype
    np.testing.assert_allclose(values(out), ref.detach().numpy(), **TOL[dtype])
    upstream = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    out.backward(md(upstream))
    ref.backward(th(upstream))
    for mine, ref_t in zip(ours, theirs):
        assert mine.grad.dtype == dtype
        np.testing.assert_allclose(values(mine.grad), ref_t.grad.numpy(), **TOL[dtype])


def test_group_norm_definition():
    x = np.random.default_rng(6).standard_normal((2, 6, 5))
    out = group_norm(md(x), 3)
    groups = x.reshape(2, 3, 10)
    expected = (groups - groups.mean(-1, keepdims=True)) / np.sqrt(
        groups.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(values(out), expected.reshape(x.shape), rtol=1e-12)


# ----------------------------------------------------------------------------- kernels


def test_kernels_are_registered_and_used():
    for name in ("batch_norm", "layer_norm", "group_norm"):
        for part in ("forward", "backward"):
            kernel = backend.get_kernel(f"{name}_{part}")
            assert callable(kernel)
            assert "numpy" in backend.info()["kernels"][f"{name}_{part}"]["available"]
    assert backend._KERNELS["batch_norm_forward"]["numpy"] is N.batch_norm_forward


def test_batch_norm_kernel_keeps_dtype_and_float64_statistics():
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    out, mean, invstd = N.batch_norm_forward(x, None, None, None, None, True, 0.1, 1e-5)
    assert out.dtype == np.float32 and mean.dtype == invstd.dtype == np.float64
    grads = N.batch_norm_backward(x, x, None, mean, invstd, True, (True, False, False))
    assert grads[0].dtype == np.float32 and grads[1] is None and grads[2] is None


@pytest.mark.parametrize("name", ["minidl.ops.normalization", "minidl.nn.batchnorm",
                                  "minidl.nn.normalization"])
def test_doctests(name):
    import importlib

    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# ----------------------------------------------------------------------------- errors


def test_batch_norm_errors():
    x = md(np.zeros((4, 3, 2)))
    stats = md(np.zeros(3)), md(np.ones(3))
    with pytest.raises(ValueError, match=r"batch_norm: input has 3 channels.*\(4, 3, 2\).*"
                                         r"running_mean has shape \(4,\)"):
        batch_norm(x, md(np.zeros(4)), md(np.ones(3)), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\).*"
                                         r"\(4, 3, 2\), got \(2,\)"):
        batch_norm(x, *stats, md(np.ones(2)))
    with pytest.raises(ValueError, match=r"Expected more than 1 value per channel when "
                                         r"training, got input size \(1, 3\)"):
        batch_norm(md(np.zeros((1, 3))), *stats, training=True)
    with pytest.raises(ValueError, match=r"\(1, 3, 1\)"):
        batch_norm(md(np.zeros((1, 3, 1))), *stats, training=True)
    batch_norm(md(np.zeros((1, 3))), *stats, training=False)  # evaluation is fine
    with pytest.raises(ValueError, match="running_mean and running_var must be given"):
        batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match=r"batch_norm: expected an input of shape \(N, C\).*"
                                         r"got shape \(3,\)"):
        batch_norm(md(np.zeros(3)), None, None, training=True)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        batch_norm(x, *stats, training=True, eps=0.0)
    with pytest.raises(ValueError, match="eps must be non-negative"):
        batch_norm(x, *stats, eps=-1.0)
    with pytest.raises(TypeError, match="momentum must be a float"):
        batch_norm(x, *stats, training=True, momentum=None)
    with pytest.raises(TypeError, match="batch_norm: expected a floating-point input"):
        batch_norm(minidl.tensor(np.zeros((4, 3), dtype=np.int64)), None, None, training=True)
    with pytest.raises(TypeError, match="running_mean dtype float32 does not match input "
                                        "dtype float64"):
        batch_norm(x, md(np.zeros(3, np.float32)), md(np.ones(3, np.float32)))
    with pytest.raises(TypeError, match="weight dtype float32 does not match"):
        batch_norm(x, *stats, md(np.ones(3, np.float32)))


def test_layer_and_group_norm_errors():
    x = md(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"layer_norm: normalized_shape=\(4,\) expects an "
                                         r"input of shape \(\*, 4\), got input shape \(2, 3\)"):
        layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"normalized_shape=\(3, 4\).*\(\*, 3, 4\).*\(2, 4, 3\)"):
        layer_norm(md(np.zeros((2, 4, 3))), (3, 4))
    with pytest.raises(ValueError, match=r"layer_norm: weight must have shape \(3,\)"):
        layer_norm(x, 3, weight=md(np.ones(4)))
    with pytest.raises(ValueError, match=r"group_norm: input has 5 channels \(input shape "
                                         r"\(2, 5, 3\)\), which is not divisible by "
                                         r"num_groups=2"):
        group_norm(md(np.zeros((2, 5, 3))), 2)
    with pytest.raises(ValueError, match=r"group_norm: expected an input .* got shape \(6,\)"):
        group_norm(md(np.zeros(6)), 2)
    with pytest.raises(ValueError, match="num_groups must be a positive int"):
        group_norm(md(np.zeros((2, 4))), 0)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        group_norm(md(np.zeros((1, 2))), 2)


def test_empty_layer_and_group_norm():
    w = md(np.ones(4), True)
    x = md(np.zeros((0, 4)), True)
    layer_norm(x, 4, w).sum().backward()
    assert x.grad.shape == (0, 4) and np.all(values(w.grad) == 0)
    x = md(np.zeros((0, 4, 2)), True)
    assert group_norm(x, 2).shape == (0, 4, 2)

