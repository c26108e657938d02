r"""Transfer learning: freeze a pretrained backbone, replace its head, give parts of the model
their own learning rates.

Fine-tuning a pretrained model on a small data set usually goes

1. load the pretrained weights; a model whose head differs (another number of classes)
   loads with ``model.load_state_dict(state, strict=False)``, which returns the
   ``missing_keys`` (the new head's parameters, left at their initialisation) and the
   ``unexpected_keys`` (the old head's, ignored) so that nothing is skipped silently.
   Shapes are checked even then: if the new head has the old one's name but another
   shape, drop the old head's keys first,
   ``{k: v for k, v in state.items() if not k.startswith("fc.")}``;
2. :func:`replace_head` with a fresh layer for the new task;
3. :func:`freeze` the backbone and train the head alone for a few epochs;
4. :func:`unfreeze` and train everything with a smaller learning rate for the backbone
   than for the head, using parameter groups from :func:`param_groups`.

Gradient descent on a group :math:`g` with its own rate updates
:math:`\theta \leftarrow \theta - \eta_g \nabla_\theta L` for :math:`\theta \in g`; a
frozen parameter (``requires_grad=False``) gets no gradient and is skipped by every
optimizer.

NOTE: freezing stops gradients only.  Batch-norm layers in training mode still update
their running statistics; put a frozen backbone in ``eval()`` mode to keep them too.

Examples
--------
>>> from minidl import nn, optim
>>> from minidl.nn.utils import (freeze, param_groups, replace_head, trainable_parameters,
...                              unfreeze)
>>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 10))
>>> model = replace_head(model, "2", nn.Linear(16, 3))
>>> _ = freeze(model, "0")
>>> [p.shape for p in trainable_parameters(model)]
[(3, 16), (3,)]
>>> _ = unfreeze(model)
>>> opt = optim.SGD(param_groups(model, {"0": 1e-4}), lr=1e-2)
>>> [g["lr"] for g in opt.param_groups]
[0.0001, 0.01]
"""

from __future__ import annotations

__all__ = [
    "freeze",
    "unfreeze",
    "trainable_parameters",
    "count_parameters",
    "replace_head",
    "param_groups",
]


def _resolve(module, name, fn):
    """The sub-module or parameter of ``module`` at dotted path ``name``."""
    try:
        return module.get_submodule(name)
    except (AttributeError, KeyError):
        pass
    try:
        return module.get_parameter(name)
    except (AttributeError, KeyError):
        pass
    children = [n for n, _ in module.named_children()]
    raise ValueError(
        f"{fn}: {type(module).__name__} has no sub-module or parameter {name!r}; "
        f"its children are {children}"
    )


def _set_requires_grad(module, names, flag, fn):
    from minidl.nn.module import Module

    if not isinstance(module, Module):
        raise TypeError(f"{fn}: expected a Module, got {type(module).__name__}")
    targets = [_resolve(module, name, fn) for name in names] if names else [module]
    for target in targets:
        params = target.parameters() if isinstance(target, Module) else [target]
        for param in params:
            param.requires_grad_(flag)
    return module


def freeze(module, *names):
    """Stop gradients: set ``requires_grad=False`` on every parameter of ``module``, or
    only of the sub-modules / parameters at the dotted paths ``names``.

    Parameters
    ----------
    module : Module
    *names : str
        Paths such as ``"features"``, ``"encoder.layers.0"`` or ``"fc.bias"``; none
        means the whole module.

    Returns
    -------
    Module
        ``module`` itself.

    Raises
    ------
    ValueError
        For a path that names nothing (listing the module's children).
    """
    return _set_requires_grad(module, names, False, "freeze")


def unfreeze(module, *names):
    """The opposite of :func:`freeze`: set ``requires_grad=True`` (on everything, or on the
    given sub-modules / parameters).  Returns ``module``."""
    return _set_requires_grad(module, names, True, "unfreeze")


