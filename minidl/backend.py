"""Array-module choice (NumPy or CuPy) and the kernel registry.

``array_module(x)`` returns the module that owns an array (``numpy`` or ``cupy``), so
array-level code is written once as ``xp.exp(x)`` and runs on either device.  It imports
fine without CuPy: ``cupy`` is only imported when a CuPy array could exist.

The kernel registry maps a kernel name (``"im2col2d"``, ``"lstm_cell_forward"``...) to
implementations keyed by backend (``"numpy"`` is the reference; ``"cpu"``, ``"numba"``
and ``"cuda"`` are accelerated).  Ops look their kernels up here instead of branching.
"""

from __future__ import annotations

import os
import sys

import numpy as np

__all__ = [
    "array_module",
    "device_of",
    "check_same_device",
    "register_kernel",
    "get_kernel",
    "set_backend",
    "get_backend",
    "info",
]


def _cupy_if_loaded():
    # Only consult CuPy if the user (or the GPU path) already imported it: a NumPy-only
    # user never pays for the import, and a missing CuPy is never an error here.
    return sys.modules.get("cupy")


def array_module(*arrays):
    """``numpy`` or ``cupy``, whichever owns the given arrays (NumPy when in doubt)."""
    cp = _cupy_if_loaded()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def device_of(array) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    cp = _cupy_if_loaded()
    if cp is not None and isinstance(array, cp.ndarray):
        return "cuda"
    return "cpu"


def check_same_device(op_name, tensors):
    """Raise a clear error when an op mixes CPU and CUDA tensors."""
    if len(tensors) < 2 or _cupy_if_loaded() is None:
        return
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        shapes = ", ".join(f"{tuple(t.shape)} on {device_of(t.data)}" for t in tensors)
        raise RuntimeError(
            f"{op_name}: expected all tensors on the same device, got {shapes}; "
            "move them with .to(device)"
        )


# ----------------------------------------------------------------------------- registry

#: kernel name -> {backend name -> callable}
_KERNELS: dict[str, dict[str, object]] = {}
#: the order in which ``auto`` tries CPU backends (fastest first, as measured in bench/)
_AUTO_ORDER = ("cpu", "numba", "numpy")
_VALID = ("auto", "numpy", "numba", "cpu")
_selected = os.environ.get("MINIDL_BACKEND", "auto").lower()
if _selected not in _VALID:
    raise ValueError(f"MINIDL_BACKEND={_selected!r} is not one of {', '.join(_VALID)}")


def register_kernel(name: str, backend: str, fn=None):
    """Register ``fn`` as the ``backend`` implementation of kernel ``name``.

    Usable as a decorator: ``@register_kernel("im2col2d", "numpy")``.
    """

    def deco(f):
        _KERNELS.setdefault(name, {})[backend] = f
        return f

    return deco if fn is None else deco(fn)


def get_kernel(name: str, device: str = "cpu"):
    """The implementation of kernel ``name`` that the current backend selects."""
    impls = _KERNELS.get(name)
    if not impls:
        raise KeyError(f"no kernel named {name!r} is registered")
    if device == "cuda":
        if "cuda" in impls:
            return impls["cuda"]
        return impls["numpy"]  # xp-generic reference
    if _selected != "auto":
        return impls.get(_selected, impls["numpy"])
    for b in _AUTO_ORDER:
        if b in impls:
            return impls[b]
    raise KeyError(f"kernel {name!r} has no CPU implementation")


def set_backend(name: str):
    """Choose the CPU kernel backend: ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpu"``."""
    global _selected
    name = name.lower()
    if name not in _VALID:
        raise ValueError(f"set_backend: {name!r} is not one of {', '.join(_VALID)}")
    _selected = name


def get_backend() -> str:
    """The CPU backend selected (``"auto"`` unless changed)."""
    return _selected


def info() -> dict:
    """What is registered for each kernel and which implementation runs now."""
    return {
        "selected": _selected,
        "kernels": {
            name: {"available": sorted(impls), "chosen": _chosen_name(impls)}
            for name, impls in sorted(_KERNELS.items())
        },
    }


def _chosen_name(impls):
    if _selected != "auto":
        return _selected if _selected in impls else "numpy"
    return next(b for b in _AUTO_ORDER if b in impls)
