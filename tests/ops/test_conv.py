"""Convolution ops: the im2col/col2im kernels, conv1d/conv2d and conv_transpose1d/2d.

- kernels: im2col against PyTorch's ``unfold`` and a loop-by-loop reference written here,
  col2im against ``fold``, and col2im being the adjoint of im2col;
- gradients: float64 gradcheck with hypothesis-drawn sizes, strides, paddings (incl.
  "same"), dilations and groups, w.r.t. input, weight and bias;
- values: parity with PyTorch in float32 and float64 (forward, input, weight and bias
  gradients) for every option, depthwise, unbatched inputs;
- errors name the op and the shapes.
"""

import doctest

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import check_grad, seeded_array, torch_parity

import minidl
from minidl import backend
from minidl.ops import conv as conv_ops
from minidl.ops.conv import (
    col2im1d,
    col2im2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    im2col1d,
    im2col2d,
)

DTYPES = [np.float64, np.float32]

# PyTorch warns that it copies the input for "same" with even kernels; minidl pads anyway
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _tol(dtype):
    """float32 sums of tens of products: 1e-4; float64: tight."""
    return (1e-4, 1e-4) if np.dtype(dtype) == np.float32 else (1e-10, 1e-8)


# ====================================================================== drawn settings


@st.composite
def conv_settings(draw, nd, transposed=False, max_side=5):
    """Sizes and options of one convolution whose kernel fits the (padded) input.

    Returns a dict with the array shapes (``x``, ``w``, ``b``) and the keyword arguments
    shared by minidl and PyTorch.
    """
    groups = draw(st.integers(1, 2))
    in_per_group = draw(st.integers(1, 2))
    out_per_group = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    batch = draw(st.integers(1, 2))
    kwargs = {"stride": stride, "dilation": dilation, "groups": groups}
    if transposed:
        padding = tuple(draw(st.integers(0, 1)) for _ in range(nd))
        output_padding = tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
        )
        # the output length (L - 1)s - 2p + d(k-1) + op + 1 must be positive
        spatial = tuple(
            draw(st.integers(max(1, 2 * p // s + 1), max_side - 1)) for p, s in zip(padding, stride)
        )
        kwargs.update(padding=padding, output_padding=output_padding)
        x_shape = (batch, groups * in_per_group) + spatial
        w_shape = (groups * in_per_group, out_per_group) + kernel
    else:
        padding = draw(st.sampled_from(["int", "tuple", "same", "valid"]))
        if padding == "same":
            kwargs["stride"] = (1,) * nd
            pads = (0,) * nd
        elif padding == "valid":
            pads = (0,) * nd
        else:
            pads = tuple(draw(st.integers(0, 2)) for _ in range(nd))
            padding = pads[0] if padding == "int" else pads
            if isinstance(padding, int):
                pads = (padding,) * nd
        reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        # "same" pads d(k-1) in total, so every length >= 1 fits
        lows = [1 if padding == "same" else max(1, r - 2 * p) for r, p in zip(reach, pads)]
        spatial = tuple(draw(st.integers(low, low + 3)) for low in lows)
        kwargs["padding"] = padding
        x_shape = (batch, groups * in_per_group) + spatial
        w_shape = (groups * out_per_group, in_per_group) + kernel
    bias = draw(st.booleans())
    out_channels = groups * out_per_group
    return {"x": x_shape, "w": w_shape, "b": (out_channels,) if bias else None,
            "kwargs": kwargs}


def _arrays(setting, dtype=np.float64, seed=0):
    arrays = [seeded_array(setting["x"], dtype, seed=seed),
              seeded_array(setting["w"], dtype, seed=seed + 1)]
    if setting["b"] is not None:
        arrays.append(seeded_array(setting["b"], dtype, seed=seed + 2))
    return arrays


OPS = {
    "conv1d": (conv1d, 1, False),
    "conv2d": (conv2d, 2, False),
    "conv_transpose1d": (conv_transpose1d, 1, True),
    "conv_transpose2d": (conv_transpose2d, 2, True),
}


# ====================================================================== kernels


def _im2col_loops(x, kernel, stride, padding, dilation):
    """The definition, one element at a time: cols[(c, i, j), n, h, v]."""
    n, c, height, width = x.shape
    (kh, kw), (sh, sw), ((top, bottom), (left, right)), (dh, dw) = (
        kernel, stride, padding, dilation)
    x_pad = np.zeros((n, c, height + top + bottom, width + left + right), x.dtype)
    x_pad[:, :, top:top + height, left:left + width] = x
    out_h = (x_pad.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (x_pad.shape[3] - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((c * kh * kw, n, out_h, out_w), x.dtype)
    for ch in range(c):
        for i in range(kh):
            for j in range(kw):
                for b in range(n):
                    for h in range(out_h):
                        for v in range(out_w):
                            cols[(ch * kh + i) * kw + j, b, h, v] = x_pad[
                                b, ch, h * sh + i * dh, v * sw + j * dw]
    return cols


@st.composite
def im2col_settings(draw, nd):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    spatial = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - a - b), 7))
        for k, d, (a, b) in zip(kernel, dilation, padding)
    )
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + spatial
    return shape, kernel, stride, padding, dilation


@given(im2col_settings(2))
def test_im2col2d_matches_the_definition(setting):
    shape, kernel, stride, padding, dilation = setting
    x = seeded_array(shape)
    cols = im2col2d(x, kernel, stride, padding, dilation)
    expected = _im2col_loops(x, kernel, stride, padding, dilation)
    assert cols.shape == expected.shape and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, expected)


