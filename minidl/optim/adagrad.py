"""Adagrad: per-coordinate learning rates from the sum of all past squared gradients."""

from __future__ import annotations

from ..backend import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, _check_flags, _check_min

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al. 2011), as ``torch.optim.Adagrad``.

    For every parameter :math:`\theta` with a gradient :math:`g_t` (negated when
    ``maximize``), with :math:`s_0` = ``initial_accumulator_value`` everywhere:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad\text{(if } \lambda \ne 0\text{)} \\
        \tilde\gamma_t &= \gamma / (1 + (t - 1)\,\eta) \\
        s_t &\leftarrow s_{t-1} + g_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\gamma_t\, g_t / (\sqrt{s_t} + \epsilon)

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts).
    lr : float, default 1e-2
        Learning rate :math:`\gamma`.
    lr_decay : float, default 0
        Learning-rate decay :math:`\eta`.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda`, added to the gradient.
    initial_accumulator_value : float, default 0
        Starting value :math:`s_0` of the sum of squared gradients.
    eps : float, default 1e-10
        Added to the denominator for numerical stability.
    foreach, differentiable, fused
        PyTorch's implementation switches, accepted so that code and state dicts carry
        over.  They change nothing here; ``differentiable=True`` is not supported.
    maximize : bool, default False
        Maximize the objective instead of minimizing.

    Notes
    -----
    State per parameter: ``step`` (a Python float) and ``sum`` (:math:`s`).  As in
    PyTorch, the state of the parameters given to the constructor is created right
    away (so ``state_dict()`` lists them before any step), and
    NOTE: :math:`s_0` always comes from the constructor's
    ``initial_accumulator_value``, even for a group that sets its own (PyTorch does the
    same).

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([1.0])).requires_grad_()
    >>> opt = Adagrad([w], lr=0.5)
    >>> w.grad = minidl.from_numpy(np.array([4.0]))
    >>> opt.step()  # s = 16, w -= 0.5 * 4 / 4
    >>> np.round(w.data, 8)
    array([0.5])
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        lr_decay=0,
        weight_decay=0,
        initial_accumulator_value=0,
        eps=1e-10,
        foreach=None,
        *,
        maximize=False,
        differentiable=False,
        fused=None,
    ):
        _check_min("Adagrad", "learning rate", lr)
        _check_min("Adagrad", "lr_decay value", lr_decay)
        _check_min("Adagrad", "weight_decay value", weight_decay)
        _check_min("Adagrad", "initial_accumulator_value value", initial_accumulator_value)
        _check_min("Adagrad", "epsilon value", eps)
        _check_flags("Adagrad", differentiable, foreach, fused)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p)

    def _init_state(self, p):
        xp = array_module(p.data)
        state = self.state[p]
        state["step"] = 0.0
        state["sum"] = Tensor._wrap(
            xp.full_like(p.data, self.defaults["initial_accumulator_value"])
        )

    def step(self, closure=None):
        """Perform one Adagrad step on every parameter that has a gradient.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss.

        Returns
        -------
        The closure's loss, or None.
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            weight_decay = group["weight_decay"]
            for p, param, grad in self._params_with_grad(group):
                xp = array_module(param)

                state = self.state[p]
                if len(state) == 0:  # a parameter added later with add_param_group
                    self._init_state(p)
                state["step"] += 1
                step = state["step"]

                if weight_decay != 0:
                    grad = grad + weight_decay * param
                decayed_lr = lr / (1 + (step - 1) * group["lr_decay"])

                state_sum = state["sum"].data
                state_sum += grad * grad
                std = xp.sqrt(state_sum) + group["eps"]
                param -= decayed_lr * (grad / std)
        return loss
