"""A test-only stand-in for CuPy that runs on the host: it checks genericity, not CUDA.

There is no GPU on the development machine, so without this the ``xp`` (CuPy) side of
minidl would never run in a test.  ``install(monkeypatch)`` puts this module into
``sys.modules`` as ``cupy`` (and a matching ``cupyx``); from then on
``minidl.cuda.is_available()`` is True, ``x.to("cuda")`` gives a tensor whose data is a
:class:`ndarray` of this module, and every op, optimizer and I/O path takes its CuPy branch.

What it catches (each one an error that real CuPy raises too):

- host (NumPy) arrays mixed into device arithmetic, ufuncs or array functions
  (``cupy_array + numpy_array`` is a ``TypeError`` in CuPy);
- implicit conversion of device data to NumPy (``np.asarray(cupy_array)`` raises:
  code must call ``.get()``);
- use of a device array where a Python integer is needed (CuPy arrays have no
  ``__index__``), and of NumPy-only names CuPy lacks (``errstate``...);
- reductions that return 0-d arrays instead of NumPy scalars, as CuPy's do.

It is deliberately *stricter* than CuPy in one place: writing a host array into a device
array with ``[...] =`` is refused (CuPy accepts it only for advanced indices), so code
moves values explicitly.  What it cannot catch: anything about CUDA itself (kernels,
streams, memory), and numerical differences between cuBLAS and OpenBLAS.  The values are
computed by NumPy, so results must equal the CPU path's almost exactly.
"""

from __future__ import annotations

import sys
import types

import numpy as np

__all__ = ["ndarray", "install", "is_fake"]

_HOST = np.ndarray


def _reject_host(where, value):
    raise TypeError(
        f"fake cupy: {where} got a host numpy.ndarray {value.shape}; CuPy refuses host arrays "
        "here (move it with cupy.asarray first)"
    )


def _unwrap(value, where):
    """The host array behind a device value; host arrays refused; other values as they are."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, _HOST):
        _reject_host(where, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, where) for v in value)
    return value


def _wrap(value):
    """Host results as device values: arrays (and NumPy scalars, which CuPy never returns:
    its reductions give 0-d arrays) become :class:`ndarray`."""
    if isinstance(value, _HOST):
        return ndarray._of(value)
    if isinstance(value, np.generic):
        return ndarray._of(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _index(key):
    """An index for a device array: device index arrays unwrapped; host index arrays and
    lists are allowed, as CuPy copies them to the device."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    return key


# the public methods and attributes of cupy.ndarray (CuPy 14); anything else is refused
_ATTRIBUTES = frozenset(
    "T all any argmax argmin argpartition argsort astype base byteswap choose clip compress "
    "conj conjugate copy cumprod cumsum diagonal dot dtype fill flags flat flatten imag item "
    "itemsize mT max mean min nbytes ndim nonzero partition prod ptp put ravel real repeat "
    "reshape round searchsorted shape size sort squeeze std strides sum swapaxes take "
    "tobytes tolist trace transpose var view".split()
)


