"""Reductions: sum, mean, max/min (with indices), amax/amin, var/std, logsumexp, argmax.

PyTorch's ``dim``/``keepdim`` are the names; NumPy's ``axis``/``keepdims`` are accepted
as aliases (see :func:`resolve_dim`).  A reduction's backward broadcasts the incoming
gradient back over the reduced axes.
"""

from __future__ import annotations

import builtins

import numpy as np

from minidl.autograd import Function
from minidl.backend import array_module

__all__ = [
    "sum", "mean", "max", "min", "amax", "amin", "var", "std", "logsumexp", "argmax",
    "argmin", "prod", "resolve_dim", "all", "any",
]


def resolve_dim(op, ndim, dim=None, keepdim=False, axis=None, keepdims=None):
    """Merge PyTorch and NumPy spellings; return (axes tuple or None, keepdim)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim or axis, not both")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    if dim is None:
        return None, bool(keepdim)
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    if not dims:  # dim=() reduces over every dimension, as in PyTorch
        return None, bool(keepdim)
    out = []
    for d in dims:
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise IndexError(
                f"{op}: dimension {d} is out of range for a tensor with {ndim} dimensions"
            )
        out.append(int(d) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dimension {dims} contains duplicates")
    if ndim == 0:
        return None, bool(keepdim)
    return tuple(sorted(out)), bool(keepdim)


def _expand_back(grad, axes, keepdim, shape):
    """Give a reduced gradient back the reduced axes (as size 1) so it broadcasts."""
    if axes is None:
        return grad.reshape((1,) * len(shape)) if not keepdim else grad
    if not keepdim:
        xp = array_module(grad)
        grad = xp.expand_dims(grad, axes)
    return grad


class Sum(Function):
    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, grad):
        xp = array_module(grad)
        return xp.broadcast_to(_expand_back(grad, self.axes, self.keepdim, self.shape), self.shape)


class Mean(Function):
    def forward(self, x):
        self.shape = x.shape
        self.count = x.size if self.axes is None else int(np.prod([x.shape[a] for a in self.axes]))
        return x.mean(axis=self.axes, keepdims=self.keepdim)

    def backward(self, grad):
        xp = array_module(grad)
        g = _expand_back(grad, self.axes, self.keepdim, self.shape) / self.count
        return xp.broadcast_to(g, self.shape)


class Prod(Function):
    def forward(self, x):
        self.x = x
        self.out = x.prod(axis=self.axes, keepdims=True)
        return self.out if self.keepdim else self.out.reshape(
            x.prod(axis=self.axes, keepdims=False).shape
        )

    def backward(self, grad):
        # d(prod)/dx_i = prod / x_i; written with the product of the others so zeros work
        xp = array_module(grad)
        g = _expand_back(grad, self.axes, self.keepdim, self.x.shape)
        if xp.all(self.x != 0):
            # out / x first: g * out can underflow to 0 for tiny (subnormal) inputs
            return g * (self.out / self.x)
        # slow but exact path when zeros are present: product over the other elements
        axes = self.axes if self.axes is not None else tuple(range(self.x.ndim))
        moved = xp.moveaxis(self.x, axes, tuple(range(-len(axes), 0)))
        flat = moved.reshape(moved.shape[: moved.ndim - len(axes)] + (-1,))
        left = xp.concatenate([xp.ones_like(flat[..., :1]), xp.cumprod(flat, -1)[..., :-1]], -1)
        right_rev = xp.cumprod(flat[..., ::-1], -1)[..., ::-1]
        right = xp.concatenate([right_rev[..., 1:], xp.ones_like(flat[..., :1])], -1)
        others = (left * right).reshape(moved.shape)
        others = xp.moveaxis(others, tuple(range(-len(axes), 0)), axes)
        return g * others


class MaxMin(Function):
    """``max``/``min`` over axes.

    NOTE: ties.  With ``indices=True`` (``x.max(dim)``), the whole gradient goes to the
    element whose index is returned (the first maximum), as PyTorch does.  For ``amax``
    and full reductions, PyTorch splits the gradient evenly among tied maxima; so do we.
    """

    def forward(self, x):
        xp = array_module(x)
        self.shape = x.shape
        reducer = xp.max if self.is_max else xp.min
        out = reducer(x, axis=self.axes, keepdims=True)
        if self.indices:
            arg = (xp.argmax if self.is_max else xp.argmin)(x, axis=self.axes[0], keepdims=True)
            self.arg = arg
            idx = arg if self.keepdim else xp.squeeze(arg, self.axes[0])
            values = out if self.keepdim else xp.squeeze(out, self.axes)
            return values, idx.astype(np.int64)
        mask = x == out
        self.weights = mask / mask.sum(axis=self.axes, keepdims=True)
        if self.keepdim:
            return out
        return out.reshape(reducer(x, axis=self.axes).shape)

    def backward(self, grad, *unused_index_grad):
        xp = array_module(grad)
        g = _expand_back(grad, self.axes, self.keepdim, self.shape)
        if self.indices:
            out = xp.zeros(self.shape, dtype=grad.dtype)
            xp.put_along_axis(out, self.arg, g, axis=self.axes[0])
            return out
        return g * self.weights


class LogSumExp(Function):
    r"""Stable :math:`\log\sum_i e^{x_i} = m + \log\sum_i e^{x_i - m}` with :math:`m=\max x`.

    The gradient is :math:`\mathrm{softmax}(x)`.
    """

    def forward(self, x):
        xp = array_module(x)
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf rows: avoid inf - inf
        shifted_exp = xp.exp(x - m)
        s = shifted_exp.sum(axis=self.axes, keepdims=True)
        out = xp.log(s) + m
        self.softmax = shifted_exp / s
        return out if self.keepdim else out.reshape(x.sum(axis=self.axes).shape)

    def backward(self, grad):
        g = _expand_back(grad, self.axes, self.keepdim, self.softmax.shape)
        return g * self.softmax


class _ArgReduce(Function):
    differentiable = False

    def forward(self, x):
        xp = array_module(x)
        f = xp.argmax if self.is_max else xp.argmin
        if self.dim is None:
            out = f(x.reshape(-1))
            return xp.asarray(out, dtype=np.int64).reshape((1,) * x.ndim if self.keepdim else ())
        return f(x, axis=self.dim, keepdims=self.keepdim).astype(np.int64)


class _BoolReduce(Function):
    differentiable = False

    def forward(self, x):
        xp = array_module(x)
        f = xp.all if self.is_all else xp.any
        return f(x, axis=self.axes, keepdims=self.keepdim)


# ------------------------------------------------------------------ public functions


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None):
    r"""Sum over ``dim`` (all elements when None). Backward: :math:`\partial/\partial x_i = 1`
    (the gradient is broadcast back over the summed axes)."""
    axes, keepdim = resolve_dim("sum", x.ndim, dim, keepdim, axis, keepdims)
    if dtype is not None:
        x = x.to(dtype)
    if x.dtype == np.bool_:
        x = x.long()
    return Sum.apply(x, axes=axes, keepdim=keepdim)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    r"""Mean over ``dim``; backward :math:`1/n` to each of the n averaged elements."""
    axes, keepdim = resolve_dim("mean", x.ndim, dim, keepdim, axis, keepdims)
    if x.dtype.kind != "f":
        raise TypeError(
            f"mean: input dtype {x.dtype} is not floating point; convert with .float() first"
        )
    return Mean.apply(x, axes=axes, keepdim=keepdim)


def prod(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    r"""Product over ``dim``; :math:`\partial/\partial x_i = \prod_{j \ne i} x_j`."""
    axes, keepdim = resolve_dim("prod", x.ndim, dim, keepdim, axis, keepdims)
    return Prod.apply(x, axes=axes, keepdim=keepdim)


def _maxmin(op, is_max, x, dim, keepdim, axis, keepdims):
    from minidl.tensor import Tensor

    if isinstance(dim, Tensor):  # torch.max(a, b) is the elementwise maximum
        from minidl.ops.elementwise import maximum, minimum

        return maximum(x, dim) if is_max else minimum(x, dim)
    if x.numel() == 0 and dim is None:
        raise RuntimeError(f"{op}: cannot reduce an empty tensor with no dimension given")
    axes, keepdim = resolve_dim(op, x.ndim, dim, keepdim, axis, keepdims)
    if dim is None and axis is None:
        return MaxMin.apply(x, axes=None, keepdim=False, is_max=is_max, indices=False)
    if axes is None:  # 0-d tensor
        values = MaxMin.apply(x, axes=None, keepdim=keepdim, is_max=is_max, indices=False)
        from minidl.tensor import zeros_like

        return _ValuesIndices(values, zeros_like(values, dtype=np.int64))
    if len(axes) != 1:
        raise TypeError(f"{op}: dim must be a single int (use amax/amin for several dims)")
    values, indices = MaxMin.apply(x, axes=axes, keepdim=keepdim, is_max=is_max, indices=True)
    return _ValuesIndices(values, indices)


class _ValuesIndices(tuple):
    """``(values, indices)`` returned by ``max(dim)``/``min(dim)``, with names as in PyTorch."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def max(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Maximum. With no ``dim``: the largest element (a 0-d tensor). With ``dim``: a pair
    ``(values, indices)`` like ``torch.max``. Given a tensor as second argument: the
    elementwise maximum.

    The gradient flows to the maximum; see :class:`MaxMin` for ties.

    Examples
    --------
    >>> import minidl
    >>> values, indices = minidl.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)
    >>> values.tolist(), indices.tolist()
    ([5.0, 7.0], [1, 0])
    """
    return _maxmin("max", True, x, dim, keepdim, axis, keepdims)


def min(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Minimum; same conventions as :func:`max`."""
    return _maxmin("min", False, x, dim, keepdim, axis, keepdims)


