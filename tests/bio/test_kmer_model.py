"""The k-mer logistic-regression member, the strand check and the blend of dna train."""

import numpy as np
import pytest

import minidl
from minidl.bio.encode import one_hot
from minidl.bio.kmer_model import (
    _fit_one,
    choose_blend_weight,
    choose_strand,
    fit_kmer_linear,
    kmer_features,
    log_loss,
    penalised_objective,
)
from minidl.bio.modelio import Ensemble
from minidl.bio.models import KmerLinear, PositionalKmerCounts, build_model


def test_positional_counts_by_hand():
    x = one_hot(["ACGTACGTAC", "AANAAAAAAA"])
    counts = PositionalKmerCounts((1, 2), bins=2).counts(x)
    assert counts.shape == (2, 2 * 4 + 2 * 16)
    # 1-mers, bin 0 = windows 0..4, bin 1 = windows 5..9
    np.testing.assert_array_equal(counts[0, :8], [2, 1, 1, 1, 1, 2, 1, 1])  # ACGTA | CGTAC
    np.testing.assert_array_equal(counts[1, :8], [4, 0, 0, 0, 5, 0, 0, 0])  # N not counted
    # 2-mers: 9 windows, bin(t) = floor(2t / 9): t = 0..4 -> 0, 5..8 -> 1
    aa = np.zeros(16, int)
    aa[0] = 3  # AA at t = 0, 3, 4 (AN and NA are skipped)
    np.testing.assert_array_equal(counts[1, 8:24], aa)
    aa[0] = 4
    np.testing.assert_array_equal(counts[1, 24:40], aa)
    ac = np.zeros(16, int)
    ac[[1, 6, 11, 12]] = [1, 1, 1, 1]  # AC CG GT TA in bin 0 (t = 0..4: AC CG GT TA AC)
    ac[1] += 1
    np.testing.assert_array_equal(counts[0, 8:24], ac)


def test_positional_counts_padding_and_log():
    x = one_hot(["ACG", "ACGTT"], length=5)         # the first is padded with zero columns
    module = PositionalKmerCounts((2,), bins=1)
    counts = module.counts(x)
    assert counts[0].sum() == 2 and counts[1].sum() == 4   # no window through padding
    out = module(minidl.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, np.log1p(counts), rtol=1e-6)
    with pytest.raises(ValueError, match="one-hot"):
        module(minidl.from_numpy(np.zeros((2, 5))))


def test_kmer_linear_builds_from_config_and_any_length():
    model = build_model({"model": "kmer", "num_classes": 3, "ks": [2, 3], "bins": 4})
    assert model.config["model"] == "kmer"
    for length in (7, 40):
        out = model(minidl.from_numpy(one_hot(["ACGTACG" * 6], length=length)))
        assert out.shape == (1, 3)
    assert build_model({"model": "kmer", "num_classes": 2})(
        minidl.from_numpy(one_hot(["ACGTACGTAA"]))).shape == (1,)


def _numpy_gradient(features, y, weight, bias, C):
    """dJ/dW, dJ/db of the penalised mean cross-entropy, written independently in float64."""
    f = features.astype(np.float64)
    n = len(y)
    logits = f @ weight.T + bias
    if weight.shape[0] == 1:
        p = 1 / (1 + np.exp(-logits[:, 0]))
        r = (p - y)[:, None]
    else:
        e = np.exp(logits - logits.max(1, keepdims=True))
        r = e / e.sum(1, keepdims=True) - np.eye(weight.shape[0])[y]
    return r.T @ f / n + weight / (C * n), r.sum(0) / n


@pytest.mark.parametrize("num_classes", [2, 3])
def test_fit_reaches_the_penalised_optimum(num_classes):
    rng = np.random.default_rng(0)
    n, d = 300, 12
    features = rng.normal(size=(n, d)).astype(np.float32)
    true = rng.normal(size=(d, num_classes))
    y = (features @ true + rng.gumbel(size=(n, num_classes))).argmax(1)
    C = 0.5
    weight, bias = _fit_one(features, y, num_classes, C)
    gw, gb = _numpy_gradient(features, y, weight.astype(np.float64), bias.astype(np.float64), C)
    assert np.abs(gw).max() < 1e-4 and np.abs(gb).max() < 1e-4   # a stationary point
    sklearn = pytest.importorskip("sklearn.linear_model")
    ref = sklearn.LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(features, y)
    ours = penalised_objective(features, y, weight, bias, C)
    theirs = penalised_objective(features, y, ref.coef_, ref.intercept_, C)
    if num_classes == 2:
        np.testing.assert_allclose(weight, ref.coef_, atol=1e-3)
    assert ours <= theirs + 1e-6


def _motif_set(n, rng, stranded):
    """Label 1 = a TTGACA box: on the forward strand only (stranded) or on a random strand
    (not stranded); label 0 = none, or (stranded) the box's reverse complement."""
    seqs, labels = [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), 40))
        label = i % 2
        box = None
        if label == 1:
            box = "TTGACA" if stranded or rng.random() < 0.5 else "TGTCAA"
        elif stranded:
            box = "TGTCAA"
        if box is not None:
            at = rng.integers(0, 34)
            s[at:at + 6] = box
        seqs.append("".join(s))
        labels.append(label)
    return one_hot(seqs), np.array(labels)


