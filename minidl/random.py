"""The global random-number generator behind ``randn``, dropout, init and shuffling.

One ``numpy.random.Generator`` (PCG64) serves the whole library, so
``minidl.manual_seed(0)`` makes a run reproducible, as ``torch.manual_seed`` does.
Its state is a plain dict of integers, so checkpoints store it as JSON (no pickle).
"""

from __future__ import annotations

import numpy as np

__all__ = ["manual_seed", "seed", "default_generator", "get_rng_state", "set_rng_state"]

_generator = np.random.default_rng()


def manual_seed(seed: int):
    """Seed the global generator; returns it.

    Examples
    --------
    >>> import minidl
    >>> _ = minidl.manual_seed(0); a = minidl.randn(2)
    >>> _ = minidl.manual_seed(0); b = minidl.randn(2)
    >>> bool((a == b).all())
    True
    """
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def seed() -> int:
    """Seed the global generator from OS entropy and return the seed used."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    manual_seed(s)
    return s


def default_generator() -> np.random.Generator:
    """The generator every random operation draws from."""
    return _generator


def get_rng_state() -> dict:
    """The generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict):
    """Restore a state returned by :func:`get_rng_state`."""
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise ValueError("set_rng_state: expected a dict returned by get_rng_state()")
    bit_gen = getattr(np.random, state["bit_generator"])()
    bit_gen.state = state
    global _generator
    _generator = np.random.Generator(bit_gen)
