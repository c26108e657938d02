"""Collate functions: a list of samples -> one batch."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["default_collate", "pad_collate"]


def _to_tensor(array):
    from minidl import from_numpy

    array = np.asarray(array)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    return from_numpy(np.ascontiguousarray(array))


def default_collate(batch):
    """Stack samples into minidl Tensors, keeping the sample structure.

    Arrays and numbers are stacked along a new first axis (floats keep their dtype,
    integers become int64, bools stay bool); tuples/lists of fields give a tuple of
    batched fields; dicts give a dict; strings give a list.
    """
    first = batch[0]
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batch):
            raise ValueError("default_collate: samples have different numbers of fields")
        return tuple(default_collate([b[i] for b in batch]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([b[k] for b in batch]) for k in first}
    if isinstance(first, str):
        return list(batch)
    if hasattr(first, "detach"):
        batch = [b.detach().numpy() for b in batch]
        first = batch[0]
    if isinstance(first, (np.ndarray, numbers.Number, np.generic)):
        shapes = {np.shape(b) for b in batch}
        if len(shapes) > 1:
            raise ValueError(
                f"default_collate: samples have different shapes {sorted(shapes)[:3]}; "
                "use pad_collate for variable-length sequences"
            )
        return _to_tensor(np.stack([np.asarray(b) for b in batch]))
    raise TypeError(f"default_collate: cannot batch {type(first).__name__}")


def pad_collate(batch, pad_value=0.0, target_pad_value=-100, length_axis=0):
    """Batch variable-length sequences: pad to the longest, with lengths and a mask.

    Each sample is ``x`` or ``(x, y)``; ``x`` has its length on axis ``length_axis``
    (``(L,)`` tokens, ``(L, C)`` features, or ``(C, L)`` with ``length_axis=1``).  A
    ``y`` with the same length (per-position targets) is padded with
    ``target_pad_value`` (-100: what ``CrossEntropyLoss(ignore_index=-100)`` ignores);
    other ``y`` are stacked.

    Returns
    -------
    dict with ``inputs`` (padded, ``(N, ...)``), ``lengths`` (int64 ``(N,)``), ``mask``
    (bool ``(N, L_max)``, True on real positions) and ``targets`` when given.
    """
    has_target = isinstance(batch[0], (tuple, list))
    xs = [np.asarray(b[0] if has_target else b) for b in batch]
    lengths = np.array([x.shape[length_axis] for x in xs], dtype=np.int64)
    longest = int(lengths.max()) if len(lengths) else 0

    def pad(arrays, value, axis):
        out = []
        for a in arrays:
            widths = [(0, 0)] * a.ndim
            widths[axis] = (0, longest - a.shape[axis])
            out.append(np.pad(a, widths, constant_values=value))
        return np.stack(out)

    mask = np.arange(longest)[None, :] < lengths[:, None]
    result = {"inputs": _to_tensor(pad(xs, pad_value, length_axis)),
              "lengths": _to_tensor(lengths), "mask": _to_tensor(mask)}
    if has_target:
        ys = [np.asarray(b[1]) for b in batch]
        if all(y.ndim >= 1 and y.shape[0] == n for y, n in zip(ys, lengths)):
            result["targets"] = _to_tensor(pad(ys, target_pad_value, 0))
        else:
            result["targets"] = _to_tensor(np.stack(ys))
    return result
