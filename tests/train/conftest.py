"""Fixtures for the training-toolkit tests: tiny data, a fake terminal."""

from __future__ import annotations

import io

import numpy as np
import pytest


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal (progress bars draw only on terminals)."""

    def isatty(self):
        return True


@pytest.fixture
def terminal():
    return FakeTerminal()


@pytest.fixture
def blobs():
    """Three Gaussian blobs in 6 dimensions: (x_train, y_train, x_val, y_val), float32/int64."""
    rng = np.random.default_rng(7)
    centers = rng.normal(scale=2.0, size=(3, 6))
    y = rng.integers(0, 3, size=120)
    x = (centers[y] + rng.normal(size=(120, 6))).astype(np.float32)
    return x[:90], y[:90].astype(np.int64), x[90:], y[90:].astype(np.int64)


@pytest.fixture
def regression():
    """y = 2x + 1 + noise, x ~ N(0, 1): (x_train, y_train, x_val, y_val), float32 (N, 1)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 1)).astype(np.float32)
    y = (2 * x + 1 + 0.1 * rng.normal(size=(80, 1))).astype(np.float32)
    return x[:64], y[:64], x[64:], y[64:]
