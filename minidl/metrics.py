r"""Classification metrics on NumPy arrays (minidl Tensors and lists accepted).

Inputs
------
- ``y_true``: integer class labels ``0 .. K-1``, shape ``(N,)`` (``(N, 1)``, bools and
  integral floats such as BCE targets are accepted too).
- ``y_pred``: predicted labels, same form (e.g. ``scores.argmax(1)`` or ``p > 0.5``).
- ``y_score``: scores or probabilities, ``(N,)`` for a binary problem (the score of
  class 1; ``(N, 1)`` accepted) or ``(N, K)`` for ``K`` classes (one column per class;
  rows need not sum to one, only the order within a column matters).

Undefined values
----------------
Where a metric is undefined (one class only, a zero denominator, no samples) the result is
``nan`` and an :class:`UndefinedMetricWarning` (a :class:`UserWarning`) says why; nothing
raises, so an evaluation loop over small or unlucky batches keeps going.  Inside a macro
or weighted average, a class whose precision/recall is undefined counts as 0 (with the
warning), as scikit-learn's default does.  Bad input (lengths differ, wrong dimensions,
non-integer labels, NaN scores) raises :class:`ValueError` naming the problem.

NOTE: two places differ from scikit-learn on purpose: binary precision/recall/F1 with a
zero denominator and MCC with a constant ``y_true`` or ``y_pred`` are ``nan`` here, where
scikit-learn returns 0.0; a value of 0 would read as "no better than chance" when the
truth is "cannot be computed on these samples".

Definitions
-----------
With per-class counts :math:`TP_k, FP_k, FN_k` (class :math:`k` against the rest):

.. math::

    P_k = \frac{TP_k}{TP_k + FP_k}, \quad R_k = \frac{TP_k}{TP_k + FN_k}, \quad
    F_{1,k} = \frac{2\,TP_k}{2\,TP_k + FP_k + FN_k}

``binary`` reports class 1; ``macro`` the unweighted mean over the classes present in
``y_true`` or ``y_pred``; ``weighted`` the mean weighted by each class's true count;
``micro`` the same formulas on the summed counts (for single-label data micro precision,
recall and F1 all equal accuracy).  Balanced accuracy is the macro mean of :math:`R_k`
over the classes present in ``y_true``.

Matthews correlation, from the confusion matrix :math:`C` (Gorodkin's :math:`R_K`; for
two classes it is :math:`(TP\,TN - FP\,FN)/\sqrt{(TP+FP)(TP+FN)(TN+FP)(TN+FN)}`):

.. math::

    \text{MCC} = \frac{c\,s - \sum_k p_k t_k}
                      {\sqrt{\left(s^2 - \sum_k p_k^2\right)\left(s^2 - \sum_k t_k^2\right)}}

with :math:`c = \operatorname{tr} C`, :math:`s = \sum_{ij} C_{ij}`, :math:`t_k` the true
and :math:`p_k` the predicted count of class :math:`k`.

AUROC is the probability that a random positive scores above a random negative, ties
counting one half; from the average ranks :math:`r_i` of the scores (Mann-Whitney U),

.. math::

    \text{AUROC} = \frac{\sum_{i:\,y_i = 1} r_i - n_+(n_+ + 1)/2}{n_+\,n_-},

which equals the trapezoidal area under the ROC curve that scikit-learn computes.  AUPRC
is average precision, as scikit-learn's ``average_precision_score``: over the distinct
score thresholds in decreasing order, :math:`\text{AP} = \sum_n (R_n - R_{n-1})\,P_n` with
:math:`R_0 = 0` (a step function, not the optimistic trapezoid).  For ``(N, K)`` scores,
both are computed one-vs-rest per class and averaged.

Examples
--------
>>> from minidl import metrics
>>> metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0])
0.75
>>> metrics.confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0]).tolist()
[[2, 0], [1, 1]]
>>> metrics.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "mcc",
    "confusion_matrix",
    "auroc",
    "auprc",
    "UndefinedMetricWarning",
    "METRICS",
]


class UndefinedMetricWarning(UserWarning):
    """A metric was undefined on the given samples and ``nan`` was returned."""


def _undefined(name, why):
    warnings.warn(f"{name} is undefined ({why}); returning nan", UndefinedMetricWarning,
                  stacklevel=3)
    return float("nan")


# ----------------------------------------------------------------------------- input checks


def _array(x):
    from minidl.tensor import Tensor

    if isinstance(x, Tensor):
        return np.asarray(x.detach())
    return np.asarray(x)


def _labels(y, name, fn):
    y = _array(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{fn}: {name} must be 1-D class labels (N,), got shape {y.shape}"
            + ("; for scores take argmax(1) or threshold them first" if y.ndim == 2 else "")
        )
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind in "iu":
        y = y.astype(np.int64)
    elif y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(
                f"{fn}: {name} must hold integer class labels, got non-integer values such as "
                f"{y[~np.isfinite(y) | (y != np.round(y))][0]!r}"
            )
        y = y.astype(np.int64)
    else:
        raise ValueError(f"{fn}: {name} must hold integer class labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{fn}: {name} has negative labels (e.g. {int(y.min())}); labels are "
                         "0 .. K-1")
    return y


def _label_pair(y_true, y_pred, fn):
    y_true = _labels(y_true, "y_true", fn)
    y_pred = _labels(y_pred, "y_pred", fn)
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"{fn}: y_true has {len(y_true)} samples but y_pred has {len(y_pred)}"
        )
    return y_true, y_pred


def _confusion(y_true, y_pred, num_classes):
    return np.bincount(y_true * num_classes + y_pred,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _num_classes(y_true, y_pred, num_classes, fn):
    seen = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    if num_classes is None:
        return seen
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ValueError(f"{fn}: num_classes must be a positive int, got {num_classes!r}")
    if seen > num_classes:
        raise ValueError(f"{fn}: label {seen - 1} found but num_classes={num_classes}")
    return int(num_classes)


# ----------------------------------------------------------------------------- label metrics


def confusion_matrix(y_true, y_pred, num_classes=None):
    r"""The confusion matrix :math:`C_{ij} = |\{n : y_n = i,\ \hat y_n = j\}|`.

    Rows are true classes, columns predicted ones (scikit-learn's layout).

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
    num_classes : int, optional
        :math:`K`; default ``max(label) + 1``.  Classes that never occur get zero rows
        and columns.

    Returns
    -------
    numpy.ndarray of int64, shape (K, K)

    >>> confusion_matrix([0, 2, 2], [0, 2, 1], num_classes=4).tolist()
    [[1, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    y_true, y_pred = _label_pair(y_true, y_pred, "confusion_matrix")
    k = _num_classes(y_true, y_pred, num_classes, "confusion_matrix")
    return _confusion(y_true, y_pred, max(k, 0)).astype(np.int64)


def accuracy(y_true, y_pred):
    r"""Fraction of correct predictions, :math:`\frac1N \sum_n [\hat y_n = y_n]`.

    >>> accuracy([1, 2, 3], [1, 2, 0])
    0.6666666666666666
    """
    y_true, y_pred = _label_pair(y_true, y_pred, "accuracy")
    if len(y_true) == 0:
        return _undefined("accuracy", "no samples")
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true, y_pred):
    r"""Mean recall over the classes present in ``y_true``,
    :math:`\frac{1}{|K|}\sum_{k \in K} \frac{TP_k}{TP_k + FN_k}`.

    Insensitive to class imbalance: always predicting the majority class scores
    :math:`1/|K|`.  Classes that appear only in ``y_pred`` are ignored (with a warning),
    as in scikit-learn.

    >>> balanced_accuracy([0, 0, 0, 1], [0, 0, 0, 0])
    0.5
    """
    y_true, y_pred = _label_pair(y_true, y_pred, "balanced_accuracy")
    if len(y_true) == 0:
        return _undefined("balanced_accuracy", "no samples")
    cm = _confusion(y_true, y_pred, _num_classes(y_true, y_pred, None, "balanced_accuracy"))
    support = cm.sum(axis=1)
    present = support > 0
    if np.any(~present & (cm.sum(axis=0) > 0)):
        warnings.warn("balanced_accuracy: y_pred contains classes not in y_true; they are "
                      "left out of the mean", UndefinedMetricWarning, stacklevel=2)
    return float(np.mean(np.diag(cm)[present] / support[present]))


_AVERAGES = ("binary", "macro", "micro", "weighted", None)


def _precision_recall_f1(y_true, y_pred, average, which):
    fn = which
    if average not in _AVERAGES:
        raise ValueError(f"{fn}: average must be one of {_AVERAGES}, got {average!r}")
    y_true, y_pred = _label_pair(y_true, y_pred, fn)
    if len(y_true) == 0:
        return _undefined(fn, "no samples")
    num_classes = _num_classes(y_true, y_pred, None, fn)
    if average == "binary":
        if num_classes > 2:
            raise ValueError(
                f"{fn}: average='binary' needs labels in {{0, 1}}, got labels up to "
                f"{num_classes - 1}; use average='macro', 'micro' or 'weighted'"
            )
        num_classes = 2
    cm = _confusion(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    pred_count = cm.sum(axis=0).astype(np.float64)
    true_count = cm.sum(axis=1).astype(np.float64)
    if average == "micro":
        tp, pred_count, true_count = tp.sum(keepdims=True), pred_count.sum(keepdims=True), \
            true_count.sum(keepdims=True)
    if which == "precision":
        numerator, denominator = tp, pred_count
    elif which == "recall":
        numerator, denominator = tp, true_count
    else:
        numerator, denominator = 2 * tp, pred_count + true_count
    with np.errstate(divide="ignore", invalid="ignore"):
        values = numerator / denominator  # nan where the denominator is 0

    if average in ("binary", "micro"):
        value = values[-1] if average == "binary" else values[0]
        if np.isnan(value):
            return _undefined(fn, "zero denominator: " + {
                "precision": "nothing predicted positive",
                "recall": "no true positive samples",
                "f1": "no positive samples, true or predicted"}[which])
        return float(value)

    present = (true_count + pred_count) > 0  # classes seen in y_true or y_pred
    if average is None:
        return values
    if np.any(np.isnan(values[present])):
        warnings.warn(f"{fn} is undefined for some classes (zero denominator); they count as "
                      "0 in the average", UndefinedMetricWarning, stacklevel=3)
    values = np.nan_to_num(values[present], nan=0.0)
    if average == "macro":
        return float(values.mean())
    weights = true_count[present]
    return float(np.average(values, weights=weights))


def precision(y_true, y_pred, average="binary"):
    r"""Precision :math:`TP / (TP + FP)`: of the samples predicted class :math:`k`, the
    fraction that are.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)
    average : {"binary", "macro", "micro", "weighted", None}
        ``binary``: class 1 of a 0/1 problem; ``macro``: mean over the classes present;
        ``weighted``: mean weighted by true counts; ``micro``: on the summed counts;
        ``None``: one value per class ``0 .. K-1`` (nan where undefined).

    >>> precision([0, 1, 1, 1], [1, 1, 1, 0])
    0.6666666666666666
    >>> precision([0, 1, 2, 2], [0, 1, 2, 1], average="macro")   # (1 + 1/2 + 1) / 3
    0.8333333333333334
    """
    return _precision_recall_f1(y_true, y_pred, average, "precision")


def recall(y_true, y_pred, average="binary"):
    r"""Recall (sensitivity) :math:`TP / (TP + FN)`: of the samples of class :math:`k`, the
    fraction found.  ``average`` as in :func:`precision`.

    >>> recall([0, 1, 1, 1], [1, 1, 1, 0])
    0.6666666666666666
    """
    return _precision_recall_f1(y_true, y_pred, average, "recall")


def f1(y_true, y_pred, average="binary"):
    r"""F1 score :math:`2PR/(P + R) = 2\,TP / (2\,TP + FP + FN)`.  ``average`` as in
    :func:`precision`.

    >>> f1([0, 1, 1, 1], [1, 1, 1, 0])
    0.6666666666666666
    """
    return _precision_recall_f1(y_true, y_pred, average, "f1")


def mcc(y_true, y_pred):
    r"""Matthews correlation coefficient, binary or multiclass (formula in the module
    docstring); 1 is perfect, 0 chance level, -1 total disagreement (binary).

    ``nan`` with a warning when ``y_true`` or ``y_pred`` holds a single class (the
    denominator is 0; scikit-learn returns 0.0 there).

    >>> mcc([0, 0, 1, 1], [0, 0, 1, 0])
    0.5773502691896258
    """
    y_true, y_pred = _label_pair(y_true, y_pred, "mcc")
    if len(y_true) == 0:
        return _undefined("mcc", "no samples")
    cm = _confusion(y_true, y_pred, _num_classes(y_true, y_pred, None, "mcc")).astype(
        np.float64)
    true_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
    correct, total = np.trace(cm), cm.sum()
    covariance = correct * total - true_count @ pred_count
    denominator = (total * total - pred_count @ pred_count) * (total * total
                                                               - true_count @ true_count)
    if denominator == 0:
        return _undefined("mcc", "y_true or y_pred holds a single class")
    return float(covariance / np.sqrt(denominator))


# ----------------------------------------------------------------------------- score metrics


def _score_pair(y_true, y_score, fn):
    y_true = _labels(y_true, "y_true", fn)
    y_score = _array(y_score)
    if y_score.dtype.kind not in "biuf":
        raise ValueError(f"{fn}: y_score must be numeric, got dtype {y_score.dtype}")
    y_score = y_score.astype(np.float64)
    if y_score.ndim == 2 and y_score.shape[1] == 1:
        y_score = y_score[:, 0]
    if y_score.ndim not in (1, 2):
        raise ValueError(f"{fn}: y_score must be (N,) or (N, K), got shape {y_score.shape}")
    if len(y_score) != len(y_true):
        raise ValueError(
            f"{fn}: y_true has {len(y_true)} samples but y_score has {len(y_score)}"
        )
    if np.any(np.isnan(y_score)):
        raise ValueError(f"{fn}: y_score contains nan")
    if y_score.ndim == 1:
        if y_true.size and y_true.max() > 1:
            raise ValueError(
                f"{fn}: 1-D y_score is for a binary problem, but y_true has label "
                f"{int(y_true.max())}; pass (N, K) scores for K classes"
            )
    else:
        if y_score.shape[1] < 2:
            raise ValueError(f"{fn}: y_score needs at least 2 columns, got {y_score.shape}")
        if y_true.size and y_true.max() >= y_score.shape[1]:
            raise ValueError(
                f"{fn}: y_true has label {int(y_true.max())} but y_score has only "
                f"{y_score.shape[1]} columns"
            )
    return y_true, y_score


def _average_ranks(values):
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.concatenate((starts[1:], [len(values)]))
    ranks = np.empty(len(values), dtype=np.float64)
    # positions starts..ends-1 (0-based) hold ranks starts+1..ends: their mean
    ranks[order] = ((starts + ends + 1) / 2.0)[group]
    return ranks


def _binary_auroc(positive, score):
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.nan
    rank_sum = _average_ranks(score)[positive].sum()
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _binary_average_precision(positive, score):
    n_pos = int(positive.sum())
    if n_pos == 0:
        return np.nan
    order = np.argsort(-score, kind="mergesort")
    ordered, hits = score[order], positive[order]
    # one threshold per distinct score: the last position of each run of equal scores
    last = np.concatenate((np.flatnonzero(ordered[1:] != ordered[:-1]), [len(ordered) - 1]))
    true_pos = np.cumsum(hits)[last]
    precision_at = true_pos / (last + 1.0)
    recall_at = true_pos / n_pos
    return float(np.sum(np.diff(recall_at, prepend=0.0) * precision_at))


def _score_metric(fn, binary_metric, y_true, y_score, average, why_binary):
    averages = ("macro", "weighted", None)
    if average not in averages:
        raise ValueError(f"{fn}: average must be one of {averages}, got {average!r}")
    y_true, y_score = _score_pair(y_true, y_score, fn)
    if len(y_true) == 0:
        return _undefined(fn, "no samples")
    if y_score.ndim == 1:
        value = binary_metric(y_true == 1, y_score)
        return _undefined(fn, why_binary) if np.isnan(value) else float(value)

    num_classes = y_score.shape[1]
    values = np.array([binary_metric(y_true == k, y_score[:, k]) for k in range(num_classes)])
    if average is None:
        return values
    defined = ~np.isnan(values)
    if not defined.any():
        return _undefined(fn, "no class is both present and absent in y_true")
    if not defined.all():
        warnings.warn(
            f"{fn}: undefined for classes {np.flatnonzero(~defined).tolist()} (absent from "
            "y_true, or the only class present); averaging over the others",
            UndefinedMetricWarning, stacklevel=3)
    if average == "macro":
        return float(values[defined].mean())
    weights = np.bincount(y_true, minlength=num_classes)[defined]
    return float(np.average(values[defined], weights=weights))


def auroc(y_true, y_score, average="macro"):
    r"""Area under the ROC curve (see the module docstring for the rank formula).

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
    y_score : array-like of float, shape (N,) or (N, K)
        ``(N,)``: the score of class 1 in a 0/1 problem.  ``(N, K)``: one-vs-rest, class
        :math:`k` against the rest scored by column :math:`k`.
    average : {"macro", "weighted", None}
        How the one-vs-rest values combine: plain mean, mean weighted by class
        prevalence, or the per-class array (nan for undefined classes).

    Returns
    -------
    float
        ``nan`` with a warning if only one class is present.

    >>> auroc([0, 1, 1], [0.2, 0.2, 0.9])   # a tie between a positive and a negative
    0.75
    >>> auroc([0, 1, 2], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    1.0
    """
    return _score_metric("auroc", _binary_auroc, y_true, y_score, average,
                         "only one class present in y_true")


def auprc(y_true, y_score, average="macro"):
    r"""Area under the precision-recall curve as average precision,
    :math:`\sum_n (R_n - R_{n-1}) P_n` (scikit-learn's ``average_precision_score``).

    Parameters as :func:`auroc`.  Its chance level is the prevalence of the positive
    class, not 0.5, which makes it the more telling number for rare positives.

    Returns
    -------
    float
        ``nan`` with a warning if ``y_true`` has no positive sample.

    >>> auprc([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.3])
    0.8333333333333333
    """
    return _score_metric("auprc", _binary_average_precision, y_true, y_score, average,
                         "no positive sample in y_true")


def _is_binary(y_true, y_pred):
    return max(np.max(y_true, initial=0), np.max(y_pred, initial=0)) <= 1


#: Metrics by name, for training loops: ``name -> (function, what it reads)``, where what
#: it reads is ``"labels"`` (predicted classes) or ``"scores"`` (probabilities).
#: ``precision``, ``recall`` and ``f1`` are binary for 0/1 labels and macro otherwise.
METRICS = {
    "accuracy": (accuracy, "labels"),
    "balanced_accuracy": (balanced_accuracy, "labels"),
    "precision": (lambda t, p: precision(t, p, "binary" if _is_binary(t, p) else "macro"),
                  "labels"),
    "recall": (lambda t, p: recall(t, p, "binary" if _is_binary(t, p) else "macro"),
               "labels"),
    "f1": (lambda t, p: f1(t, p, "binary" if _is_binary(t, p) else "macro"), "labels"),
    "macro_f1": (lambda t, p: f1(t, p, "macro"), "labels"),
    "micro_f1": (lambda t, p: f1(t, p, "micro"), "labels"),
    "mcc": (mcc, "labels"),
    "auroc": (auroc, "scores"),
    "auprc": (auprc, "scores"),
}