@given(im2col_settings(1))
def test_im2col1d_matches_the_definition(setting):
    shape, (k,), (s,), (pad,), (d,) = setting
    x = seeded_array(shape)
    cols = im2col1d(x, k, s, pad, d)
    # a 1-D signal is a 2-D image of height 1
    expected = _im2col_loops(x[:, :, None], (1, k), (1, s), ((0, 0), pad), (1, d))
    np.testing.assert_array_equal(cols, expected[:, :, 0])


@given(im2col_settings(2))
def test_im2col2d_matches_torch_unfold_and_col2im_matches_fold(torch, setting):
    shape, kernel, stride, padding, dilation = setting
    # unfold/fold pad symmetrically: use the "before" padding on both sides
    sym = tuple((a, a) for a, _ in padding)
    pads = tuple(a for a, _ in padding)
    assume(all(size + 2 * p >= d * (k - 1) + 1
               for size, k, d, p in zip(shape[2:], kernel, dilation, pads)))
    x = seeded_array(shape)
    cols = im2col2d(x, kernel, stride, sym, dilation)
    unfolded = torch.nn.functional.unfold(torch.tensor(x), kernel, dilation, pads, stride)
    n = shape[0]
    ours = cols.reshape(cols.shape[0], n, -1).transpose(1, 0, 2)
    np.testing.assert_array_equal(ours, unfolded.numpy())

    y = seeded_array(cols.shape, seed=5)
    folded = torch.nn.functional.fold(
        torch.tensor(y.reshape(y.shape[0], n, -1).transpose(1, 0, 2).copy()),
        shape[2:], kernel, dilation, pads, stride)
    np.testing.assert_allclose(col2im2d(y, shape, kernel, stride, sym, dilation),
                               folded.numpy(), rtol=1e-12, atol=1e-12)


