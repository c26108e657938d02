"""Attribution (minidl.bio.interpret) and ``minidl-bio dna explain``.

Oracles: brute-force loops over mutants, the closed form of a linear model, the
completeness identity of integrated gradients, and PyTorch's autograd.
"""

import json

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.bio import interpret
from minidl.bio.cli import main
from minidl.bio.encode import one_hot
from minidl.bio.modelio import save_model_dir
from minidl.bio.models import SequenceCNN

BASES = "ACGT"


def _random_onehot(n, length, seed=0):
    idx = np.random.default_rng(seed).integers(0, 4, size=(n, length))
    return np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1).copy()


def _conv_model(outputs, length=12, seed=0):
    """Conv1d -> ReLU -> Flatten -> Linear: small, nonlinear, position-aware."""
    minidl.manual_seed(seed)
    return nn.Sequential(nn.Conv1d(4, 3, 5, padding=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * length, outputs))


def _forward(model, x):
    with minidl.no_grad():
        return model(minidl.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


# ------------------------------------------------------------------ mutagenesis


@pytest.mark.parametrize("outputs,target", [(1, None), (3, 2), (3, None)])
def test_mutagenesis_equals_brute_force_loop(outputs, target):
    model = _conv_model(outputs)
    x = _random_onehot(1, 12, seed=1)[0]
    effects = interpret.in_silico_mutagenesis(model, x, target=target, batch_size=7)

    ref_out = _forward(model, x[None])[0]
    column = 0 if outputs == 1 else (int(np.argmax(ref_out)) if target is None else target)
    expected = np.zeros((12, 4))
    for pos in range(12):                      # the obvious loop: one forward per mutant
        for base in range(4):
            mutant = x.copy()
            mutant[:, pos] = 0.0
            mutant[base, pos] = 1.0
            out = _forward(model, mutant[None])[0]
            expected[pos, base] = np.atleast_1d(out)[column] - np.atleast_1d(ref_out)[column]
    assert effects.shape == (12, 4)
    np.testing.assert_allclose(effects, expected, atol=1e-5)
    np.testing.assert_array_equal(effects[np.arange(12), x.argmax(axis=0)], 0.0)
    assert np.count_nonzero(effects) > 30       # the model is not constant


def test_mutagenesis_positions_and_unknown_base():
    model = _conv_model(1)
    x = _random_onehot(1, 12, seed=2)[0]
    x[:, 5] = 0.25                             # an N: all four bases are mutations
    effects = interpret.in_silico_mutagenesis(model, x, positions=[4, 5])
    assert np.isnan(effects[[0, 1, 2, 3, 6, 11]]).all()
    assert np.count_nonzero(effects[4] == 0) == 1 and np.all(effects[5] != 0)
    with pytest.raises(ValueError, match="positions outside"):
        interpret.in_silico_mutagenesis(model, x, positions=[12])


# ------------------------------------------------------------------ gradients


def test_gradient_x_input_of_linear_model_is_weight_times_input():
    minidl.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6, 3))
    x = np.random.default_rng(3).normal(size=(5, 4, 6)).astype(np.float32)
    target = np.array([0, 1, 2, 1, 0])
    attr = interpret.gradient_x_input(model, x, target=target)
    weight = model[1].weight.detach().numpy().reshape(3, 4, 6)
    np.testing.assert_allclose(attr, weight[target] * x, rtol=1e-6, atol=1e-6)
    # Completeness of a linear score: sum A = f(x) - b.
    bias = model[1].bias.detach().numpy()
    scores = _forward(model, x)[np.arange(5), target]
    np.testing.assert_allclose(attr.reshape(5, -1).sum(1), scores - bias[target], atol=1e-4)


