"""GPU support: CuPy arrays on an NVIDIA GPU.

``minidl.cuda.is_available()`` is True only when CuPy imports *and* a GPU answers.
Without them, moving a tensor to ``"cuda"`` raises an error that says what is missing.
"""

from __future__ import annotations

__all__ = ["is_available", "to_device", "require_cupy"]

_INSTALL_HINT = 'install CuPy for your CUDA version, e.g. pip install "minidl[gpu]"'


def require_cupy():
    """Import and return CuPy with a GPU, or raise a clear error."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(
            f"CUDA tensors need CuPy, which is not installed: {_INSTALL_HINT}"
        ) from None
    try:
        available = cupy.cuda.is_available()
    except Exception:  # noqa: BLE001 - CuPy raises several driver errors here
        available = False
    if not available:
        raise RuntimeError("CuPy is installed but no CUDA GPU is available on this machine")
    return cupy


def is_available() -> bool:
    """True when tensors can be moved to ``"cuda"``."""
    try:
        require_cupy()
    except RuntimeError:
        return False
    return True


def to_device(array):
    """Copy a host array to the GPU."""
    cupy = require_cupy()
    return cupy.asarray(array)
