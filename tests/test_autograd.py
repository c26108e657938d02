"""Autograd semantics: the graph walk, accumulation, grad modes, leaves, hooks, Functions.

Where PyTorch defines the behaviour, the same snippet runs with ``lib = minidl`` and
``lib = torch`` and the results are compared; otherwise the expected numbers are worked
out by hand in the test.
"""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.autograd import Function


def _run_both(torch, snippet):
    """``snippet(lib)`` for minidl and torch; returns both results (nested lists/values)."""
    return snippet(minidl), snippet(torch)


# ---------------------------------------------------------------------- the graph walk


def test_backward_through_a_50000_op_chain_is_iterative():
    x = minidl.tensor([1.0], dtype=minidl.float64, requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.00001
    y.sum().backward()  # a recursive walk would hit Python's recursion limit here
    np.testing.assert_allclose(x.grad.numpy(), [1.00001**50_000], rtol=1e-9)


def test_a_deep_graph_can_be_dropped_without_backward():
    x = minidl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y + 1.0
    del y  # freeing a long chain of nodes must not overflow the C stack
    assert x.grad is None


def test_diamond_graph_waits_for_all_consumers(torch):
    """b feeds c and d, both feed e: b's gradient is the sum of both paths."""

    def snippet(lib):
        a = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
        b = a.exp()
        c, d = b * 2.0, b.sin()
        e = (c * d + c.log()).sum()
        e.backward()
        return a.grad.tolist()

    mine, theirs = _run_both(torch, snippet)
    np.testing.assert_allclose(mine, theirs, rtol=1e-6)


def test_gradients_accumulate_over_two_backward_calls():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2 * 1.0, 3 + 2 * 2.0])


def test_a_tensor_used_twice_accumulates():
    x = minidl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])
    x.grad = None
    y = x * 2
    (y * x + y).sum().backward()  # d/dx (2x^2 + 2x) = 4x + 2
    np.testing.assert_allclose(x.grad.numpy(), [6.0, -6.0, 14.0])


def test_broadcasting_is_undone_in_gradients():
    w = minidl.ones(2, 3, requires_grad=True)
    b = minidl.ones(3, requires_grad=True)
    c = minidl.ones(2, 1, requires_grad=True)
    s = minidl.tensor(2.0, requires_grad=True)
    (w * b + c * s).sum().backward()
    assert b.grad.shape == (3,) and c.grad.shape == (2, 1) and s.grad.shape == ()
    np.testing.assert_allclose(b.grad.numpy(), [2.0, 2.0, 2.0])  # summed over 2 rows
    np.testing.assert_allclose(c.grad.numpy(), [[6.0], [6.0]])  # s * 3 columns
    np.testing.assert_allclose(s.grad.numpy(), 6.0)  # sum of c over 2 x 3


def test_retain_graph_allows_a_second_backward_with_doubled_grads():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    np.testing.assert_allclose(first, np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])), rtol=1e-6)


def test_backward_twice_without_retain_graph_raises_a_clear_error():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_graph_is_freed_after_backward():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert not hasattr(node, "out") and not hasattr(node, "inputs")


def test_backward_on_non_scalar_needs_a_gradient():
    y = minidl.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()


def test_backward_with_explicit_gradient(torch):
    def snippet(lib):
        x = lib.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
        y = x * x
        y.backward(lib.tensor([[1.0, 0.0], [0.5, -1.0]]))
        return x.grad.tolist()

    mine, theirs = _run_both(torch, snippet)
    assert mine == theirs == [[2.0, 0.0], [3.0, -8.0]]


def test_backward_gradient_of_wrong_shape_raises():
    y = minidl.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2, 3\)"):
        y.backward(minidl.ones(3))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.ones(1).sum().backward()


# ---------------------------------------------------------------------- grad modes


def test_no_grad_context():
    x = minidl.ones(3, requires_grad=True)
    with minidl.no_grad():
        y = x * 2
        assert not minidl.is_grad_enabled()
    assert minidl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_no_grad_decorator():
    x = minidl.ones(3, requires_grad=True)

    @minidl.no_grad()
    def double(t):
        return t * 2

    assert not double(x).requires_grad
    assert minidl.is_grad_enabled()
    assert (x * 2).requires_grad


