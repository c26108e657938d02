"""Checkpoint and resume: a run stopped after epoch k and resumed gives exactly the losses,
learning rates and weights of the uninterrupted run (NumPy reference backend)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.io import load_checkpoint, load_metadata
from minidl.train import (
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LRSchedulerCallback,
    ModelCheckpoint,
    fit,
)

EPOCHS = 5


@pytest.fixture(autouse=True)
def _reference_backend():
    previous = minidl.backend.get_backend()
    minidl.set_backend("numpy")
    yield
    minidl.set_backend(previous)


class Interrupted(Exception):
    """Stands for a crash or a killed job."""


def _make_run(blobs, generator, init_seed, schedule):
    """Model, optimizer, scheduler and loaders built the same way in every run; only the
    initial weights differ with ``init_seed`` (a resumed run must take them from the file)."""
    x, y, xv, yv = blobs
    minidl.manual_seed(init_seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(16, 3))
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    if schedule == "epoch":
        scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        callbacks = [LRSchedulerCallback(scheduler, "epoch")]
    elif schedule == "step":
        scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=EPOCHS * 9)
        callbacks = [LRSchedulerCallback(scheduler, "step")]
    else:
        # mode="max" on a falling loss: every epoch is a plateau, so the lr moves
        scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=1,
                                                         factor=0.5)
        callbacks = [LRSchedulerCallback(scheduler, monitor="loss")]
    if isinstance(generator, str):
        generator = np.random.default_rng(11)
    train = DataLoader(TensorDataset(x, y), batch_size=10, shuffle=True, generator=generator)
    val = DataLoader(TensorDataset(xv, yv), batch_size=16)
    return model, optimizer, train, val, callbacks


def _state(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("generator,schedule", [(None, "epoch"), (5, "step"),
                                                ("Generator", "plateau")])
def test_resumed_run_gives_identical_losses(tmp_path, blobs, generator, schedule):
    # the uninterrupted run: global seed 0 after building, as a training script would do
    model, optimizer, train, val, callbacks = _make_run(blobs, generator, 1, schedule)
    minidl.manual_seed(0)
    full = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=EPOCHS,
               metrics=["accuracy"], callbacks=callbacks + [EarlyStopping(patience=50)],
               verbose=0)
    full_weights = _state(model)

    # the same run, killed at the start of epoch 3 (after epoch 2's checkpoint)
    model, optimizer, train, val, callbacks = _make_run(blobs, generator, 1, schedule)
    minidl.manual_seed(0)

    def crash(epoch, logs):
        if epoch == 3:
            raise Interrupted

    ckpt_dir = tmp_path / "ckpt"
    with pytest.raises(Interrupted):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=EPOCHS,
            metrics=["accuracy"],
            callbacks=callbacks + [EarlyStopping(patience=50), ModelCheckpoint(ckpt_dir),
                                   LambdaCallback(on_epoch_begin=crash)],
            verbose=0)

    # a fresh process would rebuild everything, with other initial weights and RNG state
    model, optimizer, train, val, callbacks = _make_run(blobs, generator, 99, schedule)
    minidl.manual_seed(12345)
    resumed = fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=EPOCHS,
                  metrics=["accuracy"],
                  callbacks=callbacks + [EarlyStopping(patience=50), ModelCheckpoint(ckpt_dir)],
                  verbose=0, resume_from=ckpt_dir / "last.safetensors")

    assert len(resumed) == EPOCHS
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "lr"):
        assert resumed[key] == full[key], key  # bit for bit, not approximately
    for name, value in full_weights.items():
        np.testing.assert_array_equal(_state(model)[name], value, err_msg=name)
    # the lr really changed along the run, so the scheduler state was exercised
    assert len(set(full["lr"])) > 1


def test_resume_without_the_checkpoint_state_differs(blobs):
    """Control for the test above: the same rebuild without resume_from gives other losses,
    so equality there is not an accident of a fixed seed."""
    runs = []
    for init_seed in (1, 99):
        model, optimizer, train, val, callbacks = _make_run(blobs, None, init_seed, "epoch")
        minidl.manual_seed(0)
        runs.append(fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=2,
                        callbacks=callbacks, verbose=0)["loss"])
    assert runs[0] != runs[1]


def test_checkpoint_file_is_safetensors_with_json_metadata(tmp_path, blobs):
    model, optimizer, train, val, callbacks = _make_run(blobs, 5, 1, "epoch")
    fit(model, nn.CrossEntropyLoss(), optimizer, train, val, epochs=2,
        callbacks=callbacks + [ModelCheckpoint(tmp_path, save_best=False)], verbose=0)
    path = tmp_path / "last.safetensors"
    raw = path.read_bytes()
    assert b"pickle" not in raw and not raw.startswith(b"\x80")  # no pickle protocol header
    header_len = int.from_bytes(raw[:8], "little")
    json.loads(raw[8:8 + header_len])  # the header is plain JSON
    record = json.loads(load_metadata(path)["minidl.checkpoint"])
    assert record["epoch"] == 2
    ckpt = load_checkpoint(path)
    assert ckpt["extra"]["format"] == "minidl.train"
    assert [r["epoch"] for r in ckpt["extra"]["history"]["records"]] == [1, 2]
    assert ckpt["extra"]["loaders"]["train"]["epoch"] == 2
    assert set(ckpt["model"]) == set(model.state_dict())
    # no temporary files left behind by the atomic writes
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]


def test_resume_from_a_weights_only_file_is_refused(tmp_path, blobs):
    model, optimizer, train, val, _ = _make_run(blobs, 5, 1, "epoch")
    minidl.save(model.state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(Exception, match="checkpoint"):
        fit(model, nn.CrossEntropyLoss(), optimizer, train, epochs=2, verbose=0,
            resume_from=tmp_path / "w.safetensors")


def test_resume_after_early_stop_trains_nothing_more(tmp_path, regression):
    x, y, xv, yv = regression
    minidl.manual_seed(0)
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    batches = [(x, y)]
    val = [(xv, -yv)]  # the better the fit, the worse the validation: stops at once
    fit(model, nn.MSELoss(), opt, batches, val, epochs=10, verbose=0,
        callbacks=[EarlyStopping(patience=1), ModelCheckpoint(tmp_path)])
    stopped = load_checkpoint(tmp_path / "last.safetensors")["epoch"]
    assert stopped < 10
    with pytest.warns(UserWarning, match="stopped"):
        history = fit(model, nn.MSELoss(), opt, batches, val, epochs=10, verbose=0,
                      callbacks=[EarlyStopping(patience=1), ModelCheckpoint(tmp_path)],
                      resume_from=tmp_path / "last.safetensors")
    assert len(history) == stopped


def test_csv_logger_keeps_every_epoch_across_a_resume(tmp_path, regression):
    x, y, xv, yv = regression
    log = tmp_path / "log.csv"

    def run(epochs, resume):
        minidl.manual_seed(0)
        model = nn.Linear(1, 1)
        opt = optim.SGD(model.parameters(), lr=0.05)
        return fit(model, nn.MSELoss(), opt, [(x, y)], [(xv, yv)], epochs=epochs, verbose=0,
                   callbacks=[CSVLogger(log), ModelCheckpoint(tmp_path / "c")],
                   resume_from=(tmp_path / "c" / "last.safetensors") if resume else None)

    run(2, False)
    history = run(4, True)
    written = History.from_csv(log)
    assert written["epoch"] == [1, 2, 3, 4]
    assert written["loss"] == history["loss"]
