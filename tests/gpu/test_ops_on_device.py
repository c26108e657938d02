"""Every op family on "cuda" against the same op on the CPU: forward values, gradients, and
that everything computed stays on the device.

Run with the fake CuPy (everywhere) this checks that the op's array code is ``xp``-generic;
run with CuPy on a GPU it checks the CUDA results (see ``conftest.py``).  The CPU result is
the oracle; inputs are seeded host arrays copied to each device.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
import minidl.nn.functional as F
from minidl import nn

RTOL = 1e-4


def _inputs(specs, seed=0):
    """Host arrays for ``specs``: ``(shape, kind)`` with kind "f" (float, differentiable),
    "p" (positive float), "u" (float in (0, 1)), "iK" (int64 in [0, K)), "b" (bool)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for shape, kind in specs:
        if kind == "f":
            arrays.append(rng.standard_normal(shape).astype(np.float32))
        elif kind == "p":
            arrays.append(rng.uniform(0.5, 2.0, shape).astype(np.float32))
        elif kind == "u":
            arrays.append(rng.uniform(0.05, 0.95, shape).astype(np.float32))
        elif kind.startswith("i"):
            arrays.append(rng.integers(0, int(kind[1:]), shape).astype(np.int64))
        elif kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:  # pragma: no cover - a typo in a case
            raise ValueError(kind)
    return arrays


def _flat_outputs(out):
    if isinstance(out, minidl.Tensor):
        return [out]
    result = []
    for item in out:
        result.extend(_flat_outputs(item) if not isinstance(item, minidl.Tensor) else [item])
    return result


def _run(fn, arrays, specs, device):
    """Outputs and input gradients of ``fn`` on ``device``, as host arrays, plus the
    outputs and gradients themselves (to check where they live)."""
    minidl.manual_seed(7)  # dropout and module initialisation draw the same numbers
    tensors = []
    for array, (_, kind) in zip(arrays, specs):
        t = minidl.tensor(array, device=device)
        if kind in ("f", "p", "u"):
            t.requires_grad_()
        tensors.append(t)
    outputs = _flat_outputs(fn(device, *tensors))
    # one scalar from every float output, with fixed weights, so every output gets a
    # gradient that is not all ones
    rng = np.random.default_rng(99)
    loss = None
    for out in outputs:
        if out.dtype.kind == "f" and out.requires_grad:
            weight = minidl.tensor(rng.standard_normal(out.shape).astype(out.dtype),
                                   device=device)
            term = (out * weight).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()
    grads = [t.grad for t in tensors if t.requires_grad]
    return outputs, grads


def _host(t):
    return np.asarray(t.detach().cpu().numpy())


def _assert_close(got, want, what):
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(scale, 1e-3),
                               err_msg=what)


def _lstm(d, x):
    return nn.LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True).to(d)(x)


def _gru(d, x):
    return nn.GRU(3, 4, bidirectional=True).to(d)(x)


def _rnn(d, x):
    return nn.RNN(3, 4, nonlinearity="relu").to(d)(x)


def _packed_lstm(d, x):
    lengths = minidl.tensor([5, 3, 2])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True)
    out, (h, c) = nn.LSTM(3, 4, batch_first=True).to(d)(packed)
    padded, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    return padded, h, c


def _cells(d, x, h):
    lstm = nn.LSTMCell(3, 4).to(d)
    gru = nn.GRUCell(3, 4).to(d)
    return lstm(x, (h, h)), gru(x, h)


def _batchnorm_train_and_eval(d, x):
    bn = nn.BatchNorm2d(3).to(d)
    y = bn(x)
    bn.eval()
    return y, bn(x), bn.running_mean, bn.running_var


