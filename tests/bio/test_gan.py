"""``minidl.bio.gan`` and ``minidl-bio dna gan``: a GAN for DNA and its evaluation.

Expected values of the metrics are counted by hand in the comments; the GAN's
learning test uses a planted-motif toy set whose k-mer content differs clearly from
uniform random sequences.
"""

import csv
import json
import math

import numpy as np
import pytest

import minidl
from minidl.bio import gan
from minidl.bio.cli import main
from minidl.bio.encode import one_hot
from minidl.bio.io import read_fasta, write_fasta

MOTIF = "TATAAT"


def planted_motif_set(n, length=32, seed=0):
    """``n`` A/T-rich sequences (A, T 0.35; C, G 0.15), each with TATAAT at a random place."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = rng.choice(list("ACGT"), size=length, p=[0.35, 0.15, 0.15, 0.35])
        at = rng.integers(0, length - len(MOTIF) + 1)
        s[at:at + len(MOTIF)] = list(MOTIF)
        out.append("".join(s))
    return out


# ------------------------------------------------------------------------ networks


def test_generator_emits_probabilities_per_position():
    minidl.manual_seed(0)
    for length in (24, 37, 251):
        g = gan.Generator(length, z_dim=16, channels=8)
        p = g(minidl.randn(3, 16)).detach().numpy()
        assert p.shape == (3, 4, length)
        assert (p >= 0).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
        d = gan.Discriminator(length, channels=8)
        assert d(minidl.from_numpy(p)).shape == (3,)


def test_discriminator_weights_are_spectrally_normalised():
    minidl.manual_seed(0)
    d = gan.Discriminator(32, channels=8)
    x = minidl.from_numpy(one_hot(planted_motif_set(4)))
    for _ in range(60):  # one power iteration per forward pass
        d(x)
    for layer in (d.conv1, d.conv2, d.conv3, d.fc):
        w = layer.weight.detach().numpy()
        assert np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)[0] == \
            pytest.approx(1.0, abs=1e-3)


def test_sample_modes():
    minidl.manual_seed(0)
    g = gan.Generator(20, z_dim=8, channels=8)
    probs = gan.sample_probabilities(g, 3000, seed=5)
    # argmax: the most likely base at every position
    hard = gan.sample(g, 3000, seed=5, mode="argmax", as_strings=False)
    np.testing.assert_array_equal(hard.argmax(axis=1), probs.argmax(axis=1))
    # sample: base frequencies follow the probabilities (3000 draws per position:
    # standard error <= 0.01, so 0.04 is a 4-sigma band)
    drawn = gan.sample(g, 3000, seed=5, as_strings=False)
    np.testing.assert_allclose(drawn.mean(axis=0), probs.mean(axis=0), atol=0.04)
    strings = gan.sample(g, 4, seed=5)
    assert len(strings) == 4 and all(len(s) == 20 and set(s) <= set("ACGT") for s in strings)
    assert gan.sample(g, 4, seed=5) == strings  # seeded
    with pytest.raises(ValueError, match="mode"):
        gan.sample(g, 2, mode="greedy")


# ------------------------------------------------------------------------ metrics


def test_kmer_counts_by_hand():
    # ACGTA: 2-mers AC AG.. -> AC (0*4+1 = 1), CG (1*4+2 = 6), GT (2*4+3 = 11), TA (12)
    counts = gan.kmer_counts(["ACGTA"], 2)
    assert counts.shape == (16,)
    assert {int(i): int(c) for i, c in zip(np.flatnonzero(counts), counts[counts > 0])} == \
        {1: 1, 6: 1, 11: 1, 12: 1}
    # windows touching N are skipped: ACNGT -> AC, GT only
    assert np.flatnonzero(gan.kmer_counts(["ACNGT"], 2)).tolist() == [1, 11]
    # 1-mers over two sequences of different lengths: A 3, C 1, G 0, T 1
    assert gan.kmer_counts(["AAC", "TA"], 1).tolist() == [3, 1, 0, 1]
    # 3-mers: AAAA has AAA twice (index 0); TTT is 63
    assert gan.kmer_counts(["AAAA", "TTT"], 3)[[0, 63]].tolist() == [2, 1]
    # one-hot input counts the same as strings (padding columns are not bases)
    x = one_hot(["ACGTA", "GGA"], length=5)
    assert gan.kmer_counts(x, 2).tolist() == gan.kmer_counts(["ACGTA", "GGA"], 2).tolist()


def test_kmer_spectrum_distance_by_hand():
    # p = (1/2, 1/2, 0, 0), q = (1/2, 0, 1/2, 0): L1 = 0 + 1/2 + 1/2 = 1;
    # m = (1/2, 1/4, 1/4, 0): KL(p||m) = 1/2 log2(1) + 1/2 log2(2) = 1/2 = KL(q||m),
    # JS divergence 1/2, JS distance sqrt(1/2)
    d = gan.kmer_spectrum_distance([1, 1, 0, 0], [1, 0, 1, 0])
    assert d["l1"] == pytest.approx(1.0)
    assert d["js"] == pytest.approx(math.sqrt(0.5))
    # the same spectra from sequences (1-mers of AC and AG)
    d_seq = gan.kmer_spectrum_distance(gan.kmer_counts(["AC"], 1), gan.kmer_counts(["AG"], 1))
    assert d_seq == pytest.approx(d)
    # identical spectra: 0; disjoint: L1 2 and JS 1; counts are normalised first
    assert gan.kmer_spectrum_distance([2, 4], [1, 2]) == pytest.approx({"l1": 0.0, "js": 0.0})
    assert gan.kmer_spectrum_distance([0, 3], [5, 0]) == pytest.approx({"l1": 2.0, "js": 1.0})
    assert math.isnan(gan.kmer_spectrum_distance([0, 0], [1, 0])["js"])


def test_kmer_spectrum_distance_matches_scipy():
    spatial = pytest.importorskip("scipy.spatial")
    rng = np.random.default_rng(0)
    p, q = rng.integers(0, 9, 64), rng.integers(0, 9, 64)
    expected = spatial.distance.jensenshannon(p / p.sum(), q / q.sum(), base=2)
    assert gan.kmer_spectrum_distance(p, q)["js"] == pytest.approx(expected, rel=1e-9)


def test_gc_content_and_wasserstein_by_hand():
    # GGCC 4/4; ATAT 0/4; GCAT 2/4; ACGN: N left out -> C, G of A, C, G = 2/3
    np.testing.assert_allclose(gan.gc_content(["GGCC", "ATAT", "GCAT", "ACGN"]),
                               [1.0, 0.0, 0.5, 2 / 3])
    # lower case counts; no ACGT at all -> NaN
    gc = gan.gc_content(["gcat", "NNN"])
    assert gc[0] == 0.5 and math.isnan(gc[1])
    # {0, 1} vs {0.5, 0.5}: move half the mass 0.5 each way -> 0.5
    assert gan.wasserstein_1d([0.0, 1.0], [0.5, 0.5]) == pytest.approx(0.5)
    # {0, 0, 1} vs {1, 1, 1}: two thirds of the mass move by 1 -> 2/3
    assert gan.wasserstein_1d([0.0, 0.0, 1.0], [1.0, 1.0, 1.0]) == pytest.approx(2 / 3)
    assert gan.wasserstein_1d([0.3, 0.7], [0.7, 0.3]) == 0.0


def test_evaluate_samples_keys_and_baselines():
    real = planted_motif_set(200, seed=1)
    held_out = planted_motif_set(100, seed=2)
    generated = planted_motif_set(100, seed=3)  # a "perfect generator"
    result = gan.evaluate_samples(generated, real, held_out=held_out, ks=(3, 4),
                                  classifier="arabidopsis_promoters")
    json.dumps(result)  # serialisable
    assert set(result) == {"ks", "reference", "generated", "random", "held_out"}
    assert result["ks"] == [3, 4]
    assert result["reference"]["n"] == 200
    for name in ("generated", "random", "held_out"):
        row = result[name]
        assert set(row) == {"n", "kmer_l1", "kmer_js", "gc_mean", "gc_std", "gc_w1",
                            "classifier_score", "classifier_positive_fraction"}
        assert set(row["kmer_js"]) == set(row["kmer_l1"]) == {"3", "4"}
        assert 0.0 <= row["classifier_score"] <= 1.0
    assert result["random"]["n"] == result["generated"]["n"] == 100
    # sequences from the data's own distribution are much closer than uniform random ones
    for k in ("3", "4"):
        assert result["generated"]["kmer_js"][k] < 0.5 * result["random"]["kmer_js"][k]
    # random GC is near 1/2, the planted set's near 0.3 + motif (0.3 * 26/32 ~ 0.24)
    assert abs(result["random"]["gc_mean"] - 0.5) < 0.03
    assert abs(result["generated"]["gc_mean"] - 0.245) < 0.03
    no_classifier = gan.evaluate_samples(generated, real, ks=(3,))
    assert "held_out" not in no_classifier and "classifier_score" not in \
        no_classifier["generated"]


def test_classifier_scores_real_promoters_above_random():
    from minidl.bio import datasets

    with open(datasets.dataset_path("arabidopsis_nontata_promoters"), "rb") as fh:
        import gzip
        import io

        rows = list(csv.DictReader(io.TextIOWrapper(gzip.GzipFile(fileobj=fh))))
    promoters = [r["sequence"] for r in rows if r["label"] == "1" and r["split"] == "test"][:60]
    random = gan.random_sequences(60, 251, seed=0)
    real_score = gan.classifier_scores("arabidopsis_promoters", promoters, "1").mean()
    random_score = gan.classifier_scores("arabidopsis_promoters", random, "1").mean()
    assert real_score > 0.7 and random_score < 0.3


# ------------------------------------------------------------------------ training


def test_short_run_learns_the_kmer_spectrum_of_a_planted_motif_set():
    """The issue's test: after a few hundred steps the generated k-mer distance to the
    real data is well below that of uniform random sequences."""
    real = planted_motif_set(512, seed=0)
    held_out = planted_motif_set(512, seed=1)
    generator, _, history = gan.train_gan(one_hot(real), epochs=100, max_steps=300,
                                          batch_size=32, seed=0)
    assert history.records[-1]["steps"] == 300
    samples = gan.sample(generator, 512, seed=3)
    result = gan.evaluate_samples(samples, real, held_out=held_out, ks=(3, 4, 6))
    for k in ("3", "4"):
        # measured: 3-mer JS 0.13 (random 0.38, held-out real 0.05)
        assert result["generated"]["kmer_js"][k] < 0.5 * result["random"]["kmer_js"][k]
    assert result["generated"]["kmer_js"]["6"] < result["random"]["kmer_js"]["6"]
    # GC: real 0.245, random 0.50
    assert abs(result["generated"]["gc_mean"] - result["reference"]["gc_mean"]) < 0.05
    # the monitor in the history fell from the first epoch to the last
    assert history.records[-1]["kmer_js"] < history.records[0]["kmer_js"]


def test_training_is_deterministic_for_a_seed():
    x = one_hot(planted_motif_set(64, seed=4))
    runs = [gan.train_gan(x, epochs=1, batch_size=16, channels=8, seed=7) for _ in range(2)]
    (g1, _, h1), (g2, _, h2) = runs
    for (name, a), b in zip(g1.state_dict().items(), g2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert h1.records[0]["d_loss"] == h2.records[0]["d_loss"]
    assert gan.sample(g1, 5, seed=1) == gan.sample(g2, 5, seed=1)


def test_save_and_load_generator(tmp_path):
    minidl.manual_seed(0)
    g = gan.Generator(30, z_dim=8, channels=8)
    gan.save_generator(tmp_path, g, extra={"note": "x"})
    loaded, config = gan.load_generator(tmp_path)
    assert config["note"] == "x" and config["generator"] == g.config
    np.testing.assert_array_equal(gan.sample_probabilities(loaded, 4, seed=2),
                                  gan.sample_probabilities(g, 4, seed=2))


# ------------------------------------------------------------------------ command line


def _table(path, n_pos=48, n_neg=24, length=32):
    positives = planted_motif_set(n_pos, length, seed=5)
    negatives = gan.random_sequences(n_neg, length, seed=6)
    splits = ["train"] * 6 + ["valid", "test"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "sequence", "label", "split"])
        for i, s in enumerate(positives):
            w.writerow([f"p{i}", s, 1, splits[i % 8]])
        for i, s in enumerate(negatives):
            w.writerow([f"n{i}", s, 0, splits[i % 8]])
    return path


def test_cli_gan_end_to_end(tmp_path, capsys):
    table = _table(tmp_path / "tiny.csv")
    out = tmp_path / "run"
    code = main(["dna", "gan", "--data", str(table), "--out", str(out), "--epochs", "2",
                 "--batch-size", "8", "--channels", "8", "--n-samples", "20",
                 "--threads", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "epoch 2/2" in printed and "generated" in printed and "random" in printed
    for name in ("samples.fa", "evaluation.json", "generator.safetensors", "config.json",
                 "history.csv"):
        assert (out / name).exists(), name
    records = read_fasta(out / "samples.fa", alphabet="dna")
    assert len(records) == 20 and records[0].id == "gan_000001"
    assert all(len(r.sequence) == 32 for r in records)
    evaluation = json.loads((out / "evaluation.json").read_text())
    # 48 positives: 6/8 train + 1/8 valid = 42 for training, 1/8 = 6 held out
    assert evaluation["reference"]["n"] == 42 and evaluation["held_out"]["n"] == 6
    assert evaluation["generated"]["n"] == evaluation["random"]["n"] == 20
    assert evaluation["settings"]["label"] == "1" and evaluation["settings"]["classifier"] is None
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs
    # the saved generator reproduces the samples
    generator, config = gan.load_generator(out)
    assert config["training"]["length"] == 32
    assert gan.sample(generator, 20, seed=0) == [r.sequence for r in records]


def test_cli_gan_on_fasta_with_classifier(tmp_path):
    fasta = tmp_path / "pos.fa"
    write_fasta(fasta, [(f"s{i}", s) for i, s in enumerate(planted_motif_set(30, seed=8))])
    out = tmp_path / "run"
    code = main(["dna", "gan", "--data", str(fasta), "--out", str(out), "--epochs", "1",
                 "--batch-size", "8", "--channels", "8", "--n-samples", "10", "--quiet",
                 "--classifier", "arabidopsis_promoters"])
    assert code == 0
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["reference"]["n"] == 27 and evaluation["held_out"]["n"] == 3
    assert 0.0 <= evaluation["generated"]["classifier_score"] <= 1.0
    assert evaluation["settings"]["positive_class"] == "1"


def test_cli_gan_errors(tmp_path, capsys):
    table = _table(tmp_path / "tiny.csv")
    code = main(["dna", "gan", "--data", str(table), "--out", str(tmp_path / "o"),
                 "--label", "promoter", "--quiet"])
    assert code == 2
    assert "--label 'promoter'" in capsys.readouterr().err