class ndarray:  # noqa: N801 - the name CuPy uses
    """A "device" array: a host array that only device code may touch."""

    __slots__ = ("_a",)
    __array_priority__ = 100  # CuPy's: minidl's Tensor (1000) gets the reflected operators

    def __init__(self, shape, dtype=float):
        self._a = np.empty(shape, dtype=dtype)

    @classmethod
    def _of(cls, host):
        obj = object.__new__(cls)
        object.__setattr__(obj, "_a", host)
        return obj

    # ------------------------------------------------------------- conversions
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly."
        )

    def get(self, stream=None, order="C", out=None):
        """Copy to the host (a new NumPy array)."""
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        self._a[...] = arr

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self._a.shape,
            "typestr": self._a.dtype.str,
            "data": (self._a.__array_interface__["data"][0], False),
            "strides": self._a.strides if not self._a.flags.c_contiguous else None,
            "version": 3,
        }

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __complex__(self):
        return complex(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(row) for row in self._a)

    def __repr__(self):
        return "fake_cupy." + repr(self._a)

    __str__ = __repr__

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __reduce__(self):
        raise TypeError("fake cupy arrays are not picklable (minidl never pickles)")

    # ------------------------------------------------------------- attributes
    def __getattr__(self, name):
        if name not in _ATTRIBUTES:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        value = getattr(self._a, name)
        if not callable(value):
            return _wrap(value)

        def method(*args, **kwargs):
            where = f"ndarray.{name}"
            return _wrap(value(*_unwrap(args, where), **_unwrap_kw(kwargs, where)))

        return method

    def __setattr__(self, name, value):
        if name == "shape":
            self._a.shape = value
        else:
            raise AttributeError(f"cannot set attribute {name!r} of a fake cupy array")

    # ------------------------------------------------------------- indexing
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, _HOST) and value.ndim > 0:
            _reject_host("__setitem__", value)
        self._a[_index(key)] = value._a if isinstance(value, ndarray) else value

    # ------------------------------------------------------------- NumPy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"{ufunc.__name__}.{method}" if method != "__call__" else ufunc.__name__
        host_inputs = []
        for x in inputs:
            if isinstance(x, ndarray):
                host_inputs.append(x._a)
            elif isinstance(x, _HOST):
                _reject_host(where, x)
            elif isinstance(x, (np.generic, int, float, complex, bool)):
                host_inputs.append(x)
            else:
                return NotImplemented
        out = kwargs.get("out")
        if out is not None:
            out = out if isinstance(out, tuple) else (out,)
            kwargs["out"] = tuple(_unwrap_out(o, where) for o in out)
        result = getattr(ufunc, method)(*host_inputs, **_unwrap_kw(kwargs, where, skip="out"))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        where = func.__name__
        return _wrap(func(*_unwrap(args, where), **_unwrap_kw(kwargs, where)))


def _unwrap_out(o, where):
    if not isinstance(o, ndarray):
        raise TypeError(f"fake cupy: {where}: out= must be a device array, got {type(o)}")
    return o._a


def _unwrap_kw(kwargs, where, skip=None):
    return {k: (v if k == skip else _unwrap(v, where)) for k, v in kwargs.items()}


def _binary(ufunc, reflected=False):
    def op(self, other):
        if not isinstance(other, (ndarray, _HOST, np.generic, int, float, complex, bool)):
            return NotImplemented  # e.g. a minidl Tensor: let it handle the operator
        a, b = (other, self) if reflected else (self, other)
        return self.__array_ufunc__(ufunc, "__call__", a, b)

    return op


def _inplace(ufunc):
    def op(self, other):
        self.__array_ufunc__(ufunc, "__call__", self, other, out=(self,))
        return self

    return op


def _unary(ufunc):
    def op(self):
        return self.__array_ufunc__(ufunc, "__call__", self)

    return op


_BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide,
    "floordiv": np.floor_divide, "mod": np.remainder, "pow": np.power, "matmul": np.matmul,
    "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor,
    "lshift": np.left_shift, "rshift": np.right_shift,
}
for _name, _uf in _BINARY.items():
    setattr(ndarray, f"__{_name}__", _binary(_uf))
    setattr(ndarray, f"__r{_name}__", _binary(_uf, reflected=True))
    if _name != "matmul":  # CuPy has no __imatmul__
        setattr(ndarray, f"__i{_name}__", _inplace(_uf))
for _name, _uf in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                   "gt": np.greater, "ge": np.greater_equal}.items():
    setattr(ndarray, f"__{_name}__", _binary(_uf))
for _name, _uf in {"neg": np.negative, "pos": np.positive, "abs": np.absolute,
                   "invert": np.invert}.items():
    setattr(ndarray, f"__{_name}__", _unary(_uf))
ndarray.__hash__ = None


# ----------------------------------------------------------------------------- the module

# NumPy names CuPy does not have (a subset: the ones array code might reach for)
_MISSING = frozenset(
    "errstate seterr geterr insert block ndenumerate nditer frompyfunc geomspace spacing "
    "isnat unstack vecdot matvec vecmat einsum_path histogram_bin_edges nanpercentile "
    "nanquantile char ma rec memmap matrix asmatrix".split()
)


