"""Loss functions: PyTorch parity (values and gradients) for every option, gradcheck,
stability at extreme logits, and the errors.

Expected values come from PyTorch 2.13 (skipped without torch) or from formulas written
out here, never from minidl itself.
"""

import doctest
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import torch_parity

import minidl
from minidl.ops import loss as L

# max_examples comes from the hypothesis profile in tests/conftest.py
SETTINGS = settings(deadline=None)
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-5, atol=1e-5)}
REDUCTIONS = ["none", "mean", "sum"]
DTYPES = [np.float64, np.float32]


# ----------------------------------------------------------------------------- helpers


def _F():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def assert_parity(mini_fn, torch_fn, arrays, dtype, consts=()):
    """Run both libraries on the same arrays and compare shape, dtype, values and gradients.

    ``arrays`` are fed positionally (float ones cast to ``dtype`` and differentiated, integer
    class targets as they are).  ``consts`` are extra arrays (weights, pos_weight) passed
    after them, cast to ``dtype`` and never differentiated (PyTorch refuses to).
    """
    torch = pytest.importorskip("torch")
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    consts = [None if c is None else c.astype(dtype) for c in consts]
    mini_c = [None if c is None else minidl.Tensor(c.copy()) for c in consts]
    torch_c = [None if c is None else torch.tensor(c.copy()) for c in consts]
    torch_parity(lambda *a: mini_fn(*a, *mini_c), lambda *a: torch_fn(*a, *torch_c),
                 *arrays, **TOL[dtype])


def rng_from(data):
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


shapes = hnp.array_shapes(min_dims=1, max_dims=3, max_side=5)


@st.composite
def class_problem(draw, max_extra_dims=2):
    """(N, C, extra dims) for class losses, including K-dimensional inputs."""
    n = draw(st.integers(1, 6), label="N")
    c = draw(st.integers(1, 5), label="C")
    extra = draw(st.lists(st.integers(1, 3), max_size=max_extra_dims), label="extra dims")
    return n, c, tuple(extra)


def index_target(rng, n, c, extra, ignore_index, ignore_fraction):
    t = rng.integers(0, c, (n,) + extra)
    t[rng.random(t.shape) < ignore_fraction] = ignore_index
    return t


# ----------------------------------------------------------------------------- regression


REGRESSION = [
    ("mse_loss", {}, {}),
    ("l1_loss", {}, {}),
    ("smooth_l1_loss", dict(beta=1.0), dict(beta=1.0)),
    ("smooth_l1_loss", dict(beta=0.3), dict(beta=0.3)),
    ("smooth_l1_loss", dict(beta=0.0), dict(beta=0.0)),
    ("huber_loss", dict(delta=1.0), dict(delta=1.0)),
    ("huber_loss", dict(delta=2.5), dict(delta=2.5)),
]
REGRESSION_IDS = [f"{name}{kw}" for name, kw, _ in REGRESSION]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, kwargs, torch_kwargs", REGRESSION, ids=REGRESSION_IDS)
@SETTINGS
@given(shape=shapes, data=st.data())
def test_regression_losses_match_torch(name, kwargs, torch_kwargs, reduction, dtype, shape,
                                       data):
    rng = rng_from(data)
    x, y = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    _, F = _F()
    assert_parity(
        lambda a, b: getattr(L, name)(a, b, reduction=reduction, **kwargs),
        lambda a, b: getattr(F, name)(a, b, reduction=reduction, **torch_kwargs),
        [x, y], dtype=dtype,
    )


