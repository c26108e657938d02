"""The fused recurrent ops (minidl.ops.recurrent) and their registered cell kernels.

- gradcheck (float64, hypothesis-drawn T, N, sizes, lengths, direction, bias) of
  ``lstm_layer``, ``gru_layer`` and ``rnn_layer`` w.r.t. the input, the initial states
  and every weight and bias;
- the cell kernels against the gate equations written out directly (the oracle for
  any compiled kernel registered later);
- variable lengths: padded steps output 0 and change nothing else; every sequence's
  result equals the result of running it alone, cut to its length;
- PyTorch parity of one layer (both directions, unequal lengths through PyTorch's
  packed sequences);
- argument errors.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import check_grad

import minidl
from minidl import backend
from minidl.ops.recurrent import (
    gru_cell_backward,
    gru_cell_forward,
    gru_layer,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_layer,
    rnn_layer,
)

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def run_layer(kind, x, h0, c0, params, lengths=None, reverse=False):
    """The op for ``kind``; always returns ``(output, h_n, c_n or None)``."""
    if kind == "lstm":
        return lstm_layer(x, h0, c0, *params, lengths=lengths, reverse=reverse)
    if kind == "gru":
        out, h_n = gru_layer(x, h0, *params, lengths=lengths, reverse=reverse)
    else:
        out, h_n = rnn_layer(x, h0, *params, lengths=lengths, reverse=reverse,
                             nonlinearity=kind.split("_")[1])
    return out, h_n, None


def make_arrays(kind, steps, batch, features, hidden, bias, seed, dtype=np.float64, scale=0.6):
    rng = np.random.default_rng(seed)
    gate = GATES[kind] * hidden
    arrays = {
        "x": rng.standard_normal((steps, batch, features)),
        "h0": rng.standard_normal((batch, hidden)) * 0.5,
        "c0": rng.standard_normal((batch, hidden)) * 0.5,
        "weight_ih": rng.uniform(-scale, scale, (gate, features)),
        "weight_hh": rng.uniform(-scale, scale, (gate, hidden)),
    }
    if bias:
        arrays["bias_ih"] = rng.uniform(-scale, scale, gate)
        arrays["bias_hh"] = rng.uniform(-scale, scale, gate)
    return {k: v.astype(dtype) for k, v in arrays.items()}


@st.composite
def layer_cases(draw):
    steps = draw(st.integers(1, 4))
    batch = draw(st.integers(1, 3))
    lengths = draw(st.one_of(
        st.none(), st.lists(st.integers(1, steps), min_size=batch, max_size=batch)
    ))
    return {
        "steps": steps,
        "batch": batch,
        "features": draw(st.integers(1, 3)),
        "hidden": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "reverse": draw(st.booleans()),
        "lengths": lengths,
        "seed": draw(st.integers(0, 2**16)),
    }


# ---------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@given(case=layer_cases())
def test_layer_gradcheck(kind, case):
    arrays = make_arrays(kind, case["steps"], case["batch"], case["features"], case["hidden"],
                         case["bias"], case["seed"])
    if kind == "rnn_relu":
        # keep pre-activations away from relu's kink: shift the input projection up
        arrays["x"] = np.abs(arrays["x"]) + 0.2
        arrays["weight_ih"] = np.abs(arrays["weight_ih"]) + 0.1
    names = list(arrays)
    if kind != "lstm":
        names.remove("c0")

    def fn(*tensors):
        t = dict(zip(names, tensors))
        params = [t["weight_ih"], t["weight_hh"]]
        if case["bias"]:
            params += [t["bias_ih"], t["bias_hh"]]
        out, h_n, c_n = run_layer(kind, t["x"], t["h0"], t.get("c0"), params,
                                  lengths=case["lengths"], reverse=case["reverse"])
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    check_grad(fn, *[arrays[n] for n in names])


def test_gradcheck_unsorted_lengths_reverse_lstm():
    """A fixed case with every feature at once: unsorted, repeated and full lengths."""
    arrays = make_arrays("lstm", 5, 4, 2, 3, True, seed=7)
    lengths = [2, 5, 1, 2]

    def fn(*tensors):
        return lstm_layer(*tensors, lengths=lengths, reverse=True)

    check_grad(fn, *arrays.values())


# ---------------------------------------------------------------------- kernels


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_cell_kernels_match_the_equations(dtype, rng):
    torch = pytest.importorskip("torch")
    batch, hidden = 3, 4
    pre = rng.standard_normal((batch, 4 * hidden)).astype(dtype) * 3
    c_prev = rng.standard_normal((batch, hidden)).astype(dtype)
    i, f, g, o = (pre[:, k * hidden:(k + 1) * hidden].astype(np.float64) for k in range(4))
    c_expected = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(g)
    h_expected = sigmoid(o) * np.tanh(c_expected)

    gates = pre.copy()
    c, tanh_c, h = (np.empty((batch, hidden), dtype) for _ in range(3))
    lstm_cell_forward(gates, c_prev, c, tanh_c, h)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(c, c_expected, atol=tol)
    np.testing.assert_allclose(tanh_c, np.tanh(c_expected), atol=tol)
    np.testing.assert_allclose(h, h_expected, atol=tol)
    np.testing.assert_allclose(
        gates, np.concatenate([sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)], axis=1),
        atol=tol,
    )

    # backward against autograd of the same equations (in float64)
    grad_h = rng.standard_normal((batch, hidden))
    grad_c_next = rng.standard_normal((batch, hidden))
    t_pre = torch.tensor(pre.astype(np.float64), requires_grad=True)
    t_c_prev = torch.tensor(c_prev.astype(np.float64), requires_grad=True)
    ti, tf, tg, to = t_pre.split(hidden, dim=1)
    t_c = ti.sigmoid() * tg.tanh() + tf.sigmoid() * t_c_prev
    t_h = to.sigmoid() * t_c.tanh()
    ((t_h * torch.tensor(grad_h)).sum() + (t_c * torch.tensor(grad_c_next)).sum()).backward()

    grad_c = grad_c_next.astype(dtype)
    grad_gates = np.empty((batch, 4 * hidden), dtype)
    lstm_cell_backward(gates, c_prev, tanh_c, grad_h.astype(dtype), grad_c, grad_gates)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grad_gates, t_pre.grad.numpy(), atol=tol)
    np.testing.assert_allclose(grad_c, t_c_prev.grad.numpy(), atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_cell_kernels_match_the_equations(dtype, rng):
    torch = pytest.importorskip("torch")
    batch, hidden = 3, 4
    x_gates = rng.standard_normal((batch, 3 * hidden)).astype(dtype) * 2
    h_gates = rng.standard_normal((batch, 3 * hidden)).astype(dtype) * 2
    h_prev = rng.standard_normal((batch, hidden)).astype(dtype)
    xr, xz, xn = (x_gates[:, k * hidden:(k + 1) * hidden].astype(np.float64) for k in range(3))
    hr, hz, hn = (h_gates[:, k * hidden:(k + 1) * hidden].astype(np.float64) for k in range(3))
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)  # NOTE: r multiplies the hidden part including b_hn
    h_expected = (1 - z) * n + z * h_prev

    gates = np.empty((batch, 4 * hidden), dtype)
    h = np.empty((batch, hidden), dtype)
    gru_cell_forward(x_gates, h_gates, h_prev, gates, h)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(h, h_expected, atol=tol)
    np.testing.assert_allclose(gates, np.concatenate([r, z, n, hn], axis=1), atol=tol)

    grad_h_in = rng.standard_normal((batch, hidden))
    t_x = torch.tensor(x_gates.astype(np.float64), requires_grad=True)
    t_hg = torch.tensor(h_gates.astype(np.float64), requires_grad=True)
    t_h_prev = torch.tensor(h_prev.astype(np.float64), requires_grad=True)
    txr, txz, txn = t_x.split(hidden, dim=1)
    thr, thz, thn = t_hg.split(hidden, dim=1)
    tr, tz = (txr + thr).sigmoid(), (txz + thz).sigmoid()
    t_h = (1 - tz) * (txn + tr * thn).tanh() + tz * t_h_prev
    (t_h * torch.tensor(grad_h_in)).sum().backward()

    grad_h = grad_h_in.astype(dtype)
    grad_x_gates = np.empty((batch, 3 * hidden), dtype)
    grad_h_gates = np.empty((batch, 3 * hidden), dtype)
    gru_cell_backward(gates, h_prev, grad_h, grad_x_gates, grad_h_gates)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(grad_x_gates, t_x.grad.numpy(), atol=tol)
    np.testing.assert_allclose(grad_h_gates, t_hg.grad.numpy(), atol=tol)
    # the kernel leaves only the direct part of dL/dh_prev (grad_h * z)
    np.testing.assert_allclose(grad_h, t_h_prev.grad.numpy(), atol=tol)


def test_kernels_are_registered_under_their_names():
    for name, fn in [("lstm_cell_forward", lstm_cell_forward),
                     ("lstm_cell_backward", lstm_cell_backward),
                     ("gru_cell_forward", gru_cell_forward),
                     ("gru_cell_backward", gru_cell_backward)]:
        assert "numpy" in backend.info()["kernels"][name]["available"]
        previous = backend.get_backend()
        try:
            backend.set_backend("numpy")
            assert backend.get_kernel(name) is fn
        finally:
            backend.set_backend(previous)


def test_lstm_saturated_gates_give_the_limits_without_warnings():
    """exp overflows for very negative pre-activations; the limits must still be exact."""
    pre = np.array([[-200.0, 200.0, -200.0, 200.0]], dtype=np.float32)
    x = minidl.tensor(np.zeros((1, 1, 1), np.float32))
    weight_ih = minidl.tensor(pre.reshape(4, 1) * 0)
    bias = minidl.tensor(pre.reshape(4))
    zeros = minidl.zeros(1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail the test
        out, h_n, c_n = lstm_layer(x, zeros, zeros + 1, weight_ih, minidl.zeros(4, 1), bias,
                                   minidl.zeros(4))
    # i = 0, f = 1, g = -1, o = 1: c = 1 * 1 + 0 * -1 = 1, h = tanh(1)
    assert c_n.item() == pytest.approx(1.0)
    assert h_n.item() == pytest.approx(np.tanh(1.0), rel=1e-6)


# ---------------------------------------------------------------------- lengths


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("reverse", [False, True])
def test_each_sequence_equals_running_it_alone(kind, reverse):
    """With lengths, sequence b's outputs, final states and gradients equal those of the
    same op run on that sequence alone, cut to its length; padding outputs 0."""
    steps, batch, features, hidden = 6, 4, 3, 5
    arrays = make_arrays(kind, steps, batch, features, hidden, True, seed=3)
    lengths = [3, 6, 1, 4]
    upstream = np.random.default_rng(0).standard_normal((steps, batch, hidden))

    def run(x, h0, c0, lengths, grad_out):
        tensors = {k: minidl.tensor(v, requires_grad=True) for k, v in arrays.items()}
        tensors.update(x=minidl.tensor(x, requires_grad=True),
                       h0=minidl.tensor(h0, requires_grad=True),
                       c0=minidl.tensor(c0, requires_grad=True))
        params = [tensors[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        out, h_n, c_n = run_layer(kind, tensors["x"], tensors["h0"], tensors["c0"], params,
                                  lengths=lengths, reverse=reverse)
        loss = (out * minidl.tensor(grad_out)).sum() + h_n.sum()
        if c_n is not None:
            loss = loss + (c_n * 2).sum()
        loss.backward()
        return out, h_n, c_n, tensors

    out, h_n, c_n, tensors = run(arrays["x"], arrays["h0"], arrays["c0"], lengths, upstream)
    for b, n in enumerate(lengths):
        alone = run(arrays["x"][:n, b:b + 1], arrays["h0"][b:b + 1], arrays["c0"][b:b + 1], None,
                    upstream[:n, b:b + 1])
        np.testing.assert_allclose(out.detach().numpy()[:n, b], alone[0].detach().numpy()[:, 0],
                                   atol=1e-12)
        assert not out.detach().numpy()[n:, b].any()
        np.testing.assert_allclose(h_n.detach().numpy()[b], alone[1].detach().numpy()[0],
                                   atol=1e-12)
        if c_n is not None:
            np.testing.assert_allclose(c_n.detach().numpy()[b], alone[2].detach().numpy()[0],
                                       atol=1e-12)
        np.testing.assert_allclose(tensors["x"].grad.numpy()[:n, b],
                                   alone[3]["x"].grad.numpy()[:, 0], atol=1e-12)
        assert not tensors["x"].grad.numpy()[n:, b].any()
        np.testing.assert_allclose(tensors["h0"].grad.numpy()[b],
                                   alone[3]["h0"].grad.numpy()[0], atol=1e-12)


def test_full_lengths_equal_no_lengths():
    arrays = make_arrays("lstm", 4, 3, 2, 3, True, seed=5)
    tensors = [minidl.tensor(v) for v in arrays.values()]
    for reverse in (False, True):
        a = lstm_layer(*tensors, reverse=reverse)
        b = lstm_layer(*tensors, lengths=[4, 4, 4], reverse=reverse)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u.numpy(), v.numpy())


# ---------------------------------------------------------------------- torch parity


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [None, [5, 2, 4]])
def test_layer_matches_torch_both_directions(kind, dtype, lengths):
    """One bidirectional torch layer = our forward op + our reverse op."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    steps, batch, features, hidden = 5, 3, 4, 6
    torch_dtype = getattr(torch, np.dtype(dtype).name)
    if kind == "lstm":
        theirs = torch.nn.LSTM(features, hidden, bidirectional=True)
    elif kind == "gru":
        theirs = torch.nn.GRU(features, hidden, bidirectional=True)
    else:
        theirs = torch.nn.RNN(features, hidden, nonlinearity=kind[4:], bidirectional=True)
    theirs = theirs.to(torch_dtype)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((steps, batch, features)).astype(dtype)
    h0 = rng.standard_normal((2, batch, hidden)).astype(dtype)
    c0 = rng.standard_normal((2, batch, hidden)).astype(dtype)
    upstream = rng.standard_normal((steps, batch, 2 * hidden)).astype(dtype)

    tx = torch.tensor(x, requires_grad=True)
    t_in = tx if lengths is None else pack_padded_sequence(tx, lengths, enforce_sorted=False)
    t_hx = (torch.tensor(h0), torch.tensor(c0)) if kind == "lstm" else torch.tensor(h0)
    t_out, t_state = theirs(t_in, t_hx)
    if lengths is not None:
        t_out, _ = pad_packed_sequence(t_out, total_length=steps)
    t_h = t_state[0] if kind == "lstm" else t_state
    (t_out * torch.tensor(upstream)).sum().backward(retain_graph=True)

    mx = minidl.tensor(x, requires_grad=True)
    outs, finals = [], []
    for direction, suffix in enumerate(["", "_reverse"]):
        params = [minidl.tensor(getattr(theirs, f"{name}_l0{suffix}").detach().numpy(),
                                requires_grad=True)
                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        out, h_n, _ = run_layer(kind, mx, minidl.tensor(h0[direction]),
                                minidl.tensor(c0[direction]), params, lengths=lengths,
                                reverse=direction == 1)
        outs.append(out)
        finals.append(h_n)
        (out * minidl.tensor(upstream[..., direction * hidden:(direction + 1) * hidden])
         ).sum().backward()
        for name, p in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), params):
            expected = getattr(theirs, f"{name}_l0{suffix}").grad.numpy()
            np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-4, atol=1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    got = np.concatenate([o.detach().numpy() for o in outs], axis=2)
    np.testing.assert_allclose(got, t_out.detach().numpy(), atol=tol)
    np.testing.assert_allclose(np.stack([h.detach().numpy() for h in finals]),
                               t_h.detach().numpy(), atol=tol)
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=tol * 10)
    assert got.dtype == dtype


