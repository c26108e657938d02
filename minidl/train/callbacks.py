"""Callbacks: code that runs at fixed points of :func:`minidl.train.fit`.

A callback subclasses :class:`Callback` and overrides the hooks it needs::

    on_train_begin(logs)           before the first epoch (also after resuming)
    on_epoch_begin(epoch, logs)    epoch counts from 1
    on_batch_end(batch, logs)      after each optimizer step; logs has the batch "loss"
    on_epoch_end(epoch, logs)      logs has the epoch's record (loss, val_loss, metrics, lr)
    on_train_end(logs)

``self.trainer`` is the running :class:`~minidl.train.Trainer` (``trainer.model``,
``trainer.optimizer``, ``trainer.history``); setting ``trainer.stop_training = True`` ends
the run after the current epoch. Callbacks run in the order given, except that a
callback's ``order`` attribute (default 0) sorts them first: :class:`ModelCheckpoint` and
:class:`CSVLogger` have ``order = 100`` so they save the state every other callback has
already updated for the epoch.

A callback with state (:class:`EarlyStopping`'s counters, the best score so far) returns it
from ``state_dict()`` as numbers, lists, dicts and tensors; training checkpoints store it,
so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

__all__ = [
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRSchedulerCallback",
    "CSVLogger",
    "LambdaCallback",
    "infer_mode",
]

# metric names for which larger is better; anything else (losses, errors) is minimised
_MAXIMISED = ("acc", "auroc", "auprc", "auc", "mcc", "f1", "precision", "recall", "r2",
              "score")


def infer_mode(monitor):
    """``"max"`` for scores (accuracy, AUROC, MCC, F1, ...), ``"min"`` otherwise."""
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if any(part in name for part in _MAXIMISED) else "min"


def _check_mode(owner, mode, monitor):
    if mode == "auto":
        return infer_mode(monitor)
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


def _snapshot(model):
    """A copy of the model's weights that later updates do not change."""
    return {name: np.array(value.numpy(), copy=True)
            for name, value in model.state_dict().items()}


