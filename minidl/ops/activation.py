"""Activation functions: relu and its relatives, sigmoid/tanh, softplus, GELU, softmax.

Each op is a small :class:`~minidl.autograd.Function` with a hand-written backward (these
are the primitives, or the backward is written out for numerical stability) plus a
lowercase public function that carries the maths.  SiLU, ReLU6 and Hardtanh's relatives
are compositions or parameterisations of the others.

All of them need a floating-point input: an integer tensor raises a ``TypeError`` that
names the op and the dtype (PyTorch computes ``relu`` on integers; minidl refuses, because
an integer activation is almost always a bug in the caller's data pipeline).

PyTorch 2.13 is the reference: values, gradients (including the conventions at kinks,
marked ``NOTE``) and the handling of extreme inputs were compared against it.
"""

from __future__ import annotations

import math

import numpy as np

from minidl.autograd import Function
from minidl.backend import array_module

__all__ = [
    "relu",
    "relu6",
    "hardtanh",
    "leaky_relu",
    "elu",
    "gelu",
    "erf",
    "sigmoid",
    "logsigmoid",
    "tanh",
    "softplus",
    "silu",
    "softmax",
    "log_softmax",
]


# ----------------------------------------------------------------------------- helpers


def _as_float_tensor(op, x):
    """Return ``x`` as a Tensor, refusing integer and boolean dtypes with a clear error."""
    from minidl.tensor import Tensor

    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got {x.dtype}")
    return x


def _stable_sigmoid(x):
    """:math:`1/(1+e^{-x})` without overflow: only ever exponentiate :math:`-|x|`.

    For x >= 0 use :math:`1/(1+e^{-x})`; for x < 0 the equal form :math:`e^{x}/(1+e^{x})`.
    Both are computed from ``e = exp(-|x|)``, which lies in (0, 1], so nothing overflows.
    """
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    one = x.dtype.type(1)
    return xp.where(x >= 0, one / (one + e), e / (one + e))


def _softplus_stable(z):
    r""":math:`\log(1+e^{z}) = \max(z,0) + \log(1+e^{-|z|})`, which never overflows."""
    xp = array_module(z)
    return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))


def _resolve_softmax_dim(op, dim, ndim):
    if dim is None:
        # NOTE: PyTorch picks an implicit dim (0 for 0-, 1- and 3-d inputs, else 1) with a
        # deprecation warning.  That silent choice is a classic bug (a 3-d batch normalised
        # over the batch axis), so minidl asks for dim instead.
        raise TypeError(f"{op}: dim is required, e.g. {op}(x, dim=-1)")
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions "
            f"(expected {-size}..{size - 1})"
        )
    # a 0-d tensor is treated as one element: reduce over everything
    return None if ndim == 0 else int(dim) % ndim


# ----------------------------------------------------------------------------- erf


# W. J. Cody, "Rational Chebyshev approximations for the error function",
# Mathematics of Computation 23 (1969) 631-637; the coefficient sets of Netlib's
# SPECFUN CALERF.  Relative error below 1e-16 in float64 on each interval.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1