@pytest.mark.parametrize("name, kwargs, torch_kwargs", REGRESSION, ids=REGRESSION_IDS)
@SETTINGS
@given(shape=shapes, data=st.data())
def test_regression_losses_gradcheck(name, kwargs, torch_kwargs, shape, data):
    rng = rng_from(data)
    # keep |x - y| away from the kinks: 0 (l1) and beta/delta (smooth_l1, huber)
    diff = rng.uniform(0.1, 3.0, shape) * rng.choice([-1.0, 1.0], shape)
    kink = kwargs.get("beta", kwargs.get("delta"))
    if kink:
        diff = np.where(np.abs(np.abs(diff) - kink) < 0.05, diff * 1.1 + 0.1, diff)
    y = rng.standard_normal(shape)
    x = minidl.Tensor(y + diff, requires_grad=True)
    t = minidl.Tensor(y, requires_grad=True)
    for reduction in REDUCTIONS:
        assert minidl.gradcheck(
            lambda a, b, r=reduction: getattr(L, name)(a, b, reduction=r, **kwargs), [x, t]
        )


def test_smooth_l1_and_huber_at_the_kink_match_hand_values():
    # |d| == beta: value 0.5 * beta, slope sign(d) (both pieces agree)
    x = minidl.tensor([0.5, -0.5, 0.0], dtype="float64", requires_grad=True)
    y = minidl.zeros(3, dtype=minidl.float64)
    loss = L.smooth_l1_loss(x, y, reduction="none", beta=0.5)
    assert loss.tolist() == [0.25, 0.25, 0.0]
    loss.sum().backward()
    assert x.grad.tolist() == [1.0, -1.0, 0.0]
    x.grad = None
    loss = L.huber_loss(x, y, reduction="none", delta=0.5)
    assert loss.tolist() == [0.125, 0.125, 0.0]
    loss.sum().backward()
    assert x.grad.tolist() == [0.5, -0.5, 0.0]


# ----------------------------------------------------------------------------- cross entropy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(problem=class_problem(), data=st.data())
def test_cross_entropy_class_indices_match_torch(reduction, dtype, problem, data):
    n, c, extra = problem
    rng = rng_from(data)
    use_weight = data.draw(st.booleans(), label="weight")
    smoothing = data.draw(st.sampled_from([0.0, 0.1, 0.45, 1.0]), label="label_smoothing")
    # an ignore_index outside the classes (the default) or one of the classes
    ignore_index = data.draw(st.sampled_from([-100, 0, c - 1, 7]), label="ignore_index")
    ignore_fraction = data.draw(st.sampled_from([0.0, 0.3]), label="ignored")
    x = rng.standard_normal((n, c) + extra) * 3
    t = index_target(rng, n, c, extra, ignore_index, ignore_fraction)
    weight = rng.uniform(0.1, 2.0, c) if use_weight else None
    _, F = _F()
    opts = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    assert_parity(
        lambda a, b, w: L.cross_entropy(a, b, w, **opts),
        lambda a, b, w: F.cross_entropy(a, b, w, **opts),
        [x, t], dtype=dtype, consts=[weight],
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(problem=class_problem(), data=st.data())
def test_cross_entropy_class_probabilities_match_torch(reduction, dtype, problem, data):
    n, c, extra = problem
    rng = rng_from(data)
    use_weight = data.draw(st.booleans(), label="weight")
    smoothing = data.draw(st.sampled_from([0.0, 0.2, 1.0]), label="label_smoothing")
    x = rng.standard_normal((n, c) + extra) * 3
    p = rng.random((n, c) + extra)
    p /= p.sum(axis=1, keepdims=True)
    weight = rng.uniform(0.1, 2.0, c) if use_weight else None
    _, F = _F()
    opts = dict(reduction=reduction, label_smoothing=smoothing)
    # the probability target is differentiable too
    assert_parity(
        lambda a, b, w: L.cross_entropy(a, b, w, **opts),
        lambda a, b, w: F.cross_entropy(a, b, w, **opts),
        [x, p], dtype=dtype, consts=[weight],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_all_targets_ignored_matches_torch(reduction, smoothing, use_weight):
    # mean is 0/0 = nan (in PyTorch too); the gradient is exactly 0 everywhere
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3))
    t = np.full(4, -100)
    weight = rng.uniform(0.5, 1.5, 3) if use_weight else None
    _, F = _F()
    opts = dict(reduction=reduction, label_smoothing=smoothing)
    assert_parity(lambda a, b, w: L.cross_entropy(a, b, w, **opts),
                  lambda a, b, w: F.cross_entropy(a, b, w, **opts),
                  [x, t], dtype=np.float64, consts=[weight])
    xm = minidl.Tensor(x, requires_grad=True)
    w = None if weight is None else minidl.Tensor(weight)
    out = L.cross_entropy(xm, minidl.Tensor(t), w, **opts)
    assert math.isnan(out.sum().item()) == (reduction == "mean")
    out.sum().backward()
    assert np.all(xm.grad.data == 0)


