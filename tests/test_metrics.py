"""minidl.metrics against scikit-learn on random inputs (hypothesis), undefined cases (nan
with a warning), and input checking."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import metrics


@pytest.fixture(scope="module")
def skm():
    """sklearn.metrics, or skip (module-scoped, so hypothesis tests may use it)."""
    return pytest.importorskip("sklearn.metrics")


def _quiet(fn, *args, **kwargs):
    """Call a scikit-learn function with its undefined-metric warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@st.composite
def label_pairs(draw, max_classes=5, min_size=1, max_size=40):
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(min_size, max_size))
    labels = st.lists(st.integers(0, k - 1), min_size=n, max_size=n)
    return np.array(draw(labels)), np.array(draw(labels)), k


@st.composite
def binary_scores(draw, max_size=40):
    n = draw(st.integers(2, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    # scores from a few levels, so ties between positives and negatives are frequent
    levels = draw(st.integers(2, 12))
    score = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    return y, score


@st.composite
def multiclass_scores(draw):
    k = draw(st.integers(3, 5))
    n = draw(st.integers(k, 40))
    rest = draw(st.lists(st.integers(0, k - 1), min_size=n - k, max_size=n - k))
    y = np.array(list(range(k)) + rest)  # every class present: sklearn demands it
    logits = np.array(draw(st.lists(st.integers(0, 6), min_size=n * k, max_size=n * k)),
                      dtype=np.float64).reshape(n, k)
    score = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, score, k


# ----------------------------------------------------------------------------- label metrics


@given(label_pairs())
def test_label_metrics_match_sklearn(skm, data):
    y_true, y_pred, k = data
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(metrics.confusion_matrix(y_true, y_pred, num_classes=k),
                                  skm.confusion_matrix(y_true, y_pred, labels=list(range(k))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.balanced_accuracy_score(y_true, y_pred)
        assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx(expected)
        for average in ("macro", "micro", "weighted"):
            for ours, theirs in ((metrics.precision, skm.precision_score),
                                 (metrics.recall, skm.recall_score),
                                 (metrics.f1, skm.f1_score)):
                expected = theirs(y_true, y_pred, average=average, zero_division=0)
                assert ours(y_true, y_pred, average=average) == pytest.approx(expected), \
                    (ours.__name__, average)


@given(label_pairs())
def test_mcc_matches_sklearn_where_defined(skm, data):
    y_true, y_pred, _ = data
    constant = len(np.unique(y_true)) == 1 or len(np.unique(y_pred)) == 1
    if constant:
        with pytest.warns(UserWarning, match="mcc is undefined"):
            assert np.isnan(metrics.mcc(y_true, y_pred))
    else:
        assert metrics.mcc(y_true, y_pred) == pytest.approx(skm.matthews_corrcoef(y_true,
                                                                                  y_pred))


@given(label_pairs(max_classes=2))
def test_binary_precision_recall_f1_match_sklearn_where_defined(skm, data):
    y_true, y_pred, _ = data
    for ours, theirs, denominator in (
            (metrics.precision, skm.precision_score, (y_pred == 1).sum()),
            (metrics.recall, skm.recall_score, (y_true == 1).sum()),
            (metrics.f1, skm.f1_score, (y_pred == 1).sum() + (y_true == 1).sum())):
        if denominator == 0:
            with pytest.warns(UserWarning, match="undefined"):
                assert np.isnan(ours(y_true, y_pred))
        else:
            expected = _quiet(theirs, y_true, y_pred)
            assert ours(y_true, y_pred) == pytest.approx(expected)
            assert ours(minidl.tensor(y_true), minidl.tensor(y_pred)) == pytest.approx(expected)


def test_per_class_values_and_known_numbers():
    y_true = [0, 1, 2, 2, 2]
    y_pred = [0, 2, 2, 2, 1]
    # class 0: P=1 R=1; class 1: P=0/1 R=0/1; class 2: P=2/3 R=2/3
    np.testing.assert_allclose(metrics.precision(y_true, y_pred, average=None), [1, 0, 2 / 3])
    np.testing.assert_allclose(metrics.recall(y_true, y_pred, average=None), [1, 0, 2 / 3])
    assert metrics.balanced_accuracy(y_true, y_pred) == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert metrics.f1(y_true, y_pred, average="micro") == pytest.approx(0.6)
    # binary MCC by the textbook formula: TP=2 TN=1 FP=1 FN=1
    tp, tn, fp, fn = 2, 1, 1, 1
    expected = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert metrics.mcc([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(expected)


# ----------------------------------------------------------------------------- score metrics


@given(binary_scores())
def test_binary_auroc_and_auprc_match_sklearn(skm, data):
    y, score = data
    if len(np.unique(y)) == 1:
        with pytest.warns(UserWarning, match="auroc is undefined"):
            assert np.isnan(metrics.auroc(y, score))
    else:
        assert metrics.auroc(y, score) == pytest.approx(skm.roc_auc_score(y, score),
                                                        rel=1e-12, abs=1e-12)
    if y.sum() == 0:
        with pytest.warns(UserWarning, match="auprc is undefined"):
            assert np.isnan(metrics.auprc(y, score))
    else:
        expected = skm.average_precision_score(y, score)
        assert metrics.auprc(y, score) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        # (N, 1) scores, float 0/1 labels and Tensors are read the same way
        assert metrics.auprc(minidl.tensor(y.astype(np.float32)).reshape(-1, 1),
                             minidl.tensor(score).reshape(-1, 1)) == pytest.approx(expected)


@given(multiclass_scores())
def test_one_vs_rest_auroc_and_auprc_match_sklearn(skm, data):
    from sklearn.preprocessing import label_binarize

    y, score, k = data
    onehot = label_binarize(y, classes=list(range(k)))
    for average in ("macro", "weighted"):
        expected = skm.roc_auc_score(y, score, multi_class="ovr", average=average)
        assert metrics.auroc(y, score, average=average) == pytest.approx(expected, rel=1e-12)
        expected = skm.average_precision_score(onehot, score, average=average)
        assert metrics.auprc(y, score, average=average) == pytest.approx(expected, rel=1e-12)
    per_class = metrics.auroc(y, score, average=None)
    expected = [skm.roc_auc_score(onehot[:, c], score[:, c]) for c in range(k)]
    np.testing.assert_allclose(per_class, expected, rtol=1e-12)


def test_auroc_counts_ties_as_one_half():
    # pairs (positive, negative): (0.5 vs 0.5) tie = 1/2, (0.5 vs 0.1) = 1, (0.9 vs both) = 2
    assert metrics.auroc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]) == pytest.approx(3.5 / 4)
    assert metrics.auroc([1, 1, 0, 0], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_multiclass_absent_class_is_skipped_with_a_warning():
    y = np.array([0, 1, 0, 1])
    score = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    with pytest.warns(UserWarning, match=r"classes \[2\]"):
        value = metrics.auroc(y, score)
    assert value == 1.0
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(metrics.auroc(np.zeros(4, dtype=int), score))


# ----------------------------------------------------------------------------- undefined, errors


def test_undefined_metrics_are_nan_with_a_warning():
    cases = [
        (metrics.accuracy, [], []),
        (metrics.balanced_accuracy, [], []),
        (metrics.mcc, [1, 1, 1], [1, 0, 1]),
        (metrics.precision, [0, 1], [0, 0]),
        (metrics.recall, [0, 0], [1, 0]),
        (metrics.f1, [0, 0], [0, 0]),
        (metrics.f1, [], []),
        (metrics.auroc, [1, 1, 1], [0.2, 0.5, 0.9]),
        (metrics.auprc, [0, 0, 0], [0.2, 0.5, 0.9]),
    ]
    for fn, y_true, y_score_or_pred in cases:
        with pytest.warns(metrics.UndefinedMetricWarning):
            assert np.isnan(fn(y_true, y_score_or_pred)), fn.__name__
    assert issubclass(metrics.UndefinedMetricWarning, UserWarning)


def test_bad_input_raises_value_error_naming_the_problem():
    with pytest.raises(ValueError, match="3 samples but y_pred has 2"):
        metrics.accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="argmax"):
        metrics.f1([0, 1], [[0.2, 0.8], [0.9, 0.1]])
    with pytest.raises(ValueError, match="integer class labels"):
        metrics.mcc([0, 1], [0.5, 1.0])
    with pytest.raises(ValueError, match="negative"):
        metrics.confusion_matrix([0, -1], [0, 1])
    with pytest.raises(ValueError, match="num_classes=2"):
        metrics.confusion_matrix([0, 2], [0, 1], num_classes=2)
    with pytest.raises(ValueError, match="average='binary'"):
        metrics.precision([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="average must be"):
        metrics.recall([0, 1], [0, 1], average="samples")
    with pytest.raises(ValueError, match="contains nan"):
        metrics.auroc([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="binary"):
        metrics.auroc([0, 2], [0.1, 0.9])
    with pytest.raises(ValueError, match="only 2 columns"):
        metrics.auprc([0, 2], [[0.1, 0.9], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, K\)"):
        metrics.auroc([0, 1], np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="2 samples but y_score has 3"):
        metrics.auroc([0, 1], [0.1, 0.2, 0.3])


def test_metric_registry_for_training_loops():
    for name, (fn, reads) in metrics.METRICS.items():
        assert reads in ("labels", "scores"), name
        if reads == "labels":
            assert np.isfinite(fn(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))), name
        else:
            assert np.isfinite(fn(np.array([0, 1, 1, 0]), np.array([0.1, 0.8, 0.3, 0.2]))), name
    assert metrics.METRICS["f1"][0](np.array([0, 1, 2]), np.array([0, 1, 1])) == \
        pytest.approx(metrics.f1([0, 1, 2], [0, 1, 1], average="macro"))


def test_doctests():
    result = doctest.testmod(metrics, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
