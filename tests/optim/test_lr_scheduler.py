"""minidl.optim.lr_scheduler against torch.optim.lr_scheduler: lr (and momentum) sequences.

Each scheduler runs 40 steps on an optimizer with two parameter groups of different
learning rates, in both libraries; the lrs (and the cycled momenta) after every step must
agree to float precision.
"""

import doctest
import math
import warnings

import numpy as np
import pytest

import minidl
from minidl import optim
from minidl.optim import lr_scheduler

STEPS = 40


def make_optimizer(lib, name="SGD", **kwargs):
    """Two groups (lr 0.1 and 0.05) over one parameter each, in minidl or torch."""
    if lib == "minidl":
        params = [minidl.zeros(2, requires_grad=True), minidl.zeros(3, requires_grad=True)]
        module = optim
    else:
        import torch

        params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
        module = torch.optim
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]
    kwargs = {"lr": 0.1, **kwargs}
    if name == "SGD":
        kwargs.setdefault("momentum", 0.9)
    return getattr(module, name)(groups, **kwargs)


def scheduler_module(lib):
    if lib == "minidl":
        return lr_scheduler
    import torch

    return torch.optim.lr_scheduler


def snapshot(opt, schedulers):
    """What a step produces: the scheduler's lrs, the groups' lrs and momenta."""
    groups = opt.param_groups
    return (
        [list(s.get_last_lr()) for s in schedulers],
        [g["lr"] for g in groups],
        [g.get("momentum") for g in groups],
        [tuple(g["betas"]) if "betas" in g else None for g in groups],
    )


def run_schedule(lib, make, steps=STEPS, optimizer="SGD", opt_kwargs=None):
    opt = make_optimizer(lib, optimizer, **(opt_kwargs or {}))
    made = make(scheduler_module(lib), opt)
    schedulers = made if isinstance(made, list) else [made]
    history = [snapshot(opt, schedulers)]
    for _ in range(steps):
        opt.step()
        for s in schedulers:
            s.step()
        history.append(snapshot(opt, schedulers))
    return history


def assert_sequences_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        for part, x, y in zip(("get_last_lr", "lr", "momentum", "betas"), a, b):
            np.testing.assert_allclose(
                np.array(x, dtype=float), np.array(y, dtype=float), rtol=1e-12, atol=1e-15,
                err_msg=f"{part} after {t} steps",
            )


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, 3),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR-past-T_max": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=50),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=12),
    "LinearLR-default": lambda m, o: m.LinearLR(o),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lambda e: 1.0 / (1 + e)),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 0.95**e, lambda e: 1 + 0.1 * e]),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=20)],
        milestones=[5]),
    "SequentialLR-three": lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.8), m.StepLR(o, step_size=4, gamma=0.5),
            m.LinearLR(o, start_factor=0.5, total_iters=6)], milestones=[8, 20]),
    "SequentialLR-nested": lambda m, o: m.SequentialLR(
        o, [m.SequentialLR(o, [m.LinearLR(o, start_factor=0.5, total_iters=3),
                               m.ExponentialLR(o, gamma=0.9)], milestones=[3]),
            m.StepLR(o, step_size=2, gamma=0.5)], milestones=[8]),
    "chained-StepLR-ExponentialLR": lambda m, o: [m.StepLR(o, step_size=5, gamma=0.5),
                                                  m.ExponentialLR(o, gamma=0.97)],
    "OneCycleLR-cos": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS),
    "OneCycleLR-linear-three-phase": lambda m, o: m.OneCycleLR(
        o, max_lr=0.3, epochs=4, steps_per_epoch=10, anneal_strategy="linear",
        three_phase=True, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
        base_momentum=0.8, max_momentum=[0.9, 0.95]),
    "OneCycleLR-no-momentum": lambda m, o: m.OneCycleLR(
        o, max_lr=0.2, total_steps=50, cycle_momentum=False, pct_start=0.4),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", list(SCHEDULES))
# torch's nested SequentialLR steps an inner scheduler before its own check sees an
# optimizer step, and warns about it; the sequences are what matter here
@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")
def test_lr_sequence_matches_torch(torch, name):
    ours = run_schedule("minidl", SCHEDULES[name])
    theirs = run_schedule("torch", SCHEDULES[name])
    assert_sequences_equal(ours, theirs)
    assert len({tuple(h[1]) for h in ours}) > 1  # the lr really changed


@pytest.mark.torch
@pytest.mark.parametrize("optimizer, kwargs", [("Adam", {}), ("AdamW", {"betas": (0.8, 0.9)}),
                                               ("RMSprop", {"momentum": 0.5})])
