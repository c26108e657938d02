"""The Numba-CUDA kernels, run by Numba's CUDA simulator, in a pytest run of their own.

Numba reads ``NUMBA_ENABLE_CUDASIM`` once, when it is imported, and the main test run
imports Numba (the CPU kernels) without it.  So the tests marked ``cudasim`` run in a
second pytest process started with the variable set, as README's test command does::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/kernels/cuda

The main run *deselects* them (they are neither run nor reported as skipped), and the
simulator run deselects this folder's other tests (the loading tests, which need the
real ``numba.cuda``).  Under the simulator the kernels run on NumPy arrays, one Python
thread per GPU thread: shapes stay tiny, and :mod:`cuda_support` shrinks the blocks so
that tiny shapes still span several blocks and several passes of the grid-stride loops.

The test modules never import ``minidl.kernels.cuda`` at import time: collecting them in
the main run must not import ``numba.cuda`` nor register the ``"cuda"`` kernels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:  # for ``import cuda_support`` under --import-mode=importlib
    sys.path.insert(0, str(_HERE))


def pytest_collection_modifyitems(config, items):
    """Keep this folder's ``cudasim`` tests for the simulator run, the others for the
    main run; deselect the rest (pytest reports them as deselected, not skipped)."""
    kept, deselected = [], []
    for item in items:
        here = _HERE in Path(str(item.path)).resolve().parents
        if here and (item.get_closest_marker("cudasim") is not None) != SIMULATOR:
            deselected.append(item)
        else:
            kept.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def cuda_kernels():
    """``{kernel name: "cuda" implementation}``, loaded the way a CUDA tensor loads them.

    Session-scoped (no per-test state), so hypothesis tests may use it."""
    assert SIMULATOR, "the cudasim tests run only with NUMBA_ENABLE_CUDASIM=1"
    from minidl import backend, kernels

    kernels.load_cuda()
    status = kernels.cuda_status()
    assert set(status.values()) == {"loaded"}, status
    return {name: impls["cuda"] for name, impls in backend._KERNELS.items() if "cuda" in impls}