@given(im2col_settings(2), st.sampled_from(DTYPES))
def test_col2im2d_is_the_adjoint_of_im2col2d(setting, dtype):
    """<im2col(x), y> == <x, col2im(y)> for every x, y: col2im is im2col's transpose."""
    shape, kernel, stride, padding, dilation = setting
    x = seeded_array(shape, dtype)
    cols = im2col2d(x, kernel, stride, padding, dilation)
    y = seeded_array(cols.shape, dtype, seed=3)
    back = col2im2d(y, shape, kernel, stride, padding, dilation)
    assert back.shape == shape and back.dtype == dtype and back.flags.c_contiguous
    lhs = np.sum(cols.astype(np.float64) * y)
    rhs = np.sum(x.astype(np.float64) * back)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5)


@given(im2col_settings(1))
def test_col2im1d_is_the_adjoint_of_im2col1d(setting):
    shape, (k,), (s,), (pad,), (d,) = setting
    x = seeded_array(shape)
    cols = im2col1d(x, k, s, pad, d)
    y = seeded_array(cols.shape, seed=3)
    back = col2im1d(y, shape, k, s, pad, d)
    assert back.shape == shape
    np.testing.assert_allclose(np.sum(cols * y), np.sum(x * back), rtol=1e-12, atol=1e-12)


def test_kernels_are_registered_with_a_numpy_reference():
    info = backend.info()["kernels"]
    for name, fn in [("im2col1d", im2col1d), ("col2im1d", col2im1d),
                     ("im2col2d", im2col2d), ("col2im2d", col2im2d)]:
        assert "numpy" in info[name]["available"]
        assert backend._KERNELS[name]["numpy"] is fn


def test_im2col_handles_non_contiguous_input():
    x = seeded_array((3, 2, 6, 5)).transpose(0, 1, 3, 2)  # a view with swapped strides
    np.testing.assert_array_equal(
        im2col2d(x, (2, 3), (1, 2), ((0, 0), (1, 0)), (2, 1)),
        _im2col_loops(np.ascontiguousarray(x), (2, 3), (1, 2), ((0, 0), (1, 0)), (2, 1)))


