"""``minidl-bio cells`` end to end on a small slice of the shipped blood-cell images, and
transfer learning onto a grey folder dataset with other classes."""

import json

import numpy as np
import pytest

from minidl.bio import datasets
from minidl.bio.cli import main
from minidl.bio.images import stratified_subset

# a 2-epoch model on ~120 images may predict one class only: MCC is then undefined (NaN)
pytestmark = pytest.mark.filterwarnings("ignore:.*undefined:UserWarning")

FAST = ["--channels", "4,8", "--batch-size", "32", "--quiet", "--threads", "1"]


def _slice(path, per_split=(0.01, 0.02, 0.01)):
    """A stratified slice of the real data, saved MedMNIST-style (~120/34/34 images)."""
    with np.load(datasets.dataset_path("pbc_bloodmnist_like_28")) as full:
        arrays = {}
        for split, fraction in zip(("train", "val", "test"), per_split):
            labels = full[f"{split}_labels"]
            keep = stratified_subset(labels[:, 0], fraction, seed=0)
            arrays[f"{split}_images"] = full[f"{split}_images"][keep]
            arrays[f"{split}_labels"] = labels[keep]
    np.savez(path, **arrays)
    return arrays


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cells_cli")
    arrays = _slice(tmp / "slice.npz")
    out = tmp / "run"
    code = main(["cells", "train", "--data", str(tmp / "slice.npz"), "--out", str(out),
                 "--epochs", "2", *FAST])
    assert code == 0
    return tmp, arrays, out


def test_train_writes_every_file(trained):
    _, arrays, out = trained
    for name in ("model.safetensors", "config.json", "metrics.json", "history.csv",
                 "curves.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "balanced_accuracy", "macro_auroc", "mcc",
            "confusion_matrix"} <= set(metrics)
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == len(arrays["test_labels"])
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "cells" and config["input"] == {"channels": 3, "height": 28,
                                                             "width": 28}
    assert len(config["normalization"]["mean"]) == 3
    assert len((out / "history.csv").read_text().splitlines()) == 3
    assert config["training"]["lr"] == 3e-3


def test_evaluate_predict_explain(trained, capsys):
    tmp, arrays, out = trained
    assert main(["cells", "evaluate", "--model", str(out), "--data", str(tmp / "slice.npz"),
                 "--out", str(tmp / "eval")]) == 0
    saved = json.loads((out / "metrics.json").read_text())
    again = json.loads((tmp / "eval" / "metrics.json").read_text())
    assert again["confusion_matrix"] == saved["confusion_matrix"]   # same model, same images
    assert (tmp / "eval" / "confusion.png").exists()

    assert main(["cells", "predict", "--model", str(out), "--images", str(tmp / "slice.npz"),
                 "--out", str(tmp / "pred.tsv")]) == 0
    rows = (tmp / "pred.tsv").read_text().splitlines()
    assert rows[0].startswith("image\tp_0\t") and len(rows) == 1 + len(arrays["test_labels"])
    probs = np.array([[float(v) for v in r.split("\t")[1:-1]] for r in rows[1:]])
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)

    assert main(["cells", "explain", "--model", str(out), "--images", str(tmp / "slice.npz"),
                 "--n", "3", "--out", str(tmp / "sal")]) == 0
    pngs = sorted(p.name for p in (tmp / "sal").glob("saliency_0*.png"))
    assert len(pngs) == 3 and (tmp / "sal" / "saliency_grid.png").exists()
    assert (tmp / "sal" / pngs[0]).read_bytes()[:4] == b"\x89PNG"


def test_fine_tune_on_grey_folder_with_other_classes(trained, tmp_path):
    Image = pytest.importorskip("PIL.Image")

    _, arrays, pretrained = trained
    # a grey dataset of another size, 3 classes, as class folders without split folders
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (tmp_path / "grey" / cls).mkdir(parents=True)
        for i in range(10):
            image = rng.integers(0, 256, (20, 24)).astype(np.uint8)
            Image.fromarray(image).save(tmp_path / "grey" / cls / f"{i}.png")
    out = tmp_path / "tuned"
    assert main(["cells", "train", "--data", str(tmp_path / "grey"), "--out", str(out),
                 "--init-from", str(pretrained), "--freeze-backbone", "--epochs", "1",
                 "--batch-size", "8", "--quiet"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["in_channels"] == 1 and config["model"]["num_classes"] == 3
    assert config["model"]["channels"] == [4, 8]        # the pretrained architecture
    assert config["training"]["init_from"]["freeze_backbone"] is True
    assert config["training"]["lr"] == 3e-3         # a new head alone: the usual rate
    whole = tmp_path / "whole"
    assert main(["cells", "train", "--data", str(tmp_path / "grey"), "--out", str(whole),
                 "--init-from", str(pretrained), "--epochs", "1", "--batch-size", "8",
                 "--quiet"]) == 0
    # fine-tuning the whole network: the lower default peak rate
    assert json.loads((whole / "config.json").read_text())["training"]["lr"] == 1e-3
    from minidl.io import safetensors

    before = safetensors.load(pretrained / "model.safetensors")
    after = safetensors.load(out / "model.safetensors")
    # the frozen backbone is the pretrained one (first conv summed over RGB)
    np.testing.assert_allclose(after["features.0.0.weight"],
                               before["features.0.0.weight"].sum(axis=1, keepdims=True),
                               rtol=1e-6)
    np.testing.assert_array_equal(after["features.1.1.running_mean"],
                                  before["features.1.1.running_mean"])
    assert after["head.1.weight"].shape == (3, 8)
    assert main(["cells", "predict", "--model", str(out),
                 "--images", str(tmp_path / "grey" / "a" / "0.png")]) == 0


def test_user_errors_exit_2(tmp_path, capsys):
    assert main(["cells", "train", "--data", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "o"), "--quiet"]) == 2
    assert "neither a .npz file" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert main(["cells", "evaluate", "--model", "arabidopsis_promoters", "--data",
                 str(tmp_path / "bad.npz")]) == 2
    assert "not a cell-image model" in capsys.readouterr().err


def test_shipped_model_on_real_test_images():
    from minidl.bio.cell_models import build_cell_model
    from minidl.bio.cells_cli import _prepare, predict_proba
    from minidl.bio.images import load_image_data
    from minidl.bio.modelio import load_model_dir

    model, config = load_model_dir("blood_cells_cnn", build_cell_model)
    assert config["classes"] == datasets.class_names("pbc_bloodmnist_like_28")
    data = load_image_data("pbc_bloodmnist_like_28")
    keep = stratified_subset(data.labels["test"], 0.1, seed=1)   # 342 images, ~1 s
    proba = predict_proba(model, _prepare(data.images["test"][keep], config), tta=False)
    assert np.mean(proba.argmax(axis=1) == data.labels["test"][keep]) > 0.9
