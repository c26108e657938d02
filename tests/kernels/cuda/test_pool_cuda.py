"""The CUDA max/avg pooling kernels against the NumPy references, under the simulator.

Hypothesis draws tiny geometries (kernel, stride, padding up to half the kernel,
dilation, ``ceil_mode``) with PyTorch's output-size rule, values with ties, NaN and
``-inf`` (where the index conventions live), three memory layouts, float32 and float64,
under two launch configurations.  Values and indices must equal the reference's exactly;
gradients up to rounding (the max backward adds with atomics, in no fixed order).
"""

import math

import numpy as np
import pytest
from cuda_support import CONFIGS, DTYPES, FEW, LAYOUTS, in_layout, last_launch, launch, tolerance
from hypothesis import given
from hypothesis import strategies as st

from minidl.ops import pool as reference

pytestmark = pytest.mark.cudasim


@st.composite
def pool_geometry(draw, nd, dilated=True):
    """Window parameters and input size per axis; the output size is PyTorch's (with
    ``ceil_mode`` the last window must start inside the input or its left padding)."""
    kernel, stride, padding, dilation, spatial, output = [], [], [], [], [], []
    ceil_mode = draw(st.booleans())
    for _ in range(nd):
        k = draw(st.integers(1, 3))
        s = draw(st.integers(1, 3))
        p = draw(st.integers(0, k // 2))
        d = draw(st.integers(1, 2)) if dilated else 1
        reach = d * (k - 1) + 1
        size = draw(st.integers(max(1, reach - 2 * p), reach + 4))
        n = (size + 2 * p - reach + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (n - 1) * s >= size + p:
            n -= 1
        for values, v in zip((kernel, stride, padding, dilation, spatial, output),
                             (k, s, p, d, size, n)):
            values.append(v)
    return tuple(map(tuple, (kernel, stride, padding, dilation, spatial, output)))


def _values(rng, shape, dtype, special):
    """Small integers (many ties), with -inf and NaN sprinkled in when ``special``."""
    x = rng.integers(-3, 4, size=shape).astype(dtype)
    if special:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, size=max(1, flat.size // 10))] = -np.inf
        if rng.random() < 0.5:
            flat[rng.integers(0, flat.size, size=2)] = np.nan
    return x


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2])
@FEW
@given(data=st.data(), rows=st.tuples(st.integers(1, 2), st.integers(1, 3)),
       special=st.booleans(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**16))
def test_max_pool_matches_the_reference(cuda_kernels, config, dtype, nd, data, rows, special,
                                        layout, seed):
    kernel, stride, padding, dilation, spatial, output = data.draw(pool_geometry(nd))
    rng = np.random.default_rng(seed)
    x = in_layout(_values(rng, rows + spatial, dtype, special), layout)
    params = (kernel, stride, padding, dilation, output)
    forward, backward = cuda_kernels[f"max_pool{nd}d_forward"], cuda_kernels[
        f"max_pool{nd}d_backward"]
    with launch(config):
        out, indices = forward(x, *params, True)
        want_out, want_indices = getattr(reference, f"max_pool{nd}d_forward")(x, *params, True)
        assert out.shape == want_out.shape == rows + output and out.dtype == dtype
        np.testing.assert_array_equal(out, want_out)  # NaN == NaN here
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(indices, want_indices)
        values_only, none = forward(x, *params, False)
        assert none is None
        np.testing.assert_array_equal(values_only, want_out)

        # windows wholly in the padding point past the input; the op gives them no
        # gradient (index 0, gradient 0) before calling the kernel, and so does this test
        outside = (want_indices < 0) | (want_indices >= math.prod(spatial))
        grad = in_layout(np.where(outside, 0, rng.standard_normal(out.shape)).astype(dtype),
                         layout)
        valid = np.where(outside, 0, want_indices)
        got = backward(grad, valid, x.shape)
        expected = getattr(reference, f"max_pool{nd}d_backward")(grad, valid, x.shape)
        assert got.shape == x.shape and got.dtype == dtype
        np.testing.assert_allclose(got, expected, **tolerance(dtype))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2])
