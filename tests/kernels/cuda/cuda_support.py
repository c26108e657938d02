"""Helpers shared by the simulator tests: launch configurations and tolerances.

Imports of :mod:`minidl.kernels.cuda` happen inside the functions, never at import time
(see conftest.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import settings

DTYPES = [np.float32, np.float64]

#: (threads per block, most blocks).  "4x3" forces several blocks *and* several passes of
#: every grid-stride loop on tiny arrays (and 2-step shared-memory trees); "8xN" gives every
#: item its own thread, the last block only partly busy for odd sizes.
CONFIGS = [
    pytest.param((4, 3), id="4x3"),
    pytest.param((8, 4096), id="8xN"),
]

#: hypothesis examples per test and configuration: the simulator runs ~10^4 threads a
#: second, and two dtypes times two configurations multiply every example by four
FEW = settings(max_examples=6)


@contextlib.contextmanager
def launch(config):
    """Run the kernels inside with ``config`` = (threads per block, most blocks)."""
    from minidl.kernels.cuda import _common

    threads, blocks = config
    with _common.launch_config(threads_per_block=threads, max_blocks=blocks):
        yield _common


def last_launch():
    """``(blocks, threads)`` of the latest kernel launch."""
    from minidl.kernels.cuda import _common

    return _common.last_launch


def tolerance(dtype, scale=1.0):
    """Rounding room: the kernels may add in another order, or use the GPU's exp/tanh.

    ``scale`` is the size of the values an absolute slip is relative to."""
    if np.dtype(dtype) == np.float32:
        return dict(rtol=2e-5, atol=2e-6 * scale)
    return dict(rtol=1e-10, atol=1e-12 * scale)


#: memory layouts of the test inputs.  Under the simulator Numba copies NumPy arguments
#: to a fake device keeping their strides, so "F" (every axis strided differently) runs
#: the kernels' strided indexing, as CuPy views do on a GPU; "gaps" (every other element)
#: cannot be copied as one block, so the wrappers hand Numba a contiguous copy instead
#: (and copy in-place outputs back): both paths are exercised
LAYOUTS = ["C", "F", "gaps"]


def in_layout(x, layout):
    """The values of ``x`` in memory laid out as ``layout`` (see :data:`LAYOUTS`)."""
    if layout == "C" or x.ndim == 0:
        return np.ascontiguousarray(x)
    if layout == "F":
        return np.asfortranarray(x)
    buffer = np.full(x.shape[:-1] + (2 * x.shape[-1],), np.nan, dtype=x.dtype)
    out = buffer[..., ::2]
    out[...] = x
    return out
