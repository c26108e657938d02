"""First-layer motifs (minidl.bio.motifs): PWMs from planted motifs, MEME files, logos."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.bio import motifs as M
from minidl.bio.encode import one_hot
from minidl.bio.models import DanQ, SequenceCNN

MOTIF = "TATAAAGG"


def _planted(n=120, length=50, seed=0, motif=MOTIF):
    """Random sequences, every other one with ``motif`` at a random place; returns the
    sequences and the number planted."""
    rng = np.random.default_rng(seed)
    seqs, planted = [], 0
    for i in range(n):
        s = list(rng.choice(list("ACGT"), length))
        if i % 2 == 0:
            p = int(rng.integers(0, length - len(motif)))
            s[p:p + len(motif)] = motif
            planted += 1
        seqs.append("".join(s))
    return seqs, planted


def _set_matching_filter(conv, index, motif, mismatch=-1.0, bias=None):
    """Weights +1 on the motif's bases, ``mismatch`` elsewhere: the filter's response is
    (matches - mismatches), ``len(motif)`` only on an exact match."""
    w = conv.weight.detach().numpy().copy()
    w[index] = mismatch
    for i, base in enumerate(motif):
        w[index, "ACGT".index(base), i] = 1.0
    b = conv.bias.detach().numpy().copy()
    # Bias so that only windows with at most one mismatch give a positive activation.
    b[index] = -(len(motif) - 3.0) if bias is None else bias
    with minidl.no_grad():
        conv.weight.data[...] = w
        conv.bias.data[...] = b


def test_planted_motif_filter_gives_the_motif_pwm():
    seqs, planted = _planted()
    x = one_hot(seqs)
    minidl.manual_seed(0)
    model = SequenceCNN(num_classes=2, channels=(3, 4), kernel_sizes=(8, 3), pools=(2, 1),
                        hidden=4, dropout=0.0, pool_bins=0)
    conv = M.first_conv1d(model)
    assert conv is model.features[0]
    layers = M.first_layer(model)
    assert [type(m).__name__ for m in layers] == ["Conv1d", "BatchNorm1d", "ReLU"]
    _set_matching_filter(conv, 1, MOTIF)

    found = M.filter_motifs(model, x)          # threshold 0.5 of the maximum (8 - 5 = 3)
    motif = found[1]
    assert motif.name == "filter1" and motif.info["index"] == 1
    assert "".join("ACGT"[i] for i in motif.pwm.argmax(axis=1)) == MOTIF
    assert motif.consensus() == MOTIF and motif.alt_name == MOTIF
    # Exact matches reach 8 - 5 = 3; a window with one mismatch only 6 - 5 = 1 < 1.5:
    # the sites are exactly the planted copies (plus any chance exact match).
    exact = sum(s.count(MOTIF) for s in seqs)
    assert motif.nsites == exact >= planted
    np.testing.assert_allclose(motif.pwm.sum(axis=1), 1.0)
    # With pseudocount 0.5: (nsites + 0.5) / (nsites + 2) on the motif's bases.
    expected = (exact + 0.5) / (exact + 2.0)
    np.testing.assert_allclose(motif.pwm.max(axis=1), expected)
    assert motif.info["max_activation"] == pytest.approx(3.0, rel=1e-5)


def test_top_n_and_a_filter_that_never_fires():
    seqs, _ = _planted(seed=1)
    x = one_hot(seqs)
    model = nn.Sequential(nn.Conv1d(4, 2, 8, padding=4), nn.ReLU(), nn.MaxPool1d(4))
    _set_matching_filter(model[0], 0, MOTIF, bias=0.0)       # fires on partial matches too
    _set_matching_filter(model[0], 1, MOTIF, bias=-100.0)     # never positive
    found = M.filter_motifs(model, x, top_n=20, pseudocount=0.0, batch_size=16)
    # 60 exact copies tie at the top (activation 8): the first 20 are taken, across batches.
    assert sum(s.count(MOTIF) for s in seqs) == 60 and found[0].nsites == 20
    assert found[0].info["max_activation"] == pytest.approx(8.0)
    # 70: the 60 exact copies and the first 10 windows of the next value down.
    assert M.filter_motifs(model, x, top_n=70, batch_size=7)[0].nsites == 70
    assert "".join("ACGT"[i] for i in found[0].pwm.argmax(axis=1)) == MOTIF
    assert found[1].nsites == 0
    np.testing.assert_allclose(found[1].pwm, 0.25)           # nothing counted: uniform
    assert M.first_layer(model) == [model[0], model[1]]


def test_window_alignment_with_valid_padding_stride_and_dilation():
    """The counted window of output t is the input x[t s - p + i d], i = 0..W-1."""
    seq = "CCCCCACACGCCCCCC"          # A at 5, A at 7, G at 9: 'AAG' with dilation 2
    x = one_hot([seq])
    conv = nn.Conv1d(4, 1, 3, dilation=2, stride=1, padding=0)
    _set_matching_filter(conv, 0, "AAG", bias=-2.5)           # only the exact dilated match
    model = nn.Sequential(conv, nn.ReLU())
    (motif,) = M.filter_motifs(model, x, pseudocount=0.0)
    assert motif.nsites == 1
    np.testing.assert_array_equal(motif.pwm, one_hot("AAG")[0].T)
    # Same with padding 3 and stride 2 (output t = 4 reads 8 - 3 + 0, 2, 4 = 5, 7, 9).
    conv2 = nn.Conv1d(4, 1, 3, dilation=2, stride=2, padding=3)
    with minidl.no_grad():
        conv2.weight.data[...] = conv.weight.detach().numpy()
        conv2.bias.data[...] = conv.bias.detach().numpy()
    (motif2,) = M.filter_motifs(nn.Sequential(conv2, nn.ReLU()), x, pseudocount=0.0)
    np.testing.assert_array_equal(motif2.pwm, motif.pwm)


def test_first_layer_of_danq_and_errors():
    model = DanQ(num_classes=2, channels=(5,), kernel_sizes=(7,), pools=(2,), lstm_hidden=4,
                 hidden=4)
    assert M.first_layer(model)[0] is model.features[0]
    acts = M.first_layer_activations(model, one_hot(["ACGT" * 5, "TTTT" * 5]))
    assert acts.shape == (2, 5, 20) and acts.min() >= 0      # after the ReLU
    with pytest.raises(ValueError, match="no Conv1d"):
        M.first_conv1d(nn.Sequential(nn.Flatten(), nn.Linear(4, 1)))
    with pytest.raises(ValueError, match="not one-hot DNA"):
        M.filter_motifs(nn.Sequential(nn.Conv1d(20, 2, 3)), np.zeros((1, 20, 9), np.float32))


def test_information_content_and_logo_heights():
    pwm = np.array([[1.0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0]])
    np.testing.assert_allclose(M.information_content(pwm), [2.0, 0.0, 1.0])
    np.testing.assert_allclose(M.logo_heights(pwm), [[2, 0, 0, 0], [0, 0, 0, 0],
                                                     [0.5, 0.5, 0, 0]])
    # Against a skewed background an A costs less surprise: log2(1 / 0.4).
    bg = [0.4, 0.1, 0.1, 0.4]
    assert M.information_content(pwm[:1], bg)[0] == pytest.approx(np.log2(1 / 0.4))
    x = one_hot(["AACG", "ATNN"])
    np.testing.assert_allclose(M.background_frequencies(x), [3.5, 1.5, 1.5, 1.5] / np.float64(8))


def _example_motifs():
    rng = np.random.default_rng(2)
    out = []
    for i, width in enumerate((6, 1, 11)):
        pwm = rng.dirichlet(np.ones(4) * 0.5, size=width)
        out.append(M.Motif(f"filter{i}", pwm, nsites=10 * i + 3))
    out[0].alt_name = "TATAAA"
    return out


def test_meme_output_parses_back(tmp_path):
    motifs = _example_motifs()
    background = [0.3, 0.2, 0.2, 0.3]
    path = tmp_path / "m.meme"
    M.write_meme(path, motifs, background=background)
    text = path.read_text()
    assert text.startswith("MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n")
    assert "Background letter frequencies\nA 0.300000 C 0.200000 G 0.200000 T 0.300000" in text
    assert "MOTIF filter0 TATAAA\nletter-probability matrix: alength= 4 w= 6 nsites= 3 E= 0" \
        in text
    parsed = M.read_meme(path)
    assert parsed.version == "4" and parsed.alphabet == "ACGT" and parsed.strands == "+ -"
    np.testing.assert_allclose(parsed.background, background)
    assert [m.name for m in parsed.motifs] == ["filter0", "filter1", "filter2"]
    assert [m.alt_name for m in parsed.motifs] == ["TATAAA", "", ""]
    assert [m.nsites for m in parsed.motifs] == [3, 13, 23]
    for mine, back in zip(motifs, parsed.motifs):
        assert back.pwm.shape == mine.pwm.shape
        np.testing.assert_allclose(back.pwm, mine.pwm, atol=5e-7)
    # Writing what was read gives the same text.
    assert M.format_meme(parsed.motifs, parsed.background) == text


def test_parse_handwritten_meme_and_errors():
    text = textwrap.dedent("""\
        MEME version 4

        ALPHABET= ACGT

        strands: +

        Background letter frequencies
        A 0.29 C 0.21
        G 0.21 T 0.29

        MOTIF MA0001.1 AGL3
        letter-probability matrix: alength= 4 w= 2 nsites= 97 E= 1.2e-3

          0.000000  0.969072  0.000000  0.030928
          0.5 0.25 0.25 0.0
        URL http://jaspar.genereg.net/matrix/MA0001.1

        MOTIF second
        letter-probability matrix: alength= 4 w= 1 nsites= 20 E= 0
        0.25 0.25 0.25 0.25
        """)
    parsed = M.parse_meme(text)
    assert parsed.strands == "+"
    np.testing.assert_allclose(parsed.background, [0.29, 0.21, 0.21, 0.29])
    first, second = parsed.motifs
    assert (first.name, first.alt_name, first.nsites, first.evalue) == (
        "MA0001.1", "AGL3", 97, pytest.approx(1.2e-3))
    np.testing.assert_allclose(first.pwm, [[0, 0.969072, 0, 0.030928], [0.5, 0.25, 0.25, 0]])
    assert second.width == 1 and first.consensus() == "CA"

    with pytest.raises(ValueError, match="not a MEME motif file"):
        M.parse_meme("hello\n")
    with pytest.raises(ValueError, match="ends after 1 of 2 rows"):
        M.parse_meme("MEME version 4\nMOTIF x\nletter-probability matrix: alength= 4 w= 2\n"
                     "0.25 0.25 0.25 0.25\n")
    with pytest.raises(ValueError, match="row has 3 values"):
        M.parse_meme("MEME version 4\nMOTIF x\nletter-probability matrix: w= 1\n0.5 0.5 0\n")
    with pytest.raises(ValueError, match="alphabet"):
        M.parse_meme("MEME version 4\nALPHABET= ACDEFGHIKLMNPQRSTVWY\n")
    with pytest.raises(ValueError, match="one word"):
        M.format_meme([M.Motif("two words", np.full((1, 4), 0.25))])


def test_logo_png(tmp_path):
    pytest.importorskip("matplotlib")
    from minidl.bio import plots

    motif = _example_motifs()[0]
    M.save_logo(motif, tmp_path / "logo.png")
    assert (tmp_path / "logo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Signed heights (an attribution map) and the other plots write PNGs too.
    x = one_hot(["ACGTTGCA"])[0]
    attr = np.random.default_rng(3).normal(size=(4, 8))
    plots.plot_sequence_attributions(x, {"saliency": attr}, tmp_path / "seq.png",
                                     ism=np.random.default_rng(4).normal(size=(8, 4)))
    plots.plot_heatmap(attr.T, tmp_path / "heat.png", reference=x)
    plots.plot_image_saliency(np.random.rand(3, 8, 8), np.random.rand(8, 8),
                              tmp_path / "img.png")
    for name in ("seq.png", "heat.png", "img.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_without_matplotlib_the_module_imports_and_logos_say_how(tmp_path, monkeypatch):
    # A fresh interpreter where importing matplotlib fails: the modules still import.
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "import minidl.bio.motifs, minidl.bio.interpret, minidl.bio.plots\n"
            "from minidl.bio.dna_cli import explain\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        M.save_logo(_example_motifs()[0], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("name", ["minidl.bio.interpret", "minidl.bio.motifs"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