def _erf_array(x):
    r"""The error function :math:`\operatorname{erf}(x) = \frac{2}{\sqrt\pi}\int_0^x e^{-t^2}dt`
    of an array, in float64, with NumPy (or CuPy) operations only.

    NumPy has no ``erf``.  ``math.erf`` is exact but runs one Python call per element, so
    this evaluates Cody's rational approximations instead, vectorised over the array:

    - :math:`|x| \le 0.46875`: :math:`\operatorname{erf}(x) = x\,A(x^2)/B(x^2)`;
    - :math:`0.46875 < |x| \le 4`: :math:`\operatorname{erfc}(|x|) = e^{-x^2} C(|x|)/D(|x|)`;
    - :math:`|x| > 4`: :math:`\operatorname{erfc}(|x|) = \frac{e^{-x^2}}{|x|}
      \left(\frac{1}{\sqrt\pi} - \frac{1}{x^2} P(x^{-2})/Q(x^{-2})\right)`,

    then :math:`\operatorname{erf}(x) = \operatorname{sign}(x)(1 - \operatorname{erfc}(|x|))`.
    The tests compare it with ``math.erf`` to 1e-15.
    """
    xp = array_module(x)
    x = xp.asarray(x, dtype=np.float64)
    y = xp.abs(x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # interval 1: |x| <= 0.46875
        z = y * y
        num = _ERF_A[4] * z
        den = z
        for i in range(3):
            num = (num + _ERF_A[i]) * z
            den = (den + _ERF_B[i]) * z
        erf_small = x * (num + _ERF_A[3]) / (den + _ERF_B[3])

        # Cody splits x^2 = ysq^2 + (y - ysq)(y + ysq) with ysq = y rounded down to 1/16,
        # so exp(-x^2) keeps full relative precision when x^2 is large.
        ysq = xp.trunc(y * 16.0) / 16.0
        exp_neg_sq = xp.exp(-ysq * ysq) * xp.exp(-(y - ysq) * (y + ysq))

        # interval 2: 0.46875 < |x| <= 4
        num = _ERF_C[8] * y
        den = y
        for i in range(7):
            num = (num + _ERF_C[i]) * y
            den = (den + _ERF_D[i]) * y
        erfc_mid = exp_neg_sq * (num + _ERF_C[7]) / (den + _ERF_D[7])

        # interval 3: |x| > 4 (erfc underflows to 0 past |x| ~ 26.5, which is right)
        z = 1.0 / (y * y)
        num = _ERF_P[5] * z
        den = z
        for i in range(4):
            num = (num + _ERF_P[i]) * z
            den = (den + _ERF_Q[i]) * z
        tail = z * (num + _ERF_P[4]) / (den + _ERF_Q[4])
        erfc_large = exp_neg_sq * (_ONE_OVER_SQRT_PI - tail) / y
        erfc_large = xp.where(y > 26.6, 0.0, erfc_large)  # also covers y = inf

        erfc_abs = xp.where(y <= 4.0, erfc_mid, erfc_large)
        erf_big = xp.sign(x) * (1.0 - erfc_abs)
    return xp.where(y <= 0.46875, erf_small, erf_big)


def erf(x):
    r"""The error function, elementwise: :math:`\frac{2}{\sqrt\pi}\int_0^x e^{-t^2}\,dt`.

    Computed in float64 by Cody's rational Chebyshev approximations (accurate to about
    one unit in the last place) and cast back to the input's dtype.  The derivative is
    :math:`\frac{2}{\sqrt\pi} e^{-x^2}`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import erf
    >>> round(erf(minidl.tensor([1.0], dtype="float64")).item(), 12)
    0.84270079295
    """
    x = _as_float_tensor("erf", x)
    return Erf.apply(x)


class Erf(Function):
    def forward(self, x):
        self.x = x
        return _erf_array(x).astype(x.dtype, copy=False)

    def backward(self, grad):
        xp = array_module(grad)
        return grad * (2.0 / math.sqrt(math.pi)) * xp.exp(-(self.x * self.x))


# ----------------------------------------------------------------------------- relu family


class ReLU(Function):
    def forward(self, x):
        xp = array_module(x)
        # NOTE: relu'(0) = 0, as in PyTorch: the gradient passes only where x > 0.
        self.positive = x > 0
        # maximum (not where) keeps NaN as NaN, as PyTorch does
        return xp.maximum(x, x.dtype.type(0))

    def backward(self, grad):
        return grad * self.positive


def relu(x):
    r"""Rectified linear unit, :math:`\max(x, 0)`.

    .. math:: \mathrm{relu}'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}

    The derivative at the kink x = 0 is taken as 0, as in PyTorch.

    Parameters
    ----------
    x : Tensor
        Floating-point input of any shape.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import relu
    >>> relu(minidl.tensor([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """
    x = _as_float_tensor("relu", x)
    return ReLU.apply(x)


class Hardtanh(Function):
    def forward(self, x):
        xp = array_module(x)
        # NOTE: the gradient is 0 at the boundaries themselves (x == min_val or max_val),
        # as in PyTorch's hardtanh (so relu6'(0) = relu6'(6) = 0).  clamp differs: there
        # the gradient passes at the boundary.
        self.inside = (x > self.min_val) & (x < self.max_val)
        return xp.clip(x, x.dtype.type(self.min_val), x.dtype.type(self.max_val))

    def backward(self, grad):
        return grad * self.inside


def hardtanh(x, min_val=-1.0, max_val=1.0):
    r"""Clamp to :math:`[\text{min\_val}, \text{max\_val}]`, PyTorch's ``hardtanh``.

    .. math:: \mathrm{hardtanh}(x) = \min(\max(x, a), b), \qquad
              \mathrm{hardtanh}'(x) = \begin{cases} 1 & a < x < b \\ 0 & \text{else}
              \end{cases}

    Unlike ``clamp``, the gradient at the boundaries is 0 (PyTorch's convention).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import hardtanh
    >>> hardtanh(minidl.tensor([-3.0, 0.5, 3.0])).tolist()
    [-1.0, 0.5, 1.0]
    """
    x = _as_float_tensor("hardtanh", x)
    if min_val > max_val:
        raise ValueError(
            f"hardtanh: min_val ({min_val}) must not be greater than max_val ({max_val})"
        )
    return Hardtanh.apply(x, min_val=float(min_val), max_val=float(max_val))


def relu6(x):
    r""":math:`\min(\max(x, 0), 6)`: ``hardtanh(x, 0, 6)``, with gradient 0 at 0 and 6.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import relu6
    >>> relu6(minidl.tensor([-1.0, 3.0, 9.0])).tolist()
    [0.0, 3.0, 6.0]
    """
    x = _as_float_tensor("relu6", x)
    return Hardtanh.apply(x, min_val=0.0, max_val=6.0)


class LeakyReLU(Function):
    def forward(self, x):
        xp = array_module(x)
        # NOTE: x == 0 takes the negative side (gradient = negative_slope), as in PyTorch,
        # whose kernel is `x > 0 ? grad : grad * negative_slope`.
        self.positive = x > 0
        return xp.where(self.positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad):
        xp = array_module(grad)
        return xp.where(self.positive, grad, grad * grad.dtype.type(self.negative_slope))


def leaky_relu(x, negative_slope=0.01):
    r"""Leaky ReLU: :math:`x` for :math:`x > 0`, :math:`\text{negative\_slope}\cdot x`
    otherwise.

    .. math:: \mathrm{leaky\_relu}'(x) = \begin{cases} 1 & x > 0 \\
              \text{negative\_slope} & x \le 0 \end{cases}

    At x = 0 the gradient is ``negative_slope``, as in PyTorch.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import leaky_relu
    >>> leaky_relu(minidl.tensor([-2.0, 3.0]), 0.5).tolist()
    [-1.0, 3.0]
    """
    x = _as_float_tensor("leaky_relu", x)
    return LeakyReLU.apply(x, negative_slope=float(negative_slope))


class ELU(Function):
    def forward(self, x):
        xp = array_module(x)
        alpha = x.dtype.type(self.alpha)
        # NOTE: x == 0 takes the exponential side (gradient alpha), as in PyTorch, whose
        # kernel tests `x <= 0`.
        self.nonpositive = x <= 0
        # expm1 of min(x, 0): accurate near 0 and never overflows for large positive x
        self.neg_part = alpha * xp.expm1(xp.minimum(x, x.dtype.type(0)))
        return xp.where(self.nonpositive, self.neg_part, x)

    def backward(self, grad):
        xp = array_module(grad)
        # d/dx alpha (e^x - 1) = alpha e^x = neg_part + alpha
        slope = self.neg_part + grad.dtype.type(self.alpha)
        return xp.where(self.nonpositive, grad * slope, grad)


def elu(x, alpha=1.0):
    r"""Exponential linear unit.

    .. math:: \mathrm{elu}(x) = \begin{cases} x & x > 0 \\ \alpha (e^{x} - 1) & x \le 0
              \end{cases}, \qquad
              \mathrm{elu}'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^{x} & x \le 0 \end{cases}

    At x = 0 the gradient is :math:`\alpha` (PyTorch's convention).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import elu
    >>> [round(v, 4) for v in elu(minidl.tensor([-1.0, 2.0])).tolist()]
    [-0.6321, 2.0]
    """
    x = _as_float_tensor("elu", x)
    return ELU.apply(x, alpha=float(alpha))


# ----------------------------------------------------------------------------- smooth


class GELU(Function):
    def forward(self, x):
        xp = array_module(x)
        self.x = x
        if self.approximate == "tanh":
            # inner = sqrt(2/pi) (x + 0.044715 x^3)
            c = x.dtype.type(math.sqrt(2.0 / math.pi))
            k = x.dtype.type(0.044715)
            self.t = xp.tanh(c * (x + k * x * x * x))
            return x.dtype.type(0.5) * x * (1 + self.t)
        # exact form, evaluated in float64 and cast back
        self.cdf = (0.5 * (1.0 + _erf_array(x * math.sqrt(0.5)))).astype(x.dtype, copy=False)
        return x * self.cdf

    def backward(self, grad):
        xp = array_module(grad)
        x = self.x
        if self.approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            k = 0.044715
            t = self.t
            dinner = c * (1 + 3 * k * x * x)
            return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
        # d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density
        pdf = xp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
        return grad * (self.cdf + x * pdf)


def gelu(x, approximate="none"):
    r"""Gaussian error linear unit.

    With :math:`\Phi` the standard normal CDF and :math:`\varphi` its density:

    .. math:: \mathrm{gelu}(x) = x\,\Phi(x) = \tfrac12 x\left(1 + \operatorname{erf}
              (x/\sqrt2)\right), \qquad \mathrm{gelu}'(x) = \Phi(x) + x\,\varphi(x)

    ``approximate="tanh"`` uses the tanh form of Hendrycks & Gimpel, as PyTorch does:

    .. math:: \tfrac12 x \left(1 + \tanh u\right), \quad
              u = \sqrt{2/\pi}\,(x + 0.044715 x^3), \quad
              \frac{d}{dx} = \tfrac12(1 + \tanh u) + \tfrac12 x (1 - \tanh^2 u)
              \sqrt{2/\pi}\,(1 + 3\cdot 0.044715 x^2)

    The exact form's erf is computed in float64 (see :func:`erf`), matching PyTorch's
    float64 values to about 1e-16.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import gelu
    >>> [round(v, 4) for v in gelu(minidl.tensor([-1.0, 0.0, 1.0])).tolist()]
    [-0.1587, 0.0, 0.8413]
    """
    x = _as_float_tensor("gelu", x)
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


class Sigmoid(Function):
    def forward(self, x):
        self.out = _stable_sigmoid(x)
        return self.out

    def backward(self, grad):
        return grad * self.out * (1 - self.out)


def sigmoid(x):
    r"""Logistic sigmoid :math:`\sigma(x) = 1/(1+e^{-x})`, with
    :math:`\sigma'(x) = \sigma(x)(1-\sigma(x))`.

    Evaluated without overflow for any finite x (only :math:`e^{-|x|}` is ever formed),
    so ``sigmoid(-1e4)`` is exactly 0 and emits no warning.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import sigmoid
    >>> sigmoid(minidl.tensor([-1e4, 0.0, 1e4])).tolist()
    [0.0, 0.5, 1.0]
    """
    x = _as_float_tensor("sigmoid", x)
    return Sigmoid.apply(x)


class LogSigmoid(Function):
    def forward(self, x):
        self.x = x
        # log sigma(x) = -softplus(-x)
        return -_softplus_stable(-x)

    def backward(self, grad):
        # d/dx log sigma(x) = 1 - sigma(x) = sigma(-x)
        return grad * _stable_sigmoid(-self.x)


def logsigmoid(x):
    r""":math:`\log\sigma(x) = -\log(1 + e^{-x})`, computed stably; derivative
    :math:`\sigma(-x)`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import logsigmoid
    >>> logsigmoid(minidl.tensor([-1e4, 1e4])).tolist()
    [-10000.0, -0.0]
    """
    x = _as_float_tensor("logsigmoid", x)
    return LogSigmoid.apply(x)


class Tanh(Function):
    def forward(self, x):
        self.out = array_module(x).tanh(x)
        return self.out

    def backward(self, grad):
        return grad * (1 - self.out * self.out)


def tanh(x):
    r"""Hyperbolic tangent, with :math:`\tanh'(x) = 1 - \tanh^2(x)` (the output is saved).

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import tanh
    >>> tanh(minidl.tensor([0.0])).tolist()
    [0.0]
    """
    x = _as_float_tensor("tanh", x)
    return Tanh.apply(x)


class Softplus(Function):
    def forward(self, x):
        xp = array_module(x)
        beta = x.dtype.type(self.beta)
        xb = x * beta
        # NOTE: above the threshold softplus reverts to the identity, as in PyTorch
        # (`x * beta > threshold ? x : log1p(exp(x * beta)) / beta`).
        self.linear = xb > self.threshold
        self.xb = xb
        return xp.where(self.linear, x, _softplus_stable(xb) / beta)

    def backward(self, grad):
        xp = array_module(grad)
        # d/dx log(1 + e^{beta x}) / beta = sigma(beta x)
        return xp.where(self.linear, grad, grad * _stable_sigmoid(self.xb))


def softplus(x, beta=1.0, threshold=20.0):
    r"""Smooth ReLU: :math:`\frac{1}{\beta}\log(1 + e^{\beta x})`.

    .. math:: \mathrm{softplus}'(x) = \sigma(\beta x)

    Where :math:`\beta x > \text{threshold}` the function is taken as the identity
    (value x, gradient 1), exactly as PyTorch does.  Below the threshold it is evaluated
    as :math:`\max(\beta x, 0) + \log(1 + e^{-|\beta x|})`, which never overflows.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import softplus
    >>> [round(v, 4) for v in softplus(minidl.tensor([0.0, 30.0])).tolist()]
    [0.6931, 30.0]
    """
    x = _as_float_tensor("softplus", x)
    return Softplus.apply(x, beta=float(beta), threshold=float(threshold))


def silu(x):
    r"""Sigmoid linear unit (swish): :math:`x\,\sigma(x)`.

    A composition of :func:`sigmoid` and a product, so its gradient
    :math:`\sigma(x)(1 + x(1-\sigma(x)))` comes from the chain rule.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import silu
    >>> [round(v, 4) for v in silu(minidl.tensor([-1.0, 1.0])).tolist()]
    [-0.2689, 0.7311]
    """
    x = _as_float_tensor("silu", x)
    return x * Sigmoid.apply(x)


# ----------------------------------------------------------------------------- softmax


class Softmax(Function):
    def forward(self, x):
        xp = array_module(x)
        if self.dtype is not None:
            x = x.astype(self.dtype, copy=False)
        # softmax is unchanged by subtracting a constant per slice; subtracting the max
        # makes every exponent <= 0, so exp never overflows
        shifted = x - x.max(axis=self.axis, keepdims=True)
        e = xp.exp(shifted)
        self.out = e / e.sum(axis=self.axis, keepdims=True)
        return self.out

    def backward(self, grad):
        y = self.out
        # Jacobian-vector product: dx_i = y_i (g_i - sum_j g_j y_j)
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


def log_softmax_array(x, axis):
    """Stable log-softmax of an array (the NumPy reference, shared with cross_entropy).

    ``x - m - log(sum(exp(x - m)))`` with ``m`` the max along ``axis``: every exponent is
    at most 0, so nothing overflows, and the log never sees an underflowed 0.
    """
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    def forward(self, x):
        if self.dtype is not None:
            x = x.astype(self.dtype, copy=False)
        self.out = log_softmax_array(x, self.axis)
        return self.out

    def backward(self, grad):
        xp = array_module(grad)
        # d log_softmax_i / dx_j = delta_ij - softmax_j, so dx = g - softmax * sum(g)
        return grad - xp.exp(self.out) * grad.sum(axis=self.axis, keepdims=True)


def _softmax_dtype(op, dtype):
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{op}: dtype must be a floating-point type, got {dtype}")
    return dtype


def softmax(x, dim=None, dtype=None):
    r"""Softmax along ``dim``: :math:`y_i = e^{x_i} / \sum_j e^{x_j}`.

    .. math:: \frac{\partial L}{\partial x_i} = y_i \Big(g_i - \sum_j g_j y_j\Big)

    Computed as :math:`e^{x_i - m}/\sum_j e^{x_j - m}` with :math:`m = \max_j x_j`, so
    logits of :math:`\pm 10^4` give finite results.

    Parameters
    ----------
    x : Tensor
        Floating-point input.
    dim : int
        The axis that sums to 1.  Required: PyTorch's deprecated implicit choice of axis
        is not reproduced (see the NOTE in the source).
    dtype : numpy dtype, optional
        Cast the input to this floating dtype first (PyTorch's ``dtype=`` argument);
        the gradient is cast back to the input's dtype.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import softmax
    >>> softmax(minidl.tensor([[0.0, 0.0], [1e4, -1e4]]), dim=1).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    x = _as_float_tensor("softmax", x)
    axis = _resolve_softmax_dim("softmax", dim, x.ndim)
    return Softmax.apply(x, axis=axis, dtype=_softmax_dtype("softmax", dtype))


def log_softmax(x, dim=None, dtype=None):
    r"""Logarithm of the softmax along ``dim``, computed stably.

    .. math:: y_i = x_i - m - \log\sum_j e^{x_j - m}, \quad m = \max_j x_j, \qquad
              \frac{\partial L}{\partial x_i} = g_i - e^{y_i}\sum_j g_j

    Never forms :math:`\log(\text{softmax})`, so a logit gap of :math:`2\cdot10^4`
    gives :math:`-2\cdot10^4` rather than ``-inf``.  ``dim`` is required and ``dtype``
    behaves as in :func:`softmax`.

    Examples
    --------
    >>> import minidl
    >>> from minidl.ops.activation import log_softmax
    >>> log_softmax(minidl.tensor([1e4, -1e4]), dim=0).tolist()
    [0.0, -20000.0]
    """
    x = _as_float_tensor("log_softmax", x)
    axis = _resolve_softmax_dim("log_softmax", dim, x.ndim)
    return LogSoftmax.apply(x, axis=axis, dtype=_softmax_dtype("log_softmax", dtype))
