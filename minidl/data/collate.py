r"""Collate functions: a list of samples -> one batch.

:func:`default_collate` stacks samples of equal shape; :func:`pad_collate` pads
variable-length sequences to the longest in the batch and returns their lengths and a
mask, for recurrent layers (``pack_padded_sequence``) and masked losses.
"""

from __future__ import annotations

import collections.abc
import numbers

import numpy as np

from minidl.tensor import Tensor, get_default_dtype

__all__ = ["default_collate", "pad_collate"]


def _host_array(value):
    """A NumPy array from an array-like or a minidl Tensor (detached, on the host)."""
    if isinstance(value, Tensor):
        return np.asarray(value.detach())
    return np.asarray(value)


def _batch_tensor(array):
    """Wrap a stacked batch array as a Tensor: integers widen to int64 (the label and
    index dtype of every loss and embedding), floats and bools keep their dtype."""
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64, copy=False)
    return Tensor._wrap(np.ascontiguousarray(array))


def _stack(items, where):
    shapes = [np.shape(item) for item in items]
    if len(set(shapes)) > 1:
        distinct = sorted(set(shapes))
        raise ValueError(
            f"default_collate: samples{where} have different shapes {distinct[:4]}"
            f"{' ...' if len(distinct) > 4 else ''}; use pad_collate for variable-length "
            "sequences, or a collate_fn of your own"
        )
    return np.stack([np.asarray(item) for item in items])


