"""RNN, LSTM, GRU and their cells against PyTorch 2.13.

Every case copies PyTorch's weights in through ``load_state_dict`` and compares the
output, the final states, the input and initial-state gradients and every parameter
gradient.  Also: state_dict keys and shapes, initialisation, repr, inter-layer dropout,
float32/float64, train/eval, and the argument errors.  Variable-length batches are in
test_rnn_packed.py.
"""

import itertools
import math
import warnings

import numpy as np
import pytest

import minidl
from minidl.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

torch = pytest.importorskip("torch")

CLASSES = {"RNN": (RNN, torch.nn.RNN), "LSTM": (LSTM, torch.nn.LSTM), "GRU": (GRU, torch.nn.GRU)}
CELLS = {"RNNCell": (RNNCell, torch.nn.RNNCell), "LSTMCell": (LSTMCell, torch.nn.LSTMCell),
         "GRUCell": (GRUCell, torch.nn.GRUCell)}


def torch_dtype(dtype):
    return getattr(torch, np.dtype(dtype).name)


def make_pair(kind, dtype, *args, **kwargs):
    """A PyTorch module and ours with PyTorch's weights loaded through load_state_dict."""
    ours_cls, theirs_cls = {**CLASSES, **CELLS}[kind]
    torch.manual_seed(0)
    theirs = theirs_cls(*args, **kwargs).to(torch_dtype(dtype))
    ours = ours_cls(*args, **kwargs, dtype=dtype)
    result = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    return ours, theirs


def tolerance(dtype):
    return 2e-5 if dtype == np.float32 else 1e-11


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def compare_run(ours, theirs, x, hx, dtype, rng):
    """Run both modules, backpropagate the same random weighting of every output, and
    compare outputs, states and all gradients."""
    tol = tolerance(dtype)
    mx = minidl.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    m_hx = t_hx = None
    if hx is not None:
        m_hx = tuple(minidl.tensor(h, requires_grad=True) for h in as_tuple(hx))
        t_hx = tuple(torch.tensor(h, requires_grad=True) for h in as_tuple(hx))
        if len(m_hx) == 1:
            m_hx, t_hx = m_hx[0], t_hx[0]
    m_out, t_out = ours(mx, m_hx), theirs(tx, t_hx)
    m_flat = [m_out[0]] + list(as_tuple(m_out[1])) if isinstance(m_out, tuple) else [m_out]
    t_flat = [t_out[0]] + list(as_tuple(t_out[1])) if isinstance(t_out, tuple) else [t_out]
    if isinstance(ours, (LSTMCell,)):
        m_flat, t_flat = list(m_out), list(t_out)
    m_loss, t_loss = 0, 0
    for m, t in zip(m_flat, t_flat):
        assert m.shape == tuple(t.shape)
        assert m.dtype == dtype
        np.testing.assert_allclose(m.detach().numpy(), t.detach().numpy(), atol=tol, rtol=tol)
        w = rng.standard_normal(m.shape).astype(dtype)
        m_loss = m_loss + (m * minidl.tensor(w)).sum()
        t_loss = t_loss + (t * torch.tensor(w)).sum()
    m_loss.backward()
    t_loss.backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=tol, rtol=tol)
    if hx is not None:
        for m, t in zip(as_tuple(m_hx), as_tuple(t_hx)):
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=tol, rtol=tol)
    theirs_params = dict(theirs.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert list(ours_params) == list(theirs_params)
    for name, p in ours_params.items():
        assert p.grad is not None, name
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(),
                                   atol=tol * 5, rtol=tol * 5, err_msg=name)
    return m_out


# ---------------------------------------------------------------------- parity grid