@FEW
@given(data=st.data(), rows=st.tuples(st.integers(1, 2), st.integers(1, 3)),
       per_window=st.booleans(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**16))
def test_avg_pool_matches_the_reference(cuda_kernels, config, dtype, nd, data, rows,
                                        per_window, layout, seed):
    kernel, stride, padding, _, spatial, output = data.draw(pool_geometry(nd, dilated=False))
    rng = np.random.default_rng(seed)
    x = in_layout(rng.standard_normal(rows + spatial).astype(dtype), layout)
    # the op passes one divisor, or one per window (count_include_pad=False, ceil_mode)
    divisor = (rng.integers(1, 7, size=output).astype(dtype) if per_window
               else dtype(rng.integers(1, 7)))
    forward, backward = cuda_kernels[f"avg_pool{nd}d_forward"], cuda_kernels[
        f"avg_pool{nd}d_backward"]
    with launch(config):
        out = forward(x, kernel, stride, padding, output, divisor)
        want = getattr(reference, f"avg_pool{nd}d_forward")(x, kernel, stride, padding, output,
                                                            divisor)
        assert out.shape == want.shape and out.dtype == dtype
        np.testing.assert_allclose(out, want, **tolerance(dtype))

        grad = in_layout(rng.standard_normal(out.shape).astype(dtype), layout)
        got = backward(grad, x.shape, kernel, stride, padding, divisor)
        want = getattr(reference, f"avg_pool{nd}d_backward")(grad, x.shape, kernel, stride,
                                                             padding, divisor)
        assert got.shape == x.shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, **tolerance(dtype))


@pytest.mark.parametrize("config", CONFIGS)
def test_overlapping_windows_add_up_across_several_blocks(cuda_kernels, config):
    # kernel 3, stride 1 on a constant image: every window's maximum is its first tap,
    # and inner inputs are the maximum of up to 3 x 3 windows: atomics must add them all
    x = np.ones((2, 3, 7, 5), dtype=np.float32)
    params = ((3, 3), (1, 1), (1, 1), (1, 1), (7, 5))
    threads, _ = config
    with launch(config):
        out, indices = cuda_kernels["max_pool2d_forward"](x, *params, True)
        assert last_launch()[0] > 1 and last_launch()[1] == threads
        grad = np.ones_like(out)
        got = cuda_kernels["max_pool2d_backward"](grad, indices, x.shape)
        assert last_launch()[0] > 1
    np.testing.assert_array_equal(got, reference.max_pool2d_backward(grad, indices, x.shape))
    assert got.sum() == out.size


def test_padding_longer_than_the_output(cuda_kernels):
    # kernel 4, padding 2, width 3, dilation 2: the window covers the whole padded row
    x = np.arange(6.0).reshape(1, 2, 3) - 3
    params = ((4,), (1,), (2,), (2,), (1,))
    out, indices = cuda_kernels["max_pool1d_forward"](x, *params, True)
    want_out, want_indices = reference.max_pool1d_forward(x, *params, True)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(indices, want_indices)


def test_max_pool_backward_rejects_indices_outside_the_input(cuda_kernels):
    with pytest.raises(IndexError, match="max_pool1d_backward: 1 indices lie outside"):
        cuda_kernels["max_pool1d_backward"](np.ones((1, 1, 2)), np.array([[[0, 5]]]), (1, 1, 5))


def test_unbatched_and_float16_inputs(cuda_kernels):
    # (C, H, W) without a batch axis: the planes are the channels
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 5))
    params = ((2, 2), (2, 2), (0, 0), (1, 1), (2, 2))
    out, indices = cuda_kernels["max_pool2d_forward"](x, *params, True)
    want_out, want_indices = reference.max_pool2d_forward(x, *params, True)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(indices, want_indices)
    # float16 is not compiled for: the reference runs
    half = x.astype(np.float16)
    got = cuda_kernels["avg_pool2d_forward"](half, (2, 2), (2, 2), (0, 0), (2, 2), 4.0)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(
        got, reference.avg_pool2d_forward(half, (2, 2), (2, 2), (0, 0), (2, 2), 4.0))
