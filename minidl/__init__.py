"""minidl: a deep-learning engine written from scratch on NumPy, with a PyTorch-shaped API.

>>> import minidl
>>> x = minidl.tensor([1.0, 2.0], requires_grad=True)
>>> (x ** 2).sum().backward()
>>> x.grad.tolist()
[2.0, 4.0]
"""

import numpy as _np

from minidl import backend, random
from minidl.autograd import Function, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from minidl.backend import get_num_threads, set_backend, set_num_threads
from minidl.gradcheck import GradcheckError, gradcheck
from minidl.ops.elementwise import (
    abs,
    add,
    clamp,
    clip,
    cos,
    div,
    eq,
    exp,
    ge,
    gt,
    isfinite,
    isnan,
    le,
    log,
    log1p,
    lt,
    maximum,
    minimum,
    mul,
    ne,
    neg,
    pow,
    reciprocal,
    sign,
    sin,
    sqrt,
    square,
    sub,
    where,
)
from minidl.ops.linalg import bmm, dot, matmul, mm, outer
from minidl.ops.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    logsumexp,
    max,
    mean,
    min,
    prod,
    std,
    sum,
    var,
)
from minidl.ops.shape import (
    cat,
    chunk,
    concat,
    expand,
    flatten,
    flip,
    movedim,
    pad,
    permute,
    repeat,
    reshape,
    roll,
    split,
    squeeze,
    stack,
    tile,
    transpose,
    unbind,
    unsqueeze,
)
from minidl.random import get_rng_state, manual_seed, seed, set_rng_state
from minidl.tensor import (
    Tensor,
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    get_default_dtype,
    is_tensor,
    linspace,
    numel,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    set_default_dtype,
    tensor,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

# dtypes, spelled as in PyTorch (they are NumPy dtypes: minidl.float32 == np.float32)
float16 = half = _np.dtype(_np.float16)
float32 = float = _np.dtype(_np.float32)
float64 = double = _np.dtype(_np.float64)
int8 = _np.dtype(_np.int8)
int16 = short = _np.dtype(_np.int16)
int32 = int = _np.dtype(_np.int32)
int64 = long = _np.dtype(_np.int64)
uint8 = _np.dtype(_np.uint8)
bool = _np.dtype(_np.bool_)


def __getattr__(name):
    # Submodules and activation functions load on first use, keeping `import minidl` light
    # and letting parts written later (nn, optim, io...) plug in without import cycles.
    import importlib

    if name in ("nn", "optim", "io", "data", "train", "metrics", "bio", "cuda", "ops"):
        return importlib.import_module(f"minidl.{name}")
    if name in ("save", "load"):
        return getattr(importlib.import_module("minidl.io"), name)
    if name in ("relu", "sigmoid", "tanh", "softmax", "log_softmax"):
        return getattr(importlib.import_module("minidl.ops.activation"), name)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")


__all__ = [
    "Tensor", "Function", "tensor", "as_tensor", "from_numpy", "zeros", "ones", "full", "empty",
    "zeros_like", "ones_like", "full_like", "empty_like", "rand", "randn", "randint", "randperm",
    "rand_like", "randn_like", "arange", "linspace", "eye", "is_tensor", "numel",
    "get_default_dtype", "set_default_dtype",
    "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "gradcheck", "GradcheckError", "manual_seed", "seed", "get_rng_state", "set_rng_state",
    "set_backend", "set_num_threads", "get_num_threads", "backend", "random",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "log1p", "sqrt", "abs", "clip",
    "clamp", "maximum", "minimum", "where", "sign", "sin", "cos", "square", "reciprocal",
    "eq", "ne", "lt", "le", "gt", "ge", "isnan", "isfinite",
    "sum", "mean", "prod", "max", "min", "amax", "amin", "var", "std", "logsumexp", "argmax",
    "argmin", "all", "any",
    "matmul", "mm", "bmm", "dot", "outer",
    "reshape", "permute", "transpose", "expand", "squeeze", "unsqueeze", "flatten", "cat",
    "concat", "stack", "split", "chunk", "pad", "flip", "repeat", "movedim", "unbind", "roll",
    "tile",
    "relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "save", "load", "nn", "optim", "io", "cuda",
    "float16", "half", "float32", "float", "float64", "double", "int8", "int16", "short",
    "int32", "int", "int64", "long", "uint8", "bool",
]
