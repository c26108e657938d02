"""examples/dna_derived_tasks.py: the derived tables mean what they say, and the default
``dna train`` runs on them (other length, 3 classes)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
from pathlib import Path

import pytest

from minidl.bio import datasets
from minidl.bio.alphabets import reverse_complement
from minidl.bio.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("dna_derived_tasks",
                                                  ROOT / "examples" / "dna_derived_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with gzip.open(path, "rt") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.mark.filterwarnings("ignore::minidl.metrics.UndefinedMetricWarning")
def test_derived_tables_and_default_training(tmp_path):
    out = tmp_path / "derived"
    _example().main(["--out", str(out), "--limit", "100"])
    with gzip.open(datasets.dataset_path("arabidopsis_nontata_promoters"), "rt") as fh:
        original = {r["id"]: r for r in csv.DictReader(fh)}

    strand = _read(out / "promoter_strand.tsv.gz")
    assert len(strand) == 300 and {r["label"] for r in strand} == {"plus", "minus", "none"}
    for r in strand:
        source = original[r["id"]]
        assert r["split"] == source["split"] and 120 <= len(r["sequence"]) <= 251
        if r["label"] == "plus":
            start = source["sequence"].find(r["sequence"])
            assert 0 <= start <= 200 < start + len(r["sequence"])   # holds the TSS
        elif r["label"] == "minus":
            forward = reverse_complement(r["sequence"])
            start = source["sequence"].find(forward)
            assert 0 <= start <= 200 < start + len(forward)
        else:
            assert source["label"] == "0"
            assert (r["sequence"] in source["sequence"]
                    or reverse_complement(r["sequence"]) in source["sequence"])

    anyway = _read(out / "promoter_any_strand.tsv.gz")
    flipped = 0
    for r in anyway:
        source = original[r["id"]]
        assert r["label"] == source["label"]
        assert r["sequence"] in (source["sequence"], reverse_complement(source["sequence"]))
        flipped += r["sequence"] != source["sequence"]
    assert 0.3 < flipped / len(anyway) < 0.7

    run = tmp_path / "run"
    assert main(["dna", "train", "--data", str(out / "promoter_strand.tsv.gz"), "--out",
                 str(run), "--epochs", "1", "--quiet"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == ["minus", "none", "plus"] and config["encoding"]["length"] == 251
    assert metrics["n_test"] == 100 and set(metrics["recall"]) == {"minus", "none", "plus"}
