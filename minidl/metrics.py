r"""Classification metrics on NumPy arrays (minidl Tensors accepted).

``y_true`` holds integer class labels ``0..K-1``; ``y_pred`` integer predictions; ``y_score``
probabilities: shape ``(N,)`` (the positive class) for a binary problem or ``(N, K)`` for
``K`` classes.  Where a metric is undefined (a single class present, a zero denominator) it
is NaN with a :class:`UserWarning`, never an exception, so an evaluation loop over small
or unlucky batches keeps going.  Bad input (lengths differ, wrong dimensions) raises
:class:`ValueError` naming the problem.

Definitions (binary; per class one-vs-rest for more classes), with TP, FP, TN, FN counts:

.. math::

    \text{precision} = \frac{TP}{TP + FP}, \quad
    \text{recall} = \frac{TP}{TP + FN}, \quad
    F_1 = \frac{2\,TP}{2\,TP + FP + FN}

Matthews correlation, from the confusion matrix :math:`C` (Gorodkin's multiclass form;
the binary case is :math:`(TP\,TN - FP\,FN)/\sqrt{(TP+FP)(TP+FN)(TN+FP)(TN+FN)}`):

.. math::

    \text{MCC} = \frac{c\,s - \sum_k p_k t_k}
                      {\sqrt{(s^2 - \sum_k p_k^2)(s^2 - \sum_k t_k^2)}}

with :math:`c = \operatorname{tr} C`, :math:`s = \sum C`, :math:`t_k` the true and
:math:`p_k` the predicted count of class :math:`k`.  AUROC is the probability that a
random positive scores above a random negative (ties count one half), computed from
ranks (Mann-Whitney U); AUPRC is average precision,
:math:`\sum_n (R_n - R_{n-1}) P_n` over the distinct score thresholds, as scikit-learn's
``average_precision_score``.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["accuracy", "balanced_accuracy", "precision", "recall", "f1", "mcc",
           "confusion_matrix", "auroc", "auprc", "METRICS"]


def _array(x, name):
    if hasattr(x, "detach"):
        x = x.detach().numpy()
    return np.asarray(x)


def _labels(y_true, y_pred):
    y_true = _array(y_true, "y_true")
    y_pred = _array(y_pred, "y_pred")
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError(
            f"expected 1-D label arrays, got y_true {y_true.shape} and y_pred {y_pred.shape}"
        )
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}")
    return y_true.astype(np.int64), y_pred.astype(np.int64)


def _undefined(name, why):
    warnings.warn(f"{name} is undefined ({why}); returning nan", UserWarning, stacklevel=3)
    return float("nan")


def confusion_matrix(y_true, y_pred, num_classes=None):
    """``C[i, j]`` = number of samples of true class ``i`` predicted as ``j``."""
    y_true, y_pred = _labels(y_true, y_pred)
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if len(y_true) and (min(y_true.min(), y_pred.min()) < 0
                        or max(y_true.max(), y_pred.max()) >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}")
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(y_true, y_pred):
    """Fraction of correct predictions."""
    y_true, y_pred = _labels(y_true, y_pred)
    if len(y_true) == 0:
        return _undefined("accuracy", "no samples")
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true, y_pred):
    """Mean recall over the classes present in ``y_true``."""
    cm = confusion_matrix(y_true, y_pred)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return _undefined("balanced_accuracy", "no samples")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _prf(y_true, y_pred, average, kind, pos_label=1):
    y_true, y_pred = _labels(y_true, y_pred)
    if average not in ("binary", "macro", "micro"):
        raise ValueError(f"average must be 'binary', 'macro' or 'micro', got {average!r}")
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp

    def one(tp_, fp_, fn_):
        if kind == "precision":
            num, den = tp_, tp_ + fp_
        elif kind == "recall":
            num, den = tp_, tp_ + fn_
        else:
            num, den = 2 * tp_, 2 * tp_ + fp_ + fn_
        return num / den if den > 0 else np.nan

    if average == "binary":
        if cm.shape[0] > 2:
            raise ValueError(f"average='binary' needs two classes, got {cm.shape[0]}")
        k = pos_label
        if k >= cm.shape[0]:
            return _undefined(kind, f"class {k} never occurs")
        value = one(tp[k], fp[k], fn[k])
    elif average == "micro":
        value = one(tp.sum(), fp.sum(), fn.sum())
    else:
        # as scikit-learn: the classes present in y_true or y_pred; a class with a zero
        # denominator counts as 0 (with a warning) rather than poisoning the mean
        labels = np.flatnonzero((cm.sum(axis=0) + cm.sum(axis=1)) > 0)
        values = np.array([one(tp[k], fp[k], fn[k]) for k in labels])
        if np.isnan(values).any():
            warnings.warn(f"{kind} is undefined for some classes; counted as 0", UserWarning,
                          stacklevel=3)
            values = np.nan_to_num(values)
        value = float(values.mean()) if len(values) else np.nan
    if np.isnan(value):
        return _undefined(kind, "zero denominator")
    return float(value)


def precision(y_true, y_pred, average="binary"):
    """Precision ``TP / (TP + FP)``; ``average`` = ``binary`` (class 1), ``macro``, ``micro``."""
    return _prf(y_true, y_pred, average, "precision")


def recall(y_true, y_pred, average="binary"):
    """Recall ``TP / (TP + FN)``; ``average`` as :func:`precision`."""
    return _prf(y_true, y_pred, average, "recall")


def f1(y_true, y_pred, average="binary"):
    """F1 = ``2 TP / (2 TP + FP + FN)``; ``average`` as :func:`precision`."""
    return _prf(y_true, y_pred, average, "f1")


def mcc(y_true, y_pred):
    """Matthews correlation coefficient (binary and multiclass; see the module docs)."""
    cm = confusion_matrix(y_true, y_pred).astype(float)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), cm.sum()
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    if den == 0:
        return _undefined("mcc", "a single class in y_true or y_pred")
    return float((c * s - t @ p) / den)


def _scores(y_true, y_score):
    y_true = _array(y_true, "y_true").astype(np.int64)
    y_score = _array(y_score, "y_score").astype(np.float64)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D labels, got shape {y_true.shape}")
    if y_score.ndim not in (1, 2) or len(y_score) != len(y_true):
        raise ValueError(
            f"y_score must be (N,) or (N, K) with N = {len(y_true)}, got {y_score.shape}"
        )
    if y_score.ndim == 2 and y_score.shape[1] == 1:
        y_score = y_score[:, 0]
    return y_true, y_score


def _binary_auroc(positive, score):
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan
    # average ranks (ties share their mean rank), then Mann-Whitney U
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score))
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(score)]))
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + b - 1) + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _binary_ap(positive, score):
    n_pos = int(positive.sum())
    if n_pos == 0:
        return np.nan
    order = np.argsort(-score, kind="mergesort")
    s, hit = score[order], positive[order]
    # one threshold per distinct score: the last index of each run of equal scores
    last = np.concatenate((np.flatnonzero(np.diff(s)), [len(s) - 1]))
    tp = np.cumsum(hit)[last]
    fp = (last + 1) - tp
    prec = tp / (tp + fp)
    rec = tp / n_pos
    return float(np.sum(np.diff(np.concatenate(([0.0], rec))) * prec))


def _one_vs_rest(name, fn, y_true, y_score, average):
    if average != "macro":
        raise ValueError(f"{name}: only average='macro' is supported for more than two classes")
    values = [fn(y_true == k, y_score[:, k]) for k in range(y_score.shape[1])
              if (y_true == k).any()]
    if len(values) < 2 or np.isnan(values).any():
        return _undefined(name, "fewer than two classes present in y_true")
    return float(np.mean(values))


def auroc(y_true, y_score, average="macro"):
    """Area under the ROC curve: binary with ``y_score`` ``(N,)``, one-vs-rest macro
    average with ``(N, K)`` (over the classes present in ``y_true``)."""
    y_true, y_score = _scores(y_true, y_score)
    if y_score.ndim == 1:
        value = _binary_auroc(y_true == 1, y_score)
        return _undefined("auroc", "only one class in y_true") if np.isnan(value) else float(value)
    return _one_vs_rest("auroc", _binary_auroc, y_true, y_score, average)


def auprc(y_true, y_score, average="macro"):
    """Area under the precision-recall curve as average precision (see module docs)."""
    y_true, y_score = _scores(y_true, y_score)
    if y_score.ndim == 1:
        value = _binary_ap(y_true == 1, y_score)
        return _undefined("auprc", "no positive sample") if np.isnan(value) else float(value)
    return _one_vs_rest("auprc", _binary_ap, y_true, y_score, average)


#: metrics by name, with what they read: "labels" (predicted classes) or "scores"
METRICS = {
    "accuracy": (accuracy, "labels"),
    "balanced_accuracy": (balanced_accuracy, "labels"),
    "precision": (lambda t, p: precision(t, p, "binary" if max(t.max(), p.max()) <= 1
                                         else "macro"), "labels"),
    "recall": (lambda t, p: recall(t, p, "binary" if max(t.max(), p.max()) <= 1
                                   else "macro"), "labels"),
    "f1": (lambda t, p: f1(t, p, "binary" if max(t.max(), p.max()) <= 1 else "macro"),
           "labels"),
    "macro_f1": (lambda t, p: f1(t, p, "macro"), "labels"),
    "mcc": (mcc, "labels"),
    "auroc": (auroc, "scores"),
    "auprc": (auprc, "scores"),
}