def _collate(batch, where):
    first = batch[0]
    if isinstance(first, Tensor):
        return _batch_tensor(_stack([np.asarray(item.detach()) for item in batch], where))
    if isinstance(first, (np.ndarray, np.generic)):
        if first.dtype.kind in "OUS":
            return list(batch)
        return _batch_tensor(_stack(batch, where))
    if isinstance(first, bool):
        return _batch_tensor(np.array(batch, dtype=np.bool_))
    if isinstance(first, numbers.Integral):
        return _batch_tensor(np.array(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        # NOTE: Python floats become minidl's default float dtype (float32), not float64
        # as in torch's default_collate: they meet float32 weights in the model and loss.
        return _batch_tensor(np.array(batch, dtype=get_default_dtype()))
    if isinstance(first, (str, bytes)) or first is None:
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        keys = list(first)
        for i, item in enumerate(batch):
            if not isinstance(item, collections.abc.Mapping) or set(item) != set(keys):
                raise ValueError(
                    f"default_collate: sample {i}{where} has keys "
                    f"{sorted(item) if hasattr(item, 'keys') else type(item).__name__}, "
                    f"sample 0 has {sorted(keys)}"
                )
        return {key: _collate([item[key] for item in batch], f"{where}[{key!r}]")
                for key in keys}
    if isinstance(first, (tuple, list)):
        for i, item in enumerate(batch):
            if len(item) != len(first):
                raise ValueError(
                    f"default_collate: sample {i}{where} has {len(item)} fields, "
                    f"sample 0 has {len(first)}"
                )
        fields = [_collate([item[k] for item in batch], f"{where}[{k}]")
                  for k in range(len(first))]
        if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
            return type(first)(*fields)
        return tuple(fields) if isinstance(first, tuple) else fields
    raise TypeError(
        f"default_collate: cannot batch samples{where} of type {type(first).__name__}; "
        "pass a collate_fn"
    )


def default_collate(batch):
    r"""Stack a list of samples into batched minidl Tensors, keeping the samples' structure.

    If every sample is :math:`s_i` with fields :math:`s_i^{(k)}`, the batch is the tuple
    (list, dict, namedtuple: same container) of :math:`\operatorname{stack}_i s_i^{(k)}`,
    each of shape ``(N, *field_shape)``.

    Rules, by the type of a field:

    - NumPy arrays and scalars, Tensors: stacked along a new first axis. Floats and
      bools keep their dtype; every integer dtype becomes int64.
    - Python ``int`` -> int64, ``bool`` -> bool, ``float`` -> the default float dtype
      (float32 unless changed with ``minidl.set_default_dtype``).
    - ``tuple`` / ``list`` / namedtuple / ``dict``: collated field by field.
    - ``str``, ``bytes``, ``None`` and string arrays: a plain list.

    Raises
    ------
    ValueError
        If samples disagree in shape (use :func:`pad_collate`), fields or keys.
    TypeError
        For a field of a type it cannot batch.

    Examples
    --------
    >>> x, y = default_collate([(np.zeros(3, np.float32), 1), (np.ones(3, np.float32), 0)])
    >>> x.shape, x.dtype, y.tolist(), y.dtype
    ((2, 3), dtype('float32'), [1, 0], dtype('int64'))
    """
    if len(batch) == 0:
        raise ValueError("default_collate: empty batch")
    return _collate(list(batch), "")


def _pad_stack(arrays, length, value, axis):
    shape = list(arrays[0].shape)
    shape[axis] = length
    dtype = np.result_type(*arrays)
    out = np.full((len(arrays), *shape), value, dtype=dtype)
    for i, a in enumerate(arrays):
        index = [i] + [slice(None)] * a.ndim
        index[1 + axis] = slice(0, a.shape[axis])
        out[tuple(index)] = a
    return out


def pad_collate(batch, pad_value=0, target_pad_value=-100, length_axis=0):
    r"""Batch variable-length sequences: pad to the longest, with lengths and a mask.

    Each sample is ``x`` or ``(x, y)``.  ``x`` has its length on axis ``length_axis``
    (``(L,)`` tokens, ``(L, C)`` features, or ``(C, L)`` one-hot DNA with
    ``length_axis=1``); its other axes must agree across the batch.  With lengths
    :math:`L_i` and :math:`L = \max_i L_i`:

    .. math::

        \text{inputs}[i, \ldots, t, \ldots] = \begin{cases}
            x_i[\ldots, t, \ldots] & t < L_i \\ \text{pad\_value} & t \ge L_i
        \end{cases}, \qquad \text{mask}[i, t] = (t < L_i).

    A target ``y`` whose first axis has the sample's length (per-position labels, e.g.
    one class per residue) is padded the same way with ``target_pad_value``; the
    default, -100, is the ``ignore_index`` of ``CrossEntropyLoss``/``NLLLoss``, so the
    padded positions drop out of the loss (for float targets, weight the loss by the
    mask instead).  Any other ``y`` (one label per sequence) is stacked by
    :func:`default_collate`.

    Parameters
    ----------
    batch : list
        Samples ``x`` or ``(x, y)`` (arrays, Tensors or nested lists of numbers).
    pad_value : number, default 0
        Fill value of the padded inputs.
    target_pad_value : number, default -100
        Fill value of padded per-position targets.
    length_axis : int, default 0
        The axis of each ``x`` that varies in length.

    Returns
    -------
    dict
        ``"inputs"``: Tensor ``(N, ...)`` padded along ``1 + length_axis`` (integer
        inputs become int64); ``"lengths"``: int64 Tensor ``(N,)``; ``"mask"``: bool
        Tensor ``(N, L)``, True at real positions; ``"targets"``: present when the samples
        are ``(x, y)``.

    Examples
    --------
    >>> batch = pad_collate([(np.array([5, 6, 7]), np.array([1, 0, 1])),
    ...                      (np.array([8]), np.array([2]))])
    >>> batch["inputs"].tolist(), batch["lengths"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [3, 1])
    >>> batch["mask"].tolist()
    [[True, True, True], [True, False, False]]
    >>> batch["targets"].tolist()
    [[1, 0, 1], [2, -100, -100]]
    """
    if len(batch) == 0:
        raise ValueError("pad_collate: empty batch")
    has_target = isinstance(batch[0], (tuple, list))
    for i, sample in enumerate(batch):
        if isinstance(sample, (tuple, list)) != has_target or (has_target and len(sample) != 2):
            raise ValueError(
                f"pad_collate: every sample must be x or (x, y); sample {i} is "
                f"{type(sample).__name__}" + (f" of {len(sample)} fields"
                                              if isinstance(sample, (tuple, list)) else "")
            )
    xs = [_host_array(sample[0] if has_target else sample) for sample in batch]
    ndim = xs[0].ndim
    if ndim == 0 or not -ndim <= length_axis < ndim:
        raise ValueError(
            f"pad_collate: length_axis {length_axis} is out of range for samples of shape "
            f"{xs[0].shape}"
        )
    axis = length_axis % ndim
    for i, x in enumerate(xs):
        if x.ndim != ndim or x.shape[:axis] + x.shape[axis + 1:] != \
                xs[0].shape[:axis] + xs[0].shape[axis + 1:]:
            raise ValueError(
                f"pad_collate: sample {i} has shape {x.shape}, sample 0 {xs[0].shape}; only "
                f"axis {axis} (length_axis) may differ"
            )
    lengths = np.array([x.shape[axis] for x in xs], dtype=np.int64)
    longest = int(lengths.max())
    result = {
        "inputs": _batch_tensor(_pad_stack(xs, longest, pad_value, axis)),
        "lengths": _batch_tensor(lengths),
        "mask": _batch_tensor(np.arange(longest)[None, :] < lengths[:, None]),
    }
    if has_target:
        ys = [_host_array(sample[1]) for sample in batch]
        per_position = all(y.ndim >= 1 and y.shape[0] == n for y, n in zip(ys, lengths))
        if per_position and len({y.shape[1:] for y in ys}) == 1:
            result["targets"] = _batch_tensor(_pad_stack(ys, longest, target_pad_value, 0))
        else:
            result["targets"] = default_collate([sample[1] for sample in batch])
    return result
