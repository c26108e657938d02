"""The README's promises: its example runs, and CI runs exactly its test command."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _code_blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = _code_blocks("bash")[1].strip()
    ci_lines = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert test_command in ci_lines
    assert "pytest" in test_command


def test_readme_example_runs_and_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = _code_blocks("python")[0]
    namespace = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    minidl = namespace["minidl"]
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    with minidl.no_grad():
        accuracy = float(((model(x) > 0).float() == y).float().mean().item())
    assert accuracy > 0.9  # a linearly separable toy target is learned
    weights = minidl.load("model.safetensors")
    assert set(weights) == set(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(weights[name].numpy(), value.numpy())


def test_main_job_command_parses():
    main_command = _code_blocks("bash")[0].strip()
    assert "minidl-bio dna train --data arabidopsis_nontata_promoters" in main_command
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "minidl.bio", "dna", "train", "--help"],
        capture_output=True, text=True, check=True, env=env,
    )
    assert "--data" in out.stdout and "--epochs" in out.stdout
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_mlp_promoters.py"), "--help"],
        capture_output=True, text=True, check=True, env=env,
    )
    assert "--epochs" in out.stdout
