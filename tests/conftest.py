"""Shared test configuration: hypothesis profiles and fixtures.

Hypothesis profiles
-------------------
``ci`` (the default) keeps every property test small enough that the whole suite runs in
minutes on two cores; ``thorough`` draws many more examples for local bug hunting::

    HYPOTHESIS_PROFILE=thorough pytest tests/ops

Importing the helpers
---------------------
``tests/`` has no ``__init__.py``.  With pytest's default ``prepend`` import mode, the
directory of this rootdir-level conftest.py (``tests/``) is put on ``sys.path`` before any
test module is imported, so ``from strategies import ...`` works in ``tests/test_*.py`` and
in every subfolder (``tests/ops/...``).  The explicit insertion below makes that hold under
``--import-mode=importlib`` too.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,  # timings on a shared 2-core machine are noise, never a failure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts with gradients on and float32 as default dtype, and ends so.

    A test that fails half-way through a ``set_grad_enabled(False)`` or
    ``set_default_dtype(float64)`` must not change the outcome of the tests after it.
    """
    import minidl

    minidl.set_grad_enabled(True)
    minidl.set_default_dtype(np.float32)
    yield
    minidl.set_grad_enabled(True)
    minidl.set_default_dtype(np.float32)


@pytest.fixture(scope="session")
def torch():
    """The ``torch`` module, or skip the test when PyTorch is not installed.

    Session-scoped, so hypothesis tests may use it (no per-example state).
    """
    return pytest.importorskip("torch")


@pytest.fixture
def rng():
    """A seeded NumPy generator for test inputs (independent of minidl's generator)."""
    return np.random.default_rng(1234)