def trainable_parameters(module):
    """The parameters of ``module`` that require gradients, as a list (give it to an
    optimizer so frozen parameters are not even carried along)."""
    return [p for p in module.parameters() if p.requires_grad]


def count_parameters(module, trainable_only=False):
    r"""The number of scalar parameters, :math:`\sum_p \prod_d \text{shape}_d(p)` (shared
    parameters once); with ``trainable_only``, of those that require gradients.

    >>> from minidl import nn
    >>> count_parameters(nn.Linear(4, 3))
    15
    """
    params = trainable_parameters(module) if trainable_only else module.parameters()
    return int(sum(p.numel() for p in params))


def replace_head(model, name, new_module):
    """Put ``new_module`` in place of the sub-module at dotted path ``name``.

    The usual use is a new output layer for another number of classes:
    ``replace_head(model, "fc", nn.Linear(512, 3))``; inside a ``Sequential`` the path is
    the index (``"classifier.2"``).  The new module keeps its own initialisation and
    ``requires_grad`` flags.

    Returns
    -------
    Module
        ``model`` itself (modified in place).

    Raises
    ------
    ValueError
        If nothing is registered at ``name`` (listing what is), so a typo cannot add a
        stray layer that the forward pass never calls.
    TypeError
        If ``new_module`` is not a Module.
    """
    from minidl.nn.module import Module

    if not isinstance(new_module, Module):
        raise TypeError(f"replace_head: new_module must be a Module, got "
                        f"{type(new_module).__name__}")
    parent_path, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_path) if parent_path else model
    except (AttributeError, KeyError) as error:
        raise ValueError(f"replace_head: no sub-module {parent_path!r} in "
                         f"{type(model).__name__}") from error
    if attr not in parent._modules:
        raise ValueError(
            f"replace_head: {type(parent).__name__} {parent_path or '(the model)'} has no "
            f"sub-module {attr!r}; its sub-modules are {list(parent._modules)}"
        )
    setattr(parent, attr, new_module)
    return model


def param_groups(model, settings, include_frozen=False):
    r"""Parameter groups for an optimizer, with per-part hyperparameters.

    Parameters
    ----------
    model : Module
    settings : dict
        ``{prefix: lr}`` or ``{prefix: {"lr": ..., "weight_decay": ...}}``.  A parameter
        named ``n`` belongs to prefix ``p`` when ``n == p`` or ``n`` starts with
        ``p + "."``; the longest matching prefix wins.
    include_frozen : bool, default False
        Also put parameters with ``requires_grad=False`` in the groups (so that they are
        in the optimizer when unfrozen later).

    Returns
    -------
    list of dict
        One group per prefix, in the order given, then one group of the remaining
        parameters without hyperparameters (the optimizer's defaults apply); empty
        groups are left out.

    Raises
    ------
    ValueError
        For a prefix that matches no parameter.

    >>> from minidl import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    >>> [(sorted(g) , len(g["params"])) for g in param_groups(model, {"1": 0.1})]
    [(['lr', 'params'], 2), (['params'], 2)]
    """
    groups = {}
    for prefix, value in settings.items():
        options = dict(value) if isinstance(value, dict) else {"lr": float(value)}
        if "params" in options:
            raise ValueError(f"param_groups: settings for {prefix!r} must not contain 'params'")
        groups[prefix] = (options, [])
    rest = []
    matched = set()
    for name, param in model.named_parameters():
        owners = [p for p in groups if name == p or name.startswith(p + ".")]
        if owners:
            owner = max(owners, key=len)
            matched.add(owner)
        if not include_frozen and not param.requires_grad:
            continue
        (groups[owner][1] if owners else rest).append(param)
    unmatched = [p for p in groups if p not in matched]
    if unmatched:
        raise ValueError(
            f"param_groups: no parameter of {type(model).__name__} is under {unmatched}; "
            f"its children are {[n for n, _ in model.named_children()]}"
        )
    result = [{"params": params, **options} for options, params in groups.values() if params]
    if rest:
        result.append({"params": rest})
    return result
