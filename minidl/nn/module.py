"""``Module``: the base class of every layer and model.

A Module owns three ordered dictionaries, filled by plain attribute assignment:

- ``_parameters``: :class:`~minidl.nn.Parameter` objects (learnable),
- ``_buffers``: Tensors that are state but not learnable (BatchNorm's running mean),
- ``_modules``: child Modules.

``self.fc = Linear(4, 3)`` lands in ``_modules['fc']``; ``self.fc.weight`` is then found
by ``model.named_parameters()`` as ``"fc.weight"``.  The names are PyTorch's, so a
``state_dict`` moves between minidl and PyTorch as a dict of arrays.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple

import numpy as np

from minidl.autograd import no_grad
from minidl.backend import device_of, move, parse_device
from minidl.nn.parameter import Parameter
from minidl.tensor import Tensor

__all__ = ["Module"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What :meth:`Module.load_state_dict` returns: the keys it could not match."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class RemovableHandle:
    """Returned by ``register_forward_hook`` and friends; ``handle.remove()`` unregisters."""

    _next_id = itertools.count()

    def __init__(self, hooks_dict):
        self.hooks_dict = hooks_dict
        self.id = next(RemovableHandle._next_id)

    def remove(self):
        self.hooks_dict.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def _addindent(text, num_spaces):
    """Indent every line but the first (how nested module reprs are laid out)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    first = lines.pop(0)
    lines = [(num_spaces * " ") + line if line.strip() else "" for line in lines]
    return first + "\n" + "\n".join(lines)


