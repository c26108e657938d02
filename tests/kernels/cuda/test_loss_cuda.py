"""The CUDA softmax-cross-entropy kernels against the NumPy references, under the simulator.

Hypothesis draws tiny batch and class counts, class weights or none, label smoothing,
targets equal to ``ignore_index``, integer target dtypes, logits of moderate or extreme
size (``1e4``: a naive softmax overflows) in three memory layouts, float32 and float64,
under two launch configurations (rows longer than a block's threads and more rows than
blocks with "4x3").  The references in :mod:`minidl.ops.loss` are the oracle.
"""

import numpy as np
import pytest
from cuda_support import CONFIGS, DTYPES, FEW, LAYOUTS, in_layout, last_launch, launch
from hypothesis import given
from hypothesis import strategies as st

from minidl.ops import loss as reference

pytestmark = pytest.mark.cudasim

IGNORE = -100


def _close(got, expected, dtype, scale=1.0):
    if dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * scale)


@st.composite
def problems(draw):
    return dict(
        rows=draw(st.integers(1, 5)),
        classes=draw(st.integers(1, 11)),
        weighted=draw(st.booleans()),
        smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])),
        ignored=draw(st.floats(0.0, 1.0)),
        scale=draw(st.sampled_from([1.0, 30.0, 1e4])),
        target_dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(problem=problems())
def test_softmax_cross_entropy_matches_the_reference(cuda_kernels, config, dtype, problem):
    p = problem
    rng = np.random.default_rng(p["seed"])
    n, c = p["rows"], p["classes"]
    logits = in_layout((rng.standard_normal((n, c)) * p["scale"]).astype(dtype), p["layout"])
    target = rng.integers(0, c, n)
    if p["target_dtype"] != np.uint8:  # an unsigned target cannot hold ignore_index
        target[rng.random(n) < p["ignored"]] = IGNORE
    target = target.astype(p["target_dtype"])
    weight = (rng.random(c) + 0.1).astype(dtype) if p["weighted"] else None
    eps = p["smoothing"]

    with launch(config):
        loss, logp, total = cuda_kernels["softmax_cross_entropy_forward"](
            logits, target, weight, IGNORE, eps)
    e_loss, e_logp, e_total = reference.softmax_cross_entropy_forward(logits, target, weight,
                                                                      IGNORE, eps)
    assert loss.dtype == logp.dtype == np.asarray(total).dtype == dtype
    assert loss.shape == e_loss.shape and logp.shape == e_logp.shape
    _close(logp, e_logp, dtype, scale=max(1.0, np.abs(e_logp).max()))
    _close(loss, e_loss, dtype, scale=max(1.0, np.abs(e_loss).max()))
    _close(total, e_total, dtype)
    assert (loss[target == IGNORE] == 0).all()

    # per-row gradients, and a broadcast (stride-0) one as the "mean" reduction passes
    for grad_loss in (rng.standard_normal(n).astype(dtype),
                      np.broadcast_to(dtype(0.25), target.shape)):
        with launch(config):
            grad = cuda_kernels["softmax_cross_entropy_backward"](grad_loss, e_logp, target,
                                                                  weight, IGNORE, eps)
        expected = reference.softmax_cross_entropy_backward(grad_loss, e_logp, target, weight,
                                                            IGNORE, eps)
        assert grad.shape == expected.shape and grad.dtype == expected.dtype
        _close(grad, expected, dtype)


@pytest.mark.parametrize("config", CONFIGS)
def test_long_rows_and_many_rows_span_threads_and_blocks(cuda_kernels, config):
    # 5 rows of 37 classes: each row longer than a block, more rows than "4x3"'s blocks
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((5, 37)) * 3
    target = np.array([0, 36, IGNORE, 17, 5])
    threads, max_blocks = config
    with launch(config):
        loss, logp, total = cuda_kernels["softmax_cross_entropy_forward"](logits, target, None,
                                                                          IGNORE, 0.1)
        assert last_launch() == (min(5, max_blocks), threads)
        grad = cuda_kernels["softmax_cross_entropy_backward"](np.ones(5), logp, target, None,
                                                              IGNORE, 0.1)
        assert last_launch()[0] > 1
    e_loss, e_logp, e_total = reference.softmax_cross_entropy_forward(logits, target, None,
                                                                      IGNORE, 0.1)
    np.testing.assert_allclose(logp, e_logp, rtol=1e-12)
    np.testing.assert_allclose(loss, e_loss, rtol=1e-12)
    assert total == e_total == 4
    np.testing.assert_allclose(
        grad, reference.softmax_cross_entropy_backward(np.ones(5), e_logp, target, None,
                                                       IGNORE, 0.1), rtol=1e-12, atol=1e-15)


def test_ignored_rows_get_a_zero_gradient_even_from_a_nan(cuda_kernels):
    # a "mean" over targets that are all ignored divides by 0: g is nan, the gradient 0
    logp = np.log(np.full((3, 4), 0.25, dtype=np.float32))
    grad = cuda_kernels["softmax_cross_entropy_backward"](
        np.full(3, np.nan, dtype=np.float32), logp, np.full(3, IGNORE), None, IGNORE, 0.1)
    np.testing.assert_array_equal(grad, 0.0)


def test_spatial_logits_reach_the_reference(cuda_kernels):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4))
    target = rng.integers(0, 3, (2, 4))
    got = cuda_kernels["softmax_cross_entropy_forward"](logits, target, None, IGNORE, 0.0)
    expected = reference.softmax_cross_entropy_forward(logits, target, None, IGNORE, 0.0)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