CASES = {
    # elementwise and comparisons
    "arith": (lambda d, a, b: (a + b, a - b, a * b, a / (b.abs() + 1), -a, a ** 2, 2.0 ** a,
                               (a > b), a.eq(b), a.maximum(b), a.clamp(-0.5, 0.5)),
              [((3, 4), "f"), ((4,), "f")]),
    "unary": (lambda d, p: (p.exp(), p.log(), p.sqrt(), p.log1p(), p.sin(), p.cos(),
                            p.reciprocal(), p.rsqrt(), p.sign(), p.square()),
              [((2, 5), "p")]),
    "where": (lambda d, c, a, b: minidl.where(c, a, b), [((3, 4), "b"), ((3, 4), "f"),
                                                         ((4,), "f")]),
    "masked_fill": (lambda d, a, m: a.masked_fill(m, -1.0), [((3, 4), "f"), ((3, 4), "b")]),
    # reductions
    "reduce": (lambda d, a: (a.sum(), a.mean(1), a.max(1)[0], a.max(1)[1], a.amin(0),
                             a.var(1), a.std(), a.logsumexp(1), a.argmax(1), a.prod(0),
                             a.norm(), a.norm(1, dim=1)),
               [((4, 5), "f")]),
    # linear algebra
    "matmul": (lambda d, a, b, c: (a @ b, minidl.bmm(c, c.transpose(1, 2)), a.mm(b)),
               [((3, 4), "f"), ((4, 5), "f"), ((2, 3, 4), "f")]),
    "linear": (lambda d, x, w, b: F.linear(x, w, b), [((3, 4), "f"), ((5, 4), "f"),
                                                        ((5,), "f")]),
    # shape
    "shape": (lambda d, a: (a.reshape(6, 4), a.permute(2, 0, 1), a.transpose(0, 1), a.T,
                            a.unsqueeze(0).squeeze(0), a.flatten(1), a.flip([1]),
                            a.roll(1, 2), a.repeat(2, 1, 1), a.expand(2, 2, 3, 4),
                            a[:, 1:], a[0, ::2]),
              [((2, 3, 4), "f")]),
    "cat_stack_split": (lambda d, a, b: (minidl.cat([a, b], 0), minidl.stack([a, b], 1),
                                         *a.split(2, dim=1), *b.chunk(2, 1),
                                         *minidl.unbind(a, 0)),
                        [((2, 4), "f"), ((2, 4), "f")]),
    "advanced_index": (lambda d, a, i: (a[i], a[:, i], a[a > 0], a[[0, 0, 1]]),
                       [((4, 5), "f"), ((3,), "i4")]),
    "pad": (lambda d, a: (F.pad(a, (1, 2)), F.pad(a, (1, 1, 2, 0), value=0.5),
                          F.pad(a, (1, 1, 1, 1), mode="reflect"),
                          F.pad(a, (2, 1, 1, 2), mode="replicate")),
            [((1, 2, 4, 5), "f")]),
    # activations
    "activations": (lambda d, a: (F.relu(a), F.leaky_relu(a, 0.1), F.elu(a), F.gelu(a),
                                  F.gelu(a, approximate="tanh"), F.sigmoid(a),
                                  F.logsigmoid(a), F.tanh(a), F.softplus(a), F.silu(a),
                                  F.hardtanh(a), F.relu6(a * 4), F.softmax(a, 1),
                                  F.log_softmax(a, -1)),
                    [((3, 6), "f")]),
    # convolution
    "conv1d": (lambda d, x, w, b: (F.conv1d(x, w, b, padding=2),
                                   F.conv1d(x, w, None, stride=2, dilation=2)),
               [((2, 4, 11), "f"), ((6, 4, 3), "f"), ((6,), "f")]),
    "conv2d": (lambda d, x, w, b: (F.conv2d(x, w, b, padding=1),
                                   F.conv2d(x, w, b, stride=2),
                                   F.conv2d(x, w[:, :2], None, groups=2)),
               [((2, 4, 7, 6), "f"), ((6, 4, 3, 3), "f"), ((6,), "f")]),
    "conv_transpose": (lambda d, x1, w1, x2, w2: (
        F.conv_transpose1d(x1, w1, stride=2, padding=1),
        F.conv_transpose2d(x2, w2, stride=2, output_padding=1)),
        [((2, 3, 5), "f"), ((3, 4, 3), "f"), ((1, 3, 4, 4), "f"), ((3, 2, 3, 3), "f")]),
    # pooling
    "pool": (lambda d, x1, x2: (F.max_pool1d(x1, 3, 2, 1), F.avg_pool1d(x1, 2),
                                F.max_pool2d(x2, 2), F.avg_pool2d(x2, 3, 1, 1),
                                F.max_pool2d(x2, 2, return_indices=True)[1],
                                F.adaptive_avg_pool1d(x1, 4), F.adaptive_max_pool1d(x1, 3),
                                F.adaptive_avg_pool2d(x2, (2, 3)),
                                F.adaptive_max_pool2d(x2, 2), F.global_max_pool1d(x1),
                                F.global_avg_pool1d(x1), F.global_max_pool2d(x2),
                                F.global_avg_pool2d(x2)),
             [((2, 3, 9), "f"), ((2, 3, 6, 7), "f")]),
    # normalisation
    "batch_norm": (_batchnorm_train_and_eval, [((4, 3, 5, 2), "f")]),
    "batch_norm1d": (lambda d, x: nn.BatchNorm1d(5).to(d)(x), [((6, 5), "f")]),
    "layer_group_norm": (lambda d, x: (F.layer_norm(x, (4, 5)), nn.LayerNorm(5).to(d)(x),
                                       nn.GroupNorm(2, 4).to(d)(x)),
                         [((3, 4, 5), "f")]),
    # dropout (same seed on both devices: the masks are drawn on the host)
    "dropout": (lambda d, x: (F.dropout(x, 0.3), F.dropout1d(x, 0.5), F.alpha_dropout(x, 0.2),
                              nn.Dropout2d(0.5)(x.unsqueeze(-1))),
                [((4, 6, 5), "f")]),
    # embedding
    "embedding": (lambda d, w, i: (F.embedding(i, w), F.embedding(i, w, padding_idx=1),
                                   nn.Embedding(7, 3, max_norm=1.0).to(d)(i)),
                  [((7, 3), "f"), ((2, 5), "i7")]),
    # losses
    "regression_losses": (lambda d, x, t: (F.mse_loss(x, t), F.l1_loss(x, t, reduction="sum"),
                                           F.smooth_l1_loss(x, t), F.huber_loss(x, t, delta=0.5),
                                           F.kl_div(F.log_softmax(x, 1), F.softmax(t, 1),
                                                    reduction="batchmean")),
                          [((4, 5), "f"), ((4, 5), "f")]),
    "cross_entropy": (lambda d, x, y, w: (
        F.cross_entropy(x, y), F.cross_entropy(x, y, weight=w.detach().abs()),
        F.cross_entropy(x, y, ignore_index=2, label_smoothing=0.1),
        F.cross_entropy(x, F.softmax(x.detach() * 2, 1)),
        F.nll_loss(F.log_softmax(x, 1), y, reduction="none")),
        [((6, 4), "f"), ((6,), "i4"), ((4,), "f")]),
    "cross_entropy_nd": (lambda d, x, y: F.cross_entropy(x, y), [((2, 4, 3, 5), "f"),
                                                                 ((2, 3, 5), "i4")]),
    "binary_losses": (lambda d, x, u, t, pw: (
        F.binary_cross_entropy(u, (t.detach() > 0.5).float()),
        F.binary_cross_entropy_with_logits(x, (t.detach() > 0.5).float(), pos_weight=pw.detach()),
        nn.BCEWithLogitsLoss()(x, t.detach())),
        [((4, 3), "f"), ((4, 3), "u"), ((4, 3), "u"), ((3,), "p")]),
    # recurrent
    "lstm": (_lstm, [((2, 5, 3), "f")]),
    "gru": (_gru, [((5, 2, 3), "f")]),
    "rnn": (_rnn, [((5, 2, 3), "f")]),
    "packed_lstm": (_packed_lstm, [((3, 5, 3), "f")]),
    "cells": (_cells, [((2, 3), "f"), ((2, 4), "f")]),
    "misc": (lambda d, a, v: (minidl.outer(v, v), v.dot(v), (a > 0).all(1), (a > 0).any(),
                              a.argmin(0), a.min(1)[0], a.tile((2, 1)), a.movedim(0, 1),
                              minidl.where(a > 0, a, 0.0), a.logsumexp(0), a.var(0, False),
                              nn.utils.rnn.pad_sequence([v, v[:2]], batch_first=True)),
             [((3, 4), "f"), ((4,), "f")]),
    # layers with parameters
    "layers": (lambda d, x, x2: (nn.Linear(5, 3).to(d)(x), nn.Bilinear(5, 5, 2).to(d)(x, x),
                                 nn.Conv2d(2, 3, 3, padding="same").to(d)(x2),
                                 nn.Unflatten(1, (5, 1))(x), nn.Flatten()(x2)),
               [((4, 5), "f"), ((1, 2, 4, 4), "f")]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_on_device_matches_cpu(gpu, name):
    fn, specs = CASES[name]
    arrays = _inputs(specs)
    want_out, want_grads = _run(fn, arrays, specs, "cpu")
    got_out, got_grads = _run(fn, arrays, specs, "cuda")
    assert len(got_out) == len(want_out)
    for i, (got, want) in enumerate(zip(got_out, want_out)):
        assert got.device == "cuda", f"{name}: output {i} came back on {got.device}"
        assert gpu.is_device_array(got.data), f"{name}: output {i} is {type(got.data)}"
        assert got.dtype == want.dtype and got.shape == want.shape, f"{name}: output {i}"
        _assert_close(_host(got), _host(want), f"{name}: output {i}")
    for i, (got, want) in enumerate(zip(got_grads, want_grads)):
        assert (got is None) == (want is None), f"{name}: gradient {i}"
        if want is None:
            continue
        assert gpu.is_device_array(got.data), f"{name}: gradient {i} is {type(got.data)}"
        _assert_close(_host(got), _host(want), f"{name}: gradient {i}")
