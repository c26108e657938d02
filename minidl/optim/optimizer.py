"""The ``Optimizer`` base class: parameter groups, per-parameter state, state dicts.

An optimizer owns a list of *parameter groups*.  Each group is a dict holding the
parameters it updates (``group["params"]``) and the hyperparameters for them
(``lr``, ``momentum``...); a hyperparameter missing from a group is filled from the
optimizer's ``defaults``.  Per-parameter state (momentum buffers, moment estimates,
step counters) lives in ``optimizer.state[param]``.

``state_dict()`` follows PyTorch's layout exactly, so a dict written by one library
can be read by the other::

    {"state": {0: {"step": 3.0, "exp_avg": Tensor, ...}, 1: {...}},
     "param_groups": [{"lr": 0.001, ..., "params": [0, 1]}, {..., "params": [2]}]}

Parameters are replaced by indices numbered across groups in order (the first
group's parameters are 0..n-1, the next group continues at n, ...).

NOTE: minidl stores scalar counters such as ``step`` as Python floats, where PyTorch
stores 0-d float32 tensors.  ``load_state_dict`` accepts either (a float, an int, a
0-d minidl Tensor, NumPy array or torch tensor).
"""

from __future__ import annotations

import copy
import numbers
import warnings
from collections import defaultdict

import numpy as np

