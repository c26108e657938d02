"""Pooling ops: gradcheck (float64, hypothesis-drawn windows), PyTorch parity for every op
and option (values, indices, input gradients, float32 and float64), the tie / NaN / -inf
conventions against PyTorch, adaptive windows of non-divisible sizes, errors, kernels.

Expected values come from PyTorch 2.13 (skipped without torch) or from central
differences, never from minidl itself.
"""

import doctest

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import check_grad, torch_parity

import minidl
from minidl import backend
from minidl.ops import pool as P

FLOATS = [np.float64, np.float32]


# ----------------------------------------------------------------------------- strategies


@st.composite
def pool_configs(draw, nd, with_dilation=True, max_kernel=4, max_extra=4,
                 allow_outside_windows=False):
    """Window parameters for ``nd`` spatial dims and an input shape they fit.

    padding <= kernel // 2 (PyTorch's limit) and each size at least the dilated kernel
    minus both paddings, so there is at least one output.
    """
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = tuple(draw(st.integers(1, 3)) if with_dilation else 1 for _ in range(nd))
    sizes = []
    for k, p, d in zip(kernel, padding, dilation):
        smallest = max(1, (k - 1) * d + 1 - 2 * p)
        sizes.append(draw(st.integers(smallest, smallest + max_extra)))
    if not allow_outside_windows:
        # with dilation a window can have all its taps in the padding (tested separately)
        for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
            count = (size + 2 * p - d * (k - 1) - 1) // s + 1
            starts = np.arange(count) * s - p
            first_inside = np.where(starts < 0, starts + (-starts + d - 1) // d * d, starts)
            assume(np.all(first_inside < size))
    lead = draw(st.sampled_from([(2, 3), (1, 2), (3,)]))  # batched, or unbatched (C, ...)
    use_default_stride = draw(st.booleans())
    as_int = nd == 1 and draw(st.booleans())  # 1-D arguments as ints or 1-tuples

    def arg(values):
        return values[0] if as_int else values

    return dict(
        shape=lead + tuple(sizes),
        kernel_size=arg(kernel),
        stride=None if use_default_stride else arg(stride),
        padding=arg(padding),
        dilation=arg(dilation),
        ceil_mode=draw(st.booleans()),
    )


def distinct_values(shape, seed):
    """A permutation of well-separated values: no ties, so max pooling is differentiable."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size).astype(np.float64) * 0.05 - 1.0
    return values.reshape(shape)


def normal_values(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def torch_f():
    return pytest.importorskip("torch").nn.functional


def _stride_or_default(stride):
    return None if stride is None else stride


# ----------------------------------------------------------------------------- max pooling


@pytest.mark.parametrize("nd", [1, 2])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_max_pool_gradcheck(nd, data, seed):
    cfg = data.draw(pool_configs(nd))
    fn = P.max_pool1d if nd == 1 else P.max_pool2d
    x = distinct_values(cfg["shape"], seed)
    check_grad(lambda t: fn(t, cfg["kernel_size"], cfg["stride"], cfg["padding"],
                            cfg["dilation"], cfg["ceil_mode"]), x)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_max_pool_matches_torch(nd, dtype, data, seed):
    F = torch_f()
    cfg = data.draw(pool_configs(nd))
    mine, theirs = (P.max_pool1d, F.max_pool1d) if nd == 1 else (P.max_pool2d, F.max_pool2d)
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"],
            cfg["ceil_mode"], True)
    x = normal_values(cfg["shape"], seed, dtype)
    torch_parity(lambda t: mine(t, *args), lambda t: theirs(t, *args), x)


@pytest.mark.parametrize("nd", [1, 2])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_max_pool_ties_follow_torch(nd, data, seed):
    """Inputs drawn from {0, 1, 2}: most windows hold several maxima.  The indices and the
    gradient must still equal PyTorch's (the first maximum in window order)."""
    F = torch_f()
    cfg = data.draw(pool_configs(nd))
    mine, theirs = (P.max_pool1d, F.max_pool1d) if nd == 1 else (P.max_pool2d, F.max_pool2d)
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"],
            cfg["ceil_mode"], True)
    x = np.random.default_rng(seed).integers(0, 3, cfg["shape"]).astype(np.float64)
    torch_parity(lambda t: mine(t, *args), lambda t: theirs(t, *args), x)


