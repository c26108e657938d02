"""Sequence models: any length, any number of classes, rebuilt from their config."""

import numpy as np
import pytest

import minidl
from minidl.bio.models import DanQ, SequenceCNN, build_model


@pytest.mark.parametrize("cls", [SequenceCNN, DanQ])
@pytest.mark.parametrize("num_classes,length", [(2, 40), (2, 9), (4, 57)])
def test_any_length_and_class_count(cls, num_classes, length):
    kwargs = dict(channels=(8, 8), kernel_sizes=(5, 3), pools=(2, 2))
    if cls is DanQ:
        kwargs.update(lstm_hidden=4)
    else:
        kwargs.update(pool_bins=3)  # coarse positions: adaptive, so any length works
    model = cls(num_classes=num_classes, hidden=8, **kwargs)
    x = minidl.tensor(np.random.default_rng(0).random((3, 4, length), dtype=np.float32))
    out = model(x)
    assert out.shape == ((3,) if num_classes == 2 else (3, num_classes))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    clone = build_model(model.config)
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    np.testing.assert_array_equal(clone(x).detach().numpy(), model(x).detach().numpy())


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"model": "transformer"})
    with pytest.raises(ValueError, match="bad config"):
        build_model({"model": "cnn", "colour": 3})
    with pytest.raises(ValueError, match="same length"):
        SequenceCNN(channels=(8,), kernel_sizes=(3, 3), pools=(1,))
    with pytest.raises(ValueError, match="at least 2 classes"):
        SequenceCNN(num_classes=1)


def test_kmer_spectrum_hand_counts():
    """Frequencies written out by hand; the 'N' column spoils every window through it."""
    from minidl.bio.encode import one_hot
    from minidl.bio.models import KmerSpectrum

    x = minidl.tensor(one_hot(["ACGTA", "AANAA"]))
    f = KmerSpectrum((1, 2)).forward(x).numpy()
    assert f.shape == (2, 4 + 16)
    # ACGTA: 1-mers A,C,G,T,A -> A 2/5, C G T 1/5 each
    np.testing.assert_allclose(f[0, :4], [0.4, 0.2, 0.2, 0.2])
    # 2-mers AC, CG, GT, TA (index 4*first + second): AC=1, CG=6, GT=11, TA=12
    expected = np.zeros(16)
    expected[[1, 6, 11, 12]] = 0.25
    np.testing.assert_allclose(f[0, 4:], expected)
    # AANAA: known 1-mers A,A,A,A; known 2-mers AA (positions 0 and 3) only
    np.testing.assert_allclose(f[1, :4], [1, 0, 0, 0])
    expected = np.zeros(16)
    expected[0] = 1.0
    np.testing.assert_allclose(f[1, 4:], expected)


def test_kmer_spectrum_short_sequences_and_errors():
    from minidl.bio.models import KmerSpectrum

    x = minidl.tensor(np.eye(4, dtype=np.float32)[None, :, :2])       # "AC", shorter than k=3
    f = KmerSpectrum((3,)).forward(x).numpy()
    np.testing.assert_array_equal(f, np.zeros((1, 64)))
    with pytest.raises(ValueError, match="one-hot"):
        KmerSpectrum((2,)).forward(minidl.tensor(np.zeros((2, 5, 7), np.float32)))
    with pytest.raises(ValueError, match="positive"):
        KmerSpectrum((0,))


@pytest.mark.parametrize("num_classes,length", [(2, 30), (3, 13)])
def test_wide_and_deep_cnn(num_classes, length):
    """The k-mer branch adds its logits; the model still works for any length and is
    rebuilt from its config; old configs without ``kmers`` still build."""
    rng = np.random.default_rng(1)
    x = minidl.tensor(np.eye(4, dtype=np.float32)[rng.integers(0, 4, (5, length))]
                      .transpose(0, 2, 1).copy())
    model = SequenceCNN(num_classes=num_classes, channels=(8,), kernel_sizes=(5,), pools=(2,),
                        hidden=8, pool_bins=2, kmers=(2, 3))
    out = model(x)
    assert out.shape == ((5,) if num_classes == 2 else (5, num_classes))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    deep_only = model.head(minidl.cat(
        [model.features(x).amax(dim=-1), model.features(x).mean(dim=-1),
         model.bins(model.features(x)).flatten(1)], dim=1))
    wide = model.wide(x)
    total = (deep_only + wide).detach().numpy()
    np.testing.assert_allclose(model(x).detach().numpy(), total.squeeze(-1) if num_classes == 2
                               else total, rtol=1e-6, atol=1e-6)
    clone = build_model(model.config)
    clone.load_state_dict(model.state_dict())
    clone.eval()
    np.testing.assert_array_equal(clone(x).detach().numpy(), model(x).detach().numpy())
    config = dict(model.config)
    del config["kmers"]
    assert build_model(config).wide is None
