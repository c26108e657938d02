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
    "parse_device",
    "move",
    "to_host",
    "check_same_device",
    "raise_device_mismatch",
    "add_at",
    "register_kernel",
    "get_kernel",
    "set_backend",
    "get_backend",
    "set_num_threads",
    "get_num_threads",
    "blas_num_threads",
    "info",
]


def _cupy_if_loaded():
    # Only consult CuPy if the user (or the GPU path) already imported it: a NumPy-only
    # user never pays for the import, and a missing CuPy is never an error here.
    return sys.modules.get("cupy")


def cupy_loaded() -> bool:
    """Whether CuPy has been imported (only then can a CUDA array exist)."""
    return "cupy" in sys.modules


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


_DEVICES = ("cpu", "cuda")


def parse_device(device, where="to()") -> str:
    """The device name (``"cpu"`` or ``"cuda"``) that ``device`` stands for.

    Accepts ``"cpu"``, ``"cuda"``, ``"cuda:0"``, the integer ``0`` (GPU 0, as PyTorch's
    ``.cuda(0)``) and device objects whose ``str()`` is one of these (``torch.device``).

    NOTE: minidl drives one GPU, CuPy's current device (``cupy.cuda.Device(n).use()`` or
    ``CUDA_VISIBLE_DEVICES`` choose it), so ``"cuda:0"`` means ``"cuda"`` and other
    indices are refused rather than silently mapped to the wrong GPU.

    Raises
    ------
    ValueError
        For anything else (``"gpu"``, ``"cuda:1"``, ``"tpu"``).
    """
    name = f"cuda:{device}" if isinstance(device, int) and not isinstance(device, bool) else device
    name = str(name).strip().lower()
    kind, _, index = name.partition(":")
    if kind in _DEVICES and (index == "" or (kind == "cuda" and index == "0")):
        return kind
    if kind == "cuda" and index.isdigit():
        raise ValueError(
            f"{where}: device {device!r}: minidl uses one GPU, CuPy's current device; choose "
            "it with CUDA_VISIBLE_DEVICES (or cupy.cuda.Device(n).use()) and pass 'cuda'"
        )
    raise ValueError(f"{where}: unknown device {device!r}; expected 'cpu' or 'cuda'")


def to_host(array):
    """``array`` as a NumPy array: CuPy arrays are copied to host memory (``.get()``),
    NumPy arrays are returned as they are."""
    if device_of(array) == "cuda":
        return array.get()
    return array


def move(array, device: str):
    """``array`` on ``device`` (``"cpu"`` or ``"cuda"``, already parsed): a copy when it
    has to cross, the array itself when it is already there.

    Raises the errors of :func:`minidl.cuda.require_cupy` (what is missing, and how to
    install it) when ``device`` is ``"cuda"`` and CuPy or a GPU is not available.
    """
    if device == "cpu":
        return to_host(array)
    if device_of(array) == "cuda":
        return array
    from minidl import cuda

    return cuda.to_device(array)


def add_at(target, index, values):
    """``target[index] += values`` in place, with repeated indices accumulated.

    NumPy spells it ``np.add.at``; CuPy ``cupyx.scatter_add`` (an atomic add on the GPU,
    available in every CuPy version, unlike ``cupy.add.at``).
    """
    if device_of(target) == "cuda":
        import cupyx

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


def check_same_device(op_name, tensors):
    """Raise a clear error when an op mixes CPU and CUDA tensors.

    The message names the op and each operand's shape and device, e.g.
    ``Add: expected all tensors on the same device, got (2, 3) on cpu, (2, 3) on cuda``.
    """
    if len(tensors) < 2 or _cupy_if_loaded() is None:
        return
    devices = {device_of(t.data) for t in tensors}
    if len(devices) > 1:
        raise_device_mismatch(op_name, [t.data for t in tensors])


def raise_device_mismatch(op_name, arrays):
    """Raise the mixed-device error for the operands ``arrays`` of ``op_name``."""
    shapes = ", ".join(f"{tuple(a.shape)} on {device_of(a)}" for a in arrays)
    raise RuntimeError(
        f"{op_name}: expected all tensors on the same device, got {shapes}; "
        "move them with .to(device)"
    )


# ----------------------------------------------------------------------------- registry