def test_ties_gradient_goes_to_first_maximum():
    x = minidl.tensor([[[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]]], dtype="float64", requires_grad=True)
    values, indices = P.max_pool1d(x, 3, stride=1, return_indices=True)
    assert values.tolist() == [[[3.0, 3.0, 3.0, 3.0]]]
    # windows [1,3,3] [3,3,2] [3,2,3] [2,3,0]: the first 3 of each
    assert indices.tolist() == [[[1, 1, 2, 4]]]
    values.sum().backward()
    assert x.grad.tolist() == [[[0.0, 2.0, 1.0, 0.0, 1.0, 0.0]]]
    # 2-D: row-major window order, so the top-left of equal maxima wins
    y, idx = P.max_pool2d(minidl.ones(1, 1, 2, 2), 2, return_indices=True)
    assert idx.tolist() == [[[[0]]]]


def test_nan_and_minus_inf_follow_torch():
    F = torch_f()
    nan, inf = float("nan"), float("inf")
    cases = [
        (np.array([[[1.0, nan, 3.0, nan, 2.0]]]), dict(kernel_size=5, stride=1)),
        (np.array([[[1.0, nan, 3.0, nan, 2.0]]]), dict(kernel_size=2, stride=1)),
        # windows whose real taps are all -inf report their first tap inside the input
        (np.full((1, 1, 5), -inf), dict(kernel_size=3, stride=2, padding=1)),
        (np.full((1, 1, 5), -inf), dict(kernel_size=3, stride=1, padding=1, dilation=2)),
    ]
    for x, kwargs in cases:
        torch_parity(lambda t, kw=kwargs: P.max_pool1d(t, return_indices=True, **kw),
                     lambda t, kw=kwargs: F.max_pool1d(t, return_indices=True, **kw),
                     x, grad=False)
    x2 = np.full((1, 1, 4, 5), -inf)
    x2[0, 0, 1, 3] = nan
    x2[0, 0, 2, 0] = nan
    for kwargs in (dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=2, padding=1)):
        torch_parity(lambda t, kw=kwargs: P.max_pool2d(t, return_indices=True, **kw),
                     lambda t, kw=kwargs: F.max_pool2d(t, return_indices=True, **kw),
                     x2, grad=False)


def test_windows_entirely_in_the_padding():
    """Dilation 3, padding 1, width 2: the only window has taps at -1 and 2, both padding.
    Its value is -inf and its index (2, past the input) is PyTorch's; no gradient flows."""
    F = torch_f()
    x = normal_values((2, 3, 1, 2), 0)
    kwargs = dict(kernel_size=(1, 2), stride=1, padding=(0, 1), dilation=(1, 3),
                  return_indices=True)
    torch_parity(lambda t: P.max_pool2d(t, **kwargs), lambda t: F.max_pool2d(t, **kwargs),
                 x, grad=False)
    t = minidl.tensor(x, requires_grad=True)
    P.max_pool2d(t, (1, 2), 1, (0, 1), (1, 3)).backward(minidl.ones(2, 3, 1, 1,
                                                                    dtype="float64"))
    np.testing.assert_array_equal(t.grad.numpy(), np.zeros_like(x))
    # 1-D: windows at [-1, 2] (outside, L=2) next to windows with input taps
    x1 = normal_values((1, 2, 2), 1)
    t = minidl.tensor(x1, requires_grad=True)
    y, idx = P.max_pool1d(t, 2, 1, 1, 3, return_indices=True)
    ty, tidx = F.max_pool1d(pytest.importorskip("torch").tensor(x1), 2, 1, 1, 3,
                            return_indices=True)
    np.testing.assert_array_equal(idx.numpy(), tidx.numpy())
    np.testing.assert_array_equal(y.detach().numpy(), ty.numpy())
    y.backward(minidl.ones(*y.shape, dtype="float64"))
    np.testing.assert_array_equal(t.grad.numpy(), np.zeros_like(x1))


@pytest.mark.parametrize("nd", [1, 2])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_max_pool_gradient_is_finite_with_outside_windows(nd, data, seed):
    """Any configuration, windows in the padding included: the gradient matches
    central differences of the finite outputs (the -inf outputs are left out)."""
    cfg = data.draw(pool_configs(nd, allow_outside_windows=True))
    fn = P.max_pool1d if nd == 1 else P.max_pool2d
    args = (cfg["kernel_size"], cfg["stride"], cfg["padding"], cfg["dilation"],
            cfg["ceil_mode"])
    x = distinct_values(cfg["shape"], seed)
    with minidl.no_grad():
        finite = np.isfinite(fn(minidl.tensor(x), *args).numpy())
    mask = minidl.tensor(finite.astype(np.float64))
    check_grad(lambda t: minidl.where(mask > 0, fn(t, *args), 0.0), x)


