"""The CUDA batch-norm kernels against the NumPy references, under the simulator.

Hypothesis draws tiny ``(N, C, L)`` shapes (``L = 1`` is BatchNorm1d on ``(N, C)``),
training or evaluation, which of weight, bias and running statistics exist, which
gradients are asked for, three memory layouts, and data with a large offset (a mean 1000
times the spread, where a careless variance loses every digit in float32).  The launch
configurations make each channel's values span several passes of a block's threads and
the channels several passes of the grid, so the shared-memory reductions add partial
sums from every thread.  The references of :mod:`minidl.ops.normalization` are the oracle.
"""

import numpy as np
import pytest
from cuda_support import CONFIGS, DTYPES, FEW, LAYOUTS, in_layout, last_launch, launch
from hypothesis import given
from hypothesis import strategies as st

from minidl.ops import normalization as reference

pytestmark = pytest.mark.cudasim


def _close(got, expected, dtype, scale=1.0):
    """Equal up to the rounding of ``dtype``; ``scale`` sets the size of an absolute slip."""
    if dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * scale)


@st.composite
def problems(draw):
    n, c, length = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 7))
    if n * length == 1:
        n = 2  # training needs more than one value per channel
    return dict(
        shape=(n, c, length),
        training=draw(st.booleans()),
        affine=(draw(st.booleans()), draw(st.booleans())),
        tracked=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        offset=draw(st.sampled_from([0.0, 3.0, 1000.0])),
        mask=draw(st.tuples(st.booleans(), st.booleans(), st.booleans())),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(problem=problems())
def test_batch_norm_forward_and_backward_match_the_reference(cuda_kernels, config, dtype,
                                                             problem):
    p = problem
    rng = np.random.default_rng(p["seed"])
    n, c, length = p["shape"]
    spread = 0.01 if p["offset"] == 1000.0 else 1.0
    x = in_layout((rng.standard_normal(p["shape"]) * spread + p["offset"]).astype(dtype),
                  p["layout"])
    weight = rng.standard_normal(c).astype(dtype) if p["affine"][0] else None
    bias = rng.standard_normal(c).astype(dtype) if p["affine"][1] else None
    training = p["training"] or not p["tracked"]  # evaluation needs running statistics
    running = {}
    if p["tracked"]:
        running = dict(mean=(p["offset"] + rng.standard_normal(c) * spread).astype(dtype),
                       var=(rng.random(c) * spread**2 + spread**2 / 2).astype(dtype))
    mine = {k: v.copy() for k, v in running.items()}
    theirs = {k: v.copy() for k, v in running.items()}

    with launch(config):
        out, mean, invstd = cuda_kernels["batch_norm_forward"](
            x, weight, bias, mine.get("mean"), mine.get("var"), training, 0.1, 1e-5)
    e_out, e_mean, e_invstd = reference.batch_norm_forward(
        x, weight, bias, theirs.get("mean"), theirs.get("var"), training, 0.1, 1e-5)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert mean.dtype == invstd.dtype == np.float64
    _close(out, e_out, dtype, scale=np.abs(e_out).max())
    _close(mean, e_mean, dtype, scale=spread)  # the mean to a fraction of the spread
    _close(invstd, e_invstd, dtype, scale=0.0)
    for key in running:  # updated in place
        _close(mine[key], theirs[key], dtype, scale=np.abs(theirs[key]).max())

    grad_out = in_layout(rng.standard_normal(p["shape"]).astype(dtype), p["layout"])
    with launch(config):
        got = cuda_kernels["batch_norm_backward"](grad_out, x, weight, e_mean, e_invstd,
                                                  training, p["mask"])
    expected = reference.batch_norm_backward(grad_out, x, weight, e_mean, e_invstd, training,
                                             p["mask"])
    # the input gradient is a difference of terms of size |dy| gamma r that may cancel:
    # its rounding is relative to that size
    gain = np.abs(e_invstd * (1.0 if weight is None else weight)).max()
    scales = (np.abs(grad_out).max() * gain, None, None)
    for g, e, wanted, scale in zip(got, expected, p["mask"], scales):
        assert (g is None) == (not wanted)
        if wanted:
            assert g.shape == e.shape and g.dtype == e.dtype
            _close(g, e, dtype, scale=np.abs(e).max() if scale is None else scale)


@pytest.mark.parametrize("config", CONFIGS)
def test_reductions_span_threads_and_blocks(cuda_kernels, config):
    # 7 channels of 3 * 11 = 33 values: more values than threads per block, more channels
    # than the "4x3" grid has blocks; 33 is odd, so the last pass of each block is partial
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 7, 11)) + 2.0
    threads, max_blocks = config
    with launch(config):
        out, mean, invstd = cuda_kernels["batch_norm_forward"](x, None, None, None, None, True,
                                                               0.1, 1e-5)
        assert last_launch() == (min(7, max_blocks), threads)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x.var(axis=(0, 2)) + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(out.mean(axis=(0, 2)), 0.0, atol=1e-12)


def test_a_constant_channel_normalises_to_the_bias(cuda_kernels):
    x = np.full((3, 2, 4), 7.5, dtype=np.float32)
    bias = np.array([0.5, -1.0], dtype=np.float32)
    out, mean, invstd = cuda_kernels["batch_norm_forward"](x, None, bias, None, None, True,
                                                           0.1, 1e-5)
    np.testing.assert_array_equal(mean, [7.5, 7.5])
    np.testing.assert_allclose(out, np.broadcast_to(bias[None, :, None], x.shape))


def test_unsupported_inputs_go_to_the_reference(cuda_kernels):
    # float16 data: no kernel is compiled for it, the reference runs
    x = np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float16)
    got = cuda_kernels["batch_norm_forward"](x, None, None, None, None, True, 0.1, 1e-5)
    expected = reference.batch_norm_forward(x, None, None, None, None, True, 0.1, 1e-5)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
