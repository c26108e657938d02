"""examples/cells_few_labels.py on a tiny slice: every arm runs and the summary is written."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.filterwarnings("ignore::minidl.metrics.UndefinedMetricWarning")
def test_few_labels_example_runs_every_arm(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("cells_few_labels",
                                                  ROOT / "examples" / "cells_few_labels.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "few"
    example.main(["--limit", "48", "--fraction", "0.5", "--epochs", "1", "--pretrain-epochs", "1",
                  "--seeds", "0", "--threads", "1", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target_classes"] == ["lymphocyte", "monocyte", "neutrophil", "platelet"]
    for arm in ("scratch", "fine-tuned", "head only"):
        assert 0.0 <= summary[arm]["accuracy_mean"] <= 1.0
        assert len(summary["runs"][arm]) == 1
    fine = json.loads((out / "fine-tuned_seed0" / "config.json").read_text())
    assert fine["training"]["init_from"]["model"] == str(out / "pretrained_4_classes")
    head = json.loads((out / "head_only_seed0" / "config.json").read_text())
    assert head["training"]["init_from"]["freeze_backbone"] is True
    assert "head only" in capsys.readouterr().out