def test_max_pool_without_grad_gives_the_same_values():
    x = normal_values((2, 3, 9, 8), 0)
    with_grad = P.max_pool2d(minidl.tensor(x, requires_grad=True), 3, 2, 1, ceil_mode=True)
    with minidl.no_grad():
        plain = P.max_pool2d(minidl.tensor(x), 3, 2, 1, ceil_mode=True)
        values, indices = P.max_pool2d(minidl.tensor(x), 3, 2, 1, ceil_mode=True,
                                       return_indices=True)
    np.testing.assert_array_equal(plain.numpy(), with_grad.detach().numpy())
    np.testing.assert_array_equal(values.numpy(), plain.numpy())
    assert indices.dtype == np.int64 and not indices.requires_grad


def test_ceil_mode_last_window_must_start_inside():
    F = torch_f()
    # L=5, k=2, s=2, p=1: ceil gives 4 windows, but the 4th would start in the right
    # padding only, so PyTorch keeps 3
    x = normal_values((1, 2, 5), 1)
    torch_parity(lambda t: P.max_pool1d(t, 2, 2, 1, ceil_mode=True),
                 lambda t: F.max_pool1d(t, 2, 2, 1, ceil_mode=True), x)
    assert P.max_pool1d(minidl.tensor(x), 2, 2, 1, ceil_mode=True).shape == (1, 2, 3)
    torch_parity(lambda t: P.avg_pool1d(t, 2, 2, 1, ceil_mode=True),
                 lambda t: F.avg_pool1d(t, 2, 2, 1, ceil_mode=True), x)
    # L=6, k=3, s=2: ceil adds a window hanging over the end
    x = normal_values((1, 2, 6), 2)
    assert P.max_pool1d(minidl.tensor(x), 3, 2, ceil_mode=True).shape == (1, 2, 3)
    torch_parity(lambda t: P.avg_pool1d(t, 3, 2, ceil_mode=True, count_include_pad=False),
                 lambda t: F.avg_pool1d(t, 3, 2, ceil_mode=True, count_include_pad=False), x)


def test_empty_batch():
    F = torch_f()
    x = np.zeros((0, 3, 8))
    torch_parity(lambda t: P.max_pool1d(t, 2), lambda t: F.max_pool1d(t, 2), x)
    torch_parity(lambda t: P.avg_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2),
                 np.zeros((0, 2, 4, 4)))


# ----------------------------------------------------------------------------- avg pooling


@st.composite
def avg_options(draw, nd):
    cfg = draw(pool_configs(nd, with_dilation=False))
    cfg.pop("dilation")
    cfg["count_include_pad"] = draw(st.booleans())
    if nd == 2:
        cfg["divisor_override"] = draw(st.sampled_from([None, None, 1, 3]))
    return cfg


def _avg_call(fn, cfg):
    kwargs = {k: v for k, v in cfg.items() if k != "shape"}
    return lambda t: fn(t, **kwargs)


@pytest.mark.parametrize("nd", [1, 2])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_avg_pool_gradcheck(nd, data, seed):
    cfg = data.draw(avg_options(nd))
    fn = P.avg_pool1d if nd == 1 else P.avg_pool2d
    check_grad(_avg_call(fn, cfg), normal_values(cfg["shape"], seed))


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_avg_pool_matches_torch(nd, dtype, data, seed):
    F = torch_f()
    cfg = data.draw(avg_options(nd))
    mine, theirs = (P.avg_pool1d, F.avg_pool1d) if nd == 1 else (P.avg_pool2d, F.avg_pool2d)
    torch_parity(_avg_call(mine, cfg), _avg_call(theirs, cfg),
                 normal_values(cfg["shape"], seed, dtype))


# ----------------------------------------------------------------------------- adaptive