GRID = [
    # kind, num_layers, bidirectional, batch_first, bias, with_hx, extra
    ("LSTM", 1, False, False, True, False, {}),
    ("LSTM", 2, True, True, True, True, {}),
    ("LSTM", 2, False, False, False, True, {}),
    ("LSTM", 1, True, False, True, True, {}),
    ("GRU", 1, False, True, True, True, {}),
    ("GRU", 2, True, False, True, False, {}),
    ("GRU", 2, True, True, False, True, {}),
    ("RNN", 1, False, False, True, True, {"nonlinearity": "tanh"}),
    ("RNN", 2, True, True, True, False, {"nonlinearity": "relu"}),
    ("RNN", 2, True, False, False, True, {"nonlinearity": "tanh"}),
    ("RNN", 1, True, True, True, True, {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", GRID, ids=lambda c: "-".join(map(str, c[:6])))
def test_module_matches_torch(case, dtype):
    kind, layers, bidirectional, batch_first, bias, with_hx, extra = case
    rng = np.random.default_rng(hash(case[:6]) % 2**32)
    steps, batch, features, hidden = 5, 3, 4, 6
    ours, theirs = make_pair(kind, dtype, features, hidden, num_layers=layers, bias=bias,
                             batch_first=batch_first, bidirectional=bidirectional, **extra)
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = rng.standard_normal(shape).astype(dtype)
    hx = None
    if with_hx:
        state_shape = (layers * (2 if bidirectional else 1), batch, hidden)
        hx = tuple(rng.standard_normal(state_shape).astype(dtype) * 0.5
                   for _ in range(2 if kind == "LSTM" else 1))
    compare_run(ours, theirs, x, hx, dtype, rng)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("with_hx", [False, True])
def test_unbatched_input_matches_torch(kind, with_hx):
    rng = np.random.default_rng(5)
    ours, theirs = make_pair(kind, np.float64, 3, 4, num_layers=2, bidirectional=True)
    x = rng.standard_normal((6, 3))
    hx = None
    if with_hx:
        hx = tuple(rng.standard_normal((4, 4)) for _ in range(2 if kind == "LSTM" else 1))
    out = compare_run(ours, theirs, x, hx, np.float64, rng)
    assert out[0].shape == (6, 8)


def test_batch_first_does_not_change_the_state_layout():
    ours = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    out, (h_n, c_n) = ours(minidl.randn(5, 7, 3))
    assert out.shape == (5, 7, 8)
    assert h_n.shape == c_n.shape == (4, 5, 4)


def test_h_n_holds_the_last_and_first_steps_of_the_two_directions():
    """h_n[-2] is the forward state after the last step, h_n[-1] the reverse state after
    step 0: they are the two halves of output[-1] and output[0]."""
    ours = GRU(3, 4, num_layers=2, bidirectional=True)
    with minidl.no_grad():
        out, h_n = ours(minidl.randn(6, 2, 3))
    np.testing.assert_array_equal(h_n.numpy()[2], out.numpy()[-1, :, :4])
    np.testing.assert_array_equal(h_n.numpy()[3], out.numpy()[0, :, 4:])


# ---------------------------------------------------------------------- cells


CELL_GRID = [
    ("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("RNNCell", {"bias": False}),
    ("LSTMCell", {}), ("LSTMCell", {"bias": False}),
    ("GRUCell", {}), ("GRUCell", {"bias": False}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_hx", [True, False])
@pytest.mark.parametrize("kind,kwargs", CELL_GRID, ids=[f"{k}-{v}" for k, v in CELL_GRID])
def test_cell_matches_torch(kind, kwargs, dtype, batched, with_hx):
    rng = np.random.default_rng(3)
    ours, theirs = make_pair(kind, dtype, 5, 4, **kwargs)
    x = rng.standard_normal((3, 5) if batched else (5,)).astype(dtype)
    hx = None
    if with_hx:
        state_shape = (3, 4) if batched else (4,)
        hx = tuple(rng.standard_normal(state_shape).astype(dtype)
                   for _ in range(2 if kind == "LSTMCell" else 1))
    out = compare_run(ours, theirs, x, hx, dtype, rng)
    first = out[0] if kind == "LSTMCell" else out
    assert first.shape == ((3, 4) if batched else (4,))


def test_cell_unrolled_equals_layer():
    """An LSTMCell stepped over time gives the LSTM's outputs (same weights)."""
    layer = LSTM(3, 5, dtype=np.float64)
    cell = LSTMCell(3, 5, dtype=np.float64)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = minidl.randn(4, 2, 3, dtype=np.float64)
    with minidl.no_grad():
        out, (h_n, c_n) = layer(x)
        h = c = minidl.zeros(2, 5, dtype=np.float64)
        for t in range(4):
            h, c = cell(x[t], (h, c))
            np.testing.assert_allclose(h.numpy(), out.numpy()[t], atol=1e-14)
    np.testing.assert_allclose(c.numpy(), c_n.numpy()[0], atol=1e-14)


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("layers,bidirectional,bias", [(1, False, True), (2, True, True),
                                                        (3, True, False)])
def test_state_dict_keys_shapes_and_repr_equal_torch(kind, layers, bidirectional, bias):
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, bias=bias, batch_first=True)
    ours, theirs = CLASSES[kind][0](7, 5, **kwargs), CLASSES[kind][1](7, 5, **kwargs)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key, value in theirs_sd.items():
        assert tuple(ours_sd[key].shape) == tuple(value.shape), key
    assert repr(ours) == repr(theirs)
    assert len(ours.all_weights) == layers * (2 if bidirectional else 1)


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("kwargs", [{}, {"bias": False}])
def test_cell_state_dict_and_repr_equal_torch(kind, kwargs):
    ours, theirs = CELLS[kind][0](6, 3, **kwargs), CELLS[kind][1](6, 3, **kwargs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        assert tuple(ours.state_dict()[key].shape) == tuple(value.shape)
    assert repr(ours) == repr(theirs)
    assert repr(RNNCell(6, 3, nonlinearity="relu")) == repr(
        torch.nn.RNNCell(6, 3, nonlinearity="relu"))


def test_repr_shows_dropout_like_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in [{"dropout": 0.5, "num_layers": 2}, {"dropout": 0.25}]:
            assert repr(LSTM(3, 4, **kwargs)) == repr(torch.nn.LSTM(3, 4, **kwargs))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell])
def test_init_is_uniform_within_one_over_sqrt_hidden_and_seeded(cls):
    hidden = 64
    minidl.manual_seed(0)
    a = cls(16, hidden)
    minidl.manual_seed(0)
    b = cls(16, hidden)
    bound = 1 / math.sqrt(hidden)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        values = p.detach().numpy()
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.9 * bound, name  # really spread over the interval
        np.testing.assert_array_equal(values, q.detach().numpy())
    c = cls(16, hidden)
    assert not np.array_equal(next(iter(c.parameters())).detach().numpy(),
                              next(iter(a.parameters())).detach().numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_module_casts(dtype):
    model = GRU(3, 4, num_layers=2, dtype=dtype)
    out, h_n = model(minidl.randn(5, 2, 3, dtype=dtype))
    assert out.dtype == dtype and h_n.dtype == dtype
    other = np.float64 if dtype == np.float32 else np.float32
    model.to(other)
    out, h_n = model(minidl.randn(5, 2, 3, dtype=other))
    assert out.dtype == other


# ---------------------------------------------------------------------- dropout


def test_inter_layer_dropout_train_eval_and_seed():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LSTM(4, 8, num_layers=3, dropout=0.5)
    plain = LSTM(4, 8, num_layers=3)
    plain.load_state_dict(model.state_dict())
    x = minidl.randn(6, 5, 4)

    reference, _ = plain(x)
    minidl.manual_seed(1)
    first, _ = model(x)
    minidl.manual_seed(1)
    again, _ = model(x)
    minidl.manual_seed(2)
    other, _ = model(x)
    assert not np.allclose(first.detach().numpy(), reference.detach().numpy())
    np.testing.assert_array_equal(first.detach().numpy(), again.detach().numpy())
    assert not np.allclose(first.detach().numpy(), other.detach().numpy())

    model.eval()
    evaluated, _ = model(x)
    np.testing.assert_array_equal(evaluated.detach().numpy(), reference.detach().numpy())


def test_dropout_is_not_applied_after_the_last_layer():
    """With one layer, dropout has nothing to act on (PyTorch warns and does nothing)."""
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        model = GRU(3, 4, dropout=0.9)
    plain = GRU(3, 4)
    plain.load_state_dict(model.state_dict())
    x = minidl.randn(5, 2, 3)
    np.testing.assert_array_equal(model(x)[0].detach().numpy(), plain(x)[0].detach().numpy())


def test_dropout_gradients_flow_through_the_mask():
    model = RNN(3, 4, num_layers=2, dropout=0.5, dtype=np.float64)
    x = minidl.randn(5, 2, 3, dtype=np.float64, requires_grad=True)
    minidl.manual_seed(3)
    out, _ = model(x)
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).sum() > 0
    assert all(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------------- training works


def test_bilstm_tagger_learns_a_toy_task():
    """A per-position tagger: the label is whether the previous symbol was 1 (needs the
    forward direction) or the next was 2 (needs the reverse one)."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 3, size=(32, 12))
    previous = np.pad(tokens, ((0, 0), (1, 0)))[:, :-1]
    following = np.pad(tokens, ((0, 0), (0, 1)))[:, 1:]
    labels = ((previous == 1) | (following == 2)).astype(np.int64)
    x = minidl.tensor(np.eye(3, dtype=np.float32)[tokens])
    y = minidl.tensor(labels.reshape(-1))

    minidl.manual_seed(0)
    lstm = LSTM(3, 12, bidirectional=True, batch_first=True)
    head = minidl.nn.Linear(24, 2)
    params = list(lstm.parameters()) + list(head.parameters())
    optimizer = minidl.optim.Adam(params, lr=0.05)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        out, _ = lstm(x)
        loss = minidl.nn.functional.cross_entropy(head(out).reshape(-1, 2), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]


# ---------------------------------------------------------------------- errors


def test_errors_name_the_layer_and_shapes():
    lstm = LSTM(4, 6, num_layers=2)
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to input_size. "
                                           r"Expected 4, got 5 \(input shape \(5, 3, 5\)\)"):
        lstm(minidl.randn(5, 3, 5))
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D instead"):
        lstm(minidl.randn(5, 3, 4, 1))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[0\] size \(2, 3, 6\), "
                                           r"got \[2, 2, 6\]"):
        lstm(minidl.randn(5, 3, 4), (minidl.zeros(2, 2, 6), minidl.zeros(2, 3, 6)))
    with pytest.raises(RuntimeError, match=r"LSTM: Expected hidden\[1\] size \(2, 3, 6\)"):
        lstm(minidl.randn(5, 3, 4), (minidl.zeros(2, 3, 6), minidl.zeros(2, 3, 5)))
    with pytest.raises(RuntimeError, match="For unbatched 2-D input, hx should also be 2-D"):
        lstm(minidl.randn(5, 4), (minidl.zeros(2, 3, 6), minidl.zeros(2, 3, 6)))
    with pytest.raises(RuntimeError, match="For batched 3-D input, hx should also be 3-D"):
        lstm(minidl.randn(5, 3, 4), (minidl.zeros(2, 6), minidl.zeros(2, 6)))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        lstm(minidl.randn(5, 3, 4), minidl.zeros(2, 3, 6))
    with pytest.raises(RuntimeError, match=r"GRU: Expected hidden size \(1, 3, 6\), got "
                                           r"\[2, 3, 6\]"):
        GRU(4, 6)(minidl.randn(5, 3, 4), minidl.zeros(2, 3, 6))
    with pytest.raises(TypeError, match="RNN: input dtype float64 does not match the "
                                        "parameters' dtype float32"):
        RNN(4, 6)(minidl.randn(5, 3, 4, dtype=np.float64))
    with pytest.raises(RuntimeError, match=r"GRU: Expected sequence length to be larger than 0 "
                                           r"\(input shape \(2, 0, 4\), batch_first=True\)"):
        GRU(4, 6, batch_first=True)(minidl.randn(2, 0, 4))
    with pytest.raises(TypeError, match="RNN: input must be floating point"):
        RNN(4, 6)(minidl.tensor(np.zeros((5, 3, 4), np.int64)))


def test_cell_errors():
    cell = LSTMCell(4, 6)
    with pytest.raises(RuntimeError, match="LSTMCell: input has inconsistent input_size: got 5 "
                                           "expected 4"):
        cell(minidl.randn(3, 5))
    with pytest.raises(RuntimeError, match="Input batch size 3 doesn't match hidden0 batch "
                                           "size 2"):
        cell(minidl.randn(3, 4), (minidl.zeros(2, 6), minidl.zeros(3, 6)))
    with pytest.raises(RuntimeError, match="hidden1 has inconsistent hidden_size: got 5"):
        cell(minidl.randn(3, 4), (minidl.zeros(3, 6), minidl.zeros(3, 5)))
    with pytest.raises(ValueError, match="LSTMCell: Expected input to be 1D or 2D, got 3D"):
        cell(minidl.randn(3, 4, 1))
    with pytest.raises(ValueError, match="GRUCell: Expected hidden0 to be 2D like the input"):
        GRUCell(4, 6)(minidl.randn(3, 4), minidl.zeros(6))


@pytest.mark.parametrize("make,error,match", [
    (lambda: LSTM(4, 6, proj_size=2), NotImplementedError, "proj_size=2 is not supported"),
    (lambda: GRU(4, 6, proj_size=2), ValueError, "only supported for LSTM"),
    (lambda: RNN(4, 6, nonlinearity="gelu"), ValueError, "Unknown nonlinearity 'gelu'"),
    (lambda: RNN(4, 6, 1, "sigmoid"), ValueError, "Unknown nonlinearity 'sigmoid'"),
    (lambda: RNNCell(4, 6, nonlinearity="gelu"), ValueError, "Unknown nonlinearity"),
    (lambda: LSTM(4, 6, dropout=1.5), ValueError, "dropout should be a number in range"),
    (lambda: LSTM(4, 0), ValueError, "hidden_size must be greater than zero"),
    (lambda: LSTM(4, 6, num_layers=0), ValueError, "num_layers must be greater than zero"),
    (lambda: GRU(4.0, 6), TypeError, "input_size should be of type int"),
    (lambda: GRU(4, 6, bias=1), TypeError, "bias should be of type bool"),
])
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_rnn_positional_nonlinearity_like_torch():
    ours, theirs = RNN(3, 4, 2, "relu", False), torch.nn.RNN(3, 4, 2, "relu", False)
    assert ours.nonlinearity == theirs.nonlinearity == "relu"
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)


def test_every_direction_and_layer_gets_distinct_parameters():
    model = LSTM(3, 4, num_layers=2, bidirectional=True)
    arrays = [p.detach().numpy() for p in model.parameters()]
    for a, b in itertools.combinations(range(len(arrays)), 2):
        if arrays[a].shape == arrays[b].shape:
            assert not np.array_equal(arrays[a], arrays[b])


def test_docstring_examples_run():
    import doctest

    import minidl.nn.rnn as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