class Callback:
    """Base class: every hook does nothing."""

    #: callbacks with a smaller order run first at every hook
    order = 0
    trainer = None

    def set_trainer(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def state_dict(self):
        """State to keep in a training checkpoint (plain data and tensors)."""
        return {}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""


class LambdaCallback(Callback):
    """A callback from functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None,
                 on_epoch_end=None, on_batch_end=None):
        for name, fn in [("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_batch_end", on_batch_end)]:
            if fn is not None:
                setattr(self, name, fn)


class _Monitor:
    r"""Tracks the best value of a logged quantity.

    With ``mode="min"`` a value :math:`v` improves on the best :math:`b` when
    :math:`v < b - \delta`; with ``mode="max"`` when :math:`v > b + \delta`
    (:math:`\delta` = ``min_delta`` :math:`\ge 0`). NaN never improves.
    """

    def __init__(self, owner, monitor, mode, min_delta=0.0):
        self.owner = owner
        self.monitor = monitor
        self.mode = _check_mode(owner, mode, monitor)
        if min_delta < 0:
            raise ValueError(f"{owner}: min_delta must be >= 0, got {min_delta}")
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self._warned = False

    def value(self, logs):
        """The monitored value in ``logs``, or None (with one warning) when absent."""
        value = (logs or {}).get(self.monitor)
        if value is None:
            if not self._warned:
                warnings.warn(
                    f"{self.owner}: {self.monitor!r} is not in the epoch's logs (available: "
                    f"{sorted(logs or {})}); give fit a val_loader for 'val_*' quantities",
                    UserWarning, stacklevel=4,
                )
                self._warned = True
            return None
        return float(value)

    def improves(self, value):
        if value != value:
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load(self, state):
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]


class EarlyStopping(Callback):
    r"""Stop training when a monitored quantity has stopped improving.

    After each epoch the monitored value :math:`v_e` is compared with the best so far
    :math:`b` (see ``min_delta``). An improvement resets a counter of bad epochs; after
    ``patience`` consecutive epochs without one, training stops.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs (``"val_loss"``, ``"val_auroc"``, ``"loss"``...).
    mode : {"auto", "min", "max"}, default "auto"
        Whether smaller or larger is better; ``"auto"`` maximises scores (names with acc,
        auroc, auprc, mcc, f1, precision, recall) and minimises everything else.
    patience : int, default 5
        Epochs without improvement tolerated before stopping.
    min_delta : float, default 0
        The least change that counts as an improvement: ``v < b - min_delta`` (min).
    restore_best_weights : bool, default False
        When training ends (stopped early or not), load the weights of the best epoch
        back into the model. The weights are copied in memory at each improvement.
    baseline : float, optional
        Training stops after ``patience`` epochs unless the value beats this baseline.

    Attributes
    ----------
    best, best_epoch : the best value and its epoch (1-based)
    stopped_epoch : int, the epoch at which training was stopped (0 if it was not)
    """

    def __init__(self, monitor="val_loss", mode="auto", patience=5, min_delta=0.0,
                 restore_best_weights=False, baseline=None):
        if int(patience) < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self._monitor = _Monitor("EarlyStopping", monitor, mode, min_delta)
        self.monitor = monitor
        self.mode = self._monitor.mode
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights = None
        if baseline is not None:
            self._monitor.best = float(baseline)

    @property
    def best(self):
        return self._monitor.best

    @property
    def best_epoch(self):
        return self._monitor.best_epoch

    def on_epoch_end(self, epoch, logs=None):
        value = self._monitor.value(logs)
        if value is None:
            return
        if self._monitor.improves(value):
            self._monitor.best = value
            self._monitor.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.trainer.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)
            if self.trainer.verbose and self.trainer.stop_training:
                self.trainer.print(
                    f"early stopping at epoch {self.stopped_epoch}: restored the weights of "
                    f"epoch {self.best_epoch} ({self.monitor} {self.best:.4g})"
                )

    def state_dict(self):
        state = {"wait": self.wait, "stopped_epoch": self.stopped_epoch,
                 **self._monitor.state()}
        if self.best_weights is not None:
            state["best_weights"] = dict(self.best_weights)
        return state

    def load_state_dict(self, state):
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self._monitor.load(state)
        weights = state.get("best_weights")
        self.best_weights = (None if weights is None
                             else {k: np.array(np.asarray(v), copy=True)
                                   for k, v in weights.items()})


def _format_path(template, epoch, logs):
    try:
        return template.format(**{**(logs or {}), "epoch": epoch})
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"ModelCheckpoint: cannot fill the path template {template!r} with epoch and "
            f"{sorted(logs or {})}: {exc}"
        ) from exc


class ModelCheckpoint(Callback):
    """Save the model while training: the best weights, and the last full training state.

    Parameters
    ----------
    path : str or os.PathLike
        A directory, or a file name ending in ``.safetensors``.

        *Directory*: ``best.safetensors`` holds the weights of the best epoch so far (a plain
        safetensors weight file: ``minidl.load`` or PyTorch's ``safetensors.torch.load_file``
        read it; metadata ``epoch`` and the monitored value), and ``last.safetensors`` the
        complete training state after the latest epoch (model, optimizer, scheduler, epoch,
        RNG and loader states, history, callback states), which
        ``fit(..., resume_from=".../last.safetensors")`` continues from exactly.

        *File*: the weights are written there when the monitored value improves
        (``save_best=True``) or after every epoch (``save_best=False``); the name may hold
        ``{epoch}`` and log keys, e.g. ``"ckpt/epoch{epoch:03d}-{val_loss:.3f}.safetensors"``.
    monitor : str, default "val_loss"
    mode : {"auto", "min", "max"}, default "auto"
        As in :class:`EarlyStopping`.
    save_best : bool, default True
        Keep the best epoch's weights.
    save_last : bool, default True
        Directory form only: keep the resumable state of the latest epoch.
    min_delta : float, default 0

    Attributes
    ----------
    best, best_epoch, best_path, last_path
    """

    order = 100

    def __init__(self, path, monitor="val_loss", mode="auto", save_best=True, save_last=True,
                 min_delta=0.0):
        self.path = os.fspath(path)
        self.is_file = self.path.endswith(".safetensors")
        self.monitor = monitor
        self._monitor = _Monitor("ModelCheckpoint", monitor, mode, min_delta)
        self.mode = self._monitor.mode
        self.save_best = bool(save_best)
        self.save_last = bool(save_last) and not self.is_file
        if not self.save_best and not self.save_last and not self.is_file:
            raise ValueError("ModelCheckpoint: save_best and save_last are both False: "
                             "nothing would be saved")
        self.best_path = None if self.is_file else os.path.join(self.path, "best.safetensors")
        self.last_path = os.path.join(self.path, "last.safetensors") if self.save_last else None

    @property
    def best(self):
        return self._monitor.best

    @property
    def best_epoch(self):
        return self._monitor.best_epoch

    def _save_weights(self, path, epoch, value):
        from minidl.io import save

        metadata = {"epoch": str(epoch)}
        if value is not None:
            metadata[self.monitor] = repr(value)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save(self.trainer.model.state_dict(), path, metadata=metadata)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best:
            value = self._monitor.value(logs)
            if value is not None and self._monitor.improves(value):
                self._monitor.best = value
                self._monitor.best_epoch = epoch
                target = (_format_path(self.path, epoch, logs) if self.is_file
                          else self.best_path)
                self._save_weights(target, epoch, value)
                if self.is_file:
                    self.best_path = target
        elif self.is_file:
            self._save_weights(_format_path(self.path, epoch, logs), epoch, None)
        if self.save_last:
            # this callback's own state is part of the checkpoint: update it first
            self.trainer.save_checkpoint(self.last_path)

    def state_dict(self):
        return {**self._monitor.state(), "best_path": self.best_path}

    def load_state_dict(self, state):
        self._monitor.load(state)
        self.best_path = state.get("best_path", self.best_path)


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler from the training loop.

    ``fit(..., scheduler=s)`` adds one of these; use it directly for several schedulers.

    Parameters
    ----------
    scheduler : minidl.optim.lr_scheduler.LRScheduler
    interval : {"epoch", "step"}, default "epoch"
        Call ``scheduler.step()`` after every epoch, or after every optimizer step (for
        ``OneCycleLR`` and per-batch warm-up).
    monitor : str, default "val_loss"
        For ``ReduceLROnPlateau`` only: the logged quantity passed as
        ``scheduler.step(logs[monitor])`` at the end of every epoch.
    """

    order = -10  # the new lr is in place before the other callbacks look at the epoch

    def __init__(self, scheduler, interval="epoch", monitor="val_loss"):
        from minidl.optim.lr_scheduler import ReduceLROnPlateau

        if interval not in ("epoch", "step"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'epoch' or 'step', got "
                             f"{interval!r}")
        self.scheduler = scheduler
        self.plateau = isinstance(scheduler, ReduceLROnPlateau)
        if self.plateau and interval != "epoch":
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau is stepped once per epoch "
                             "with the monitored value; use interval='epoch'")
        self.interval = interval
        self.monitor = monitor
        self._warned = False

    def on_batch_end(self, batch, logs=None):
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch, logs=None):
        if self.interval != "epoch":
            return
        if not self.plateau:
            self.scheduler.step()
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            if not self._warned:
                warnings.warn(
                    f"LRSchedulerCallback: ReduceLROnPlateau monitors {self.monitor!r}, which "
                    f"is not in the epoch's logs (available: {sorted(logs or {})}); the "
                    "learning rate is left unchanged",
                    UserWarning, stacklevel=3,
                )
                self._warned = True
            return
        self.scheduler.step(value)

    def state_dict(self):
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state["scheduler"])


class CSVLogger(Callback):
    """Rewrite the history as CSV (atomically) after every epoch: ``CSVLogger("log.csv")``.

    The file always holds every epoch so far, also after resuming from a checkpoint.
    """

    order = 90

    def __init__(self, path):
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch, logs=None):
        self.trainer.history.to_csv(self.path)
