"""The shipped pretrained models load by name and still do their job."""

import json

import numpy as np

from minidl.bio import datasets
from minidl.bio.dna import encode_split, load_dna_data, predict_proba
from minidl.bio.modelio import load_model_dir, pretrained_names, resolve_model_dir
from minidl.bio.models import build_model
from minidl.bio.protein import build_tagger


def test_pretrained_names():
    assert {"arabidopsis_promoters", "netsurfp2_ss3"} <= set(pretrained_names())


def test_promoter_model_on_test_sequences():
    model, config = load_model_dir("arabidopsis_promoters", build_model)
    data = load_dna_data(data="arabidopsis_nontata_promoters")
    seqs, labels = data.sequences["test"], data.labels["test"]
    proba = predict_proba(model, encode_split(seqs, config["encoding"]["length"]), 2,
                          rc_average=config["predict"]["rc_average"])
    accuracy = np.mean(proba.argmax(axis=1) == labels)
    # metrics.json was written when the model was trained; any backend agrees to within
    # float32 rounding, which may flip a handful of borderline sequences
    saved = json.loads((resolve_model_dir("arabidopsis_promoters") / "metrics.json").read_text())
    assert abs(accuracy - saved["accuracy"]) < 0.003


def test_protein_model_loads_and_tags():
    model, config = load_model_dir("netsurfp2_ss3", build_tagger)
    assert config["task"] == "protein" and datasets.published("netsurfp2_flip_ss3")
    import minidl
    from minidl.bio.protein import encode_chain

    x = encode_chain("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ")[None]
    with minidl.no_grad():
        out = model(minidl.from_numpy(x)).numpy()
    assert out.shape == (1, 33, 3) and np.isfinite(out).all()
