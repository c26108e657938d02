"""``minidl-bio dna`` end to end on a small slice of the shipped data."""

import csv
import gzip
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minidl.bio import datasets
from minidl.bio.cli import main


def _slice(tmp_path, n_per_split=(160, 40, 40), with_split=True):
    """A small table of real promoter / non-promoter rows (balanced)."""
    rows = list(csv.DictReader(gzip.open(datasets.dataset_path(
        "arabidopsis_nontata_promoters"), "rt")))
    out = []
    for split, n in zip(("train", "valid", "test"), n_per_split):
        for label in ("0", "1"):
            out += [r for r in rows if r["split"] == split and r["label"] == label][: n // 2]
    path = tmp_path / ("slice.csv" if with_split else "nosplit.tsv")
    delim = "," if with_split else "\t"
    with open(path, "w", newline="") as fh:
        fields = ["id", "sequence", "label"] + (["split"] if with_split else [])
        w = csv.DictWriter(fh, fieldnames=fields, delimiter=delim, extrasaction="ignore")
        w.writeheader()
        w.writerows(out)
    return path, out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dna_cli")
    table, rows = _slice(tmp)
    out = tmp / "run"
    # a fixed k-mer weight, so the saved model is always the CNN + k-mer blend
    code = main(["dna", "train", "--data", str(table), "--out", str(out), "--epochs", "2",
                 "--batch-size", "32", "--quiet", "--backend", "numpy", "--kmer-weight", "0.3"])
    assert code == 0
    return tmp, table, rows, out


def test_train_writes_every_file(trained):
    _, _, _, out = trained
    for name in ("model.safetensors", "config.json", "metrics.json", "history.csv",
                 "curves.png"):
        assert (out / name).exists(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "mcc", "auroc", "auprc", "recall", "n_test"} <= set(metrics)
    assert metrics["n_test"] == 40 and set(metrics["recall"]) == {"0", "1"}
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["strand"] in ("forward", "both") and metrics["kmer_weight"] == 0.3
    assert set(metrics["members"]) == {"cnn", "kmer"}
    config = json.loads((out / "config.json").read_text())
    assert config["encoding"]["length"] == 251 and config["classes"] == ["0", "1"]
    assert config["model"]["model"] == "ensemble" and config["model"]["weights"] == [0.7, 0.3]
    assert [m["model"] for m in config["model"]["members"]] == ["cnn", "kmer"]
    training = config["training"]
    assert set(training["strand_check"]) == {"forward", "both"}
    assert training["blend"]["kmer_weight"] == 0.3
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs


def test_evaluate_and_predict(trained, tmp_path, capsys):
    _, table, rows, out = trained
    assert main(["dna", "evaluate", "--model", str(out), "--data", str(table),
                 "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    saved = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["accuracy"])  # same test rows
    fasta = tmp_path / "x.fa"
    fasta.write_text("".join(f">{r['id']}\n{r['sequence']}\n" for r in rows[:5]))
    assert main(["dna", "predict", "--model", str(out), "--fasta", str(fasta),
                 "--out", str(tmp_path / "p.tsv")]) == 0
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines[0] == "id\tp_0\tp_1\tpredicted" and len(lines) == 6
    probs = np.array([[float(v) for v in line.split("\t")[1:3]] for line in lines[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_table_without_split_and_fasta_classes(tmp_path):
    table, rows = _slice(tmp_path, (60, 0, 0), with_split=False)
    assert main(["dna", "train", "--data", str(table), "--out", str(tmp_path / "a"),
                 "--epochs", "1", "--quiet", "--backend", "numpy"]) == 0
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["n_test"] == 6  # 10% of 60, stratified
    pos = tmp_path / "pos.fa"
    neg = tmp_path / "neg.fa"
    pos.write_text("".join(f">{r['id']}\n{r['sequence']}\n" for r in rows if r["label"] == "1"))
    neg.write_text("".join(f">{r['id']}\n{r['sequence']}\n" for r in rows if r["label"] == "0"))
    assert main(["dna", "train", "--fasta", f"promoter={pos}", "--fasta", f"other={neg}",
                 "--out", str(tmp_path / "b"), "--epochs", "1", "--quiet",
                 "--backend", "numpy"]) == 0
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["classes"] == ["promoter", "other"]


def test_strand_and_kmer_options(tmp_path):
    table, _ = _slice(tmp_path, (80, 20, 20))
    assert main(["dna", "train", "--data", str(table), "--out", str(tmp_path / "f"),
                 "--epochs", "1", "--quiet", "--strand", "both", "--no-kmer"]) == 0
    config = json.loads((tmp_path / "f" / "config.json").read_text())
    assert config["model"]["model"] == "cnn" and config["predict"]["rc_average"] is True
    assert config["training"]["strand_check"] is None
    assert "members" not in json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert main(["dna", "train", "--data", str(table), "--out", str(tmp_path / "g"),
                 "--epochs", "1", "--quiet", "--no-rc", "--kmer-weight", "0"]) == 0
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert config["model"]["model"] == "cnn" and config["predict"]["rc_average"] is False


def test_danq_blend_three_classes_other_length(tmp_path):
    """--model danq through train/evaluate on 3 classes of 60-nt sequences: the blend, the
    strand check and the metrics work for any class count and length."""
    rng = np.random.default_rng(0)
    motifs = {"a": "TTGACA", "b": "TATAAT", "c": "GGGCCC"}
    lines = ["sequence,label"]
    for i in range(150):
        label = "abc"[i % 3]
        seq = list(rng.choice(list("ACGT"), 60))
        at = int(rng.integers(0, 54))
        seq[at:at + 6] = motifs[label]
        lines.append("".join(seq) + "," + label)
    table = tmp_path / "three.csv"
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "danq"
    assert main(["dna", "train", "--data", str(table), "--out", str(out), "--model", "danq",
                 "--epochs", "2", "--quiet", "--kmer-weight", "0.5"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert [m["model"] for m in config["model"]["members"]] == ["danq", "kmer"]
    assert config["encoding"]["length"] == 60 and config["classes"] == ["a", "b", "c"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["recall"]) == {"a", "b", "c"} and metrics["n_test"] == 15
    assert main(["dna", "evaluate", "--model", str(out), "--data", str(table),
                 "--out", str(tmp_path / "ev.json")]) == 0


def test_errors_are_clear(tmp_path, capsys):
    assert main(["dna", "train", "--data", "no_such_dataset", "--out", str(tmp_path),
                 "--kmer-weight", "1"]) == 2
    assert "--kmer-weight must be in [0, 1)" in capsys.readouterr().err
    table, _ = _slice(tmp_path, (20, 10, 10))
    assert main(["dna", "train", "--data", str(table), "--out", str(tmp_path / "k"),
                 "--kmer-ks", "2,9"]) == 2
    assert "--kmer-ks: sizes must be between 1 and 6" in capsys.readouterr().err
    assert main(["dna", "train", "--data", "no_such_dataset", "--out", str(tmp_path)]) == 2
    assert "neither a file nor a shipped dataset" in capsys.readouterr().err
    assert main(["dna", "predict", "--model", str(tmp_path / "none"), "--fasta", "x.fa"]) == 2
    assert "neither a model directory" in capsys.readouterr().err


def test_saved_model_predicts_identically_with_numpy_only(trained, tmp_path):
    """Reload in a fresh process where numba, tqdm, matplotlib, torch, scipy and sklearn
    cannot be imported; predictions must equal this process's (reference backend)."""
    import minidl
    from minidl.bio.dna import encode_split, predict_proba
    from minidl.bio.modelio import load_model_dir
    from minidl.bio.models import build_model

    _, _, rows, out = trained
    seqs = [r["sequence"] for r in rows[:8]]
    previous = minidl.backend.get_backend()
    minidl.set_backend("numpy")
    try:
        model, config = load_model_dir(out, build_model)
        expected = predict_proba(model, encode_split(seqs, 251), 2)
    finally:
        minidl.set_backend(previous)
    np.save(tmp_path / "expected.npy", expected)
    (tmp_path / "seqs.txt").write_text("\n".join(seqs))
    script = textwrap.dedent(f"""
        import sys, importlib.abc
        BLOCKED = {{"numba", "tqdm", "matplotlib", "torch", "scipy", "sklearn", "cupy"}}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Block())
        import numpy as np
        from minidl.bio.dna import encode_split, predict_proba
        from minidl.bio.modelio import load_model_dir
        from minidl.bio.models import build_model
        model, config = load_model_dir({str(out)!r}, build_model)
        seqs = open({str(tmp_path / "seqs.txt")!r}).read().split("\\n")
        got = predict_proba(model, encode_split(seqs, 251), 2)
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), "optional import"
        np.testing.assert_array_equal(got, np.load({str(tmp_path / "expected.npy")!r}))
        print("identical")
    """)
    env = dict(os.environ, MINIDL_BACKEND="numpy")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "identical" in done.stdout