def test_one_logit_model_targets_and_default_multiclass_target():
    minidl.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 1))
    x = np.random.default_rng(4).normal(size=(3, 4, 2)).astype(np.float32)
    weight = model[1].weight.detach().numpy().reshape(4, 2)
    np.testing.assert_allclose(interpret.saliency(model, x, absolute=False),
                               np.broadcast_to(weight, x.shape), atol=1e-6)
    np.testing.assert_allclose(interpret.saliency(model, x, target=0, absolute=False),
                               -np.broadcast_to(weight, x.shape), atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        interpret.saliency(model, x, target=2)

    multi = _conv_model(3, length=12)
    xs = _random_onehot(4, 12, seed=5)
    _, scores, target = interpret.input_gradients(multi, xs)
    out = _forward(multi, xs)
    np.testing.assert_array_equal(target, out.argmax(axis=1))
    np.testing.assert_allclose(scores, out.max(axis=1), rtol=1e-6)


def test_model_state_restored_and_parameter_grads_untouched():
    model = nn.Sequential(nn.Conv1d(4, 3, 3, padding=1), nn.BatchNorm1d(3), nn.ReLU(),
                          nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 6, 1))
    model.train()
    x = _random_onehot(4, 6)
    a = interpret.saliency(model, x)
    b = interpret.saliency(model, x)
    np.testing.assert_array_equal(a, b)        # evaluation mode: dropout off
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def _mlp(seed=6):
    minidl.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5, 16), nn.Tanh(), nn.Linear(16, 8),
                          nn.Softplus(), nn.Linear(8, 2))
    for p in model.parameters():     # larger weights: curved, so the path integral matters
        p.data *= 3.0
    return model


@pytest.mark.parametrize("method,baseline", [("trapezoid", None), ("midpoint", "uniform")])
def test_integrated_gradients_completeness(method, baseline):
    model = _mlp()
    x = np.random.default_rng(7).normal(size=(3, 4, 5)).astype(np.float32)
    attr, delta = interpret.integrated_gradients(model, x, baseline=baseline, steps=256,
                                                 target=1, method=method, batch_size=100,
                                                 return_delta=True)
    base = np.zeros_like(x) if baseline is None else np.full_like(x, 0.25)
    expected = _forward(model, x)[:, 1] - _forward(model, base)[:, 1]
    assert np.abs(expected).min() > 0.05       # a non-trivial difference to explain
    np.testing.assert_allclose(attr.reshape(3, -1).sum(axis=1), expected, atol=2e-3,
                               rtol=2e-3)
    np.testing.assert_allclose(delta, attr.reshape(3, -1).sum(1) - expected, atol=1e-4)


def test_shuffled_baselines_and_completeness_against_their_mean():
    x = one_hot(["ACGTTGCAAN", "GGGTTT"], length=10)         # second one padded
    bases = interpret.shuffled_baselines(x, n=5, seed=1)
    assert bases.shape == (5, 2, 4, 10)
    np.testing.assert_allclose(bases.sum(axis=3), np.repeat(x.sum(axis=2)[None], 5, 0))
    assert np.all(bases[:, 1, :, 6:] == 0)                    # padding stays padding
    assert not all(np.array_equal(b, x[0]) for b in bases[:, 0])

    model = _conv_model(1, length=10, seed=14)
    attr, delta = interpret.integrated_gradients(model, x, baseline="shuffle", steps=128,
                                                 n_shuffles=5, seed=1, return_delta=True)
    mean_base = np.mean([_forward(model, b)[:, 0] for b in bases], axis=0)
    expected = _forward(model, x)[:, 0] - mean_base
    np.testing.assert_allclose(attr.reshape(2, -1).sum(axis=1), expected, atol=2e-3)
    assert np.abs(delta).max() < 2e-3


def test_integrated_gradients_few_steps_shows_a_gap_and_validates_arguments():
    model = _mlp()
    x = _random_onehot(2, 5, seed=8) * 3.0
    _, coarse = interpret.integrated_gradients(model, x, steps=1, target=1, return_delta=True)
    _, fine = interpret.integrated_gradients(model, x, steps=128, target=1, return_delta=True)
    assert np.abs(fine).max() < np.abs(coarse).max()
    with pytest.raises(ValueError, match="steps"):
        interpret.integrated_gradients(model, x, steps=0)
    with pytest.raises(ValueError, match="method"):
        interpret.integrated_gradients(model, x, method="simpson")
    with pytest.raises(ValueError, match="baseline"):
        interpret.integrated_gradients(model, x, baseline="ones")


def test_saliency_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    model = _conv_model(2, length=12, seed=9)
    x = _random_onehot(3, 12, seed=9)
    ours = interpret.saliency(model, x, target=1, absolute=False)

    conv = torch.nn.Conv1d(4, 3, 5, padding=2)
    linear = torch.nn.Linear(36, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(model[0].weight.detach().numpy()))
        conv.bias.copy_(torch.from_numpy(model[0].bias.detach().numpy()))
        linear.weight.copy_(torch.from_numpy(model[3].weight.detach().numpy()))
        linear.bias.copy_(torch.from_numpy(model[3].bias.detach().numpy()))
    xt = torch.from_numpy(x).requires_grad_(True)
    linear(torch.relu(conv(xt)).flatten(1))[:, 1].sum().backward()
    np.testing.assert_allclose(ours, xt.grad.numpy(), atol=1e-6)


