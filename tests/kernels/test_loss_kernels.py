"""The compiled (``cpu``) and Numba softmax-cross-entropy kernels against the references.

Hypothesis draws the batch (empty included) and class counts, class weights or none,
label smoothing, targets equal to ``ignore_index``, integer target dtypes, logits of
moderate or extreme size (``1e4``: a naive softmax overflows) and non-contiguous logits.
The references in :mod:`minidl.ops.loss` are the oracle; ``(N, C, d)`` logits must reach
the reference unchanged.  The last tests run ``F.cross_entropy`` forward and backward
under each backend and compare with the ``numpy`` backend.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
import minidl.nn.functional as F
from minidl import backend, kernels
from minidl.ops import loss as reference

BACKENDS = ["cpu", "numba"]
DTYPES = [np.float32, np.float64]
IGNORE = -100


def _kernel(name, backend_name):
    """The ``backend_name`` implementation of kernel ``name``; skip if it did not load."""
    kernels.load()
    impl = backend._KERNELS[name].get(backend_name)
    if impl is None:
        reason = kernels.status().get(f"{backend_name}.loss", "not registered")
        pytest.skip(f"{backend_name} {name}: {reason}")
    return impl


def _close(got, expected, dtype, scale=1.0):
    if dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12 * scale)


@st.composite
def problems(draw):
    return dict(
        rows=draw(st.integers(0, 6)),
        classes=draw(st.integers(1, 12)),
        weighted=draw(st.booleans()),
        smoothing=draw(st.sampled_from([0.0, 0.1, 1.0])),
        ignored=draw(st.floats(0.0, 1.0)),
        scale=draw(st.sampled_from([1.0, 30.0, 1e4])),
        target_dtype=draw(st.sampled_from([np.int64, np.int32, np.uint8])),
        contiguous=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def _inputs(p, dtype):
    rng = np.random.default_rng(p["seed"])
    n, c = p["rows"], p["classes"]
    logits = (rng.standard_normal((c, n)) * p["scale"]).astype(dtype)
    logits = logits.T if not p["contiguous"] else np.ascontiguousarray(logits.T)
    target = rng.integers(0, c, n)
    if p["target_dtype"] != np.uint8:  # an unsigned target cannot hold ignore_index
        target[rng.random(n) < p["ignored"]] = IGNORE
    target = target.astype(p["target_dtype"])
    weight = (rng.random(c) + 0.1).astype(dtype) if p["weighted"] else None
    return rng, logits, target, weight


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(problem=problems())
def test_softmax_cross_entropy_matches_the_reference(backend_name, dtype, problem):
    forward = _kernel("softmax_cross_entropy_forward", backend_name)
    backward = _kernel("softmax_cross_entropy_backward", backend_name)
    rng, logits, target, weight = _inputs(problem, dtype)
    eps = problem["smoothing"]

    loss, logp, total = forward(logits, target, weight, IGNORE, eps)
    e_loss, e_logp, e_total = reference.softmax_cross_entropy_forward(
        logits, target, weight, IGNORE, eps)
    assert loss.dtype == logp.dtype == np.asarray(total).dtype == dtype
    assert loss.shape == e_loss.shape and logp.shape == e_logp.shape
    _close(logp, e_logp, dtype, scale=max(1.0, np.abs(e_logp).max(initial=0)))
    _close(loss, e_loss, dtype, scale=max(1.0, np.abs(e_loss).max(initial=0)))
    _close(total, e_total, dtype)
    assert (loss[target == IGNORE] == 0).all()

    # per-row gradients, and a broadcast (stride-0) one as the "mean" reduction passes
    for grad_loss in (rng.standard_normal(len(target)).astype(dtype),
                      np.broadcast_to(dtype(0.25), target.shape)):
        grad = backward(grad_loss, e_logp, target, weight, IGNORE, eps)
        expected = reference.softmax_cross_entropy_backward(grad_loss, e_logp, target, weight,
                                                            IGNORE, eps)
        assert grad.shape == expected.shape and grad.dtype == expected.dtype
        _close(grad, expected, dtype)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_ignored_rows_get_a_zero_gradient_even_from_a_nan(backend_name):
    # a "mean" over targets that are all ignored divides by 0: g is nan, the gradient 0
    backward = _kernel("softmax_cross_entropy_backward", backend_name)
    logp = np.log(np.full((3, 4), 0.25, dtype=np.float32))
    target = np.full(3, IGNORE)
    grad = backward(np.full(3, np.nan, dtype=np.float32), logp, target, None, IGNORE, 0.1)
    np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_spatial_logits_reach_the_reference(backend_name):
    forward = _kernel("softmax_cross_entropy_forward", backend_name)
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4))
    target = rng.integers(0, 3, (2, 4))
    got = forward(logits, target, None, IGNORE, 0.0)
    expected = reference.softmax_cross_entropy_forward(logits, target, None, IGNORE, 0.0)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def _cross_entropy_run(backend_name, logits, target, **options):
    minidl.set_backend(backend_name)
    x = minidl.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, minidl.tensor(target), **options)
    direction = np.random.default_rng(2).standard_normal(loss.shape).astype(logits.dtype)
    (loss * minidl.tensor(direction)).sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_cross_entropy_op_matches_the_numpy_backend(restore_backend, backend_name, dtype,
                                                    reduction):
    _kernel("softmax_cross_entropy_forward", backend_name)
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((16, 10)) * 3).astype(dtype)
    target = rng.integers(0, 10, 16)
    target[:3] = IGNORE
    options = dict(weight=minidl.tensor(rng.random(10).astype(dtype)), reduction=reduction,
                   label_smoothing=0.1, ignore_index=IGNORE)
    got = _cross_entropy_run(backend_name, logits, target, **options)
    expected = _cross_entropy_run("numpy", logits, target, **options)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype
        _close(g, e, dtype, scale=max(1.0, np.abs(e).max()))
