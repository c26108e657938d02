"""minidl.optim optimizers against PyTorch: trajectories, state dicts, errors.

Every trajectory starts from the same float64 parameters and feeds both libraries the
same gradient rule, g_t = 0.5 * theta_t + noise_t (noise from a seeded generator), so a
wrong update compounds over the 30 steps instead of hiding in one.  The third parameter
gets no gradient on every third step, to check that such parameters are skipped.
"""

import doctest
import importlib

import numpy as np
import pytest

import minidl
from minidl import optim

try:
    from minidl.nn import Parameter
except ImportError:  # pragma: no cover - before minidl.nn exists
    Parameter = None

SHAPES = [(3, 4), (5,), (2, 2)]
STEPS = 30


def make_param(array):
    if Parameter is not None:
        return Parameter(array.copy())
    return minidl.from_numpy(array.copy()).requires_grad_()


def initial_arrays(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def noise_sequence(steps=STEPS, dtype=np.float64):
    rng = np.random.default_rng(1)
    return [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]


def gradients(values, noise, t):
    """The gradient each parameter gets at step t (None: the parameter is skipped)."""
    grads = [0.5 * v + n for v, n in zip(values, noise[t])]
    if t % 3 == 2:
        grads[2] = None
    return grads


class MinidlSide:
    def __init__(self, arrays):
        self.params = [make_param(a) for a in arrays]

    def values(self):
        return [p.data.copy() for p in self.params]

    def set_grads(self, grads):
        for p, g in zip(self.params, grads):
            p.grad = None if g is None else minidl.from_numpy(g.copy())

    def optimizer(self, name, kwargs, groups=None):
        return getattr(optim, name)(group_spec(self.params, groups), **kwargs)


class TorchSide:
    def __init__(self, torch, arrays):
        self.torch = torch
        self.params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]

    def values(self):
        return [p.detach().numpy().copy() for p in self.params]

    def set_grads(self, grads):
        for p, g in zip(self.params, grads):
            p.grad = None if g is None else self.torch.from_numpy(g.copy())

    def optimizer(self, name, kwargs, groups=None):
        return getattr(self.torch.optim, name)(group_spec(self.params, groups), **kwargs)


def group_spec(params, groups):
    """``groups``: None for one group, else [(param indices, overrides), ...]."""
    if groups is None:
        return list(params)
    return [{"params": [params[i] for i in indices], **overrides} for indices, overrides in groups]


def run(side, opt, noise, start, stop):
    """Steps start..stop-1; returns the parameter values after each step."""
    history = []
    for t in range(start, stop):
        side.set_grads(gradients(side.values(), noise, t))
        opt.step()
        history.append(side.values())
    return history


def assert_histories_close(ours, theirs, rtol=1e-5):
    assert len(ours) == len(theirs)
    for t, (mine, ref) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(mine, ref)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-10,
                                       err_msg=f"step {t}, parameter {i}")


CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "maximize": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.2, "maximize": True}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-6, "maximize": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True, "betas": (0.5, 0.99)}),
    ("RMSprop", {}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5,
                 "weight_decay": 0.1}),
    ("RMSprop", {"maximize": True, "eps": 1e-4}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "maximize": True, "eps": 1e-6}),
]

GROUP_CASES = [
    ("SGD", {"lr": 0.1, "momentum": 0.9},
     [([0, 1], {}), ([2], {"lr": 0.01, "momentum": 0.5, "nesterov": True})]),
    ("Adam", {"lr": 0.01}, [([0], {}), ([1, 2], {"lr": 0.05, "amsgrad": True})]),
    ("AdamW", {"lr": 0.01}, [([0, 2], {"weight_decay": 0.3}), ([1], {"lr": 0.002})]),
    ("RMSprop", {"lr": 0.01}, [([0], {"centered": True}), ([1, 2], {"lr": 0.001,
                                                                    "momentum": 0.8})]),
    # the second group's initial_accumulator_value is ignored by torch: s_0 comes from
    # the constructor; minidl must do the same
    ("Adagrad", {"lr": 0.1}, [([0, 1], {}), ([2], {"lr": 0.5, "lr_decay": 0.1,
                                                   "initial_accumulator_value": 1.0})]),
]


