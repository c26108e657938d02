"""examples/fit_promoters.py: runs on a small subset, and --resume continues the run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from minidl.train import History

ROOT = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("fit_promoters",
                                                  ROOT / "examples" / "fit_promoters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# 160 sequences: some splits can hold one predicted class, where MCC is undefined (nan)
@pytest.mark.filterwarnings("ignore::minidl.metrics.UndefinedMetricWarning")
def test_fit_promoters_runs_and_resumes(tmp_path, capsys):
    example = _example()
    out = tmp_path / "run"
    common = ["--limit", "160", "--hidden", "16", "--patience", "50", "--out", str(out)]
    example.main(common + ["--epochs", "2"])
    results = example.main(common + ["--epochs", "3", "--resume"])
    history = History.from_csv(out / "history.csv")
    assert history["epoch"] == [1, 2, 3]  # epochs 1-2 from the first run, 3 after resuming
    assert "resumed from" in capsys.readouterr().out
    for name in ("curves.png", "checkpoints/best.safetensors", "checkpoints/last.safetensors"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved.keys() == results.keys() and saved["best_epoch"] == results["best_epoch"]
    assert 0.0 <= saved["test_accuracy"] <= 1.0