from ..autograd import enable_grad
from ..backend import array_module, device_of, move
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks a hyperparameter that every parameter group must set (no default)."""

    def __repr__(self):
        return "<required parameter>"


#: use as a value in ``defaults`` for a hyperparameter that has no default
required = _RequiredParameter()


def _check_number(owner, name, value):
    """Raise a TypeError naming the optimizer when a hyperparameter is not a real number."""
    # a 1-element Tensor (anything with __float__) is accepted, like torch's Tensor lr
    is_number = isinstance(value, numbers.Real) or hasattr(value, "__float__")
    if isinstance(value, (bool, str, bytes)) or not is_number:
        raise TypeError(
            f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}"
        )


def _check_min(owner, label, value, minimum=0.0):
    """Validate a hyperparameter like torch: ``"SGD: Invalid learning rate: -1"``."""
    _check_number(owner, label, value)
    if not float(value) >= minimum:  # written this way so that NaN is rejected too
        raise ValueError(f"{owner}: Invalid {label}: {value}")


def _check_flags(owner, differentiable=False, foreach=None, fused=None):
    """The PyTorch implementation switches: accepted, but only the plain one exists here."""
    if differentiable:
        raise NotImplementedError(
            f"{owner}: differentiable=True is not supported; minidl optimizers update "
            "parameter arrays in place, outside the autograd graph"
        )
    if fused and foreach:
        raise RuntimeError(f"{owner}: `fused` and `foreach` cannot be `True` together.")


def _state_index(key):
    """State-dict indices are ints; accept the strings a JSON round trip produces."""
    if isinstance(key, str) and key.lstrip("-").isdigit():
        return int(key)
    return key


def _writable_data(param):
    """``param.data``, made writable first if it is a read-only view (e.g. a loaded file)."""
    data = param.data
    flags = getattr(data, "flags", None)
    if flags is not None and not flags.writeable:
        data = data.copy()
        param.data = data
    return data


class Optimizer:
    """Base class for all optimizers.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The parameters to optimize, or a list of parameter groups: dicts with a
        ``"params"`` entry and optional per-group hyperparameters.  Parameters may also
        be given as ``(name, tensor)`` pairs (``model.named_parameters()``); the names
        are then kept in ``group["param_names"]``.
    defaults : dict
        Default hyperparameters, used for any group that does not set them.

    Attributes
    ----------
    param_groups : list of dict
        The parameter groups, every hyperparameter filled in.
    state : mapping
        ``state[param]`` is a dict of per-parameter state (empty until the first step).
    defaults : dict
        The defaults given to the constructor.

    Notes
    -----
    Subclasses implement :meth:`step`.  Updates act in place on ``param.data`` (a NumPy
    or CuPy array, its dtype kept); parameters whose ``.grad`` is ``None`` are skipped.
    """

    #: names of per-parameter state entries that are plain numbers (counters), not arrays
    _scalar_state: tuple[str, ...] = ("step",)

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        # keyed by the parameter itself (Tensors hash by identity), like torch's defaultdict
        self.state = defaultdict(dict)
        self.param_groups: list[dict] = []

        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params should be an iterable of Tensors or dicts, but got a Tensor "
                f"of shape {tuple(params.shape)}; wrap it in a list: [tensor]"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError(f"{name}: optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group):
        """Add a parameter group, filling hyperparameters it does not set from ``defaults``.

        Useful when fine-tuning: frozen layers can be made trainable and added to the
        optimizer as training progresses.

        Parameters
        ----------
        param_group : dict
            ``{"params": tensors, **hyperparameters}``.

        Raises
        ------
        TypeError
            If the group is not a dict, its params are a set (unordered) or not Tensors.
        ValueError
            If a parameter is already in another group, a non-leaf tensor, or a required
            hyperparameter is missing.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{name}: param_group must be a dict, but got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(f"{name}: param_group must have a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, "
                "but the ordering of tensors in sets will change between runs. "
                "Please use a list instead."
            )
        else:
            params = list(params)

        # model.named_parameters() gives (name, tensor) pairs: keep the names aside
        tensors, names = [], []
        for item in params:
            if isinstance(item, tuple):
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError(
                f"{name}: all optimizer params should be with/without names. "
                "Some param names are missing"
            )
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names

        for index, param in enumerate(tensors):
            if not isinstance(param, Tensor):
                raise TypeError(
                    f"{name}: optimizer can only optimize Tensors, but parameter {index} of "
                    f"the group is a {type(param).__name__}"
                )
            if not getattr(param, "is_leaf", True):
                raise ValueError(
                    f"{name}: can't optimize a non-leaf Tensor (parameter {index}, shape "
                    f"{tuple(param.shape)}); use .detach().requires_grad_() to make a leaf"
                )

        for key, default in self.defaults.items():
            if default is required and key not in param_group:
                raise ValueError(
                    f"{name}: parameter group didn't specify a value of required "
                    f"optimization parameter {key}"
                )
            param_group.setdefault(key, default)

        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                f"{name}: optimizer contains a parameter group with duplicate parameters; "
                "each will be updated once per occurrence",
                stacklevel=3,
            )

        existing = set()
        for group in self.param_groups:
            existing.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    f"{name}: all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in existing for p in tensors):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")

        self.param_groups.append(param_group)

    # ------------------------------------------------------------------ stepping

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all optimized parameters.

        Parameters
        ----------
        set_to_none : bool, default True
            Set ``p.grad = None`` (frees memory, and the next step skips parameters that
            receive no gradient).  With ``False`` the existing gradient arrays are filled
            with zeros in place (and the step then updates those parameters with a zero
            gradient, which still moves them under momentum or weight decay).
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:  # a gradient built with create_graph
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Perform one optimization step (implemented by subclasses).

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss; called with grad enabled.

        Returns
        -------
        The closure's loss, or None.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    @staticmethod
    def _params_with_grad(group):
        """Yield ``(parameter, its data array, its gradient array)`` for each parameter of
        ``group`` that has a gradient; the gradient is negated when the group maximizes."""
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = -p.grad.data if group["maximize"] else p.grad.data
            yield p, _writable_data(p), grad

    @staticmethod
    def _run_closure(closure):
        """Evaluate ``closure`` (if any) with autograd enabled and return its loss."""
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # ------------------------------------------------------------------ state dicts

    def state_dict(self):
        """Return the optimizer state as a dict, in PyTorch's layout.

        Returns
        -------
        dict
            ``"state"``: ``{index: {name: Tensor or float}}`` for every parameter that has
            state; ``"param_groups"``: a list of dicts with every hyperparameter and
            ``"params"``, the list of the group's parameter indices.  Indices number the
            parameters across groups in order.

        Notes
        -----
        NOTE: unlike PyTorch, which returns references to its live buffers, the arrays
        here are copies: the returned dict is a snapshot that later steps do not change.
        """
        index_of: dict[int, int] = {}
        packed_groups = []
        next_index = 0
        for group in self.param_groups:
            packed = {key: copy.deepcopy(value) for key, value in group.items() if key != "params"}
            indices = []
            for p in group["params"]:
                if id(p) not in index_of:
                    index_of[id(p)] = next_index + len(indices)
                indices.append(index_of[id(p)])
            packed["params"] = indices
            next_index += len(indices)
            packed_groups.append(packed)

        packed_state = {}
        for key, value in self.state.items():
            packed_key = index_of.get(id(key), key) if isinstance(key, Tensor) else key
            packed_state[packed_key] = _copy_state(value)
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict):
        """Load optimizer state written by :meth:`state_dict` (minidl's or PyTorch's).

        Parameters
        ----------
        state_dict : dict
            ``{"state": ..., "param_groups": ...}``.  Array state may be minidl Tensors,
            NumPy arrays or torch tensors; it is copied and cast to each parameter's
            dtype and device.  Counters (``step``) may be numbers or 0-d tensors.
            Indices may be ints or digit strings (as after a JSON round trip).

        Raises
        ------
        ValueError
            If the number of groups, a group's number of parameters, or a state array's
            shape does not match this optimizer.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups', "
                f"got {got}"
            )
        groups = self.param_groups
        saved_groups = copy.deepcopy(list(state_dict["param_groups"]))
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"{name}.load_state_dict: loaded state dict has {len(saved_groups)} parameter "
                f"groups, this optimizer has {len(groups)}"
            )
        for i, (group, saved) in enumerate(zip(groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: parameter group {i} has "
                    f"{len(saved['params'])} parameters in the loaded state dict but "
                    f"{len(group['params'])} in this optimizer"
                )

        # saved index -> our parameter, pairing the groups' params in order
        param_of = {}
        for group, saved in zip(groups, saved_groups):
            for index, p in zip(saved["params"], group["params"]):
                param_of[_state_index(index)] = p

        new_state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            index = _state_index(key)
            if index in param_of:
                param = param_of[index]
                new_state[param] = self._cast_state(param, index, value)
            else:  # state not tied to a parameter is kept as is, like torch
                new_state[key] = copy.deepcopy(value)

        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for key, default in self.defaults.items():  # groups saved by older versions
                saved.setdefault(key, default)
            new_groups.append(saved)

        self.state = new_state
        self.param_groups = new_groups

    def _cast_state(self, param, index, value):
        """Copy one parameter's loaded state, casting arrays to the parameter's dtype/device."""
        if not isinstance(value, dict):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state for parameter {index} should "
                f"be a dict, got {type(value).__name__}"
            )
        out = {}
        for key, item in value.items():
            if key in self._scalar_state:
                out[key] = _as_number(item)
            elif _is_array_like(item):
                array = _as_array(item, like=param.data)
                if array.ndim > 0 and tuple(array.shape) != tuple(param.shape):
                    raise ValueError(
                        f"{type(self).__name__}.load_state_dict: state {key!r} of parameter "
                        f"{index} has shape {tuple(array.shape)}, but the parameter has shape "
                        f"{tuple(param.shape)}"
                    )
                out[key] = Tensor._wrap(array)
            else:
                out[key] = copy.deepcopy(item)
        return out

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers


def _copy_state(value):
    """Deep copy of one parameter's state dict, copying arrays (never aliasing live buffers)."""
    if isinstance(value, dict):
        return {key: _copy_state(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        return Tensor._wrap(value.data.copy())
    return copy.deepcopy(value)


def _is_array_like(value):
    """True for Tensors, NumPy/CuPy arrays and anything exposing ``__array__`` (torch)."""
    return isinstance(value, Tensor) or hasattr(value, "__array__") or hasattr(value, "shape")


def _as_array(value, like):
    """A fresh array holding ``value``, on ``like``'s device and (if floating) dtype."""
    data = value.data if isinstance(value, Tensor) else value
    if device_of(data) != "cuda":
        data = np.asarray(data)  # torch CPU tensors convert through __array__
    if device_of(data) != device_of(like):
        array = move(data, device_of(like))  # state saved on one device, loaded on another
    else:
        array = array_module(like).array(data, copy=True)  # never alias the caller's buffers
    if np.issubdtype(like.dtype, np.floating) and np.issubdtype(array.dtype, np.floating):
        array = array.astype(like.dtype, copy=False)
    return array


def _as_number(value):
    """A Python float from a number or a 0-d Tensor / array / torch tensor."""
    if isinstance(value, Tensor):
        value = value.data
    return float(value)
