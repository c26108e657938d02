"""Reverse-mode automatic differentiation: the ``Function`` node and the graph walk.

How the graph is built
----------------------
Every differentiable operation is a subclass of :class:`Function`.  Calling
``SomeOp.apply(x, y, **params)`` runs ``forward`` on the raw arrays and, when
gradients are enabled and some input requires one, wraps the result in a Tensor whose
``grad_fn`` is the Function instance.  The Function keeps references to its input
tensors, so the graph is the chain ``output.grad_fn -> inputs -> their grad_fn ...``.

How backward walks it
---------------------
Each Function has a *generation*: one more than the largest generation among its
inputs' producers.  A consumer therefore always has a larger generation than every
node that produced its inputs.  The walk pops nodes from a max-heap keyed on
generation, so a node runs only after every consumer of its outputs has added its
gradient contribution (this is the topological order Chainer uses).  The walk is a loop,
never recursion, so a graph 50,000 ops deep (an unrolled RNN) is fine.

Gradients accumulate with ``+=`` semantics, and broadcasting is undone here, once,
by summing a gradient back to the shape of the input it belongs to: individual
Functions may return a gradient of the broadcast shape.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading

import numpy as np

from minidl import backend

__all__ = [
    "Function",
    "backward",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "sum_to_shape",
]


class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether operations currently record the graph."""
    return _grad_mode.enabled


