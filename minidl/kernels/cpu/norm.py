"""Compiled (Cython + OpenMP) batch normalisation, registered as the ``cpu`` backend.

``batch_norm_forward`` and ``batch_norm_backward`` have the signatures and results of the
NumPy references in :mod:`minidl.ops.normalization` (read their docstrings); the work is
done by :mod:`minidl.kernels.cpu._norm`, one OpenMP thread per group of channels, with
fused one-pass statistics accumulated in float64.

These wrappers make the arrays fit the extension: they make the input C-contiguous,
allocate the outputs, and pass the thread count of :func:`minidl.get_num_threads`.
Anything the extension does not take (an input that is not float32/float64, parameters
of another dtype or layout, an empty input) runs the NumPy reference instead.

Importing this module raises ``ImportError`` when the extension is not built; the
registry then reports the ``cpu`` backend as unavailable for these kernels.
"""

from __future__ import annotations

import numpy as np

from minidl import backend
from minidl.kernels.cpu import _norm

__all__ = ["batch_norm_forward", "batch_norm_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: below this many values one thread is faster than waking a second one
_PARALLEL_MIN = 1 << 15


def _threads(size):
    return backend.get_num_threads() if size >= _PARALLEL_MIN else 1


def _reference(name):
    import minidl.ops.normalization  # noqa: F401 - registers the references

    return backend._KERNELS[name]["numpy"]


def _vector_ok(v, channels, dtype, writable=False):
    """None, or a contiguous ``(C,)`` array of ``dtype`` (writable if asked)."""
    if v is None:
        return True
    return (isinstance(v, np.ndarray) and v.dtype == dtype and v.shape == (channels,)
            and v.flags.c_contiguous and (v.flags.writeable or not writable))


def _supported(x, vectors, running):
    if not isinstance(x, np.ndarray) or x.dtype not in _FLOATS or x.ndim != 3 or x.size == 0:
        return False
    channels = x.shape[1]
    return (all(_vector_ok(v, channels, x.dtype) for v in vectors)
            and all(_vector_ok(v, channels, x.dtype, writable=True) for v in running))


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Batch normalisation forward: see
    :func:`minidl.ops.normalization.batch_norm_forward` (same signature and results)."""
    if (not _supported(x, (weight, bias), (running_mean, running_var))
            or (not training and (running_mean is None or running_var is None))):
        return _reference("batch_norm_forward")(x, weight, bias, running_mean, running_var,
                                                training, momentum, eps)
    x = np.ascontiguousarray(x)
    channels = x.shape[1]
    out = np.empty_like(x)
    mean = np.empty(channels)
    invstd = np.empty(channels)
    _norm.batch_norm_forward(x, weight, bias, running_mean, running_var, bool(training),
                             float(momentum), float(eps), out, mean, invstd, _threads(x.size))
    return out, mean, invstd


def batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training, output_mask):
    """Batch normalisation backward: see
    :func:`minidl.ops.normalization.batch_norm_backward` (same signature and results)."""
    need_input, need_weight, need_bias = output_mask
    stats_ok = all(_vector_ok(v, x.shape[1] if getattr(x, "ndim", 0) == 3 else -1, np.float64)
                   for v in (save_mean, save_invstd))
    if (not _supported(x, (weight,), ()) or not stats_ok
            or getattr(grad_out, "dtype", None) != x.dtype or grad_out.shape != x.shape):
        return _reference("batch_norm_backward")(grad_out, x, weight, save_mean, save_invstd,
                                                 training, output_mask)
    x = np.ascontiguousarray(x)
    grad_out = np.ascontiguousarray(grad_out)
    channels = x.shape[1]
    need_stats = need_weight or need_bias or (need_input and training)
    grad_input = np.empty_like(x) if need_input else None
    grad_weight = np.empty(channels)
    grad_bias = np.empty(channels)
    if need_input or need_stats:
        _norm.batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, bool(training),
                                  grad_input, grad_weight, grad_bias, need_stats,
                                  _threads(x.size))
    return (grad_input, grad_weight if need_weight else None,
            grad_bias if need_bias else None)


backend.register_kernel("batch_norm_forward", "cpu", batch_norm_forward)
backend.register_kernel("batch_norm_backward", "cpu", batch_norm_backward)