def amax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Maximum values over one or more dims (no indices); ties share the gradient evenly."""
    axes, keepdim = resolve_dim("amax", x.ndim, dim, keepdim, axis, keepdims)
    return MaxMin.apply(x, axes=axes, keepdim=keepdim, is_max=True, indices=False)


def amin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Minimum values over one or more dims (no indices); ties share the gradient evenly."""
    axes, keepdim = resolve_dim("amin", x.ndim, dim, keepdim, axis, keepdims)
    return MaxMin.apply(x, axes=axes, keepdim=keepdim, is_max=False, indices=False)


def var(x, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    r"""Variance :math:`\frac{1}{n - c}\sum_i (x_i - \bar x)^2` with ``c = 1`` when
    ``unbiased`` (Bessel's correction, PyTorch's default) or ``correction`` if given.

    Built from mean, sub, mul and sum, so its gradient
    :math:`\frac{2}{n-c}(x_i - \bar x)` comes from theirs.
    """
    axes, keepdim = resolve_dim("var", x.ndim, dim, keepdim, axis, keepdims)
    if isinstance(unbiased, (int, np.integer)) and not isinstance(unbiased, bool) and dim is None:
        # torch allows var(x, 0) meaning dim=0
        axes, keepdim = resolve_dim("var", x.ndim, unbiased, keepdim, None, None)
        unbiased = True
    c = correction if correction is not None else (1 if unbiased else 0)
    n = x.numel() if axes is None else int(np.prod([x.shape[a] for a in axes]))
    centered = x - Mean.apply(x, axes=axes, keepdim=True)
    total = Sum.apply(centered * centered, axes=axes, keepdim=keepdim)
    denom = n - c
    if denom <= 0:
        import warnings

        warnings.warn(f"var: degrees of freedom <= 0 (n={n}, correction={c})", stacklevel=2)
        return total * float("nan") if denom == 0 else total / denom
    return total / denom


def std(x, dim=None, unbiased=True, keepdim=False, *, correction=None, axis=None,
        keepdims=None):
    r"""Standard deviation :math:`\sqrt{\mathrm{var}(x)}` (same arguments as :func:`var`)."""
    return var(x, dim, unbiased, keepdim, correction=correction, axis=axis,
               keepdims=keepdims).sqrt()


def logsumexp(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    r"""Stable :math:`\log \sum e^{x}` over ``dim``; its gradient is the softmax of x."""
    axes, keepdim = resolve_dim("logsumexp", x.ndim, dim, keepdim, axis, keepdims)
    return LogSumExp.apply(x, axes=axes, keepdim=keepdim)


def argmax(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the first maximum (over the flattened tensor when ``dim`` is None)."""
    axes, keepdim = resolve_dim("argmax", x.ndim, dim, keepdim, axis, keepdims)
    return _ArgReduce.apply(x, dim=None if axes is None else axes[0], keepdim=keepdim,
                            is_max=True)


def argmin(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Index of the first minimum (over the flattened tensor when ``dim`` is None)."""
    axes, keepdim = resolve_dim("argmin", x.ndim, dim, keepdim, axis, keepdims)
    return _ArgReduce.apply(x, dim=None if axes is None else axes[0], keepdim=keepdim,
                            is_max=False)


def all(x, dim=None, keepdim=False):
    """True where every element (over ``dim``) is non-zero."""
    axes, keepdim = resolve_dim("all", x.ndim, dim, keepdim)
    return _BoolReduce.apply(x, axes=axes, keepdim=keepdim, is_all=True)


def any(x, dim=None, keepdim=False):
    """True where some element (over ``dim``) is non-zero."""
    axes, keepdim = resolve_dim("any", x.ndim, dim, keepdim)
    return _BoolReduce.apply(x, axes=axes, keepdim=keepdim, is_all=False)
