"""Transfer-learning helpers: freezing, replacing a head, per-part learning rates, and loading
a pretrained backbone into a model whose head differs."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.nn.utils import (
    count_parameters,
    freeze,
    param_groups,
    replace_head,
    trainable_parameters,
    transfer,
    unfreeze,
)


class Net(nn.Module):
    """A small backbone + head, named like torchvision models (``features``, ``fc``)."""

    def __init__(self, num_classes=10, head_name="fc"):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())
        self.head_name = head_name
        setattr(self, head_name, nn.Linear(4, num_classes))

    def forward(self, x):
        return getattr(self, self.head_name)(self.features(x))


def _snapshot(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def test_freeze_and_unfreeze_whole_module_or_parts():
    model = Net()
    assert freeze(model) is model
    assert trainable_parameters(model) == [] and count_parameters(model, trainable_only=True) == 0
    unfreeze(model, "fc")
    assert trainable_parameters(model) == [model.fc.weight, model.fc.bias]
    freeze(model, "fc.bias")
    unfreeze(model, "features.2")
    assert trainable_parameters(model) == [model.features[2].weight, model.features[2].bias,
                                           model.fc.weight]
    unfreeze(model)
    assert len(trainable_parameters(model)) == 6
    assert count_parameters(model) == 6 * 8 + 8 + 8 * 4 + 4 + 4 * 10 + 10
    with pytest.raises(ValueError, match=r"no sub-module or parameter 'featurs'.*'features'"):
        freeze(model, "featurs")
    with pytest.raises(TypeError, match="Module"):
        freeze([model])


def test_frozen_backbone_does_not_move_while_the_head_trains():
    minidl.manual_seed(0)
    model = Net(num_classes=3)
    freeze(model, "features")
    optimizer = optim.SGD(trainable_parameters(model), lr=0.1, momentum=0.9)
    before = _snapshot(model)
    x, y = minidl.randn(16, 6), minidl.tensor(np.arange(16) % 3)
    for _ in range(3):
        loss = nn.CrossEntropyLoss()(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _snapshot(model)
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        assert changed == key.startswith("fc."), key
    assert model.features[0].weight.grad is None  # no gradient is even computed


def test_param_groups_with_their_own_learning_rates():
    minidl.manual_seed(1)
    model = Net(num_classes=3)
    groups = param_groups(model, {"features": 1e-3, "features.2": {"lr": 0.5,
                                                                   "weight_decay": 0.0}})
    # longest prefix wins; what matches nothing falls into a last group with the defaults
    assert [len(g["params"]) for g in groups] == [2, 2, 2]
    assert groups[0]["params"] == [model.features[0].weight, model.features[0].bias]
    assert groups[1]["params"] == [model.features[2].weight, model.features[2].bias]
    assert groups[2]["params"] == [model.fc.weight, model.fc.bias] and "lr" not in groups[2]

    optimizer = optim.SGD(groups, lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 0.5, 0.1]
    before = _snapshot(model)
    loss = nn.CrossEntropyLoss()(model(minidl.randn(8, 6)), minidl.tensor(np.arange(8) % 3))
    optimizer.zero_grad()
    loss.backward()
    grads = {name: p.grad.numpy().copy() for name, p in model.named_parameters()}
    optimizer.step()
    after = _snapshot(model)
    # plain SGD: theta <- theta - lr_group * grad, each group with its own rate
    lr_of = {"features.0": 1e-3, "features.2": 0.5, "fc": 0.1}
    for name, grad in grads.items():
        lr = lr_of[name.rsplit(".", 1)[0]]
        np.testing.assert_allclose(after[name], before[name] - lr * grad, rtol=1e-6, atol=1e-7)


def test_param_groups_skip_frozen_parameters_and_reject_typos():
    model = Net()
    freeze(model, "features")
    groups = param_groups(model, {"features": 1e-4})
    assert len(groups) == 1 and groups[0]["params"] == [model.fc.weight, model.fc.bias]
    groups = param_groups(model, {"features": 1e-4}, include_frozen=True)
    assert [len(g["params"]) for g in groups] == [4, 2] and groups[0]["lr"] == 1e-4
    with pytest.raises(ValueError, match="no parameter of Net is under"):
        param_groups(model, {"feature": 1e-4})
    with pytest.raises(ValueError, match="params"):
        param_groups(model, {"fc": {"params": []}})


def test_replace_head_by_attribute_and_by_sequential_path():
    minidl.manual_seed(2)
    model = Net(num_classes=10)
    new_head = nn.Linear(4, 3)
    assert replace_head(model, "fc", new_head) is model
    assert model.fc is new_head and model(minidl.randn(5, 6)).shape == (5, 3)
    assert "fc.weight" in model.state_dict() and model.state_dict()["fc.weight"].shape == (3, 4)

    seq = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 9)))
    replace_head(seq, "2.1", nn.Linear(4, 2))
    assert seq(minidl.randn(2, 3)).shape == (2, 2)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias",
                                      "2.1.weight", "2.1.bias"]
    with pytest.raises(ValueError, match=r"no sub-module 'head'.*\['features', 'fc'\]"):
        replace_head(model, "head", nn.Linear(4, 3))
    with pytest.raises(ValueError, match="no sub-module 'nothing.fc'"):
        replace_head(model, "nothing.fc.x", nn.Linear(4, 3))
    with pytest.raises(TypeError, match="must be a Module"):
        replace_head(model, "fc", lambda x: x)


def test_loading_a_backbone_into_a_model_with_another_head():
    minidl.manual_seed(3)
    pretrained = Net(num_classes=10, head_name="fc")
    model = Net(num_classes=3, head_name="classifier")
    head_before = _snapshot(model.classifier)

    result = model.load_state_dict(pretrained.state_dict(), strict=False)
    assert sorted(result.missing_keys) == ["classifier.bias", "classifier.weight"]
    assert sorted(result.unexpected_keys) == ["fc.bias", "fc.weight"]
    missing, unexpected = result  # unpacks like PyTorch's namedtuple
    assert len(missing) == len(unexpected) == 2
    for key, value in pretrained.features.state_dict().items():
        np.testing.assert_array_equal(model.features.state_dict()[key].numpy(), value.numpy())
    for key, value in head_before.items():  # the new head keeps its own initialisation
        np.testing.assert_array_equal(model.classifier.state_dict()[key].numpy(), value)

    with pytest.raises(RuntimeError, match="Missing key"):
        Net(num_classes=3, head_name="classifier").load_state_dict(pretrained.state_dict())
    # same head name, other shape: shapes are checked even with strict=False, so drop the
    # old head's keys first (the recipe the module docstring gives)
    same_name = Net(num_classes=3, head_name="fc")
    with pytest.raises(RuntimeError, match="size mismatch|shape"):
        same_name.load_state_dict(pretrained.state_dict(), strict=False)
    backbone_only = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("fc.")}
    result = same_name.load_state_dict(backbone_only, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []


def test_doctests():
    result = doctest.testmod(transfer, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