def test_cross_entropy_unbatched_matches_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5)
    p = rng.random(5)
    p /= p.sum()
    _, F = _F()
    for reduction in REDUCTIONS:
        opts = dict(reduction=reduction, label_smoothing=0.1)
        assert_parity(lambda a, b, o=opts: L.cross_entropy(a, b, **o),
                      lambda a, b, o=opts: F.cross_entropy(a, b, **o),
                      [x, np.array(3)], dtype=np.float64)
        assert_parity(lambda a, b, o=opts: L.cross_entropy(a, b, **o),
                      lambda a, b, o=opts: F.cross_entropy(a, b, **o),
                      [x, p], dtype=np.float64)


def test_cross_entropy_hand_computed_value():
    # logits (0, ln 3): p = (1/4, 3/4); target 1, weight (1, 2), smoothing 0.5:
    # l = -(0.5 * 2 * log 3/4) - (0.25) * (1 * log 1/4 + 2 * log 3/4); mean divides by w_1 = 2
    x = minidl.tensor([[0.0, math.log(3.0)]], dtype="float64")
    w = minidl.tensor([1.0, 2.0], dtype="float64")
    got = L.cross_entropy(x, minidl.tensor([1]), w, label_smoothing=0.5).item()
    expected = (-(1.0 * math.log(0.75)) - 0.25 * (math.log(0.25) + 2 * math.log(0.75))) / 2
    assert got == pytest.approx(expected, rel=1e-14)


@SETTINGS
@given(problem=class_problem(max_extra_dims=1), data=st.data())
def test_cross_entropy_gradcheck(problem, data):
    n, c, extra = problem
    rng = rng_from(data)
    x = minidl.Tensor(rng.standard_normal((n, c) + extra), requires_grad=True)
    t = minidl.Tensor(index_target(rng, n, c, extra, -100, 0.2))
    w = minidl.Tensor(rng.uniform(0.1, 2.0, c))
    p = rng.random((n, c) + extra)
    probs = minidl.Tensor(p / p.sum(axis=1, keepdims=True), requires_grad=True)
    for reduction in REDUCTIONS:
        opts = dict(reduction=reduction, label_smoothing=0.2)
        assert minidl.gradcheck(lambda a, o=opts: L.cross_entropy(a, t, w, **o), [x])
        assert minidl.gradcheck(lambda a, b, o=opts: L.cross_entropy(a, b, w, **o), [x, probs])


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_extreme_logits_are_finite_and_match_torch(dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, 1e4, 5e3]])
    t = np.array([1, 0, 2, 1])
    p = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.0, 0.5], [0.1, 0.8, 0.1]])
    _, F = _F()
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for target in (t, p):
            for smoothing in (0.0, 0.1):
                opts = dict(reduction="none", label_smoothing=smoothing)
                xm = minidl.Tensor(x.astype(dtype), requires_grad=True)
                out = L.cross_entropy(xm, minidl.Tensor(target.astype(dtype) if target is p
                                                        else target), **opts)
                out.sum().backward()
                assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(xm.grad.data))
                assert_parity(lambda a, b, o=opts: L.cross_entropy(a, b, **o),
                              lambda a, b, o=opts: F.cross_entropy(a, b, **o),
                              [x, target], dtype=dtype)


