"""Alphabets, one-hot and token encoders, reverse complement (hand-written expectations)."""

import numpy as np
import pytest

from minidl.bio import alphabets, encode
from minidl.bio.alphabets import DNA, PROTEIN, reverse_complement
from minidl.bio.io import read_fasta

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"

A, C, G, T = np.eye(4, dtype=np.float32)
N = np.full(4, 0.25, dtype=np.float32)


def test_one_hot_of_the_tiny_fasta_fixture():
    records = read_fasta(FIXTURES / "tiny.fa", alphabet="dna")
    assert [r.id for r in records] == ["seq1", "seq2", "seq3"]
    assert records[0].description == "first record"
    assert records[0].sequence == "ACGTacgt"  # multi-line record joined, blank line ignored
    x = encode.one_hot(records[0].sequence)[0]
    np.testing.assert_array_equal(x.T, np.stack([A, C, G, T, A, C, G, T]))
    x = encode.one_hot(records[1].sequence)[0]
    R, Y = (A + G) / 2, (C + T) / 2
    np.testing.assert_array_equal(x.T, np.stack([N, N, R, Y]))
    x = encode.one_hot(records[2].sequence)[0]
    W, S, K, M = (A + T) / 2, (C + G) / 2, (G + T) / 2, (A + C) / 2
    np.testing.assert_array_equal(x.T, np.stack([A, C, G, T, N, W, S, K, M]))
    assert np.allclose(x.sum(axis=0), 1.0)  # every row a probability distribution


def test_three_way_codes_and_rna_u():
    x = encode.one_hot("BDHVU")[0].T
    third = np.float32(1 / 3)
    np.testing.assert_allclose(x[0], [0, third, third, third])
    np.testing.assert_allclose(x[1], [third, 0, third, third])
    np.testing.assert_allclose(x[2], [third, third, 0, third])
    np.testing.assert_allclose(x[3], [third, third, third, 0])
    np.testing.assert_array_equal(x[4], T)


def test_padding_and_cropping_with_masks():
    x, mask = encode.one_hot(["AC", "ACGTA"], length=3, return_mask=True)
    np.testing.assert_array_equal(x[0].T, np.stack([A, C, np.zeros(4)]))  # padding: no base
    np.testing.assert_array_equal(x[1].T, np.stack([C, G, T]))  # centre kept
    np.testing.assert_array_equal(mask, [[True, True, False], [True, True, True]])
    left = encode.one_hot(["ACGTA"], length=3, crop="left")[0].T
    np.testing.assert_array_equal(left, np.stack([A, C, G]))


def test_tokens():
    tok, mask = encode.tokens(["ACGT", "nR"], length=4, return_mask=True)
    assert tok.tolist() == [[0, 1, 2, 3], [4, 4, -1, -1]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert encode.tokens("U").tolist() == [[3]]  # RNA U reads as T
    assert encode.tokens("ACDY", alphabet="protein").tolist() == [[0, 1, 2, 19]]
    assert encode.tokens("XUOB", alphabet="protein").tolist() == [[20, 1, 8, 20]]


def test_protein_one_hot_rare_codes():
    x = encode.one_hot("XBZ", alphabet="protein")[0].T
    np.testing.assert_allclose(x[0], np.full(20, 1 / 20))
    b = np.zeros(20)
    b[PROTEIN.letters.index("D")] = b[PROTEIN.letters.index("N")] = 0.5
    np.testing.assert_allclose(x[1], b)
    assert x[2][PROTEIN.letters.index("E")] == 0.5


def test_invalid_characters_are_named():
    with pytest.raises(ValueError, match=r"sequence #1 has an invalid character 'X' at position 3"):
        encode.one_hot(["ACGT", "ACXT"])
    with pytest.raises(ValueError, match=r"sequence r2 .* '\*' at position 2"):
        encode.tokens(["AC", "A*"], ids=["r1", "r2"])
    with pytest.raises(ValueError, match="different lengths"):
        encode.one_hot(["A", "AC"])
    with pytest.raises(ValueError, match="unknown alphabet"):
        alphabets.get_alphabet("rna2")


@pytest.mark.parametrize("seq,expected", [
    ("ACGT", "ACGT"),          # its own reverse complement
    ("AAAC", "GTTT"),
    ("acgN", "Ncgt"),
    ("RYKMSWBDHV", "BDHVWSKMRY"),
    ("", ""),
])
def test_reverse_complement_of_known_sequences(seq, expected):
    assert reverse_complement(seq) == expected
    assert reverse_complement(reverse_complement(seq)) == seq


def test_decode_round_trip():
    assert encode.decode_one_hot(encode.one_hot("GATTACAN")[0]) == "GATTACAN"
    assert DNA.size == 4 and PROTEIN.size == 20 and PROTEIN.unknown_token == 20
