"""Numba batch normalisation, registered as the ``"numba"`` backend.

``batch_norm_forward`` and ``batch_norm_backward`` have the signatures and results of the
NumPy references in :mod:`minidl.ops.normalization`, and run the same per-channel
algorithm as the C kernels (``minidl/kernels/cpu/_norm.pyx``, whose docstring explains
it): channels shared among threads (``numba.prange``), one pass for the float64
statistics (sums shifted by the channel's first value), one pass that writes the output
with the reference's expression in the data's dtype.  ``(N, C)`` inputs (``L = 1``), where
a channel is a column, walk the rows instead, each thread over a block of columns.

The two reductions are compiled with ``fastmath={"reassoc"}`` and nothing else: it lets
LLVM add in several vector lanes (a different order of the same float64 additions),
without the other fast-math assumptions (no NaN, no infinity), which would change
results.

Optional arguments reach the compiled code as zero-length arrays plus a flag, so that
each dtype compiles once (Numba compiles a new version for every combination of None
and array).  The loops compile on first use and are cached on disk (``cache=True``).
Importing this module fails with ImportError when Numba is not installed.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from minidl import backend

__all__ = ["batch_norm_forward", "batch_norm_backward"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@numba.njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _shifted_sums(x, start, length, shift):
    """``sum(x - shift)`` and ``sum((x - shift)^2)`` over ``x[start:start + length]``,
    in float64."""
    s1 = 0.0
    s2 = 0.0
    base = numba.uint64(start)
    for k in range(numba.uint64(length)):
        d = np.float64(x[base + k]) - shift
        s1 += d
        s2 += d * d
    return s1, s2


@numba.njit(cache=True, fastmath={"reassoc"}, error_model="numpy")
def _centred_dot(dy, x, start, length, centre):
    """``sum(dy)`` and ``sum(dy * (x - centre))`` over one run, in float64."""
    s_dy = 0.0
    s_dot = 0.0
    base = numba.uint64(start)
    for k in range(numba.uint64(length)):
        g = np.float64(dy[base + k])
        s_dy += g
        s_dot += g * (np.float64(x[base + k]) - centre)
    return s_dy, s_dot


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _forward(x, shape, weight, bias, running_mean, running_var, has_weight, has_bias,
             has_running, training, momentum, eps, out, mean_out, invstd_out):
    # x and out are flat C-order (N, C, L) arrays; shape = (N, C, L)
    batch, channels, length = shape
    t = x.dtype.type
    count = np.float64(batch * length)
    for c in numba.prange(channels):
        first = c * length
        if training:
            shift = np.float64(x[first])
            s1 = 0.0
            s2 = 0.0
            for n in range(batch):
                a, b = _shifted_sums(x, first + n * channels * length, length, shift)
                s1 += a
                s2 += b
            mean = shift + s1 / count
            var = max(s2 / count - (s1 / count) * (s1 / count), 0.0)
            invstd = 1.0 / math.sqrt(var + eps)
            if has_running:
                # the reference's update: old value scaled in the stats' dtype, plus the
                # float64 batch statistic (the unbiased variance, as PyTorch)
                unbiased = var * (count / (count - 1)) if count > 1 else var
                running_mean[c] = t(t(t(1.0 - momentum) * running_mean[c]) + momentum * mean)
                running_var[c] = t(t(t(1.0 - momentum) * running_var[c])
                                   + momentum * unbiased)
        else:
            mean = np.float64(running_mean[c])
            invstd = 1.0 / math.sqrt(np.float64(running_var[c]) + eps)
        mean_out[c] = mean
        invstd_out[c] = invstd
        # y = (x - centre) * scale + (bias - residual * scale), in x's dtype
        centre = t(mean)
        residual = mean - np.float64(centre)
        scale = invstd * weight[c] if has_weight else invstd
        offset = bias[c] - residual * scale if has_bias else -residual * scale
        scale_t = t(scale)
        offset_t = t(offset)
        for n in range(batch):
            base = numba.uint64(first + n * channels * length)
            for k in range(numba.uint64(length)):
                out[base + k] = (x[base + k] - centre) * scale_t + offset_t


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _backward(dy, x, shape, weight, has_weight, save_mean, save_invstd, training,
              need_input, need_stats, grad_input, grad_weight, grad_bias):
    batch, channels, length = shape
    t = x.dtype.type
    count = np.float64(batch * length)
    for c in numba.prange(channels):
        first = c * length
        mean = save_mean[c]
        invstd = save_invstd[c]
        gamma_invstd = invstd * weight[c] if has_weight else invstd
        centre = t(mean)
        residual = mean - np.float64(centre)
        sum_dy = 0.0
        dot = 0.0
        if need_stats:
            for n in range(batch):
                a, b = _centred_dot(dy, x, first + n * channels * length, length,
                                    np.float64(centre))
                sum_dy += a
                dot += b
            dot -= residual * sum_dy  # sum(dy * (x - mean))
            grad_bias[c] = sum_dy
            grad_weight[c] = dot * invstd
        if not need_input:
            continue
        gain = t(gamma_invstd)
        if not training:
            for n in range(batch):
                base = numba.uint64(first + n * channels * length)
                for k in range(numba.uint64(length)):
                    grad_input[base + k] = dy[base + k] * gain
            continue
        # dx = gamma r (dy - mean(dy) - x_hat mean(dy x_hat)), the reference's expression
        proj = dot * invstd * invstd / count
        proj_t = t(proj)
        k_t = t(sum_dy / count - residual * proj)
        for n in range(batch):
            base = numba.uint64(first + n * channels * length)
            for k in range(numba.uint64(length)):
                grad_input[base + k] = (
                    (dy[base + k] - (x[base + k] - centre) * proj_t) - k_t
                ) * gain


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _forward_columns(x, weight, bias, running_mean, running_var, has_weight, has_bias,
                     has_running, training, momentum, eps, out, mean_out, invstd_out, blocks):
    # (N, C) inputs (L = 1): a channel is a column, so each thread walks the rows over its
    # own block of columns with per-column accumulators (see the C kernels)
    batch, channels = x.shape
    t = x.dtype.type
    count = np.float64(batch)
    for block in numba.prange(blocks):
        c0 = block * channels // blocks
        c1 = (block + 1) * channels // blocks
        width = c1 - c0
        s1 = np.zeros(width)
        s2 = np.zeros(width)
        centre = np.empty(width, x.dtype)
        scale = np.empty(width, x.dtype)
        offset = np.empty(width, x.dtype)
        if training:
            first = x[0, c0:c1]
            for n in range(batch):
                row = x[n, c0:c1]
                for k in range(numba.uint64(width)):
                    d = np.float64(row[k]) - np.float64(first[k])
                    s1[k] += d
                    s2[k] += d * d
        for k in range(width):
            c = c0 + k
            if training:
                shift = np.float64(x[0, c])
                mean = shift + s1[k] / count
                var = max(s2[k] / count - (s1[k] / count) * (s1[k] / count), 0.0)
                invstd = 1.0 / math.sqrt(var + eps)
                if has_running:
                    unbiased = var * (count / (count - 1)) if count > 1 else var
                    running_mean[c] = t(t(t(1.0 - momentum) * running_mean[c])
                                        + momentum * mean)
                    running_var[c] = t(t(t(1.0 - momentum) * running_var[c])
                                       + momentum * unbiased)
            else:
                mean = np.float64(running_mean[c])
                invstd = 1.0 / math.sqrt(np.float64(running_var[c]) + eps)
            mean_out[c] = mean
            invstd_out[c] = invstd
            centre[k] = t(mean)
            residual = mean - np.float64(centre[k])
            sc = invstd * weight[c] if has_weight else invstd
            scale[k] = t(sc)
            offset[k] = t(bias[c] - residual * sc if has_bias else -residual * sc)
        for n in range(batch):
            row = x[n, c0:c1]
            orow = out[n, c0:c1]
            for k in range(numba.uint64(width)):
                orow[k] = (row[k] - centre[k]) * scale[k] + offset[k]


@numba.njit(parallel=True, cache=True, fastmath=False, error_model="numpy")
def _backward_columns(dy, x, weight, has_weight, save_mean, save_invstd, training,
                      need_input, need_stats, grad_input, grad_weight, grad_bias, blocks):
    batch, channels = x.shape
    t = x.dtype.type
    count = np.float64(batch)
    for block in numba.prange(blocks):
        c0 = block * channels // blocks
        c1 = (block + 1) * channels // blocks
        width = c1 - c0
        centre = np.empty(width, x.dtype)
        proj = np.empty(width, x.dtype)
        shift = np.empty(width, x.dtype)
        gain = np.empty(width, x.dtype)
        sum_dy = np.zeros(width)
        dot = np.zeros(width)
        for k in range(width):
            centre[k] = t(save_mean[c0 + k])
        if need_stats:
            for n in range(batch):
                row = x[n, c0:c1]
                dyrow = dy[n, c0:c1]
                for k in range(numba.uint64(width)):
                    g = np.float64(dyrow[k])
                    sum_dy[k] += g
                    dot[k] += g * (np.float64(row[k]) - np.float64(centre[k]))
        for k in range(width):
            c = c0 + k
            invstd = save_invstd[c]
            residual = save_mean[c] - np.float64(centre[k])
            gamma = np.float64(weight[c]) if has_weight else 1.0
            if need_stats:
                d = dot[k] - residual * sum_dy[k]  # sum(dy (x - mean))
                grad_bias[c] = sum_dy[k]
                grad_weight[c] = d * invstd
                p = d * invstd * invstd / count
                proj[k] = t(p)
                shift[k] = t(sum_dy[k] / count - residual * p)
            gain[k] = t(gamma * invstd)
        if not need_input:
            continue
        for n in range(batch):
            row = x[n, c0:c1]
            dyrow = dy[n, c0:c1]
            grow = grad_input[n, c0:c1]
            if training:
                for k in range(numba.uint64(width)):
                    grow[k] = ((dyrow[k] - (row[k] - centre[k]) * proj[k]) - shift[k]) * gain[k]
            else:
                for k in range(numba.uint64(width)):
                    grow[k] = dyrow[k] * gain[k]


def _reference(name):
    import minidl.ops.normalization  # noqa: F401 - registers the references

    return backend._KERNELS[name]["numpy"]


def _vector_ok(v, channels, dtype, writable=False):
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


def _or_empty(v, dtype):
    # a stand-in for None that keeps one compiled signature per dtype
    return np.empty(0, dtype=dtype) if v is None else v


#: below this many values one thread is faster than waking a second one
_PARALLEL_MIN = 1 << 15


def _set_threads(size):
    """Set (and return) Numba's thread count for a problem of ``size`` values."""
    threads = 1
    if size >= _PARALLEL_MIN:
        threads = min(backend.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    return threads


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    """Batch normalisation forward: see
    :func:`minidl.ops.normalization.batch_norm_forward` (same signature and results)."""
    has_running = running_mean is not None and running_var is not None
    if (not _supported(x, (weight, bias), (running_mean, running_var))
            or (running_mean is None) != (running_var is None)
            or (not training and not has_running)):
        return _reference("batch_norm_forward")(x, weight, bias, running_mean, running_var,
                                                training, momentum, eps)
    x = np.ascontiguousarray(x)
    dtype = x.dtype
    out = np.empty_like(x)
    mean = np.empty(x.shape[1])
    invstd = np.empty(x.shape[1])
    threads = _set_threads(x.size)
    if x.shape[2] == 1:
        _forward_columns(x[:, :, 0], _or_empty(weight, dtype), _or_empty(bias, dtype),
                         _or_empty(running_mean, dtype), _or_empty(running_var, dtype),
                         weight is not None, bias is not None, has_running, bool(training),
                         float(momentum), float(eps), out[:, :, 0], mean, invstd,
                         min(threads, x.shape[1]))
        return out, mean, invstd
    _forward(x.reshape(-1), x.shape, _or_empty(weight, dtype), _or_empty(bias, dtype),
             _or_empty(running_mean, dtype), _or_empty(running_var, dtype),
             weight is not None, bias is not None, has_running, bool(training),
             float(momentum), float(eps), out.reshape(-1), mean, invstd)
    return out, mean, invstd


def batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training, output_mask):
    """Batch normalisation backward: see
    :func:`minidl.ops.normalization.batch_norm_backward` (same signature and results)."""
    need_input, need_weight, need_bias = output_mask
    channels = x.shape[1] if getattr(x, "ndim", 0) == 3 else -1
    stats_ok = all(_vector_ok(v, channels, np.float64) for v in (save_mean, save_invstd))
    if (not _supported(x, (weight,), ()) or not stats_ok
            or getattr(grad_out, "dtype", None) != x.dtype or grad_out.shape != x.shape):
        return _reference("batch_norm_backward")(grad_out, x, weight, save_mean, save_invstd,
                                                 training, output_mask)
    x = np.ascontiguousarray(x)
    grad_out = np.ascontiguousarray(grad_out)
    need_stats = need_weight or need_bias or (need_input and training)
    grad_input = np.empty_like(x) if need_input else None
    grad_weight = np.empty(channels)
    grad_bias = np.empty(channels)
    if not (need_input or need_stats):
        return None, None, None
    threads = _set_threads(x.size)
    if x.shape[2] == 1:
        _backward_columns(grad_out[:, :, 0], x[:, :, 0], _or_empty(weight, x.dtype),
                          weight is not None, save_mean, save_invstd, bool(training),
                          bool(need_input), bool(need_stats),
                          (grad_input if need_input else np.empty_like(x))[:, :, 0],
                          grad_weight, grad_bias, min(threads, channels))
    else:
        _backward(grad_out.reshape(-1), x.reshape(-1), x.shape, _or_empty(weight, x.dtype),
                  weight is not None, save_mean, save_invstd, bool(training), bool(need_input),
                  bool(need_stats),
                  (grad_input if need_input else np.empty((0, 0, 0), x.dtype)).reshape(-1),
                  grad_weight, grad_bias)
    return (grad_input, grad_weight if need_weight else None,
            grad_bias if need_bias else None)


backend.register_kernel("batch_norm_forward", "numba", batch_norm_forward)
backend.register_kernel("batch_norm_backward", "numba", batch_norm_backward)