@st.composite
def adaptive_cases(draw, nd):
    sizes = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    # output sizes that divide, do not divide, equal, or exceed the input size
    outs = tuple(draw(st.integers(1, 11)) for _ in range(nd))
    lead = draw(st.sampled_from([(2, 3), (3,)]))
    if nd == 1:
        output_size = outs[0] if draw(st.booleans()) else outs
    else:
        choice = draw(st.sampled_from(["pair", "int", "none_h", "none_w"]))
        output_size = {"pair": outs, "int": outs[0], "none_h": (None, outs[1]),
                       "none_w": (outs[0], None)}[choice]
    return lead + sizes, output_size


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("kind", ["avg", "max"])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_adaptive_gradcheck(nd, kind, data, seed):
    shape, output_size = data.draw(adaptive_cases(nd))
    fn = getattr(P, f"adaptive_{kind}_pool{nd}d")
    x = distinct_values(shape, seed) if kind == "max" else normal_values(shape, seed)
    check_grad(lambda t: fn(t, output_size), x)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_adaptive_matches_torch(nd, kind, dtype, data, seed):
    F = torch_f()
    shape, output_size = data.draw(adaptive_cases(nd))
    name = f"adaptive_{kind}_pool{nd}d"
    mine, theirs = getattr(P, name), getattr(F, name)
    if kind == "max":
        # small integers: ties inside the (possibly overlapping) windows, as in max pooling
        x = np.random.default_rng(seed).integers(0, 4, shape).astype(dtype)
        torch_parity(lambda t: mine(t, output_size, return_indices=True),
                     lambda t: theirs(t, output_size, return_indices=True), x)
    else:
        torch_parity(lambda t: mine(t, output_size), lambda t: theirs(t, output_size),
                     normal_values(shape, seed, dtype))


def test_adaptive_windows_non_divisible():
    """L = 10 into 4 windows: [0,3) [2,5) [5,8) [7,10): sizes 3 and overlapping."""
    x = minidl.tensor(np.arange(10.0).reshape(1, 1, 10))
    assert P.adaptive_avg_pool1d(x, 4).tolist() == [[[1.0, 3.0, 6.0, 8.0]]]
    values, indices = P.adaptive_max_pool1d(x, 4, return_indices=True)
    assert indices.tolist() == [[[2, 4, 7, 9]]]
    # more outputs than inputs: windows of one element, repeated
    assert P.adaptive_avg_pool1d(minidl.tensor([[[1.0, 2.0]]]), 3).tolist() == [[[1.0, 1.5,
                                                                                  2.0]]]


def test_adaptive_nan_follows_torch():
    F = torch_f()
    x = np.array([[[1.0, np.nan, 3.0, np.nan, 2.0, 0.0, 5.0]]])
    torch_parity(lambda t: P.adaptive_max_pool1d(t, 3, True),
                 lambda t: F.adaptive_max_pool1d(t, 3, True), x, grad=False)


def test_adaptive_zero_output_size():
    F = torch_f()
    x = normal_values((2, 3, 5), 0)
    torch_parity(lambda t: P.adaptive_avg_pool1d(t, 0), lambda t: F.adaptive_avg_pool1d(t, 0),
                 x, grad=False)
    assert P.adaptive_max_pool1d(minidl.tensor(x), 0).shape == (2, 3, 0)


# ----------------------------------------------------------------------------- global


@pytest.mark.parametrize("nd", [1, 2])
@given(batched=st.booleans(), seed=st.integers(0, 2**31 - 1),
       sizes=st.lists(st.integers(1, 6), min_size=2, max_size=2))
def test_global_pooling_gradcheck_and_torch(nd, batched, seed, sizes):
    shape = ((2, 3) if batched else (3,)) + tuple(sizes[:nd])
    dims = tuple(range(-nd, 0))
    x = distinct_values(shape, seed)
    check_grad(getattr(P, f"global_max_pool{nd}d"), x)
    check_grad(getattr(P, f"global_avg_pool{nd}d"), x)
    pytest.importorskip("torch")
    for dtype in FLOATS:
        torch_parity(getattr(P, f"global_max_pool{nd}d"), lambda t: t.amax(dim=dims),
                     x.astype(dtype))
        torch_parity(getattr(P, f"global_avg_pool{nd}d"), lambda t: t.mean(dim=dims),
                     x.astype(dtype))


