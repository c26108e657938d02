"""The compiled (``cpu``) and Numba LSTM/GRU step kernels against the NumPy references.

The step kernels work in place (see :mod:`minidl.ops.recurrent`), so every test runs the
accelerated kernel and the reference on separate copies of the same arrays and compares
every array afterwards, the in/out ones included.  Hypothesis draws the batch and hidden
sizes, the layout (contiguous, rows with padding between them, every other column) and
pre-activations that include saturating values (|a| up to 100, where ``exp`` overflows
in float32).  The last tests run whole LSTM/GRU layers (variable lengths, reverse
direction) forward and backward under each backend and compare with ``numpy``.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import backend, kernels
from minidl.ops import recurrent as reference

BACKENDS = ["cpu", "numba"]
DTYPES = [np.float32, np.float64]
LAYOUTS = ["contiguous", "padded_rows", "strided_columns"]


def _kernel(name, backend_name):
    """The ``backend_name`` implementation of kernel ``name``; skip if it did not load."""
    kernels.load()
    impl = backend._KERNELS[name].get(backend_name)
    if impl is None:
        reason = kernels.status().get(f"{backend_name}.recurrent", "not registered")
        pytest.skip(f"{backend_name} {name}: {reason}")
    return impl


def _tolerance(dtype):
    # exp and tanh are polynomials in the kernels (1-2 ulp) and NumPy's in the reference
    if dtype == np.float32:
        return dict(rtol=2e-5, atol=2e-6)
    return dict(rtol=1e-10, atol=1e-12)


def _array(rng, shape, dtype, layout, scale=1.0):
    """A random array of ``shape`` in the given memory layout."""
    rows, cols = shape
    values = (rng.standard_normal(shape) * scale).astype(dtype)
    if layout == "contiguous":
        return values
    if layout == "padded_rows":  # row stride larger than the row
        buffer = np.full((rows, cols + 3), np.nan, dtype=dtype)
        out = buffer[:, :cols]
    else:  # every other column: not contiguous along a row
        out = np.full((rows, 2 * cols), np.nan, dtype=dtype)[:, ::2]
    out[...] = values
    return out


def _pre_activations(rng, shape, dtype, layout):
    """Gate pre-activations: mostly moderate, a few saturating ones (|a| up to 100)."""
    a = _array(rng, shape, dtype, layout, scale=3.0)
    saturated = rng.random(shape) < 0.05
    a[saturated] = rng.choice([-100.0, -30.0, 30.0, 100.0], size=int(saturated.sum()))
    return a


def _copies(arrays):
    """Independent copies with the same layout (so both kernels see the same strides)."""
    out = []
    for a in arrays:
        b = np.empty_like(a) if a.flags.c_contiguous else _array(
            np.random.default_rng(0), a.shape, a.dtype,
            "padded_rows" if a.strides[1] == a.itemsize else "strided_columns")
        b[...] = a
        out.append(b)
    return out


def _assert_all_close(got, expected, dtype):
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **_tolerance(dtype))


sizes = dict(batch=st.integers(1, 5), hidden=st.integers(1, 9),
             layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**16))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(**sizes)
def test_lstm_cell_forward_matches_the_reference(backend_name, dtype, batch, hidden, layout,
                                                 seed):
    kernel = _kernel("lstm_cell_forward", backend_name)
    rng = np.random.default_rng(seed)
    args = [_pre_activations(rng, (batch, 4 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout)]
    args += [_array(rng, (batch, hidden), dtype, layout) for _ in range(3)]  # outputs
    mine, theirs = _copies(args), _copies(args)
    with np.errstate(over="ignore"):
        assert kernel(*mine) is None
        reference.lstm_cell_forward(*theirs)
    _assert_all_close(mine, theirs, dtype)
    assert np.isfinite(mine[0]).all() and np.isfinite(mine[4]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(**sizes)
def test_lstm_cell_backward_matches_the_reference(backend_name, dtype, batch, hidden, layout,
                                                  seed):
    kernel = _kernel("lstm_cell_backward", backend_name)
    rng = np.random.default_rng(seed)
    # activations as the forward leaves them: sigmoids in (0, 1), tanh in (-1, 1)
    gates = _array(rng, (batch, 4 * hidden), dtype, layout)
    gates[...] = rng.random((batch, 4 * hidden))
    gates[:, 2 * hidden:3 * hidden] = 2 * gates[:, 2 * hidden:3 * hidden] - 1
    c_prev = _array(rng, (batch, hidden), dtype, layout)
    tanh_c = _array(rng, (batch, hidden), dtype, layout)
    tanh_c[...] = np.tanh(tanh_c)
    grad_h = _array(rng, (batch, hidden), dtype, layout)
    grad_c = _array(rng, (batch, hidden), dtype, layout)
    grad_gates = _array(rng, (batch, 4 * hidden), dtype, layout)
    args = [gates, c_prev, tanh_c, grad_h, grad_c, grad_gates]
    mine, theirs = _copies(args), _copies(args)
    assert kernel(*mine) is None
    reference.lstm_cell_backward(*theirs)
    _assert_all_close(mine, theirs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(**sizes)
def test_gru_cell_forward_matches_the_reference(backend_name, dtype, batch, hidden, layout,
                                                seed):
    kernel = _kernel("gru_cell_forward", backend_name)
    rng = np.random.default_rng(seed)
    args = [_pre_activations(rng, (batch, 3 * hidden), dtype, layout),
            _pre_activations(rng, (batch, 3 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, 4 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout)]
    mine, theirs = _copies(args), _copies(args)
    with np.errstate(over="ignore"):
        assert kernel(*mine) is None
        reference.gru_cell_forward(*theirs)
    _assert_all_close(mine, theirs, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend_name", BACKENDS)
@given(**sizes)
def test_gru_cell_backward_matches_the_reference(backend_name, dtype, batch, hidden, layout,
                                                 seed):
    kernel = _kernel("gru_cell_backward", backend_name)
    rng = np.random.default_rng(seed)
    gates = _array(rng, (batch, 4 * hidden), dtype, layout)  # [r, z, n, hn]
    gates[:, :2 * hidden] = rng.random((batch, 2 * hidden))
    gates[:, 2 * hidden:3 * hidden] = np.tanh(gates[:, 2 * hidden:3 * hidden])
    args = [gates, _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, 3 * hidden), dtype, layout),
            _array(rng, (batch, 3 * hidden), dtype, layout)]
    mine, theirs = _copies(args), _copies(args)
    assert kernel(*mine) is None
    reference.gru_cell_backward(*theirs)
    _assert_all_close(mine, theirs, dtype)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_other_dtypes_go_to_the_reference(backend_name):
    kernel = _kernel("lstm_cell_forward", backend_name)
    rng = np.random.default_rng(0)
    shapes = ((2, 8), (2, 2), (2, 2), (2, 2), (2, 2))
    args = [rng.standard_normal(s).astype(np.float16) for s in shapes]
    mine, theirs = _copies(args), _copies(args)
    kernel(*mine)
    reference.lstm_cell_forward(*theirs)
    for g, e in zip(mine, theirs):
        np.testing.assert_array_equal(g, e)


# ----------------------------------------------------------------------------- op level


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def _layer_run(layer, backend_name, inputs, lengths, reverse):
    """Forward and backward of a layer op under one backend: outputs and all gradients."""
    minidl.set_backend(backend_name)
    tensors = [minidl.tensor(a, requires_grad=True) for a in inputs]
    outputs = layer(*tensors, lengths=lengths, reverse=reverse)
    rng = np.random.default_rng(1)
    loss = sum((o * minidl.tensor(rng.standard_normal(o.shape).astype(o.dtype))).sum()
               for o in outputs)
    loss.backward()
    return [o.detach().numpy() for o in outputs] + [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True])
def test_layers_forward_and_backward_match_the_numpy_backend(restore_backend, backend_name,
                                                             cell, dtype, reverse):
    _kernel(f"{cell}_cell_forward", backend_name)
    steps, batch, features, hidden = 6, 4, 3, 5
    gates = 4 if cell == "lstm" else 3
    rng = np.random.default_rng(7)
    x = rng.standard_normal((steps, batch, features)).astype(dtype)
    h0 = rng.standard_normal((batch, hidden)).astype(dtype)
    weights = [rng.standard_normal(s).astype(dtype) * 0.5
               for s in ((gates * hidden, features), (gates * hidden, hidden),
                         (gates * hidden,), (gates * hidden,))]
    if cell == "lstm":
        layer = reference.lstm_layer
        inputs = [x, h0, rng.standard_normal((batch, hidden)).astype(dtype)] + weights
    else:
        layer = reference.gru_layer
        inputs = [x, h0] + weights
    lengths = [6, 2, 5, 6]  # unsorted and padded: the packed-sequence path
    got = _layer_run(layer, backend_name, inputs, lengths, reverse)
    expected = _layer_run(layer, "numpy", inputs, lengths, reverse)
    tolerance = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else _tolerance(dtype)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **tolerance)