#: kernel name -> {backend name -> callable}
_KERNELS: dict[str, dict[str, object]] = {}
#: the order in which ``auto`` tries CPU backends, fastest first.  Measured with
#: ``python -m bench --kernels`` on the development machine (2 cores); kernels not listed
#: use ``_DEFAULT_ORDER``.
_DEFAULT_ORDER = ("cpu", "numba", "numpy")
# NOTE: measured (session 1, 2 cores, OMP_WAIT_POLICY=PASSIVE which minidl.kernels sets
# unless the user chose otherwise): Numba's col2im is 15-30% faster than the C one; the C
# im2col and pooling kernels are fastest (W5 step: numpy 151 ms, cpu 114, numba 120);
# NumPy's argmax beats a compiled global max pooling, which therefore is not written.
_MEASURED_ORDER: dict[str, tuple[str, ...]] = {
    "col2im1d": ("numba", "cpu", "numpy"),
    "col2im2d": ("numba", "cpu", "numpy"),
}
_VALID = ("auto", "numpy", "numba", "cpu")
_selected = os.environ.get("MINIDL_BACKEND", "auto").lower()
if _selected not in _VALID:
    # a bad environment variable must not make `import minidl` fail: say so, use auto
    import warnings

    warnings.warn(
        f"MINIDL_BACKEND={_selected!r} is not one of {', '.join(_VALID)}; using 'auto'",
        RuntimeWarning,
        stacklevel=2,
    )
    _selected = "auto"
_num_threads = None
#: whether CUDA tensors use the registered "cuda" kernels.  False runs the xp-generic NumPy
#: references on CuPy instead: a way to tell a kernel bug from an op bug on a GPU, and what
#: the host-side fake CuPy of the test suite needs (its arrays are not on a GPU).
_use_cuda_kernels = True


def register_kernel(name: str, backend: str, fn=None):
    """Register ``fn`` as the ``backend`` implementation of kernel ``name``.

    Usable as a decorator: ``@register_kernel("im2col2d", "numpy")``.  Every accelerated
    implementation must have the same signature and results as the ``"numpy"`` one.
    """

    def deco(f):
        _KERNELS.setdefault(name, {})[backend] = f
        return f

    return deco if fn is None else deco(fn)


def _ensure_accelerated_loaded():
    # Compiled and Numba kernels register themselves when their modules are imported;
    # that happens once, on first use, so `import minidl` stays fast and never fails.
    from minidl import kernels

    kernels.load()


def _ensure_cuda_loaded():
    from minidl import kernels

    kernels.load_cuda()


def _order(name):
    return _MEASURED_ORDER.get(name, _DEFAULT_ORDER)


def get_kernel(name: str, device: str = "cpu"):
    """The implementation of kernel ``name`` that the current backend selects.

    ``"cuda"`` tensors get the CUDA kernel when there is one, else the NumPy reference
    (written with ``xp`` so it runs on CuPy).  On the CPU, a backend chosen with
    :func:`set_backend` is used where it implements the kernel, the reference otherwise;
    ``"auto"`` takes the fastest available, in the measured order.
    """
    if _selected != "numpy":
        _ensure_accelerated_loaded()
    impls = _KERNELS.get(name)
    if not impls:
        raise KeyError(f"no kernel named {name!r} is registered")
    if device == "cuda":
        if _use_cuda_kernels:
            # the Numba-CUDA kernels load here, on a CUDA tensor's first kernel, never at
            # import; they register into ``impls`` (or leave the reference, saying why)
            _ensure_cuda_loaded()
            if "cuda" in impls:
                return impls["cuda"]
        return impls["numpy"]
    return impls[_chosen_name(impls, name)]


def _chosen_name(impls, name):
    if _selected != "auto":
        return _selected if _selected in impls else "numpy"
    return next(b for b in _order(name) if b in impls)


def set_backend(name: str):
    """Choose the CPU kernel backend: ``"auto"``, ``"numpy"``, ``"numba"`` or ``"cpu"``.

    Examples
    --------
    >>> import minidl
    >>> minidl.set_backend("numpy")   # the readable reference kernels everywhere
    >>> minidl.backend.get_backend()
    'numpy'
    >>> minidl.set_backend("auto")
    """
    global _selected
    name = str(name).lower()
    if name not in _VALID:
        raise ValueError(f"set_backend: {name!r} is not one of {', '.join(_VALID)}")
    _selected = name


