"""Compile every Numba-CUDA kernel for a real GPU (PTX), without a GPU: a developer check.

The simulator runs the kernels as Python, so it never type-checks them the way the CUDA
target does (``x.dtype.type(0)``, shared arrays, device functions, float32 maths).  This
script calls every ``"cuda"`` wrapper on small float32 and float64 NumPy arrays with
:func:`minidl.kernels.cuda._common.launch` replaced by ``numba.cuda.compile_ptx`` for the
exact argument types of that launch, and prints, per kernel, whether it compiled and how
many float64 instructions the float32 version holds (only the statistics' accumulators
and the softmax's sums should).

It needs NVIDIA's NVVM and libdevice, which ``pip install nvidia-cuda-nvcc-cu12``
provides; point Numba at them and run it without the simulator::

    CUDA_HOME=$(python -c "import nvidia.cuda_nvcc, os; print(os.path.dirname(
        nvidia.cuda_nvcc.__file__))") python tests/kernels/cuda/compile_ptx.py

(Not a pytest module: CI has no NVVM; the simulator tests are what CI runs.)
"""

from __future__ import annotations

import os
import sys

import numba
import numpy as np
from numba import cuda

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    sys.exit("compile_ptx.py compiles for the real CUDA target: run it without the simulator")

import types  # noqa: E402

from numba.cuda import dispatcher  # noqa: E402

from minidl import backend, kernels  # noqa: E402
from minidl.kernels.cuda import _common  # noqa: E402

# device functions compile for "the current device" (a driver call): name one instead
_CC = (8, 0)
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=_CC)

compiled: dict[tuple[str, str], int] = {}
failures: list[str] = []


def _compile(kernel, *args, label):
    signature = tuple(numba.typeof(a) for a in args)
    name = f"{kernel.py_func.__module__.rsplit('.', 1)[-1]}.{kernel.py_func.__name__}"
    try:
        ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=_CC)
    except Exception as err:  # noqa: BLE001 - report every kernel, then fail
        failures.append(f"{name} {label}: {type(err).__name__}: {err}")
        return
    compiled[(name, label)] = ptx.count(".f64")


def main():
    # load the kernels as load_cuda() would, minus its "is a GPU there?" check
    for family in kernels.FAMILIES:
        __import__(f"minidl.kernels.cuda.{family}")
    k = {name: impls["cuda"] for name, impls in backend._KERNELS.items() if "cuda" in impls}
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        label = np.dtype(dtype).name
        _common.launch = lambda kernel, items, *args, label=label: _compile(
            kernel, *args, label=label)
        _common.launch_blocks = lambda kernel, groups, items, *args, label=label: _compile(
            kernel, *args, label=label)

        def r(*shape):
            return rng.standard_normal(shape).astype(dtype)  # noqa: B023 - one dtype a pass

        x4 = r(2, 3, 6, 5)
        k["im2col2d"](x4, (2, 2), (1, 1), ((1, 1), (0, 0)), (1, 1))
        k["col2im2d"](r(12, 2, 7, 4), x4.shape, (2, 2), (1, 1), ((1, 1), (0, 0)), (1, 1))
        k["im2col1d"](r(2, 3, 7), 3, 1, (1, 1), 1)
        k["col2im1d"](r(9, 2, 7), (2, 3, 7), 3, 1, (1, 1), 1)
        for nd, x in ((1, r(2, 3, 9)), (2, x4)):
            ones, zeros = (1,) * nd, (0,) * nd
            size = tuple(s - 1 for s in x.shape[2:])
            k[f"max_pool{nd}d_forward"](x, (2,) * nd, ones, zeros, ones, size, True)
            k[f"max_pool{nd}d_backward"](r(2, 3, *size), np.zeros((2, 3) + size, np.int64),
                                         x.shape)
            k[f"avg_pool{nd}d_forward"](x, (2,) * nd, ones, zeros, size, 4.0)
            k[f"avg_pool{nd}d_backward"](r(2, 3, *size), x.shape, (2,) * nd, ones, zeros, 4.0)
        xb, c = r(4, 3, 5), 3
        k["batch_norm_forward"](xb, r(c), r(c), r(c), np.abs(r(c)), True, 0.1, 1e-5)
        k["batch_norm_backward"](r(4, 3, 5), xb, r(c), np.zeros(c), np.ones(c), True,
                                 (True, True, True))
        b, h = 3, 4
        k["lstm_cell_forward"](r(b, 4 * h), r(b, h), r(b, h), r(b, h), r(b, h))
        k["lstm_cell_backward"](r(b, 4 * h), r(b, h), r(b, h), r(b, h), r(b, h), r(b, 4 * h))
        k["gru_cell_forward"](r(b, 3 * h), r(b, 3 * h), r(b, h), r(b, 4 * h), r(b, h))
        k["gru_cell_backward"](r(b, 4 * h), r(b, h), r(b, h), r(b, 3 * h), r(b, 3 * h))
        target = np.array([0, 2, -100, 1])
        k["softmax_cross_entropy_forward"](r(4, 5), target, r(5), -100, 0.1)
        logp = r(4, 5)
        k["softmax_cross_entropy_backward"](r(4), logp, target, r(5), -100, 0.1)
    for (name, label), f64 in sorted(compiled.items()):
        print(f"compiled {name:28s} {label:8s} float64 instructions: {f64}")
    for failure in failures:
        print("FAILED", failure)
    print(f"{len(compiled)} kernel signatures compiled, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
