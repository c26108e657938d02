"""Ensembles of trained bio models: probabilities are the members' mean; directories
round-trip; mismatched members are refused with errors that name them."""

import json

import numpy as np
import pytest

import minidl
from minidl.bio.cli import main
from minidl.bio.modelio import Ensemble, load_model_dir, save_ensemble_dir, save_model_dir
from minidl.bio.models import SequenceCNN, build_model


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _dna_model_dir(path, seed, num_classes=2, classes=None):
    minidl.manual_seed(seed)
    model = SequenceCNN(num_classes=num_classes, channels=(4,), kernel_sizes=(3,), pools=(2,),
                        hidden=4, pool_bins=0)
    config = {"task": "dna", "model": model.config,
              "classes": classes or [str(i) for i in range(num_classes)],
              "encoding": {"alphabet": "dna", "length": 12, "crop": "center"},
              "training": {"seed": seed}}
    save_model_dir(path, model, config)
    return path


def _x(n=5, length=12, seed=0):
    rng = np.random.default_rng(seed)
    return minidl.tensor(np.eye(4, dtype=np.float64)[rng.integers(0, 4, (n, length))]
                         .transpose(0, 2, 1).copy())


@pytest.mark.parametrize("output,num_classes", [("softmax", 3), ("sigmoid", 2)])
def test_ensemble_probability_is_the_members_mean(output, num_classes):
    minidl.manual_seed(0)
    members = [SequenceCNN(num_classes=num_classes, channels=(4,), kernel_sizes=(3,),
                           pools=(1,), hidden=4, pool_bins=0).double() for _ in range(3)]
    for m in members:
        m.eval()
    x = _x()
    raw = [m(x).detach().numpy() for m in members]
    z = Ensemble(members, output=output)(x).detach().numpy()
    if output == "softmax":
        np.testing.assert_allclose(_softmax(z), np.mean([_softmax(r) for r in raw], axis=0),
                                   rtol=1e-12, atol=1e-14)
    else:
        np.testing.assert_allclose(_sigmoid(z), np.mean([_sigmoid(r) for r in raw], axis=0),
                                   rtol=1e-12, atol=1e-14)


def test_confident_members_do_not_round_to_infinite_logits():
    """Mean of probabilities 1 - 1e-30 and 1 - 1e-20 as logits: finite, computed in logs."""
    class Const(minidl.nn.Module):
        def __init__(self, logit):
            super().__init__()
            self.logit = logit

        def forward(self, x):
            return minidl.tensor(np.full(x.shape[0], self.logit))

    z = Ensemble([Const(69.0), Const(46.0)], output="sigmoid")(_x(2)).numpy()
    assert np.all(np.isfinite(z))
    # 1 - mean(p) = (e^-69 + e^-46) / 2 -> logit = -log of that (p ~ 1)
    np.testing.assert_allclose(z, -np.log((np.exp(-69.0) + np.exp(-46.0)) / 2), rtol=1e-9)


def test_directory_round_trip_and_cli(tmp_path, capsys):
    a = _dna_model_dir(tmp_path / "a", seed=1)
    b = _dna_model_dir(tmp_path / "b", seed=2)
    assert main(["dna", "ensemble", "--members", str(a), str(b), "--out",
                 str(tmp_path / "ens")]) == 0
    assert "an ensemble of 2 dna models" in capsys.readouterr().out
    config = json.loads((tmp_path / "ens" / "config.json").read_text())
    assert config["model"]["model"] == "ensemble" and config["model"]["output"] == "sigmoid"
    assert [m["training"] for m in config["members"]] == [{"seed": 1}, {"seed": 2}]
    ens, _ = load_model_dir(tmp_path / "ens", build_model)
    ma, _ = load_model_dir(a, build_model)
    mb, _ = load_model_dir(b, build_model)
    x = _x(seed=3).float()
    with minidl.no_grad():
        expected = (_sigmoid(ma(x).numpy().astype(np.float64))
                    + _sigmoid(mb(x).numpy().astype(np.float64))) / 2
        got = _sigmoid(ens(x).numpy().astype(np.float64))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mismatched_members_are_refused(tmp_path, capsys):
    a = _dna_model_dir(tmp_path / "a", seed=1)
    other = _dna_model_dir(tmp_path / "other", seed=2, classes=["bound", "unbound"])
    with pytest.raises(ValueError, match="classes"):
        save_ensemble_dir(tmp_path / "e", [a, other], build_model)
    with pytest.raises(ValueError, match="at least 2"):
        save_ensemble_dir(tmp_path / "e", [a], build_model)
    assert main(["protein", "ensemble", "--members", str(a), str(a), "--out",
                 str(tmp_path / "g")]) == 2
    assert "a 'dna' model, not a 'protein' one" in capsys.readouterr().err
    assert not (tmp_path / "g" / "config.json").exists()


def test_an_ensemble_member_is_flattened_with_its_weights(tmp_path):
    """Ensembling a blend (weights 0.75 / 0.25) with a plain model: every listed model
    weighs 1/2, the blend's share split 0.375 / 0.125; probabilities are the mean of the
    listed models' probabilities."""
    a = _dna_model_dir(tmp_path / "a", seed=1)
    b = _dna_model_dir(tmp_path / "b", seed=2)
    c = _dna_model_dir(tmp_path / "c", seed=3)
    ma, cfg = load_model_dir(a, build_model)
    mb, _ = load_model_dir(b, build_model)
    mc, _ = load_model_dir(c, build_model)
    blend = Ensemble([ma, mb], output="sigmoid", weights=[0.75, 0.25])
    save_model_dir(tmp_path / "blend", blend, dict(cfg, model=blend.config))
    _, config = save_ensemble_dir(tmp_path / "e", [tmp_path / "blend", c], build_model)
    assert config["model"]["weights"] == [0.375, 0.125, 0.5]
    assert len(config["model"]["members"]) == 3
    ens, _ = load_model_dir(tmp_path / "e", build_model)
    x = _x(seed=4).float()
    with minidl.no_grad():
        p = [_sigmoid(m(x).numpy().astype(np.float64)) for m in (ma, mb, mc)]
        got = _sigmoid(ens(x).numpy().astype(np.float64))
    np.testing.assert_allclose(got, 0.5 * (0.75 * p[0] + 0.25 * p[1]) + 0.5 * p[2], rtol=1e-5)