# ---------------------------------------------------------------------- errors


def test_layer_errors_name_the_op_and_shapes():
    x = minidl.randn(4, 2, 3)
    h = minidl.zeros(2, 5)
    w_ih, w_hh = minidl.randn(20, 3), minidl.randn(20, 5)
    with pytest.raises(ValueError, match=r"lstm_layer: lengths must lie in \[1, 4\].*max 5"):
        lstm_layer(x, h, h, w_ih, w_hh, lengths=[5, 2])
    with pytest.raises(ValueError, match=r"lstm_layer: lengths must lie in \[1, 4\].*min 0"):
        lstm_layer(x, h, h, w_ih, w_hh, lengths=[0, 2])
    with pytest.raises(ValueError, match="one entry per sequence"):
        lstm_layer(x, h, h, w_ih, w_hh, lengths=[4, 2, 1])
    with pytest.raises(TypeError, match="lengths must be integers"):
        lstm_layer(x, h, h, w_ih, w_hh, lengths=[1.5, 2])
    with pytest.raises(ValueError, match=r"lstm_layer: weight_ih must have shape \(20, 3\)"):
        lstm_layer(x, h, h, minidl.randn(20, 4), w_hh)
    with pytest.raises(ValueError, match=r"gru_layer: weight_ih must have shape \(15, 3\)"):
        gru_layer(x, h, w_ih, minidl.randn(15, 5))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 5\), got \(3, 5\)"):
        rnn_layer(x, minidl.zeros(3, 5), minidl.randn(5, 3), minidl.randn(5, 5))
    with pytest.raises(ValueError, match=r"input must be 3-D .*got shape \(4, 3\)"):
        rnn_layer(minidl.randn(4, 3), h, minidl.randn(5, 3), minidl.randn(5, 5))
    with pytest.raises(TypeError, match="weight_ih has dtype float32 but the input has float64"):
        lstm_layer(x.double(), h.double(), h.double(), w_ih, w_hh.double())
    with pytest.raises(ValueError, match="both bias_ih and bias_hh"):
        lstm_layer(x, h, h, w_ih, w_hh, minidl.zeros(20))
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        rnn_layer(x, h, minidl.randn(5, 3), minidl.randn(5, 5), nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="input must be floating point"):
        lstm_layer(minidl.tensor(np.zeros((4, 2, 3), np.int64)), h, h, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"gru_layer: input has no time steps \(shape \(0, 2, 3\)"):
        gru_layer(minidl.randn(0, 2, 3), h, minidl.randn(15, 3), minidl.randn(15, 5))


def test_docstring_examples_run():
    import doctest

    import minidl.ops.recurrent as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
