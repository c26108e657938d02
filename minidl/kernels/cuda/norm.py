r"""Numba-CUDA batch normalisation, registered as the ``"cuda"`` backend.

``batch_norm_forward`` and ``batch_norm_backward`` have the signatures and results of the
NumPy references in :mod:`minidl.ops.normalization`, on ``(N, C, L)`` arrays.

One block per channel (the grid strides over channels when there are more channels
than blocks).  The block's threads stride over the channel's :math:`M = N L` values and
each accumulates float64 partial sums; the block adds them up in shared memory
(:func:`minidl.kernels.cuda._common.block_sum`, a tree of :math:`\log_2 B` steps).
Thread 0 then turns the sums into the channel's constants, puts them in shared memory,
and every thread writes its share of the output.  One launch per call, no atomics, no
second kernel for the statistics.

Forward, training: the statistics come from sums shifted by the channel's first value
:math:`s = x_0` (which keeps :math:`\sum (x-s)^2 - (\sum (x-s))^2/M` from cancelling
when :math:`|\mu| \gg \sigma`, as the Numba and C kernels do):

.. math::

    \mu = s + \frac{S_1}{M}, \quad \sigma^2 = \frac{S_2}{M} - \Big(\frac{S_1}{M}\Big)^2,
    \quad r = \frac{1}{\sqrt{\sigma^2 + \epsilon}},

with :math:`S_1 = \sum (x - s)`, :math:`S_2 = \sum (x - s)^2`; the running statistics
take :math:`(1-m)\hat\mu + m\mu` and the unbiased :math:`\sigma^2 M/(M-1)`.  The output
is the reference's :math:`y = (x - \tilde\mu)\,\gamma r + (\beta - (\mu - \tilde\mu)\gamma
r)`, :math:`\tilde\mu` the mean rounded to the data's dtype.

Backward: :math:`\sum g` and :math:`\sum g (x - \mu)` per channel by the same block
reduction, then the reference's
:math:`\bar x = \gamma r \big(g - \tfrac{1}{M}\sum g - \hat x \tfrac{1}{M}\sum g \hat x
\big)` (training) or :math:`\gamma r\, g` (evaluation).

Optional arguments (None) reach the kernels as one-element stand-ins and a flag, so each
dtype compiles once.  Inputs the kernels do not cover (other dtypes, other ranks,
mismatched vectors) go to the reference.  Importing this module fails with ImportError
without Numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

from minidl import backend
from minidl.kernels.cuda import _common
from minidl.kernels.cuda._common import MAX_THREADS, block_sum

__all__ = ["batch_norm_forward", "batch_norm_backward"]


@cuda.jit
def _forward(x, weight, bias, running_mean, running_var, has_weight, has_bias, has_running,
             training, momentum, eps, out, mean_out, invstd_out):
    batch, channels, length = x.shape
    count = batch * length
    t = x.dtype.type
    sums = cuda.shared.array(MAX_THREADS, float64)
    squares = cuda.shared.array(MAX_THREADS, float64)
    # the channel's constants: centre, scale and offset, from thread 0 to all
    constants = cuda.shared.array(3, float64)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        shift = 0.0
        s1 = 0.0
        s2 = 0.0
        if training:
            shift = float64(x[0, c, 0])
            for k in range(tid, count, threads):
                d = float64(x[k // length, c, k % length]) - shift
                s1 += d
                s2 += d * d
            s1 = block_sum(sums, s1)
            s2 = block_sum(squares, s2)
        if tid == 0:
            if training:
                mean = shift + s1 / count
                var = s2 / count - (s1 / count) * (s1 / count)
                # rounding may leave a tiny negative; no max(): see kernels/cuda/pool.py
                var = var if var > 0.0 else 0.0
                invstd = 1.0 / math.sqrt(var + eps)
                if has_running:
                    unbiased = var * (count / (count - 1)) if count > 1 else var
                    running_mean[c] = (1.0 - momentum) * float64(running_mean[c]) \
                        + momentum * mean
                    running_var[c] = (1.0 - momentum) * float64(running_var[c]) \
                        + momentum * unbiased
            else:
                mean = float64(running_mean[c])
                invstd = 1.0 / math.sqrt(float64(running_var[c]) + eps)
            mean_out[c] = mean
            invstd_out[c] = invstd
            centre = t(mean)
            residual = mean - float64(centre)
            scale = invstd * float64(weight[c]) if has_weight else invstd
            offset = float64(bias[c]) - residual * scale if has_bias else -residual * scale
            constants[0] = float64(centre)
            constants[1] = scale
            constants[2] = offset
        cuda.syncthreads()
        # y = (x - centre) * scale + offset, in the data's dtype as the reference
        centre_t = t(constants[0])
        scale_t = t(constants[1])
        offset_t = t(constants[2])
        cuda.syncthreads()  # all have read the constants before the next channel's
        for k in range(tid, count, threads):
            n = k // length
            position = k % length
            out[n, c, position] = (x[n, c, position] - centre_t) * scale_t + offset_t


@cuda.jit
def _backward(dy, x, weight, has_weight, save_mean, save_invstd, training, need_input,
              need_stats, grad_input, grad_weight, grad_bias):
    batch, channels, length = x.shape
    count = batch * length
    t = x.dtype.type
    sums = cuda.shared.array(MAX_THREADS, float64)
    dots = cuda.shared.array(MAX_THREADS, float64)
    # proj, shift and gain (see below), from thread 0 to all
    constants = cuda.shared.array(3, float64)
    tid = cuda.threadIdx.x
    threads = cuda.blockDim.x
    for c in range(cuda.blockIdx.x, channels, cuda.gridDim.x):
        mean = save_mean[c]
        invstd = save_invstd[c]
        centre = t(mean)
        s_dy = 0.0
        s_dot = 0.0
        if need_stats:
            for k in range(tid, count, threads):
                n = k // length
                position = k % length
                g = float64(dy[n, c, position])
                s_dy += g
                s_dot += g * (float64(x[n, c, position]) - float64(centre))
            s_dy = block_sum(sums, s_dy)
            s_dot = block_sum(dots, s_dot)
        if tid == 0:
            residual = mean - float64(centre)
            gamma = float64(weight[c]) if has_weight else 1.0
            proj = 0.0
            shift = 0.0
            if need_stats:
                dot = s_dot - residual * s_dy  # sum(dy * (x - mean))
                grad_bias[c] = s_dy
                grad_weight[c] = dot * invstd
                proj = dot * invstd * invstd / count
                shift = s_dy / count - residual * proj
            constants[0] = proj
            constants[1] = shift
            constants[2] = gamma * invstd
        cuda.syncthreads()
        proj_t = t(constants[0])
        shift_t = t(constants[1])
        gain_t = t(constants[2])
        cuda.syncthreads()
        if need_input:
            for k in range(tid, count, threads):
                n = k // length
                position = k % length
                if training:
                    # dx = gamma r (dy - mean(dy) - x_hat mean(dy x_hat)), the reference's
                    # expression: ((dy - (x - centre) proj) - shift) gain
                    grad_input[n, c, position] = (
                        (dy[n, c, position] - (x[n, c, position] - centre) * proj_t) - shift_t
                    ) * gain_t
                else:
                    grad_input[n, c, position] = dy[n, c, position] * gain_t


def _reference(name):
    import minidl.ops.normalization  # noqa: F401 - registers the references

    return backend._KERNELS[name]["numpy"]


def _vector_ok(v, channels, dtype):
    return v is None or (v.dtype == dtype and tuple(v.shape) == (channels,))


def _stand_in(xp, v, dtype):
    # a one-element array in place of None: one compiled signature per dtype
    return xp.empty(1, dtype=dtype) if v is None else v


def batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, eps):
    r"""Batch normalisation forward on the GPU: see
    :func:`minidl.ops.normalization.batch_norm_forward` (same signature and results).

    Per channel :math:`c`, over the :math:`M = N L` values: :math:`\mu_c`,
    :math:`r_c = 1/\sqrt{\sigma_c^2 + \epsilon}` (batch statistics when ``training``, else
    the running ones) and :math:`y = (x - \mu_c)\, r_c \gamma_c + \beta_c`; returns
    ``(out, mean, invstd)`` with float64 statistics.  One block per channel, the sums
    reduced in shared memory.
    """
    has_running = running_mean is not None and running_var is not None
    supported = (
        getattr(x, "ndim", 0) == 3 and _common.usable(x)
        and all(_vector_ok(v, x.shape[1], x.dtype)
                for v in (weight, bias, running_mean, running_var))
        and (running_mean is None) == (running_var is None)
        and (training or has_running)
    )
    if not supported:
        return _reference("batch_norm_forward")(x, weight, bias, running_mean, running_var,
                                                training, momentum, eps)
    xp = _common.array_module(x)
    batch, channels, length = x.shape
    dtype = x.dtype
    out = xp.empty(x.shape, dtype=dtype)
    mean = xp.empty(channels, dtype=np.float64)
    invstd = xp.empty(channels, dtype=np.float64)
    _common.launch_blocks(
        _forward, channels, batch * length, x,
        _stand_in(xp, weight, dtype), _stand_in(xp, bias, dtype),
        _stand_in(xp, running_mean, dtype), _stand_in(xp, running_var, dtype),
        weight is not None, bias is not None, has_running, bool(training), float(momentum),
        float(eps), out, mean, invstd)
    return out, mean, invstd


def batch_norm_backward(grad_out, x, weight, save_mean, save_invstd, training, output_mask):
    r"""Batch normalisation backward on the GPU: see
    :func:`minidl.ops.normalization.batch_norm_backward` (same signature and results).

    Per channel, with :math:`g = \partial L / \partial y` and :math:`\hat x = (x - \mu) r`:
    :math:`\bar\beta = \sum g`, :math:`\bar\gamma = \sum g \hat x` (float64) and
    :math:`\bar x = \gamma r (g - \tfrac{1}{M}\sum g - \hat x \tfrac{1}{M}\sum g\hat x)`
    in training (:math:`\gamma r g` in evaluation); each only when ``output_mask`` asks.
    """
    need_input, need_weight, need_bias = output_mask
    channels = x.shape[1] if getattr(x, "ndim", 0) == 3 else -1
    supported = (
        channels >= 0 and _common.usable(x, grad_out) and tuple(grad_out.shape) == x.shape
        and _vector_ok(weight, channels, x.dtype)
        and all(_vector_ok(v, channels, np.float64) for v in (save_mean, save_invstd))
    )
    if not supported:
        return _reference("batch_norm_backward")(grad_out, x, weight, save_mean, save_invstd,
                                                 training, output_mask)
    if not (need_input or need_weight or need_bias):
        return None, None, None
    xp = _common.array_module(x)
    batch, _, length = x.shape
    need_stats = bool(need_weight or need_bias or (need_input and training))
    grad_input = xp.empty(x.shape, dtype=x.dtype) if need_input else xp.empty(
        (1, 1, 1), dtype=x.dtype)
    grad_weight = xp.empty(channels, dtype=np.float64)
    grad_bias = xp.empty(channels, dtype=np.float64)
    _common.launch_blocks(
        _backward, channels, batch * length, grad_out, x, _stand_in(xp, weight, x.dtype),
        weight is not None, save_mean, save_invstd, bool(training), bool(need_input),
        need_stats, grad_input, grad_weight, grad_bias)
    return (grad_input if need_input else None, grad_weight if need_weight else None,
            grad_bias if need_bias else None)


backend.register_kernel("batch_norm_forward", "cuda", batch_norm_forward)
backend.register_kernel("batch_norm_backward", "cuda", batch_norm_backward)
