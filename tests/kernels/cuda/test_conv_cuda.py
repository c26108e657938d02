"""The CUDA im2col/col2im kernels against the NumPy references, under the simulator.

Hypothesis draws tiny geometries (kernel, stride, dilation, asymmetric padding, input
sizes that hold at least one output position), inputs in three memory layouts, in float32
and float64, under two launch configurations (see cuda_support.py).  The references in
:mod:`minidl.ops.conv` are the oracle.
"""

import numpy as np
import pytest
from cuda_support import CONFIGS, DTYPES, FEW, LAYOUTS, in_layout, last_launch, launch, tolerance
from hypothesis import given
from hypothesis import strategies as st

from minidl.ops import conv as reference

pytestmark = pytest.mark.cudasim


@st.composite
def geometry(draw, nd):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(nd))
    spatial = []
    for k, d, (before, after) in zip(kernel, dilation, padding):
        reach = d * (k - 1) + 1
        spatial.append(draw(st.integers(max(1, reach - before - after), reach + 4)))
    return kernel, stride, dilation, padding, tuple(spatial)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd", [1, 2])
@FEW
@given(data=st.data(), batch=st.integers(1, 2), channels=st.integers(1, 3),
       layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**16))
def test_im2col_and_col2im_match_the_reference(cuda_kernels, config, dtype, nd, data, batch,
                                               channels, layout, seed):
    kernel, stride, dilation, padding, spatial = data.draw(geometry(nd))
    rng = np.random.default_rng(seed)
    x = in_layout(rng.standard_normal((batch, channels) + spatial).astype(dtype), layout)
    if nd == 1:
        args = (kernel[0], stride[0], padding[0], dilation[0])
    else:
        args = (kernel, stride, padding, dilation)
    im2col, col2im = cuda_kernels[f"im2col{nd}d"], cuda_kernels[f"col2im{nd}d"]
    ref_im2col, ref_col2im = getattr(reference, f"im2col{nd}d"), getattr(reference,
                                                                         f"col2im{nd}d")
    with launch(config):
        cols = im2col(x, *args)
        expected = ref_im2col(x, *args)
        assert cols.shape == expected.shape and cols.dtype == expected.dtype
        np.testing.assert_array_equal(cols, expected)  # a copy: exact

        grad_cols = in_layout(rng.standard_normal(cols.shape).astype(dtype), layout)
        image = col2im(grad_cols, x.shape, *args)
        expected = ref_col2im(grad_cols, x.shape, *args)
        assert image.shape == x.shape and image.dtype == expected.dtype
        assert image.flags.c_contiguous
        np.testing.assert_allclose(image, expected, **tolerance(dtype))


@pytest.mark.parametrize("config", CONFIGS)
def test_odd_sizes_span_several_blocks(cuda_kernels, config):
    # 3*2*2 rows x 2 x 6 x 4 = 576 columns and 2*3*5*6 = 180 image elements: several
    # blocks in both configurations; 180 is no multiple of 8, so the last block of "8xN"
    # is partly idle, and "4x3" makes 12 threads loop 15 times
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 6))
    args = ((2, 2), (1, 2), ((1, 0), (0, 1)), (1, 1))
    threads, max_blocks = config
    with launch(config):
        cols = cuda_kernels["im2col2d"](x, *args)
        assert last_launch() == (min(-(-cols.size // threads), max_blocks), threads)
        assert last_launch()[0] > 1
        np.testing.assert_array_equal(cols, reference.im2col2d(x, *args))
        image = cuda_kernels["col2im2d"](cols, x.shape, *args)
        assert last_launch()[0] > 1
        np.testing.assert_allclose(image, reference.col2im2d(cols, x.shape, *args),
                                   rtol=1e-12, atol=1e-12)


def test_a_longer_input_than_the_outputs_read_gets_zeros(cuda_kernels):
    # kernel 2, stride 3 over 9 positions: windows read 0-1, 3-4 and 6-7; 2, 5 and 8 none
    x = np.arange(18.0).reshape(1, 2, 9)
    cols = reference.im2col1d(x, 2, 3, (0, 0), 1)
    with launch((4, 3)):
        got = cuda_kernels["col2im1d"](cols, x.shape, 2, 3, (0, 0), 1)
    np.testing.assert_array_equal(got, reference.col2im1d(cols, x.shape, 2, 3, (0, 0), 1))
    assert (got[..., [2, 5, 8]] == 0).all()


@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_other_dtypes_and_empty_batches_go_to_the_reference(cuda_kernels, dtype):
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(dtype)
    args = ((2, 3), (1, 1), ((0, 1), (1, 0)), (1, 1))
    got = cuda_kernels["im2col2d"](x, *args)
    np.testing.assert_array_equal(got, reference.im2col2d(x, *args))
    assert got.dtype == dtype
    empty = np.zeros((0, 3, 4, 5), dtype=np.float32)
    assert cuda_kernels["im2col2d"](empty, *args).shape == reference.im2col2d(empty,
                                                                              *args).shape
