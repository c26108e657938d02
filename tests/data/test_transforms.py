"""Image transforms: shapes and labels kept, seeded, and the same geometric change applied
to an image and its mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl.data import transforms as T

FILL = -1  # fill of vacated pixels, in the image and the mask alike


def _geometric(seed):
    return [
        T.RandomFlip(seed=seed),
        T.RandomFlip(p=1.0, horizontal=False, seed=seed),
        T.RandomRot90(seed=seed),
        T.RandomShift(2, fill=FILL, mask_fill=FILL, seed=seed),
        T.RandomShift((0, 3), fill=FILL, mask_fill=FILL, seed=seed),
        T.RandomCrop(3, seed=seed),
        T.RandomCrop((4, 2), padding=1, fill=FILL, mask_fill=FILL, seed=seed),
        T.Compose([T.RandomFlip(seed=seed), T.RandomRot90(seed=seed + 1),
                   T.RandomShift(1, fill=FILL, mask_fill=FILL, seed=seed + 2)]),
    ]


def _intensity(seed):
    return [T.Normalize(0.5, 2.0), T.PercentileNormalize(), T.GaussianNoise(0.1, seed=seed),
            T.BrightnessContrast(0.2, 0.3, seed=seed)]


@st.composite
def _image_and_mask(draw):
    """A square image whose channel 0 holds each pixel's id, and a mask of those ids, so
    that after a joint transform they must still agree pixel for pixel."""
    side = draw(st.integers(4, 7))
    channels = draw(st.sampled_from([None, 1, 3]))
    ids = np.arange(side * side, dtype=np.int64).reshape(side, side)
    if channels is None:
        image = ids.astype(np.float32)
    else:
        noise = np.random.default_rng(side).normal(size=(channels, side, side))
        image = noise.astype(np.float32)
        image[0] = ids
    mask = ids if draw(st.booleans()) else np.stack([ids, ids + 100])
    return image, mask


@given(_image_and_mask(), st.integers(0, 10_000))
def test_geometric_transforms_move_image_and_mask_together(pair, seed):
    image, mask = pair
    image_before, mask_before = image.copy(), mask.copy()
    for t in _geometric(seed):
        out_image, out_mask = t(image, mask)
        pixel_ids = out_image if out_image.ndim == 2 else out_image[0]
        mask_ids = out_mask if out_mask.ndim == 2 else out_mask[0]
        np.testing.assert_array_equal(pixel_ids, mask_ids, err_msg=repr(t))
        if out_mask.ndim == 3:  # every mask channel moved alike
            moved = out_mask[1] != FILL
            np.testing.assert_array_equal(out_mask[1][moved], out_mask[0][moved] + 100)
        assert out_mask.dtype == mask.dtype and out_image.dtype == image.dtype
        assert out_image.shape[:-2] == image.shape[:-2] and out_mask.shape[:-2] == mask.shape[:-2]
        # labels are only moved (or filled), never invented
        labels_before = set(np.unique(mask if mask.ndim == 2 else mask[0]))
        assert set(np.unique(mask_ids)) <= labels_before | {FILL}
    np.testing.assert_array_equal(image, image_before)  # inputs untouched
    np.testing.assert_array_equal(mask, mask_before)


@given(_image_and_mask(), st.integers(0, 10_000))
def test_shapes_are_kept(pair, seed):
    image, mask = pair
    side = image.shape[-1]
    for t in _geometric(seed)[:5] + _intensity(seed):
        assert t(image).shape == image.shape, repr(t)
    assert T.RandomCrop(3, seed=seed)(image).shape == (*image.shape[:-2], 3, 3)
    assert T.RandomCrop((4, 2), padding=1, seed=seed)(image).shape == (*image.shape[:-2], 4, 2)
    # flips and rotations only permute the pixels: the multiset of labels is unchanged
    for t in (T.RandomFlip(seed=seed), T.RandomRot90(seed=seed)):
        _, out_mask = t(image, mask)
        assert sorted(out_mask.ravel().tolist()) == sorted(mask.ravel().tolist())
    assert side >= 4


@given(_image_and_mask(), st.integers(0, 10_000))
def test_intensity_transforms_leave_the_mask_alone(pair, seed):
    image, mask = pair
    for t in _intensity(seed):
        out_image, out_mask = t(image, mask)
        np.testing.assert_array_equal(out_mask, mask)
        assert out_mask is not mask and out_image.shape == image.shape


def test_same_seed_same_sequence_and_calls_differ():
    image = np.random.default_rng(0).normal(size=(2, 6, 6)).astype(np.float32)
    for make in (lambda s: T.Compose(_geometric(s)[:5] + _intensity(s)),
                 lambda s: T.RandomCrop(3, padding=2, seed=s)):
        a, b = make(4), make(4)
        outputs_a = [a(image) for _ in range(6)]
        outputs_b = [b(image) for _ in range(6)]
        for x, y in zip(outputs_a, outputs_b):
            np.testing.assert_array_equal(x, y)
        assert any(not np.array_equal(outputs_a[0], o) for o in outputs_a[1:])


def test_shared_generator_and_global_seed():
    image = np.arange(16.0).reshape(4, 4)
    first = T.RandomRot90(seed=np.random.default_rng(3))
    second = T.RandomRot90(seed=np.random.default_rng(3))
    assert all(np.array_equal(first(image), second(image)) for _ in range(5))
    unseeded = T.Compose([T.RandomRot90(), T.GaussianNoise(0.5)])
    minidl.manual_seed(9)
    run1 = [unseeded(image) for _ in range(4)]
    minidl.manual_seed(9)
    run2 = [unseeded(image) for _ in range(4)]
    for x, y in zip(run1, run2):
        np.testing.assert_array_equal(x, y)


def test_flip_rotation_shift_and_crop_values_by_hand():
    image = np.array([[1, 2, 3], [4, 5, 6]])
    assert T.RandomFlip(p=1.0, vertical=False)(image).tolist() == [[3, 2, 1], [6, 5, 4]]
    assert T.RandomFlip(p=1.0, horizontal=False)(image).tolist() == [[4, 5, 6], [1, 2, 3]]
    assert T.RandomFlip(p=0.0)(image).tolist() == image.tolist()
    rotations = {tuple(map(tuple, T.RandomRot90(seed=s)(image).tolist())) for s in range(30)}
    assert rotations == {((1, 2, 3), (4, 5, 6)), ((3, 6), (2, 5), (1, 4)),
                         ((6, 5, 4), (3, 2, 1)), ((4, 1), (5, 2), (6, 3))}
    shifted = {tuple(map(tuple, T.RandomShift((0, 1), fill=0, seed=s)(image).tolist()))
               for s in range(30)}
    assert shifted == {((1, 2, 3), (4, 5, 6)), ((0, 1, 2), (0, 4, 5)), ((2, 3, 0), (5, 6, 0))}
    crops = {tuple(map(tuple, T.RandomCrop((1, 2), seed=s)(image).tolist())) for s in range(40)}
    assert crops == {((1, 2),), ((2, 3),), ((4, 5),), ((5, 6),)}


def test_normalize_and_percentile_normalize_by_hand():
    image = np.stack([np.full((2, 2), 3.0), np.full((2, 2), -1.0)])
    out = T.Normalize([1.0, 0.0], [2.0, 0.5])(image)
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], -2.0)
    with pytest.raises(ValueError, match="channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(image)
    with pytest.raises(ValueError, match="std"):
        T.Normalize(0.0, 0.0)

    # 0..99 shuffled: the 1st and 99.8th percentiles (linear interpolation) are 0.99, 98.802
    values = np.random.default_rng(0).permutation(100).astype(np.float32).reshape(10, 10)
    out = T.PercentileNormalize(1, 99.8)(np.stack([values, 10 * values + 5]))
    expected = (values - 0.99) / (98.802 - 0.99)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], expected, rtol=1e-5, atol=1e-6)  # per channel
    pooled = T.PercentileNormalize(0, 100, per_channel=False)(np.stack([values, values + 100]))
    np.testing.assert_allclose([pooled[0].min(), pooled[0].max(), pooled[1].max()],
                               [0.0, 99 / 199, 1.0], rtol=1e-6)
    clipped = T.PercentileNormalize(10, 90, clip=True)(values)
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    constant = T.PercentileNormalize()(np.full((3, 3), 7, dtype=np.uint16))
    assert constant.dtype == np.float32 and np.all(constant == 0)
    with pytest.raises(ValueError, match="low < high"):
        T.PercentileNormalize(50, 10)


def test_noise_and_brightness_contrast_statistics():
    image = np.zeros((1, 100, 100), dtype=np.float32)
    noisy = T.GaussianNoise(0.2, mean=1.0, seed=0)(image)
    assert abs(noisy.mean() - 1.0) < 0.01 and abs(noisy.std() - 0.2) < 0.01
    np.testing.assert_array_equal(T.GaussianNoise(0.2, p=0.0, seed=0)(image), image)
    ramp = np.linspace(0, 1, 50, dtype=np.float32).reshape(1, 5, 10)
    for seed in range(5):
        out = T.BrightnessContrast(brightness=0.2, contrast=0.5, seed=seed)(ramp)
        # an affine map of the pixels: offset within +-0.2, slope within [0.5, 1.5]
        slope, offset = np.polyfit(ramp.ravel(), out.ravel(), 1)
        assert 0.5 - 1e-5 <= slope <= 1.5 + 1e-5
        assert abs(out.mean() - ramp.mean()) <= 0.2 + 1e-5
        assert np.isclose(offset + slope * ramp.mean(), out.mean(), atol=1e-5)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        T.RandomFlip(seed=0)(np.zeros(5))
    with pytest.raises(ValueError, match="differ in"):
        T.RandomFlip(seed=0)(np.zeros((3, 4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="larger than the image"):
        T.RandomCrop(5, seed=0)(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="seed"):
        T.RandomRot90(seed="x")
    with pytest.raises(ValueError, match="p must be"):
        T.RandomFlip(p=2.0)
    tensor_out = T.RandomFlip(seed=0)(minidl.ones(2, 3, 3))
    assert isinstance(tensor_out, np.ndarray) and tensor_out.shape == (2, 3, 3)
