"""Shape and indexing ops: gradients (float64 central differences) and parity with PyTorch.

Shapes are drawn with size-1 dimensions; indices with steps, negative positions,
``None``/``Ellipsis``, repeated integer indices and boolean masks.  Where PyTorch has no
equivalent (negative slice steps), NumPy indexing is the reference for the values.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    FLOAT_DTYPES,
    arrays,
    check_grad,
    dims_of,
    seeded_array,
    shapes,
    torch_parity,
)

import minidl

dtypes = pytest.mark.parametrize("dtype", FLOAT_DTYPES)


# ---------------------------------------------------------------------- reshape / view


@st.composite
def array_and_new_shape(draw):
    x = draw(arrays(shapes(max_dims=4)))
    size = x.size
    options = [(-1,), (size, 1), (1, size), tuple(reversed(x.shape)), (1,) + x.shape, ()]
    if x.ndim:
        minus_one_at = draw(st.integers(0, x.ndim - 1))
        options.append(tuple(-1 if i == minus_one_at else s for i, s in enumerate(x.shape)))
    options = [s for s in options if s != () or size == 1]
    return x, draw(st.sampled_from(options))


@given(case=array_and_new_shape())
def test_reshape_view_gradcheck(case):
    x, shape = case
    check_grad(lambda t: t.reshape(shape), x)
    check_grad(lambda t: t.view(*shape), x)
    check_grad(lambda t: minidl.reshape(t, shape), x)


@dtypes
@given(case=array_and_new_shape())
def test_reshape_view_match_torch(torch, dtype, case):
    x, shape = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.reshape(shape), lambda t: t.reshape(shape), x)
    torch_parity(lambda t: t.view(shape), lambda t: t.view(shape), x)
    if shape:  # torch's varargs spelling needs at least one size
        torch_parity(lambda t: t.view(*shape), lambda t: t.view(*shape), x)
    torch_parity(lambda t: t.view_as(t.reshape(shape)), lambda t: t.view_as(t.reshape(shape)), x)


def test_reshape_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"reshape.*\(4, -1\).*size 6"):
        minidl.ones(2, 3).reshape(4, -1)
    with pytest.raises(ValueError, match="only one dimension can be -1"):
        minidl.ones(2, 3).reshape(-1, -1)


# ---------------------------------------------------------------------- permute / transpose


@st.composite
def array_and_permutation(draw):
    x = draw(arrays(shapes(max_dims=4)))
    perm = draw(st.permutations(range(x.ndim)))
    return x, tuple(d - x.ndim if draw(st.booleans()) else d for d in perm)


@given(case=array_and_permutation())
def test_permute_gradcheck(case):
    x, perm = case
    check_grad(lambda t: t.permute(*perm), x)
    check_grad(lambda t: minidl.permute(t, perm), x)


@dtypes
@given(case=array_and_permutation())
def test_permute_transpose_T_match_torch(torch, dtype, case):
    x, perm = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.permute(perm), lambda t: t.permute(perm), x)
    if x.ndim >= 1:
        torch_parity(lambda t: t.permute(*perm), lambda t: t.permute(*perm), x)
        d0, d1 = perm[0], perm[-1]
        torch_parity(lambda t: t.transpose(d0, d1), lambda t: t.transpose(d0, d1), x)
        torch_parity(
            lambda t: minidl.movedim(t, d0, d1), lambda t: torch.movedim(t, d0, d1), x
        )
    if x.ndim == 2:
        torch_parity(lambda t: t.T, lambda t: t.T, x)
        torch_parity(lambda t: t.t(), lambda t: t.t(), x)
    if x.ndim >= 2:
        torch_parity(lambda t: t.mT, lambda t: t.mT, x)


@given(x=arrays(shapes(min_dims=1, max_dims=4)), data=st.data())
def test_transpose_gradcheck(x, data):
    d0 = data.draw(st.integers(-x.ndim, x.ndim - 1))
    d1 = data.draw(st.integers(-x.ndim, x.ndim - 1))
    check_grad(lambda t: t.transpose(d0, d1), x)
    check_grad(lambda t: minidl.transpose(t, d0, d1), x)


def test_permute_rejects_a_non_permutation():
    with pytest.raises(ValueError, match="permute"):
        minidl.ones(2, 3, 4).permute(0, 0, 1)


# ---------------------------------------------------------------------- squeeze / unsqueeze


@dtypes
@given(x=arrays(shapes(max_dims=4, max_side=2)), data=st.data())
def test_squeeze_unsqueeze(torch, dtype, x, data):
    x = x.astype(dtype)
    dim = data.draw(st.none() | st.integers(-x.ndim, x.ndim - 1) if x.ndim else st.none())
    new_dim = data.draw(st.integers(-x.ndim - 1, x.ndim))
    squeeze = (lambda t: t.squeeze()) if dim is None else (lambda t: t.squeeze(dim))
    torch_parity(squeeze, squeeze, x)
    torch_parity(lambda t: t.unsqueeze(new_dim), lambda t: t.unsqueeze(new_dim), x)
    if dtype == np.float64:
        check_grad(squeeze, x)
        check_grad(lambda t: minidl.unsqueeze(t, new_dim), x)


# ---------------------------------------------------------------------- expand


@st.composite
def array_and_expanded_shape(draw):
    x = draw(arrays(shapes(max_dims=3, max_side=2)))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    target = list(lead)
    for s in x.shape:
        if s == 1:
            target.append(draw(st.sampled_from([1, 2, 3, -1])))
        else:
            target.append(draw(st.sampled_from([s, -1])))
    return x, tuple(target)


@given(case=array_and_expanded_shape())
def test_expand_gradcheck(case):
    x, target = case
    check_grad(lambda t: t.expand(*target), x)
    check_grad(lambda t: minidl.expand(t, target), x)


@dtypes
@given(case=array_and_expanded_shape())
def test_expand_matches_torch(torch, dtype, case):
    x, target = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.expand(target), lambda t: t.expand(target), x)
    if target:
        torch_parity(lambda t: t.expand(*target), lambda t: t.expand(*target), x)


def test_expand_errors_like_torch():
    with pytest.raises(ValueError, match="expand"):
        minidl.ones(2, 3).expand(4, 3)
    with pytest.raises(ValueError, match="expand"):
        minidl.ones(3).expand(-1, 3)  # -1 is not allowed for a new leading dimension
    with pytest.raises(ValueError, match="expand"):
        minidl.ones(2, 3).expand(3)


def test_expand_as_matches_torch(torch):
    x, y = seeded_array((3, 1), seed=1), seeded_array((2, 3, 4), seed=2)
    torch_parity(lambda a, b: a.expand_as(b), lambda a, b: a.expand_as(b), x, y)


# ---------------------------------------------------------------------- flatten


@dtypes
@given(x=arrays(shapes(max_dims=4)), data=st.data())
def test_flatten(torch, dtype, x, data):
    x = x.astype(dtype)
    if x.ndim:
        start = data.draw(st.integers(-x.ndim, x.ndim - 1))
        end = data.draw(st.integers(start % x.ndim, x.ndim - 1))
    else:
        start, end = 0, -1
    torch_parity(lambda t: t.flatten(start, end), lambda t: t.flatten(start, end), x)
    torch_parity(lambda t: t.flatten(), lambda t: t.flatten(), x)
    torch_parity(minidl.flatten, torch.flatten, x)
    if dtype == np.float64:
        check_grad(lambda t: t.flatten(start, end), x)


# ---------------------------------------------------------------------- indexing


def _has_negative_step(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, slice) and p.step is not None and p.step < 0 for p in parts)


@st.composite
def array_and_basic_index(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    index = draw(hnp.basic_indices(x.shape, allow_newaxis=True, allow_ellipsis=True))
    return x, index


@given(case=array_and_basic_index())
def test_basic_indexing_gradcheck_and_numpy_values(case):
    x, index = case
    check_grad(lambda t: t[index], x)
    np.testing.assert_array_equal(minidl.tensor(x)[index].data, x[index])


@dtypes
@given(case=array_and_basic_index())
def test_basic_indexing_matches_torch(torch, dtype, case):
    x, index = case
    x = x.astype(dtype)
    if _has_negative_step(index):  # torch has no negative steps: NumPy is the reference
        got = minidl.tensor(x, requires_grad=True)[index]
        np.testing.assert_array_equal(got.data, x[index])
        return
    torch_parity(lambda t: t[index], lambda t: t[index], x)


@st.composite
def array_and_integer_index(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=4)))
    index = draw(hnp.integer_array_indices(x.shape, result_shape=shapes(max_dims=2, max_side=5)))
    return x, index


@given(case=array_and_integer_index())
def test_integer_array_indexing_gradcheck(case):
    x, index = case
    check_grad(lambda t: t[index], x)
    tensor_index = tuple(minidl.tensor(i) for i in index)
    check_grad(lambda t: t[tensor_index], x)


@dtypes
@given(case=array_and_integer_index())
def test_integer_array_indexing_matches_torch(torch, dtype, case):
    x, index = case
    x = x.astype(dtype)
    md_index = tuple(minidl.tensor(i) for i in index)
    th_index = tuple(torch.tensor(i) for i in index)
    torch_parity(lambda t: t[md_index], lambda t: t[th_index], x)


def test_repeated_integer_indices_accumulate_gradients_like_torch(torch):
    x = seeded_array((4, 3), seed=3)
    rows = [0, 0, 2, 0, -1]
    torch_parity(lambda t: t[rows], lambda t: t[rows], x)
    torch_parity(
        lambda t: t[minidl.tensor(rows)], lambda t: t[torch.tensor(rows)], x
    )
    torch_parity(lambda t: t[:, [1, 1, 0]], lambda t: t[:, [1, 1, 0]], x)
    torch_parity(lambda t: t[[0, 0], [1, 1]], lambda t: t[[0, 0], [1, 1]], x)
    torch_parity(lambda t: t[None, ..., [2, 2]], lambda t: t[None, ..., [2, 2]], x)
    # hand-written: row 0 is picked three times
    t = minidl.tensor(x, requires_grad=True)
    t[rows].sum().backward()
    np.testing.assert_array_equal(t.grad.numpy()[:, 0], [3.0, 0.0, 1.0, 1.0])


@dtypes
@given(x=arrays(shapes(min_dims=1, max_dims=3)), data=st.data())
def test_boolean_mask_indexing(torch, dtype, x, data):
    x = x.astype(dtype)
    full_mask = data.draw(arrays(x.shape, st.booleans(), dtype=bool))
    row_mask = data.draw(arrays(x.shape[:1], st.booleans(), dtype=bool))
    for mask in (full_mask, row_mask):
        torch_parity(
            lambda t, m=mask: t[minidl.tensor(m)], lambda t, m=mask: t[torch.tensor(m)], x
        )
        torch_parity(lambda t, m=mask: t[m], lambda t, m=mask: t[torch.tensor(m)], x)
        if dtype == np.float64:
            check_grad(lambda t, m=mask: t[m], x)
    torch_parity(lambda t: t[t > 0], lambda t: t[t > 0], x)


def test_index_error_names_shape():
    with pytest.raises(IndexError, match=r"\(2, 3\)"):
        minidl.ones(2, 3)[5]


# ---------------------------------------------------------------------- cat / stack


@st.composite
def arrays_to_cat(draw):
    base = draw(shapes(min_dims=1, max_dims=3))
    dim = draw(st.integers(-len(base), len(base) - 1))
    count = draw(st.integers(1, 3))
    out = []
    for _ in range(count):
        shape = list(base)
        shape[dim] = draw(st.integers(0, 3))
        out.append(draw(arrays(tuple(shape))))
    return out, dim


@given(case=arrays_to_cat())
def test_cat_gradcheck(case):
    xs, dim = case
    check_grad(lambda *ts: minidl.cat(ts, dim), *xs)
    check_grad(lambda *ts: minidl.concat(list(ts), axis=dim), *xs)


@dtypes
@given(case=arrays_to_cat())
def test_cat_matches_torch(torch, dtype, case):
    xs, dim = case
    xs = [x.astype(dtype) for x in xs]
    torch_parity(lambda *ts: minidl.cat(ts, dim), lambda *ts: torch.cat(ts, dim), *xs)


def test_cat_mixed_dtypes_and_errors(torch):
    a, b = seeded_array((2, 3), np.float32, seed=1), seeded_array((1, 3), np.float64, seed=2)
    torch_parity(lambda x, y: minidl.cat([x, y]), lambda x, y: torch.cat([x, y]), a, b)
    with pytest.raises(ValueError, match=r"cat.*\(2, 3\).*\(2, 4\)"):
        minidl.cat([minidl.ones(2, 3), minidl.ones(2, 4)])
    with pytest.raises(ValueError, match="cat"):
        minidl.cat([])


@st.composite
def arrays_to_stack(draw):
    shape = draw(shapes(max_dims=3))
    count = draw(st.integers(1, 3))
    xs = [draw(arrays(shape)) for _ in range(count)]
    return xs, draw(st.integers(-len(shape) - 1, len(shape)))


@given(case=arrays_to_stack())
def test_stack_gradcheck(case):
    xs, dim = case
    check_grad(lambda *ts: minidl.stack(ts, dim), *xs)


@dtypes
@given(case=arrays_to_stack())
def test_stack_matches_torch(torch, dtype, case):
    xs, dim = case
    xs = [x.astype(dtype) for x in xs]
    torch_parity(lambda *ts: minidl.stack(ts, dim), lambda *ts: torch.stack(ts, dim), *xs)


def test_stack_of_different_shapes_names_them():
    with pytest.raises(ValueError, match=r"stack.*\(2,\).*\(3,\)"):
        minidl.stack([minidl.ones(2), minidl.ones(3)])


# ---------------------------------------------------------------------- split / chunk / unbind


@st.composite
def array_dim_and_split(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3, max_side=5)))
    dim = draw(st.integers(-x.ndim, x.ndim - 1))
    n = x.shape[dim]
    if draw(st.booleans()):
        return x, dim, draw(st.integers(1, n + 1))
    sections, left = [], n
    while left:
        sections.append(draw(st.integers(1, left)))
        left -= sections[-1]
    return x, dim, sections


@given(case=array_dim_and_split(), data=st.data())
def test_split_chunk_unbind_gradcheck(case, data):
    x, dim, sizes = case
    check_grad(lambda t: t.split(sizes, dim), x)
    used = data.draw(st.integers(0, len(minidl.tensor(x).split(sizes, dim)) - 1))
    check_grad(lambda t: t.split(sizes, dim)[used], x)  # unused pieces get zero gradient
    check_grad(lambda t: minidl.chunk(t, 2, dim), x)
    check_grad(lambda t: minidl.unbind(t, dim), x)


@dtypes
@given(case=array_dim_and_split(), chunks=st.integers(1, 6))
def test_split_chunk_unbind_match_torch(torch, dtype, case, chunks):
    x, dim, sizes = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.split(sizes, dim), lambda t: t.split(sizes, dim), x)
    torch_parity(
        lambda t: minidl.split(t, sizes, dim), lambda t: torch.split(t, sizes, dim), x
    )
    torch_parity(lambda t: t.chunk(chunks, dim), lambda t: t.chunk(chunks, dim), x)
    torch_parity(lambda t: t.unbind(dim), lambda t: t.unbind(dim), x)
    torch_parity(lambda t: t.split(sizes, dim)[0], lambda t: t.split(sizes, dim)[0], x)


def test_split_sections_must_add_up():
    with pytest.raises(ValueError, match=r"split.*\[1, 1\].*size 3"):
        minidl.ones(3).split([1, 1])


# ---------------------------------------------------------------------- pad


@st.composite
def pad_case(draw):
    """A mode, an input and a padding PyTorch accepts for that mode."""
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    n_padded = draw(st.integers(1, 2))  # pad the last 1 or 2 dims
    sizes = [draw(st.integers(2, 4)) for _ in range(n_padded)]
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *sizes)
    pad = []
    for size in reversed(sizes):  # torch's order: last dim first
        most = {"reflect": size - 1, "circular": size}.get(mode, 3)
        pad += [draw(st.integers(0, most)), draw(st.integers(0, most))]
    return mode, draw(arrays(shape)), tuple(pad)


@given(case=pad_case())
def test_pad_gradcheck(case):
    mode, x, pad = case
    check_grad(lambda t: minidl.pad(t, pad, mode=mode), x)


@dtypes
@given(case=pad_case(), value=st.sampled_from([0.0, -1.5]))
def test_pad_matches_torch(torch, dtype, case, value):
    functional = pytest.importorskip("torch.nn.functional")
    mode, x, pad = case
    x = x.astype(dtype)
    if mode == "constant":
        torch_parity(
            lambda t: minidl.pad(t, pad, value=value),
            lambda t: functional.pad(t, pad, value=value),
            x,
        )
    else:
        torch_parity(
            lambda t: minidl.pad(t, pad, mode=mode), lambda t: functional.pad(t, pad, mode=mode), x
        )


def test_pad_errors():
    with pytest.raises(ValueError, match="pad"):
        minidl.pad(minidl.ones(2, 3), (1,))
    with pytest.raises(ValueError, match="mode"):
        minidl.pad(minidl.ones(2, 3), (1, 1), mode="mirror")


# ---------------------------------------------------------------------- flip / roll / repeat


@st.composite
def array_and_flip_dims(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3)))
    return x, draw(dims_of(x.ndim))


@given(case=array_and_flip_dims())
def test_flip_gradcheck(case):
    x, dims = case
    check_grad(lambda t: t.flip(dims), x)


@dtypes
@given(case=array_and_flip_dims())
def test_flip_matches_torch(torch, dtype, case):
    x, dims = case
    torch_parity(lambda t: t.flip(dims), lambda t: t.flip(dims), x.astype(dtype))
    torch_parity(
        lambda t: minidl.flip(t, dims[0]), lambda t: torch.flip(t, (dims[0],)), x.astype(dtype)
    )


@st.composite
def array_shifts_dims(draw):
    x = draw(arrays(shapes(min_dims=1, max_dims=3)))
    dims = draw(dims_of(x.ndim))
    shifts = tuple(draw(st.integers(-4, 4)) for _ in dims)
    return x, shifts, dims


@given(case=array_shifts_dims())
def test_roll_gradcheck(case):
    x, shifts, dims = case
    check_grad(lambda t: t.roll(shifts, dims), x)


@dtypes
@given(case=array_shifts_dims())
def test_roll_matches_torch(torch, dtype, case):
    x, shifts, dims = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.roll(shifts, dims), lambda t: t.roll(shifts, dims), x)
    torch_parity(
        lambda t: minidl.roll(t, shifts[0], dims[0]),
        lambda t: torch.roll(t, shifts[0], dims[0]),
        x,
    )


@st.composite
def array_and_repeats(draw):
    x = draw(arrays(shapes(max_dims=3)))
    extra = draw(st.integers(0, 2))
    return x, tuple(draw(st.integers(1, 3)) for _ in range(x.ndim + extra))


@given(case=array_and_repeats())
def test_repeat_tile_gradcheck(case):
    x, reps = case
    check_grad(lambda t: t.repeat(*reps), x)
    check_grad(lambda t: minidl.tile(t, reps[1:]), x)


@dtypes
@given(case=array_and_repeats())
def test_repeat_tile_match_torch(torch, dtype, case):
    x, reps = case
    x = x.astype(dtype)
    torch_parity(lambda t: t.repeat(reps), lambda t: t.repeat(reps), x)
    if reps:
        torch_parity(lambda t: t.repeat(*reps), lambda t: t.repeat(*reps), x)
    torch_parity(lambda t: t.tile(reps[1:]), lambda t: t.tile(reps[1:]), x)


# ---------------------------------------------------------------------- clone


@given(x=arrays(shapes()))
def test_clone_gradcheck(x):
    check_grad(lambda t: t.clone() * 2.0, x)


@dtypes
@given(x=arrays(shapes()))
def test_clone_matches_torch_and_copies(torch, dtype, x):
    x = x.astype(dtype)
    torch_parity(lambda t: t.clone(), lambda t: t.clone(), x)
    t = minidl.tensor(x)
    copy = t.clone()
    assert copy.data is not t.data and not np.shares_memory(copy.data, t.data)