def test_one_cycle_cycles_beta1_or_momentum_like_torch(torch, optimizer, kwargs):
    def make(m, o):
        return m.OneCycleLR(o, max_lr=[0.01, 0.02], total_steps=STEPS, pct_start=0.2)

    ours = run_schedule("minidl", make, optimizer=optimizer, opt_kwargs=kwargs)
    theirs = run_schedule("torch", make, optimizer=optimizer, opt_kwargs=kwargs)
    assert_sequences_equal(ours, theirs)
    cycled = [h[3][0][0] for h in ours] if optimizer != "RMSprop" else [h[2][0] for h in ours]
    assert cycled[0] == 0.95 and min(cycled) == pytest.approx(0.85)


def plateau_metrics():
    """Improves, stalls with noise, improves again, stalls: exercises every branch."""
    rng = np.random.default_rng(3)
    t = np.arange(STEPS)
    base = np.where(t < 8, 1.0 - 0.05 * t, 0.6)
    base = np.where(t >= 22, np.where(t < 26, 0.6 - 0.05 * (t - 21), 0.4), base)
    return (base + 1e-5 * rng.standard_normal(STEPS)).tolist()


PLATEAU_CASES = [
    ({}, 1),
    ({"patience": 2, "factor": 0.5, "cooldown": 2}, 1),
    ({"patience": 0, "factor": 0.5, "min_lr": 0.01, "eps": 1e-3}, 1),
    ({"mode": "max", "threshold_mode": "abs", "threshold": 0.01, "patience": 1,
      "min_lr": [0.02, 0.001]}, -1),
    ({"mode": "max", "patience": 3, "threshold": 1e-3, "factor": 0.3, "cooldown": 1}, -1),
    ({"threshold_mode": "abs", "threshold": 1e-3, "patience": 1, "factor": 0.7}, 1),
]


@pytest.mark.torch
@pytest.mark.parametrize("kwargs, sign", PLATEAU_CASES)
def test_reduce_lr_on_plateau_matches_torch(torch, kwargs, sign):
    # max mode gets 2 - metric: increasing, and positive so that rel thresholds make sense
    metrics = [m if sign > 0 else 2.0 - m for m in plateau_metrics()]
    sequences = []
    for lib in ("minidl", "torch"):
        opt = make_optimizer(lib)
        sched = scheduler_module(lib).ReduceLROnPlateau(opt, **kwargs)
        seq = [list(sched.get_last_lr())]
        for metric in metrics:
            opt.step()
            sched.step(metric)
            seq.append([g["lr"] for g in opt.param_groups])
            assert list(sched.get_last_lr()) == seq[-1]
        sequences.append(seq)
    np.testing.assert_allclose(sequences[0], sequences[1], rtol=1e-12)
    assert sequences[0][-1] != sequences[0][0]  # it did reduce


def test_reduce_lr_on_plateau_accepts_a_tensor_metric():
    opt = make_optimizer("minidl")
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    sched.step(minidl.tensor(1.0))
    sched.step(minidl.tensor(2.0))
    assert sched.get_last_lr() == [0.05, 0.025]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip_continues_identically(name):
    make = SCHEDULES[name]
    straight = run_schedule("minidl", make)

    opt = make_optimizer("minidl")
    made = make(lr_scheduler, opt)
    schedulers = made if isinstance(made, list) else [made]
    for _ in range(15):
        opt.step()
        for s in schedulers:
            s.step()
    opt_state = opt.state_dict()
    sched_states = [s.state_dict() for s in schedulers]

    # resume the PyTorch way: build, load the optimizer, then the scheduler(s)
    new_opt = make_optimizer("minidl")
    made = make(lr_scheduler, new_opt)
    new_schedulers = made if isinstance(made, list) else [made]
    new_opt.load_state_dict(opt_state)
    for s, state in zip(new_schedulers, sched_states):
        s.load_state_dict(state)
    resumed = [snapshot(new_opt, new_schedulers)]
    for _ in range(15, STEPS):
        new_opt.step()
        for s in new_schedulers:
            s.step()
        resumed.append(snapshot(new_opt, new_schedulers))
    assert resumed == straight[15:]


def test_reduce_lr_on_plateau_state_dict_round_trip():
    metrics = plateau_metrics()
    opt = make_optimizer("minidl")
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1, cooldown=1, factor=0.5)
    for m in metrics[:12]:
        sched.step(m)
    state = sched.state_dict()
    rest = []
    for m in metrics[12:]:
        sched.step(m)
        rest.append(sched.get_last_lr())

    new_opt = make_optimizer("minidl")
    new_opt.load_state_dict(opt.state_dict())
    new_sched = lr_scheduler.ReduceLROnPlateau(new_opt)
    new_sched.load_state_dict(state)
    for group, lr in zip(new_opt.param_groups, state["_last_lr"]):
        group["lr"] = lr
    resumed = []
    for m in metrics[12:]:
        new_sched.step(m)
        resumed.append(new_sched.get_last_lr())
    assert resumed == rest


