"""The Tensor: an array plus the bookkeeping reverse-mode autodiff needs.

A Tensor holds

- ``data``: a NumPy (or CuPy) ndarray with the values;
- ``requires_grad``: whether gradients should flow to it;
- ``grad_fn``: the :class:`~minidl.autograd.Function` that produced it (``None`` for a
  leaf: a tensor created by the user, such as a weight);
- ``grad``: after ``backward()``, the gradient of the output with respect to it (leaves
  only, unless ``retain_grad()`` was called), itself a Tensor.

The API follows PyTorch so that code ports by changing the import.  Every method that
computes something delegates to a function in :mod:`minidl.ops`.
"""

from __future__ import annotations

import numbers

import numpy as np

from minidl import autograd, backend
from minidl import random as _random

__all__ = [
    "Tensor", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand", "randn", "randint",
    "randperm", "rand_like", "randn_like", "arange", "linspace", "eye",
    "get_default_dtype", "set_default_dtype", "is_tensor", "numel",
]

_default_dtype = np.dtype(np.float32)


def get_default_dtype():
    """The floating dtype of new tensors made from Python floats (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype):
    """Change the default floating dtype (``float32`` or ``float64``)."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {dtype}")
    _default_dtype = dtype


def _to_dtype(dtype):
    return None if dtype is None else np.dtype(dtype)


def _array_from(data, dtype=None):
    """Make a host array from Python data following PyTorch's dtype inference.

    Python floats become the default dtype (float32), Python ints int64, bools bool;
    NumPy arrays keep their dtype unless ``dtype`` is given.
    """
    if isinstance(data, Tensor):
        arr = data.data
    elif hasattr(data, "__cuda_array_interface__") and backend.array_module(data) is not np:
        arr = data
    elif isinstance(data, np.ndarray):
        arr = data
    else:
        arr = np.asarray(data)
        if dtype is None:
            if arr.dtype.kind == "f":
                arr = arr.astype(_default_dtype)
            elif arr.dtype.kind in "iu":
                arr = arr.astype(np.int64)
            elif arr.dtype.kind == "O":
                raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} data")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


