"""Cell images: readers (npz, folders, bad files), normalisation, augmentation, models and
transfer learning, on tiny fixtures written by the tests."""

import sys
import types

import numpy as np
import pytest

import minidl
from minidl.bio import images as imio
from minidl.bio.cell_models import (
    CellCNN,
    CellResNet,
    adapt_input_channels,
    build_cell_model,
)
from minidl.bio.cells_cli import _transfer, predict_proba, saliency

try:
    from PIL import Image as PIL
except ImportError:   # only the tests that write PNG files need Pillow
    PIL = None
needs_pil = pytest.mark.skipif(PIL is None, reason="Pillow is not installed")


def _npz(path, colour, flat_labels=False, n=(6, 3, 3), **extra):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, 5, 7, 3) if colour else (count, 5, 7)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape).astype(np.uint8)
        labels = np.arange(count) % 3
        arrays[f"{split}_labels"] = labels if flat_labels else labels[:, None].astype(np.uint8)
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


# ------------------------------------------------------------------ readers


def test_read_npz_grey(tmp_path):
    arrays = _npz(tmp_path / "grey.npz", colour=False)
    data = imio.read_npz(tmp_path / "grey.npz")
    assert data.images["train"].shape == (6, 1, 5, 7)
    np.testing.assert_array_equal(data.images["valid"][:, 0], arrays["val_images"])
    assert data.labels["test"].tolist() == [0, 1, 2] and data.classes == ["0", "1", "2"]
    assert data.channels == 1


def test_read_npz_colour_flat_labels_and_class_names(tmp_path):
    arrays = _npz(tmp_path / "rgb.npz", colour=True, flat_labels=True,
                  class_names=np.array(["a", "b", "c"]))
    data = imio.read_npz(tmp_path / "rgb.npz")
    assert data.images["train"].shape == (6, 3, 5, 7)
    # channels first: pixel (row 1, column 2) of image 0 keeps its RGB triple
    np.testing.assert_array_equal(data.images["train"][0, :, 1, 2],
                                  arrays["train_images"][0, 1, 2])
    assert data.labels["train"].dtype == np.int64 and data.classes == ["a", "b", "c"]


def test_read_npz_errors(tmp_path):
    np.savez(tmp_path / "nosplit.npz", train_images=np.zeros((2, 4, 4)),
             train_labels=np.zeros(2))
    with pytest.raises(ValueError, match="nosplit.npz: no val_images"):
        imio.read_npz(tmp_path / "nosplit.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: not a readable .npz"):
        imio.read_npz(tmp_path / "broken.npz")
    _npz(tmp_path / "bad_labels.npz", colour=False,
         train_labels=np.zeros((6, 2), np.uint8))
    with pytest.raises(ValueError, match="train_labels has shape"):
        imio.read_npz(tmp_path / "bad_labels.npz")


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array).save(path)


