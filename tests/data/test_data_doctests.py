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