def test_docstring_examples_run():
    result = doctest.testmod(conv_ops, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ====================================================================== gradients


@pytest.mark.parametrize("name", list(OPS))
@given(data=st.data())
def test_gradcheck(name, data):
    op, nd, transposed = OPS[name]
    setting = data.draw(conv_settings(nd, transposed))
    kwargs = setting["kwargs"]
    check_grad(lambda *t: op(*t, **kwargs), *_arrays(setting))


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"])
def test_gradcheck_unbatched_depthwise(name):
    op, nd, transposed = OPS[name]
    x = seeded_array((3,) + (4,) * nd)
    w = seeded_array((3, 2) + (2,) * nd if transposed else (6, 1) + (2,) * nd, seed=1)
    b = seeded_array((6,), seed=2)
    check_grad(lambda *t: op(*t, stride=2, padding=1, groups=3), x, w, b)


# ====================================================================== parity with PyTorch


def _torch_fn(torch, name):
    return getattr(torch.nn.functional, name)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_matches_torch(torch, name, dtype, data):
    op, nd, transposed = OPS[name]
    setting = data.draw(conv_settings(nd, transposed, max_side=7))
    kwargs = setting["kwargs"]
    atol, rtol = _tol(dtype)
    torch_parity(lambda *t: op(*t, **kwargs), lambda *t: _torch_fn(torch, name)(*t, **kwargs),
                 *_arrays(setting, dtype), atol=atol, rtol=rtol)


CASES = [
    # name, x shape, w shape, kwargs
    ("conv2d", (4, 3, 9, 8), (8, 3, 3, 3), dict(padding=1)),
    ("conv2d", (2, 6, 7, 7), (6, 1, 3, 3), dict(padding=1, groups=6)),  # depthwise
    ("conv2d", (2, 4, 7, 7), (12, 1, 3, 3), dict(groups=4, stride=2)),  # depthwise x3
    ("conv2d", (2, 4, 9, 10), (6, 2, 4, 2), dict(padding="same", dilation=(1, 3), groups=2)),
    ("conv2d", (2, 3, 8, 8), (5, 3, 2, 4), dict(padding="same")),  # even kernels
    ("conv2d", (2, 3, 8, 9), (5, 3, 3, 2), dict(padding="valid", stride=(2, 3))),
    ("conv2d", (3, 9, 8), (6, 1, 3, 3), dict(padding=(2, 0), groups=3)),  # unbatched
    ("conv2d", (2, 8, 6, 6), (16, 8, 1, 1), {}),  # pointwise
    ("conv1d", (4, 4, 50), (16, 4, 9), dict(padding=4)),
    ("conv1d", (2, 4, 30), (8, 4, 6), dict(padding="same", dilation=3)),
    ("conv1d", (2, 6, 20), (6, 1, 5), dict(groups=6, stride=3, padding=2)),
    ("conv1d", (4, 17), (2, 4, 3), dict(padding=1)),  # unbatched
    ("conv_transpose2d", (2, 8, 4, 4), (8, 3, 4, 4), dict(stride=2, padding=1)),
    ("conv_transpose2d", (2, 4, 5, 3), (4, 3, 3, 2),
     dict(stride=(2, 1), dilation=(3, 2), output_padding=(2, 1), padding=(2, 1), groups=2)),
    ("conv_transpose2d", (6, 5, 5), (6, 1, 3, 3), dict(groups=6, stride=2, output_padding=1)),
    ("conv_transpose1d", (2, 4, 10), (4, 6, 5), dict(stride=3, padding=2, output_padding=2)),
    ("conv_transpose1d", (2, 4, 7), (4, 2, 3), dict(groups=4, dilation=2)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}")
def test_fixed_cases_match_torch(torch, case, bias, dtype):
    name, x_shape, w_shape, kwargs = case
    op = OPS[name][0]
    out_channels = w_shape[1] * kwargs.get("groups", 1) if "transpose" in name else w_shape[0]
    arrays = [seeded_array(x_shape, dtype), seeded_array(w_shape, dtype, seed=1)]
    if bias:
        arrays.append(seeded_array((out_channels,), dtype, seed=2))
    atol, rtol = _tol(dtype)
    torch_parity(lambda *t: op(*t, **kwargs), lambda *t: _torch_fn(torch, name)(*t, **kwargs),
                 *arrays, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("trainable", ["input", "weight", "bias"])
def test_only_the_needed_gradients_are_computed(torch, name, trainable):
    """Frozen inputs get no gradient; the requested ones still match PyTorch."""
    op = OPS[name][0]
    arrays = [seeded_array((2, 4, 6, 6)), seeded_array((4, 4, 3, 3), seed=1),
              seeded_array((4,), seed=2)]
    names = ["input", "weight", "bias"]
    ours = [minidl.tensor(a, requires_grad=n == trainable) for a, n in zip(arrays, names)]
    theirs = [torch.tensor(a, requires_grad=n == trainable) for a, n in zip(arrays, names)]
    out = op(*ours, stride=2, padding=1)
    expected = _torch_fn(torch, name)(*theirs, stride=2, padding=1)
    upstream = seeded_array(out.shape, seed=9)
    out.backward(minidl.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for n, a, b in zip(names, ours, theirs):
        if n == trainable:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-10)
        else:
            assert a.grad is None and b.grad is None


@pytest.mark.parametrize("name,x_shape,w_shape", [
    ("conv2d", (0, 4, 5, 5), (6, 2, 3, 3)),
    ("conv1d", (0, 4, 9), (6, 2, 3)),
    ("conv_transpose2d", (0, 4, 5, 5), (4, 3, 3, 3)),
])
def test_empty_batch_matches_torch(torch, name, x_shape, w_shape):
    op = OPS[name][0]
    torch_parity(lambda *t: op(*t, stride=2, groups=2),
                 lambda *t: _torch_fn(torch, name)(*t, stride=2, groups=2),
                 np.zeros(x_shape), seeded_array(w_shape))


def test_forward_keeps_only_what_backward_needs():
    x = minidl.tensor(seeded_array((2, 3, 8, 8)), requires_grad=True)
    w = minidl.tensor(seeded_array((4, 3, 3, 3), seed=1))
    node = conv2d(x, w, padding=1).grad_fn
    assert hasattr(node, "weight") and not hasattr(node, "cols")  # no weight grad asked
    x.requires_grad = False
    w.requires_grad = True
    node = conv2d(x, w, padding=1).grad_fn
    assert hasattr(node, "cols") and not hasattr(node, "weight")
    with minidl.no_grad():
        out = conv2d(x, w, padding=1)
    assert out.grad_fn is None and not out.requires_grad


def test_float32_stays_float32():
    x = minidl.tensor(seeded_array((2, 3, 6, 6), np.float32), requires_grad=True)
    w = minidl.tensor(seeded_array((4, 3, 3, 3), np.float32, seed=1), requires_grad=True)
    out = conv2d(x, w, padding=1)
    out.sum().backward()
    assert out.dtype == np.float32 and x.grad.dtype == np.float32
    assert w.grad.dtype == np.float32


def test_output_is_contiguous_and_unaliased():
    x = minidl.tensor(seeded_array((1, 1, 4, 4)))
    w = minidl.tensor(np.ones((1, 1, 1, 1)))
    out = conv2d(x, w)
    assert out.data.flags.c_contiguous and not np.shares_memory(out.data, x.data)
    np.testing.assert_array_equal(out.numpy(), x.numpy())


# ====================================================================== errors


def _t(*shape, dtype=np.float32):
    return minidl.tensor(np.zeros(shape, dtype=dtype))


def test_error_wrong_channel_count():
    with pytest.raises(ValueError) as info:
        conv2d(_t(8, 3, 32, 32), _t(16, 4, 3, 3))
    assert str(info.value) == (
        "conv2d: input has 3 channels, weight expects 4 (input (8, 3, 32, 32), "
        "weight (16, 4, 3, 3))"
    )


def test_error_wrong_channel_count_with_groups():
    with pytest.raises(ValueError, match=r"conv1d: input has 6 channels, weight expects 4 "
                                         r"\(2 per group x groups=2\)"):
        conv1d(_t(2, 6, 10), _t(4, 2, 3), groups=2)


def test_error_unbatched_input_with_wrong_channels_hints_at_unsqueeze():
    with pytest.raises(ValueError, match=r"conv2d: input has 8 channels, weight expects 1 "
                                         r"\(input \(8, 32, 32\).*unsqueeze\(1\)"):
        conv2d(_t(8, 32, 32), _t(4, 1, 3, 3))


@pytest.mark.parametrize("op,x,w,shape_text", [
    (conv2d, (8, 32), (16, 3, 3, 3), r"3-D unbatched \(C, H, W\) or 4-D batched "
                                     r"\(N, C, H, W\) input, got input \(8, 32\)"),
    (conv1d, (2, 3, 4, 5), (4, 3, 3), r"2-D unbatched \(C, L\) or 3-D batched \(N, C, L\) "
                                      r"input, got input \(2, 3, 4, 5\)"),
    (conv2d, (2, 3, 8, 8), (4, 3, 3), r"weight must be 4-D"),
    (conv_transpose2d, (2, 3, 8), (3, 4, 3, 3), r"input has 2 channels, weight expects 3"),
])
def test_error_wrong_dimensions(op, x, w, shape_text):
    with pytest.raises(ValueError, match=shape_text):
        op(_t(*x), _t(*w))


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel size \(5, 5\) is larger than the "
                                         r"padded input size \(4, 4\) \(input \(1, 3, 2, 2\), "
                                         r"padding \(\(1, 1\), \(1, 1\)\)\)"):
        conv2d(_t(1, 3, 2, 2), _t(16, 3, 5, 5), padding=1)
    with pytest.raises(ValueError, match=r"kernel size \(3,\) \(dilated to \(7,\)\)"):
        conv1d(_t(1, 1, 6), _t(1, 1, 3), dilation=3)


@pytest.mark.parametrize("kwargs,message", [
    (dict(groups=3), r"groups=3 must divide the weight's out_channels 4"),
    (dict(groups=0), r"groups must be a positive int, got 0"),
    (dict(stride=0), r"stride must be positive, got 0"),
    (dict(stride=(1, 2, 3)), r"stride must be an int or a tuple of 2 ints"),
    (dict(padding=-1), r"padding must be non-negative, got -1"),
    (dict(padding="full"), r"invalid padding string 'full'"),
    (dict(padding="same", stride=2), r"padding='same' is not supported for strided"),
    (dict(dilation=0), r"dilation must be positive"),
])
def test_error_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match="conv2d: " + message):
        conv2d(_t(1, 4, 8, 8), _t(4, 4, 3, 3), **kwargs)


def test_error_bias_and_dtypes():
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(4,\) for weight "
                                         r"\(4, 3, 3, 3\), got bias \(3,\)"):
        conv2d(_t(1, 3, 5, 5), _t(4, 3, 3, 3), _t(3))
    with pytest.raises(TypeError, match=r"conv2d: input dtype float64 does not match weight "
                                        r"dtype float32"):
        conv2d(_t(1, 3, 5, 5, dtype=np.float64), _t(4, 3, 3, 3))
    with pytest.raises(TypeError, match=r"conv1d: input must be floating point, got int64"):
        conv1d(minidl.tensor(np.zeros((1, 4, 5), dtype=np.int64)), _t(2, 4, 3))