class _GradModeContext:
    """Base of ``no_grad``/``enable_grad``: a context manager that is also a decorator.

    Used as a decorator, every call enters a *fresh* context, so recursive or concurrent
    calls each restore the mode they found.  ``@no_grad`` works with or without
    parentheses, as in PyTorch.
    """

    mode = True

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if callable(func):  # used as a bare decorator: @no_grad
            return self(func)
        return self

    def __init__(self, func=None):
        self.prev = None

    def __enter__(self):
        self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self.prev
        return False

    def _fresh(self):
        return type(self)()

    def __call__(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_GradModeContext):
    """Context manager / decorator in which no graph is recorded.

    Examples
    --------
    >>> import minidl
    >>> w = minidl.ones(3, requires_grad=True)
    >>> with minidl.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradModeContext):
    """Context manager / decorator that turns recording back on inside ``no_grad``."""

    mode = True


class set_grad_enabled(_GradModeContext):
    """Turn graph recording on or off.

    Like ``torch.set_grad_enabled``: called as a function it sets the mode at once; in a
    ``with`` block it restores the previous mode on exit; as a decorator it applies the
    mode only while the decorated function runs.
    """

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        self.prev = _grad_mode.enabled
        self.mode = bool(mode)
        _grad_mode.enabled = self.mode

    def __enter__(self):
        # the mode was already set (and the previous one saved) by __init__, except for
        # the fresh copies made per decorated call
        if self.prev is None:
            self.prev = _grad_mode.enabled
        _grad_mode.enabled = self.mode
        return self

    def _fresh(self):
        fresh = object.__new__(type(self))
        fresh.mode, fresh.prev = self.mode, None
        return fresh

    def __call__(self, func):
        _grad_mode.enabled = self.prev  # decorating must not change the mode now
        return super().__call__(func)


def sum_to_shape(grad, shape):
    """Sum ``grad`` over broadcast dimensions so that it has ``shape``.

    If ``y = x + b`` broadcast ``b`` of shape (3,) to (4, 3), then
    dL/db = sum over axis 0 of dL/dy.  Leading axes added by broadcasting are summed
    away; axes that were size 1 in ``shape`` are summed with ``keepdims``.
    """
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    n_lead = grad.ndim - len(shape)
    if n_lead < 0:
        raise RuntimeError(f"gradient of shape {grad.shape} cannot be reduced to shape {shape}")
    axes = tuple(range(n_lead)) + tuple(
        n_lead + i for i, size in enumerate(shape) if size == 1 and grad.shape[n_lead + i] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if n_lead:
        grad = grad.reshape(grad.shape[n_lead:])
    if grad.shape != shape:
        raise RuntimeError(f"gradient of shape {grad.shape} does not match input shape {shape}")
    return grad


_node_counter = itertools.count()
_TENSOR_API = None


def _tensor_api():
    # minidl.tensor imports this module, so its names are fetched on first use
    global _TENSOR_API
    if _TENSOR_API is None:
        from minidl.tensor import Tensor, as_tensor_like

        _TENSOR_API = (Tensor, as_tensor_like)
    return _TENSOR_API


class Function:
    """One differentiable operation: a node of the graph.

    Subclasses implement

    - ``forward(self, *arrays)``: takes ndarrays (NumPy or CuPy), returns one ndarray or
      a tuple of them.  It stores on ``self`` only what backward needs.
    - ``backward(self, *grad_outputs)``: takes one gradient array per output and returns
      one gradient per input (a single array if there is one input), ``None`` for inputs
      that need none.  ``self.needs_input_grad[i]`` says whether input ``i`` needs one,
      so expensive gradients nobody asked for can be skipped.

    Non-tensor parameters (an axis, a padding) are passed to :meth:`apply` as keyword
    arguments and become attributes of the instance before ``forward`` runs.

    Examples
    --------
    >>> import numpy as np, minidl
    >>> class Square(minidl.Function):
    ...     def forward(self, x):
    ...         self.x = x
    ...         return x * x
    ...     def backward(self, grad):
    ...         return 2 * self.x * grad
    >>> x = minidl.tensor([3.0], requires_grad=True)
    >>> Square.apply(x).backward(minidl.ones(1))
    >>> x.grad.tolist()
    [6.0]
    """

    #: set by subclasses whose outputs are never differentiable (argmax, comparisons)
    differentiable = True

    def __init__(self, **params):
        self.__dict__.update(params)

    # NOTE: subclasses override these two.
    def forward(self, *arrays):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")

    @classmethod
    def apply(cls, *inputs, **params):
        """Run the op on tensors (or array-likes) and record it in the graph if needed."""
        # NOTE: this runs for every op, so it is written for speed: plain loops, no
        # generator expressions, the common single-output case first.
        Tensor, as_tensor_like = _tensor_api()
        fn = cls(**params)
        tensors = []
        any_requires_grad = False
        for x in inputs:
            t = x if type(x) is Tensor or isinstance(x, Tensor) else as_tensor_like(x, inputs)
            tensors.append(t)
            if t._requires_grad:
                any_requires_grad = True
        if len(tensors) > 1 and backend.cupy_loaded():
            backend.check_same_device(cls.__name__, tensors)
        outputs = fn.forward(*[t._data for t in tensors])
        single = type(outputs) is not tuple
        if single:
            outputs = (outputs,)
        # NumPy's full reductions return scalars (np.float32), not 0-d arrays: make them
        # arrays so every Tensor.data supports in-place updates and array methods
        outputs = tuple(np.asarray(o) if isinstance(o, np.generic) else o for o in outputs)

        if not (any_requires_grad and cls.differentiable and _grad_mode.enabled):
            if single:
                return Tensor._wrap(outputs[0])
            return tuple(Tensor._wrap(out) for out in outputs)

        fn.inputs = tensors
        fn.needs_input_grad = tuple(t._requires_grad for t in tensors)
        generation = 0
        for t in tensors:
            if t.grad_fn is not None and t.grad_fn.generation > generation:
                generation = t.grad_fn.generation
        fn.generation = generation + 1
        fn.output_meta = tuple((out.shape, out.dtype) for out in outputs)
        fn._order = next(_node_counter)
        fn._released = False
        # integer outputs (the indices of max(dim)) are never differentiable, as in PyTorch
        results = tuple(
            Tensor._wrap(out, grad_fn=fn, output_index=i, requires_grad=True)
            if out.dtype.kind in "fc" else Tensor._wrap(out)
            for i, out in enumerate(outputs)
        )
        return results[0] if single else results

    @property
    def next_functions(self):
        """The producers of this node's inputs, as in PyTorch (``None`` for leaves)."""
        return tuple((t.grad_fn, 0) for t in getattr(self, "inputs", ()))

    def _release(self):
        """Drop everything forward saved, so the graph's memory can be reclaimed."""
        keep = {"generation", "_order", "output_meta", "needs_input_grad"}
        for key in list(self.__dict__):
            if key not in keep:
                del self.__dict__[key]
        self._released = True

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Compute the gradients of ``tensors`` with respect to the graph's leaves.

    Leaf tensors with ``requires_grad=True`` get ``.grad`` accumulated (``+=``);
    non-leaf tensors keep theirs only after ``retain_grad()``.  Unless
    ``retain_graph`` is true, every node visited frees what it saved, and a second
    backward through it raises a clear error.
    """
    from minidl.tensor import Tensor

    if isinstance(tensors, Tensor):
        tensors = [tensors]
        grad_tensors = [grad_tensors]
    elif grad_tensors is None:
        grad_tensors = [None] * len(tensors)

    # gradients flowing into each node's outputs: {node: [grad per output]}
    pending: dict[Function, list] = {}
    heap: list = []
    seen: set[int] = set()
    leaf_grads: dict[int, list] = {}
    root_ids: list[int] = []

    def push(node):
        if id(node) not in seen:
            seen.add(id(node))
            # heapq is a min-heap: negate the generation; the counter breaks ties stably
            heapq.heappush(heap, (-node.generation, -node._order, id(node), node))

    for t, g in zip(tensors, grad_tensors):
        if not t.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if g is None:
            if t.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; output has shape "
                    f"{tuple(t.shape)}: pass a gradient, e.g. loss.backward(torch.ones_like(loss))"
                )
            g_arr = backend.array_module(t.data).ones_like(t.data)
        else:
            if isinstance(g, Tensor) or backend.device_of(g) == "cuda":
                g_arr = g.data if isinstance(g, Tensor) else g
            else:  # host data (a list, a NumPy array) goes to the output's device
                g_arr = backend.move(np.asarray(g, dtype=t.dtype), backend.device_of(t.data))
            if backend.device_of(g_arr) != backend.device_of(t.data):
                backend.raise_device_mismatch("backward", [t.data, g_arr])
            if g_arr.shape != t.shape:
                raise RuntimeError(
                    f"backward: gradient has shape {g_arr.shape}, but output has shape {t.shape}"
                )
        root_ids.append(id(g_arr))
        if t.grad_fn is None:
            t._accumulate_grad(t._run_hooks(g_arr))
            continue
        node = t.grad_fn
        if node._released:
            raise _second_backward_error(node)
        slots = pending.setdefault(node, [None] * len(node.output_meta))
        slots[t._output_index] = g_arr if slots[t._output_index] is None else (
            slots[t._output_index] + g_arr
        )
        push(node)

    while heap:
        *_, node = heapq.heappop(heap)
        if node._released:
            raise _second_backward_error(node)
        slots = pending.pop(node)
        xp = None
        for i, (shape, dtype) in enumerate(node.output_meta):
            if slots[i] is None:
                xp = xp or backend.array_module(node.inputs[0].data)
                slots[i] = xp.zeros(shape, dtype=dtype)
        # hooks and retain_grad() of non-leaf outputs see the total gradient of that output
        for out in node.__dict__.get("_watched_outputs", ()):
            slots[out._output_index] = out._run_hooks_and_retain(slots[out._output_index])
        with no_grad():
            grads = node.backward(*slots)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(node.inputs):
            raise RuntimeError(
                f"{type(node).__name__}.backward returned {len(grads)} gradients for "
                f"{len(node.inputs)} inputs"
            )
        for inp, grad, needed in zip(node.inputs, grads, node.needs_input_grad):
            if grad is None or not needed:
                continue
            if isinstance(grad, np.generic):  # 0-d arithmetic in NumPy yields scalars
                grad = np.asarray(grad)
            grad = sum_to_shape(grad, inp.shape)
            if grad.dtype != inp.dtype:
                grad = grad.astype(inp.dtype)
            if inp.grad_fn is None:
                # leaves accumulate once, after the walk, so that their hooks see the total
                key = id(inp)
                if key in leaf_grads:
                    leaf_grads[key][1] = leaf_grads[key][1] + grad
                else:
                    leaf_grads[key] = [inp, grad]
            else:
                parent = inp.grad_fn
                if parent._released:
                    raise _second_backward_error(parent)
                parent_slots = pending.setdefault(parent, [None] * len(parent.output_meta))
                idx = inp._output_index
                parent_slots[idx] = grad if parent_slots[idx] is None else parent_slots[idx] + grad
                push(parent)
        if not retain_graph:
            node._release()

    # A gradient array may become .grad without a copy only if nothing else can hold it:
    # not a view, writable, not the caller's root gradient, not given to another leaf.
    handed_out = set(root_ids)
    for leaf, grad in leaf_grads.values():
        grad = leaf._run_hooks(grad)
        shared = (
            id(grad) in handed_out
            or getattr(grad, "base", None) is not None
            or not getattr(grad.flags, "writeable", True)
        )
        handed_out.add(id(grad))
        leaf._accumulate_grad(grad, owned=not shared)


def _second_backward_error(node):
    return RuntimeError(
        f"Trying to backward through the graph a second time (through {type(node).__name__}), "
        "or to use saved values after they have been freed. Saved values are freed after "
        "backward(); call backward(retain_graph=True) the first time if you need to "
        "backward through the graph again."
    )
