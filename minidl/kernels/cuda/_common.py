"""What every Numba-CUDA kernel module shares: launch configuration and block reductions.

Launch configuration
--------------------
Every kernel runs a *grid-stride loop*: thread ``g = blockIdx.x * blockDim.x +
threadIdx.x`` handles the work items ``g, g + G, g + 2G, ...`` with ``G`` the number of
threads in the grid.  Any grid is then correct for any problem size, so the grid is
chosen for speed alone: :func:`blocks_for` asks for enough blocks to give every item its
own thread, capped at ``max_blocks`` (past a few thousand blocks of 256 threads a GPU is
full, and a thread that loops costs less than a block that is scheduled).  The last
block of an odd size is only partly busy: its threads past the end skip the loop.

The kernels that reduce (batch-norm statistics, the softmax of one row) give each
channel or row a *block*, grid-striding over channels/rows, and reduce inside the block
in shared memory (:func:`block_sum`, :func:`block_max`): a tree of ``log2(threads)``
steps, so the block size is a power of two, at most :data:`MAX_THREADS` (the length of
the shared arrays, fixed when the kernel compiles).

:func:`launch_config` changes the block size and the cap for a ``with`` block: the
simulator tests use a few threads and blocks to cover several blocks and several passes
of the grid-stride loops on tiny arrays.  :data:`last_launch` keeps the ``(blocks,
threads)`` of the latest launch, for those tests to check.

Importing this module imports :mod:`numba.cuda` (ImportError without Numba).
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
from numba import cuda

from minidl import backend

__all__ = [
    "MAX_THREADS",
    "launch_config",
    "threads_per_block",
    "block_threads",
    "blocks_for",
    "launch",
    "launch_blocks",
    "block_sum",
    "block_max",
    "usable",
    "array_module",
    "transferable",
    "copy_back",
]

#: the longest block: shared reduction arrays have this many float64 slots
MAX_THREADS = 256
#: float dtypes the kernels compile for; anything else goes to the NumPy reference
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

_config = {"threads": MAX_THREADS, "max_blocks": 4096}
#: ``(blocks, threads)`` of the latest launch (read by the tests)
last_launch: tuple[int, int] | None = None
#: Numba's handle of each CuPy stream launched on, by CuPy's stream pointer
_streams: dict[int, object] = {}

array_module = backend.array_module


def _check_power_of_two(threads):
    if not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS
            and threads & (threads - 1) == 0):
        raise ValueError(
            f"launch_config: threads_per_block must be a power of two from 1 to {MAX_THREADS} "
            f"(the shared-memory reductions halve it), got {threads!r}"
        )


@contextlib.contextmanager
def launch_config(threads_per_block=None, max_blocks=None):
    """Use ``threads_per_block`` threads per block and at most ``max_blocks`` blocks for
    the launches inside the ``with`` block (either may be None: unchanged).

    ``threads_per_block`` must be a power of two up to :data:`MAX_THREADS`.

    Examples
    --------
    >>> from minidl.kernels.cuda import _common
    >>> with _common.launch_config(threads_per_block=8, max_blocks=3):
    ...     _common.blocks_for(1000), _common.threads_per_block()
    (3, 8)
    """
    if threads_per_block is not None:
        _check_power_of_two(threads_per_block)
    if max_blocks is not None and not (isinstance(max_blocks, int) and max_blocks >= 1):
        raise ValueError(f"launch_config: max_blocks must be a positive int, got {max_blocks!r}")
    saved = dict(_config)
    if threads_per_block is not None:
        _config["threads"] = threads_per_block
    if max_blocks is not None:
        _config["max_blocks"] = max_blocks
    try:
        yield
    finally:
        _config.update(saved)


def threads_per_block() -> int:
    """The block size elementwise kernels use (256 unless :func:`launch_config` says)."""
    return _config["threads"]


def block_threads(items: int) -> int:
    """Block size for one block per channel or row of ``items`` values: the smallest
    power of two that holds them, from 32 (a warp) up to :func:`threads_per_block`.

    A classifier's row of 10 logits then takes one warp instead of 256 mostly idle
    threads."""
    limit = threads_per_block()
    threads = min(32, limit)
    while threads < items and threads < limit:
        threads *= 2
    return threads


def blocks_for(items: int, threads: int | None = None) -> int:
    r"""Blocks for ``items`` work items: :math:`\min(\lceil items / threads \rceil,
    max\_blocks)`, at least 1."""
    threads = threads_per_block() if threads is None else threads
    return max(1, min(-(-items // threads), _config["max_blocks"]))


def launch(kernel, items, *args):
    """Launch a grid-stride ``kernel`` over ``items`` work items (``items > 0``).

    Array arguments go through :func:`transferable` (and :func:`copy_back` after)."""
    global last_launch
    threads = threads_per_block()
    blocks = blocks_for(items, threads)
    last_launch = (blocks, threads)
    _run(kernel, blocks, threads, args)


def launch_blocks(kernel, groups, items_per_group, *args):
    """Launch a block-per-group ``kernel`` (a channel, a row) over ``groups`` groups of
    ``items_per_group`` values each."""
    global last_launch
    threads = block_threads(items_per_group)
    blocks = max(1, min(groups, _config["max_blocks"]))
    last_launch = (blocks, threads)
    _run(kernel, blocks, threads, args)


def _run(kernel, blocks, threads, args):
    used = transferable(*args)
    stream, device_args = _on_cupy_stream(used)
    if stream is None:
        kernel[blocks, threads](*used)
    else:
        kernel[blocks, threads, stream](*device_args)
    copy_back(args, used)


def _on_cupy_stream(args):
    """``(stream, args)`` to launch on CuPy's current stream, or ``(None, args)`` when no
    argument is a CuPy array (NumPy under the simulator).

    NOTE: given a CuPy array directly, Numba *synchronises* the stream its
    ``__cuda_array_interface__`` names (CuPy names its current one) before every launch:
    the host would wait for the GPU at each kernel.  Viewing the arrays without that
    (``as_cuda_array(sync=False)``) and launching on that same stream keeps the order
    (our kernel runs after the work that made its inputs, before the work that reads its
    outputs) without a wait.  CuPy's default "null" stream is CUDA's legacy default stream.
    """
    cp = sys.modules.get("cupy")
    if cp is None or not any(isinstance(a, cp.ndarray) for a in args):
        return None, args
    pointer = cp.cuda.get_current_stream().ptr
    stream = _streams.get(pointer)
    if stream is None:
        stream = cuda.legacy_default_stream() if pointer == 0 else cuda.external_stream(pointer)
        _streams[pointer] = stream
    return stream, tuple(cuda.as_cuda_array(a, sync=False) if isinstance(a, cp.ndarray) else a
                         for a in args)


def usable(*arrays) -> bool:
    """All non-empty and of one dtype, float32 or float64 (the kernels' domain)."""
    dtype = arrays[0].dtype
    return dtype in FLOATS and all(a.dtype == dtype and a.size for a in arrays)


def _one_block(a):
    """Whether Numba can copy NumPy array ``a`` to the device as one piece of memory: C-
    or F-contiguous once the broadcast (stride-0) axes are dropped (its own rule)."""
    if a.ndim == 0 or a.size == 0:
        return True
    core = a[tuple(0 if stride == 0 else slice(None) for stride in a.strides)]
    return core.flags.c_contiguous or core.flags.f_contiguous


def transferable(*arrays):
    """The arrays as a kernel launch can take them.

    CuPy arrays are passed as they are: Numba reads them in place, with any strides,
    through ``__cuda_array_interface__``.  A NumPy array (under the simulator, or a host
    array given to a GPU kernel) is *copied* to the device by Numba and back after the
    kernel.  Numba copies one block of memory, so an array with gaps (every other column,
    padded rows) is replaced by a C-contiguous copy (C-, F-ordered and broadcast arrays
    keep their strides); and the copy back needs a writeable array, so a read-only one
    (a broadcast scalar) is replaced by a writeable copy.  Returns a tuple.
    """
    return tuple(a if not isinstance(a, np.ndarray) or (_one_block(a) and a.flags.writeable)
                 else np.array(a, order="C") for a in arrays)


def copy_back(originals, used):
    """After a launch, write what the kernel wrote into the copies :func:`transferable`
    made back into the caller's (writeable) arrays: the in-place kernels' outputs."""
    for original, array in zip(originals, used):
        if array is not original and original.flags.writeable:
            original[...] = array


@cuda.jit(device=True)
def block_sum(shared, value):
    r"""Sum of ``value`` over the threads of the block (float64), returned to every thread.

    A tree in the shared array ``shared`` (at least ``blockDim.x`` slots): step ``s``
    adds slot ``t + s`` into slot ``t`` for ``t < s``, ``s = B/2, B/4, ..., 1``.  Every
    thread of the block must call it (it synchronises); ``blockDim.x`` is a power of two.
    """
    tid = cuda.threadIdx.x
    shared[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            shared[tid] += shared[tid + step]
        cuda.syncthreads()
        step //= 2
    total = shared[0]
    # no thread may overwrite slot 0 (the next reduction) before all have read it
    cuda.syncthreads()
    return total


@cuda.jit(device=True)
def block_max(shared, value):
    """Largest ``value`` over the block, returned to every thread; NaN if any is NaN
    (as NumPy's ``max``).  Same rules as :func:`block_sum`."""
    tid = cuda.threadIdx.x
    shared[tid] = value
    cuda.syncthreads()
    step = cuda.blockDim.x // 2
    while step > 0:
        if tid < step:
            other = shared[tid + step]
            if other > shared[tid] or other != other:
                shared[tid] = other
        cuda.syncthreads()
        step //= 2
    result = shared[0]
    cuda.syncthreads()
    return result

