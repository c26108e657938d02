r"""Attribution: which inputs (bases, pixels) made a model say what it said.

Every function here takes any minidl model (a :class:`~minidl.nn.Module`, or any callable,
mapping a batch ``x`` of shape ``(N, ...)`` to scores) and a ``target`` that picks one
scalar score per example:

- outputs ``(N, K)`` with ``K > 1``: the logit of class ``target`` (an int, or one int per
  example); the default is each example's predicted class (the argmax);
- one logit per example (outputs ``(N,)`` or ``(N, 1)``: a two-class model with a sigmoid,
  as :class:`~minidl.bio.models.SequenceCNN` builds for two classes): the logit
  :math:`z = \log\frac{p}{1-p}` itself for ``target`` 1 or ``None`` (evidence for class 1),
  and :math:`-z` for ``target`` 0 (evidence for class 0).

Scores are logits, not probabilities: the sigmoid/softmax saturates, so gradients of a
probability vanish exactly where the model is most confident.

Methods, for a score :math:`f` and an input :math:`x`:

- :func:`saliency` (Simonyan et al. 2014): :math:`|\partial f / \partial x|` (or signed);
- :func:`gradient_x_input` (Shrikumar et al. 2016): :math:`x \odot \partial f/\partial x`,
  which for one-hot DNA keeps the gradient at the observed base only;
- :func:`integrated_gradients` (Sundararajan et al. 2017): the gradient averaged along the
  straight path from a baseline :math:`x'` to :math:`x`, times :math:`x - x'`;
- :func:`in_silico_mutagenesis`: the score change of every single-base substitution;
- :func:`variant_effect`: score of the reference and of given alternative alleles;
- :func:`image_saliency`: per-pixel :math:`\max_c |\partial f / \partial x_c|`.

The model is put in evaluation mode (dropout off, batch norm on running statistics) while
attributions are computed and restored afterwards; its parameters are temporarily taken
out of the graph so that their ``.grad`` is neither computed nor touched.

Examples
--------
>>> import numpy as np, minidl
>>> from minidl import nn
>>> from minidl.bio.interpret import gradient_x_input
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(8, 1))
>>> x = np.ones((1, 4, 2), np.float32)
>>> attr = gradient_x_input(model, x)            # = weight * x for a linear model
>>> np.allclose(attr.reshape(-1), model[1].weight.detach().numpy().reshape(-1))
True
"""

from __future__ import annotations

from collections import namedtuple
from contextlib import contextmanager

import numpy as np

__all__ = [
    "model_scores",
    "input_gradients",
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "shuffled_baselines",
    "in_silico_mutagenesis",
    "variant_effect",
    "VariantEffect",
    "image_saliency",
    "at_reference",
]

DNA = "ACGT"


# ------------------------------------------------------------------ plumbing


@contextmanager
def _attribution_mode(model):
    """Evaluation mode and parameters out of the graph, both restored on exit.

    NOTE: turning ``requires_grad`` off on the parameters (instead of zeroing their grads
    afterwards) means backward never computes weight gradients nobody asked for, and a
    training loop that called us keeps its accumulated ``.grad`` untouched.
    """
    params = list(model.parameters()) if hasattr(model, "parameters") else []
    flags = [p.requires_grad for p in params]
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad = flag
        if hasattr(model, "train"):
            model.train(was_training)


def _as_array(x, name="x"):
    """A float32 host array from an ndarray or a Tensor (attributions are NumPy arrays)."""
    if hasattr(x, "detach"):
        x = x.detach().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1:
        raise ValueError(f"{name}: expected a batch (N, ...), got a scalar")
    return np.ascontiguousarray(x)


def _resolve_target(outputs: np.ndarray, target):
    """The per-example target as an int array ``(N,)`` (see the module docstring)."""
    n = outputs.shape[0]
    single = outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1)
    if outputs.ndim > 2:
        raise ValueError(f"attribution: model outputs must be (N,) or (N, K), got "
                         f"{outputs.shape}")
    if target is None:
        return np.ones(n, np.int64) if single else outputs.argmax(axis=1).astype(np.int64)
    target = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
    classes = 2 if single else outputs.shape[1]
    if target.min() < 0 or target.max() >= classes:
        raise ValueError(f"attribution: target {target.tolist()} out of range for "
                         f"{classes} classes (outputs {outputs.shape})")
    return target


