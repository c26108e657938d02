"""The CUDA LSTM/GRU step kernels against the NumPy references, under the simulator.

The step kernels work in place (see :mod:`minidl.ops.recurrent`), so each test runs the
CUDA kernel and the reference on separate copies of the same arrays and compares every
array afterwards, the in/out ones included.  Hypothesis draws tiny batch and hidden
sizes, the memory layout (``gaps`` makes the wrappers copy in-place outputs back), and
pre-activations that include saturating values (|a| up to 100, where a naive ``exp``
overflows in float32), in float32 and float64, under two launch configurations.
"""

import numpy as np
import pytest
from cuda_support import CONFIGS, DTYPES, FEW, LAYOUTS, in_layout, last_launch, launch, tolerance
from hypothesis import given
from hypothesis import strategies as st

from minidl.ops import recurrent as reference

pytestmark = pytest.mark.cudasim

sizes = dict(batch=st.integers(1, 3), hidden=st.integers(1, 5),
             layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**16))


def _array(rng, shape, dtype, layout, scale=1.0):
    return in_layout((rng.standard_normal(shape) * scale).astype(dtype), layout)


def _pre_activations(rng, shape, dtype, layout):
    """Mostly moderate pre-activations, a few saturating ones (|a| up to 100)."""
    a = (rng.standard_normal(shape) * 3.0).astype(dtype)
    saturated = rng.random(shape) < 0.05
    a[saturated] = rng.choice([-100.0, -30.0, 30.0, 100.0], size=int(saturated.sum()))
    return in_layout(a, layout)


def _run_both(kernel, ref, args, dtype, config):
    """Run ``kernel`` and ``ref`` on copies of ``args`` (same layouts); compare them all."""
    mine = [in_layout(a, "gaps") if not a.flags.c_contiguous and not a.flags.f_contiguous
            else a.copy(order="A") for a in args]
    theirs = [a.copy() for a in args]
    with launch(config):
        assert kernel(*mine) is None
    with np.errstate(over="ignore"):  # the reference's exp overflows to inf, as it may
        ref(*theirs)
    for got, expected in zip(mine, theirs):
        np.testing.assert_allclose(got, expected, **tolerance(dtype))
    return mine


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(**sizes)
def test_lstm_cell_forward_matches_the_reference(cuda_kernels, config, dtype, batch, hidden,
                                                 layout, seed):
    rng = np.random.default_rng(seed)
    args = [_pre_activations(rng, (batch, 4 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout)]
    args += [_array(rng, (batch, hidden), dtype, layout) for _ in range(3)]  # outputs
    mine = _run_both(cuda_kernels["lstm_cell_forward"], reference.lstm_cell_forward, args,
                     dtype, config)
    assert np.isfinite(mine[0]).all() and np.isfinite(mine[4]).all()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(**sizes)
def test_lstm_cell_backward_matches_the_reference(cuda_kernels, config, dtype, batch, hidden,
                                                  layout, seed):
    rng = np.random.default_rng(seed)
    # activations as the forward leaves them: sigmoids in (0, 1), tanh in (-1, 1)
    values = rng.random((batch, 4 * hidden))
    values[:, 2 * hidden:3 * hidden] = 2 * values[:, 2 * hidden:3 * hidden] - 1
    gates = in_layout(values.astype(dtype), layout)
    tanh_c = in_layout(np.tanh(rng.standard_normal((batch, hidden))).astype(dtype), layout)
    args = [gates, _array(rng, (batch, hidden), dtype, layout), tanh_c,
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, 4 * hidden), dtype, layout)]
    _run_both(cuda_kernels["lstm_cell_backward"], reference.lstm_cell_backward, args, dtype,
              config)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(**sizes)
def test_gru_cell_forward_matches_the_reference(cuda_kernels, config, dtype, batch, hidden,
                                                layout, seed):
    rng = np.random.default_rng(seed)
    args = [_pre_activations(rng, (batch, 3 * hidden), dtype, layout),
            _pre_activations(rng, (batch, 3 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, 4 * hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout)]
    mine = _run_both(cuda_kernels["gru_cell_forward"], reference.gru_cell_forward, args, dtype,
                     config)
    assert np.isfinite(mine[4]).all()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", DTYPES)
@FEW
@given(**sizes)
def test_gru_cell_backward_matches_the_reference(cuda_kernels, config, dtype, batch, hidden,
                                                 layout, seed):
    rng = np.random.default_rng(seed)
    values = rng.random((batch, 4 * hidden))  # r, z in (0, 1)
    values[:, 2 * hidden:3 * hidden] = np.tanh(rng.standard_normal((batch, hidden)))
    values[:, 3 * hidden:] = rng.standard_normal((batch, hidden))  # hn
    args = [in_layout(values.astype(dtype), layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, hidden), dtype, layout),
            _array(rng, (batch, 3 * hidden), dtype, layout),
            _array(rng, (batch, 3 * hidden), dtype, layout)]
    _run_both(cuda_kernels["gru_cell_backward"], reference.gru_cell_backward, args, dtype,
              config)


@pytest.mark.parametrize("config", CONFIGS)
def test_a_batch_prefix_of_a_sequence_buffer_spans_several_blocks(cuda_kernels, config):
    # what the layer passes at a step of a variable-length batch: the first rows of one
    # time step of a (T, N, 4H) buffer, 3 x 7 = 21 units (no multiple of 4 or 8)
    rng = np.random.default_rng(7)
    buffer = rng.standard_normal((2, 5, 28))
    c_prev = rng.standard_normal((3, 7))
    outputs = [np.zeros((5, 7))[:3] for _ in range(3)]
    expected_gates = buffer.copy()
    expected = [np.zeros((3, 7)) for _ in range(3)]
    threads, max_blocks = config
    with launch(config):
        cuda_kernels["lstm_cell_forward"](buffer[1][:3], c_prev, *outputs)
        assert last_launch() == (min(-(-21 // threads), max_blocks), threads)
    reference.lstm_cell_forward(expected_gates[1][:3], c_prev, *expected)
    np.testing.assert_allclose(buffer, expected_gates, rtol=1e-12, atol=1e-15)
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_mismatched_dtypes_go_to_the_reference(cuda_kernels):
    rng = np.random.default_rng(0)
    gates = rng.standard_normal((2, 8)).astype(np.float32)
    c_prev = rng.standard_normal((2, 2))  # float64: no single compiled signature fits
    outs = [np.zeros((2, 2), np.float32) for _ in range(3)]
    want_gates, want_outs = gates.copy(), [o.copy() for o in outs]
    cuda_kernels["lstm_cell_forward"](gates, c_prev, *outs)
    reference.lstm_cell_forward(want_gates, c_prev, *want_outs)
    np.testing.assert_array_equal(gates, want_gates)
    for got, want in zip(outs, want_outs):
        np.testing.assert_array_equal(got, want)
