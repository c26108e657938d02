"""Hypothesis strategies and the two checking helpers used by the op tests.

Strategies
----------
- :func:`shapes`, :func:`broadcastable_shapes`: array shapes, with size-1 dimensions
  drawn often (they are where broadcasting bugs hide).
- :func:`arrays`: float64 arrays whose elements come from one of the element strategies
  :func:`reals`, :func:`away_from_zero`, :func:`positives`, which keep values away from
  the kinks of the op under test (|x| at 0, log at 0, clip at its bounds).
- :func:`distinct_arrays`: arrays whose values are all different by at least ``spacing``,
  so max/min never meet a tie while finite differences step by 1e-6.

Helpers
-------
- :func:`check_grad`: float64 central differences against ``backward``
  (:func:`minidl.gradcheck`).
- :func:`torch_parity`: the same inputs through minidl and PyTorch; shapes, dtypes,
  values and gradients must agree.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minidl

__all__ = [
    "shapes", "broadcastable_shapes", "reals", "away_from_zero", "positives", "arrays",
    "distinct_arrays", "dims_of", "check_grad", "torch_parity", "seeded_array",
    "torch_dtype_to_numpy", "FLOAT_DTYPES",
]

FLOAT_DTYPES = (np.float64, np.float32)

# ---------------------------------------------------------------------- shapes


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=3):
    """Array shapes; ``min_side=1`` keeps size-1 dimensions frequent at small ``max_side``."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3):
    """A tuple of ``num_shapes`` shapes that broadcast together (NumPy/PyTorch rules)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    ).map(lambda result: result.input_shapes)


@st.composite
def dims_of(draw, ndim, min_size=1, max_size=None):
    """A sorted tuple of distinct dimensions of an ``ndim``-D array, some spelled negative."""
    if ndim == 0:
        return ()
    chosen = draw(
        st.lists(st.integers(0, ndim - 1), min_size=min_size,
                 max_size=max_size or ndim, unique=True)
    )
    return tuple(d - ndim if draw(st.booleans()) else d for d in sorted(chosen))


# ---------------------------------------------------------------------- element values


def reals(low=-2.0, high=2.0, avoid=(), margin=0.05):
    """Finite floats in ``[low, high]``, at least ``margin`` away from each point in ``avoid``."""
    values = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    if avoid:
        values = values.filter(lambda v: all(abs(v - p) > margin for p in avoid))
    return values


def away_from_zero(margin=0.25, high=2.0):
    """Floats with ``margin <= |x| <= high``: for division, |x|, 1/x."""
    return st.one_of(reals(margin, high), reals(-high, -margin))


def positives(low=0.25, high=3.0):
    """Floats in ``[low, high]``: for log, sqrt, the base of a real power."""
    return reals(low, high)


def arrays(shape, elements=None, dtype=np.float64):
    """Arrays of ``shape`` (a tuple or a strategy) with ``elements`` (default :func:`reals`)."""
    return hnp.arrays(dtype, shape, elements=elements if elements is not None else reals())


def distinct_arrays(shape, spacing=0.01, count=401):
    """Float64 arrays whose values are pairwise at least ``spacing`` apart (no ties)."""
    half = count // 2
    ints = hnp.arrays(np.int64, shape, elements=st.integers(-half, half), unique=True)
    return ints.map(lambda a: a.astype(np.float64) * spacing)


def seeded_array(shape, dtype=np.float64, low=-2.0, high=2.0, seed=0):
    """A reproducible uniform array, for tests that need inputs but not hypothesis."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


# ---------------------------------------------------------------------- helpers


def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def check_grad(fn, *arrays, eps=1e-6, atol=1e-5, rtol=1e-3):
    """Assert that ``backward`` of ``fn`` matches float64 central differences.

    Every array becomes a float64 leaf that requires grad; ``fn`` takes the tensors and
    returns a tensor or a tuple of tensors (non-float outputs such as indices are ignored).
    """
    inputs = [minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
              for a in arrays]
    assert minidl.gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol)
    for t in inputs:
        assert t.grad is None or t.grad.dtype == np.float64


