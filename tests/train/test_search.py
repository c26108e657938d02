"""Hyperparameter search on a toy problem whose best configuration is known in advance.

Linear regression y = 2x + 1 with SGD for a few epochs: a larger learning rate (below the
stability limit, about 1 here) gets closer in the same number of steps, and weight decay
pulls the weights away from the true (2, 1), so the best of the grid is the largest lr
without weight decay.
"""

from __future__ import annotations

import csv
import math
import sys
import types

import numpy as np
import pytest

from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import (
    IntUniform,
    LogUniform,
    Uniform,
    grid_search,
    optuna_search,
    random_search,
    search,
)
from minidl.train.search import grid_configs, random_configs


@pytest.fixture
def loaders(regression):
    x, y, xv, yv = regression
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=0)
    val = DataLoader(TensorDataset(xv, yv), batch_size=16)
    return train, val


def build(config):
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=config["lr"],
                    weight_decay=config.get("weight_decay", 0.0))
    return model, opt, nn.MSELoss()


def test_grid_search_finds_the_known_best(tmp_path, loaders, capsys):
    train, val = loaders
    space = {"lr": [1e-3, 1e-2, 0.3], "weight_decay": [0.0, 1.0]}
    result = grid_search(build, space, train, val, epochs=8, patience=2,
                         results_csv=tmp_path / "results.csv")
    assert result.best_config == {"lr": 0.3, "weight_decay": 0.0}
    assert len(result.trials) == 6
    # itertools.product order, the last name fastest
    assert [t["params"] for t in result.trials][:2] == [{"lr": 1e-3, "weight_decay": 0.0},
                                                       {"lr": 1e-3, "weight_decay": 1.0}]
    # the score is the trial's best val_loss, and the best model carries those weights
    best = result.best
    assert best["score"] == min(result.best_history["val_loss"])
    from minidl.train import evaluate

    assert evaluate(result.best_model, val, nn.MSELoss())["loss"] == pytest.approx(
        best["score"], rel=1e-6)
    w = float(result.best_model.weight.item())
    assert abs(w - 2) < 0.2
    # the CSV table is sorted by score, best first
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    scores = [float(r["val_loss"]) for r in rows]
    assert scores == sorted(scores)
    assert float(rows[0]["lr"]) == 0.3 and float(rows[0]["weight_decay"]) == 0.0
    assert list(rows[0]) == ["rank", "trial", "val_loss", "lr", "weight_decay", "best_epoch",
                             "epochs", "time"]
    assert capsys.readouterr().out.count("trial ") == 6  # one line per trial


def test_trials_start_from_the_same_state(loaders):
    """Every trial reseeds minidl and rewinds the loaders: equal configs, equal scores."""
    train, val = loaders
    result = grid_search(build, {"lr": [0.05, 0.05, 0.05]}, train, val, epochs=3, verbose=0)
    scores = [t["score"] for t in result.trials]
    assert scores[0] == scores[1] == scores[2]


def test_random_search_draws_log_uniformly_and_picks_the_best(loaders):
    train, val = loaders
    space = {"lr": LogUniform(1e-3, 0.5), "hidden": [1]}
    result = random_search(build, space, train, val, n_trials=5, epochs=6, seed=3, verbose=0)
    # the draws, computed independently: exp(U(ln a, ln b)), then the list choice
    rng = np.random.default_rng(3)
    expected = []
    for _ in range(5):
        lr = math.exp(rng.uniform(math.log(1e-3), math.log(0.5)))
        rng.integers(1)
        expected.append(lr)
    assert [t["params"]["lr"] for t in result.trials] == pytest.approx(expected)
    # on this problem more lr is better within the range
    assert result.best_config["lr"] == max(expected)
    ranked = [row["score"] for row in result.table()]
    assert ranked == sorted(ranked)


def test_search_space_forms():
    assert grid_configs({"a": range(2), "b": "x", "c": (True, False)}) == [
        {"a": 0, "b": "x", "c": True}, {"a": 0, "b": "x", "c": False},
        {"a": 1, "b": "x", "c": True}, {"a": 1, "b": "x", "c": False}]
    assert grid_configs({"lr": LogUniform(1e-4, 1e-1, num=4)})[2]["lr"] == pytest.approx(1e-2)
    assert [c["p"] for c in grid_configs({"p": Uniform(0, 0.5, num=3)})] == [0, 0.25, 0.5]
    assert [c["n"] for c in grid_configs({"n": IntUniform(2, 8, step=3)})] == [2, 5, 8]
    draws = random_configs({"n": IntUniform(1, 3), "p": Uniform(0.1, 0.2),
                            "lr": LogUniform(1e-5, 1e-1)}, 200, seed=0)
    assert {c["n"] for c in draws} == {1, 2, 3}
    assert all(0.1 <= c["p"] <= 0.2 for c in draws)
    logs = np.log10([c["lr"] for c in draws])
    assert logs.min() >= -5 and logs.max() <= -1
    assert abs(np.mean(logs) + 3) < 0.3  # log-uniform: the mean exponent is in the middle
    assert random_configs({"a": [1, 2]}, 3, seed=1) == random_configs({"a": [1, 2]}, 3, seed=1)
    with pytest.raises(ValueError, match="num="):
        grid_configs({"lr": LogUniform(1e-4, 1e-1)})
    with pytest.raises(ValueError, match="low must be > 0"):
        LogUniform(0, 1)
    with pytest.raises(ValueError, match="not a list"):
        grid_configs({"a": {1, 2}})


