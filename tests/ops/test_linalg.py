"""Matrix products: gradients (float64 central differences) and parity with PyTorch.

Shapes come from NumPy's gufunc signature of matmul, ``(n?,k),(k,m?)->(n?,m?)``: 1-D
operands (the optional dims), plain matrices, batches and broadcast batch dimensions.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import FLOAT_DTYPES, arrays, check_grad, seeded_array, torch_parity

import minidl

_MATMUL_SHAPES = hnp.mutually_broadcastable_shapes(
    signature=np.matmul.signature, max_dims=2, max_side=3
).map(lambda result: result.input_shapes)


@st.composite
def matmul_operands(draw):
    shape_a, shape_b = draw(_MATMUL_SHAPES)
    return draw(arrays(shape_a)), draw(arrays(shape_b))


@given(operands=matmul_operands())
def test_matmul_gradcheck(operands):
    a, b = operands
    check_grad(minidl.matmul, a, b)
    check_grad(lambda x, y: x @ y, a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@given(operands=matmul_operands())
def test_matmul_matches_torch(torch, dtype, operands):
    a, b = (x.astype(dtype) for x in operands)
    torch_parity(minidl.matmul, torch.matmul, a, b)
    torch_parity(lambda x, y: x @ y, lambda x, y: x @ y, a, b)
    torch_parity(lambda x, y: x.matmul(y), lambda x, y: x.matmul(y), a, b)


# explicit cases, so each of torch.matmul's rules is named in the test report
_CASES = {
    "1-D @ 1-D": ((3,), (3,)),
    "1-D @ 2-D": ((3,), (3, 4)),
    "2-D @ 1-D": ((2, 3), (3,)),
    "2-D @ 2-D": ((2, 3), (3, 4)),
    "batched @ batched": ((5, 2, 3), (5, 3, 4)),
    "batched @ 2-D": ((5, 2, 3), (3, 4)),
    "2-D @ batched": ((2, 3), (5, 3, 4)),
    "1-D @ batched": ((3,), (5, 3, 4)),
    "batched @ 1-D": ((5, 2, 3), (3,)),
    "broadcast batch dims": ((2, 1, 2, 3), (4, 3, 5)),
    "size-1 inner dim": ((4, 1), (1, 3)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", sorted(_CASES))
def test_matmul_rules_match_torch(torch, case, dtype):
    shape_a, shape_b = _CASES[case]
    a = seeded_array(shape_a, dtype, seed=1)
    b = seeded_array(shape_b, dtype, seed=2)
    torch_parity(minidl.matmul, torch.matmul, a, b)
    if dtype == np.float64:
        check_grad(minidl.matmul, a, b)


def test_matmul_float32_larger_matrices_match_torch(torch):
    a = seeded_array((16, 64, 32), np.float32, seed=3)
    b = seeded_array((32, 48), np.float32, seed=4)
    torch_parity(minidl.matmul, torch.matmul, a, b, atol=1e-4, rtol=1e-5)


def test_mm_bmm_dot_outer_match_torch(torch):
    m1, m2 = seeded_array((2, 3), seed=1), seeded_array((3, 4), seed=2)
    b1, b2 = seeded_array((5, 2, 3), seed=3), seeded_array((5, 3, 4), seed=4)
    v1, v2 = seeded_array((3,), seed=5), seeded_array((3,), seed=6)
    torch_parity(minidl.mm, torch.mm, m1, m2)
    torch_parity(lambda x, y: x.mm(y), lambda x, y: x.mm(y), m1, m2)
    torch_parity(minidl.bmm, torch.bmm, b1, b2)
    torch_parity(minidl.dot, torch.dot, v1, v2)
    torch_parity(minidl.outer, torch.outer, v1, seeded_array((4,), seed=7))
    check_grad(minidl.outer, v1, v2)


def test_matmul_of_integers_matches_torch(torch):
    a = np.arange(6).reshape(2, 3)
    b = np.arange(12).reshape(3, 4)
    torch_parity(minidl.matmul, torch.matmul, a, b)


def test_matmul_mismatch_message_names_both_shapes():
    with pytest.raises(ValueError) as info:
        minidl.ones(2, 3) @ minidl.ones(4, 5)
    message = str(info.value)
    assert "matmul" in message and "(2, 3)" in message and "(4, 5)" in message


def test_matmul_mismatched_batch_dims_raise():
    with pytest.raises(ValueError):
        minidl.ones(2, 2, 3) @ minidl.ones(3, 3, 4)


def test_matmul_of_a_scalar_raises():
    with pytest.raises(RuntimeError, match="matmul"):
        minidl.tensor(2.0) @ minidl.ones(3)


def test_matmul_of_mixed_dtypes_raises_like_torch(torch):
    a64, b32 = minidl.ones(2, 3, dtype=minidl.float64), minidl.ones(3, 4)
    with pytest.raises(TypeError, match=r"matmul.*float64.*float32"):
        a64 @ b32
    with pytest.raises(RuntimeError):
        torch.ones(2, 3, dtype=torch.float64) @ torch.ones(3, 4)


@pytest.mark.parametrize(
    "name, shapes",
    [("mm", ((2, 3, 4), (4, 5))), ("bmm", ((2, 3, 4), (3, 4, 5))), ("dot", ((2, 3), (3,)))],
)
def test_mm_bmm_dot_check_dimensions(name, shapes):
    a, b = (minidl.ones(*s) for s in shapes)
    with pytest.raises(ValueError, match=name):
        getattr(minidl, name)(a, b)
