"""Variable-length batches: minidl.nn.utils.rnn against torch.nn.utils.rnn, and RNN/LSTM/GRU
on packed sequences against PyTorch's packed sequences (unequal lengths, both directions,
two layers, enforce_sorted True and False, initial states), with every gradient.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.nn.rnn import GRU, LSTM, RNN
from minidl.nn.utils.rnn import (
    PackedSequence,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)

torch = pytest.importorskip("torch")
trnn = torch.nn.utils.rnn


def arr(t):
    return t.detach().numpy()


def index_or_none(t):
    return None if t is None else arr(t).tolist()


def assert_packed_equal(ours, theirs, atol=0.0):
    assert isinstance(ours, PackedSequence)
    np.testing.assert_allclose(arr(ours.data), arr(theirs.data), atol=atol, rtol=atol)
    assert arr(ours.batch_sizes).tolist() == theirs.batch_sizes.tolist()
    assert ours.batch_sizes.dtype == np.int64
    assert index_or_none(ours.sorted_indices) == index_or_none(theirs.sorted_indices)
    assert index_or_none(ours.unsorted_indices) == index_or_none(theirs.unsorted_indices)


# ---------------------------------------------------------------------- pack / pad


@st.composite
def padded_batches(draw):
    batch = draw(st.integers(1, 5))
    steps = draw(st.integers(1, 6))
    # distinct lengths when possible, so the sorted order is the same as PyTorch's
    # (its sort is not stable for ties)
    pool = list(range(1, steps + 1))
    if batch <= steps:
        lengths = draw(st.permutations(pool))[:batch]
    else:
        lengths = draw(st.lists(st.sampled_from(pool), min_size=batch, max_size=batch))
        lengths = sorted(lengths, reverse=True)
    trailing = draw(st.sampled_from([(), (2,), (2, 3)]))
    return steps, batch, trailing, lengths


@given(case=padded_batches(), batch_first=st.booleans(), seed=st.integers(0, 100))
def test_pack_pad_round_trip_matches_torch(case, batch_first, seed):
    steps, batch, trailing, lengths = case
    enforce_sorted = list(lengths) == sorted(lengths, reverse=True)
    shape = ((batch, steps) if batch_first else (steps, batch)) + trailing
    x = np.random.default_rng(seed).standard_normal(shape)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)

    ours = pack_padded_sequence(mx, lengths, batch_first=batch_first,
                                enforce_sorted=enforce_sorted)
    theirs = trnn.pack_padded_sequence(tx, lengths, batch_first=batch_first,
                                       enforce_sorted=enforce_sorted)
    assert_packed_equal(ours, theirs)

    total = steps + 1
    padded, out_lengths = pad_packed_sequence(ours, batch_first=batch_first, padding_value=-3.0,
                                              total_length=total)
    t_padded, t_lengths = trnn.pad_packed_sequence(theirs, batch_first=batch_first,
                                                   padding_value=-3.0, total_length=total)
    np.testing.assert_array_equal(arr(padded), arr(t_padded))
    assert arr(out_lengths).tolist() == t_lengths.tolist()
    assert out_lengths.dtype == np.int64

    # gradients flow through pack and pad (and not into the padding)
    weight = np.random.default_rng(seed + 1).standard_normal(padded.shape)
    (padded * minidl.tensor(weight)).sum().backward()
    (t_padded * torch.tensor(weight)).sum().backward()
    np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())


def test_pad_packed_sequence_default_length_and_order():
    x = minidl.arange(15.0).reshape(5, 3)
    packed = pack_padded_sequence(x, [3, 5, 1], enforce_sorted=False)
    theirs = trnn.pack_padded_sequence(torch.arange(15.0).reshape(5, 3), [3, 5, 1],
                                       enforce_sorted=False)
    assert_packed_equal(packed, theirs)
    padded, lengths = pad_packed_sequence(packed)
    t_padded, t_lengths = trnn.pad_packed_sequence(theirs)
    np.testing.assert_array_equal(padded.numpy(), t_padded.numpy())
    assert lengths.tolist() == [3, 5, 1]


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((n, 2)) for n in (3, 5, 1)]
    ours = [minidl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    padded = pad_sequence(ours, batch_first=batch_first, padding_value=7.0,
                          padding_side=padding_side)
    t_padded = trnn.pad_sequence(theirs, batch_first=batch_first, padding_value=7.0,
                                 padding_side=padding_side)
    np.testing.assert_array_equal(arr(padded), arr(t_padded))
    weight = rng.standard_normal(padded.shape)
    (padded * minidl.tensor(weight)).sum().backward()
    (t_padded * torch.tensor(weight)).sum().backward()
    for m, t in zip(ours, theirs):
        np.testing.assert_array_equal(m.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_and_unpack_match_torch(enforce_sorted):
    rng = np.random.default_rng(1)
    lengths = [4, 3, 1] if enforce_sorted else [1, 4, 3]
    arrays = [rng.standard_normal((n, 3)) for n in lengths]
    ours = pack_sequence([minidl.tensor(a) for a in arrays], enforce_sorted=enforce_sorted)
    theirs = trnn.pack_sequence([torch.tensor(a) for a in arrays],
                                enforce_sorted=enforce_sorted)
    assert_packed_equal(ours, theirs)
    for seq, a in zip(unpack_sequence(ours), arrays):
        np.testing.assert_array_equal(seq.numpy(), a)
    padded = pad_sequence([minidl.tensor(a) for a in arrays], batch_first=True)
    for seq, a in zip(unpad_sequence(padded, lengths, batch_first=True), arrays):
        np.testing.assert_array_equal(seq.numpy(), a)


def test_packed_sequence_is_a_named_tuple_and_casts():
    packed = pack_padded_sequence(minidl.randn(4, 2, 3), [4, 2])
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    assert data.shape == (6, 3) and batch_sizes.tolist() == [2, 2, 1, 1]
    assert sorted_indices is None and unsorted_indices is None
    double = packed.double()
    assert double.data.dtype == np.float64 and double.batch_sizes is packed.batch_sizes
    assert packed.float() is packed
    assert not packed.is_cuda
    rebuilt = PackedSequence(data, batch_sizes, minidl.tensor([1, 0]))
    assert rebuilt.unsorted_indices.tolist() == [1, 0]


# ---------------------------------------------------------------------- errors


def test_pack_errors():
    x = minidl.randn(5, 3, 4)
    with pytest.raises(ValueError, match=r"pack_padded_sequence: sequence 1 has length 6, longer "
                                         r"than the 5 time steps of the input \(input shape "
                                         r"\(5, 3, 4\), batch_first=False\)"):
        pack_padded_sequence(x, [5, 6, 2], enforce_sorted=False)
    with pytest.raises(ValueError, match="longer than the 3 time steps"):
        pack_padded_sequence(x, [4, 3, 3, 2, 1], batch_first=True)
    with pytest.raises(RuntimeError, match="`lengths` array must be sorted in decreasing order "
                                           "when `enforce_sorted` is True"):
        pack_padded_sequence(x, [3, 5, 1])
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        pack_padded_sequence(x, [5, 3, 0])
    with pytest.raises(RuntimeError, match=r"Expected `len\(lengths\)` to be equal to "
                                           r"batch_size, but got 2 \(batch_size=3"):
        pack_padded_sequence(x, [5, 3])
    with pytest.raises(TypeError, match="lengths must be integers"):
        pack_padded_sequence(x, [5.5, 3, 1])
    packed = pack_padded_sequence(x, [5, 3, 1])
    with pytest.raises(ValueError, match="Expected total_length to be at least the length of the "
                                         "longest sequence in input, but got total_length=3 and "
                                         "max sequence length being 5"):
        pad_packed_sequence(packed, total_length=3)
    with pytest.raises(ValueError, match="same trailing dimensions"):
        pad_sequence([minidl.ones(3, 2), minidl.ones(5, 3)])
    with pytest.raises(ValueError, match="padding_side"):
        pad_sequence([minidl.ones(3, 2)], padding_side="middle")


def test_rnn_rejects_packed_data_of_the_wrong_size():
    packed = pack_padded_sequence(minidl.randn(5, 3, 4), [5, 3, 1])
    with pytest.raises(RuntimeError, match=r"GRU: input.size\(-1\) must be equal to input_size. "
                                           r"Expected 3, got 4 \(input shape \(9, 4\)\)"):
        GRU(3, 2)(packed)


# ---------------------------------------------------------------------- RNNs on packed input


CASES = [
    # kind, layers, bidirectional, enforce_sorted, batch_first, with_hx, extra
    ("LSTM", 2, True, False, False, True, {}),
    ("LSTM", 2, True, True, True, False, {}),
    ("LSTM", 1, False, False, True, True, {}),
    ("GRU", 2, True, False, True, True, {}),
    ("GRU", 1, True, True, False, False, {}),
    ("RNN", 2, True, False, False, True, {"nonlinearity": "tanh"}),
    ("RNN", 1, True, False, True, False, {"nonlinearity": "relu"}),
]
MODULES = {"LSTM": (LSTM, torch.nn.LSTM), "GRU": (GRU, torch.nn.GRU),
           "RNN": (RNN, torch.nn.RNN)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:6])))
def test_packed_rnn_matches_torch(case, dtype):
    kind, layers, bidirectional, enforce_sorted, batch_first, with_hx, extra = case
    steps, features, hidden = 7, 3, 5
    lengths = [7, 5, 4, 2, 1] if enforce_sorted else [4, 7, 1, 5, 2]
    batch = len(lengths)
    rng = np.random.default_rng(abs(hash(case[:6])) % 2**32)
    tol = 2e-5 if dtype == np.float32 else 1e-11
    torch_dtype = getattr(torch, np.dtype(dtype).name)

    torch.manual_seed(0)
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first,
                  **extra)
    theirs = MODULES[kind][1](features, hidden, **kwargs).to(torch_dtype)
    ours = MODULES[kind][0](features, hidden, dtype=dtype, **kwargs)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = rng.standard_normal(shape).astype(dtype)
    mx, tx = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    m_in = pack_padded_sequence(mx, lengths, batch_first=batch_first,
                                enforce_sorted=enforce_sorted)
    t_in = trnn.pack_padded_sequence(tx, lengths, batch_first=batch_first,
                                     enforce_sorted=enforce_sorted)
    m_hx = t_hx = None
    states = []
    if with_hx:
        state_shape = (layers * (2 if bidirectional else 1), batch, hidden)
        states = [rng.standard_normal(state_shape).astype(dtype)
                  for _ in range(2 if kind == "LSTM" else 1)]
        m_states = [minidl.tensor(s, requires_grad=True) for s in states]
        t_states = [torch.tensor(s, requires_grad=True) for s in states]
        m_hx = tuple(m_states) if kind == "LSTM" else m_states[0]
        t_hx = tuple(t_states) if kind == "LSTM" else t_states[0]

    m_out, m_state = ours(m_in, m_hx)
    t_out, t_state = theirs(t_in, t_hx)
    assert_packed_equal(m_out, t_out, atol=tol)
    m_padded, m_lengths = pad_packed_sequence(m_out, batch_first=batch_first)
    t_padded, t_lengths = trnn.pad_packed_sequence(t_out, batch_first=batch_first)
    np.testing.assert_allclose(arr(m_padded), arr(t_padded), atol=tol, rtol=tol)
    assert arr(m_lengths).tolist() == t_lengths.tolist() == lengths
    m_finals = list(m_state) if kind == "LSTM" else [m_state]
    t_finals = list(t_state) if kind == "LSTM" else [t_state]
    for m, t in zip(m_finals, t_finals):
        assert m.shape == tuple(t.shape)
        np.testing.assert_allclose(arr(m), arr(t), atol=tol, rtol=tol)

    # one loss through the padded output and every final state
    m_loss, t_loss = 0, 0
    for m, t in [(m_padded, t_padded)] + list(zip(m_finals, t_finals)):
        w = rng.standard_normal(m.shape).astype(dtype)
        m_loss = m_loss + (m * minidl.tensor(w)).sum()
        t_loss = t_loss + (t * torch.tensor(w)).sum()
    m_loss.backward()
    t_loss.backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=tol, rtol=tol)
    if with_hx:
        for m, t in zip(m_states, t_states):
            np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), atol=tol, rtol=tol)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(),
                                   atol=tol * 5, rtol=tol * 5, err_msg=name)


def test_padding_changes_nothing():
    """Garbage in the padded steps changes neither the outputs nor the final states."""
    model = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 3))
    lengths = [6, 4, 2]
    noisy = x.copy()
    for b, n in enumerate(lengths):
        noisy[n:, b] = rng.standard_normal(noisy[n:, b].shape) * 100
    with minidl.no_grad():
        clean_out, (clean_h, clean_c) = model(pack_padded_sequence(minidl.tensor(x), lengths))
        noisy_out, (noisy_h, noisy_c) = model(pack_padded_sequence(minidl.tensor(noisy), lengths))
    np.testing.assert_array_equal(clean_out.data.numpy(), noisy_out.data.numpy())
    np.testing.assert_array_equal(clean_h.numpy(), noisy_h.numpy())
    np.testing.assert_array_equal(clean_c.numpy(), noisy_c.numpy())


def test_packed_dropout_runs_and_eval_is_deterministic():
    model = GRU(3, 4, num_layers=2, dropout=0.5)
    packed = pack_padded_sequence(minidl.randn(5, 3, 3), [5, 2, 3], enforce_sorted=False)
    minidl.manual_seed(0)
    a = model(packed)[0].data
    minidl.manual_seed(0)
    b = model(packed)[0].data
    np.testing.assert_array_equal(arr(a), arr(b))
    model.eval()
    np.testing.assert_array_equal(arr(model(packed)[0].data), arr(model(packed)[0].data))


def test_docstring_examples_run():
    import doctest

    import minidl.nn.utils.rnn as module

    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
