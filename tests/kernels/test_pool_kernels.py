"""The compiled (``cpu``) and Numba pooling kernels against the NumPy references.

Hypothesis draws the geometry (kernel, stride, padding up to half the kernel, dilation,
``ceil_mode``) and values with ties, NaN and ``-inf`` (where the index conventions live),
in float32 and float64; the reference kernel in :mod:`minidl.ops.pool`, called directly,
gives the expected values and indices.  The last tests run the public pooling ops forward
and backward under each backend and compare with the ``numpy`` backend.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import backend, kernels
from minidl.ops import pool as reference

BACKENDS = ["cpu", "numba"]
DTYPES = [np.float32, np.float64]


def _kernel(name, backend_name):
    """The ``backend_name`` implementation of kernel ``name``; skip if it did not load."""
    kernels.load()
    impl = backend._KERNELS[name].get(backend_name)
    if impl is None:
        reason = kernels.status().get(f"{backend_name}.pool", "not registered")
        pytest.skip(f"{backend_name} {name}: {reason}")
    return impl


def _tolerance(dtype):
    # the kernels add in the reference's order; the tolerance only leaves room for a
    # compiler that reorders additions
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@st.composite
def pool_geometry(draw, nd, dilated=True):
    """Window parameters and input size per axis, with PyTorch's output size rule (the
    same as ``minidl.ops.pool``: with ``ceil_mode`` the last window must start inside
    the input or its left padding)."""
    kernel, stride, padding, dilation, spatial, output = [], [], [], [], [], []
    ceil_mode = draw(st.booleans())
    for _ in range(nd):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        p = draw(st.integers(0, k // 2))
        d = draw(st.integers(1, 3)) if dilated else 1
        reach = d * (k - 1) + 1
        size = draw(st.integers(max(1, reach - 2 * p), reach + 7))
        span = size + 2 * p - reach
        n = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1
        for values, v in zip((kernel, stride, padding, dilation, spatial, output),
                             (k, s, p, d, size, n)):
            values.append(v)
    return tuple(map(tuple, (kernel, stride, padding, dilation, spatial, output)))


def _values(rng, shape, dtype, special):
    """Small integers (many ties), with NaN and -inf sprinkled in when ``special``."""
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    if special and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 10))] = -np.inf
        if rng.random() < 0.5:
            flat[rng.integers(0, flat.size, size=2)] = np.nan
    return x


def _noncontiguous(x, contiguous):
    return x if contiguous else np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(data=st.data(), batch=st.integers(1, 3), channels=st.integers(1, 3),
       special=st.booleans(), contiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_max_pool_forward_and_backward_match_the_reference(backend_name, dtype, nd, data,
                                                           batch, channels, special,
                                                           contiguous, seed):
    forward = _kernel(f"max_pool{nd}d_forward", backend_name)
    backward = _kernel(f"max_pool{nd}d_backward", backend_name)
    ref_forward = getattr(reference, f"max_pool{nd}d_forward")
    ref_backward = getattr(reference, f"max_pool{nd}d_backward")
    kernel, stride, padding, dilation, spatial, output = data.draw(pool_geometry(nd))
    rng = np.random.default_rng(seed)
    x = _noncontiguous(_values(rng, (batch, channels) + spatial, dtype, special), contiguous)
    params = (kernel, stride, padding, dilation, output)

    out, indices = forward(x, *params, True)
    want_out, want_indices = ref_forward(x, *params, True)
    assert out.shape == want_out.shape == (batch, channels) + output and out.dtype == dtype
    np.testing.assert_array_equal(out, want_out)  # NaN == NaN here
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, want_indices)
    values_only, none = forward(x, *params, False)
    assert none is None
    np.testing.assert_array_equal(values_only, want_out)

    # windows lying wholly in the padding point past the input; the op gives them no
    # gradient (index 0, gradient 0) and so does this test, as the kernels expect
    plane = math.prod(spatial)
    grad = rng.standard_normal(out.shape).astype(dtype)
    outside = (want_indices < 0) | (want_indices >= plane)
    grad[outside] = 0
    valid = np.where(outside, 0, want_indices)
    np.testing.assert_allclose(backward(grad, valid, x.shape),
                               ref_backward(grad, valid, x.shape), **_tolerance(dtype))


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("dilation", [1, 2])
def test_padding_longer_than_the_output(backend_name, dilation):
    # kernel 4, padding 2, width 3: the dilated window covers the whole padded row, so
    # the first window wholly inside the input would be past the last output
    width = 3 if dilation == 2 else 1
    output = (width + 4 - dilation * 3 - 1) // 1 + 1
    x = np.arange(2.0 * width).reshape(1, 2, width) - 3
    params = ((4,), (1,), (2,), (dilation,), (output,))
    out, indices = _kernel("max_pool1d_forward", backend_name)(x, *params, True)
    want_out, want_indices = reference.max_pool1d_forward(x, *params, True)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(indices, want_indices)
    if dilation == 1:
        average = _kernel("avg_pool1d_forward", backend_name)
        args = ((4,), (1,), (2,), (output,), 4.0)
        np.testing.assert_array_equal(average(x, *args), reference.avg_pool1d_forward(x, *args))


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_max_pool_backward_rejects_indices_outside_the_input(backend_name):
    backward = _kernel("max_pool1d_backward", backend_name)
    with pytest.raises(IndexError, match="max_pool1d_backward: 1 indices lie outside"):
        backward(np.ones((1, 1, 2)), np.array([[[0, 5]]]), (1, 1, 5))


def _divisor(rng, output, dtype, kind):
    """A scalar divisor or one per window, as the op passes them."""
    if kind == "scalar":
        return dtype(rng.integers(1, 7))
    return rng.integers(1, 7, size=output).astype(dtype)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(data=st.data(), batch=st.integers(1, 3), channels=st.integers(1, 3),
       divisor_kind=st.sampled_from(["scalar", "per window"]), contiguous=st.booleans(),
       seed=st.integers(0, 2**16))
def test_avg_pool_forward_and_backward_match_the_reference(backend_name, dtype, nd, data,
                                                           batch, channels, divisor_kind,
                                                           contiguous, seed):
    forward = _kernel(f"avg_pool{nd}d_forward", backend_name)
    backward = _kernel(f"avg_pool{nd}d_backward", backend_name)
    ref_forward = getattr(reference, f"avg_pool{nd}d_forward")
    ref_backward = getattr(reference, f"avg_pool{nd}d_backward")
    kernel, stride, padding, _, spatial, output = data.draw(pool_geometry(nd, dilated=False))
    rng = np.random.default_rng(seed)
    x = _noncontiguous(rng.standard_normal((batch, channels) + spatial).astype(dtype),
                       contiguous)
    divisor = _divisor(rng, output, dtype, divisor_kind)

    out = forward(x, kernel, stride, padding, output, divisor)
    want = ref_forward(x, kernel, stride, padding, output, divisor)
    assert out.shape == want.shape and out.dtype == dtype
    np.testing.assert_allclose(out, want, **_tolerance(dtype))

    grad = _noncontiguous(rng.standard_normal(out.shape).astype(dtype), contiguous)
    grad_in = backward(grad, x.shape, kernel, stride, padding, divisor)
    want = ref_backward(grad, x.shape, kernel, stride, padding, divisor)
    assert grad_in.shape == x.shape and grad_in.dtype == dtype
    np.testing.assert_allclose(grad_in, want, **_tolerance(dtype))


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def _pool_step(fn, x, **params):
    """Forward output and input gradient of a pooling op, as NumPy arrays."""
    xt = minidl.tensor(x, requires_grad=True)
    out = fn(xt, **params)
    out.backward(minidl.tensor(np.sin(np.arange(out.data.size)).reshape(out.shape)
                               .astype(x.dtype)))
    return out.data, xt.grad.data


POOL_CASES = [
    (F.max_pool1d, (2, 3, 17), dict(kernel_size=4), "max_pool1d_forward"),
    (F.max_pool1d, (2, 3, 17), dict(kernel_size=3, stride=2, padding=1, dilation=2,
                                    ceil_mode=True), "max_pool1d_forward"),
    (F.max_pool2d, (2, 3, 9, 8), dict(kernel_size=2), "max_pool2d_forward"),
    (F.max_pool2d, (2, 3, 9, 8), dict(kernel_size=3, stride=(2, 1), padding=1),
     "max_pool2d_forward"),
    (F.avg_pool1d, (2, 3, 17), dict(kernel_size=3, stride=2, padding=1,
                                    count_include_pad=False), "avg_pool1d_forward"),
    (F.avg_pool2d, (2, 3, 9, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
     "avg_pool2d_forward"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_pool_ops_under_each_backend_match_the_numpy_backend(backend_name, case, dtype,
                                                             restore_backend):
    fn, shape, params, kernel_name = POOL_CASES[case]
    _kernel(kernel_name, backend_name)
    x = np.random.default_rng(case).standard_normal(shape).astype(dtype)
    minidl.set_backend("numpy")
    expected = _pool_step(fn, x, **params)
    minidl.set_backend(backend_name)
    assert backend.get_kernel(kernel_name) is backend._KERNELS[kernel_name][backend_name]
    got = _pool_step(fn, x, **params)
    for value, want in zip(got, expected):
        assert value.dtype == dtype
        np.testing.assert_allclose(value, want, **_tolerance(dtype))