def test_build_may_return_a_dict_with_its_own_loaders(regression):
    x, y, xv, yv = regression
    seen = []

    def build_dict(config):
        model = nn.Linear(1, 1)
        seen.append(config["batch_size"])
        return {"model": model, "optimizer": optim.SGD(model.parameters(), lr=0.1),
                "loss_fn": nn.MSELoss(),
                "train_loader": DataLoader(TensorDataset(x, y), batch_size=config["batch_size"]),
                "val_loader": [(xv, yv)]}

    result = search(build_dict, {"batch_size": [8, 64]}, None, None, method="grid", epochs=3,
                    verbose=0)
    assert seen == [8, 64]
    assert result.best_config == {"batch_size": 8}  # more steps in the same epochs
    with pytest.raises(ValueError, match="method"):
        search(build_dict, {"batch_size": [8]}, None, None, method="bayes")


def test_bad_builds_are_reported(loaders):
    train, val = loaders
    with pytest.raises(ValueError, match="must return"):
        grid_search(lambda c: nn.Linear(1, 1), {"a": [1]}, train, val, verbose=0)
    with pytest.raises(ValueError, match="no loss"):
        grid_search(lambda c: build(c)[:2], {"lr": [0.1]}, train, val, verbose=0)
    with pytest.raises(ValueError, match="val_loader"):
        grid_search(build, {"lr": [0.1]}, train, None, verbose=0)


def test_optuna_missing_names_the_package(loaders, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    train, val = loaders
    with pytest.raises(ImportError, match="pip install optuna"):
        optuna_search(build, {"lr": [0.1]}, train, val, verbose=0)


def _fake_optuna(calls):
    """A stand-in with Optuna's API surface used by the adapter: it suggests the upper end
    of every float range and the last categorical value (enough to check the mapping)."""

    class Trial:
        def suggest_float(self, name, low, high, log=False):
            calls.append(("float", name, low, high, log))
            return high

        def suggest_int(self, name, low, high, step=1):
            calls.append(("int", name, low, high, step))
            return high

        def suggest_categorical(self, name, choices):
            calls.append(("categorical", name, list(choices)))
            return choices[-1]

    class Study:
        def __init__(self, direction):
            self.direction = direction
            self.values = []

        def optimize(self, objective, n_trials):
            for _ in range(n_trials):
                self.values.append(objective(Trial()))

    module = types.ModuleType("optuna")
    module.samplers = types.SimpleNamespace(TPESampler=lambda seed: ("tpe", seed))
    module.create_study = lambda direction, sampler: Study(direction)
    return module


def test_optuna_adapter_maps_the_space(loaders, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "optuna", _fake_optuna(calls))
    train, val = loaders
    space = {"lr": LogUniform(1e-3, 0.2), "weight_decay": Uniform(0.0, 0.0001),
             "units": IntUniform(1, 4), "act": [None, "relu"], "shape": [(1, 2), (3, 4)]}
    result = optuna_search(build, space, train, val, n_trials=2, epochs=2, verbose=0)
    assert calls[:5] == [("float", "lr", 1e-3, 0.2, True),
                         ("float", "weight_decay", 0.0, 0.0001, False),
                         ("int", "units", 1, 4, 1),
                         ("categorical", "act", [None, "relu"]),
                         ("categorical", "shape", [0, 1])]  # non-primitive values by index
    assert result.best_config == {"lr": 0.2, "weight_decay": 0.0001, "units": 4, "act": "relu",
                                  "shape": (3, 4)}
    assert result.study.direction == "minimize"
    assert result.study.values == [t["score"] for t in result.trials]


def test_optuna_search_with_optuna(loaders):
    pytest.importorskip("optuna")
    train, val = loaders
    result = optuna_search(build, {"lr": [1e-3, 0.3]}, train, val, n_trials=4, epochs=5,
                           verbose=0, seed=0)
    assert result.best_config == {"lr": 0.3}