def test_image_saliency_matches_torch_and_cells_wrapper():
    torch = pytest.importorskip("torch")
    from minidl.bio.cells_cli import saliency as cells_saliency

    minidl.manual_seed(10)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(),
                          nn.Linear(3 * 5 * 5, 4))
    x = np.random.default_rng(10).normal(size=(2, 2, 5, 5)).astype(np.float32)
    sal, target = interpret.image_saliency(model, x)

    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    linear = torch.nn.Linear(75, 4)
    with torch.no_grad():
        for mine, theirs in ((model[0], conv), (model[3], linear)):
            theirs.weight.copy_(torch.from_numpy(mine.weight.detach().numpy()))
            theirs.bias.copy_(torch.from_numpy(mine.bias.detach().numpy()))
    xt = torch.from_numpy(x).requires_grad_(True)
    logits = linear(torch.tanh(conv(xt)).flatten(1))
    np.testing.assert_array_equal(target, logits.detach().numpy().argmax(axis=1))
    logits.gather(1, torch.from_numpy(target)[:, None]).sum().backward()
    np.testing.assert_allclose(sal, xt.grad.abs().amax(dim=1).numpy(), atol=1e-6)
    wrapped, wrapped_target = cells_saliency(model, x)
    np.testing.assert_array_equal(wrapped, sal)
    np.testing.assert_array_equal(wrapped_target, target)


# ------------------------------------------------------------------ variants


def test_variant_effect_scores_and_ref_check():
    model = _conv_model(1, length=12, seed=11)
    seq = "ACGTACGTTGCA"
    effects = interpret.variant_effect(model, seq, [(2, "G", "T"), (9, "gc", "AA")])
    ref = _forward(model, one_hot(seq))[0, 0]
    alt1 = _forward(model, one_hot("ACTTACGTTGCA"))[0, 0]
    alt2 = _forward(model, one_hot("ACGTACGTTAAA"))[0, 0]
    assert [(e.position, e.ref, e.alt) for e in effects] == [(2, "G", "T"), (9, "GC", "AA")]
    np.testing.assert_allclose([e.ref_score for e in effects], ref, rtol=1e-6)
    np.testing.assert_allclose([e.alt_score for e in effects], [alt1, alt2], rtol=1e-5)
    np.testing.assert_allclose([e.delta for e in effects], [alt1 - ref, alt2 - ref],
                               atol=1e-5)
    # Same answer from a one-hot reference and 1-based positions.
    again = interpret.variant_effect(model, one_hot(seq)[0], [(3, "G", "T")], one_based=True)
    assert again[0].delta == pytest.approx(effects[0].delta, abs=1e-6)

    with pytest.raises(ValueError, match=r"ref does not match the sequence, which has 'G'"):
        interpret.variant_effect(model, seq, [(2, "A", "T")])
    with pytest.raises(ValueError, match="0-based"):
        interpret.variant_effect(model, seq, [(3, "G", "T")])     # VCF position given 0-based
    with pytest.raises(ValueError, match="substitutions"):
        interpret.variant_effect(model, seq, [(2, "G", "GT")])
    with pytest.raises(ValueError, match="outside the sequence"):
        interpret.variant_effect(model, seq, [(12, "A", "T")])


# ------------------------------------------------------------------ the command


def _tiny_model_dir(tmp_path, length=40):
    minidl.manual_seed(12)
    model = SequenceCNN(num_classes=2, channels=(6, 6), kernel_sizes=(5, 3), pools=(2, 1),
                        hidden=8, dropout=0.0, pool_bins=2)
    config = {"task": "dna", "model": model.config, "classes": ["bg", "promoter"],
              "encoding": {"alphabet": "dna", "length": length, "crop": "center"},
              "predict": {"rc_average": True}}
    save_model_dir(tmp_path / "model", model, config)
    return tmp_path / "model", model.eval()


