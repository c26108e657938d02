"""Neural-network building blocks, with PyTorch's names: ``minidl.nn`` is ``torch.nn``.

- :class:`Module` and :class:`Parameter`: the base class of layers and the learnable tensor;
- containers: :class:`Sequential`, :class:`ModuleList`, :class:`ModuleDict`, ...;
- layers: :class:`Linear`, :class:`Flatten`, activations, losses;
- :mod:`minidl.nn.functional` (as ``F``), :mod:`minidl.nn.init`, :mod:`minidl.nn.utils`.

Examples
--------
>>> import minidl
>>> from minidl import nn
>>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
>>> loss = nn.CrossEntropyLoss()(model(minidl.randn(5, 4)), minidl.tensor([0, 1, 2, 0, 1]))
>>> loss.backward()
>>> model[0].weight.grad.shape
(8, 4)
"""

import importlib.util as _importlib_util

from minidl.nn import functional, init
from minidl.nn.activation import (
    ELU,
    GELU,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from minidl.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from minidl.nn.flatten import Flatten, Unflatten
from minidl.nn.linear import Bilinear, Identity, Linear
from minidl.nn.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter

# nn.utils (gradient clipping, ...) is a separate package; import it when present so
# that `nn.utils.clip_grad_norm_` works as in PyTorch.  Errors inside it are not hidden.
if _importlib_util.find_spec("minidl.nn.utils") is not None:
    from minidl.nn import utils
else:  # pragma: no cover - only while nn.utils is not written yet
    utils = None

__all__ = [
    "Module",
    "Parameter",
    "functional",
    "init",
    "utils",
    # containers
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "ParameterList",
    "ParameterDict",
    # layers
    "Identity",
    "Linear",
    "Bilinear",
    "Flatten",
    "Unflatten",
    # activations
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Sigmoid",
    "LogSigmoid",
    "Tanh",
    "Softplus",
    "SiLU",
    "Softmax",
    "LogSoftmax",
    "Hardtanh",
    "ReLU6",
    # losses
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
]
