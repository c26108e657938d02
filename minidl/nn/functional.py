r"""Stateless functions behind the layers, imported as ``F`` (``import minidl.nn.functional as F``).

The activations and losses live in :mod:`minidl.ops.activation` and :mod:`minidl.ops.loss`
and are re-exported here under PyTorch's names; the layer maths that belongs to
:mod:`minidl.nn` (``linear``, ``bilinear``) is defined here.  Convolution, pooling,
normalisation, dropout and embedding functions are re-exported from their op modules.
"""

from __future__ import annotations

from minidl.autograd import Function
from minidl.backend import array_module
from minidl.ops.activation import (
    elu,
    gelu,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    tanh,
)
from minidl.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from minidl.ops.dropout import alpha_dropout, dropout, dropout1d, dropout2d
from minidl.ops.embedding import embedding
from minidl.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from minidl.ops.normalization import batch_norm, group_norm, layer_norm
from minidl.ops.pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
)
from minidl.ops.shape import pad
from minidl.tensor import Tensor

__all__ = [
    # convolution, pooling, normalisation, dropout, embedding
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "global_max_pool1d",
    "global_max_pool2d",
    "global_avg_pool1d",
    "global_avg_pool2d",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "dropout",
    "dropout1d",
    "dropout2d",
    "alpha_dropout",
    "embedding",
    "pad",
    # layers
    "linear",
    "bilinear",
    # activations
    "relu",
    "leaky_relu",
    "elu",
    "gelu",
    "sigmoid",
    "logsigmoid",
    "tanh",
    "softplus",
    "silu",
    "softmax",
    "log_softmax",
    "hardtanh",
    "relu6",
    # losses
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
]


# ---------------------------------------------------------------------- linear


class LinearFunction(Function):
    r"""Fused affine map :math:`y = x W^\top + b` over the last axis of ``x``.

    With ``x`` flattened to ``(N, in)`` and ``G = dL/dy`` to ``(N, out)``:

    .. math::

        \frac{\partial L}{\partial x} = G W, \qquad
        \frac{\partial L}{\partial W} = G^\top x, \qquad
        \frac{\partial L}{\partial b} = \textstyle\sum_n G_n.

    One Function instead of ``matmul`` + ``transpose`` + ``add``: three graph nodes and
    their intermediate arrays become one, and the weight gradient is a single GEMM.
    """

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        out = x @ weight.T
        if bias is not None:
            out += bias  # ``out`` is a fresh array: adding in place saves one allocation
        return out

    def backward(self, grad):
        x, weight = self.x, self.weight
        out_features, in_features = weight.shape
        grad_x = grad_weight = grad_bias = None
        if self.needs_input_grad[0]:
            grad_x = grad @ weight
        grad_2d = grad.reshape(-1, out_features)
        if self.needs_input_grad[1]:
            grad_weight = grad_2d.T @ x.reshape(-1, in_features)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            grad_bias = grad_2d.sum(axis=0)
        if len(self.needs_input_grad) == 2:
            return grad_x, grad_weight
        return grad_x, grad_weight, grad_bias


def _dtype_name(t):
    return str(t.dtype)


