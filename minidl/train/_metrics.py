r"""Metrics for training loops: names or callables, applied to a model's raw outputs.

A model ends in logits (what ``BCEWithLogitsLoss`` and ``CrossEntropyLoss`` take), while
:mod:`minidl.metrics` wants predicted labels or probabilities.  ``task`` says how to go
from one to the other:

=============  ==============================  ===================================
task           scores (AUROC, AUPRC)           labels (accuracy, MCC, F1, ...)
=============  ==============================  ===================================
"binary"       :math:`\sigma(z)`, shape (N,)   :math:`\sigma(z) > 0.5`, i.e. z > 0
"multiclass"   :math:`\mathrm{softmax}(z)`     :math:`\arg\max_k z_k`
"regression"   raw outputs                     raw outputs
=============  ==============================  ===================================

For ``"binary"`` a single logit per sample is expected ((N,) or (N, 1)); two columns are
read as a two-class softmax whose class-1 probability is the score.  For ``"multiclass"``
outputs ``(N, K, d1, ...)`` (one prediction per position, as ``CrossEntropyLoss`` takes)
are flattened to ``(N * d1 * ..., K)`` and positions whose target is negative (the padding
label ``-100``, ``ignore_index``) are dropped, so padded sequences score correctly.
"""

from __future__ import annotations

import numpy as np

from minidl import metrics as _metrics

__all__ = ["resolve_metrics", "MetricSet"]

TASKS = ("binary", "multiclass", "regression", None)
_READS = ("labels", "scores", "raw")


def _sigmoid(z):
    # the two branches avoid exp overflow for large |z|
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _softmax(z, axis=-1):
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _infer_task(output):
    """Binary for one output column, multiclass for several (used when task is None and
    a named classification metric is asked for)."""
    if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
        return "binary"
    return "multiclass"


def _classification_views(task, y_true, output):
    """``(y_true, scores, labels)`` as :mod:`minidl.metrics` expects them."""
    output = np.asarray(output, dtype=np.float64)
    y_true = np.asarray(y_true)
    if task is None:
        task = _infer_task(output)
    if task == "binary":
        if output.ndim == 2 and output.shape[1] == 2:
            scores = _softmax(output, axis=1)[:, 1]
        elif output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            scores = _sigmoid(output.reshape(-1))
        else:
            raise ValueError(
                f"metrics: task='binary' expects one logit per sample, outputs (N,) or (N, 1) "
                f"(or (N, 2) softmax logits), got outputs of shape {output.shape}"
            )
        labels = (scores > 0.5).astype(np.int64)
        y_true = y_true.reshape(-1)
        return y_true, scores, labels
    # multiclass
    if output.ndim < 2:
        raise ValueError(
            f"metrics: task='multiclass' expects outputs (N, K) or (N, K, d1, ...), got shape "
            f"{output.shape}"
        )
    num_classes = output.shape[1]
    if output.ndim > 2:
        # (N, K, d1, ...) -> (N * d1 * ..., K): one row per position
        output = np.moveaxis(output, 1, -1).reshape(-1, num_classes)
    y_true = y_true.reshape(-1)
    if y_true.shape[0] != output.shape[0]:
        raise ValueError(
            f"metrics: {y_true.shape[0]} targets for {output.shape[0]} predictions (outputs "
            f"have {num_classes} classes per row)"
        )
    keep = y_true >= 0  # ignore_index (-100) marks padding: not a sample
    y_true, output = y_true[keep], output[keep]
    scores = _softmax(output, axis=1)
    labels = np.argmax(output, axis=1)
    return y_true, scores, labels


