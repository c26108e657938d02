"""Protein secondary structure: readers, masked loss, packed BiLSTM, CLI end to end."""

import json

import numpy as np
import pytest

import minidl
from minidl.bio.cli import main
from minidl.bio.protein import (
    IGNORE,
    BiLSTMTagger,
    collate_chains,
    encode_chain,
    length_batches,
    q3_metrics,
    read_ss_table,
)
from minidl.bio.protein_cli import masked_cross_entropy

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def test_reader_masks_and_ss8(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("id\tsequence\tss8\tsplit\tresolved_mask\n"
                 "a\tACDG\tHGEB\ttrain\t1101\nb\tKLM\tTS-\ttest\t111\n")
    d = read_ss_table(p)
    assert d.labels["train"][0].tolist() == [0, 0, IGNORE, 1]  # H G -> H; E B -> E; masked
    assert d.labels["test"][0].tolist() == [2, 2, 2]  # T S - -> C
    assert d.ids["test"] == ["b"] and d.sequences["valid"] == []


@pytest.mark.parametrize("text,message", [
    ("sequence\tss3\nAC\tH\n", r"ss3 has 1 states for a sequence of 2"),
    ("sequence\tss3\nAC\tHQ\n", r"invalid ss3 .* 'Q' at position 2"),
    ("sequence\tss3\tmask\nAC\tHH\t12\n", r"mask must be one 0/1 per residue"),
    ("sequence\tlabel\nAC\tHH\n", r"need columns sequence and ss3"),
])
def test_reader_errors(tmp_path, text, message):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_ss_table(p)


def test_encoding_of_rare_and_unknown_residues():
    x = encode_chain("AXU")
    assert x.shape == (3, 21)
    assert x[0, 0] == 1 and x[0, 20] == 0
    np.testing.assert_allclose(x[1, :20], 1 / 20)
    assert x[1, 20] == 1  # unknown flag
    assert x[2, 1] == 1  # U (selenocysteine) -> C
    with pytest.raises(ValueError, match=r"invalid amino acid '\*' at position 2"):
        encode_chain("A*")


def test_masked_loss_gives_padding_exactly_zero_gradient():
    rng = np.random.default_rng(0)
    logits = minidl.tensor(rng.normal(size=(2, 5, 3)), requires_grad=True)
    target = np.array([[0, 1, 2, IGNORE, IGNORE], [2, IGNORE, 1, 0, 0]])
    loss = masked_cross_entropy(logits, minidl.tensor(target))
    loss.backward()
    grad = logits.grad.numpy()
    assert np.all(grad[target == IGNORE] == 0.0)
    assert np.all(np.abs(grad[target != IGNORE]).sum(axis=-1) > 0)
    # the value is the mean over scored residues only
    lg = logits.detach().numpy()
    logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    keep = target != IGNORE
    expected = -np.mean(logp[keep, target[keep]])
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_packed_bilstm_equals_each_chain_alone():
    minidl.manual_seed(0)
    model = BiLSTMTagger(hidden_size=6, num_layers=2, dropout=0.0, conv_channels=0).double()
    model.eval()
    chains = [encode_chain(s).astype(np.float64) for s in ("ACDEFGHIK", "LMN", "PQRSTV")]
    x, lengths, _ = collate_chains(chains)
    batched = model(minidl.tensor(x.astype(np.float64)), lengths).detach().numpy()
    for i, c in enumerate(chains):
        alone = model(minidl.tensor(c[None])).detach().numpy()[0]
        np.testing.assert_allclose(batched[i, : len(c)], alone, rtol=1e-10, atol=1e-12)


def test_length_batches_cover_everything_once_and_group_lengths():
    lengths = np.array([5, 100, 7, 98, 6, 99])
    batches = length_batches(lengths, 3, shuffle=True, rng=np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    assert {frozenset(lengths[b].tolist()) for b in batches} == {frozenset({5, 6, 7}),
                                                                 frozenset({98, 99, 100})}


def test_q3_metrics_by_hand():
    m = q3_metrics([np.array([0, 1, 2, IGNORE])], [np.array([0, 1, 1, 2])])
    assert m["q3"] == pytest.approx(2 / 3) and m["n_residues"] == 3 and m["n_chains"] == 1
    assert m["recall"] == {"H": 1.0, "E": 1.0, "C": 0.0}
    assert m["precision"]["E"] == 0.5


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["protein", "train", "--data", str(FIXTURES / "protein_small.tsv"),
                 "--out", str(out), "--epochs", "2", "--hidden", "8", "--layers", "1",
                 "--conv-channels", "4", "--quiet", "--backend", "numpy"]) == 0
    for name in ("model.safetensors", "config.json", "metrics.json", "history.csv",
                 "curves.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"q3", "precision", "recall", "n_residues", "n_chains"} <= set(metrics)
    assert metrics["n_chains"] == 6
    assert main(["protein", "evaluate", "--model", str(out), "--data",
                 str(FIXTURES / "protein_small.tsv"), "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    assert again["q3"] == pytest.approx(metrics["q3"])
    fasta = tmp_path / "p.fa"
    fasta.write_text(">p1\nMKTAYIAKQR\n>p2\nGSH\n")
    assert main(["protein", "predict", "--model", str(out), "--fasta", str(fasta),
                 "--out", str(tmp_path / "pred.tsv")]) == 0
    lines = (tmp_path / "pred.tsv").read_text().splitlines()
    assert lines[0] == "id\tsequence\tss3\tconfidence"
    _, seq, ss, conf = lines[1].split("\t")
    assert len(ss) == len(seq) == len(conf) == 10 and set(ss) <= set("HEC")
