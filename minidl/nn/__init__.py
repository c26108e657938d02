"""Neural-network building blocks, with PyTorch's names: ``minidl.nn`` is ``torch.nn``.

- :class:`Module` and :class:`Parameter`: the base class of layers and the learnable tensor;
- containers: :class:`Sequential`, :class:`ModuleList`, :class:`ModuleDict`, ...;
- layers: :class:`Linear`, convolutions, pooling, normalisation, dropout, :class:`Embedding`,
  recurrent networks (:class:`LSTM`, :class:`GRU`, :class:`RNN` and their cells),
  activations, losses;
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
from minidl.nn.batchnorm import BatchNorm1d, BatchNorm2d
from minidl.nn.container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from minidl.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from minidl.nn.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d
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
from minidl.nn.normalization import GroupNorm, LayerNorm
from minidl.nn.parameter import Parameter
from minidl.nn.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from minidl.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from minidl.nn.sparse import Embedding

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
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "AlphaDropout",
    "Embedding",
    "RNNBase",
    "RNN",
    "LSTM",
    "GRU",
    "RNNCellBase",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
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
