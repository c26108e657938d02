"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""

from __future__ import annotations

from ..backend import array_module
from ..tensor import Tensor
from .optimizer import Optimizer, _check_flags, _check_min, _check_number

__all__ = ["Adam", "AdamW"]


def _check_betas(owner, betas):
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    for index, beta in enumerate((beta1, beta2)):
        _check_number(owner, f"beta parameter at index {index}", beta)
        if not 0.0 <= float(beta) < 1.0:
            raise ValueError(f"{owner}: Invalid beta parameter at index {index}: {beta}")
    return (beta1, beta2)


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam``.

    For every parameter :math:`\theta` with a gradient :math:`g_t` (negated when
    ``maximize``), with :math:`m_0 = v_0 = v^{max}_0 = 0` and :math:`t` the
    parameter's own step count:

    .. math::

        g_t &\leftarrow g_t + \lambda \theta_{t-1}
            \quad\text{(L2 weight decay, if } \lambda \ne 0\text{)} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t) \\
        \hat v_t &= \max(v^{max}_{t-1}, v_t) / (1 - \beta_2^t) \text{ (amsgrad; keeps }
            v^{max}_t = \max(v^{max}_{t-1}, v_t)\text{)}
            \text{ or } v_t / (1 - \beta_2^t) \\
        \theta_t &\leftarrow \theta_{t-1} - \gamma\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    With ``decoupled_weight_decay=True`` (AdamW) the gradient is left alone and the
    decay acts on the parameter directly, before the moments are updated:
    :math:`\theta_{t-1} \leftarrow \theta_{t-1} (1 - \gamma\lambda)`.

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts).
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates :math:`\beta_1, \beta_2` of the first and second moment averages.
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 0
        Weight decay :math:`\lambda` (L2 penalty, or decoupled; see above).
    amsgrad : bool, default False
        Use the running maximum of :math:`v_t` (AMSGrad, Reddi et al. 2018).
    maximize : bool, default False
        Maximize the objective instead of minimizing.
    decoupled_weight_decay : bool, default False
        Decoupled weight decay (this makes Adam into AdamW).
    foreach, capturable, differentiable, fused
        PyTorch's implementation switches, accepted so that code and state dicts carry
        over.  They change nothing here; ``differentiable=True`` is not supported.

    Notes
    -----
    State per parameter: ``step`` (a Python float; PyTorch uses a 0-d tensor),
    ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`) and, with amsgrad,
    ``max_exp_avg_sq`` (:math:`v^{max}`), all Tensors shaped like the parameter.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([1.0, -2.0])).requires_grad_()
    >>> opt = Adam([w], lr=0.1)
    >>> w.grad = minidl.from_numpy(np.array([0.5, -3.0]))
    >>> opt.step()  # the first Adam step moves each weight by about lr
    >>> np.round(w.data, 6)
    array([ 0.9, -1.9])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0,
        amsgrad=False,
        *,
        foreach=None,
        maximize=False,
        capturable=False,
        differentiable=False,
        fused=None,
        decoupled_weight_decay=False,
    ):
        owner = type(self).__name__
        _check_min(owner, "learning rate", lr)
        _check_min(owner, "epsilon value", eps)
        betas = _check_betas(owner, betas)
        _check_min(owner, "weight_decay value", weight_decay)
        _check_flags(owner, differentiable, foreach, fused)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def step(self, closure=None):
        """Perform one Adam step on every parameter that has a gradient.

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
            beta1, beta2 = (float(b) for b in group["betas"])
            eps = group["eps"]
            weight_decay = group["weight_decay"]
            amsgrad = group["amsgrad"]
            for p, param, grad in self._params_with_grad(group):
                xp = array_module(param)

                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0.0
                    state["exp_avg"] = Tensor._wrap(xp.zeros_like(param))
                    state["exp_avg_sq"] = Tensor._wrap(xp.zeros_like(param))
                    if amsgrad:
                        state["max_exp_avg_sq"] = Tensor._wrap(xp.zeros_like(param))
                state["step"] += 1
                step = state["step"]

                if weight_decay != 0:
                    if group["decoupled_weight_decay"]:
                        param *= 1 - lr * weight_decay
                    else:
                        grad = grad + weight_decay * param

                # the updates below reuse one scratch array per line instead of allocating
                # a fresh temporary for every operator: Adam runs on every parameter at
                # every step, and large short-lived arrays are slow to get from the OS
                exp_avg = state["exp_avg"].data
                exp_avg_sq = state["exp_avg_sq"].data
                exp_avg *= beta1
                scratch = (1 - beta1) * grad
                exp_avg += scratch                       # m = b1 m + (1 - b1) g
                exp_avg_sq *= beta2
                xp.multiply(grad, grad, out=scratch)
                scratch *= 1 - beta2
                exp_avg_sq += scratch                    # v = b2 v + (1 - b2) g^2

                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                if amsgrad:
                    max_exp_avg_sq = state["max_exp_avg_sq"].data
                    xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
                    second_moment = max_exp_avg_sq
                else:
                    second_moment = exp_avg_sq
                denom = xp.sqrt(second_moment, out=scratch)
                denom /= bias_correction2**0.5
                denom += eps                             # sqrt(v_hat) + eps
                update = xp.divide(exp_avg, denom, out=scratch)
                update *= lr / bias_correction1          # lr m_hat / (sqrt(v_hat) + eps)
                param -= update
        return loss


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Identical to ``Adam(..., decoupled_weight_decay=True)``: each step first shrinks the
    parameter, :math:`\theta \leftarrow \theta (1 - \gamma\lambda)`, then takes the plain
    Adam step (the decay never enters the moment estimates; Loshchilov & Hutter 2019).

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters to optimize, or parameter groups (dicts).
    lr : float, default 1e-3
        Learning rate :math:`\gamma`.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment averages.
    eps : float, default 1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default 1e-2
        Decoupled weight decay coefficient :math:`\lambda`.
    amsgrad : bool, default False
        Use the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Maximize the objective instead of minimizing.
    foreach, capturable, differentiable, fused
        Accepted for PyTorch compatibility; see :class:`Adam`.

    Examples
    --------
    >>> import numpy as np
    >>> import minidl
    >>> w = minidl.from_numpy(np.array([1.0])).requires_grad_()
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> w.grad = minidl.from_numpy(np.array([0.0]))
    >>> opt.step()  # zero gradient: only the decay acts, w * (1 - 0.1 * 0.5)
    >>> w.data
    array([0.95])
    """

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        amsgrad=False,
        *,
        maximize=False,
        foreach=None,
        capturable=False,
        differentiable=False,
        fused=None,
    ):
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict):
        """Load a state dict; AdamW groups always keep ``decoupled_weight_decay=True``."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
