"""Callbacks: early stopping, checkpoints, learning-rate scheduling, against hand computation.

The toy run: a one-weight model ``y = w x`` starts at ``w = 0`` and is trained by full-batch
gradient descent towards the training target ``y = 2x``; the validation target is ``y = x``.
So ``w_e`` rises monotonically from 0 to 2, the validation loss ``(w_e - 1)^2 E[x^2]`` falls
until ``w`` passes 1 and rises after: a run whose validation loss rises. Every expected value
below comes from the closed-form recursion ``w_{e+1} = w_e - lr * 2 (w_e - 2) E[x^2]``,
computed in float64.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.train import (
    Callback,
    EarlyStopping,
    LRSchedulerCallback,
    ModelCheckpoint,
    evaluate,
    fit,
)
from minidl.train.callbacks import infer_mode

LR = 0.05


@pytest.fixture
def rising():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1)).astype(np.float32)
    xv = rng.normal(size=(32, 1)).astype(np.float32)
    train = [(x, 2 * x)]
    val = [(xv, xv)]
    m2 = float(np.mean(x.astype(np.float64) ** 2))
    m2v = float(np.mean(xv.astype(np.float64) ** 2))
    w, weights, val_losses = 0.0, [], []
    for _ in range(60):
        w = w - LR * 2 * (w - 2) * m2
        weights.append(w)
        val_losses.append((w - 1) ** 2 * m2v)
    best = int(np.argmin(val_losses))  # 0-based index; epoch best + 1
    # the minimum is clear, so float32 rounding cannot move it
    neighbours = [val_losses[best - 1], val_losses[best + 1]]
    assert min(neighbours) - val_losses[best] > 1e-4
    return {"train": train, "val": val, "weights": weights, "val_losses": val_losses,
            "best_epoch": best + 1}


def _model():
    model = nn.Linear(1, 1, bias=False)
    model.weight.data[...] = 0.0
    return model


def _fit(model, rising, epochs, **kwargs):
    return fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=LR), rising["train"],
               rising["val"], epochs=epochs, verbose=0, **kwargs)


def test_the_toy_run_follows_the_hand_recursion(rising):
    model = _model()
    history = _fit(model, rising, 12)
    np.testing.assert_allclose(history["val_loss"], rising["val_losses"][:12], rtol=1e-4)
    assert float(model.weight.item()) == pytest.approx(rising["weights"][11], rel=1e-5)


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_stops_and_restores_the_best_weights(rising, patience):
    model = _model()
    stopper = EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    history = _fit(model, rising, 50, callbacks=[stopper])
    best = rising["best_epoch"]
    assert stopper.best_epoch == best
    assert stopper.stopped_epoch == best + patience
    assert len(history) == best + patience  # stopped long before 50 epochs
    assert history["val_loss"][-1] > history["val_loss"][best - 1]  # it did rise
    # the weights are those of the best epoch, not of the last one
    assert float(model.weight.item()) == pytest.approx(rising["weights"][best - 1], rel=1e-5)
    restored = evaluate(model, rising["val"], nn.MSELoss())["loss"]
    assert restored == pytest.approx(min(history["val_loss"]), rel=1e-5)


def test_without_restore_the_last_weights_stay(rising):
    model = _model()
    history = _fit(model, rising, 50, callbacks=[EarlyStopping(patience=2)])
    last = len(history)
    assert last == rising["best_epoch"] + 2
    assert float(model.weight.item()) == pytest.approx(rising["weights"][last - 1], rel=1e-5)


def test_min_delta_counts_only_large_improvements(rising):
    delta = 0.01
    # hand rule: an epoch improves when its value is below best - delta
    best, wait, expected_stop = np.inf, 0, None
    for epoch, value in enumerate(rising["val_losses"], start=1):
        if value < best - delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= 2:
                expected_stop = epoch
                break
    stopper = EarlyStopping(patience=2, min_delta=delta)
    history = _fit(_model(), rising, 50, callbacks=[stopper])
    assert expected_stop < rising["best_epoch"] + 2  # the delta matters on this run
    assert len(history) == expected_stop


def test_mode_max_on_a_score(rising):
    # a score that is larger when the validation loss is smaller
    def neg_mse(y_true, output):
        return -float(np.mean((output - y_true) ** 2))

    stopper = EarlyStopping(monitor="val_neg_mse", mode="max", patience=2)
    history = _fit(_model(), rising, 50, callbacks=[stopper], metrics=[neg_mse])
    assert stopper.best_epoch == rising["best_epoch"]
    assert len(history) == rising["best_epoch"] + 2


def test_baseline_must_be_beaten(rising):
    # no epoch gets below the baseline: stop after `patience` epochs, nothing to restore
    model = _model()
    stopper = EarlyStopping(patience=2, baseline=1e-9, restore_best_weights=True)
    history = _fit(model, rising, 50, callbacks=[stopper])
    assert len(history) == 2 and stopper.best_epoch is None
    assert float(model.weight.item()) == pytest.approx(rising["weights"][1], rel=1e-5)


def test_auto_mode_maximises_scores_and_minimises_losses():
    assert infer_mode("val_loss") == "min"
    assert infer_mode("loss") == "min"
    assert infer_mode("val_mse") == "min"
    for name in ("val_accuracy", "accuracy", "val_auroc", "val_auprc", "val_mcc", "val_f1",
                 "balanced_accuracy"):
        assert infer_mode(name) == "max", name
    assert EarlyStopping(monitor="val_auroc").mode == "max"
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_missing_monitor_warns_once_and_does_not_stop(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)
    with pytest.warns(UserWarning, match="val_loss") as record:
        history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01), [(x, y)],
                      epochs=4, callbacks=[EarlyStopping(patience=1)], verbose=0)
    assert len(history) == 4
    assert sum("val_loss" in str(w.message) for w in record) == 1


def test_model_checkpoint_directory_best_and_last(tmp_path, rising):
    model = _model()
    ckpt = ModelCheckpoint(tmp_path / "run", monitor="val_loss")
    history = _fit(model, rising, rising["best_epoch"] + 4, callbacks=[ckpt])
    best = rising["best_epoch"]
    assert ckpt.best_epoch == best
    weights = minidl.load(tmp_path / "run" / "best.safetensors")
    assert float(weights["weight"].numpy()[0, 0]) == pytest.approx(rising["weights"][best - 1],
                                                                    rel=1e-5)
    meta = minidl.io.load_metadata(tmp_path / "run" / "best.safetensors")
    assert meta["epoch"] == str(best)
    assert float(meta["val_loss"]) == history["val_loss"][best - 1]
    last = minidl.io.load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert last["epoch"] == len(history)
    np.testing.assert_array_equal(last["model"]["weight"].numpy(), model.weight.detach().numpy())
    assert sorted(os.listdir(tmp_path / "run")) == ["best.safetensors", "last.safetensors"]


def test_best_weights_file_reads_with_the_safetensors_package(tmp_path, rising):
    st = pytest.importorskip("safetensors.numpy")
    model = _model()
    _fit(model, rising, 3, callbacks=[ModelCheckpoint(tmp_path, save_last=False)])
    arrays = st.load_file(str(tmp_path / "best.safetensors"))
    np.testing.assert_array_equal(arrays["weight"], model.weight.detach().numpy())


def test_model_checkpoint_file_template(tmp_path, rising):
    best = rising["best_epoch"]
    template = str(tmp_path / "every" / "ep{epoch:02d}.safetensors")
    _fit(_model(), rising, best + 2, callbacks=[ModelCheckpoint(template, save_best=False)])
    assert sorted(os.listdir(tmp_path / "every")) == [
        f"ep{e:02d}.safetensors" for e in range(1, best + 3)]
    template = str(tmp_path / "best" / "ep{epoch:02d}-{val_loss:.4f}.safetensors")
    ckpt = ModelCheckpoint(template)
    _fit(_model(), rising, best + 2, callbacks=[ckpt])
    # written only at improvements: epochs 1 .. best
    assert len(os.listdir(tmp_path / "best")) == best
    assert os.path.basename(ckpt.best_path).startswith(f"ep{best:02d}-")
    with pytest.raises(ValueError, match="template"):
        _fit(_model(), rising, 1,
             callbacks=[ModelCheckpoint(str(tmp_path / "{nope}.safetensors"))])


def test_reduce_lr_on_plateau_is_fed_the_validation_loss(rising):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=LR)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    best = rising["best_epoch"]
    history = fit(model, nn.MSELoss(), opt, rising["train"], rising["val"], epochs=best + 3,
                  scheduler=sched, verbose=0)
    # epochs best+1 and best+2 are bad; two bad epochs > patience 1: the lr halves for the
    # epoch after (the history's lr is the lr used during each epoch)
    assert history["lr"][:best + 2] == [LR] * (best + 2)
    assert history["lr"][best + 2] == pytest.approx(LR * 0.5)


def test_reduce_lr_on_plateau_with_a_missing_monitor_warns(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    with pytest.warns(UserWarning, match="ReduceLROnPlateau"):
        fit(model, nn.MSELoss(), opt, [(x, y)], epochs=2, scheduler=sched, verbose=0)
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerCallback(sched, interval="step")


def test_per_step_scheduler(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]  # 3 steps per epoch
    history = fit(model, nn.MSELoss(), opt, batches, epochs=3, scheduler=sched,
                  scheduler_interval="step", verbose=0)
    assert history["lr"] == pytest.approx([0.1, 0.1 * 0.5 ** 3, 0.1 * 0.5 ** 6])
    assert sched.last_epoch == 9


def test_hooks_run_in_order_with_the_epoch_logs(regression):
    x, y, xv, yv = regression
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_end(self, batch, logs=None):
            calls.append(f"batch {batch} {logs['size']}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    model = nn.Linear(1, 1)
    fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01),
        [(x[:40], y[:40]), (x[40:], y[40:])], [(xv, yv)], epochs=2, callbacks=[Recorder()],
        verbose=0)
    keys = ["epoch", "loss", "lr", "time", "val_loss"]
    assert calls == ["train_begin", "epoch_begin 1", "batch 0 40", "batch 1 24",
                     f"epoch_end 1 {keys}", "epoch_begin 2", "batch 0 40", "batch 1 24",
                     f"epoch_end 2 {keys}", "train_end"]


def test_a_callback_can_stop_training(regression):
    x, y, _, _ = regression

    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.trainer.stop_training = True

    model = nn.Linear(1, 1)
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01), [(x, y)],
                  epochs=10, callbacks=[StopAtTwo()], verbose=0)
    assert len(history) == 2
    with pytest.raises(TypeError, match="Callback"):
        fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01), [(x, y)],
            callbacks=[lambda: None], verbose=0)