def _score_tensor(outputs, target):
    """Scalar score per example as a Tensor ``(N,)``: the target's logit (``-z`` for class
    0 of a one-logit model)."""
    import minidl

    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1):
        sign = np.where(target == 0, -1.0, 1.0).astype(np.float32)
        return outputs.reshape(-1) * minidl.from_numpy(sign)
    mask = np.zeros(outputs.shape, np.float32)
    mask[np.arange(len(target)), target] = 1.0
    return (outputs * minidl.from_numpy(mask)).sum(dim=1)


def model_scores(model, x, target=None, batch_size=256):
    """Scores ``(N,)`` (float64) and the target used ``(N,)``, without gradients.

    With ``target=None`` a multi-class model's target is each example's predicted class.
    """
    import minidl

    x = _as_array(x)
    scores, targets = [], []
    with _attribution_mode(model), minidl.no_grad():
        for start in range(0, len(x), batch_size):
            out = model(minidl.from_numpy(x[start:start + batch_size]))
            t = _resolve_target(out.numpy(), None if target is None else
                                np.broadcast_to(target, (len(x),))[start:start + batch_size])
            scores.append(_score_tensor(out, t).numpy().astype(np.float64))
            targets.append(t)
    if not scores:
        return np.zeros(0), np.zeros(0, np.int64)
    return np.concatenate(scores), np.concatenate(targets)


def input_gradients(model, x, target=None, batch_size=256):
    r"""Gradient of each example's score with respect to its input.

    .. math:: g_i = \frac{\partial f_{t_i}(x_i)}{\partial x_i}

    Returns ``(gradients like x (float32), scores (N,) float64, target (N,))``.  Examples
    are processed ``batch_size`` at a time; one backward pass per batch gives every
    example's gradient, because example ``i``'s score depends on ``x_i`` only (true in
    evaluation mode, where batch norm uses running statistics).
    """
    import minidl

    x = _as_array(x)
    grads = np.empty_like(x)
    scores = np.empty(len(x))
    targets = np.empty(len(x), np.int64)
    if target is not None:
        target = np.broadcast_to(np.asarray(target, dtype=np.int64), (len(x),))
    with _attribution_mode(model):
        for start in range(0, len(x), batch_size):
            stop = min(start + batch_size, len(x))
            inputs = minidl.from_numpy(x[start:stop].copy()).requires_grad_(True)
            out = model(inputs)
            t = _resolve_target(out.detach().numpy(),
                                None if target is None else target[start:stop])
            score = _score_tensor(out, t)
            score.sum().backward()
            grads[start:stop] = inputs.grad.numpy()
            scores[start:stop] = score.detach().numpy()
            targets[start:stop] = t
    return grads, scores, targets


# ------------------------------------------------------------------ gradient methods


def saliency(model, x, target=None, absolute=True, batch_size=256):
    r"""Gradient saliency (Simonyan, Vedaldi & Zisserman 2014).

    .. math:: S = \left|\frac{\partial f_t(x)}{\partial x}\right|

    the first-order sensitivity of the score to each input entry (``absolute=False``: the
    signed gradient).  Returns an array shaped like ``x``.  For one-hot DNA
    ``(N, 4, L)``, :func:`at_reference` keeps the value at the observed base.
    """
    grads, _, _ = input_gradients(model, x, target, batch_size)
    return np.abs(grads) if absolute else grads


def gradient_x_input(model, x, target=None, batch_size=256):
    r"""Gradient times input (Shrikumar et al. 2016).

    .. math:: A = x \odot \frac{\partial f_t(x)}{\partial x}

    For a linear score :math:`f(x) = w^\top x + b` this is exactly :math:`w \odot x`, and
    :math:`\sum A = f(x) - b`: the score decomposed over the inputs.  For one-hot DNA only
    the observed base of each position is non-zero.
    """
    x = _as_array(x)
    grads, _, _ = input_gradients(model, x, target, batch_size)
    return grads * x


def _path_points(steps, method):
    r"""Interpolation points :math:`\alpha_k \in [0, 1]` and quadrature weights ``w_k``
    with :math:`\int_0^1 g(\alpha)\,d\alpha \approx \sum_k w_k\, g(\alpha_k)`."""
    if steps < 1:
        raise ValueError(f"integrated_gradients: steps must be >= 1, got {steps}")
    if method == "trapezoid":
        alphas = np.linspace(0.0, 1.0, steps + 1)
        weights = np.full(steps + 1, 1.0 / steps)
        weights[[0, -1]] *= 0.5
    elif method == "midpoint":
        alphas = (np.arange(steps) + 0.5) / steps
        weights = np.full(steps, 1.0 / steps)
    else:
        raise ValueError(f"integrated_gradients: method must be 'trapezoid' or 'midpoint', "
                         f"got {method!r}")
    return alphas, weights


