"""README's "GPU" example runs as written: on "cuda" (the ``gpu`` fixture: fake CuPy
everywhere, the real one on a GPU machine) and, without CuPy, on the CPU it falls back to."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

import minidl
import minidl.cuda

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _gpu_example():
    section = README.split("\n## GPU\n", 1)[1].split("\n## ", 1)[0]
    (source,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return source


def _run_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(_gpu_example(), "README.md (GPU)", "exec"), namespace)  # noqa: S102
    return namespace


def test_readme_gpu_example_runs_on_cuda(gpu, tmp_path, monkeypatch):
    ns = _run_example(tmp_path, monkeypatch)
    assert ns["device"] == "cuda"
    assert ns["loss"].device == "cuda" and ns["loss"].item() < 0.3  # it learned
    for name, t in ns["weights"].items():
        assert t.device == "cuda", name
        np.testing.assert_array_equal(gpu.host(t), ns["model"].state_dict()[name].numpy())
    assert all(p.device == "cpu" for p in ns["model"].parameters())


def test_readme_gpu_example_falls_back_to_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)
    ns = _run_example(tmp_path, monkeypatch)
    assert ns["device"] == "cpu" and ns["loss"].item() < 0.3
    assert all(t.device == "cpu" for t in ns["weights"].values())


def test_readme_gpu_section_names_the_install_command():
    section = README.split("\n## GPU\n", 1)[1].split("\n## ", 1)[0]
    assert 'pip install "minidl[gpu]"' in section