def test_dna_explain_end_to_end(tmp_path):
    model_dir, model = _tiny_model_dir(tmp_path)
    rng = np.random.default_rng(13)
    seqs = {"long": "".join(rng.choice(list(BASES), 50)),        # centre window of 40
            "short one": "".join(rng.choice(list(BASES), 30)),   # padded
            "withN": "ACGT" * 5 + "N" + "TTGCA" * 3 + "ACGT"}
    fasta = tmp_path / "x.fa"
    fasta.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    out = tmp_path / "explain"
    code = main(["dna", "explain", "--model", str(model_dir), "--fasta", str(fasta),
                 "--out", str(out), "--ig-steps", "16", "--min-sites", "1", "--motifs", "2",
                 "--quiet", "--backend", "numpy"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["saliency", "gradient_x_input", "integrated_gradients", "ism"]
    rows = {r["id"]: r for r in summary["sequences"]}
    assert rows["long"]["window_start"] == 5 and rows["long"]["window_length"] == 40
    assert rows["short"]["window_length"] == 30          # FASTA ids stop at whitespace
    assert rows["withN"]["window_length"] == 40
    for i, (name, seq) in enumerate(seqs.items()):
        rid = name.split()[0]
        row = rows[rid]
        folder = out / "sequences" / f"{i:03d}_{rid}"
        n, start = row["window_length"], row["window_start"]
        window = seq[start:start + n]
        x = one_hot(window)[0]
        arrays = {m: np.load(folder / f"{m}.npy", allow_pickle=False)
                  for m in ("saliency", "gradient_x_input", "integrated_gradients", "ism")}
        assert arrays["ism"].shape == (n, 4)
        assert all(arrays[m].shape == (4, n) for m in arrays if m != "ism")
        # ISM: zero exactly at the observed bases, four mutations at the N.
        clean = x.max(axis=0) == 1
        np.testing.assert_array_equal(arrays["ism"][clean, x[:, clean].argmax(axis=0)], 0.0)
        if rid == "withN":
            assert np.all(arrays["ism"][20] != 0)
        # The files hold what the library computes for the same window.
        padded = one_hot([seq], length=40)
        expected_ism = interpret.in_silico_mutagenesis(model, padded[0], target=1)[:n]
        np.testing.assert_allclose(arrays["ism"], expected_ism, atol=1e-5)
        expected_gxi = interpret.gradient_x_input(model, padded, target=1)[0, :, :n]
        np.testing.assert_allclose(arrays["gradient_x_input"], expected_gxi, atol=1e-6)
        score = _forward(model, padded)[0]
        assert row["score"] == pytest.approx(float(score), rel=1e-5)
        assert abs(row["integrated_gradients_gap"]) < 0.05 * max(1.0, abs(score))
        table = (folder / "attribution.tsv").read_text().splitlines()
        assert table[0].split("\t") == ["position", "base", "saliency", "gradient_x_input",
                                        "integrated_gradients", "ism_mean", "ism_min"]
        assert len(table) == n + 1 and table[1].split("\t")[:2] == [str(start), window[0]]
        assert len(row["top_positions"]) == 10
    motifs = summary["motifs"]
    assert motifs["filters"] == 6 and (out / "motifs.meme").exists()
    from minidl.bio.motifs import read_meme

    meme = read_meme(out / "motifs.meme")
    assert len(meme.motifs) == motifs["filters_with_sites"] and meme.motifs[0].width == 5
    if summary["png"]:
        assert (folder / "explain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(motifs["logos"]) == min(2, len(meme.motifs))


def test_dna_explain_subset_and_errors(tmp_path, capsys):
    model_dir, _ = _tiny_model_dir(tmp_path)
    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\n" + "ACGT" * 10 + "\n>b\n" + "TTGCA" * 8 + "\n")
    out = tmp_path / "e"
    assert main(["dna", "explain", "--model", str(model_dir), "--fasta", str(fasta),
                 "--out", str(out), "--method", "gxi,ism", "--no-motifs", "--no-plots",
                 "--max-sequences", "1", "--target", "bg", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["gradient_x_input", "ism"] and "motifs" not in summary
    assert [r["id"] for r in summary["sequences"]] == ["a"]
    assert summary["sequences"][0]["target"] == "bg"
    assert sorted(p.name for p in (out / "sequences" / "000_a").iterdir()) == [
        "attribution.tsv", "gradient_x_input.npy", "ism.npy"]
    assert main(["dna", "explain", "--model", str(model_dir), "--fasta", str(fasta),
                 "--out", str(out), "--target", "nope"]) == 2
    assert "not a class" in capsys.readouterr().err
    assert main(["dna", "explain", "--model", str(model_dir), "--fasta", str(fasta),
                 "--out", str(out), "--method", "shap"]) == 2
