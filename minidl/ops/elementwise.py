"""Elementwise operations: arithmetic, exp/log family, clipping, comparisons, ``where``.

Each op is a small :class:`~minidl.autograd.Function` (forward on arrays, backward with
the derivative) plus a lowercase function with the docstring.  Binary ops broadcast as
NumPy does; the engine sums gradients back to each input's shape, so backward here may
return gradients of the broadcast shape.
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import Function
from minidl.backend import array_module

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs", "clip",
    "clamp", "maximum", "minimum", "where", "sign", "sin", "cos", "square", "reciprocal",
    "eq", "ne", "lt", "le", "gt", "ge", "logical_not", "isnan", "isfinite",
]


def _check_shapes(op, a, b):
    if a.shape == b.shape or not a.ndim or not b.ndim:  # the common cases, checked cheaply
        return
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast together"
        ) from None


def _promote(a, b):
    """PyTorch-style promotion for int/float mixes: an int array takes the float's dtype.

    NumPy would turn int64 + float32 into float64; PyTorch keeps float32.
    """
    a_float = a.dtype.kind == "f"
    b_float = b.dtype.kind == "f"
    if a_float and not b_float:
        b = b.astype(a.dtype)
    elif b_float and not a_float:
        a = a.astype(b.dtype)
    return a, b


def _float_input(op, x):
    if x.dtype.kind != "f":
        from minidl.tensor import get_default_dtype

        return x.astype(get_default_dtype())
    return x


class Add(Function):
    def forward(self, a, b):
        _check_shapes("add", a, b)
        a, b = _promote(a, b)
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        _check_shapes("sub", a, b)
        a, b = _promote(a, b)
        return a - b

    def backward(self, grad):
        return grad, -grad


class Mul(Function):
    def forward(self, a, b):
        _check_shapes("mul", a, b)
        a, b = _promote(a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, grad):
        ga = grad * self.b if self.needs_input_grad[0] else None
        gb = grad * self.a if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        _check_shapes("div", a, b)
        a, b = _promote(a, b)
        if a.dtype.kind != "f":  # true division, as torch.div
            a = _float_input("div", a)
            b = b.astype(a.dtype)
        self.b = b
        self.out = a / b
        return self.out

    def backward(self, grad):
        ga = grad / self.b if self.needs_input_grad[0] else None
        gb = -grad * self.out / self.b if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class PowScalar(Function):
    """``x ** exponent`` for a constant exponent: d/dx = exponent * x**(exponent-1)."""

    def forward(self, x):
        if x.dtype.kind in "iub" and isinstance(self.exponent, float):
            x = _float_input("pow", x)  # int ** 0.5 is float32 in PyTorch (NumPy: float64)
        self.x = x
        return x**self.exponent

    def backward(self, grad):
        if self.exponent == 0:
            return grad * 0
        return grad * self.exponent * self.x ** (self.exponent - 1)


class RPowScalar(Function):
    """``base ** x`` for a constant base: d/dx = base**x * log(base)."""

    def forward(self, x):
        xp = array_module(x)
        if x.dtype.kind in "iub" and isinstance(self.base, float):
            x = _float_input("pow", x)  # 2.5 ** int_tensor: the base must not be truncated
        self.out = xp.asarray(self.base, dtype=x.dtype) ** x
        return self.out

    def backward(self, grad):
        xp = array_module(grad)
        return grad * self.out * xp.log(xp.asarray(self.base, dtype=grad.dtype))


class Pow(Function):
    """``a ** b`` for two tensors: d/da = b a^(b-1), d/db = a^b log(a)."""

    def forward(self, a, b):
        _check_shapes("pow", a, b)
        a, b = _promote(a, b)
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, grad):
        xp = array_module(grad)
        ga = gb = None
        if self.needs_input_grad[0]:
            # NOTE: where b == 0 the output is the constant 1, so the gradient is 0 (as in
            # PyTorch), even at a == 0 where b * a**(b-1) would be 0 * inf = NaN.
            with np.errstate(divide="ignore", invalid="ignore"):
                ga = grad * self.b * self.a ** (self.b - 1)
            ga = xp.where(self.b == 0, xp.zeros((), dtype=ga.dtype), ga)
        if self.needs_input_grad[1]:
            # NOTE: log(a) is undefined for a <= 0; as in PyTorch, the gradient is 0 where
            # a == 0 and b > 0 (the output is 0 there) and NaN for negative a.
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = xp.where(self.a > 0, xp.log(xp.where(self.a > 0, self.a, 1)), np.nan)
            log_a = xp.where((self.a == 0) & (self.b >= 0), 0, log_a)
            gb = grad * self.out * log_a
        return ga, gb


class Exp(Function):
    def forward(self, x):
        x = _float_input("exp", x)
        self.out = array_module(x).exp(x)
        return self.out

    def backward(self, grad):
        return grad * self.out


class Log(Function):
    def forward(self, x):
        x = _float_input("log", x)
        self.x = x
        return array_module(x).log(x)

    def backward(self, grad):
        return grad / self.x


class Log1p(Function):
    def forward(self, x):
        x = _float_input("log1p", x)
        self.x = x
        return array_module(x).log1p(x)

    def backward(self, grad):
        return grad / (1 + self.x)


class Sqrt(Function):
    def forward(self, x):
        x = _float_input("sqrt", x)
        self.out = array_module(x).sqrt(x)
        return self.out

    def backward(self, grad):
        return grad / (2 * self.out)


class Abs(Function):
    def forward(self, x):
        self.x = x
        return array_module(x).abs(x)

    def backward(self, grad):
        # NOTE: d|x|/dx at 0 is taken as 0 (sign(0) = 0), as in PyTorch.
        return grad * array_module(grad).sign(self.x)


class Sin(Function):
    def forward(self, x):
        self.x = _float_input("sin", x)
        return array_module(x).sin(self.x)

    def backward(self, grad):
        return grad * array_module(grad).cos(self.x)


class Cos(Function):
    def forward(self, x):
        self.x = _float_input("cos", x)
        return array_module(x).cos(self.x)

    def backward(self, grad):
        return -grad * array_module(grad).sin(self.x)


class Clip(Function):
    """Clamp to ``[min, max]``; the gradient passes where the value was inside the range.

    NOTE: at the boundary itself (x == min or x == max) the gradient passes, as in PyTorch.
    """

    def forward(self, x):
        xp = array_module(x)
        self.mask = xp.ones(x.shape, dtype=bool)
        out = x
        if self.min is not None:
            self.mask &= x >= self.min
            out = xp.maximum(out, xp.asarray(self.min, dtype=x.dtype))
        if self.max is not None:
            self.mask &= x <= self.max
            out = xp.minimum(out, xp.asarray(self.max, dtype=x.dtype))
        return out

    def backward(self, grad):
        return grad * self.mask


class Maximum(Function):
    """Elementwise max; NOTE: on ties the gradient is split evenly, as in PyTorch."""

    def forward(self, a, b):
        _check_shapes("maximum", a, b)
        a, b = _promote(a, b)
        xp = array_module(a)
        self.a_wins = (a > b).astype(a.dtype) + 0.5 * (a == b)
        return xp.maximum(a, b)

    def backward(self, grad):
        return grad * self.a_wins, grad * (1 - self.a_wins)


class Minimum(Function):
    """Elementwise min; NOTE: on ties the gradient is split evenly, as in PyTorch."""

    def forward(self, a, b):
        _check_shapes("minimum", a, b)
        a, b = _promote(a, b)
        xp = array_module(a)
        self.a_wins = (a < b).astype(a.dtype) + 0.5 * (a == b)
        return xp.minimum(a, b)

    def backward(self, grad):
        return grad * self.a_wins, grad * (1 - self.a_wins)


class Where(Function):
    """``condition ? a : b``; the condition is a constant boolean array."""

    def forward(self, a, b):
        _check_shapes("where", a, b)
        a, b = _promote(a, b)
        return array_module(a).where(self.condition, a, b)

    def backward(self, grad):
        xp = array_module(grad)
        zero = xp.zeros((), dtype=grad.dtype)
        ga = xp.where(self.condition, grad, zero) if self.needs_input_grad[0] else None
        gb = xp.where(self.condition, zero, grad) if self.needs_input_grad[1] else None
        return ga, gb


class _Compare(Function):
    differentiable = False

    def forward(self, a, b):
        _check_shapes(self.name, a, b)
        # the same ufunc from the operands' module (cupy.equal for CUDA arrays)
        return getattr(array_module(a, b), self.ufunc.__name__)(a, b)


def _compare(name, ufunc):
    cls = type(name.capitalize(), (_Compare,), {"name": name, "ufunc": staticmethod(ufunc)})

    def fn(a, b):
        return cls.apply(a, b)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}`` comparison; returns a bool tensor (no gradient)."
    return fn


eq = _compare("eq", np.equal)
ne = _compare("ne", np.not_equal)
lt = _compare("lt", np.less)
le = _compare("le", np.less_equal)
gt = _compare("gt", np.greater)
ge = _compare("ge", np.greater_equal)


class _Unary(Function):
    differentiable = False

    def forward(self, x):
        return getattr(array_module(x), self.name)(x)


def _nondiff_unary(name, np_name):
    cls = type(name, (_Unary,), {"name": np_name})

    def fn(x):
        return cls.apply(x)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{np_name}`` (no gradient)."
    return fn


logical_not = _nondiff_unary("logical_not", "logical_not")
isnan = _nondiff_unary("isnan", "isnan")
isfinite = _nondiff_unary("isfinite", "isfinite")
sign = _nondiff_unary("sign", "sign")

# ------------------------------------------------------------------ public functions


def add(a, b, alpha=1):
    r"""Elementwise sum with broadcasting: :math:`a + \alpha b`.

    :math:`\partial/\partial a = 1`, :math:`\partial/\partial b = \alpha`, summed over
    broadcast dimensions.
    """
    if alpha != 1:
        b = mul(b, alpha)
    return Add.apply(a, b)


def sub(a, b, alpha=1):
    r"""Elementwise difference :math:`a - \alpha b` with broadcasting."""
    if alpha != 1:
        b = mul(b, alpha)
    return Sub.apply(a, b)


def mul(a, b):
    r"""Elementwise product: :math:`\partial(ab)/\partial a = b`,
    :math:`\partial(ab)/\partial b = a`."""
    return Mul.apply(a, b)


def div(a, b):
    r"""True division :math:`a / b`: :math:`\partial/\partial a = 1/b`,
    :math:`\partial/\partial b = -a/b^2`."""
    return Div.apply(a, b)


def neg(x):
    """:math:`-x`."""
    return Neg.apply(x)


def pow(x, exponent):
    r"""Power :math:`x^p`. A Python number exponent uses :math:`p\,x^{p-1}` only; a tensor
    exponent also gets :math:`x^p \log x`."""
    from minidl.tensor import Tensor

    if isinstance(exponent, Tensor):
        if isinstance(x, Tensor):
            return Pow.apply(x, exponent)
        return RPowScalar.apply(exponent, base=x)
    return PowScalar.apply(x, exponent=exponent)


def square(x):
    """:math:`x^2`."""
    return PowScalar.apply(x, exponent=2)


def reciprocal(x):
    """:math:`1/x`."""
    return PowScalar.apply(x, exponent=-1)


def exp(x):
    r""":math:`e^x`; derivative :math:`e^x` (the output is saved, not the input)."""
    return Exp.apply(x)


def log(x):
    r"""Natural logarithm; derivative :math:`1/x`."""
    return Log.apply(x)


def log1p(x):
    r""":math:`\log(1 + x)`, accurate for small x; derivative :math:`1/(1+x)`."""
    return Log1p.apply(x)


def sqrt(x):
    r""":math:`\sqrt{x}`; derivative :math:`1/(2\sqrt{x})`."""
    return Sqrt.apply(x)


def abs(x):
    """:math:`|x|`; derivative sign(x), taken as 0 at x = 0."""
    return Abs.apply(x)


def sin(x):
    """Sine; derivative cos(x)."""
    return Sin.apply(x)


def cos(x):
    """Cosine; derivative -sin(x)."""
    return Cos.apply(x)


def clip(x, min=None, max=None):
    """Clamp every element to ``[min, max]`` (either may be None).

    The gradient is 1 inside the range (boundaries included) and 0 outside.

    Examples
    --------
    >>> import minidl
    >>> minidl.clamp(minidl.tensor([-2.0, 0.5, 3.0]), min=0.0, max=1.0).tolist()
    [0.0, 0.5, 1.0]
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clip.apply(x, min=min, max=max)


clamp = clip


def maximum(a, b):
    """Elementwise maximum of two tensors (ties split the gradient evenly)."""
    return Maximum.apply(a, b)


def minimum(a, b):
    """Elementwise minimum of two tensors (ties split the gradient evenly)."""
    return Minimum.apply(a, b)


def where(condition, a, b):
    """Pick ``a`` where ``condition`` is true, else ``b`` (broadcasting all three).

    The gradient of ``a`` is the incoming gradient where the condition holds, 0 elsewhere;
    ``b`` gets the rest. ``condition`` is not differentiated.
    """
    from minidl.tensor import Tensor

    cond = condition.data if isinstance(condition, Tensor) else condition
    xp = array_module(cond) if not isinstance(cond, (bool, list)) else np
    cond = xp.asarray(cond, dtype=bool)
    return Where.apply(a, b, condition=cond)