# ----------------------------------------------------------------------------- nll


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(problem=class_problem(), data=st.data())
def test_nll_loss_matches_torch(reduction, dtype, problem, data):
    n, c, extra = problem
    rng = rng_from(data)
    ignore_index = data.draw(st.sampled_from([-100, 0, 9]), label="ignore_index")
    x = rng.standard_normal((n, c) + extra) * 2
    t = index_target(rng, n, c, extra, ignore_index, data.draw(st.sampled_from([0.0, 0.4])))
    weight = rng.uniform(0.1, 2.0, c) if data.draw(st.booleans(), label="weight") else None
    _, F = _F()
    opts = dict(ignore_index=ignore_index, reduction=reduction)
    assert_parity(lambda a, b, w: L.nll_loss(a, b, w, **opts),
                  lambda a, b, w: F.nll_loss(a, b, w, **opts),
                  [x, t], dtype=dtype, consts=[weight])


def test_nll_loss_all_ignored_unbatched_and_gradcheck():
    _, F = _F()
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = minidl.tensor([1, -100, 3])
    w = minidl.tensor([1.0, 2.0, 0.5, 3.0], dtype="float64")
    for reduction in REDUCTIONS:
        def mine(a, b, r=reduction):
            return L.nll_loss(a, b, reduction=r)

        def theirs(a, b, r=reduction):
            return F.nll_loss(a, b, reduction=r)

        assert_parity(mine, theirs, [x, np.full(3, -100)], dtype=np.float64)
        assert_parity(mine, theirs, [x[0], np.array(2)], dtype=np.float64)
        xm = minidl.Tensor(x, requires_grad=True)
        assert minidl.gradcheck(lambda a, r=reduction: L.nll_loss(a, t, w, reduction=r), [xm])


# ----------------------------------------------------------------------------- binary


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(shape=shapes, data=st.data())
def test_binary_cross_entropy_matches_torch(reduction, dtype, shape, data):
    rng = rng_from(data)
    x = rng.uniform(0.01, 0.99, shape)
    y = rng.random(shape)
    weight = rng.uniform(0.1, 2.0, shape[-1:]) if data.draw(st.booleans()) else None
    _, F = _F()
    assert_parity(lambda a, b, w: L.binary_cross_entropy(a, b, w, reduction=reduction),
                  lambda a, b, w: F.binary_cross_entropy(a, b, w, reduction=reduction),
                  [x, y], dtype=dtype, consts=[weight])


def test_binary_cross_entropy_at_0_and_1_clamps_like_torch():
    # log clamped at -100; gradient denominator clamped at 1e-12 (written out by hand too)
    x = np.array([0.0, 1.0, 0.0, 1.0, 1e-30])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    _, F = _F()
    assert_parity(lambda a, b: L.binary_cross_entropy(a, b, reduction="none"),
                  lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                  [x, y], dtype=np.float64)
    xm = minidl.Tensor(x[:2].copy(), requires_grad=True)
    out = L.binary_cross_entropy(xm, minidl.Tensor(y[:2]), reduction="none")
    assert out.tolist() == [100.0, 100.0]
    out.sum().backward()
    # PyTorch's 1e-12 is a float32 constant: 1 / float32(1e-12) = 1.000000004e12
    eps = float(np.float32(1e-12))
    assert xm.grad.tolist() == [-1.0 / eps, 1.0 / eps]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@SETTINGS
