r"""Convolutional models for microscopy cell images ``(N, C, H, W)``.

:class:`CellCNN` stacks blocks of ``[Conv2d 3x3 - BatchNorm2d - ReLU] x k - MaxPool2d(2)``;
:class:`CellResNet` is a small residual network (basic blocks of two 3x3 convolutions,
He et al. 2016):

.. math::

    y = \mathrm{ReLU}\big(\mathrm{BN}(W_2 * \mathrm{ReLU}(\mathrm{BN}(W_1 * x))) + S x\big)

with :math:`S` the identity, or a strided 1x1 convolution + BN where the shape changes.
Both end with global average pooling (``AdaptiveAvgPool2d(1)``), so the same weights run
on images of any size, then ``Dropout`` and a ``Linear`` layer: the **head**
(``model.head``).  Everything before it is the **backbone** (``model.features``), the part
that transfer learning keeps.

Every model keeps its arguments in ``model.config`` so :func:`build_cell_model` rebuilds
it from ``config.json``.

Grey vs colour (transfer learning)
----------------------------------
:func:`adapt_input_channels` maps the first convolution's weights
:math:`W \in \mathbb{R}^{O \times C \times k \times k}` to :math:`C'` input channels:

.. math::

    W'_{:, j} = \frac{1}{C'} \sum_{c=1}^{C} W_{:, c}, \qquad j = 1..C'

(the pretrained channels summed, spread evenly over the new ones). So a grey image fed to
a ``C' = 1`` model gives exactly the response the pretrained colour model gives to that
image copied into all of its ``C`` channels, and the same holds the other way round
(``C = 1`` pretrained, colour target: every channel gets ``W / C'``).  When ``C' = C``
the weights are copied unchanged.
"""

from __future__ import annotations

import numpy as np

from minidl import nn

__all__ = ["CellCNN", "CellResNet", "build_cell_model", "adapt_input_channels",
           "CELL_MODELS"]


def _conv_bn_relu(in_channels, out_channels, stride=1):
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU()]


class _CellModel(nn.Module):
    """Shared parts: ``features`` (backbone), global pooling, ``head``; freezing."""

    #: state_dict key of the first convolution's weight (adapted for other channel counts)
    input_conv_key = "features.0.0.weight"

    def _finish(self, width, num_classes, dropout):
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))
        self.backbone_frozen = False

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.config["in_channels"]:
            raise ValueError(
                f"{type(self).__name__}: expected images (N, {self.config['in_channels']}, H, W),"
                f" got shape {tuple(x.shape)}")
        return self.head(self.flatten(self.pool(self.features(x))))

    def embed(self, x):
        """The pooled backbone features ``(N, width)`` (what the head reads)."""
        return self.flatten(self.pool(self.features(x)))

    def freeze_backbone(self, frozen=True):
        """Train the head only: no gradients for the backbone, and its batch-norm layers
        kept in eval mode.

        NOTE: a frozen backbone's batch norm must use its stored running statistics even
        while the head trains; in training mode it would normalise with each small
        batch's statistics, features the head would then never see at prediction time.
        """
        self.backbone_frozen = bool(frozen)
        for param in self.features.parameters():
            param.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode=True):
        super().train(mode)
        if getattr(self, "backbone_frozen", False):
            self.features.eval()
        return self


