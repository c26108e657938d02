"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from ..backend import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, _check_flags, _check_min

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``.

    For every parameter :math:`\theta` with a gradient :math:`g_t` (negated when
    ``maximize``), with :math:`v_0 = \bar g_0 = b_0 = 0`:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad\text{(if } \lambda \ne 0\text{)} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \tilde v_t &= v_t - \bar g_t^2 \text{ with }
            \bar g_t \leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t
            \text{ (centered) or } \tilde v_t = v_t \\
        b_t &\leftarrow \mu b_{t-1} + g_t / (\sqrt{\tilde v_t} + \epsilon),\quad
            \theta_t \leftarrow \theta_{t-1} - \gamma b_t
            \quad\text{(if } \mu > 0\text{)} \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma g_t / (\sqrt{\tilde v_t} + \epsilon)
            \quad\text{(otherwise)}

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts).
    lr : float, default 1e-2
        Learning rate :math:`\gamma`.
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha` of the squared-gradient average.
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 0
        L2 penalty :math:`\lambda`, added to the gradient.
    momentum : float, default 0
        Momentum factor :math:`\mu`.
    centered : bool, default False
        Normalize by an estimate of the gradient's variance instead of its raw second
        moment (Graves 2013).
    capturable, foreach, differentiable
        PyTorch's implementation switches, accepted so that code and state dicts carry
        over.  They change nothing here; ``differentiable=True`` is not supported.
    maximize : bool, default False
        Maximize the objective instead of minimizing.

    Notes
    -----
    State per parameter: ``step`` (a Python float), ``square_avg`` (:math:`v`),
    ``momentum_buffer`` (:math:`b`, when ``momentum > 0``) and ``grad_avg``
    (:math:`\bar g`, when centered).

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([1.0])).requires_grad_()
    >>> opt = RMSprop([w], lr=0.01, alpha=0.75)
    >>> w.grad = minidl.from_numpy(np.array([2.0]))
    >>> opt.step()  # v = 0.25 * 4 = 1, so w -= 0.01 * 2 / 1
    >>> np.round(w.data, 8)
    array([0.98])
    """

    def __init__(
        self,
        params,
        lr=1e-2,
        alpha=0.99,
        eps=1e-8,
        weight_decay=0,
        momentum=0,
        centered=False,
        capturable=False,
        foreach=None,
        maximize=False,
        differentiable=False,
    ):
        _check_min("RMSprop", "learning rate", lr)
        _check_min("RMSprop", "epsilon value", eps)
        _check_min("RMSprop", "momentum value", momentum)
        _check_min("RMSprop", "weight_decay value", weight_decay)
        _check_min("RMSprop", "alpha value", alpha)
        _check_flags("RMSprop", differentiable, foreach)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one RMSprop step on every parameter that has a gradient.

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
            alpha = group["alpha"]
            momentum = group["momentum"]
            weight_decay = group["weight_decay"]
            for p, param, grad in self._params_with_grad(group):
                xp = array_module(param)

                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["square_avg"] = Tensor._wrap(xp.zeros_like(param))
                    if momentum > 0:
                        state["momentum_buffer"] = Tensor._wrap(xp.zeros_like(param))
                    if group["centered"]:
                        state["grad_avg"] = Tensor._wrap(xp.zeros_like(param))
                state["step"] += 1

                if weight_decay != 0:
                    grad = grad + weight_decay * param

                square_avg = state["square_avg"].data
                square_avg *= alpha
                square_avg += (1 - alpha) * (grad * grad)
                if group["centered"]:
                    grad_avg = state["grad_avg"].data
                    grad_avg *= alpha
                    grad_avg += (1 - alpha) * grad
                    avg = xp.sqrt(square_avg - grad_avg * grad_avg)
                else:
                    avg = xp.sqrt(square_avg)
                avg += group["eps"]

                if momentum > 0:
                    buf = state["momentum_buffer"].data
                    buf *= momentum
                    buf += grad / avg
                    param -= lr * buf
                else:
                    param -= lr * (grad / avg)
        return loss