def test_multistep_milestones_survive_a_json_round_trip():
    import json

    opt = make_optimizer("minidl")
    sched = lr_scheduler.MultiStepLR(opt, milestones=[2, 4, 4])
    state = json.loads(json.dumps(sched.state_dict()))  # Counter keys become strings
    new = lr_scheduler.MultiStepLR(make_optimizer("minidl"), milestones=[100])
    new.load_state_dict(state)
    assert new.milestones == {2: 1, 4: 2}


@pytest.mark.torch
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR",
                                  "CosineAnnealingLR-past-T_max", "LinearLR"])
def test_step_with_epoch_uses_the_closed_form_like_torch(torch, name):
    results = []
    for lib in ("minidl", "torch"):
        opt = make_optimizer(lib)
        sched = SCHEDULES[name](scheduler_module(lib), opt)
        lrs = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in [3, 9, 17, 4, 25]:
                opt.step()
                sched.step(epoch)
                lrs.append(sched.get_last_lr())
        results.append(lrs)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_step_with_epoch_warns_deprecation():
    sched = lr_scheduler.StepLR(make_optimizer("minidl"), step_size=2)
    with pytest.warns(UserWarning, match="epoch parameter in `scheduler.step\\(\\)`"):
        sched.step(4)
    assert sched.last_epoch == 4 and sched.get_last_lr() == pytest.approx([0.001, 0.0005])


def test_get_lr_outside_step_warns():
    sched = lr_scheduler.ExponentialLR(make_optimizer("minidl"), gamma=0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_constructor_sets_epoch_zero_lr_and_base_lrs():
    opt = make_optimizer("minidl")
    sched = lr_scheduler.LinearLR(opt, start_factor=0.5, total_iters=4)
    assert sched.last_epoch == 0
    assert sched.base_lrs == [0.1, 0.05]
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.025]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]


def test_one_cycle_refuses_to_step_past_total_steps():
    sched = lr_scheduler.OneCycleLR(make_optimizer("minidl"), max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total "
                                         "steps is 3"):
        sched.step()


def test_cosine_closed_form_is_the_target_of_the_recursion():
    """Hand-written reference: within one half period the recursion equals the closed form."""
    opt = make_optimizer("minidl")
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=12, eta_min=0.01)
    for t in range(1, 13):
        sched.step()
        expected = [0.01 + (b - 0.01) * (1 + math.cos(math.pi * t / 12)) / 2 for b in (0.1, 0.05)]
        assert sched.get_last_lr() == pytest.approx(expected, rel=1e-12)


BAD_SCHEDULERS = [
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), ValueError,
     "Starting multiplicative factor expected to be greater than 0"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=1.5), ValueError,
     "Ending multiplicative factor expected to be between 0 and 1"),
    (lambda o: lr_scheduler.StepLR(o, step_size=0), ValueError, "step_size must be a positive"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be < 1.0"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode 'avg' is unknown"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="pct"), ValueError,
     "threshold mode 'pct' is unknown"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError,
     "expected 2 min_lrs, got 1"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), ValueError,
     "You must define either total_steps OR"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=0), ValueError,
     "Expected positive integer total_steps, but got 0"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=-1), ValueError,
     "Expected positive integer steps_per_epoch"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=5, pct_start=1.5), ValueError,
     "Expected float between 0 and 1 pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="exp"),
     ValueError, "anneal_strategy must be one of 'cos' or 'linear'"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[1.0], total_steps=5), ValueError,
     "max_lr must have the same length as optimizer.param_groups"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), ValueError, "expected 2 lr_lambdas"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.StepLR(o, 2)], milestones=[3]),
     ValueError, "number of schedulers provided to be one more"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.ReduceLROnPlateau(o)], milestones=[]),
     ValueError, "does not support `ReduceLROnPlateau`"),
    (lambda o: lr_scheduler.StepLR(o, 2, last_epoch=5), KeyError,
     "'initial_lr' is not specified in param_groups\\[0\\]"),
]


@pytest.mark.parametrize("build, error, message", BAD_SCHEDULERS)
def test_bad_arguments_raise_clear_errors(build, error, message):
    with pytest.raises(error, match=message):
        build(make_optimizer("minidl"))


def test_one_cycle_needs_an_optimizer_with_momentum():
    opt = make_optimizer("minidl", "Adagrad")
    with pytest.raises(ValueError, match="Adagrad must support momentum or beta1"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5)
    lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5, cycle_momentum=False)


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="StepLR: list is not an Optimizer"):
        lr_scheduler.StepLR([], step_size=2)


def test_docstring_examples():
    result = doctest.testmod(lr_scheduler, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