def shuffled_baselines(x, n=10, seed=0):
    """``n`` shuffles of every sequence of one-hot ``x`` ``(N, C, L)``: ``(n, N, C, L)``.

    Each shuffle permutes the positions of a sequence's real (non-zero) columns, so base
    composition is kept and padding stays where it is (a mononucleotide shuffle; it does
    not keep dinucleotides such as CpG).  A baseline *from the data distribution*, unlike
    all-zero or 0.25 columns, which a trained model may score as anything.
    """
    x = _as_array(x)
    rng = np.random.default_rng(seed)
    out = np.repeat(x[None], n, axis=0)
    for i in range(len(x)):
        real = np.flatnonzero(np.abs(x[i]).sum(axis=0) > 0)
        for k in range(n):
            out[k, i][:, real] = x[i][:, rng.permutation(real)]
    return out


def _baseline(x, baseline):
    """The baseline array for ``x``: zeros, ``"uniform"`` (one-hot DNA: 0.25 everywhere,
    in general ``1 / channels``), a number, or an array broadcastable to ``x``."""
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return np.zeros_like(x)
    if isinstance(baseline, str):
        if baseline != "uniform":
            raise ValueError(f"integrated_gradients: baseline must be None, 'zeros', "
                             f"'uniform', 'shuffle' or an array, got {baseline!r}")
        if x.ndim < 2:
            raise ValueError("integrated_gradients: baseline 'uniform' needs (N, C, ...) input")
        return np.full_like(x, 1.0 / x.shape[1])
    return np.ascontiguousarray(np.broadcast_to(_as_array(np.asarray(baseline), "baseline"),
                                                x.shape))


def integrated_gradients(model, x, baseline=None, steps=50, target=None,
                         method="trapezoid", batch_size=256, return_delta=False,
                         n_shuffles=10, seed=0):
    r"""Integrated gradients (Sundararajan, Taly & Yan 2017).

    .. math::

        \mathrm{IG}_i(x) = (x_i - x'_i) \int_0^1
            \frac{\partial f\big(x' + \alpha (x - x')\big)}{\partial x_i}\, d\alpha
        \;\approx\; (x_i - x'_i) \sum_k w_k\,
            \frac{\partial f\big(x' + \alpha_k (x - x')\big)}{\partial x_i}

    with the trapezoid rule (``steps + 1`` points :math:`\alpha_k = k/\text{steps}`, end
    weights halved) or the midpoint rule (``steps`` points :math:`(k + \tfrac12)/\text{steps}`).
    By the fundamental theorem of calculus along the path the attributions are *complete*:

    .. math:: \textstyle\sum_i \mathrm{IG}_i(x) = f(x) - f(x')

    up to the quadrature error, which shrinks as ``steps`` grows (``return_delta`` gives
    the gap per example, a check on ``steps``).

    Parameters
    ----------
    model : Module or callable
    x : array ``(N, ...)``
    baseline : None, "zeros", "uniform", "shuffle", number or array
        :math:`x'`.  Zeros by default; ``"uniform"`` is 0.25 per base for one-hot DNA
        (``1 / channels`` in general): "no information about the base" rather than "no
        base at all".  ``"shuffle"``: the attributions averaged over ``n_shuffles``
        baselines that are shuffles of each sequence (:func:`shuffled_baselines`,
        ``seed``); completeness then holds against the mean baseline score,
        :math:`\sum_i \mathrm{IG}_i = f(x) - \overline{f(x')}`.  Use it when the model
        scores the all-zero input as something extreme.
    steps : int
    target : int or array of int, optional
        Fixed along the path: by default each example's predicted class *at x*.
    method : {"trapezoid", "midpoint"}
    batch_size : int
        Path points per forward/backward pass (all examples' points are batched together).
    return_delta : bool
        Also return :math:`\sum_i \mathrm{IG}_i - (f(x) - f(x'))` per example.

    Returns
    -------
    attributions : array like ``x`` (float32), and with ``return_delta`` the gaps ``(N,)``.
    """
    x = _as_array(x)
    if isinstance(baseline, str) and baseline == "shuffle":
        runs = [integrated_gradients(model, x, b, steps, target, method, batch_size, True)
                for b in shuffled_baselines(x, n_shuffles, seed)]
        attributions = np.mean([a for a, _ in runs], axis=0).astype(np.float32)
        # Each run: sum A_k = f(x) - f(b_k) + delta_k; averaged, the deltas average too.
        delta = np.mean([d for _, d in runs], axis=0)
        return (attributions, delta) if return_delta else attributions
    base = _baseline(x, baseline)
    alphas, weights = _path_points(steps, method)
    end_scores, target = model_scores(model, x, target, batch_size)
    n, s = len(x), len(alphas)
    diff = x - base
    # All N * S path points in one array, example-major, so that batches mix examples
    # and steps freely; point (i, k) = x'_i + alpha_k (x_i - x'_i).
    shape = (1, s) + (1,) * (x.ndim - 1)
    points = (base[:, None] + alphas.reshape(shape).astype(np.float32) * diff[:, None])
    points = points.reshape((n * s,) + x.shape[1:])
    grads, _, _ = input_gradients(model, points, np.repeat(target, s), batch_size)
    grads = grads.reshape((n, s) + x.shape[1:]).astype(np.float64)
    mean_grad = np.tensordot(weights, grads, axes=([0], [1]))     # (N, ...)
    attributions = (diff * mean_grad).astype(np.float32)
    if not return_delta:
        return attributions
    base_scores, _ = model_scores(model, base, target, batch_size)
    delta = attributions.reshape(n, -1).sum(axis=1, dtype=np.float64) - (end_scores
                                                                         - base_scores)
    return attributions, delta


