"""GPU support: tensors on ``"cuda"`` hold CuPy arrays on an NVIDIA GPU.

``minidl.cuda.is_available()`` is True only when CuPy imports *and* a GPU answers.  Without
them, moving a tensor or a model to ``"cuda"`` raises an error that says what is missing:

- no CuPy: ``RuntimeError`` naming ``pip install "minidl[gpu]"``;
- CuPy but no usable GPU (no device, no driver): ``RuntimeError`` saying so.

Nothing falls back to NumPy silently.  ``import minidl`` never imports CuPy: it is imported
the first time something asks for the GPU.

Examples
--------
>>> import minidl
>>> minidl.cuda.is_available() in (True, False)
True
"""

from __future__ import annotations

import sys

__all__ = ["is_available", "device_count", "synchronize", "empty_cache", "manual_seed",
           "manual_seed_all", "to_device", "require_cupy"]

_INSTALL_HINT = 'install CuPy for your CUDA version, e.g. pip install "minidl[gpu]"'
# the CuPy module last found usable: checking again costs a driver call per transfer, and
# input batches are moved every step.  Keyed on the module object so that a test which
# replaces ``sys.modules["cupy"]`` is checked afresh.
_checked_cupy = None


def require_cupy():
    """Import and return CuPy with a GPU, or raise an error that says what is missing.

    Raises
    ------
    RuntimeError
        ``CUDA tensors need CuPy, which is not installed: ... pip install "minidl[gpu]"``
        when CuPy cannot be imported; ``CuPy is installed but no CUDA GPU is available``
        when it imports but finds no GPU (or no driver).
    """
    global _checked_cupy
    try:
        import cupy
    except ImportError as exc:
        detail = "" if getattr(exc, "name", None) == "cupy" else f" ({exc})"
        raise RuntimeError(
            f"CUDA tensors need CuPy, which is not installed{detail}: {_INSTALL_HINT}"
        ) from None
    if cupy is _checked_cupy:
        return cupy
    try:
        available = bool(cupy.cuda.is_available())
    except Exception:  # noqa: BLE001 - CuPy raises several driver errors here
        available = False
    if not available:
        raise RuntimeError(
            "CuPy is installed but no CUDA GPU is available on this machine (no device, or "
            "no NVIDIA driver): use the 'cpu' device"
        )
    _checked_cupy = cupy
    return cupy


def is_available() -> bool:
    """True when tensors can be moved to ``"cuda"`` (CuPy imports and sees a GPU).

    Imports CuPy if it is installed; never raises.
    """
    try:
        require_cupy()
    except RuntimeError:
        return False
    return True


def device_count() -> int:
    """Number of GPUs CuPy can see (0 without CuPy or without a GPU)."""
    if not is_available():
        return 0
    return int(sys.modules["cupy"].cuda.runtime.getDeviceCount())


def synchronize():
    """Wait until the GPU has finished all queued work (for timing; a no-op without CuPy).

    GPU kernels run asynchronously: a timer stopped right after a call measures the launch,
    not the work.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None and cupy is _checked_cupy:
        cupy.cuda.Device().synchronize()


def empty_cache():
    """Give CuPy's cached, unused GPU memory back to the driver (a no-op without CuPy).

    CuPy keeps freed blocks in a pool for reuse, so the memory other processes see in use
    stays high after tensors are freed; this releases the blocks nothing holds.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None and cupy is _checked_cupy:
        cupy.get_default_memory_pool().free_all_blocks()


def manual_seed(seed: int):
    """Seed the random numbers of CUDA tensors: the same as :func:`minidl.manual_seed`.

    NOTE: minidl draws every random number (initialisation, ``randn``, dropout masks) on
    the host from one generator and copies it to the GPU, so there is no separate GPU
    generator; this exists so that code written for ``torch.cuda.manual_seed`` ports.
    """
    from minidl import random

    return random.manual_seed(seed)


manual_seed_all = manual_seed


def to_device(array):
    """Copy a host array to the GPU (a CuPy array; one already there is returned as is)."""
    cupy = require_cupy()
    return cupy.asarray(array)
