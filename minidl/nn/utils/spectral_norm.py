r"""Spectral normalisation of a layer's weight, as ``torch.nn.utils.spectral_norm``.

Miyato et al. (2018), *Spectral Normalization for Generative Adversarial Networks*: a
layer :math:`x \mapsto Wx` is :math:`\sigma(W)`-Lipschitz, where :math:`\sigma(W)` is the
largest singular value of :math:`W`; dividing the weight by it makes the layer 1-Lipschitz,
and a network of such layers and 1-Lipschitz activations (ReLU, leaky ReLU) is 1-Lipschitz
too.  That is the constraint a GAN's discriminator needs to give the generator useful
gradients, and unlike a gradient penalty it needs only first-order gradients.

:math:`\sigma` is estimated by **power iteration** on the weight reshaped to a matrix
:math:`W \in \mathbb{R}^{h \times w}` (``h`` = output channels, ``w`` = the rest):

.. math::

    v \leftarrow \frac{W^\top u}{\lVert W^\top u\rVert}, \qquad
    u \leftarrow \frac{W v}{\lVert W v\rVert}, \qquad
    \sigma \approx u^\top W v, \qquad \bar W = W / \sigma .

``u`` and ``v`` are buffers carried from one forward pass to the next, so one iteration
per training step is enough (the weight changes slowly); they are treated as constants
in backward, while the gradient flows through both :math:`W` and :math:`\sigma(W)`:
:math:`\partial\sigma/\partial W = u v^\top`.

The layout is PyTorch's (the pre-parametrisation ``spectral_norm``): the layer keeps
``weight_orig`` (the learnable parameter) and the buffers ``weight_u``, ``weight_v``;
``weight`` itself becomes a plain attribute recomputed before every forward pass, so
``state_dict`` keys match ``torch.nn.utils.spectral_norm``'s.
"""

from __future__ import annotations

from ...backend import array_module
from ...tensor import Tensor
from ..parameter import Parameter

__all__ = ["spectral_norm", "remove_spectral_norm"]


def _normalize(x, eps):
    xp = array_module(x)
    return x / xp.maximum(xp.sqrt((x * x).sum()), eps)


class _SpectralNormHook:
    """The forward pre-hook that sets ``module.<name> = <name>_orig / sigma``."""

    def __init__(self, name, n_power_iterations, dim, eps):
        self.name = name
        self.n_power_iterations = n_power_iterations
        self.dim = dim
        self.eps = eps

    def _matrix(self, weight):
        """The weight as ``(h, w)`` with ``dim`` first (``weight`` a Tensor or an array)."""
        if self.dim != 0:
            order = [self.dim] + [d for d in range(weight.ndim) if d != self.dim]
            weight = weight.permute(*order) if isinstance(weight, Tensor) else \
                weight.transpose(order)
        return weight.reshape(weight.shape[0], -1)

    def power_iteration(self, module, n):
        """``n`` power-iteration steps, updating the ``u``/``v`` buffers in place."""
        w = self._matrix(getattr(module, self.name + "_orig").data)
        u = getattr(module, self.name + "_u").data
        v = getattr(module, self.name + "_v").data
        for _ in range(n):
            v[...] = _normalize(w.T @ u, self.eps)
            u[...] = _normalize(w @ v, self.eps)

    def compute_weight(self, module):
        weight = getattr(module, self.name + "_orig")
        u = getattr(module, self.name + "_u").data
        v = getattr(module, self.name + "_v").data
        # NOTE: u and v enter as constants (as in PyTorch); sigma = u^T W v keeps the
        # gradient path through W, which is what makes the normalisation part of training.
        w_v = self._matrix(weight) @ Tensor(v.copy())
        sigma = (w_v * Tensor(u.copy())).sum()
        return weight / sigma

    def __call__(self, module, args):
        if module.training:
            self.power_iteration(module, self.n_power_iterations)
        object.__setattr__(module, self.name, self.compute_weight(module))
        return None


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    r"""Divide ``module.<name>`` by its largest singular value before every forward pass.

    Parameters
    ----------
    module : Module
        A layer with a weight (``Linear``, ``Conv1d``, ``Conv2d``, ...).
    name : str
        The parameter to normalise.
    n_power_iterations : int
        Power-iteration steps per forward pass in training mode (none in eval mode, where
        the stored ``u``, ``v`` give :math:`\sigma`).
    eps : float
        Guards the normalisations against division by zero.
    dim : int, optional
        The output dimension (default 0; 1 for ``ConvTranspose``).

    Returns
    -------
    Module
        The same module, modified in place.

    Examples
    --------
    >>> import numpy as np, minidl
    >>> from minidl import nn
    >>> _ = minidl.manual_seed(0)
    >>> layer = nn.utils.spectral_norm(nn.Linear(6, 4), n_power_iterations=50)
    >>> _ = layer(minidl.randn(2, 6))
    >>> round(float(np.linalg.norm(layer.weight.detach().numpy(), 2)), 4)
    1.0
    """
    if n_power_iterations < 1:
        raise ValueError(f"spectral_norm: n_power_iterations must be >= 1, "
                         f"got {n_power_iterations}")
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, _SpectralNormHook) and hook.name == name:
            raise RuntimeError(f"spectral_norm: {type(module).__name__}.{name} is already "
                               "spectrally normalised")
    if dim is None:
        dim = 1 if type(module).__name__.startswith("ConvTranspose") else 0
    weight = module._parameters.get(name)
    if weight is None:
        raise AttributeError(f"spectral_norm: {type(module).__name__} has no parameter {name!r}")
    hook = _SpectralNormHook(name, n_power_iterations, dim, eps)
    matrix = hook._matrix(weight.data)
    from ... import random

    rng = random.default_generator()
    # NOTE: u and v start as normalised Gaussian vectors drawn from minidl's generator
    # (as PyTorch does), so a seeded run is reproducible.
    u = _normalize(rng.standard_normal(matrix.shape[0]).astype(weight.data.dtype), eps)
    v = _normalize(rng.standard_normal(matrix.shape[1]).astype(weight.data.dtype), eps)
    xp = array_module(weight.data)
    del module._parameters[name]
    module.register_parameter(name + "_orig", Parameter(weight.data))
    module.register_buffer(name + "_u", Tensor(xp.asarray(u)))
    module.register_buffer(name + "_v", Tensor(xp.asarray(v)))
    # a weight exists from the start (for repr, shape checks, code that reads it)
    object.__setattr__(module, name, hook.compute_weight(module).detach())
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module, name="weight"):
    """Undo :func:`spectral_norm`: ``<name>`` becomes a parameter again, holding the current
    normalised weight."""
    for key, hook in list(module._forward_pre_hooks.items()):
        if isinstance(hook, _SpectralNormHook) and hook.name == name:
            weight = hook.compute_weight(module).detach().data
            del module._forward_pre_hooks[key]
            break
    else:
        raise ValueError(f"remove_spectral_norm: spectral_norm of {name!r} not found in "
                         f"{type(module).__name__}")
    del module._parameters[name + "_orig"]
    del module._buffers[name + "_u"]
    del module._buffers[name + "_v"]
    module.__dict__.pop(name, None)
    module.register_parameter(name, Parameter(weight))
    return module