@given(shape=shapes, data=st.data())
def test_bce_with_logits_matches_torch(reduction, dtype, shape, data):
    rng = rng_from(data)
    x = rng.standard_normal(shape) * 4
    y = rng.random(shape)
    weight = rng.uniform(0.1, 2.0, shape) if data.draw(st.booleans(), label="weight") else None
    pos_weight = (rng.uniform(0.1, 5.0, shape[-1:]) if data.draw(st.booleans(), label="pos")
                  else None)
    _, F = _F()

    def mine(a, b, w, pw):
        return L.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=pw)

    def theirs(a, b, w, pw):
        return F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=pw)

    assert_parity(mine, theirs, [x, y], dtype=dtype, consts=[weight, pos_weight])


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_extreme_logits_match_torch(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 50.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.3])
    pos_weight = np.array([3.0])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        out = L.binary_cross_entropy_with_logits(
            minidl.Tensor(x.astype(dtype)), minidl.Tensor(y.astype(dtype)), reduction="none")
    # (1 - t) x + softplus(-x), written out: 1e4, 1e4, 0, 0, log 2, 0.7 * 50 + log1p(e^-50)
    expected = [1e4, 1e4, 0.0, 0.0, math.log(2.0), 35.0 + math.log1p(math.exp(-50.0))]
    np.testing.assert_allclose(out.data, expected, rtol=1e-6)
    _, F = _F()
    for pw in (None, pos_weight):
        assert_parity(
            lambda a, b, p: L.binary_cross_entropy_with_logits(a, b, reduction="none",
                                                               pos_weight=p),
            lambda a, b, p: F.binary_cross_entropy_with_logits(a, b, reduction="none",
                                                               pos_weight=p),
            [x, y], dtype=dtype, consts=[pw])


@SETTINGS
@given(shape=shapes, data=st.data())
def test_binary_losses_gradcheck(shape, data):
    rng = rng_from(data)
    probs = minidl.Tensor(rng.uniform(0.05, 0.95, shape), requires_grad=True)
    logits = minidl.Tensor(rng.standard_normal(shape) * 3, requires_grad=True)
    target = minidl.Tensor(rng.uniform(0.05, 0.95, shape), requires_grad=True)
    weight = minidl.Tensor(rng.uniform(0.1, 2.0, shape))
    pos_weight = minidl.Tensor(rng.uniform(0.1, 5.0, shape[-1:]))
    for r in REDUCTIONS:
        assert minidl.gradcheck(
            lambda a, b, r=r: L.binary_cross_entropy(a, b, weight, r), [probs, target])
        assert minidl.gradcheck(
            lambda a, b, r=r: L.binary_cross_entropy_with_logits(a, b, weight, r, pos_weight),
            [logits, target])


# ----------------------------------------------------------------------------- kl_div


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
@SETTINGS
@given(shape=shapes, data=st.data())
def test_kl_div_matches_torch(log_target, reduction, dtype, shape, data):
    rng = rng_from(data)
    x = np.log(rng.uniform(0.01, 1.0, shape))
    p = rng.uniform(0.01, 1.0, shape)
    if not log_target:
        p[rng.random(shape) < 0.2] = 0.0  # 0 log 0 = 0
    target = np.log(p) if log_target else p
    # NOTE: the target gradient is nan at p == 0 in both libraries (compared as equal)
    _, F = _F()
    assert_parity(lambda a, b: L.kl_div(a, b, reduction=reduction, log_target=log_target),
                  lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                  [x, target], dtype=dtype)


@SETTINGS
@given(shape=shapes, data=st.data())
def test_kl_div_gradcheck(shape, data):
    rng = rng_from(data)
    x = minidl.Tensor(np.log(rng.uniform(0.05, 1.0, shape)), requires_grad=True)
    p = rng.uniform(0.05, 1.0, shape)
    for log_target in (False, True):
        t = minidl.Tensor(np.log(p) if log_target else p, requires_grad=True)
        for reduction in REDUCTIONS + ["batchmean"]:
            opts = dict(reduction=reduction, log_target=log_target)
            assert minidl.gradcheck(lambda a, b, o=opts: L.kl_div(a, b, **o), [x, t])


def test_kl_div_hand_value():
    # KL((1/2, 1/2) || (1/4, 3/4)) = 1/2 log 2 + 1/2 log(2/3)
    log_q = minidl.tensor([[math.log(0.25), math.log(0.75)]], dtype="float64")
    p = minidl.tensor([[0.5, 0.5]], dtype="float64")
    expected = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)
    assert L.kl_div(log_q, p, reduction="batchmean").item() == pytest.approx(expected, rel=1e-14)
    assert L.kl_div(log_q, p).item() == pytest.approx(expected / 2, rel=1e-14)


