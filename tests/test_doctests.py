"""Docstring examples are executed, so the documentation cannot drift from the code."""

import doctest
import importlib

import pytest

MODULES = [
    "minidl",
    "minidl.autograd",
    "minidl.tensor",
    "minidl.gradcheck",
    "minidl.random",
    "minidl.ops.elementwise",
    "minidl.ops.reduce",
    "minidl.ops.linalg",
    "minidl.ops.shape",
    "minidl.bio.datasets",
    "minidl.nn.module",
    "minidl.nn.parameter",
    "minidl.nn.container",
    "minidl.nn.linear",
    "minidl.nn.functional",
    "minidl.nn.init",
    "minidl.nn.loss",
    "minidl.nn.activation",
    "minidl.io.safetensors",
    "minidl.io.checkpoint",
    "minidl.ops.conv",
    "minidl.ops.pool",
    "minidl.ops.dropout",
    "minidl.ops.embedding",
    "minidl.ops.normalization",
    "minidl.ops.recurrent",
    "minidl.nn.conv",
    "minidl.nn.pooling",
    "minidl.nn.dropout",
    "minidl.nn.sparse",
    "minidl.nn.batchnorm",
    "minidl.nn.normalization",
    "minidl.nn.rnn",
    "minidl.nn.utils.rnn",
    "minidl.nn.utils.spectral_norm",
    "minidl.bio.gan",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
