"""minidl.gradcheck itself: it must pass correct backwards and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.autograd import Function


class Cube(Function):
    """x**3 with the right derivative 3x**2."""

    def forward(self, x):
        self.x = x
        return x**3

    def backward(self, grad):
        return grad * 3 * self.x**2


class CubeWrongAtOneElement(Cube):
    """The derivative is off by 1 at flat position 5 only: gradcheck must point there."""

    def backward(self, grad):
        result = super().backward(grad).copy()
        result.reshape(-1)[5] += 1.0
        return result


class WeightedSum(Function):
    """out = sum(x * w) over the last axis; gradients for both inputs."""

    def forward(self, x, w):
        self.x, self.w = x, w
        return (x * w).sum(axis=-1)

    def backward(self, grad):
        g = grad[..., None]
        return g * self.w, g * self.x


class ForgetsSecondInput(WeightedSum):
    def backward(self, grad):
        return grad[..., None] * self.w, None


def _float64(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return minidl.tensor(rng.uniform(-2, 2, size=shape), requires_grad=True)


def test_passes_on_correct_functions():
    assert minidl.gradcheck(Cube.apply, [_float64(3, 4)])
    assert minidl.gradcheck(WeightedSum.apply, [_float64(2, 3), _float64(3, seed=1)])
    assert minidl.gradcheck(lambda x: (x.exp() * x).sum(dim=1), [_float64(2, 5)])


def test_fails_on_a_wrong_backward_naming_the_worst_element():
    x = _float64(3, 4)
    with pytest.raises(minidl.GradcheckError) as info:
        minidl.gradcheck(CubeWrongAtOneElement.apply, [x])
    message = str(info.value)
    # flat position 5 of a (3, 4) array is element (1, 1)
    assert "input 0" in message and "(3, 4)" in message
    assert "worst element (1, 1)" in message
    assert "analytic" in message and "numerical" in message


def test_fails_when_a_gradient_is_missing():
    x, w = _float64(2, 3), _float64(3, seed=1)
    with pytest.raises(minidl.GradcheckError, match="input 1"):
        minidl.gradcheck(ForgetsSecondInput.apply, [x, w])


def test_can_return_false_instead_of_raising():
    ok = minidl.gradcheck(CubeWrongAtOneElement.apply, [_float64(3, 4)], raise_exception=False)
    assert ok is False


def test_rejects_float32_inputs():
    x = minidl.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="float32.*float64"):
        minidl.gradcheck(Cube.apply, [x])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        minidl.gradcheck(Cube.apply, [minidl.ones(2, dtype=minidl.float64)])


def test_only_inputs_requiring_grad_are_checked():
    x = _float64(2, 3)
    w = minidl.tensor(np.ones(3))  # a constant: its (absent) gradient is not checked
    assert minidl.gradcheck(ForgetsSecondInput.apply, [x, w])


def test_several_outputs_and_integer_outputs():
    x = _float64(3, 4)
    assert minidl.gradcheck(lambda t: t.max(dim=1), [x])  # values checked, indices ignored
    assert minidl.gradcheck(lambda t: (t.sin(), t * 2), [x])


def test_zero_dim_input():
    assert minidl.gradcheck(lambda t: t * t * t, [_float64()])


def test_works_on_non_contiguous_inputs():
    # a transposed view: perturbing its elements must reach the values fn reads
    base = np.random.default_rng(0).uniform(-2, 2, size=(3, 2))
    x = minidl.from_numpy(base.T)
    x.requires_grad = True
    assert minidl.gradcheck(lambda t: t * t, [x])


def test_leaves_inputs_unchanged():
    x = _float64(2, 3)
    before = x.data.copy()
    minidl.gradcheck(Cube.apply, [x])
    np.testing.assert_array_equal(x.data, before)