def linear(input, weight, bias=None):
    r"""Affine map over the last dimension: :math:`y = x W^\top + b`.

    Parameters
    ----------
    input : Tensor, shape ``(*, in_features)``
        Floating point; any number of leading (batch) dimensions, or none.
    weight : Tensor, shape ``(out_features, in_features)``
    bias : Tensor, shape ``(out_features,)``, optional

    Returns
    -------
    Tensor, shape ``(*, out_features)``

    Raises
    ------
    TypeError
        If the input is not floating point, or its dtype differs from the weight's.
    ValueError
        If the shapes do not fit; the message shows both.

    Examples
    --------
    >>> import minidl
    >>> import minidl.nn.functional as F
    >>> x = minidl.ones(2, 3); w = minidl.ones(4, 3); b = minidl.zeros(4)
    >>> F.linear(x, w, b).tolist()[0]
    [3.0, 3.0, 3.0, 3.0]
    """
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"linear: {name} must be a Tensor, got {type(t).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(
            f"linear: input must be floating point, got {_dtype_name(input)} "
            f"(input shape {tuple(input.shape)}); convert it with .float()"
        )
    if weight.ndim != 2:
        raise ValueError(
            f"linear: weight must be 2-D (out_features, in_features), got shape "
            f"{tuple(weight.shape)}"
        )
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        got = input.shape[-1] if input.ndim else 0
        raise ValueError(
            f"linear: input has {got} features (input shape {tuple(input.shape)}), "
            f"weight expects {weight.shape[1]} (weight shape {tuple(weight.shape)})"
        )
    if input.dtype != weight.dtype:
        raise TypeError(
            f"linear: input dtype {_dtype_name(input)} does not match weight dtype "
            f"{_dtype_name(weight)} (input shape {tuple(input.shape)}, weight shape "
            f"{tuple(weight.shape)}); cast the input (x.float() / x.double()) or the model "
            "(model.float() / model.double())"
        )
    if bias is None:
        return LinearFunction.apply(input, weight)
    if tuple(bias.shape) not in ((weight.shape[0],), ()):
        raise ValueError(
            f"linear: bias must have shape ({weight.shape[0]},) to match weight shape "
            f"{tuple(weight.shape)}, got {tuple(bias.shape)}"
        )
    if bias.dtype != weight.dtype:
        raise TypeError(
            f"linear: bias dtype {_dtype_name(bias)} does not match weight dtype "
            f"{_dtype_name(weight)}"
        )
    return LinearFunction.apply(input, weight, bias)


# ---------------------------------------------------------------------- bilinear


class BilinearFunction(Function):
    r""":math:`y_{no} = \sum_{ij} x^{(1)}_{ni} W_{oij} x^{(2)}_{nj} + b_o`.

    Each gradient is the same contraction with one factor left out, e.g.
    :math:`\partial L/\partial W_{oij} = \sum_n G_{no} x^{(1)}_{ni} x^{(2)}_{nj}`.
    """

    def forward(self, x1, x2, weight, bias=None):
        xp = array_module(x1)
        self.x1, self.x2, self.weight = x1, x2, weight
        out = xp.einsum("...i,oij,...j->...o", x1, weight, x2, optimize=True)
        if bias is not None:
            out = out + bias
        return out

    def backward(self, grad):
        xp = array_module(grad)
        x1, x2, weight = self.x1, self.x2, self.weight
        needs = self.needs_input_grad
        g1 = g2 = gw = gb = None
        if needs[0]:
            g1 = xp.einsum("...o,oij,...j->...i", grad, weight, x2, optimize=True)
        if needs[1]:
            g2 = xp.einsum("...o,oij,...i->...j", grad, weight, x1, optimize=True)
        if needs[2]:
            gw = xp.einsum("...o,...i,...j->oij", grad, x1, x2, optimize=True)
        if len(needs) == 3:
            return g1, g2, gw
        if needs[3]:
            gb = grad.reshape(-1, grad.shape[-1]).sum(axis=0)
        return g1, g2, gw, gb


def bilinear(input1, input2, weight, bias=None):
    r"""Bilinear map :math:`y = x_1^\top A\, x_2 + b`, one matrix :math:`A` per output.

    Parameters
    ----------
    input1 : Tensor, shape ``(*, in1_features)``
    input2 : Tensor, shape ``(*, in2_features)`` (same leading dimensions)
    weight : Tensor, shape ``(out_features, in1_features, in2_features)``
    bias : Tensor, shape ``(out_features,)``, optional

    Returns
    -------
    Tensor, shape ``(*, out_features)``
    """
    if weight.ndim != 3:
        raise ValueError(f"bilinear: weight must be 3-D, got shape {tuple(weight.shape)}")
    if (
        input1.shape[-1] != weight.shape[1]
        or input2.shape[-1] != weight.shape[2]
        or tuple(input1.shape[:-1]) != tuple(input2.shape[:-1])
    ):
        raise ValueError(
            f"bilinear: inputs of shapes {tuple(input1.shape)} and {tuple(input2.shape)} do "
            f"not fit weight shape {tuple(weight.shape)} (need (*, {weight.shape[1]}) and "
            f"(*, {weight.shape[2]}) with the same leading dimensions)"
        )
    for name, t in (("input1", input1), ("input2", input2)):
        if t.dtype != weight.dtype:
            raise TypeError(
                f"bilinear: {name} dtype {t.dtype} does not match weight dtype {weight.dtype}"
            )
    if bias is None:
        return BilinearFunction.apply(input1, input2, weight)
    return BilinearFunction.apply(input1, input2, weight, bias)