@needs_pil
def test_read_folder_with_splits(tmp_path):
    rng = np.random.default_rng(1)
    for split in ("train", "valid", "test"):
        for cls in ("blast", "normal"):
            for i in range(2):
                _write_png(tmp_path / split / cls / f"{i}.png",
                           rng.integers(0, 256, (6, 8, 3)).astype(np.uint8))
    data = imio.read_folder(tmp_path)
    assert data.classes == ["blast", "normal"]
    assert data.images["train"].shape == (4, 3, 6, 8)
    assert data.labels["valid"].tolist() == [0, 0, 1, 1]
    expected = np.asarray(PIL.open(tmp_path / "test" / "normal" / "1.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(data.images["test"][3], expected)


@needs_pil
def test_read_folder_auto_split_grey_and_sizes(tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("a", "b"):
        for i in range(10):
            size = (12, 12) if i % 2 else (16, 10)     # sizes differ: resized to the median
            _write_png(tmp_path / cls / f"{i}.png", rng.integers(0, 256, size).astype(np.uint8))
    data = imio.read_folder(tmp_path, seed=3)
    assert {s: len(v) for s, v in data.labels.items()} == {"train": 16, "valid": 2, "test": 2}
    assert data.images["train"].shape[1:] == (1, 14, 11)
    again = imio.read_folder(tmp_path, seed=3)
    assert again.names == data.names            # the split is seeded


@needs_pil
def test_read_folder_bad_file_names_it(tmp_path):
    _write_png(tmp_path / "a" / "ok.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png: cannot read this image"):
        imio.read_image(tmp_path / "b" / "broken.png")
    with pytest.raises(ValueError, match="sub-folder per class"):
        imio.read_folder(tmp_path / "a")
    with pytest.raises(ValueError, match="unsupported image type"):
        imio.read_image(tmp_path / "notes.txt")


def test_missing_optional_readers_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tifffile", None)
    with pytest.raises(ImportError, match="pip install tifffile"):
        imio.read_image(tmp_path / "x.tif")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install Pillow"):
        imio.read_image(tmp_path / "x.png")


@pytest.mark.parametrize("stored, expected", [((10, 12, 3), (3, 10, 12)),
                                              ((5, 10, 12), (5, 10, 12)),
                                              ((10, 12), (1, 10, 12))])
def test_tiff_keeps_every_channel(tmp_path, monkeypatch, stored, expected):
    array = np.arange(np.prod(stored), dtype=np.uint16).reshape(stored)
    fake = types.SimpleNamespace(imread=lambda path: array)
    monkeypatch.setitem(sys.modules, "tifffile", fake)
    out = imio.read_image(tmp_path / "cells.tif")
    assert out.shape == expected and out.dtype == np.uint16
    if stored == (10, 12, 3):
        np.testing.assert_array_equal(out[2], array[:, :, 2])


def test_real_tifffile_roundtrip(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    array = np.arange(4 * 9 * 7, dtype=np.uint16).reshape(4, 9, 7)
    tifffile.imwrite(tmp_path / "four.tif", array, photometric="minisblack")
    np.testing.assert_array_equal(imio.read_image(tmp_path / "four.tif"), array)


def test_shipped_dataset_loads_by_name():
    data = imio.load_image_data("pbc_bloodmnist_like_28")
    assert data.images["train"].shape == (11967, 3, 28, 28)
    assert len(data.labels["valid"]) == 1710 and len(data.labels["test"]) == 3415
    assert data.classes[0] == "basophil" and len(data.classes) == 8


# ------------------------------------------------------------------ normalisation, augmentation


def test_percentile_normalize_per_channel_and_standardize():
    x = np.zeros((2, 2, 4, 4), np.float32)
    x[:, 0] = np.arange(16).reshape(4, 4)
    x[:, 1] = 100 + 10 * np.arange(16).reshape(4, 4)
    out = imio.percentile_normalize(x, 0, 100)
    np.testing.assert_allclose(out[:, 0], out[:, 1], atol=1e-6)   # each channel to [0, 1]
    assert out.min() == 0 and abs(out.max() - 1) < 1e-5
    spec = {"method": "percentile", "low": 0, "high": 100}
    spec["mean"], spec["std"] = imio.standardize_stats(imio.normalize_images(x, spec))
    z = imio.normalize_images(x, spec)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_augmentation_keeps_shape_and_labels_and_is_seeded():
    from minidl.data import DataLoader, TensorDataset, TransformDataset

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 9, 9)).astype(np.float32)
    y = np.arange(12) % 4

    def epoch(seed):
        ds = TransformDataset(TensorDataset(x, y), transform=imio.augmentation(seed))
        return [(np.asarray(xb), np.asarray(yb))
                for xb, yb in DataLoader(ds, batch_size=5, shuffle=True, generator=seed)]

    first, again, other = epoch(7), epoch(7), epoch(8)
    for (xa, ya), (xb, yb) in zip(first, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    assert sum(len(b[1]) for b in first) == 12
    assert all(b[0].shape[1:] == (3, 9, 9) for b in first)
    # each image keeps its own label (the transform touches the image only)
    ds = TransformDataset(TensorDataset(x, y), transform=imio.augmentation(1))
    for i in range(12):
        image, label = ds[i]
        assert label == y[i] and image.shape == x[i].shape
    rect = imio.augmentation(3, square=False)
    assert rect(np.zeros((1, 6, 10), np.float32)).shape == (1, 6, 10)


def test_resize_image_bilinear():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    small = imio.resize_image(image, 2, 2)
    np.testing.assert_allclose(small[0], [[2.5, 4.5], [10.5, 12.5]])
    assert imio.resize_image(image, 7, 3).shape == (1, 7, 3)


# ------------------------------------------------------------------ models and transfer


@pytest.mark.parametrize("config", [
    {"model": "cnn", "num_classes": 5, "in_channels": 3, "channels": [4, 8]},
    {"model": "resnet", "num_classes": 3, "in_channels": 1, "widths": [4, 8],
     "blocks_per_stage": 1},
])
def test_models_any_size_and_rebuild(config):
    model = build_cell_model(config)
    assert model.config == build_cell_model(model.config).config
    for h, w in ((28, 28), (13, 40), (3, 3)):
        out = model(minidl.randn(2, config["in_channels"], h, w))
        assert out.shape == (2, config["num_classes"])
    with pytest.raises(ValueError, match=r"expected images \(N, "):
        model(minidl.randn(2, config["in_channels"] + 1, 8, 8))


def test_adapt_input_channels_grey_equals_replicated_colour():
    minidl.manual_seed(0)
    colour = CellCNN(4, in_channels=3, channels=(4,))
    grey = CellCNN(6, in_channels=1, channels=(4,))
    _transfer(grey, colour, in_channels=1)
    colour.eval()
    grey.eval()
    image = minidl.randn(2, 1, 6, 6)
    replicated = minidl.from_numpy(np.repeat(image.numpy(), 3, axis=1))
    with minidl.no_grad():
        np.testing.assert_allclose(grey.embed(image).numpy(),
                                   colour.embed(replicated).numpy(), rtol=1e-4, atol=1e-5)
    w = np.random.default_rng(0).normal(size=(2, 1, 3, 3))
    assert adapt_input_channels(w, 1) is w


def test_transfer_loads_backbone_with_new_head_and_freezes():
    minidl.manual_seed(0)
    pretrained = CellResNet(8, in_channels=3, widths=(4, 8), blocks_per_stage=1)
    model = CellResNet(3, in_channels=3, widths=(4, 8), blocks_per_stage=1)
    copied = _transfer(model, pretrained, in_channels=3)
    src, dst = pretrained.state_dict(), model.state_dict()
    assert copied == sum(1 for k in src if not k.startswith("head."))
    for key in src:
        if not key.startswith("head."):
            np.testing.assert_array_equal(np.asarray(dst[key]), np.asarray(src[key]))
    assert tuple(dst["head.1.weight"].shape) == (3, 8)

    model.freeze_backbone()
    assert all(not p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert model.head.training and not model.features.training   # frozen BN stays in eval
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    optimizer = minidl.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = minidl.nn.CrossEntropyLoss()(model(minidl.randn(4, 3, 8, 8)),
                                        minidl.from_numpy(np.array([0, 1, 2, 0])))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    for key in before:   # backbone weights and BN running statistics untouched
        same = np.array_equal(before[key], np.asarray(after[key]))
        assert same == (not key.startswith("head.")), key


def test_mismatched_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="--init-from"):
        _transfer(CellCNN(3, channels=(4, 8)), CellCNN(3, channels=(4, 16)), in_channels=3)


def test_tta_and_saliency_shapes():
    minidl.manual_seed(0)
    model = CellCNN(3, in_channels=2, channels=(4,))
    x = np.random.default_rng(0).normal(size=(5, 2, 8, 8)).astype(np.float32)
    proba = predict_proba(model, x, tta=True, batch_size=2)
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)
    sal, target = saliency(model, x)
    assert sal.shape == (5, 8, 8) and (sal >= 0).all() and target.shape == (5,)
    assert (target == predict_proba(model, x, tta=False).argmax(axis=1)).all()


def test_confusion_png_without_matplotlib(tmp_path, monkeypatch):
    from minidl.bio.cells_cli import write_confusion_png

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    used = write_confusion_png([[5, 1], [0, 7]], ["blast", "normal"], tmp_path / "cm.png")
    assert used == "builtin"
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["minidl.bio.images", "minidl.bio.cell_models",
                                  "minidl.bio.cells_cli"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 or name == "minidl.bio.cells_cli"
    assert result.failed == 0
