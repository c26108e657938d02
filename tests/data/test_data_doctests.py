"""The docstring examples of minidl.data run (tests/test_doctests.py lists the core modules)."""

import doctest
import importlib

import numpy as np
import pytest

MODULES = ["minidl.data", "minidl.data.dataset", "minidl.data.sampler", "minidl.data.collate",
           "minidl.data.dataloader", "minidl.data.transforms"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_readme_data_and_metrics_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Data and metrics", 1)[1].split("\n## ", 1)[0]
    (source,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert tuple(namespace["x"].shape) == (16, 1, 32, 32)
    assert tuple(namespace["y"].shape) == (16, 32, 32)
    image, mask = namespace["image"], namespace["mask"]
    np.testing.assert_array_equal(image[0] > 1, mask == 1)


def test_data_metrics_and_transfer_need_numpy_only():
    import os
    import subprocess
    import sys
    import textwrap

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = textwrap.dedent("""
        import sys
        for name in ["torch", "sklearn", "scipy", "matplotlib", "tqdm", "pandas", "numba"]:
            sys.modules[name] = None          # as if not installed
        import numpy as np
        import minidl
        from minidl import metrics
        from minidl.data import DataLoader, TensorDataset, pad_collate, transforms
        from minidl.nn.utils import freeze
        x, = next(iter(DataLoader(TensorDataset(np.arange(4.0)), batch_size=2, shuffle=True)))
        assert metrics.auroc([0, 1], [0.2, 0.7]) == 1.0
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=root, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
