"""The docstring examples of minidl.data run (tests/test_doctests.py lists the core modules)."""

import doctest
import importlib

import pytest

MODULES = ["minidl.data", "minidl.data.dataset", "minidl.data.sampler", "minidl.data.collate",
           "minidl.data.dataloader", "minidl.data.transforms"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