def at_reference(attributions, onehot):
    r"""Attributions projected on the observed sequence: :math:`A \odot x` for one-hot
    ``x`` (the value at the observed base of each position, zero elsewhere): what a
    sequence logo of an attribution map draws."""
    return np.asarray(attributions) * np.asarray(onehot)


# ------------------------------------------------------------------ mutations


def in_silico_mutagenesis(model, onehot_seq, target=None, batch_size=256, positions=None):
    r"""In-silico saturation mutagenesis of one one-hot sequence.

    .. math:: M_{l b} = f\big(x^{(l \to b)}\big) - f(x)

    where :math:`x^{(l \to b)}` is ``x`` with position ``l`` replaced by base ``b``.  The
    reference base of each position has :math:`M_{l b} = 0`; a negative entry is a
    mutation that lowers the score.

    All mutants (``3 L`` for a clean sequence; 4 at an ``N`` or padded column, which has
    no reference base) are built ``batch_size`` at a time and scored in batches, never one
    forward pass per mutant.

    Parameters
    ----------
    model : Module or callable
    onehot_seq : array ``(C, L)`` (or ``(1, C, L)``)
        One-hot sequence, channels first (4 for DNA, in ACGT order).
    target : int, optional
        Class whose logit is scored; default the reference's predicted class (the logit
        for a one-logit model).  Fixed for all mutants.
    batch_size : int
    positions : sequence of int, optional
        Mutate only these positions (the others' rows are NaN).

    Returns
    -------
    array ``(L, C)`` float64.
    """
    x = _as_array(onehot_seq, "onehot_seq")
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(f"in_silico_mutagenesis: expected one sequence (C, L), got shape "
                         f"{x.shape}")
    channels, length = x.shape
    ref_score, target = model_scores(model, x[None], target)
    positions = np.arange(length) if positions is None else np.asarray(positions, np.int64)
    if positions.size and (positions.min() < 0 or positions.max() >= length):
        raise ValueError(f"in_silico_mutagenesis: positions outside 0..{length - 1}")
    # Every (position, base) whose column is not already exactly that base.
    pos_grid, base_grid = np.meshgrid(positions, np.arange(channels), indexing="ij")
    pos_grid, base_grid = pos_grid.reshape(-1), base_grid.reshape(-1)
    is_ref = np.all(x[:, pos_grid].T == np.eye(channels, dtype=np.float32)[base_grid], axis=1)
    mut_pos, mut_base = pos_grid[~is_ref], base_grid[~is_ref]

    effects = np.full((length, channels), np.nan)
    effects[positions] = 0.0
    for start in range(0, len(mut_pos), batch_size):
        p = mut_pos[start:start + batch_size]
        b = mut_base[start:start + batch_size]
        rows = np.arange(len(p))
        batch = np.repeat(x[None], len(p), axis=0)
        batch[rows, :, p] = 0.0
        batch[rows, b, p] = 1.0
        scores, _ = model_scores(model, batch, target[0], batch_size=len(p))
        effects[p, b] = scores - ref_score[0]
    return effects


VariantEffect = namedtuple("VariantEffect",
                           ["position", "ref", "alt", "ref_score", "alt_score", "delta"])
VariantEffect.__doc__ = ("One variant's effect: ``delta = alt_score - ref_score`` (scores "
                         "as in :mod:`minidl.bio.interpret`; position as given).")