def _checkpoint_array(value):
    """The array behind a state_dict entry: a Tensor, an ndarray, or anything array-like
    (a PyTorch CPU tensor converts through ``__array__``).  ``None`` if not array-like."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__"):
        return value
    if hasattr(value, "__array__"):
        return np.asarray(value)
    return None


def _validate_name(kind, name):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')


class Module:
    """Base class for all neural-network layers and models.

    Subclasses call ``super().__init__()`` first, assign their parameters and submodules
    as attributes, and implement :meth:`forward`.  Calling the module runs ``forward``
    (and any hooks).

    Examples
    --------
    >>> import minidl
    >>> from minidl import nn
    >>> class TwoLayer(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(4, 8)
    ...         self.out = nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> model = TwoLayer()
    >>> [name for name, _ in model.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    >>> model(minidl.randn(5, 4)).shape
    (5, 2)
    """

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments {args} {kwargs}"
            )
        # object.__setattr__ bypasses our own __setattr__, which needs these to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    # ------------------------------------------------------------------ forward

    def forward(self, *args, **kwargs):
        """Compute the module's output; every subclass defines it."""
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def register_forward_pre_hook(self, hook):
        """Run ``hook(module, args)`` before ``forward``; a non-None result replaces the args.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook):
        """Run ``hook(module, args, output)`` after ``forward``; a non-None result replaces
        the output (used to record activations for interpretation).

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration

    def register_parameter(self, name, param):
        """Add a parameter (a :class:`Parameter` or ``None``) under ``name``."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameter before Module.__init__() call")
        _validate_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is None:
            self._parameters[name] = None
            return
        if not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(minidl.nn.Parameter or None required)"
            )
        if param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must "
                "be created explicitly; to express '{name}' as a function of another Tensor, "
                "compute the value in the forward() method."
            )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: state that is saved (if ``persistent``) but not learned.

        ``tensor`` may be a Tensor, an ndarray (wrapped without a copy) or ``None``.
        Non-persistent buffers are left out of :meth:`state_dict`.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        _validate_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        tensor = self._as_buffer(name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    @staticmethod
    def _as_buffer(name, tensor):
        if tensor is None or isinstance(tensor, Tensor):
            return tensor
        if isinstance(tensor, np.ndarray) or hasattr(tensor, "__cuda_array_interface__"):
            return Tensor._wrap(tensor)
        raise TypeError(
            f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
            "(Tensor, ndarray or None required)"
        )

    def add_module(self, name, module):
        """Add a child module under ``name`` (``None`` leaves an empty slot)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _validate_name("module", name)
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    def register_module(self, name, module):
        """Alias of :meth:`add_module`."""
        self.add_module(name, module)

    def __setattr__(self, name, value):
        def remove_from(*dicts_or_sets):
            for d in dicts_or_sets:
                if name in d:
                    if isinstance(d, dict):
                        del d[name]
                    else:
                        d.discard(name)

        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            remove_from(self.__dict__, self._buffers, self._modules,
                        self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(minidl.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            modules = self.__dict__.get("_modules")
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            remove_from(self.__dict__, self._parameters, self._buffers,
                        self._non_persistent_buffers_set)
            modules[name] = value
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(minidl.nn.Module or None expected)"
                )
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            self._buffers[name] = self._as_buffer(name, value)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Only called when normal lookup fails: look in the three registries.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = d.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        keys = (
            list(dir(type(self))) + list(self.__dict__) + list(self._parameters)
            + list(self._modules) + list(self._buffers)
        )
        return sorted(k for k in set(keys) if not k[0].isdigit())

    # ------------------------------------------------------------------ traversal

    def _named_members(self, get_members, prefix="", recurse=True, remove_duplicate=True):
        # A member shared by two modules (tied weights) is yielded once, under its first name.
        seen = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for name, value in get_members(module):
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                if remove_duplicate:
                    seen.add(id(value))
                yield (module_prefix + ("." if module_prefix else "") + name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(name, parameter)`` pairs, in registration order, depth first."""
        yield from self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse=True):
        """Yield the parameters (each once, even if shared)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(name, buffer)`` pairs, persistent or not."""
        yield from self._named_members(
            lambda m: m._buffers.items(), prefix, recurse, remove_duplicate
        )

    def buffers(self, recurse=True):
        """Yield the buffers."""
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def named_children(self):
        """Yield ``(name, module)`` for the direct children (each module once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield the direct child modules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield ``(name, module)`` for this module (name ``prefix``) and all descendants,
        depth first in registration order."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        # An explicit stack instead of recursion: deep Sequentials never hit the limit.
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            yield name, module
            kids = []
            for child_name, child in module._modules.items():
                if child is None:
                    continue
                if remove_duplicate:
                    if id(child) in memo:
                        continue
                    memo.add(id(child))
                kids.append((name + ("." if name else "") + child_name, child))
            stack.extend(reversed(kids))

    def modules(self):
        """Yield this module and every descendant (each once)."""
        for _, module in self.named_modules():
            yield module

    def get_submodule(self, target):
        """The descendant named by a dotted path such as ``"encoder.0"``."""
        if target == "":
            return self
        module = self
        for item in target.split("."):
            if not isinstance(module, Module) or item not in module._modules:
                raise AttributeError(
                    f"{module._get_name()} has no attribute `{item}` (looking up '{target}')"
                )
            module = module._modules[item]
        return module

    def get_parameter(self, target):
        """The parameter named by a dotted path such as ``"encoder.0.weight"``."""
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._parameters:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}`")
        return module._parameters[name]

    # ------------------------------------------------------------------ modes

    def train(self, mode=True):
        """Set training mode (dropout active, batch-norm batch statistics) recursively."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Set evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Turn gradients of all parameters on or off (e.g. to freeze a pretrained part)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset the parameters' gradients: to ``None`` (default) or to zeros in place."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                if param.grad.grad_fn is not None:
                    param.grad = param.grad.detach()
                param.grad.data[...] = 0

    def apply(self, fn):
        """Call ``fn`` on every submodule (children first) and on ``self``; returns ``self``.

        The usual use is custom initialisation: ``model.apply(init_weights)``.
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ dtype and device

    def _apply(self, fn):
        """Replace the array of every parameter, gradient and buffer by ``fn(array)``.

        Parameters keep their identity (only ``.data`` changes), so an optimizer made
        before ``model.double()`` still holds the model's parameters, as in PyTorch.
        """
        for module in self.children():
            module._apply(fn)
        for param in self._parameters.values():
            if param is None:
                continue
            param.data = fn(param.data)
            if param.grad is not None:
                param.grad = Tensor._wrap(fn(param.grad.data))
        for buf in self._buffers.values():
            if buf is not None:
                buf.data = fn(buf.data)
        return self

    def to(self, *args, **kwargs):
        """Cast floating-point parameters and buffers to a dtype, and/or move them to a
        device, in place; returns ``self``.

        Accepts ``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(tensor)`` and
        the keywords ``dtype=`` and ``device=``.  Integer buffers keep their dtype.

        Examples
        --------
        >>> from minidl import nn
        >>> layer = nn.Linear(2, 3).to("float64")
        >>> str(layer.weight.dtype)
        'float64'
        """
        device, dtype = _parse_to(args, kwargs)
        if dtype is not None and dtype.kind not in "fc":
            raise TypeError(
                "nn.Module.to only accepts floating point dtypes, but got desired "
                f"dtype={dtype}"
            )

        def convert(array):
            if dtype is not None and array.dtype.kind in "fc" and array.dtype != dtype:
                array = array.astype(dtype)
            if device is not None:
                array = _to_device(array, device)
            return array

        return self._apply(convert)

    def float(self):
        """Cast floating-point parameters and buffers to float32."""
        return self.to(np.float32)

    def double(self):
        """Cast floating-point parameters and buffers to float64."""
        return self.to(np.float64)

    def half(self):
        """Cast floating-point parameters and buffers to float16."""
        return self.to(np.float16)

    def cpu(self):
        """Move parameters and buffers to host memory (NumPy arrays)."""
        return self.to("cpu")

    def cuda(self, device=None):
        """Move parameters and buffers to the GPU (CuPy arrays)."""
        return self.to("cuda" if device is None else device)

    # ------------------------------------------------------------------ state dict

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.detach()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = buf if keep_vars else buf.detach()

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """The module's state: parameters and persistent buffers, by dotted name.

        Values are detached Tensors sharing memory with the module (the Parameters
        themselves if ``keep_vars``).  The keys are PyTorch's for the same architecture.

        Returns
        -------
        collections.OrderedDict
            ``{"0.weight": Tensor, "0.bias": Tensor, ...}``
        """
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(
                    destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars
                )
        return destination

    def _load_from_state_dict(
        self, state_dict, prefix, strict, missing_keys, unexpected_keys, error_msgs, assign
    ):
        """Load this module's own entries (not its children's) from ``state_dict``.

        Subclasses whose saved format changed may override this to convert old keys.
        """
        persistent_buffers = {
            k: v for k, v in self._buffers.items() if k not in self._non_persistent_buffers_set
        }
        local_state = {
            k: v for k, v in itertools.chain(self._parameters.items(), persistent_buffers.items())
            if v is not None
        }
        for name, current in local_state.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            array = _checkpoint_array(value)
            if array is None:
                error_msgs.append(
                    f'While copying the parameter named "{key}", expected a Tensor or an '
                    f"array from checkpoint but received {type(value)}"
                )
                continue
            # PyTorch accepts a 1-element vector for a scalar (older checkpoints)
            if current.ndim == 0 and array.ndim == 1 and array.shape[0] == 1:
                array = array.reshape(())
            if tuple(array.shape) != tuple(current.shape):
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(array.shape)} "
                    f"from checkpoint, the shape in current model is {tuple(current.shape)}."
                )
                continue
            try:
                with no_grad():
                    if assign:
                        self._assign_from_checkpoint(name, current, value, array)
                    else:
                        target = current.data
                        target[...] = _to_device(array, _device_name(target))
            except Exception as exc:  # noqa: BLE001 - reported with the key, like PyTorch
                error_msgs.append(
                    f'While copying the parameter named "{key}", whose dimensions in the model '
                    f"are {tuple(current.shape)} and whose dimensions in the checkpoint are "
                    f"{tuple(array.shape)}, an exception occurred : {exc.args}."
                )
        for key in state_dict:
            if not key.startswith(prefix):
                continue
            parts = key[len(prefix):].split(".", 1)
            if len(parts) > 1:
                if parts[0] not in self._modules:
                    unexpected_keys.append(key)
            elif parts[0] not in local_state:
                unexpected_keys.append(key)

    def _assign_from_checkpoint(self, name, current, value, array):
        # assign=True: the module takes the checkpoint's tensor itself (its dtype, its memory)
        if isinstance(current, Parameter):
            if isinstance(value, Parameter):
                value.requires_grad_(current.requires_grad)
                new = value
            else:
                new = Parameter(array, requires_grad=current.requires_grad)
            self._parameters[name] = new
        else:
            self._buffers[name] = value if isinstance(value, Tensor) else Tensor._wrap(array)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy parameters and buffers from ``state_dict`` into this module and its children.

        Parameters
        ----------
        state_dict : mapping of str to Tensor or array
            As returned by :meth:`state_dict` (of this library or of PyTorch, converted
            to NumPy arrays or passed as CPU tensors).
        strict : bool, default True
            Raise if any key is missing or unexpected.  Shape mismatches always raise.
        assign : bool, default False
            Take the checkpoint's arrays (and dtypes) instead of copying values into the
            existing arrays (which keeps the model's dtype).

        Returns
        -------
        namedtuple ``(missing_keys, unexpected_keys)``

        Raises
        ------
        RuntimeError
            Listing every missing, unexpected (when ``strict``) and mis-shaped key.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(
                f"Expected state_dict to be dict-like, got {type(state_dict).__name__}."
            )
        state_dict = OrderedDict(state_dict)
        missing_keys, unexpected_keys, error_msgs = [], [], []

        # An explicit stack instead of recursion; each child sees only its own keys.
        stack = [(self, state_dict, "")]
        while stack:
            module, local_state, prefix = stack.pop()
            module._load_from_state_dict(
                local_state, prefix, strict, missing_keys, unexpected_keys, error_msgs, assign
            )
            children = []
            for name, child in module._modules.items():
                if child is None:
                    continue
                child_prefix = prefix + name + "."
                child_state = {k: v for k, v in local_state.items() if k.startswith(child_prefix)}
                children.append((child, child_state, child_prefix))
            stack.extend(reversed(children))

        if strict:
            if unexpected_keys:
                error_msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected_keys)))
            if missing_keys:
                error_msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing_keys)))
        if error_msgs:
            raise RuntimeError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(
                    type(self).__name__, "\n\t".join(error_msgs)
                )
            )
        return _IncompatibleKeys(missing_keys, unexpected_keys)

    # ------------------------------------------------------------------ repr

    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The text inside the parentheses of this module's repr (override to add it)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            "(" + key + "): " + _addindent(repr(module), 2)
            for key, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


# ---------------------------------------------------------------------- helpers for to()


def _is_device(x):
    """True for what names a device: "cpu", "cuda", "cuda:0", a torch.device."""
    if type(x).__name__ == "device" and hasattr(x, "type"):
        return True
    if not isinstance(x, str):
        return False
    try:
        np.dtype(x)
    except TypeError:
        return True  # not a dtype name: a device string (checked by parse_device)
    return False


def _parse_to(args, kwargs):
    """``(device, dtype)`` from the many call forms of ``Module.to``."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif _is_device(arg):
            device = arg
        elif arg is not None:
            dtype = arg
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"to(): expected a dtype or a device ('cpu', 'cuda'), got {dtype!r}"
            ) from None
    if device is not None:
        device = parse_device(device, "Module.to()")
    return device, dtype


def _device_name(array):
    return device_of(array)


def _to_device(array, device):
    """``array`` on ``device`` ("cpu" -> NumPy, "cuda" -> CuPy); unchanged if already there.

    Raises the errors of :func:`minidl.cuda.require_cupy` when CuPy or a GPU is missing.
    """
    return move(array, parse_device(device, "Module.to()"))