def case_id(case):
    name, kwargs = case[0], case[1]
    options = "-".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}-{options or 'default'}"


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", CASES, ids=[case_id(c) for c in CASES])
def test_trajectory_matches_torch(torch, name, kwargs):
    arrays, noise = initial_arrays(), noise_sequence()
    ours, theirs = MinidlSide(arrays), TorchSide(torch, arrays)
    ours_hist = run(ours, ours.optimizer(name, kwargs), noise, 0, STEPS)
    theirs_hist = run(theirs, theirs.optimizer(name, kwargs), noise, 0, STEPS)
    assert_histories_close(ours_hist, theirs_hist)
    # the parameters really moved (a no-op optimizer must not pass)
    assert not np.allclose(ours_hist[-1][0], arrays[0])


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs, groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_two_param_groups_match_torch(torch, name, kwargs, groups):
    arrays, noise = initial_arrays(), noise_sequence()
    ours, theirs = MinidlSide(arrays), TorchSide(torch, arrays)
    ours_opt = ours.optimizer(name, kwargs, groups)
    theirs_opt = theirs.optimizer(name, kwargs, groups)
    assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in theirs_opt.param_groups]
    assert_histories_close(run(ours, ours_opt, noise, 0, STEPS),
                           run(theirs, theirs_opt, noise, 0, STEPS))


def to_float(value):
    return float(value.item()) if hasattr(value, "item") else float(value)


def to_numpy(value):
    if isinstance(value, minidl.Tensor):
        return value.data
    return value.detach().numpy()


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs, groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_state_dict_layout_and_values_match_torch(torch, name, kwargs, groups):
    arrays, noise = initial_arrays(), noise_sequence()
    ours, theirs = MinidlSide(arrays), TorchSide(torch, arrays)
    ours_opt = ours.optimizer(name, kwargs, groups)
    theirs_opt = theirs.optimizer(name, kwargs, groups)
    run(ours, ours_opt, noise, 0, 14)
    run(theirs, theirs_opt, noise, 0, 14)
    mine, ref = ours_opt.state_dict(), theirs_opt.state_dict()

    assert list(mine) == list(ref) == ["state", "param_groups"]
    assert list(mine["state"]) == list(ref["state"])  # same indices, same order
    for index, ref_state in ref["state"].items():
        my_state = mine["state"][index]
        assert list(my_state) == list(ref_state), f"state keys of parameter {index}"
        for key, ref_value in ref_state.items():
            if key == "step":
                assert isinstance(my_state[key], float)
                assert my_state[key] == to_float(ref_value)
            else:
                assert isinstance(my_state[key], minidl.Tensor)
                np.testing.assert_allclose(to_numpy(my_state[key]), to_numpy(ref_value),
                                           rtol=1e-5, atol=1e-12, err_msg=f"{index}/{key}")
    assert len(mine["param_groups"]) == len(ref["param_groups"])
    for my_group, ref_group in zip(mine["param_groups"], ref["param_groups"]):
        assert list(my_group) == list(ref_group)  # same keys in the same order
        assert my_group == ref_group              # same values, params as indices


