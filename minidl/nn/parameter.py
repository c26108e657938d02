"""``Parameter``: a Tensor that a :class:`~minidl.nn.Module` registers as learnable.

A Parameter is an ordinary Tensor (same data, same autograd) with two differences:
assigning one as a module attribute (``self.weight = Parameter(...)``) registers it,
so that ``module.parameters()`` and ``state_dict()`` find it, and it requires a
gradient by default.
"""

from __future__ import annotations

import numpy as np

from minidl.tensor import Tensor

__all__ = ["Parameter"]


def _as_array(data):
    """The array a Parameter will hold, without copying when one is given."""
    if data is None:
        from minidl.tensor import get_default_dtype

        return np.empty((0,), dtype=get_default_dtype())
    if isinstance(data, Tensor):
        return data.data
    if isinstance(data, np.ndarray) or hasattr(data, "__cuda_array_interface__"):
        # NOTE: an ndarray is kept as given (its dtype too): Parameter(arr) shares memory
        # with arr, as torch.nn.Parameter(t) shares memory with t.
        return data
    # Python numbers and lists take the default dtype (float32), as torch.tensor does.
    import minidl

    return minidl.tensor(data).data


class Parameter(Tensor):
    """A Tensor that is a module's learnable parameter.

    Parameters
    ----------
    data : Tensor, ndarray or array-like, optional
        The values.  A Tensor or an ndarray is shared, not copied (in-place changes to
        one show in the other).  Other array-likes are converted with the default dtype.
        ``None`` gives an empty float32 parameter.
    requires_grad : bool, default True
        Whether the optimiser should get a gradient for it.

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.nn import Parameter
    >>> w = Parameter(np.zeros((2, 3), dtype=np.float32))
    >>> w.requires_grad, w.shape, w.is_leaf
    (True, (2, 3), True)
    """

    def __init__(self, data=None, requires_grad=True):
        array = _as_array(data)
        if requires_grad and array.dtype.kind not in "fc":
            raise RuntimeError(
                f"Parameter: only tensors of floating point dtype can require gradients, "
                f"got {array.dtype} (shape {tuple(array.shape)}); pass requires_grad=False "
                "or convert the data to float"
            )
        super().__init__(array, requires_grad=bool(requires_grad))
        # Tensor(...) may copy or convert its argument; a Parameter shares it instead.
        self.data = array

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        result = type(self)(self.data.copy(), self.requires_grad)
        if self.grad is not None:
            result.grad = Tensor._wrap(self.grad.data.copy())
        memo[id(self)] = result
        return result
