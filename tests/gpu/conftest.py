"""The ``gpu`` fixture: every test in this folder runs twice, on two kinds of "cuda".

- ``fake-cupy``: the host-side stand-in of ``tests/fake_cupy.py`` is installed as ``cupy``.
  It runs everywhere (no GPU needed) and checks that minidl's CUDA path is array-module
  generic: no NumPy call on device data, no host array mixed into device arithmetic, no
  implicit device-to-host conversion.  It says nothing about CUDA itself.
- ``cupy`` (marked ``gpu``): the real CuPy on a real GPU, with the registered CUDA kernels.
  Skipped, with the reason, when CuPy is not installed or ``cupy.cuda.is_available()`` is
  False; the same test bodies then run unchanged on a machine with a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from fake_cupy import install as install_fake_cupy

import minidl
import minidl.cuda
from minidl import backend


@dataclass
class GPU:
    """What a test needs to know about the "cuda" it runs on."""

    xp: object  # the array module of "cuda" tensors (CuPy or the fake)
    fake: bool

    def is_device_array(self, array):
        return isinstance(array, self.xp.ndarray)

    def host(self, array):
        """A device array (or tensor) as a NumPy array."""
        if isinstance(array, minidl.Tensor):
            array = array.data
        return array.get() if self.is_device_array(array) else np.asarray(array)


def _real_cupy():
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed (pip install \"minidl[gpu]\")")
    try:
        available = bool(cupy.cuda.is_available())
    except Exception:  # noqa: BLE001 - driver errors mean the same: no GPU
        available = False
    if not available:
        pytest.skip("no CUDA GPU: cupy.cuda.is_available() is False")
    return cupy


@pytest.fixture(params=[
    pytest.param("fake-cupy", id="fake-cupy"),
    pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
])
def gpu(request, monkeypatch):
    """The kind of "cuda" this test runs on (see the module docstring)."""
    # forget a CuPy checked by an earlier test: the module behind "cupy" changes here
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)
    if request.param == "cupy":
        return GPU(xp=_real_cupy(), fake=False)
    fake = install_fake_cupy(monkeypatch)
    # the fake's arrays live in host memory: the registered CUDA kernels (Numba launches)
    # cannot run on them, so the xp-generic references run instead
    monkeypatch.setattr(backend, "_use_cuda_kernels", False)
    return GPU(xp=fake, fake=True)