class CellCNN(_CellModel):
    """A small CNN: ``len(channels)`` blocks of ``[Conv3x3-BN-ReLU] x convs_per_block``
    then ``MaxPool2d(2)``; global average pooling; dropout; a linear head.

    Parameters
    ----------
    num_classes : int
    in_channels : int, default 3
    channels : sequence of int, default (32, 64, 128)
    convs_per_block : int, default 2
    dropout : float, default 0.3

    Pooling uses ``ceil_mode`` so an image as small as 1x1 still runs.

    >>> import minidl
    >>> model = CellCNN(4, in_channels=1, channels=(8, 16))
    >>> model(minidl.randn(2, 1, 20, 17)).shape
    (2, 4)
    """

    def __init__(self, num_classes, in_channels=3, channels=(32, 64, 128), convs_per_block=2,
                 dropout=0.3):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"CellCNN: need at least 2 classes, got {num_classes}")
        self.config = {"model": "cnn", "num_classes": int(num_classes),
                       "in_channels": int(in_channels), "channels": [int(c) for c in channels],
                       "convs_per_block": int(convs_per_block), "dropout": float(dropout)}
        blocks, width = [], in_channels
        for out in channels:
            layers = []
            for _ in range(convs_per_block):
                layers += _conv_bn_relu(width, out)
                width = out
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
        self.features = nn.Sequential(*blocks)
        self._finish(width, num_classes, dropout)


class _BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + skip)


class CellResNet(_CellModel):
    """A small ResNet: a 3x3 stem, then one stage of ``blocks_per_stage`` basic blocks per
    entry of ``widths`` (every stage after the first halves the resolution with stride 2),
    global average pooling, dropout, a linear head.

    Parameters
    ----------
    num_classes : int
    in_channels : int, default 3
    widths : sequence of int, default (32, 64, 128)
    blocks_per_stage : int, default 2
    dropout : float, default 0.2

    >>> import minidl
    >>> model = CellResNet(3, in_channels=2, widths=(8, 16), blocks_per_stage=1)
    >>> model(minidl.randn(2, 2, 9, 12)).shape
    (2, 3)
    """

    input_conv_key = "features.0.0.weight"

    def __init__(self, num_classes, in_channels=3, widths=(32, 64, 128), blocks_per_stage=2,
                 dropout=0.2):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"CellResNet: need at least 2 classes, got {num_classes}")
        self.config = {"model": "resnet", "num_classes": int(num_classes),
                       "in_channels": int(in_channels), "widths": [int(w) for w in widths],
                       "blocks_per_stage": int(blocks_per_stage), "dropout": float(dropout)}
        stages = [nn.Sequential(*_conv_bn_relu(in_channels, widths[0]))]
        width = widths[0]
        for i, out in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_BasicBlock(width, out, stride))
                width = out
            stages.append(nn.Sequential(*blocks))
        self.features = nn.Sequential(*stages)
        self._finish(width, num_classes, dropout)


CELL_MODELS = {"cnn": CellCNN, "resnet": CellResNet}


def build_cell_model(config):
    """Rebuild a model from its ``config`` dict (``model.config``, as in ``config.json``).

    >>> build_cell_model({"model": "cnn", "num_classes": 3, "channels": [4]}).config["model"]
    'cnn'
    """
    config = dict(config)
    kind = config.pop("model", "cnn")
    if kind not in CELL_MODELS:
        raise ValueError(f"unknown cell model {kind!r}; known: {', '.join(CELL_MODELS)}")
    return CELL_MODELS[kind](**config)


def adapt_input_channels(weight, in_channels):
    r"""The first convolution's weight ``(O, C, kh, kw)`` for ``in_channels`` inputs:
    :math:`W'_{:, j} = \frac{1}{C'} \sum_c W_{:, c}` (see the module docstring), or
    ``weight`` itself when ``C' = C``.

    >>> w = np.ones((2, 3, 1, 1), np.float32)
    >>> adapt_input_channels(w, 1)[:, :, 0, 0].tolist()
    [[3.0], [3.0]]
    >>> adapt_input_channels(w[:, :1], 4)[0, :, 0, 0].tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ValueError(f"adapt_input_channels: expected a conv weight (O, C, kh, kw), "
                         f"got shape {weight.shape}")
    if weight.shape[1] == in_channels:
        return weight
    grey = weight.sum(axis=1, keepdims=True)
    return np.repeat(grey / in_channels, in_channels, axis=1).astype(weight.dtype)