@pytest.mark.parametrize("stranded, expected", [(True, "forward"), (False, "both")])
def test_strand_check(stranded, expected):
    rng = np.random.default_rng(1)
    xt, yt = _motif_set(600, rng, stranded)
    xv, yv = _motif_set(300, rng, stranded)
    choice, losses = choose_strand(xt, yt, xv, yv, 2, ks=(3, 4, 5, 6), bins=1, C=0.3)
    assert choice == expected, losses


def test_fit_kmer_linear_learns_and_picks_c():
    rng = np.random.default_rng(2)
    xt, yt = _motif_set(400, rng, True)
    xv, yv = _motif_set(200, rng, True)
    model, info = fit_kmer_linear(xt, yt, xv, yv, 2, ks=(6,), bins=1, Cs=(0.01, 1.0))
    assert info["C"] in (0.01, 1.0) and set(info["valid_log_loss"]) == {"0.01", "1.0"}
    assert info["valid_log_loss"][str(info["C"])] == min(info["valid_log_loss"].values())
    with minidl.no_grad():
        p = 1 / (1 + np.exp(-model(minidl.from_numpy(xv)).numpy()))
    assert np.mean((p > 0.5) == yv) > 0.95
    # the features it fitted on are what the model computes
    f = kmer_features(model.counts, xv[:5])
    np.testing.assert_allclose(f, model.counts(minidl.from_numpy(xv[:5])).numpy())


def test_blend_weight():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    good = np.where(y[:, None] == np.arange(2), 0.8, 0.2)
    noise = rng.dirichlet([1, 1], size=500)
    w, losses = choose_blend_weight(y, good, noise)
    assert w == 0.0 and losses[0.0] == pytest.approx(log_loss(y, good))
    w, _ = choose_blend_weight(y, noise, good)
    assert w == 0.9                               # the grid's largest weight
    # two halves, each right about a different half of the examples: blending helps
    a = np.where(np.arange(500)[:, None] < 250, good, 0.5)
    b = np.where(np.arange(500)[:, None] >= 250, good, 0.5)
    w, losses = choose_blend_weight(y, a, b)
    assert 0.3 <= w <= 0.7 and losses[w] < losses[0.0]


@pytest.mark.parametrize("output, k", [("sigmoid", 1), ("softmax", 3)])
def test_weighted_ensemble_is_the_weighted_mean(output, k):
    rng = np.random.default_rng(4)

    class Fixed(minidl.nn.Module):
        def __init__(self, z):
            super().__init__()
            self.z = z

        def forward(self, x):
            return minidl.from_numpy(self.z)

    z1 = rng.normal(size=(6, k)) * 4
    z2 = rng.normal(size=(6, k)) * 4
    if k == 1:
        z1, z2 = z1[:, 0], z2[:, 0]
    ens = Ensemble([Fixed(z1), Fixed(z2)], output=output, weights=[0.3, 0.7])
    got = ens(None).numpy()

    def prob(z):
        if k == 1:
            return 1 / (1 + np.exp(-z))
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    np.testing.assert_allclose(prob(got), 0.3 * prob(z1) + 0.7 * prob(z2), rtol=1e-10)
    assert ens.config["weights"] == [0.3, 0.7]
    with pytest.raises(ValueError, match="summing to 1"):
        Ensemble([Fixed(z1), Fixed(z2)], output=output, weights=[0.3, 0.3])
    with pytest.raises(ValueError, match="positive"):
        Ensemble([Fixed(z1), Fixed(z2)], output=output, weights=[0.0, 1.0])


def test_kmer_model_round_trip(tmp_path):
    from minidl.bio.modelio import load_model_dir, save_model_dir

    model = KmerLinear(num_classes=2, ks=(2,), bins=3)
    with minidl.no_grad():
        model.linear.weight.data[...] = np.arange(48, dtype=np.float32)[None] / 48
    save_model_dir(tmp_path / "m", model, {"task": "dna", "model": model.config,
                                           "classes": ["a", "b"]})
    loaded, _ = load_model_dir(tmp_path / "m", build_model)
    x = minidl.from_numpy(one_hot(["ACGTTGCAAC", "GGGGGGGGGG"]))
    np.testing.assert_array_equal(loaded(x).detach().numpy(), model(x).detach().numpy())


def test_large_training_sets_are_subsampled_within_the_memory_budget():
    rng = np.random.default_rng(5)
    xt, yt = _motif_set(400, rng, True)
    xv, yv = _motif_set(100, rng, True)
    lines = []
    d = PositionalKmerCounts((6,), 1).num_features
    model, _ = fit_kmer_linear(xt, yt, xv, yv, 2, ks=(6,), bins=1, Cs=(1.0,), log=lines.append,
                               max_bytes=4 * d * 150)
    assert "fitting on 150 of 400 training sequences" in lines[0]
    with minidl.no_grad():
        p = 1 / (1 + np.exp(-model(minidl.from_numpy(xv)).numpy()))
    assert np.mean((p > 0.5) == yv) > 0.9
