"""Numerical gradient checking in float64 (public: check your own Functions).

For a function :math:`f` of tensors :math:`x_1..x_k` with output :math:`y`, take a fixed
random projection :math:`v` of the output, :math:`L = \\sum v \\odot y`.  The analytic
gradient :math:`\\partial L / \\partial x` from ``backward`` is compared with central
differences

.. math::
    \\frac{\\partial L}{\\partial x_j} \\approx
    \\frac{L(x + \\epsilon e_j) - L(x - \\epsilon e_j)}{2\\epsilon}

element by element.  The error of central differences is :math:`O(\\epsilon^2)`, so in
float64 with :math:`\\epsilon = 10^{-6}` agreement to about 1e-8 is expected for smooth
functions; keep inputs away from kinks (relu at 0, ties in max).
"""

from __future__ import annotations

import numpy as np

from minidl.autograd import no_grad
from minidl.backend import move, to_host

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Raised when the analytic and numerical gradients disagree."""


def _outputs(fn, inputs):
    from minidl.tensor import Tensor

    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Compare ``backward`` with central differences for every input that requires grad.

    Parameters
    ----------
    fn : callable
        Takes the tensors in ``inputs`` and returns a tensor (or a tuple of tensors).
    inputs : sequence of Tensor
        Inputs; those with ``requires_grad=True`` are checked. They must be float64:
        float32 differences are too noisy to check anything.
    eps, atol, rtol : float
        Step of the differences and tolerances: an element fails when
        ``|analytic - numeric| > atol + rtol * |numeric|``.
    raise_exception : bool
        Raise :class:`GradcheckError` on failure (default) or return False.

    Returns
    -------
    bool
        True if every gradient matched.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.randn(3, 4, dtype=minidl.float64, requires_grad=True)
    >>> minidl.gradcheck(lambda t: (t * t).sum(dim=1), [x])
    True
    """
    from minidl.tensor import Tensor

    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(
                f"gradcheck: input {i} has dtype {inputs[i].dtype}; use float64 "
                "(float32 finite differences are too imprecise)"
            )

    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    projections = [rng.standard_normal(o.shape) for o in outs]

    def scalar_loss():
        with no_grad():
            return sum(float((to_host(o.data) * v).sum()) for o, v in
                       zip(_outputs(fn, inputs), projections))

    # analytic: backward of sum(v * y)
    for i in checked:
        inputs[i].grad = None
    total = None
    for o, v in zip(outs, projections):
        term = (o * Tensor._wrap(move(v, o.device))).sum()  # v on the output's device
        total = term if total is None else total + term
    if total.requires_grad:
        total.backward()

    ok = True
    report = []
    for i in checked:
        x = inputs[i]
        analytic = (
            np.zeros(x.shape) if x.grad is None
            else np.asarray(to_host(x.grad.data), dtype=np.float64)
        )
        numeric = np.zeros(x.shape)
        # index x.data itself (not a reshaped copy) so non-contiguous inputs are perturbed too
        for j in np.ndindex(*x.shape):
            orig = x.data[j]
            x.data[j] = orig + eps
            plus = scalar_loss()
            x.data[j] = orig - eps
            minus = scalar_loss()
            x.data[j] = orig
            numeric[j] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric)
        bound = atol + rtol * np.abs(numeric)
        if np.any(err > bound) or not np.all(np.isfinite(analytic)):
            ok = False
            worst = np.unravel_index(np.argmax(err - bound), x.shape) if x.ndim else ()
            report.append(
                f"input {i} (shape {x.shape}): worst element {tuple(int(k) for k in worst)}: "
                f"analytic {analytic[worst]:.10g}, numerical {numeric[worst]:.10g}, "
                f"|diff| {err[worst]:.3g} > tolerance {bound[worst]:.3g}"
            )
    if not ok and raise_exception:
        raise GradcheckError("gradcheck failed:\n  " + "\n  ".join(report))
    return ok
