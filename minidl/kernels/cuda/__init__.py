"""Numba-CUDA kernels, registered as the ``"cuda"`` backend of :mod:`minidl.backend`.

One module per kernel family (``conv``, ``pool``, ``norm``, ``recurrent``, ``loss``), each
with ``@cuda.jit`` kernels and Python wrappers of the same signatures as the NumPy
references in :mod:`minidl.ops`; ``_common`` holds the launch configuration (grid-stride
loops, block sizes; ``_common.launch_config`` changes them for a ``with`` block) and the
shared-memory block reductions.

Nothing here is imported by ``import minidl``: :func:`minidl.kernels.load_cuda` imports
the family modules when a CUDA tensor first asks for a kernel, and only if Numba sees a
GPU (or its simulator, ``NUMBA_ENABLE_CUDASIM=1``, which the tests use).  This package
file imports nothing, so that ``import minidl.kernels.cuda`` alone costs nothing.
"""