def test_global_max_ties_go_to_first():
    x = minidl.tensor([[[2.0, 5.0, 5.0, 1.0]]], requires_grad=True)
    P.global_max_pool1d(x).sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0, 0.0, 0.0]]]
    assert P.global_max_pool1d(x).shape == (1, 1)


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_op_and_shapes():
    x1 = minidl.randn(2, 3, 5)
    with pytest.raises(ValueError, match=r"max_pool1d: padding should be at most half of "
                                         r"kernel size, but got padding=2 and kernel_size=3"):
        P.max_pool1d(x1, 3, padding=2)
    with pytest.raises(ValueError, match=r"max_pool1d: kernel of extent 6 .* larger than the "
                                         r"padded input 5 \(input shape \(2, 3, 5\)"):
        P.max_pool1d(x1, 6)
    with pytest.raises(ValueError, match=r"max_pool2d: kernel of extent \(5, 5\) \(kernel_size"
                                         r"=\(3, 3\), dilation=\(2, 2\)\) is larger than the "
                                         r"padded input \(4, 4\)"):
        P.max_pool2d(minidl.randn(1, 2, 4, 4), 3, dilation=2)
    with pytest.raises(ValueError, match=r"max_pool2d: expected a 3-D \(C, H, W\) or 4-D "
                                         r"\(N, C, H, W\) input, got shape \(8, 3\)"):
        P.max_pool2d(minidl.randn(8, 3), 2)
    with pytest.raises(ValueError, match=r"avg_pool1d: expected a 2-D \(C, L\) or 3-D"):
        P.avg_pool1d(minidl.randn(5), 2)
    with pytest.raises(ValueError, match=r"max_pool1d: kernel_size must be greater than zero"):
        P.max_pool1d(x1, 0)
    with pytest.raises(ValueError, match=r"max_pool1d: stride must be greater than zero"):
        P.max_pool1d(x1, 2, stride=0)
    with pytest.raises(ValueError, match=r"max_pool1d: dilation must be greater than zero"):
        P.max_pool1d(x1, 2, dilation=0)
    with pytest.raises(ValueError, match=r"max_pool1d: padding must be non-negative"):
        P.max_pool1d(x1, 2, padding=-1)
    with pytest.raises(TypeError, match=r"max_pool2d: kernel_size must be an int or a tuple "
                                        r"of 2 ints, got \(2, 2, 2\)"):
        P.max_pool2d(minidl.randn(1, 1, 4, 4), (2, 2, 2))
    with pytest.raises(TypeError, match=r"max_pool1d: expected a floating-point input, got "
                                        r"int64"):
        P.max_pool1d(minidl.tensor(np.arange(10).reshape(1, 1, 10)), 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: divisor must be not zero"):
        P.avg_pool2d(minidl.randn(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match=r"max_pool1d: expected non-empty channel and spatial"):
        P.max_pool1d(minidl.randn(2, 0, 5), 2)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool1d: output_size should contain "
                                         r"one int \(got 2\)"):
        P.adaptive_avg_pool1d(x1, (2, 3))
    with pytest.raises(ValueError, match=r"adaptive_max_pool2d: output_size must be "
                                         r"non-negative"):
        P.adaptive_max_pool2d(minidl.randn(1, 1, 4, 4), (-1, 2))
    with pytest.raises(ValueError, match=r"global_max_pool2d: expected a 3-D"):
        P.global_max_pool2d(minidl.randn(2, 3))


# ----------------------------------------------------------------------------- kernels


def test_kernels_are_registered_with_a_numpy_reference():
    names = ["max_pool1d_forward", "max_pool2d_forward", "max_pool1d_backward",
             "max_pool2d_backward", "avg_pool1d_forward", "avg_pool2d_forward",
             "avg_pool1d_backward", "avg_pool2d_backward", "adaptive_avg_pool1d_forward",
             "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_forward",
             "adaptive_avg_pool2d_backward", "adaptive_max_pool1d_forward",
             "adaptive_max_pool2d_forward", "global_max_pool_forward",
             "global_max_pool_backward"]
    kernels = backend.info()["kernels"]
    for name in names:
        assert "numpy" in kernels[name]["available"], name


def test_reference_kernel_signature():
    """The kernels are plain array functions: call one directly."""
    x = np.array([[[4.0, 1.0, 7.0, 7.0, 2.0, 9.0]]])
    out, indices = P.max_pool1d_forward(x, (2,), (2,), (0,), (1,), (3,), True)
    assert out.tolist() == [[[4.0, 7.0, 9.0]]] and indices.tolist() == [[[0, 2, 5]]]
    grad = P.max_pool1d_backward(np.ones((1, 1, 3)), indices, x.shape)
    assert grad.tolist() == [[[1.0, 0.0, 1.0, 0.0, 0.0, 1.0]]]


def test_doctests():
    result = doctest.testmod(P, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