def get_backend() -> str:
    """The CPU backend selected (``"auto"`` unless changed)."""
    return _selected


def set_num_threads(n: int):
    """Number of threads the compiled (OpenMP) and Numba kernels use, and the BLAS that
    NumPy's matrix products call (as ``torch.set_num_threads`` also bounds MKL/OpenBLAS).

    Why the BLAS too: on a loaded machine a multi-threaded OpenBLAS spins waiting for a
    descheduled worker on every small product (an LSTM runs thousands per epoch), which
    made a 2-thread training run several times slower than a 1-thread one beside another
    job.  ``OPENBLAS_NUM_THREADS`` only works before NumPy is imported; this works at any
    time, through ``threadpoolctl`` when it is installed, else by calling the
    ``*_set_num_threads`` entry point of the OpenBLAS/MKL/BLIS library NumPy has loaded
    (Linux).  When neither is possible the BLAS keeps its own setting.
    """
    global _num_threads
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _num_threads = n
    _set_blas_threads(n)


#: entry points that set/get the thread count of the BLAS libraries NumPy is built with
#: (OpenBLAS under its own and SciPy's symbol names, MKL, BLIS)
_BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                 "MKL_Set_Num_Threads", "bli_thread_set_num_threads")
_BLAS_GETTERS = ("openblas_get_num_threads", "openblas_get_num_threads64_",
                 "scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                 "MKL_Get_Max_Threads", "bli_thread_get_num_threads")


def _loaded_blas_libraries():
    """ctypes handles of the BLAS shared libraries mapped into this process (Linux)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return []
    libs = []
    for path in sorted(paths):
        name = os.path.basename(path).lower()
        if ".so" in name and ("blas" in name or "mkl_rt" in name or "blis" in name):
            try:
                libs.append(ctypes.CDLL(path))
            except OSError:
                continue
    return libs


def _blas_entry(lib, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _set_blas_threads(n: int, use_threadpoolctl: bool = True) -> bool:
    """Limit NumPy's BLAS to ``n`` threads; returns whether any library was limited."""
    if use_threadpoolctl:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            # applied on construction and kept: the object is not used as a context
            threadpool_limits(limits=n, user_api="blas")
            return True
    done = False
    for lib in _loaded_blas_libraries():
        setter = _blas_entry(lib, _BLAS_SETTERS)
        if setter is not None:
            setter(int(n))
            done = True
    return done


def blas_num_threads():
    """Threads of the BLAS NumPy calls (``None`` when it cannot be asked)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        for lib in _loaded_blas_libraries():
            getter = _blas_entry(lib, _BLAS_GETTERS)
            if getter is not None:
                return int(getter())
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return min(counts) if counts else None


def get_num_threads() -> int:
    """Threads for compiled kernels: ``set_num_threads``, else ``MINIDL_NUM_THREADS``,
    else ``OMP_NUM_THREADS``, else the number of CPUs."""
    global _num_threads
    if _num_threads is None:  # decided once: kernels ask on every call, so keep it cheap
        _num_threads = os.cpu_count() or 1
        for var in ("MINIDL_NUM_THREADS", "OMP_NUM_THREADS"):
            value = os.environ.get(var, "")
            if value.isdigit() and int(value) > 0:
                _num_threads = int(value)
                break
    return _num_threads


def info() -> dict:
    """What is built, available and chosen for each kernel, and why something is missing.

    Returns a dict with ``selected`` (the backend setting), ``num_threads``,
    ``extensions`` (each accelerated module and whether it loaded, with the reason if
    not), ``cuda`` (each family of Numba-CUDA kernels: ``"loaded"``, ``"unavailable:
    why"``, or ``"not loaded"`` before a CUDA tensor first needed one; asking does not
    load them) and ``kernels`` (for each kernel: the implementations available and the
    one that runs now on the CPU).
    """
    import minidl.nn.functional  # noqa: F401 - imports every op module, registering references
    from minidl import kernels

    if _selected != "numpy":
        _ensure_accelerated_loaded()
    return {
        "selected": _selected,
        "num_threads": get_num_threads(),
        "blas_num_threads": blas_num_threads(),
        "extensions": kernels.status(),
        "cuda": kernels.cuda_status(),
        "kernels": {
            name: {"available": sorted(impls), "chosen": _chosen_name(impls, name)}
            for name, impls in sorted(_KERNELS.items())
        },
    }
