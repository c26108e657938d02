"""Reverse complement and shift augmentation on one-hot batches."""

import numpy as np

import minidl
from minidl.bio import augment, encode
from minidl.bio.alphabets import reverse_complement


def test_onehot_reverse_complement_matches_the_string_one():
    seqs = ["ACGTRYN", "GGATCCA"]
    x = encode.one_hot(seqs)
    expected = encode.one_hot([reverse_complement(s) for s in seqs])
    np.testing.assert_array_equal(augment.reverse_complement_onehot(x), expected)
    t = augment.reverse_complement_onehot(minidl.tensor(x))
    np.testing.assert_array_equal(t.numpy(), expected)


def test_random_reverse_complement_is_seeded():
    x = encode.one_hot(["AAAA", "ACGG", "CCCT", "GATC"] * 4)
    a = augment.RandomReverseComplement(p=0.5, seed=3)(x)
    b = augment.RandomReverseComplement(p=0.5, seed=3)(x)
    np.testing.assert_array_equal(a, b)
    flipped = [not np.array_equal(a[i], x[i]) for i in range(len(x))]
    assert 0 < sum(flipped) < len(x)
    np.testing.assert_array_equal(augment.RandomReverseComplement(p=0.0)(x), x)


def test_random_shift_moves_and_fills_with_unknown():
    x = encode.one_hot(["ACGTACGT"])
    out = augment.RandomShift(max_shift=2, seed=0)(np.repeat(x, 20, axis=0))
    assert out.shape == (20, 4, 8)
    seen = set()
    for row in out:
        s = encode.decode_one_hot(row)
        shift = s.count("N") if s.startswith("N") else -s.count("N")
        seen.add(shift)
        core = s.strip("N")
        assert core in "ACGTACGT"
    assert len(seen) > 1
