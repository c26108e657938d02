"""The compiled (``cpu``) and Numba im2col/col2im kernels against the NumPy references.

Every accelerated kernel must return what the reference in :mod:`minidl.ops.conv` returns
(same shape, dtype and values) for any geometry: hypothesis draws the shapes, kernel
sizes, strides, dilations and (asymmetric) paddings, in float32 and float64, on
C-contiguous and non-contiguous inputs.  The reference is called directly as the oracle.
The last tests run the public ``conv1d``/``conv2d`` (forward and all three gradients)
under each backend and compare with the ``numpy`` backend.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import backend, kernels
from minidl.ops import conv as reference

BACKENDS = ["cpu", "numba"]
DTYPES = [np.float32, np.float64]


def _kernel(name, backend_name):
    """The ``backend_name`` implementation of kernel ``name``; skip if it did not load."""
    kernels.load()
    impl = backend._KERNELS[name].get(backend_name)
    if impl is None:
        reason = kernels.status().get(f"{backend_name}.conv", "not registered")
        pytest.skip(f"{backend_name} {name}: {reason}")
    return impl


def _tolerance(dtype):
    # the kernels add in the reference's order (equal bits in practice); the tolerance
    # only leaves room for a compiler that fuses or reorders additions
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@st.composite
def geometry(draw, nd):
    """Kernel, stride, dilation and (before, after) padding per axis, and an input size
    per axis that holds at least one output position."""
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 5)), draw(st.integers(0, 5))) for _ in range(nd))
    spatial = []
    for k, d, (before, after) in zip(kernel, dilation, padding):
        reach = d * (k - 1) + 1
        spatial.append(draw(st.integers(max(1, reach - before - after), reach + 8)))
    return kernel, stride, dilation, padding, tuple(spatial)


def _positions(size, k, s, d, pads):
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def _input(rng, shape, dtype, contiguous):
    """Random input of ``shape``; non-contiguous (a transposed copy's view) if asked."""
    if contiguous:
        return rng.standard_normal(shape).astype(dtype)
    swapped = shape[:-2] + (shape[-1], shape[-2])
    return rng.standard_normal(swapped).astype(dtype).swapaxes(-1, -2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(geom=geometry(2), batch=st.integers(0, 3), channels=st.integers(1, 3),
       contiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_im2col2d_and_col2im2d_match_the_reference(backend_name, dtype, geom, batch,
                                                   channels, contiguous, seed):
    im2col, col2im = _kernel("im2col2d", backend_name), _kernel("col2im2d", backend_name)
    kernel, stride, dilation, padding, spatial = geom
    rng = np.random.default_rng(seed)
    x = _input(rng, (batch, channels) + spatial, dtype, contiguous)

    cols = im2col(x, kernel, stride, padding, dilation)
    expected = reference.im2col2d(x, kernel, stride, padding, dilation)
    assert cols.shape == expected.shape and cols.dtype == dtype
    assert cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, expected)  # a pure copy: exact

    grad_cols = _input(rng, expected.shape, dtype, contiguous)
    image = col2im(grad_cols, x.shape, kernel, stride, padding, dilation)
    expected = reference.col2im2d(grad_cols, x.shape, kernel, stride, padding, dilation)
    assert image.shape == x.shape and image.dtype == dtype and image.flags.c_contiguous
    np.testing.assert_allclose(image, expected, **_tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(geom=geometry(1), batch=st.integers(0, 3), channels=st.integers(1, 3),
       contiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_im2col1d_and_col2im1d_match_the_reference(backend_name, dtype, geom, batch,
                                                   channels, contiguous, seed):
    im2col, col2im = _kernel("im2col1d", backend_name), _kernel("col2im1d", backend_name)
    (k,), (s,), (d,), (pads,), (length,) = geom
    rng = np.random.default_rng(seed)
    x = _input(rng, (batch, channels, length), dtype, contiguous)

    cols = im2col(x, k, s, pads, d)
    expected = reference.im2col1d(x, k, s, pads, d)
    assert cols.shape == expected.shape == (channels * k, batch, _positions(length, k, s, d,
                                                                            pads))
    assert cols.dtype == dtype
    np.testing.assert_array_equal(cols, expected)

    grad_cols = _input(rng, expected.shape, dtype, contiguous)
    image = col2im(grad_cols, x.shape, k, s, pads, d)
    expected = reference.col2im1d(grad_cols, x.shape, k, s, pads, d)
    assert image.shape == x.shape and image.dtype == dtype
    np.testing.assert_allclose(image, expected, **_tolerance(dtype))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_col2im_into_a_larger_image_leaves_unread_positions_zero(backend_name):
    # a 2 x 2 kernel at stride 3, 3 x 3 positions, reads rows and columns 0-7 of a 9 x 9
    # image: row and column 8 must come back as zeros
    col2im = _kernel("col2im2d", backend_name)
    cols = np.ones((4, 1, 3, 3))
    image = col2im(cols, (1, 1, 9, 9), (2, 2), (3, 3), ((0, 0), (0, 0)), (1, 1))
    np.testing.assert_array_equal(image, reference.col2im2d(cols, (1, 1, 9, 9), (2, 2), (3, 3),
                                                            ((0, 0), (0, 0)), (1, 1)))
    assert not image[0, 0, 8].any() and not image[0, 0, :, 8].any()
    assert image[0, 0, 7, 7] == 1


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize(
    "shape, kernel, padding",
    [
        # the top/left padding is longer than the output: kernel offset 0 reads no row
        ((2, 2, 1, 1), (4, 4), ((3, 0), (3, 0))),
        ((2, 2, 2, 3), (4, 2), ((3, 0), (0, 4))),
        ((1, 3, 1, 2), (1, 1), ((5, 5), (6, 0))),
    ],
)
def test_paddings_longer_than_the_output(backend_name, shape, kernel, padding):
    im2col, col2im = _kernel("im2col2d", backend_name), _kernel("col2im2d", backend_name)
    x = np.random.default_rng(0).standard_normal(shape)
    args = (kernel, (1, 1), padding, (1, 1))
    cols = im2col(x, *args)
    np.testing.assert_array_equal(cols, reference.im2col2d(x, *args))
    np.testing.assert_array_equal(col2im(cols, shape, *args),
                                  reference.col2im2d(cols, shape, *args))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_unsupported_dtypes_fall_back_to_the_reference(backend_name):
    im2col = _kernel("im2col2d", backend_name)
    x = np.arange(2 * 3 * 5 * 5, dtype=np.float16).reshape(2, 3, 5, 5)
    cols = im2col(x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert cols.dtype == np.float16
    np.testing.assert_array_equal(cols, reference.im2col2d(x, (3, 3), (1, 1), ((1, 1), (1, 1)),
                                                           (1, 1)))


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def _conv_step(fn, x, weight, bias, **params):
    """Forward and the gradients of input, weight and bias, as NumPy arrays."""
    xt = minidl.tensor(x, requires_grad=True)
    wt = minidl.tensor(weight, requires_grad=True)
    bt = minidl.tensor(bias, requires_grad=True)
    out = fn(xt, wt, bt, **params)
    out.backward(minidl.tensor(np.cos(np.arange(out.data.size)).reshape(out.shape)
                               .astype(x.dtype)))
    return out.data, xt.grad.data, wt.grad.data, bt.grad.data


CONV_CASES = [
    (F.conv2d, (2, 4, 9, 8), (6, 4, 3, 3), dict(padding=1)),
    (F.conv2d, (2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), dilation=(1, 2), groups=2)),
    (F.conv2d, (3, 3, 7, 7), (4, 3, 2, 2), dict(padding="same")),
    (F.conv1d, (2, 4, 30), (5, 4, 7), dict(padding=3)),
    (F.conv1d, (2, 4, 30), (4, 1, 3), dict(stride=2, dilation=3, groups=4)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_conv_ops_under_each_backend_match_the_numpy_backend(backend_name, case, dtype,
                                                             restore_backend):
    fn, x_shape, w_shape, params = CONV_CASES[case]
    name = "im2col1d" if fn is F.conv1d else "im2col2d"
    _kernel(name, backend_name)
    rng = np.random.default_rng(case)
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal(w_shape).astype(dtype)
    bias = rng.standard_normal(w_shape[0]).astype(dtype)

    minidl.set_backend("numpy")
    expected = _conv_step(fn, x, weight, bias, **params)
    minidl.set_backend(backend_name)
    assert backend.get_kernel(name) is backend._KERNELS[name][backend_name]
    got = _conv_step(fn, x, weight, bias, **params)
    for value, want in zip(got, expected):
        assert value.dtype == dtype
        np.testing.assert_allclose(value, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