class Tensor:
    """A multi-dimensional array that records how it was computed.

    Parameters
    ----------
    data : array_like
        Values. A NumPy array is used without copying.
    requires_grad : bool
        Whether ``backward`` should compute a gradient for this tensor.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.tolist()
    [2.0, 4.0, 6.0]
    """

    # NumPy's binary operators defer to ours for ``ndarray + Tensor``
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _array_from(data, _to_dtype(dtype))
        self.grad = None
        self.grad_fn = None
        self._output_index = 0
        self._hooks = []
        self._retains_grad = False
        self._requires_grad = False
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _wrap(cls, array, grad_fn=None, output_index=0, requires_grad=False):
        """Wrap an array without copying or checking: for ops and the engine."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.grad_fn = grad_fn
        t._output_index = output_index
        t._hooks = []
        t._retains_grad = False
        t._requires_grad = requires_grad
        return t

    # ------------------------------------------------------------------ properties
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, Tensor):
            value = value._data
        self._data = value

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None and not isinstance(value, Tensor):
            value = Tensor._wrap(backend.array_module(value).asarray(value))
        if value is not None and value.shape != self.shape:
            raise RuntimeError(
                f"assigned grad has shape {value.shape}, but the tensor has shape {self.shape}"
            )
        if value is not None and value.device != self.device:
            raise RuntimeError(
                f"assigned grad is on {value.device}, but the tensor is on {self.device}"
            )
        self._grad = value

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if self.grad_fn is not None and not flag:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf tensors; use detach() to get "
                "a tensor that does not require grad"
            )
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self._requires_grad = flag

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def _generation(self):
        return self.grad_fn.generation if self.grad_fn is not None else 0

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_cuda(self):
        return self.device == "cuda"

    @property
    def T(self):
        """All dimensions reversed (the transpose of a matrix)."""
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        """The last two dimensions swapped."""
        return self.transpose(-2, -1)

    def size(self, dim=None):
        """The shape (as a tuple), or the size of dimension ``dim``."""
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        """Number of dimensions."""
        return self.data.ndim

    def numel(self):
        """Number of elements."""
        return int(self.data.size)

    def element_size(self):
        return self.data.itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __hash__(self):
        return id(self)

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"Boolean value of a tensor with {self.data.size} elements is ambiguous"
            )
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    # ------------------------------------------------------------------ conversion
    def numpy(self):
        """The values as a NumPy array (shared, not copied, for CPU tensors).

        Raises for tensors that require grad, as PyTorch does, to keep the graph honest:
        use ``t.detach().numpy()``.
        """
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy()"
            )
        if self.device == "cuda":
            raise TypeError("can't convert a cuda tensor to numpy: use .cpu() first")
        return self.data

    def __array__(self, dtype=None, copy=None):
        arr = self.data if self.device == "cpu" else self.cpu().data
        if dtype is not None:
            arr = arr.astype(dtype, copy=False)
        return arr.copy() if copy else arr

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item(): only one-element tensors can be converted to Python scalars, "
                f"got shape {self.shape}"
            )
        return self.data.reshape(()).item()

    def tolist(self):
        """The values as (nested) Python lists."""
        return np.asarray(self).tolist()

    def detach(self):
        """A new leaf tensor sharing the same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def detach_(self):
        """Cut this tensor from the graph in place, making it a leaf."""
        self.grad_fn = None
        self._requires_grad = False
        return self

    def clone(self):
        """A copy of the data that stays in the graph (gradient flows back unchanged)."""
        return _Clone.apply(self)

    def contiguous(self):
        """Tensors are always usable as they are; returned for API compatibility."""
        return self

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return self."""
        self.requires_grad = requires_grad
        return self

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is None:
            return
        if not self._retains_grad:
            self._retains_grad = True
            self._watch()

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed.

        The hook sees the total gradient of this tensor and may return a replacement.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require grad")
        self._hooks.append(hook)
        if self.grad_fn is not None:
            self._watch()
        return _HookHandle(self._hooks, hook)

    def _watch(self):
        watched = self.grad_fn.__dict__.setdefault("_watched_outputs", [])
        if self not in [w for w in watched if w is self]:
            watched.append(self)

    def _run_hooks(self, grad):
        for hook in self._hooks:
            result = hook(Tensor._wrap(grad))
            if result is not None:
                grad = result.data if isinstance(result, Tensor) else result
        return grad

    def _run_hooks_and_retain(self, grad):
        grad = self._run_hooks(grad)
        if self._retains_grad:
            self._accumulate_grad(grad)
        return grad

    def _accumulate_grad(self, grad, owned=False):
        """``self.grad += grad``, creating it on first use (PyTorch's accumulation).

        ``owned`` says that nobody else holds ``grad``, so it can become ``.grad`` as it
        is; otherwise it is copied (it may be shared with another tensor's gradient or be
        a read-only broadcast view, and users scale gradients in place).
        """
        if self._grad is None:
            self._grad = Tensor._wrap(_as_array(grad if owned else grad.copy()))
        else:
            self._grad = Tensor._wrap(_as_array(self._grad.data + grad))

    def backward(self, gradient=None, retain_graph=False):
        """Compute gradients of this tensor with respect to the leaves of its graph.

        ``gradient`` is needed unless the tensor holds a single element.  Gradients are
        *accumulated* into ``.grad``: call ``optimizer.zero_grad()`` between steps.
        """
        autograd.backward(self, gradient, retain_graph=retain_graph)

    # ------------------------------------------------------------------ dtype / device
    def to(self, *args, **kwargs):
        """Convert dtype and/or device: ``t.to(minidl.float64)``, ``t.to("cuda")``.

        Accepts ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other_tensor)``
        and the keywords ``dtype=``/``device=``.  Returns ``self`` when nothing changes.
        Moving copies the data (host to GPU or back) and is recorded in the graph: the
        gradient of ``y = x.to(d)`` is moved back to ``x``'s device.

        Raises
        ------
        ValueError
            For an unknown device (``"gpu"``).
        RuntimeError
            For ``"cuda"`` without CuPy (the message names ``pip install "minidl[gpu]"``)
            or without a GPU.
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("copy", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to(): unexpected arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif (isinstance(a, str) and not _is_dtype_name(a)) or _is_device_object(a):
                device = a
            else:
                dtype = a
        out = self
        if device is not None:
            out = _to_device(out, device)
        if dtype is not None and np.dtype(dtype) != out.dtype:
            dtype = np.dtype(dtype)
            if dtype.kind not in "fc":  # integer/bool results are never differentiable
                return Tensor._wrap(out.data.astype(dtype))
            out = _Cast.apply(out, dtype=dtype)
        return out

    def cpu(self):
        """This tensor on the host (itself if it is there already; else a copy that stays
        in the graph, so gradients flow back to the GPU tensor)."""
        return self.to("cpu")

    def cuda(self, device=None):
        """This tensor on the GPU (CuPy); see :meth:`to`.  ``device`` may be ``0`` or
        ``"cuda:0"``: minidl uses CuPy's current device."""
        return self.to("cuda" if device is None else device)

    def type(self, dtype=None):
        if dtype is None:
            return str(self.dtype)
        return self.to(dtype)

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def half(self):
        return self.to(np.float16)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def bool(self):
        return self.to(np.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ------------------------------------------------------------------ repr
    def __repr__(self):
        body = np.array2string(
            np.asarray(self.data if self.device == "cpu" else self.cpu().data),
            separator=", ", precision=4, prefix="tensor(",
        )
        extras = []
        if self.dtype not in (_default_dtype, np.int64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({body}{''.join(', ' + e for e in extras)})"

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return _ew.add(self, other)

    def __radd__(self, other):
        return _ew.add(other, self)

    def __sub__(self, other):
        return _ew.sub(self, other)

    def __rsub__(self, other):
        return _ew.sub(other, self)

    def __mul__(self, other):
        return _ew.mul(self, other)

    def __rmul__(self, other):
        return _ew.mul(other, self)

    def __truediv__(self, other):
        return _ew.div(self, other)

    def __rtruediv__(self, other):
        return _ew.div(other, self)

    def __pow__(self, exponent):
        return _ew.pow(self, exponent)

    def __rpow__(self, base):
        return _ew.RPowScalar.apply(self, base=base)

    def __matmul__(self, other):
        return _la.matmul(self, other)

    def __rmatmul__(self, other):
        return _la.matmul(other, self)

    def __neg__(self):
        return _ew.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ew.abs(self)

    def __eq__(self, other):
        return _ew.eq(self, other)

    def __ne__(self, other):
        return _ew.ne(self, other)

    def __lt__(self, other):
        return _ew.lt(self, other)

    def __le__(self, other):
        return _ew.le(self, other)

    def __gt__(self, other):
        return _ew.gt(self, other)

    def __ge__(self, other):
        return _ew.ge(self, other)

    def __invert__(self):
        return _ew.logical_not(self)

    def __and__(self, other):
        return Tensor._wrap(self.data & self._operand("__and__", other))

    def __or__(self, other):
        return Tensor._wrap(self.data | self._operand("__or__", other))

    def __xor__(self, other):
        return Tensor._wrap(self.data ^ self._operand("__xor__", other))

    def __floordiv__(self, other):
        return Tensor._wrap(self.data // self._operand("__floordiv__", other))

    def __mod__(self, other):
        return Tensor._wrap(self.data % self._operand("__mod__", other))

    def _operand(self, op, other):
        """The array behind ``other`` for a raw array operation with this tensor; a tensor
        or array on another device is refused with the mixed-device error."""
        other = _raw(other)
        if (hasattr(other, "shape") and not isinstance(other, np.generic)
                and backend.device_of(other) != self.device):
            backend.raise_device_mismatch(op, [self.data, other])
        return other

    def __getitem__(self, key):
        return _sh.getitem(self, key)

    def __setitem__(self, key, value):
        self._check_inplace("__setitem__")
        value = _raw(value)
        if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
            # like copy_: values from the other device are copied over explicitly (CuPy
            # refuses host arrays in a slice assignment)
            value = backend.move(value, self.device)
        self.data[_sh._index_key(key, self.device)] = value

    # in-place updates: for code under no_grad (optimizers, init), as in PyTorch
    def _check_inplace(self, op):
        if autograd.is_grad_enabled() and self.requires_grad:
            if self.is_leaf:
                raise RuntimeError(
                    f"{op}: a leaf tensor that requires grad is being used in an in-place "
                    "operation; wrap it in `with minidl.no_grad():`"
                )
            raise RuntimeError(
                f"{op}: in-place operations on tensors that are part of the graph are not "
                "supported; use the out-of-place version"
            )

    def _inplace(self, op, values):
        self._check_inplace(op)
        # host values (a fill value, random numbers drawn on the host, copy_ from the CPU)
        # are moved to this tensor's device: CuPy refuses host arrays in slice assignment
        values = backend.array_module(self.data).asarray(values)
        self.data[...] = values
        return self

    def zero_(self):
        return self._inplace("zero_", 0)

    def fill_(self, value):
        return self._inplace("fill_", _raw(value))

    def copy_(self, src):
        """Copy ``src``'s values into this tensor, in place (across devices too)."""
        src = _raw(src)
        src_shape = tuple(src.shape) if hasattr(src, "shape") else np.shape(src)
        if src_shape != self.shape:
            try:
                np.broadcast_shapes(src_shape, self.shape)
            except ValueError:
                raise RuntimeError(
                    f"copy_: source shape {src_shape} does not match {self.shape}"
                ) from None
        if hasattr(src, "shape"):
            src = backend.move(src, self.device)
        return self._inplace("copy_", src)

    def add_(self, other, alpha=1):
        return self._inplace("add_", self.data + alpha * self._operand("add_", other))

    def sub_(self, other, alpha=1):
        return self._inplace("sub_", self.data - alpha * self._operand("sub_", other))

    def mul_(self, other):
        return self._inplace("mul_", self.data * self._operand("mul_", other))

    def div_(self, other):
        return self._inplace("div_", self.data / self._operand("div_", other))

    def clamp_(self, min=None, max=None):
        xp = backend.array_module(self.data)
        return self._inplace("clamp_", xp.clip(self.data, min, max))

    def uniform_(self, a=0.0, b=1.0):
        return self._inplace("uniform_", _random.default_generator().uniform(a, b, self.shape))

    def normal_(self, mean=0.0, std=1.0):
        return self._inplace("normal_", _random.default_generator().normal(mean, std, self.shape))

    def masked_fill_(self, mask, value):
        self._check_inplace("masked_fill_")
        mask = self._operand("masked_fill_", mask)
        self.data[backend.array_module(self.data).broadcast_to(mask, self.shape)] = _raw(value)
        return self

    # ------------------------------------------------------------------ math methods
    def exp(self):
        return _ew.exp(self)

    def log(self):
        return _ew.log(self)

    def log1p(self):
        return _ew.log1p(self)

    def sqrt(self):
        return _ew.sqrt(self)

    def rsqrt(self):
        return _ew.pow(self, -0.5)

    def abs(self):
        return _ew.abs(self)

    def sin(self):
        return _ew.sin(self)

    def cos(self):
        return _ew.cos(self)

    def square(self):
        return _ew.square(self)

    def reciprocal(self):
        return _ew.reciprocal(self)

    def sign(self):
        return _ew.sign(self)

    def pow(self, exponent):
        return _ew.pow(self, exponent)

    def clamp(self, min=None, max=None):
        return _ew.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return _ew.maximum(self, other)

    def minimum(self, other):
        return _ew.minimum(self, other)

    def add(self, other, alpha=1):
        return _ew.add(self, other, alpha)

    def sub(self, other, alpha=1):
        return _ew.sub(self, other, alpha)

    def mul(self, other):
        return _ew.mul(self, other)

    def div(self, other):
        return _ew.div(self, other)

    def neg(self):
        return _ew.neg(self)

    def eq(self, other):
        return _ew.eq(self, other)

    def ne(self, other):
        return _ew.ne(self, other)

    def lt(self, other):
        return _ew.lt(self, other)

    def le(self, other):
        return _ew.le(self, other)

    def gt(self, other):
        return _ew.gt(self, other)

    def ge(self, other):
        return _ew.ge(self, other)

    def isnan(self):
        return _ew.isnan(self)

    def isfinite(self):
        return _ew.isfinite(self)

    def masked_fill(self, mask, value):
        """A copy with ``value`` where ``mask`` is true (gradient 0 there)."""
        mask = _raw(mask)
        fill = Tensor._wrap(backend.array_module(self.data).asarray(value, dtype=self.dtype))
        return _ew.where(mask, fill, self)

    def where(self, condition, other):
        return _ew.where(condition, self, other)

    # activations live in ops.activation (imported lazily: that module is optional here)
    def relu(self):
        from minidl.ops.activation import relu

        return relu(self)

    def sigmoid(self):
        from minidl.ops.activation import sigmoid

        return sigmoid(self)

    def tanh(self):
        from minidl.ops.activation import tanh

        return tanh(self)

    def softmax(self, dim):
        from minidl.ops.activation import softmax

        return softmax(self, dim)

    def log_softmax(self, dim):
        from minidl.ops.activation import log_softmax

        return log_softmax(self, dim)

    # reductions
    def sum(self, dim=None, keepdim=False, **kw):
        return _rd.sum(self, dim, keepdim, **kw)

    def mean(self, dim=None, keepdim=False, **kw):
        return _rd.mean(self, dim, keepdim, **kw)

    def prod(self, dim=None, keepdim=False, **kw):
        return _rd.prod(self, dim, keepdim, **kw)

    def max(self, dim=None, keepdim=False, **kw):
        return _rd.max(self, dim, keepdim, **kw)

    def min(self, dim=None, keepdim=False, **kw):
        return _rd.min(self, dim, keepdim, **kw)

    def amax(self, dim=None, keepdim=False, **kw):
        return _rd.amax(self, dim, keepdim, **kw)

    def amin(self, dim=None, keepdim=False, **kw):
        return _rd.amin(self, dim, keepdim, **kw)

    def var(self, dim=None, unbiased=True, keepdim=False, **kw):
        return _rd.var(self, dim, unbiased, keepdim, **kw)

    def std(self, dim=None, unbiased=True, keepdim=False, **kw):
        return _rd.std(self, dim, unbiased, keepdim, **kw)

    def logsumexp(self, dim=None, keepdim=False, **kw):
        return _rd.logsumexp(self, dim, keepdim, **kw)

    def argmax(self, dim=None, keepdim=False, **kw):
        return _rd.argmax(self, dim, keepdim, **kw)

    def argmin(self, dim=None, keepdim=False, **kw):
        return _rd.argmin(self, dim, keepdim, **kw)

    def all(self, dim=None, keepdim=False):
        return _rd.all(self, dim, keepdim)

    def any(self, dim=None, keepdim=False):
        return _rd.any(self, dim, keepdim)

    def norm(self, p=2, dim=None, keepdim=False):
        """The p-norm :math:`(\\sum |x|^p)^{1/p}` over ``dim`` (all elements by default)."""
        if p == 2:
            return (self * self).sum(dim, keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == float("inf"):
            return self.abs().amax(dim, keepdim)
        return (self.abs() ** p).sum(dim, keepdim) ** (1.0 / p)

    # linear algebra
    def matmul(self, other):
        return _la.matmul(self, other)

    def mm(self, other):
        return _la.mm(self, other)

    def bmm(self, other):
        return _la.bmm(self, other)

    def dot(self, other):
        return _la.dot(self, other)

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t(): expects a tensor with <= 2 dimensions, got {self.ndim}")
        return self.T if self.ndim == 2 else self

    # shape
    def reshape(self, *shape):
        return _sh.reshape(self, *shape)

    def view(self, *shape):
        if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)):
            return self.to(shape[0])  # view(dtype)
        return _sh.reshape(self, *shape)

    def view_as(self, other):
        return _sh.reshape(self, other.shape)

    def reshape_as(self, other):
        return _sh.reshape(self, other.shape)

    def permute(self, *dims):
        return _sh.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _sh.transpose(self, dim0, dim1)

    def movedim(self, source, destination):
        return _sh.movedim(self, source, destination)

    def expand(self, *sizes):
        return _sh.expand(self, *sizes)

    def expand_as(self, other):
        return _sh.expand(self, other.shape)

    def squeeze(self, dim=None):
        return _sh.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _sh.unsqueeze(self, dim)

    def flatten(self, start_dim=0, end_dim=-1):
        return _sh.flatten(self, start_dim, end_dim)

    def split(self, split_size, dim=0):
        return _sh.split(self, split_size, dim)

    def chunk(self, chunks, dim=0):
        return _sh.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _sh.unbind(self, dim)

    def flip(self, dims):
        return _sh.flip(self, dims)

    def roll(self, shifts, dims):
        return _sh.roll(self, shifts, dims)

    def repeat(self, *sizes):
        return _sh.repeat(self, *sizes)

    def tile(self, dims):
        return _sh.tile(self, dims)


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class _Clone(autograd.Function):
    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


class _Cast(autograd.Function):
    """dtype conversion; the engine casts the gradient back to the input's dtype."""

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, grad):
        return grad


class _ToDevice(autograd.Function):
    """A copy to another device; its gradient is copied back to the source device."""

    def forward(self, x):
        self.source = backend.device_of(x)
        return backend.move(x, self.device)

    def backward(self, grad):
        return backend.move(grad, self.source)


def _to_device(t, device):
    device = backend.parse_device(device)
    if device == t.device:
        return t
    return _ToDevice.apply(t, device=device)


def _is_dtype_name(s):
    try:
        np.dtype(s)
        return s not in ("cpu", "cuda")
    except TypeError:
        return False


def _is_device_object(obj):
    # a torch.device (or anything shaped like it) names a device, never a dtype
    return type(obj).__name__ == "device" and hasattr(obj, "type")


def _as_array(x):
    """NumPy turns 0-d results into scalars (np.float32); keep them as 0-d arrays."""
    return np.asarray(x) if isinstance(x, np.generic) else x


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def as_tensor_like(x, others=()):
    """Turn ``x`` into a Tensor for an op whose other operands are ``others``.

    Python numbers take the dtype of the tensor operands (``float32_tensor * 2.0`` stays
    float32, as in PyTorch); a float number with integer tensors gives the default float.
    """
    if isinstance(x, Tensor):
        return x
    if isinstance(x, numbers.Number) and not isinstance(x, np.generic):
        ref = next((o for o in others if isinstance(o, Tensor)), None)
        if ref is not None:
            xp = backend.array_module(ref.data)
            int_with_int = ref.dtype.kind in "iu" and isinstance(x, numbers.Integral)
            if ref.dtype.kind == "f" or int_with_int:
                return Tensor._wrap(xp.asarray(x, dtype=ref.dtype))
            if isinstance(x, numbers.Integral):
                return Tensor._wrap(xp.asarray(x, dtype=np.int64))
            return Tensor._wrap(xp.asarray(x, dtype=_default_dtype))
    return Tensor(x)


# ---------------------------------------------------------------------- creation


def is_tensor(obj):
    """True for a minidl Tensor."""
    return isinstance(obj, Tensor)


def numel(t):
    return t.numel()


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a *copy* of ``data`` (like ``torch.tensor``).

    Python floats become float32 (the default dtype), ints int64, NumPy arrays keep
    their dtype.  ``device="cuda"`` puts the copy on the GPU (the transfer is the copy);
    by default a tensor stays where ``data`` is (host data on the CPU, CuPy data on the GPU).

    Examples
    --------
    >>> import minidl
    >>> minidl.tensor([1.0, 2.0]).dtype
    dtype('float32')
    >>> minidl.tensor([1, 2]).dtype
    dtype('int64')
    """
    arr = _array_from(data, _to_dtype(dtype))
    source = backend.device_of(arr)
    target = source if device is None else backend.parse_device(device, "tensor()")
    if target != source:
        arr = backend.move(arr, target)  # a fresh array on the other device: the copy
    else:
        arr = backend.array_module(arr).array(arr, copy=True)
    t = Tensor._wrap(arr)
    t.requires_grad = requires_grad
    return t


def as_tensor(data, dtype=None, device=None):
    """Like :func:`tensor` but without copying when ``data`` already fits."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    t = Tensor._wrap(_array_from(data, _to_dtype(dtype)))
    return _to_device(t, device) if device is not None else t


def from_numpy(array):
    """A tensor sharing memory with a NumPy array (dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def _sizes(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"sizes must be non-negative ints, got {size}")
    return tuple(int(s) for s in size)


# NOTE: constant tensors (zeros, ones, full, empty) are allocated on their device directly.
# Random tensors are drawn on the host from minidl's one global generator and then copied
# to the device: ``manual_seed(s)`` then gives the same numbers on every device (a model
# initialised or a dropout mask drawn on the GPU equals the CPU one), at the price of one
# host-to-device copy of the values.  arange, linspace and eye are also made on the host
# and copied, so their values are bit-identical on both devices.


def _device_module(device, where):
    """``(device name, array module that allocates there)``; CuPy is checked for "cuda"."""
    device = "cpu" if device is None else backend.parse_device(device, where)
    if device == "cpu":
        return device, np
    from minidl import cuda

    return device, cuda.require_cupy()


def _leaf(arr, requires_grad):
    t = Tensor._wrap(arr)
    t.requires_grad = requires_grad
    return t


def _make(arr, dtype, device, requires_grad, where="tensor()"):
    """A tensor from host values ``arr``: cast to ``dtype`` (default float32) on the host,
    so that only the final bytes cross to ``device``."""
    arr = arr.astype(_to_dtype(dtype) or _default_dtype, copy=False)
    if device is not None:
        arr = backend.move(arr, backend.parse_device(device, where))
    return _leaf(arr, requires_grad)


def _constant(where, size, fill, dtype, device, requires_grad):
    device, xp = _device_module(device, where)
    dtype = _to_dtype(dtype) or _default_dtype
    if fill == 0:
        arr = xp.zeros(size, dtype=dtype)
    elif fill == 1:
        arr = xp.ones(size, dtype=dtype)
    else:
        arr = xp.full(size, fill, dtype=dtype)
    return _leaf(arr, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``, on ``device`` ("cpu" or
    "cuda"; allocated there directly)."""
    return _constant("zeros()", _sizes(size), 0, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones on ``device``."""
    return _constant("ones()", _sizes(size), 1, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor (here: zeros, so results are reproducible)."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def _full_dtype(fill_value, dtype):
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        return np.bool_
    if dtype is None and isinstance(fill_value, numbers.Integral):
        return np.int64
    return dtype


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor filled with ``fill_value`` (int64 for an int, bool for a bool, else the
    default float dtype) on ``device``."""
    dtype = _full_dtype(fill_value, dtype)
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    return _constant("full()", _sizes((size,)), fill_value, dtype, device, requires_grad)


def _like(t, dtype):
    return dtype if dtype is not None else t.dtype


def _like_device(t, device):
    if device is not None:
        return device
    return t.device if isinstance(t, Tensor) else backend.device_of(t)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    """Zeros of ``t``'s shape, dtype and device (unless given)."""
    return zeros(t.shape, dtype=_like(t, dtype), device=_like_device(t, device),
                 requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    """Ones of ``t``'s shape, dtype and device (unless given)."""
    return ones(t.shape, dtype=_like(t, dtype), device=_like_device(t, device),
                requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return zeros_like(t, dtype, device, requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    """``fill_value`` everywhere, with ``t``'s shape, dtype and device (unless given)."""
    return full(t.shape, fill_value, dtype=_like(t, dtype), device=_like_device(t, device),
                requires_grad=requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Uniform samples on [0, 1) from the global generator (see ``manual_seed``).

    The numbers are drawn on the host and copied to ``device``, so a seed gives the same
    values on every device.
    """
    g = generator or _random.default_generator()
    return _make(g.random(_sizes(size)), dtype, device, requires_grad, "rand()")


def randn(*size, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal samples from the global generator (see ``manual_seed``), drawn on
    the host and copied to ``device``."""
    g = generator or _random.default_generator()
    return _make(g.standard_normal(_sizes(size)), dtype, device, requires_grad, "randn()")


def rand_like(t, dtype=None, device=None, requires_grad=False):
    """Uniform [0, 1) samples with ``t``'s shape, dtype and device (unless given)."""
    return rand(*t.shape, dtype=_like(t, dtype), device=_like_device(t, device),
                requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    """Standard normal samples with ``t``'s shape, dtype and device (unless given)."""
    return randn(*t.shape, dtype=_like(t, dtype), device=_like_device(t, device),
                 requires_grad=requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None, generator=None):
    """Integers uniform on [low, high) (``randint(high, size)`` also works)."""
    if isinstance(high, (tuple, list)):  # randint(high, size), as torch allows
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    g = generator or _random.default_generator()
    arr = g.integers(low, high, size=_sizes((size,)) if size != () else ())
    return _make(np.asarray(arr), dtype or np.int64, device, False, "randint()")


def randperm(n, dtype=None, device=None, generator=None):
    """A random permutation of 0..n-1."""
    g = generator or _random.default_generator()
    return _make(g.permutation(n), dtype or np.int64, device, False, "randperm()")


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Evenly spaced values in [start, end); int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    arr = np.arange(start, end, step)
    if dtype is None:
        dtype = np.int64 if arr.dtype.kind in "iu" else _default_dtype
    return _make(arr, dtype, device, requires_grad, "arange()")


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from start to end inclusive."""
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad, "linspace()")


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    """Identity matrix (n x m)."""
    return _make(np.eye(n, m), dtype, device, requires_grad, "eye()")


# The op modules import Tensor from here, so they are imported after the class exists.
from minidl.ops import elementwise as _ew  # noqa: E402
from minidl.ops import linalg as _la  # noqa: E402
from minidl.ops import reduce as _rd  # noqa: E402
from minidl.ops import shape as _sh  # noqa: E402
