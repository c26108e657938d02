"""Stochastic gradient descent, optionally with (Nesterov) momentum."""

from __future__ import annotations

from ..tensor import Tensor
from .optimizer import Optimizer, _check_flags, _check_min

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau` and
    weight decay :math:`\lambda`, each step does, for every parameter :math:`\theta`
    with a gradient :math:`g_t` (negated when ``maximize``):

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad\text{(if } \lambda \ne 0\text{)} \\
        b_t &\leftarrow \begin{cases} g_t & t = 1 \\
            \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases}
            \quad\text{(if } \mu \ne 0\text{)} \\
        g_t &\leftarrow g_t + \mu b_t \text{ (nesterov) or } b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts).
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    momentum : float, default 0
        Momentum factor :math:`\mu`.
    dampening : float, default 0
        Dampening :math:`\tau` applied to new gradients in the momentum buffer.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda`, added to the gradient.
    nesterov : bool, default False
        Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Maximize the objective (step along the gradient) instead of minimizing.
    foreach, differentiable, fused
        PyTorch's implementation switches, accepted so that code and state dicts carry
        over.  minidl has one implementation, so ``foreach`` and ``fused`` change
        nothing; ``differentiable=True`` is not supported.

    Notes
    -----
    NOTE: like PyTorch (and unlike Sutskever et al.), the learning rate multiplies the
    whole momentum buffer, and the buffer starts as the first gradient itself, so
    dampening only applies from the second step on.  State: ``momentum_buffer`` (a
    Tensor) per parameter, only when ``momentum != 0``.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([1.0, -2.0])).requires_grad_()
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> w.grad = minidl.from_numpy(np.array([0.5, 0.5]))
    >>> opt.step()
    >>> w.data
    array([ 0.95, -2.05])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        momentum=0,
        dampening=0,
        weight_decay=0,
        nesterov=False,
        *,
        maximize=False,
        foreach=None,
        differentiable=False,
        fused=None,
    ):
        _check_min("SGD", "learning rate", lr)
        _check_min("SGD", "momentum value", momentum)
        _check_min("SGD", "weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "SGD: Nesterov momentum requires a momentum and zero dampening "
                f"(got momentum={momentum}, dampening={dampening})"
            )
        _check_flags("SGD", differentiable, foreach, fused)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one SGD step on every parameter that has a gradient.

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
            momentum = group["momentum"]
            dampening = group["dampening"]
            weight_decay = group["weight_decay"]
            for p, param, grad in self._params_with_grad(group):
                # new arrays from here on: the caller's p.grad is never modified
                if weight_decay != 0:
                    grad = grad + weight_decay * param
                if momentum != 0:
                    state = self.state[p]
                    buffer = state.get("momentum_buffer")
                    if buffer is None:
                        buffer = Tensor._wrap(grad.copy())
                        state["momentum_buffer"] = buffer
                    else:
                        buf = buffer.data
                        buf *= momentum
                        buf += (1 - dampening) * grad
                    if group["nesterov"]:
                        grad = grad + momentum * buffer.data
                    else:
                        grad = buffer.data
                param -= lr * grad
        return loss
