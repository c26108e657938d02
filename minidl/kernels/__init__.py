"""Accelerated kernels: C (Cython, compiled ahead of time) and Numba, one registry for all.

Each family module (``minidl/kernels/cpu/conv.py``, ``minidl/kernels/numba/pool.py``, ...)
registers implementations with the same signature as the NumPy reference kernel in
``minidl/ops``: ``backend.register_kernel(name, "cpu", fn)``.  :func:`load` imports them
all once, on first use; a module that cannot load (extension not built, Numba not
installed) is skipped and the reason kept for :func:`minidl.backend.info`.

The Numba-CUDA kernels (``minidl/kernels/cuda/``, backend ``"cuda"``) load separately and
later: :func:`load_cuda` runs when a CUDA tensor first asks for a kernel
(:func:`minidl.backend.get_kernel` with ``device="cuda"``), or when called.  Neither
``import minidl`` nor the CPU kernels ever import ``numba.cuda``; without Numba, or when
Numba finds no usable GPU, the cuda family is marked unavailable (with the reason, see
:func:`cuda_status`) and CUDA tensors run the NumPy references on CuPy instead.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["FAMILIES", "BACKENDS", "load", "status", "load_cuda", "cuda_status"]

#: kernel families; each backend folder may implement any of them
FAMILIES = ("conv", "pool", "norm", "recurrent", "loss")
#: accelerated CPU backends, in their folders under minidl/kernels
BACKENDS = ("cpu", "numba")

_status: dict[str, str] = {}
_loaded = False
#: "cuda.<family>" -> "loaded" | "unavailable: why", once :func:`load_cuda` ran
_cuda_status: dict[str, str] = {}
_cuda_loaded = False


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


def load_cuda():
    """Import the Numba-CUDA kernel modules once, registering backend ``"cuda"``.

    Never raises: without Numba, or when ``numba.cuda.is_available()`` is False (no GPU,
    no driver, no CUDA libraries for Numba), every family is marked unavailable with the
    reason and nothing is registered, so CUDA tensors keep the NumPy references (on
    CuPy).  Under ``NUMBA_ENABLE_CUDASIM=1`` Numba's simulator counts as available: the
    kernels then run on NumPy arrays (what the simulator tests do).
    """
    global _cuda_loaded
    if _cuda_loaded:
        return
    _cuda_loaded = True
    try:
        from numba import cuda

        available = bool(cuda.is_available())
    except ImportError as err:
        if getattr(err, "name", "") in ("numba", "llvmlite"):
            reason = 'numba is not installed (pip install "minidl[gpu]")'
        else:
            reason = f"numba.cuda cannot be imported ({err})"
        _mark_cuda_unavailable(reason)
        return
    except Exception as err:  # noqa: BLE001 - a broken driver raises many kinds
        _mark_cuda_unavailable(f"numba.cuda failed to start ({type(err).__name__}: {err})")
        return
    if not available:
        _mark_cuda_unavailable("Numba finds no usable CUDA GPU (numba.cuda.is_available() "
                               "is False: no device, driver or CUDA libraries for Numba)")
        return
    for family in FAMILIES:
        module = f"minidl.kernels.cuda.{family}"
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - one broken family must not stop the rest
            _cuda_status[f"cuda.{family}"] = f"unavailable: {type(err).__name__}: {err}"
        else:
            _cuda_status[f"cuda.{family}"] = "loaded"


def _mark_cuda_unavailable(reason):
    for family in FAMILIES:
        _cuda_status[f"cuda.{family}"] = f"unavailable: {reason}"


def cuda_status() -> dict[str, str]:
    """``{"cuda.conv": "loaded" | "unavailable: why" | "not loaded: ...", ...}`` for every
    kernel family of the ``"cuda"`` backend (reported by :func:`minidl.backend.info`
    without loading anything)."""
    if not _cuda_loaded:
        return {f"cuda.{family}": "not loaded (loads when a CUDA tensor first needs a "
                "kernel, or with minidl.kernels.load_cuda())" for family in FAMILIES}
    return dict(_cuda_status)