def _reference_letters(x):
    """The observed base per position of a one-hot ``(4, L)`` array (``N`` where a column
    is not exactly one base)."""
    letters = np.array(list(DNA + "N"))
    idx = x.argmax(axis=0)
    clean = (np.isclose(x.max(axis=0), 1.0)) & (np.isclose(x.sum(axis=0), 1.0))
    return "".join(letters[np.where(clean, idx, 4)])


def variant_effect(model, sequence, variants, target=None, one_based=False, batch_size=256):
    r"""Score change of each variant: :math:`\Delta = f(x_{alt}) - f(x_{ref})`.

    Each variant is applied alone to the reference sequence (a substitution; ``ref`` and
    ``alt`` may span several bases of equal length, e.g. ``("AC", "GT")``).

    Parameters
    ----------
    model : Module or callable
        Reads one-hot DNA ``(N, 4, L)``.
    sequence : str or array ``(4, L)``
        The reference, as letters or one-hot (ACGT order).
    variants : iterable of ``(position, ref, alt)``
        ``position`` is 0-based (1-based, as in VCF, with ``one_based=True``); ``ref`` must
        match the sequence there, else ``ValueError`` names the variant and what the
        sequence holds (the usual cause: the wrong coordinate system or strand).
    target : int, optional
        As in :func:`in_silico_mutagenesis` (the reference's class, fixed).

    Returns
    -------
    list of :class:`VariantEffect` ``(position, ref, alt, ref_score, alt_score, delta)``.
    """
    from minidl.bio.encode import one_hot

    if isinstance(sequence, str):
        x = one_hot(sequence.upper(), "dna")[0]
    else:
        x = _as_array(sequence, "sequence")
        if x.ndim == 3 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 2 or x.shape[0] != 4:
            raise ValueError(f"variant_effect: expected a sequence string or one-hot (4, L), "
                             f"got shape {x.shape}")
    letters = _reference_letters(x)
    eye = np.eye(4, dtype=np.float32)
    variants = list(variants)
    mutants = np.repeat(x[None], len(variants), axis=0)
    for i, variant in enumerate(variants):
        try:
            position, ref, alt = variant
        except (TypeError, ValueError):
            raise ValueError(f"variant_effect: variant {i} should be (position, ref, alt), "
                             f"got {variant!r}") from None
        ref, alt = str(ref).upper(), str(alt).upper()
        start = int(position) - (1 if one_based else 0)
        label = f"variant {i} ({position}, {ref!r}, {alt!r})"
        if len(ref) != len(alt) or not ref:
            raise ValueError(f"variant_effect: {label}: only substitutions (ref and alt of "
                             f"the same non-zero length) are supported")
        if bad := set(ref + alt) - set(DNA):
            raise ValueError(f"variant_effect: {label}: bases must be A, C, G or T, got "
                             f"{''.join(sorted(bad))!r}")
        if start < 0 or start + len(ref) > len(letters):
            raise ValueError(f"variant_effect: {label}: position outside the sequence "
                             f"(length {len(letters)}, {'1' if one_based else '0'}-based)")
        observed = letters[start:start + len(ref)]
        if observed != ref:
            raise ValueError(f"variant_effect: {label}: ref does not match the sequence, "
                             f"which has {observed!r} there ({'1' if one_based else '0'}-based "
                             f"positions; wrong coordinates or strand?)")
        for j, base in enumerate(alt):
            mutants[i, :, start + j] = eye[DNA.index(base)]
    ref_score, target = model_scores(model, x[None], target)
    alt_scores, _ = model_scores(model, mutants, target[0], batch_size) if variants else (
        np.zeros(0), None)
    return [VariantEffect(v[0], str(v[1]).upper(), str(v[2]).upper(), float(ref_score[0]),
                          float(a), float(a - ref_score[0]))
            for v, a in zip(variants, alt_scores)]


# ------------------------------------------------------------------ images


def image_saliency(model, x, target=None, batch_size=128):
    r"""Gradient saliency map per image (Simonyan et al. 2014): the absolute gradient of
    the target's logit with respect to the pixels, maximum over channels:

    .. math:: S_{hw} = \max_c \left|\frac{\partial f_t(x)}{\partial x_{c h w}}\right|

    ``x`` is ``(N, C, H, W)``; ``target`` defaults to the predicted class.  Returns
    ``(saliency (N, H, W) float32, target (N,))``.  (Overlays:
    :func:`minidl.bio.plots.plot_image_saliency`; ``minidl-bio cells explain`` draws them
    without matplotlib.)
    """
    x = _as_array(x)
    if x.ndim != 4:
        raise ValueError(f"image_saliency: expected images (N, C, H, W), got shape {x.shape}")
    grads, _, target = input_gradients(model, x, target, batch_size)
    return np.abs(grads).max(axis=1), target
