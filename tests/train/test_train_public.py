"""minidl.train's public surface: __all__, docstring examples, the README section, and a whole
run (fit with bar, checkpoint, resume, plot, search) with tqdm, matplotlib and optuna
blocked in a fresh interpreter."""

from __future__ import annotations

import doctest
import importlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import minidl.train

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["minidl.train", "minidl.train.loop", "minidl.train.history"]


@pytest.mark.parametrize("name", minidl.train.__all__)
def test_every_public_name_exists_and_is_documented(name):
    obj = getattr(minidl.train, name)
    assert obj.__doc__ and obj.__doc__.strip()


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_training_toolkit_example_runs(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Training toolkit", 1)[1].split("\n## ", 1)[0]
    (source,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    history, result = namespace["history"], namespace["result"]
    assert max(history["val_accuracy"]) > 0.9  # the XOR of signs is learned
    assert namespace["logits"].shape == (80, 2)
    for name in ("runs/xor/best.safetensors", "runs/xor/last.safetensors",
                 "runs/xor/history.csv", "runs/xor/curves.png", "runs/search.csv"):
        assert (tmp_path / name).is_file(), name
    assert len(result.trials) == 4
    assert str(result.best_config) in capsys.readouterr().out


def test_a_whole_run_needs_numpy_only(tmp_path):
    code = textwrap.dedent(f"""
        import io, os, sys
        for name in ["tqdm", "matplotlib", "optuna", "torch", "sklearn", "scipy", "pandas"]:
            sys.modules[name] = None
        import numpy as np
        import minidl
        from minidl import nn, optim
        from minidl.train import ModelCheckpoint, EarlyStopping, fit, grid_search

        class Terminal(io.StringIO):
            def isatty(self):
                return True

        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 2)).astype(np.float32)
        y = (x[:, :1] > 0).astype(np.float32)
        batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]

        def run(epochs, resume):
            minidl.manual_seed(0)
            model = nn.Linear(2, 1)
            out = Terminal()
            history = fit(model, nn.BCEWithLogitsLoss(), optim.Adam(model.parameters(), lr=0.1),
                          batches, batches, epochs=epochs, metrics=["accuracy", "auroc"],
                          task="binary", file=out,
                          callbacks=[EarlyStopping(patience=9), ModelCheckpoint({str(tmp_path)!r})],
                          resume_from=os.path.join({str(tmp_path)!r}, "last.safetensors")
                          if resume else None)
            return history, out.getvalue()

        history, shown = run(2, False)
        assert "[####################] 4/4" in shown, shown  # the built-in bar
        resumed, _ = run(4, True)
        full, _ = run(4, False)
        assert resumed["loss"] == full["loss"]
        full.plot(os.path.join({str(tmp_path)!r}, "curves.png"))

        def build(config):
            model = nn.Linear(2, 1)
            return model, optim.SGD(model.parameters(), lr=config["lr"]), nn.BCEWithLogitsLoss()

        result = grid_search(build, {{"lr": [1e-4, 0.5]}}, batches, batches, epochs=3,
                             verbose=0)
        assert result.best_config == {{"lr": 0.5}}
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    with open(tmp_path / "curves.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_importing_minidl_train_loads_no_optional_package():
    code = ("import sys, minidl.train; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tqdm', 'matplotlib', 'optuna', 'torch', 'sklearn')))")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=str(ROOT), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
