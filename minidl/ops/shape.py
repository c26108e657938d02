"""Shape and indexing ops: reshape, permute, expand, indexing, cat/stack/split, pad, flip.

These move data without arithmetic, so each backward is the inverse movement: reshape
back, permute with the inverse permutation, sum over expanded axes, scatter-add into
the indexed positions, slice the padded border away.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function
from minidl.backend import add_at, array_module, device_of, move

__all__ = [
    "reshape", "permute", "transpose", "expand", "squeeze", "unsqueeze", "flatten",
    "getitem", "cat", "concat", "stack", "split", "chunk", "pad", "flip", "repeat",
    "movedim", "unbind", "roll", "tile",
]


def _normalize_shape(op, shape, size):
    """Resolve a target shape with at most one -1, naming the op on failure."""
    shape = tuple(int(s) for s in shape)
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise ValueError(f"{op}: only one dimension can be -1, got {shape}")
    known = int(np.prod([s for s in shape if s != -1])) if shape else 1
    if unknown:
        if known == 0 or size % known:
            raise ValueError(f"{op}: shape {shape} is invalid for input of size {size}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise ValueError(f"{op}: shape {shape} is invalid for input of size {size}")
    return shape


class Reshape(Function):
    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x):
        return x.transpose(self.dims)

    def backward(self, grad):
        return grad.transpose(tuple(np.argsort(self.dims).tolist()))  # ints, not a host array


class Expand(Function):
    def forward(self, x):
        return array_module(x).broadcast_to(x, self.shape)

    def backward(self, grad):
        return grad  # the engine sums the broadcast axes back to the input's shape


def _index_key(key, device="cpu"):
    """Turn Tensors inside an index into arrays; keep slices, ints, None, Ellipsis.

    Index arrays end up on ``device``, the device of the array being indexed: host indices
    of a CUDA tensor are copied to the GPU; GPU indices of a CPU tensor are refused (as in
    PyTorch: the values would have to come back to the host first).
    """
    from minidl.tensor import Tensor

    if isinstance(key, tuple):
        return tuple(_index_key(k, device) for k in key)
    if isinstance(key, Tensor):
        key = key.data
    elif isinstance(key, list):
        key = np.asarray(key)
    if hasattr(key, "shape") and not isinstance(key, np.generic):
        where = device_of(key)
        if where != device:
            if device == "cpu":
                raise RuntimeError(
                    f"indexing: a cpu tensor cannot be indexed with a {where} index "
                    f"{tuple(key.shape)}; move the index with .cpu()"
                )
            key = move(key, device)
    return key


def _is_basic(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(
        isinstance(k, (slice, int, np.integer, type(None), type(Ellipsis))) for k in parts
    )


class GetItem(Function):
    """``x[key]`` for basic (slices, ints) and advanced (integer/boolean arrays) indexing.

    Backward scatters the gradient into a zero array of the input's shape.  For advanced
    indices the same element may be picked several times (``x[[0, 0]]``), so the scatter
    must *accumulate*: ``np.add.at`` does, plain assignment would not.
    """

    def forward(self, x):
        self.in_shape, self.dtype = x.shape, x.dtype
        return x[self.key]

    def backward(self, grad):
        xp = array_module(grad)
        out = xp.zeros(self.in_shape, dtype=grad.dtype)
        if _is_basic(self.key):
            out[self.key] = grad  # basic indexing never repeats an element
        else:
            add_at(out, self.key, grad)
        return out


class Concat(Function):
    def forward(self, *arrays):
        xp = array_module(*arrays)
        self.sizes = [a.shape[self.axis] for a in arrays]
        return xp.concatenate(arrays, axis=self.axis)

    def backward(self, grad):
        xp = array_module(grad)
        bounds = np.cumsum(self.sizes)[:-1].tolist()  # Python ints: no host array to CuPy
        return tuple(xp.split(grad, bounds, axis=self.axis))


class Split(Function):
    """Split along ``axis`` at ``bounds``: several outputs from one node."""

    def forward(self, x):
        xp = array_module(x)
        self.in_shape = x.shape
        return tuple(xp.split(x, self.bounds, axis=self.axis))

    def backward(self, *grads):
        return array_module(grads[0]).concatenate(grads, axis=self.axis)


class Pad(Function):
    """Constant padding; backward slices the border away."""

    def forward(self, x):
        xp = array_module(x)
        self.slices = tuple(
            slice(before, before + size) for (before, _), size in zip(self.widths, x.shape)
        )
        return xp.pad(x, self.widths, mode="constant", constant_values=self.value)

    def backward(self, grad):
        return grad[self.slices]


class PadReflectReplicate(Function):
    """``reflect``/``replicate`` padding: backward scatters border gradient back."""

    def forward(self, x):
        xp = array_module(x)
        self.in_shape = x.shape
        np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[self.mode]
        # the index map tells, for each output position, which input position it copies
        idx = np.arange(x.size).reshape(x.shape)
        self.source = xp.asarray(np.pad(idx, self.widths, mode=np_mode))
        return x.reshape(-1)[self.source]

    def backward(self, grad):
        xp = array_module(grad)
        out = xp.zeros(int(np.prod(self.in_shape)), dtype=grad.dtype)
        add_at(out, self.source.reshape(-1), grad.reshape(-1))
        return out.reshape(self.in_shape)


class Flip(Function):
    def forward(self, x):
        return array_module(x).flip(x, self.axes)

    def backward(self, grad):
        return array_module(grad).flip(grad, self.axes)


class Roll(Function):
    def forward(self, x):
        return array_module(x).roll(x, self.shifts, self.axes)

    def backward(self, grad):
        neg = tuple(-s for s in self.shifts)
        return array_module(grad).roll(grad, neg, self.axes)


# ------------------------------------------------------------------ public functions


def _sizes(args):
    """Accept ``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` as torch does."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def _dim(op, d, ndim):
    if not -ndim <= d < max(ndim, 1):
        raise IndexError(f"{op}: dimension {d} is out of range for {ndim} dimensions")
    return d % max(ndim, 1)


def reshape(x, *shape):
    """A tensor with the same elements in a new shape (one dimension may be -1).

    Backward reshapes the gradient back to the input's shape.
    """
    shape = _normalize_shape("reshape", _sizes(shape), x.numel())
    return Reshape.apply(x, shape=shape)


def permute(x, *dims):
    """Reorder the dimensions: ``out.shape[i] == x.shape[dims[i]]``."""
    dims = tuple(_dim("permute", d, x.ndim) for d in _sizes(dims))
    if sorted(dims) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of {x.ndim} dimensions")
    return Permute.apply(x, dims=dims)


def transpose(x, dim0, dim1):
    """Swap two dimensions."""
    dims = list(range(x.ndim))
    d0, d1 = _dim("transpose", dim0, x.ndim), _dim("transpose", dim1, x.ndim)
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(x, dims=tuple(dims))


def movedim(x, source, destination):
    """Move one dimension to a new position."""
    order = list(range(x.ndim))
    s = _dim("movedim", source, x.ndim)
    order.remove(s)
    order.insert(_dim("movedim", destination, x.ndim), s)
    return Permute.apply(x, dims=tuple(order))


def expand(x, *sizes):
    """Broadcast size-1 dimensions to ``sizes`` without copying (-1 keeps a size).

    Backward sums the gradient over the expanded dimensions.
    """
    sizes = _sizes(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dims {sizes}")
    if any(s == -1 for s in sizes[:lead]):
        raise ValueError(
            f"expand: -1 is not allowed for the new leading dimensions in {sizes} "
            f"(input shape {x.shape})"
        )
    shape = tuple(
        x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes)
    )
    try:
        np.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"expand: shape {x.shape} cannot be expanded to {sizes}") from None
    return Expand.apply(x, shape=shape)


def squeeze(x, dim=None):
    """Remove dimensions of size 1 (only ``dim`` if given; a no-op if it is not size 1)."""
    if dim is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {_dim("squeeze", d, x.ndim) for d in dims}
        shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return Reshape.apply(x, shape=shape)


def unsqueeze(x, dim):
    """Insert a dimension of size 1 at ``dim`` (negative counts from the end of the result)."""
    d = _dim("unsqueeze", dim, x.ndim + 1)
    shape = tuple(x.shape[:d]) + (1,) + tuple(x.shape[d:])
    return Reshape.apply(x, shape=shape)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim..end_dim`` into one."""
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    s, e = _dim("flatten", start_dim, x.ndim), _dim("flatten", end_dim, x.ndim)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = tuple(x.shape[:s]) + (int(np.prod(x.shape[s : e + 1])),) + tuple(x.shape[e + 1 :])
    return Reshape.apply(x, shape=shape)


def getitem(x, key):
    """``x[key]``; see :class:`GetItem`. Boolean and integer tensor indices are allowed."""
    data = getattr(x, "data", None)
    key = _index_key(key, device_of(data) if hasattr(data, "shape") else "cpu")
    try:
        return GetItem.apply(x, key=key)
    except IndexError as e:
        raise IndexError(f"index {key!r} is invalid for tensor of shape {x.shape}: {e}") from None


def cat(tensors, dim=0, *, axis=None):
    """Concatenate along an existing dimension; backward splits the gradient."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    dim = axis if axis is not None else dim
    from minidl.tensor import as_tensor_like

    tensors = [as_tensor_like(t, tensors) for t in tensors]
    ndim = tensors[0].ndim
    d = _dim("cat", dim, ndim)
    for t in tensors[1:]:
        if t.ndim != ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, tensors[0].shape)) if i != d
        ):
            shapes = ", ".join(str(tuple(u.shape)) for u in tensors)
            raise ValueError(f"cat: shapes must match except in dimension {d}, got {shapes}")
    return Concat.apply(*tensors, axis=d)


concat = cat


def stack(tensors, dim=0, *, axis=None):
    """Join tensors of equal shape along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    dim = axis if axis is not None else dim
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    d = _dim("stack", dim, tensors[0].ndim + 1)
    return cat([unsqueeze(t, d) for t in tensors], d)


def split(x, split_size_or_sections, dim=0):
    """Split into chunks of ``split_size`` (the last may be smaller) or of given sizes."""
    d = _dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} do not add up to dimension {d} of size {n}")
    bounds = tuple(np.cumsum(sizes)[:-1].tolist())
    out = Split.apply(x, axis=d, bounds=bounds)
    return out if isinstance(out, tuple) else (out,)


def chunk(x, chunks, dim=0):
    """Split into ``chunks`` pieces of equal size (the last may be smaller), like torch."""
    d = _dim("chunk", dim, x.ndim)
    size = -(-x.shape[d] // chunks)
    return split(x, max(size, 1), d)


def unbind(x, dim=0):
    """Remove a dimension, returning the slices along it."""
    d = _dim("unbind", dim, x.ndim)
    return tuple(squeeze(p, d) for p in split(x, 1, d))


def pad(x, pad, mode="constant", value=0.0):
    """Pad with PyTorch's convention: ``pad = (left_last, right_last, left_2nd_last, ...)``.

    Modes ``constant``, ``reflect``, ``replicate`` and ``circular``.
    """
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {pad} must have an even length <= 2 * {x.ndim}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if any(a < 0 or b < 0 for a, b in widths):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    if mode == "constant":
        return Pad.apply(x, widths=tuple(widths), value=value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: unknown mode {mode!r}")
    return PadReflectReplicate.apply(x, widths=tuple(widths), mode=mode)


def flip(x, dims):
    """Reverse the order of elements along ``dims``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Flip.apply(x, axes=tuple(_dim("flip", d, x.ndim) for d in dims))


def roll(x, shifts, dims):
    """Roll elements along ``dims`` by ``shifts`` (wrapping around)."""
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return Roll.apply(x, shifts=shifts, axes=dims)


def repeat(x, *sizes):
    """Tile the tensor ``sizes[i]`` times along each dimension, as ``torch.Tensor.repeat``.

    Built from unsqueeze, expand and reshape, so backward sums the copies.
    """
    sizes = _sizes(sizes)
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes given for a {x.ndim}-D tensor")
    x = x.reshape((1,) * (len(sizes) - x.ndim) + tuple(x.shape))
    interleaved, target, final = [], [], []
    for r, s in zip(sizes, x.shape):
        interleaved += [1, s]
        target += [r, s]
        final.append(r * s)
    return expand(x.reshape(interleaved), *target).reshape(final)


def tile(x, dims):
    """Like :func:`repeat`, but ``dims`` shorter than ``x.ndim`` is padded with ones."""
    dims = tuple(dims)
    dims = (1,) * (x.ndim - len(dims)) + dims
    return repeat(x, *dims)
