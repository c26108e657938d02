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