def torch_dtype_to_numpy(torch_dtype):
    """The NumPy dtype matching a torch dtype (``torch.float32`` -> ``float32``)."""
    torch = pytest.importorskip("torch")
    return torch.empty((), dtype=torch_dtype).numpy().dtype


def _values(t):
    values = np.asarray(t.detach())  # the public array protocol, not .data
    assert isinstance(values, np.ndarray)
    return values


def _default_tolerances(arrays_and_outputs):
    """float64 everywhere: tight; any float32/float16 involved: ~1e-5 (float32 rounding)."""
    dtypes = [np.dtype(d) for d in arrays_and_outputs]
    if any(d.kind == "f" and d.itemsize < 8 for d in dtypes):
        return 1e-5, 1e-5
    return 1e-9, 1e-7


def torch_parity(fn_minidl, fn_torch, *arrays, atol=None, rtol=None, grad=True, seed=0):
    """Run the same inputs through minidl and PyTorch and assert that everything matches.

    Each array becomes a minidl tensor and a torch tensor (separate copies, same dtype);
    floating ones require grad.  The outputs (a tensor or a tuple, e.g. ``(values,
    indices)`` or the pieces of ``split``) must agree in count, shape, dtype and values.
    Then ``sum(w_k * out_k)`` with the same seeded random weights ``w_k`` is
    backpropagated in both, and every input's gradient must agree (both None, or equal).

    Tolerances default to tight for float64 and 1e-5 when float32 is involved.
    """
    torch = pytest.importorskip("torch")
    arrays = [np.asarray(a) for a in arrays]
    md_inputs = [minidl.tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]
    th_inputs = [torch.tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]

    md_outputs = _as_tuple(fn_minidl(*md_inputs))
    th_outputs = _as_tuple(fn_torch(*th_inputs))
    assert len(md_outputs) == len(th_outputs), (
        f"minidl returned {len(md_outputs)} outputs, torch {len(th_outputs)}"
    )

    out_dtypes = [m.dtype for m in md_outputs]
    default_atol, default_rtol = _default_tolerances([a.dtype for a in arrays] + out_dtypes)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol

    for k, (m, t) in enumerate(zip(md_outputs, th_outputs)):
        assert isinstance(m, minidl.Tensor), f"output {k} is a {type(m).__name__}"
        assert m.shape == tuple(t.shape), f"output {k}: shape {m.shape} != torch {t.shape}"
        assert m.dtype == torch_dtype_to_numpy(t.dtype), (
            f"output {k}: dtype {m.dtype} != torch {t.dtype}"
        )
        assert m.requires_grad == t.requires_grad, (
            f"output {k}: requires_grad {m.requires_grad} != torch {t.requires_grad}"
        )
        np.testing.assert_allclose(
            _values(m), t.detach().numpy(), atol=atol, rtol=rtol,
            err_msg=f"output {k} values differ from torch",
        )

    if not grad:
        return
    rng = np.random.default_rng(seed)
    md_loss, th_loss = None, None
    for m, t in zip(md_outputs, th_outputs):
        if not t.requires_grad:
            continue
        weight = rng.standard_normal(m.shape).astype(m.dtype)
        md_term = (m * minidl.tensor(weight)).sum()
        th_term = (t * torch.tensor(weight)).sum()
        md_loss = md_term if md_loss is None else md_loss + md_term
        th_loss = th_term if th_loss is None else th_loss + th_term
    if th_loss is None:
        return
    md_loss.backward()
    th_loss.backward()
    for k, (m, t) in enumerate(zip(md_inputs, th_inputs)):
        if t.grad is None:
            assert m.grad is None, f"input {k}: minidl has a gradient, torch has none"
            continue
        assert m.grad is not None, f"input {k}: torch has a gradient, minidl has none"
        assert m.grad.shape == tuple(t.grad.shape), f"input {k}: gradient shape differs"
        assert m.grad.dtype == m.dtype, f"input {k}: gradient dtype {m.grad.dtype} != {m.dtype}"
        np.testing.assert_allclose(
            _values(m.grad), t.grad.numpy(), atol=atol, rtol=rtol,
            err_msg=f"input {k} gradients differ from torch",
        )