def test_enable_grad_inside_no_grad():
    x = minidl.ones(3, requires_grad=True)
    with minidl.no_grad():
        with minidl.enable_grad():
            y = x * 2
        z = x * 2
    assert y.requires_grad and not z.requires_grad

    @minidl.enable_grad()
    def double(t):
        return t * 2

    with minidl.no_grad():
        assert double(x).requires_grad


def test_set_grad_enabled_as_function_and_context():
    x = minidl.ones(3, requires_grad=True)
    minidl.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    minidl.set_grad_enabled(True)
    assert (x * 2).requires_grad
    with minidl.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert minidl.is_grad_enabled()
    with minidl.no_grad():
        with minidl.set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not minidl.is_grad_enabled()


def test_no_grad_state_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with minidl.no_grad():
            raise ValueError("boom")
    assert minidl.is_grad_enabled()


def test_no_grad_decorator_on_a_recursive_function_restores_grad_mode(torch):
    def snippet(lib):
        @lib.no_grad()
        def countdown(n):
            return countdown(n - 1) if n else lib.is_grad_enabled()

        inside = countdown(2)
        return inside, lib.is_grad_enabled()

    mine, theirs = _run_both(torch, snippet)
    assert theirs == (False, True)
    assert mine == theirs


def test_set_grad_enabled_as_decorator_like_torch(torch):
    def snippet(lib):
        @lib.set_grad_enabled(False)
        def inside():
            return lib.is_grad_enabled()

        after_decorating = lib.is_grad_enabled()
        during = inside()
        after_call = lib.is_grad_enabled()
        lib.set_grad_enabled(True)
        return after_decorating, during, after_call

    mine, theirs = _run_both(torch, snippet)
    assert theirs == (True, False, True)
    assert mine == theirs


def test_no_grad_decorator_without_parentheses_like_torch():
    @minidl.no_grad
    def inside():
        return minidl.is_grad_enabled()

    assert inside() is False
    assert minidl.is_grad_enabled()


# ---------------------------------------------------------------------- detach / leaves


def test_detach_shares_data_and_cuts_the_graph():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.data is y.data or np.shares_memory(d.data, y.data)
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    (d * x).sum().backward()  # only the path through x itself
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    d.data[0] = 10.0
    assert y.data[0] == 10.0


def test_requires_grad_underscore():
    x = minidl.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad


def test_leaf_and_non_leaf_semantics_match_torch(torch):
    def snippet(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = lib.tensor([3.0, 4.0])
        c = a * b
        d = b * 2
        e = c.sum()
        e.backward()
        return [
            a.is_leaf, b.is_leaf, c.is_leaf, d.is_leaf, e.is_leaf,
            a.requires_grad, b.requires_grad, c.requires_grad, d.requires_grad,
            c.grad is None, b.grad is None, a.grad.tolist(),
            c.grad_fn is not None, d.grad_fn is None,
        ]

    with pytest.warns(UserWarning):  # torch warns about reading .grad of a non-leaf
        mine, theirs = _run_both(torch, snippet)
    assert mine == theirs


def test_retain_grad_keeps_non_leaf_grad(torch):
    def snippet(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        c = a * 3
        c.retain_grad()
        (c * c).sum().backward()
        return c.grad.tolist(), a.grad.tolist()

    mine, theirs = _run_both(torch, snippet)
    assert mine == theirs == ([6.0, 12.0], [18.0, 36.0])


def test_setting_requires_grad_false_on_non_leaf_raises():
    y = minidl.ones(2, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False


def test_ints_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        minidl.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        minidl.tensor([1, 2]).requires_grad_()
    with pytest.raises(TypeError, match="floating-point"):
        minidl.zeros(2, dtype=minidl.int64, requires_grad=True)


def test_integer_outputs_do_not_require_grad_like_torch():
    x = minidl.randn(3, 4, requires_grad=True)
    values, indices = x.max(dim=1)
    assert values.requires_grad
    assert not indices.requires_grad and indices.grad_fn is None and indices.is_leaf
    assert indices.numpy().dtype == np.int64


# ---------------------------------------------------------------------- hooks


def test_hooks_see_total_gradient_like_torch(torch):
    def snippet(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        leaf_seen, inner_seen = [], []
        x.register_hook(lambda g: leaf_seen.append(g.tolist()))
        y = x * 3
        y.register_hook(lambda g: inner_seen.append(g.tolist()))
        (y * y + y).sum().backward()  # y is used twice: the hook sees the sum, once
        return leaf_seen, inner_seen, x.grad.tolist()

    mine, theirs = _run_both(torch, snippet)
    assert mine == theirs == ([[21.0, 39.0]], [[7.0, 13.0]], [21.0, 39.0])


def test_hooks_can_replace_the_gradient_and_be_removed(torch):
    def snippet(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 3
        y.register_hook(lambda g: g * 0 + 1)  # non-leaf: changes what flows on to x
        (y * y).sum().backward()
        replaced_inner = x.grad.tolist()

        x = lib.tensor([1.0, 2.0], requires_grad=True)
        handle = x.register_hook(lambda g: g * 10)  # leaf: changes what is accumulated
        (x * x).sum().backward()
        replaced_leaf = x.grad.tolist()
        handle.remove()
        x.grad = None
        (x * x).sum().backward()
        return replaced_inner, replaced_leaf, x.grad.tolist()

    mine, theirs = _run_both(torch, snippet)
    assert mine == theirs == ([3.0, 3.0], [20.0, 40.0], [2.0, 4.0])


def test_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="hook"):
        minidl.ones(2).register_hook(lambda g: g)


# ---------------------------------------------------------------------- custom Functions


class _ScaleAndShift(Function):
    """y = a * x + b with a broadcast (1,) bias: backward returns the broadcast shape."""

    def forward(self, x, bias):
        self.x_shape = x.shape
        return self.scale * x + bias

    def backward(self, grad):
        bias_grad = grad if self.needs_input_grad[1] else None  # engine sums it to (1,)
        return grad * self.scale, bias_grad


class _SplitHalves(Function):
    """Two outputs from one node."""

    def forward(self, x):
        half = x.shape[0] // 2
        return x[:half] * 2, x[half:] * 3

    def backward(self, grad_first, grad_second):
        return np.concatenate([grad_first * 2, grad_second * 3])


def test_custom_function_params_broadcast_grad_and_needs_input_grad():
    x = minidl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    bias = minidl.tensor([0.5], requires_grad=True)
    y = _ScaleAndShift.apply(x, bias, scale=3.0)
    assert y.grad_fn.scale == 3.0 and y.grad_fn.needs_input_grad == (True, True)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 2), 3.0))
    np.testing.assert_allclose(bias.grad.numpy(), [4.0])
    frozen = minidl.tensor([0.5])
    assert _ScaleAndShift.apply(x, frozen, scale=1.0).grad_fn.needs_input_grad == (True, False)


def test_custom_function_with_two_outputs_and_one_unused():
    x = minidl.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    first, second = _SplitHalves.apply(x)
    np.testing.assert_allclose(second.detach().numpy(), [9.0, 12.0])
    second.sum().backward()  # the unused output contributes a zero gradient
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 3.0, 3.0])


def test_custom_function_returning_wrong_number_of_grads_is_reported():
    class Bad(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return grad

    y = Bad.apply(minidl.ones(2, requires_grad=True), minidl.ones(2, requires_grad=True))
    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradients for 2 inputs"):
        y.sum().backward()


def test_function_under_no_grad_records_nothing():
    x = minidl.ones(2, requires_grad=True)
    with minidl.no_grad():
        y = _ScaleAndShift.apply(x, minidl.ones(1), scale=2.0)
    assert y.grad_fn is None and not y.requires_grad


# ---------------------------------------------------------------------- dtypes through a graph


def test_float64_stays_float64_through_a_whole_graph():
    x = minidl.randn(4, 3, dtype=minidl.float64, requires_grad=True)
    w = minidl.randn(3, 2, dtype=minidl.float64, requires_grad=True)
    hidden = (x @ w).exp().log1p() * 0.5 + 1  # Python numbers must not downcast
    out = hidden.reshape(-1)[::2].max() + hidden.mean(0).sum() + hidden.var()
    for t in (hidden, out):
        assert t.dtype == np.float64
    out.backward()
    assert x.grad.dtype == np.float64 and w.grad.dtype == np.float64


def test_float32_leaf_gets_float32_grad_from_a_float64_graph():
    x = minidl.ones(3, requires_grad=True)
    y = x * minidl.ones(3, dtype=minidl.float64)
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
