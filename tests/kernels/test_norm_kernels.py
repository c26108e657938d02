"""The compiled (``cpu``) and Numba batch-norm kernels against the NumPy references.

Hypothesis draws the ``(N, C, L)`` shape (``L = 1`` is BatchNorm1d on ``(N, C)``), training
or evaluation, which of weight, bias and running statistics exist, which gradients are
asked for, contiguous or transposed (non-contiguous) inputs, and data with a large
offset (a mean 1000 times the standard deviation, where a careless variance loses every
digit in float32).  The reference kernels of :mod:`minidl.ops.normalization` are the
oracle.  The last test runs the public ``batch_norm`` forward and backward under each
backend and compares with the ``numpy`` backend.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend, kernels
from minidl.ops import normalization as reference

BACKENDS = ["cpu", "numba"]
DTYPES = [np.float32, np.float64]


def _kernel(name, backend_name):
    """The ``backend_name`` implementation of kernel ``name``; skip if it did not load."""
    kernels.load()
    impl = backend._KERNELS[name].get(backend_name)
    if impl is None:
        reason = kernels.status().get(f"{backend_name}.norm", "not registered")
        pytest.skip(f"{backend_name} {name}: {reason}")
    return impl


def _close(got, expected, dtype, scale=1.0):
    """Equal up to the rounding of ``dtype``; ``scale`` sets the size of an absolute slip."""
    if dtype == np.float32:
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * scale)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * scale)


def _data(rng, shape, dtype, contiguous, offset, spread):
    values = rng.standard_normal(shape) * spread + offset
    if contiguous:
        return values.astype(dtype)
    # the same values in a transposed buffer: a non-contiguous view
    return np.ascontiguousarray(values.swapaxes(0, 2)).astype(dtype).swapaxes(0, 2)


@st.composite
def problems(draw):
    n, c, length = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 20))
    if n * length == 1:
        n = 2  # training needs more than one value per channel
    return dict(
        shape=(n, c, length),
        training=draw(st.booleans()),
        affine=(draw(st.booleans()), draw(st.booleans())),
        tracked=draw(st.booleans()),
        contiguous=draw(st.booleans()),
        offset=draw(st.sampled_from([0.0, 3.0, 1000.0])),
        mask=draw(st.tuples(st.booleans(), st.booleans(), st.booleans())),
        seed=draw(st.integers(0, 2**16)),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(problem=problems())
def test_batch_norm_forward_and_backward_match_the_reference(backend_name, dtype, problem):
    forward = _kernel("batch_norm_forward", backend_name)
    backward = _kernel("batch_norm_backward", backend_name)
    p = problem
    rng = np.random.default_rng(p["seed"])
    n, c, length = p["shape"]
    spread = 0.01 if p["offset"] == 1000.0 else 1.0
    x = _data(rng, p["shape"], dtype, p["contiguous"], p["offset"], spread)
    weight = rng.standard_normal(c).astype(dtype) if p["affine"][0] else None
    bias = rng.standard_normal(c).astype(dtype) if p["affine"][1] else None
    training = p["training"] or not p["tracked"]  # evaluation needs running statistics
    running = {}
    if p["tracked"]:
        running = dict(mean=(p["offset"] + rng.standard_normal(c) * spread).astype(dtype),
                       var=(rng.random(c) * spread**2 + spread**2 / 2).astype(dtype))
    mine = {k: v.copy() for k, v in running.items()}
    theirs = {k: v.copy() for k, v in running.items()}

    out, mean, invstd = forward(x, weight, bias, mine.get("mean"), mine.get("var"), training,
                                0.1, 1e-5)
    e_out, e_mean, e_invstd = reference.batch_norm_forward(
        x, weight, bias, theirs.get("mean"), theirs.get("var"), training, 0.1, 1e-5)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert mean.dtype == invstd.dtype == np.float64
    _close(out, e_out, dtype, scale=np.abs(e_out).max())
    # the statistics: the mean to a fraction of the spread, invstd relatively
    _close(mean, e_mean, dtype, scale=spread)
    _close(invstd, e_invstd, dtype, scale=0.0)
    for key in running:
        _close(mine[key], theirs[key], dtype, scale=np.abs(theirs[key]).max())

    grad_out = rng.standard_normal(p["shape"]).astype(dtype)
    got = backward(grad_out, x, weight, e_mean, e_invstd, training, p["mask"])
    expected = reference.batch_norm_backward(grad_out, x, weight, e_mean, e_invstd, training,
                                             p["mask"])
    # the input gradient is a difference of terms of size |dy| gamma r, which may cancel
    # (two values per channel: almost exactly): its rounding is relative to that size
    gain = np.abs(e_invstd * (1.0 if weight is None else weight)).max()
    scales = (np.abs(grad_out).max() * gain, None, None)
    for g, e, wanted, scale in zip(got, expected, p["mask"], scales):
        assert (g is None) == (not wanted)
        if wanted:
            assert g.shape == e.shape and g.dtype == e.dtype
            _close(g, e, dtype, scale=np.abs(e).max() if scale is None else scale)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_constant_channel_normalises_to_the_bias(backend_name):
    forward = _kernel("batch_norm_forward", backend_name)
    x = np.full((3, 2, 4), 7.5, dtype=np.float32)
    bias = np.array([1.0, -2.0], dtype=np.float32)
    out, mean, invstd = forward(x, None, bias, None, None, True, 0.1, 1e-5)
    np.testing.assert_array_equal(out[:, 0], 1.0)
    np.testing.assert_array_equal(out[:, 1], -2.0)
    np.testing.assert_array_equal(mean, 7.5)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(1e-5), rtol=1e-12)


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def _batch_norm_run(backend_name, x, weight, bias, training):
    """``F.batch_norm`` forward+backward under one backend: output, gradients, stats."""
    minidl.set_backend(backend_name)
    xt, wt, bt = (minidl.tensor(a, requires_grad=True) for a in (x, weight, bias))
    running_mean = minidl.zeros(x.shape[1], dtype=x.dtype)
    running_var = minidl.ones(x.shape[1], dtype=x.dtype)
    out = minidl.nn.functional.batch_norm(xt, running_mean, running_var, wt, bt,
                                          training=training)
    # a random direction: (out * out).sum() would make the input gradient nearly cancel
    direction = np.random.default_rng(5).standard_normal(x.shape).astype(x.dtype)
    (out * minidl.tensor(direction)).sum().backward()
    return [out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy(),
            running_mean.numpy(), running_var.numpy()]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_batch_norm_op_matches_the_numpy_backend(restore_backend, backend_name, dtype,
                                                 training):
    _kernel("batch_norm_forward", backend_name)
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(dtype)
    weight, bias = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    got = _batch_norm_run(backend_name, x, weight, bias, training)
    expected = _batch_norm_run("numpy", x, weight, bias, training)
    for g, e in zip(got, expected):
        _close(g, e, dtype, scale=np.abs(e).max())