# ----------------------------------------------------------------------------- errors


def test_shape_mismatch_names_op_and_both_shapes():
    x, y = minidl.zeros(3, 4), minidl.zeros(3)
    for name in ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
                 "binary_cross_entropy", "binary_cross_entropy_with_logits"]:
        with pytest.raises(ValueError, match=rf"^{name}: input \(3, 4\) and target \(3,\) must"):
            getattr(L, name)(x, y)


def test_integer_input_raises_type_error():
    ints = minidl.tensor([[1, 2], [3, 4]])
    floats = minidl.zeros(2, 2)
    for name in ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div",
                 "binary_cross_entropy", "binary_cross_entropy_with_logits"]:
        with pytest.raises(TypeError, match=f"^{name}: expected a floating-point tensor, got int"):
            getattr(L, name)(ints, floats)
    for name in ["kl_div", "binary_cross_entropy", "binary_cross_entropy_with_logits"]:
        with pytest.raises(TypeError, match=f"^{name}: expected a floating-point target, got int"):
            getattr(L, name)(floats, ints)
    for name in ["cross_entropy", "nll_loss"]:
        with pytest.raises(TypeError, match=f"^{name}: expected a floating-point tensor"):
            getattr(L, name)(ints, minidl.tensor([0, 1]))


def test_cross_entropy_target_errors():
    x = minidl.zeros(3, 4)
    with pytest.raises(TypeError, match="cross_entropy: class-index target must be an integer "
                                        r"tensor, got float32; for class probabilities .*\(3, 4\)"):
        L.cross_entropy(x, minidl.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(TypeError, match=r"same shape as input \(3, 4\) holds class probab"):
        L.cross_entropy(x, minidl.zeros(3, 4, dtype=minidl.int64))
    with pytest.raises(IndexError, match=r"cross_entropy: target class index 4 is out of bounds "
                                         r"for 4 classes \(expected 0..3, or ignore_index=-100\)"):
        L.cross_entropy(x, minidl.tensor([0, 4, 1]))
    with pytest.raises(IndexError, match="nll_loss: target class index -1 is out of bounds"):
        L.nll_loss(x, minidl.tensor([0, -1, 1]))
    with pytest.raises(ValueError, match=r"cross_entropy: input \(3, 4\) expects a class-index "
                                         r"target of shape \(3,\), got target \(3, 1\)"):
        L.cross_entropy(x, minidl.tensor([[0], [1], [2]]))
    with pytest.raises(ValueError, match=r"cross_entropy: weight must have shape \(4,\)"):
        L.cross_entropy(x, minidl.tensor([0, 1, 2]), minidl.ones(3))
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be in"):
        L.cross_entropy(x, minidl.tensor([0, 1, 2]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="cross_entropy: input must have a class dimension"):
        L.cross_entropy(minidl.tensor(1.0), minidl.tensor(0))
    with pytest.raises(RuntimeError, match="cross_entropy: weight is not differentiable"):
        L.cross_entropy(x, minidl.tensor([0, 1, 2]), minidl.ones(4, requires_grad=True))


def test_other_argument_errors():
    x = minidl.zeros(2, 2)
    with pytest.raises(ValueError, match="mse_loss: reduction must be one of 'none', 'mean', "
                                         "'sum', got 'avg'"):
        L.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError, match="kl_div: reduction must be one of .*'batchmean'"):
        L.kl_div(x, x, reduction="avg")
    with pytest.raises(ValueError, match="binary_cross_entropy: every input must be a "
                                         "probability in \\[0, 1\\], found 1.5"):
        L.binary_cross_entropy(minidl.tensor([0.5, 1.5]), minidl.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be >= 0"):
        L.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="huber_loss: delta must be > 0"):
        L.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match=r"pos_weight \(3,\) does not broadcast to input"):
        L.binary_cross_entropy_with_logits(x, x, pos_weight=minidl.ones(3))


def test_docstring_examples_run():
    result = doctest.testmod(L, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0
