r"""The k-mer logistic-regression member of ``minidl-bio dna train``, and the strand check.

A CNN and a linear model on k-mer counts make different mistakes: the CNN sees motifs and
their arrangement, the linear model sees composition (word frequencies per stretch of the
sequence) with a penalty that keeps it smooth.  Averaging their probabilities beats either
alone on the shipped promoters.  Trained *jointly* (one loss, one optimizer) the wide
branch overfits first and drags the CNN with it, so here the linear model is fitted on its
own, as a convex problem, and only the blend weight is chosen afterwards.

Fitting (:func:`fit_kmer_linear`).  With features :math:`f_i` (:class:`PositionalKmerCounts`,
computed once), the model :class:`~minidl.bio.models.KmerLinear` minimises

.. math::

    J(W, b) = \frac{1}{n} \sum_{i=1}^{n} \ell(W f_i + b, y_i) + \frac{\lambda}{2} \lVert W
    \rVert^2, \qquad \lambda = \frac{1}{C n},

the cross-entropy :math:`\ell` (binary with one logit, softmax otherwise) plus an L2
penalty on the weights, not the bias.  ``C`` is scikit-learn's convention (its
``LogisticRegression(C=...)`` minimises :math:`C n J`, so the optimum is the same).  The
problem is convex and smooth, so a quasi-Newton method (L-BFGS, written out below in
NumPy) reaches the optimum in about a hundred full-batch steps (tested against
scikit-learn).  ``C`` is picked from a small grid by the validation log loss.  The feature
matrix is held in memory (float32, ``n x D``); above ``max_bytes`` (1 GiB) the fit uses a
seeded random subset of the training rows, and says so.

Strand check (:func:`choose_strand`).  Reverse-complement augmentation assumes the label does
not depend on which strand was read: true for a transcription factor's binding site, false
for a promoter (it has a direction: the shipped CNN loses 1-2 accuracy points with the
augmentation).  The check fits the linear model twice, on the training sequences as given
and on them plus their reverse complements (predicting the average of both strands), and
keeps the augmentation only if it does not raise the validation log loss.  It costs two
linear fits (seconds) instead of two CNN trainings.

Blend (:func:`choose_blend_weight`): :math:`p = (1 - w)\, p_\text{CNN} + w\, p_\text{k-mer}`
with :math:`w` on a grid in ``[0, 0.9]`` minimising the validation log loss.
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["kmer_features", "fit_kmer_linear", "penalised_objective", "choose_strand",
           "choose_blend_weight", "log_loss"]


def kmer_features(counter, x, batch_size=2048):
    """``log(1 + counts)`` of a one-hot batch ``(N, A, L)`` as float32 ``(N, D)``, in chunks
    so the int64 intermediate stays small."""
    out = np.empty((len(x), counter.num_features), dtype=np.float32)
    for start in range(0, len(x), batch_size):
        out[start:start + batch_size] = np.log1p(counter.counts(np.asarray(
            x[start:start + batch_size])))
    return out


def log_loss(y, proba, eps=1e-12):
    """Mean negative log-likelihood of integer labels ``y`` under ``proba`` ``(N, K)``."""
    y = np.asarray(y)
    p = np.clip(proba[np.arange(len(y)), y], eps, 1.0)
    return float(-np.log(p).mean())


def _probabilities(logits):
    if logits.ndim == 1:
        p1 = 1.0 / (1.0 + np.exp(-logits))
        return np.stack([1.0 - p1, p1], axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def penalised_objective(features, y, weight, bias, C):
    r""":math:`J(W, b)` above, in float64 NumPy (``weight`` ``(K, D)`` as in ``nn.Linear``;
    ``K = 1`` for two classes)."""
    logits = features.astype(np.float64) @ np.asarray(weight, np.float64).T + bias
    if logits.shape[1] == 1:
        logits = logits[:, 0]
    n = len(y)
    return log_loss(y, _probabilities(logits), eps=1e-300) + \
        0.5 / (C * n) * float(np.sum(np.asarray(weight, np.float64) ** 2))


def _objective_and_gradient(features, y, k, lam):
    r"""``theta -> (J, dJ/dtheta)`` for ``theta = [W.ravel(), b]`` (``W`` is ``(k, D)``).

    With :math:`P = \text{probabilities}(F W^\top + b)` and one-hot targets :math:`Y`
    (for one logit: :math:`P = \sigma(z)`, :math:`Y = y`), the gradient of the mean
    cross-entropy is :math:`\frac{1}{n} (P - Y)^\top F` for ``W`` and the column sums of
    :math:`\frac{1}{n}(P - Y)` for ``b``; the penalty adds :math:`\lambda W`.
    The two products run in float32 (the features' type), the rest in float64.
    """
    n, d = features.shape
    target = y.astype(np.float64)[:, None] if k == 1 else np.eye(k)[y]

    def fun(theta):
        weight = theta[:k * d].reshape(k, d)
        bias = theta[k * d:]
        logits = (features @ weight.T.astype(np.float32)).astype(np.float64) + bias
        if k == 1:
            z = logits[:, 0]
            # log(1 + e^z) - y z, without overflow for large |z|
            loss = np.mean(np.logaddexp(0.0, z) - y * z)
            residual = (1.0 / (1.0 + np.exp(-z)))[:, None] - target
        else:
            z = logits - logits.max(axis=1, keepdims=True)
            log_norm = np.log(np.exp(z).sum(axis=1))
            loss = np.mean(log_norm - z[np.arange(n), y])
            residual = np.exp(z - log_norm[:, None]) - target
        residual /= n
        grad_w = (residual.T.astype(np.float32) @ features).astype(np.float64) + lam * weight
        value = loss + 0.5 * lam * float(np.sum(weight * weight))
        return value, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])

    return fun


def _lbfgs(fun, theta, max_iter=300, memory=10, rtol=1e-9):
    r"""Minimise a smooth convex ``fun`` (returning value and gradient) by L-BFGS.

    The search direction is :math:`-H g` with :math:`H` the inverse-Hessian estimate built
    from the last ``memory`` steps :math:`s = \theta' - \theta` and gradient changes
    :math:`y = g' - g` (the two-loop recursion, Nocedal & Wright, Algorithm 7.4); the step
    length halves until the Armijo condition :math:`J(\theta + t d) \le J(\theta) + 10^{-4}
    t\, g^\top d` holds.  Stops when an iteration lowers ``J`` by less than ``rtol``
    (relative) or after ``max_iter`` iterations.
    """
    value, grad = fun(theta)
    history = []
    for _ in range(max_iter):
        q = grad.copy()
        alphas = []
        for s, y, rho in reversed(history):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if history:
            s, y, _ = history[-1]
            q *= (s @ y) / (y @ y)
        else:
            q /= max(np.abs(grad).max(), 1e-12)   # first step: at most 1 in any coordinate
        for (s, y, rho), a in zip(history, reversed(alphas)):
            q += s * (a - rho * (y @ q))
        direction = -q
        slope = grad @ direction
        if slope >= 0:                        # not a descent direction: restart from -g
            history.clear()
            direction = -grad / max(np.abs(grad).max(), 1e-12)
            slope = grad @ direction
        step = 1.0
        for _ in range(40):
            new_theta = theta + step * direction
            new_value, new_grad = fun(new_theta)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, y = new_theta - theta, new_grad - grad
        if s @ y > 1e-12:
            history.append((s, y, 1.0 / (s @ y)))
            if len(history) > memory:
                history.pop(0)
        converged = value - new_value <= rtol * max(1.0, abs(value))
        theta, value, grad = new_theta, new_value, new_grad
        if converged:
            break
    return theta


def _fit_one(features, y, num_classes, C, init=None):
    """Minimise :math:`J(W, b)` for one ``C``; returns the ``nn.Linear`` weight and bias."""
    k = 1 if num_classes == 2 else num_classes
    d = features.shape[1]
    theta = np.zeros(k * d + k) if init is None else np.concatenate(
        [np.asarray(init[0], np.float64).ravel(), np.asarray(init[1], np.float64)])
    theta = _lbfgs(_objective_and_gradient(features, y, k, 1.0 / (C * len(y))), theta)
    return (theta[:k * d].reshape(k, d).astype(np.float32),
            theta[k * d:].astype(np.float32))


def _predict(features, weight, bias):
    logits = features @ weight.T + bias
    return _probabilities(logits[:, 0] if logits.shape[1] == 1 else logits)


def fit_kmer_linear(x_train, y_train, x_valid, y_valid, num_classes, ks=(2, 3, 4), bins=10,
                    Cs=(0.003, 0.01, 0.03, 0.1), rc=False, log=None, max_bytes=1 << 30,
                    seed=0):
    """Fit a :class:`~minidl.bio.models.KmerLinear` with the L2 penalty chosen on validation.

    Parameters
    ----------
    x_train, x_valid : arrays ``(N, 4, L)``
        One-hot sequences.
    y_train, y_valid : int arrays
    rc : bool
        Also train on the reverse complements, and score validation as the mean of both
        strands' probabilities (what prediction with ``rc_average`` does).
    Cs : sequence of float
        Inverse penalty strengths tried (scikit-learn's ``C``); the one with the lowest
        validation log loss is kept.
    log : callable, optional
        Called with a progress line per ``C``.
    max_bytes : int
        Memory for the training feature matrix; more rows than fit are subsampled
        (seeded by ``seed``).

    Returns
    -------
    model : KmerLinear
        In evaluation mode.
    info : dict
        ``C``, ``valid_log_loss`` per C, ``seconds``.
    """
    from minidl.bio.augment import reverse_complement_onehot
    from minidl.bio.models import KmerLinear

    started = time.perf_counter()
    model = KmerLinear(num_classes=num_classes, in_channels=x_train.shape[1], ks=ks, bins=bins)
    counter = model.counts
    y_train = np.asarray(y_train, dtype=np.int64)
    y_valid = np.asarray(y_valid, dtype=np.int64)
    rows = max(1, int(max_bytes) // (4 * counter.num_features * (2 if rc else 1)))
    if len(x_train) > rows:
        keep = np.sort(np.random.default_rng(seed).permutation(len(x_train))[:rows])
        if log is not None:
            log(f"k-mer model: fitting on {rows} of {len(x_train)} training sequences "
                f"(features would exceed {int(max_bytes) >> 20} MiB)")
        x_train, y_train = x_train[keep], y_train[keep]
    f_train = kmer_features(counter, x_train)
    f_valid = kmer_features(counter, x_valid)
    if rc:
        f_train = np.concatenate([f_train, kmer_features(counter,
                                                         reverse_complement_onehot(x_train))])
        y_train = np.concatenate([y_train, y_train])
        f_valid_rc = kmer_features(counter, reverse_complement_onehot(x_valid))
    scores, best, init = {}, None, None
    # from the strongest penalty to the weakest, each fit starting from the previous one
    for C in sorted(Cs):
        weight, bias = _fit_one(f_train, y_train, num_classes, C, init)
        init = (weight, bias)
        proba = _predict(f_valid, weight, bias)
        if rc:
            proba = 0.5 * (proba + _predict(f_valid_rc, weight, bias))
        scores[C] = log_loss(y_valid, proba)
        if log is not None:
            log(f"k-mer model: C {C:g}  validation log loss {scores[C]:.4f}")
        if best is None or scores[C] < scores[best[0]]:
            best = (C, weight, bias)
    import minidl

    with minidl.no_grad():
        model.linear.weight.data[...] = best[1]
        model.linear.bias.data[...] = best[2]
    model.eval()
    return model, {"C": best[0], "valid_log_loss": {str(c): v for c, v in scores.items()},
                   "seconds": round(time.perf_counter() - started, 1)}


def choose_strand(x_train, y_train, x_valid, y_valid, num_classes, ks=(2, 3, 4), bins=10,
                  C=0.01, log=None, max_bytes=1 << 30):
    """``"both"`` if reverse-complement augmentation does not hurt a k-mer linear model on
    validation, else ``"forward"`` (see the module docstring).  Returns ``(choice, losses)``."""
    losses = {}
    for name, rc in (("forward", False), ("both", True)):
        _, info = fit_kmer_linear(x_train, y_train, x_valid, y_valid, num_classes, ks=ks,
                                  bins=bins, Cs=(C,), rc=rc, max_bytes=max_bytes)
        losses[name] = info["valid_log_loss"][str(C)]
    choice = "both" if losses["both"] <= losses["forward"] else "forward"
    if log is not None:
        log(f"strand check (k-mer model, validation log loss): forward only "
            f"{losses['forward']:.4f}, both strands {losses['both']:.4f} -> {choice}")
    return choice, losses


def choose_blend_weight(y_valid, proba_cnn, proba_kmer, grid=None):
    """The weight ``w`` of the k-mer model in ``(1 - w) p_cnn + w p_kmer`` with the lowest
    validation log loss (``grid`` default 0, 0.05, ..., 0.9).  Returns ``(w, losses)``."""
    grid = np.round(np.arange(0, 0.9001, 0.05), 2) if grid is None else grid
    losses = {float(w): log_loss(y_valid, (1 - w) * proba_cnn + w * proba_kmer) for w in grid}
    best = min(losses, key=lambda w: (losses[w], w))
    if not math.isfinite(losses[best]):
        raise ValueError("blend: validation log loss is not finite")
    return best, losses
