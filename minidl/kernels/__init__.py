"""Accelerated kernels: C (Cython, compiled ahead of time) and Numba, one registry for all.

Each family module (``minidl/kernels/cpu/conv.py``, ``minidl/kernels/numba/pool.py``, ...)
registers implementations with the same signature as the NumPy reference kernel in
``minidl/ops``: ``backend.register_kernel(name, "cpu", fn)``.  :func:`load` imports them
all once, on first use; a module that cannot load (extension not built, Numba not
installed) is skipped and the reason kept for :func:`minidl.backend.info`.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["FAMILIES", "BACKENDS", "load", "status"]

#: kernel families; each backend folder may implement any of them
FAMILIES = ("conv", "pool", "norm", "recurrent", "loss")
#: accelerated CPU backends, in their folders under minidl/kernels
BACKENDS = ("cpu", "numba")

_status: dict[str, str] = {}
_loaded = False


def load():
    """Import every accelerated kernel module that can be imported (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    # NOTE: libgomp's default wait policy keeps OpenMP workers spinning after each parallel
    # region; on a small machine they then take the cores from OpenBLAS's threads in the
    # next matrix multiply, and a compiled kernel that is 3x faster alone makes the whole
    # step slower. libgomp reads the policy once, when it is loaded (by these imports,
    # unless something loaded it before), so set it here; a user's own choice is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for backend_name in BACKENDS:
        for family in FAMILIES:
            module = f"minidl.kernels.{backend_name}.{family}"
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name == module:  # this family has no kernels for this backend
                    continue
                _status[f"{backend_name}.{family}"] = f"unavailable: {_reason(backend_name, err)}"
            except ImportError as err:
                _status[f"{backend_name}.{family}"] = f"unavailable: {_reason(backend_name, err)}"
            else:
                _status[f"{backend_name}.{family}"] = "loaded"


def _reason(backend_name, err):
    if backend_name == "numba" and getattr(err, "name", "") in ("numba", "llvmlite"):
        return 'numba is not installed (pip install "minidl[numba]")'
    if backend_name == "cpu":
        return (f"compiled extension not built ({err}); reinstall with "
                "`pip install -e .` and a C compiler")
    return str(err)


def status() -> dict[str, str]:
    """``{"cpu.conv": "loaded" | "unavailable: why", ...}`` for the modules tried."""
    return dict(_status)