def test_error_transposed_arguments():
    with pytest.raises(ValueError, match=r"conv_transpose1d: output_padding \(2,\) must be "
                                         r"smaller than either stride \(2,\) or dilation"):
        conv_transpose1d(_t(1, 2, 5), _t(2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose1d: the output size \(-3,\) is too "
                                         r"small"):
        conv_transpose1d(_t(1, 2, 1), _t(2, 3, 1), padding=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: padding must be an int"):
        conv_transpose2d(_t(1, 2, 5, 5), _t(2, 3, 3, 3), padding="same")
    with pytest.raises(ValueError, match=r"conv_transpose2d: groups=4 must divide the "
                                         r"weight's in_channels 6"):
        conv_transpose2d(_t(1, 6, 5, 5), _t(6, 1, 3, 3), groups=4)


@pytest.mark.parametrize("name,x_shape,w_shape,kwargs", [
    ("conv1d", (5, 4, 23), (6, 2, 5), dict(stride=2, padding=3, groups=2)),
    ("conv2d", (5, 3, 9, 8), (4, 3, 3, 2), dict(stride=(2, 1), padding=1, dilation=(1, 2))),
])
def test_batch_slices_give_the_same_values_and_gradients(monkeypatch, name, x_shape, w_shape,
                                                         kwargs):
    # a tiny CHUNK_BYTES forces the sliced path (one sample per slice, columns rebuilt in
    # backward); the expected values come from the single-GEMM path
    from minidl.ops import conv as conv_module

    x0, w0, b0 = seeded_array(x_shape), seeded_array(w_shape, seed=1), seeded_array(
        (w_shape[0],), seed=2)
    op = OPS[name][0]
    results = []
    for chunk in (1 << 40, 1):
        monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk)
        x, w, b = (minidl.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        out = op(x, w, b, **kwargs)
        out.backward(minidl.tensor(seeded_array(out.shape, seed=3)))
        node_slices = len(conv_module._batch_slices(x_shape[0], 1 << 20))
        results.append((out.detach().numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy()))
    assert node_slices == x_shape[0]
    for whole, sliced in zip(*results):
        np.testing.assert_allclose(sliced, whole, rtol=1e-12, atol=1e-12)