class MetricSet:
    """The metrics of one training run: ``compute(y_true, output) -> {name: value}``.

    Built by :func:`resolve_metrics`; holds ``(name, function, reads)`` triples where
    ``reads`` is ``"labels"``, ``"scores"`` or ``"raw"``.
    """

    def __init__(self, entries, task):
        self.entries = entries
        self.task = task

    def __len__(self):
        return len(self.entries)

    @property
    def names(self):
        return [name for name, _, _ in self.entries]

    def batch(self, y_true, output):
        """What to keep of one batch: per-position outputs ``(N, K, d1, ...)`` become rows
        ``(N * d1 * ..., K)`` without the padded positions, so that batches padded to
        different lengths concatenate. Raw-output metrics get the batch unchanged."""
        y_true, output = np.asarray(y_true), np.asarray(output)
        if (output.ndim > 2 and self.task in (None, "multiclass")
                and all(reads != "raw" for _, _, reads in self.entries)):
            rows = np.moveaxis(output, 1, -1).reshape(-1, output.shape[1])
            targets = y_true.reshape(-1)
            if targets.shape[0] == rows.shape[0]:
                keep = targets >= 0
                return targets[keep], rows[keep]
        return y_true, output

    def compute(self, y_true, output):
        """Every metric on the whole set of targets and raw outputs (NumPy arrays)."""
        if not self.entries:
            return {}
        y_true = np.asarray(y_true)
        output = np.asarray(output)
        views = None
        results = {}
        for name, fn, reads in self.entries:
            if reads == "raw":
                value = fn(y_true, output)
            else:
                if views is None:
                    views = _classification_views(self.task, y_true, output)
                labels_true, scores, labels = views
                value = fn(labels_true, scores if reads == "scores" else labels)
            results[name] = float(value)
        return results


def resolve_metrics(metrics, task=None):
    """Turn a user's ``metrics=`` argument into a :class:`MetricSet`.

    Parameters
    ----------
    metrics : None, str, callable, or a list of those
        Each item is a name from :data:`minidl.metrics.METRICS` (``"accuracy"``,
        ``"balanced_accuracy"``, ``"precision"``, ``"recall"``, ``"f1"``,
        ``"macro_f1"``, ``"micro_f1"``, ``"mcc"``, ``"auroc"``, ``"auprc"``); a callable
        ``fn(y_true, output) -> float`` that receives the *raw* outputs (named after
        ``fn.__name__``); or a tuple ``(name, fn)`` or ``(name, fn, reads)`` with
        ``reads`` in ``"labels"``, ``"scores"``, ``"raw"`` (what ``fn`` is given as its
        second argument, converted by ``task``).  A dict ``{name: fn}`` is accepted too.
    task : {"binary", "multiclass", "regression", None}
        How raw outputs become probabilities and labels (see the module docstring).
        ``None`` with a named classification metric infers ``"binary"`` for one output
        column and ``"multiclass"`` for several.

    Raises
    ------
    ValueError
        For an unknown metric name (the message lists the known ones), an unknown task,
        a duplicate name, or a bad ``reads``.
    """
    if task not in TASKS:
        raise ValueError(f"metrics: task must be one of {TASKS}, got {task!r}")
    if metrics is None:
        return MetricSet([], task)
    if isinstance(metrics, dict):
        items = list(metrics.items())
    elif isinstance(metrics, (str, tuple)) or callable(metrics):
        items = [metrics]
    else:
        items = list(metrics)
    entries = []
    for item in items:
        if isinstance(item, str):
            if item not in _metrics.METRICS:
                raise ValueError(
                    f"metrics: unknown metric {item!r}; known names: "
                    f"{', '.join(sorted(_metrics.METRICS))}, or pass a callable "
                    "fn(y_true, output) -> float"
                )
            fn, reads = _metrics.METRICS[item]
            entries.append((item, fn, reads))
        elif isinstance(item, tuple) and 2 <= len(item) <= 3:
            name, fn = item[0], item[1]
            reads = item[2] if len(item) == 3 else "raw"
            if reads not in _READS:
                raise ValueError(f"metrics: {name!r}: reads must be one of {_READS}, got {reads!r}")
            if not callable(fn):
                raise ValueError(f"metrics: {name!r}: {fn!r} is not callable")
            entries.append((str(name), fn, reads))
        elif callable(item):
            entries.append((getattr(item, "__name__", "metric"), item, "raw"))
        else:
            raise ValueError(
                f"metrics: each metric must be a name, a callable or (name, fn[, reads]), got "
                f"{item!r}"
            )
    if task == "regression":
        converted = [name for name, _, reads in entries if reads != "raw"]
        if converted:
            raise ValueError(
                f"metrics: {converted} need class labels or probabilities, but task="
                "'regression' passes raw outputs; use task='binary' or 'multiclass'"
            )
    names = [name for name, _, _ in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"metrics: duplicate metric names {duplicates}")
    clashes = [n for n in names if n in ("loss", "lr", "time", "epoch") or n.startswith("val_")]
    if clashes:
        raise ValueError(f"metrics: names {clashes} clash with the history's own columns")
    return MetricSet(entries, task)