@pytest.mark.parametrize("name, kwargs, groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_state_dict_round_trip_continues_identically(name, kwargs, groups):
    arrays, noise = initial_arrays(), noise_sequence()
    straight = MinidlSide(arrays)
    straight_hist = run(straight, straight.optimizer(name, kwargs, groups), noise, 0, STEPS)

    first = MinidlSide(arrays)
    first_opt = first.optimizer(name, kwargs, groups)
    run(first, first_opt, noise, 0, 12)
    saved = first_opt.state_dict()
    snapshot = {i: {k: (v.data.copy() if isinstance(v, minidl.Tensor) else v)
                    for k, v in s.items()} for i, s in saved["state"].items()}
    run(first, first_opt, noise, 12, 14)  # must not change the saved dict
    for i, s in saved["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(to_numpy(v) if k != "step" else v, snapshot[i][k])

    resumed = MinidlSide(straight_hist[11])
    resumed_opt = resumed.optimizer(name, {**kwargs, "lr": 123.0}, groups)  # lr comes from sd
    resumed_opt.load_state_dict(saved)
    resumed_hist = run(resumed, resumed_opt, noise, 12, STEPS)
    for a, b in zip(resumed_hist, straight_hist[12:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs, groups", GROUP_CASES, ids=[c[0] for c in GROUP_CASES])
def test_state_dicts_move_between_minidl_and_torch(torch, name, kwargs, groups):
    """torch's state dict loads into minidl and vice versa, and training continues alike."""
    arrays, noise = initial_arrays(), noise_sequence()
    theirs = TorchSide(torch, arrays)
    theirs_opt = theirs.optimizer(name, kwargs, groups)
    run(theirs, theirs_opt, noise, 0, 12)

    ours = MinidlSide(theirs.values())
    ours_opt = ours.optimizer(name, kwargs, groups)
    ours_opt.load_state_dict(theirs_opt.state_dict())  # torch tensors, 0-d tensor steps
    assert_histories_close(run(ours, ours_opt, noise, 12, 21),
                           run(theirs, theirs_opt, noise, 12, 21))

    # and back: minidl's dict (Tensors, float steps) into a fresh torch optimizer
    mine = ours_opt.state_dict()
    converted = {
        "state": {i: {k: (torch.from_numpy(v.data.copy()) if isinstance(v, minidl.Tensor)
                          else v) for k, v in s.items()} for i, s in mine["state"].items()},
        "param_groups": mine["param_groups"],
    }
    back = TorchSide(torch, ours.values())
    back_opt = back.optimizer(name, kwargs, groups)
    back_opt.load_state_dict(converted)
    assert_histories_close(run(back, back_opt, noise, 21, STEPS),
                           run(ours, ours_opt, noise, 21, STEPS))


@pytest.mark.torch
def test_add_param_group_mid_training_matches_torch(torch):
    arrays, noise = initial_arrays(), noise_sequence()
    histories = []
    for side in (MinidlSide(arrays), TorchSide(torch, arrays)):
        opt = side.optimizer("Adam", {"lr": 0.01}, [([0, 1], {})])
        hist = run(side, opt, noise, 0, 10)
        opt.add_param_group({"params": [side.params[2]], "lr": 0.1, "amsgrad": True})
        hist += run(side, opt, noise, 10, 20)
        histories.append(hist)
        added = opt.param_groups[1]
        assert (added["lr"], added["amsgrad"], added["eps"]) == (0.1, True, 1e-8)  # defaults
    assert_histories_close(*histories)


@pytest.mark.torch
def test_named_parameters_keep_their_names_like_torch(torch):
    arrays = initial_arrays()
    ours, theirs = MinidlSide(arrays), TorchSide(torch, arrays)
    ours_opt = optim.SGD([("a", ours.params[0]), ("b", ours.params[1])], lr=0.1)
    theirs_opt = torch.optim.SGD([("a", theirs.params[0]), ("b", theirs.params[1])], lr=0.1)
    assert ours_opt.param_groups[0]["param_names"] == ["a", "b"]
    assert ours_opt.state_dict()["param_groups"] == theirs_opt.state_dict()["param_groups"]


@pytest.mark.torch
def test_training_through_autograd_matches_torch(torch):
    """A least-squares fit with minidl's own backward, against torch doing the same."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    w0 = rng.standard_normal((3, 1))
    w = make_param(w0)
    tw = torch.tensor(w0.copy(), requires_grad=True)
    opt = optim.AdamW([w], lr=0.05, weight_decay=0.1, amsgrad=True)
    topt = torch.optim.AdamW([tw], lr=0.05, weight_decay=0.1, amsgrad=True)
    for _ in range(20):
        opt.zero_grad()
        loss = ((minidl.from_numpy(x) @ w - minidl.from_numpy(y)) ** 2).mean()
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = ((torch.from_numpy(x) @ tw - torch.from_numpy(y)) ** 2).mean()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-6)
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("name, kwargs", [("SGD", {"lr": 0.1, "momentum": 0.9}),
                                          ("Adam", {"lr": 0.01}),
                                          ("RMSprop", {"centered": True}),
                                          ("Adagrad", {"lr": 0.1})])
def test_float32_parameters_stay_float32_and_in_place(torch, name, kwargs):
    arrays = initial_arrays(np.float32)
    noise = noise_sequence(dtype=np.float32)
    ours, theirs = MinidlSide(arrays), TorchSide(torch, arrays)
    buffers = [p.data for p in ours.params]
    ours_hist = run(ours, ours.optimizer(name, kwargs), noise, 0, 10)
    theirs_hist = run(theirs, theirs.optimizer(name, kwargs), noise, 0, 10)
    assert all(p.data is b for p, b in zip(ours.params, buffers))  # updated in place
    assert all(v.dtype == np.float32 for v in ours_hist[-1])
    assert_histories_close(ours_hist, theirs_hist, rtol=2e-4)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_parameter_without_grad_is_untouched(name):
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    a, b = make_param(np.ones(3)), make_param(np.full(2, 7.0))
    opt = getattr(optim, name)([a, b], lr=0.1, **kwargs)
    for _ in range(3):
        a.grad = minidl.from_numpy(np.array([1.0, -1.0, 2.0]))
        opt.step()
    np.testing.assert_array_equal(b.data, np.full(2, 7.0))
    assert not np.allclose(a.data, 1.0)
    state = opt.state_dict()["state"]
    assert set(state) == ({0, 1} if name == "Adagrad" else {0})  # Adagrad: state at init
    if name == "Adagrad":
        assert state[1]["step"] == 0.0


def test_zero_grad():
    p = make_param(np.ones(2))
    opt = optim.SGD([p], lr=0.1)
    p.grad = minidl.from_numpy(np.array([1.0, 2.0]))
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad
    np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None


def test_step_calls_closure_with_grad_enabled_and_returns_loss():
    p = make_param(np.array([2.0]))
    opt = optim.SGD([p], lr=0.25)
    seen = []

    def closure():
        seen.append(minidl.is_grad_enabled())
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with minidl.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.data, [2.0 - 0.25 * 4.0])


def test_read_only_parameter_array_is_made_writable():
    array = np.ones(3)
    array.flags.writeable = False
    p = make_param(array)
    p.data = array  # e.g. a weight memory-mapped from a file
    opt = optim.SGD([p], lr=0.5)
    p.grad = minidl.from_numpy(np.ones(3))
    opt.step()
    np.testing.assert_array_equal(p.data, [0.5, 0.5, 0.5])


BAD_HYPERPARAMETERS = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"momentum": -0.1}, "Invalid momentum value: -0.1"),
    ("SGD", {"weight_decay": -1e-3}, "Invalid weight_decay value: -0.001"),
    ("SGD", {"nesterov": True}, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "Nesterov momentum requires a momentum and zero dampening"),
    ("Adam", {"lr": -0.5}, "Invalid learning rate: -0.5"),
    ("Adam", {"betas": (1.0, 0.999)}, "Invalid beta parameter at index 0: 1.0"),
    ("Adam", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("Adam", {"weight_decay": -1.0}, "Invalid weight_decay value: -1.0"),
    ("AdamW", {"betas": (0.9, 1.5)}, "Invalid beta parameter at index 1: 1.5"),
    ("RMSprop", {"alpha": -0.1}, "Invalid alpha value: -0.1"),
    ("RMSprop", {"momentum": -1.0}, "Invalid momentum value: -1.0"),
    ("RMSprop", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
    ("Adagrad", {"lr_decay": -1.0}, "Invalid lr_decay value: -1.0"),
    ("Adagrad", {"initial_accumulator_value": -1.0},
     "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", {"eps": -1.0}, "Invalid epsilon value: -1.0"),
]


@pytest.mark.parametrize("name, kwargs, message", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_like_torch(name, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        getattr(optim, name)([make_param(np.ones(2))], **kwargs)
    assert str(info.value).startswith(name + ":")  # the error names the optimizer
    try:
        import torch
    except ImportError:
        return
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, name)([torch.ones(2, requires_grad=True)], **kwargs)


def test_non_numeric_hyperparameter_is_a_type_error():
    with pytest.raises(TypeError, match="SGD: learning rate must be a real number, got str"):
        optim.SGD([make_param(np.ones(2))], lr="fast")


def test_differentiable_is_rejected():
    with pytest.raises(NotImplementedError, match="Adam: differentiable=True"):
        optim.Adam([make_param(np.ones(2))], differentiable=True)


def test_constructor_and_add_param_group_errors():
    p, q = make_param(np.ones(2)), make_param(np.ones(3))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got a Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors.*ndarray"):
        optim.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p, q]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([q])
    opt.add_param_group({"params": q, "lr": 0.5})  # a single Tensor is accepted
    assert opt.param_groups[1]["params"] == [q] and opt.param_groups[1]["momentum"] == 0


def test_load_state_dict_says_what_does_not_match():
    p, q, r = make_param(np.ones(2)), make_param(np.ones(3)), make_param(np.ones(4))
    source = optim.Adam([{"params": [p]}, {"params": [q]}])
    p.grad, q.grad = minidl.from_numpy(np.ones(2)), minidl.from_numpy(np.ones(3))
    source.step()
    saved = source.state_dict()

    with pytest.raises(ValueError, match="has 2 parameter groups, this optimizer has 1"):
        optim.Adam([p, q]).load_state_dict(saved)
    with pytest.raises(ValueError, match="group 1 has 1 parameters in the loaded state dict "
                                         "but 2 in this optimizer"):
        optim.Adam([{"params": [p]}, {"params": [q, r]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 1 has shape \(3,\), but the "
                                         r"parameter has shape \(4,\)"):
        optim.Adam([{"params": [p]}, {"params": [r]}]).load_state_dict(saved)
    with pytest.raises(ValueError, match="expected a dict with 'state' and 'param_groups'"):
        optim.Adam([p]).load_state_dict({"state": {}})


def test_load_state_dict_accepts_json_style_keys_and_numpy_values():
    p = make_param(np.ones(2, dtype=np.float32))
    opt = optim.Adam([p], lr=0.1)
    opt.load_state_dict({
        "state": {"0": {"step": np.array(3.0), "exp_avg": np.array([0.5, 0.5]),
                        "exp_avg_sq": np.array([1.0, 1.0])}},
        "param_groups": [{"lr": 0.01, "betas": [0.9, 0.999], "params": ["0"]}],
    })
    state = opt.state[p]
    assert state["step"] == 3.0 and isinstance(state["step"], float)
    assert state["exp_avg"].dtype == np.float32  # cast to the parameter's dtype
    group = opt.param_groups[0]
    assert group["lr"] == 0.01 and group["params"] == [p]
    assert group["amsgrad"] is False  # missing hyperparameters filled from defaults
    p.grad = minidl.from_numpy(np.ones(2, dtype=np.float32))
    opt.step()
    assert opt.state[p]["step"] == 4.0 and p.data.dtype == np.float32


MODULES = ["minidl.optim", "minidl.optim.optimizer", "minidl.optim.sgd", "minidl.optim.adam",
           "minidl.optim.rmsprop", "minidl.optim.adagrad"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