class _Ufunc:
    """A NumPy ufunc as CuPy exposes it: device arrays only."""

    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__
        self.nin, self.nout, self.nargs = uf.nin, uf.nout, uf.nargs

    def _run(self, method, args, kwargs):
        if not any(isinstance(a, ndarray) for a in args):
            for a in args:
                if isinstance(a, _HOST):
                    _reject_host(self.__name__, a)
            # scalars only: compute and give a device 0-d array, as CuPy does
            return _wrap(getattr(self._uf, method)(*args, **_unwrap_kw(kwargs, self.__name__)))
        return ndarray.__array_ufunc__(
            next(a for a in args if isinstance(a, ndarray)), self._uf, method, *args, **kwargs
        )

    def __call__(self, *args, **kwargs):
        return self._run("__call__", args, kwargs)

    def reduce(self, *args, **kwargs):
        return self._run("reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        return self._run("accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        return self._run("outer", args, kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"fake cupy: {self.__name__}.at needs a device array")
        args = (a._a, _index(indices)) + (() if b is None else (_unwrap(b, "at"),))
        self._uf.at(*args)


def _function(name, fn):
    def device_function(*args, **kwargs):
        where = f"cupy.{name}"
        return _wrap(fn(*_unwrap(args, where), **_unwrap_kw(kwargs, where)))

    device_function.__name__ = name
    return device_function


def asarray(a, dtype=None, order=None, *, blocking=False):
    """Host data to the device (a copy); device arrays as they are (cast if asked)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    if isinstance(a, (list, tuple)) and any(isinstance(v, ndarray) for v in a):
        a = np.stack([v._a if isinstance(v, ndarray) else np.asarray(v) for v in a])
    return ndarray._of(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    if isinstance(obj, ndarray):
        host = np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        return ndarray._of(host)
    return ndarray._of(np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    return a.get() if isinstance(a, ndarray) else np.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


class _Namespace(types.ModuleType):
    """A NumPy namespace (``numpy``, ``numpy.lib.stride_tricks``, ...) seen as CuPy's."""

    def __init__(self, name, host_module, extra=None):
        super().__init__(name)
        self._host_module = host_module
        self.__dict__.update(extra or {})

    def __getattr__(self, name):
        if name.startswith("__") or name in _MISSING:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(self._host_module, name)
        if isinstance(value, np.ufunc):
            wrapped = _Ufunc(value)
        elif isinstance(value, types.ModuleType):
            wrapped = _Namespace(f"{self.__name__}.{name}", value)
        elif callable(value) and not isinstance(value, type):
            wrapped = _function(name, value)
        else:  # dtypes, scalar types, constants
            wrapped = value
        setattr(self, name, wrapped)
        return wrapped


class _Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_cuda = types.SimpleNamespace(
    is_available=lambda: True,
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
    get_device_id=lambda: 0,
)


class _MemoryPool:
    def free_all_blocks(self):
        pass

    def used_bytes(self):
        return 0


_memory_pool = _MemoryPool()


def _make_cupy():
    module = _Namespace("cupy", np, {
        "__fake__": True,
        "__version__": "0.0.0+fake",
        "ndarray": ndarray,
        "asarray": asarray,
        "array": array,
        "asnumpy": asnumpy,
        "get_array_module": get_array_module,
        "get_default_memory_pool": lambda: _memory_pool,
        "cuda": _cuda,
    })
    return module


def _scatter_add(a, slices, value):
    _Ufunc(np.add).at(a, slices, value)


def install(monkeypatch):
    """Make ``import cupy`` give the fake (undone by ``monkeypatch`` at the end of the test)."""
    cupy = _make_cupy()
    cupyx = types.ModuleType("cupyx")
    cupyx.scatter_add = _scatter_add
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    return cupy


def is_fake(module):
    """True for the module :func:`install` made."""
    return getattr(module, "__fake__", False)
