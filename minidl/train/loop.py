r"""The training loop: :class:`Trainer`, :func:`fit`, :func:`evaluate`, :func:`predict`.

One epoch of :meth:`Trainer.fit` is, for every batch :math:`(x_b, y_b)` of the training
loader (model in training mode)::

    output = model(*inputs)            # inputs, target = unpack(batch)
    loss = loss_fn(output, target)
    optimizer.zero_grad(); loss.backward()
    clip the gradients (optional); optimizer.step()
    callbacks.on_batch_end             # per-step schedulers run here

then the validation loader is evaluated (eval mode, no gradients), the epoch's record goes
into the :class:`~minidl.train.History` and the callbacks see it (epoch schedulers,
early stopping, checkpoints). The epoch's training loss is the sample-weighted mean of the
batch losses,

.. math:: \bar L = \frac{\sum_b n_b L_b}{\sum_b n_b},

with :math:`n_b` the batch's number of samples (its first dimension) and :math:`L_b` the
batch's (mean-reduced) loss, so a short last batch counts for what it holds.

Batches
-------
``unpack(batch) -> (inputs, target)`` turns what a loader yields into the model's
positional inputs (a tuple) and the loss target. The default accepts

- ``(x, y)``: ``model(x)``, target ``y``; ``(x1, ..., xn, y)``: ``model(x1, ..., xn)``;
- a dict (as :func:`minidl.data.pad_collate` returns): ``model(batch["inputs"])``, target
  ``batch["targets"]`` (``"input"``/``"x"`` and ``"target"``/``"y"``/``"labels"`` too);
- a single tensor or ``(x,)``: inputs without a target (enough for :func:`predict`).

NumPy arrays in a batch become Tensors; when the model's parameters are on the GPU, the
batch is moved there (nothing else about devices or kernel backends is changed).

Resuming
--------
:meth:`Trainer.save_checkpoint` (called by ``ModelCheckpoint(..., save_last=True)``) writes
one safetensors file, without pickle and atomically, holding the model, the optimizer, the
epoch, minidl's global RNG state, the loaders' sampler states (epoch counters and seeded
generators), the history and every callback's state (schedulers, early stopping).
``fit(..., epochs=N, resume_from=path)`` loads it and trains epochs :math:`k+1 .. N`: with
the same code and data, the losses are bit for bit those of an uninterrupted ``N``-epoch
run (on the NumPy reference backend; tested).
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import numpy as np

from minidl import random as _random
from minidl.autograd import no_grad
from minidl.tensor import Tensor
from minidl.train._metrics import resolve_metrics
from minidl.train.callbacks import Callback, LRSchedulerCallback
from minidl.train.history import History
from minidl.train.progress import MODES, make_progress

__all__ = ["Trainer", "fit", "evaluate", "predict", "default_unpack"]

_CHECKPOINT_FORMAT = "minidl.train"
_CHECKPOINT_VERSION = 1
_INPUT_KEYS = ("inputs", "input", "x")
_TARGET_KEYS = ("targets", "target", "y", "labels")


# ---------------------------------------------------------------------------- batches


def default_unpack(batch):
    """Split a batch into ``(inputs tuple, target or None)``; see the module docstring."""
    if isinstance(batch, dict):
        input_key = next((k for k in _INPUT_KEYS if k in batch), None)
        if input_key is None:
            raise ValueError(
                f"fit: a dict batch needs one of the keys {_INPUT_KEYS} for the model's input "
                f"(got keys {sorted(batch)}); pass unpack=lambda batch: ((inputs, ...), "
                "target) for other layouts"
            )
        target_key = next((k for k in _TARGET_KEYS if k in batch), None)
        return (batch[input_key],), (batch[target_key] if target_key else None)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 0:
            raise ValueError("fit: the loader yielded an empty batch")
        if len(batch) == 1:
            return (batch[0],), None
        return tuple(batch[:-1]), batch[-1]
    return (batch,), None


def _as_tensor(value, device):
    if isinstance(value, np.ndarray):
        value = Tensor._wrap(np.ascontiguousarray(value))
    if isinstance(value, Tensor) and device is not None and value.device != device:
        value = value.to(device)
    return value


def _model_device(model):
    for param in model.parameters():
        return param.device
    return None


def _to_numpy(value):
    """Host NumPy array(s) from a Tensor, an array, or a tuple/list/dict of them."""
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    return np.asarray(value)


def _num_samples(target, inputs):
    for value in (target, *inputs):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) > 0:
            return int(shape[0])
    return 1


def _concat(chunks, what):
    """Concatenate per-batch arrays along axis 0; tuples/dicts element-wise."""
    first = chunks[0]
    if isinstance(first, tuple):
        return tuple(_concat([c[i] for c in chunks], what) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([c[k] for c in chunks], what) for k in first}
    shapes = {np.shape(c)[1:] for c in chunks}
    if len(shapes) > 1:
        raise ValueError(
            f"{what}: batches have outputs of different trailing shapes {sorted(shapes)} "
            "(variable-length sequences?); they cannot be concatenated into one array"
        )
    return np.concatenate([np.atleast_1d(c) for c in chunks], axis=0)


class _Mode:
    """Put a module in eval or train mode for a block, restoring its previous mode."""

    def __init__(self, model, training):
        self.model, self.training = model, training

    def __enter__(self):
        self.previous = getattr(self.model, "training", True)
        self.model.train(self.training)

    def __exit__(self, *exc):
        self.model.train(self.previous)


def _run_eval(model, loader, loss_fn, metric_set, unpack, what):
    device = _model_device(model)
    total_loss, total_n = 0.0, 0
    outputs, targets = [], []
    with _Mode(model, False), no_grad():
        for batch in loader:
            inputs, target = unpack(batch)
            inputs = tuple(_as_tensor(x, device) for x in inputs)
            target = _as_tensor(target, device)
            output = model(*inputs)
            n = _num_samples(target, inputs)
            if loss_fn is not None:
                if target is None:
                    raise ValueError(f"{what}: a batch has no target to compute the loss with; "
                                     "loaders must yield (inputs, targets) or pass unpack=")
                total_loss += float(loss_fn(output, target).item()) * n
            total_n += n
            if len(metric_set):
                if target is None:
                    raise ValueError(f"{what}: metrics need targets, but a batch has none; "
                                     "loaders must yield (inputs, targets) or pass unpack=")
                kept_target, kept_output = metric_set.batch(_to_numpy(target),
                                                            _to_numpy(output))
                targets.append(kept_target)
                outputs.append(kept_output)
    if total_n == 0:
        raise ValueError(f"{what}: the loader yielded no batches")
    results = {}
    if loss_fn is not None:
        results["loss"] = total_loss / total_n
    if len(metric_set):
        results.update(metric_set.compute(_concat(targets, what), _concat(outputs, what)))
    return results


def evaluate(model, loader, loss_fn=None, metrics=None, task=None, unpack=None):
    """The loss and metrics of ``model`` on every batch of ``loader``.

    The model runs in eval mode (dropout off, batch-norm running statistics) under
    ``no_grad``; its previous mode is restored afterwards.

    Parameters
    ----------
    model : minidl.nn.Module
    loader : iterable of batches
        A :class:`minidl.data.DataLoader` or any iterable (see the module docstring).
    loss_fn : callable, optional
        ``loss_fn(output, target) -> scalar Tensor`` (mean over the batch).
    metrics, task :
        As for :func:`fit`: names from :data:`minidl.metrics.METRICS` or callables, and how
        raw outputs become labels/probabilities.
    unpack : callable, optional
        ``batch -> (inputs tuple, target)``; :func:`default_unpack` by default.

    Returns
    -------
    dict
        ``{"loss": sample-weighted mean loss, <metric>: value, ...}``; metrics are computed
        once on the concatenated outputs of all batches (not averaged over batches).
    """
    metric_set = resolve_metrics(metrics, task)
    return _run_eval(model, loader, loss_fn, metric_set, unpack or default_unpack, "evaluate")


def predict(model, loader, unpack=None):
    """The model's outputs on every batch of ``loader``, concatenated, as NumPy.

    Eval mode and ``no_grad``, like :func:`evaluate`. Targets in the batches are ignored.

    Returns
    -------
    numpy.ndarray
        Outputs stacked along the first axis, ``(N, ...)`` (a tuple or dict of arrays when
        the model returns a tuple or dict).

    Raises
    ------
    ValueError
        If the batches' outputs differ beyond the first axis (pad them to one length).
    """
    unpack = unpack or default_unpack
    device = _model_device(model)
    outputs = []
    with _Mode(model, False), no_grad():
        for batch in loader:
            inputs, _ = unpack(batch)
            output = model(*(_as_tensor(x, device) for x in inputs))
            outputs.append(_to_numpy(output))
    if not outputs:
        raise ValueError("predict: the loader yielded no batches")
    return _concat(outputs, "predict")


# ---------------------------------------------------------------------------- Trainer


class Trainer:
    """Train a model with a loss and an optimizer; see :func:`fit` for the arguments.

    Attributes
    ----------
    model, loss_fn, optimizer, callbacks
    history : History
        Records of the epochs trained so far (restored on resume).
    epoch : int
        Number of completed epochs.
    stop_training : bool
        Set by a callback to end the run after the current epoch.
    """

    def __init__(self, model, loss_fn, optimizer, *, scheduler=None, scheduler_interval="epoch",
                 scheduler_monitor="val_loss", metrics=None, task=None, callbacks=None,
                 clip_grad_norm=None, clip_grad_value=None, unpack=None, train_metrics=True,
                 verbose=1, progress="auto", file=None):
        if progress not in MODES:
            raise ValueError(f"fit: progress must be one of {MODES}, got {progress!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1 or 2, got {verbose!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.metrics = resolve_metrics(metrics, task)
        self.task = task
        self.unpack = unpack or default_unpack
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value
        self.train_metrics = bool(train_metrics)
        self.verbose = verbose
        self.progress = progress
        self.file = file
        callbacks = list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be Callback instances, got "
                                f"{type(cb).__name__}")
        if scheduler is not None:
            callbacks.insert(0, LRSchedulerCallback(scheduler, scheduler_interval,
                                                    scheduler_monitor))
        # stable sort: equal orders keep the user's order
        self.callbacks = sorted(callbacks, key=lambda cb: cb.order)
        self.scheduler = scheduler
        self.history = History()
        self.epoch = 0
        self.stop_training = False
        self.train_loader = None
        self.val_loader = None

    # ------------------------------------------------------------------ output

    def print(self, message):
        """Write a line to the progress stream (when verbose)."""
        if self.verbose:
            stream = self.file if self.file is not None else sys.stdout
            stream.write(message + "\n")
            stream.flush()

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    # ------------------------------------------------------------------ training

    def fit(self, train_loader, val_loader=None, epochs=1, resume_from=None):
        """Train until ``epochs`` epochs are complete (or a callback stops the run).

        Returns the :class:`History`. With ``resume_from``, the state saved in that
        checkpoint is loaded first and training continues at the epoch after it.
        """
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
        self.train_loader, self.val_loader = train_loader, val_loader
        for cb in self.callbacks:
            cb.set_trainer(self)
        if resume_from is not None:
            self.load_checkpoint(resume_from)
            if self.verbose:
                self.print(f"resumed from {os.fspath(resume_from)} after epoch {self.epoch}")
            if self.stop_training:
                warnings.warn(
                    f"fit: the run saved in {os.fspath(resume_from)} had been stopped by a "
                    f"callback after epoch {self.epoch}; no further epoch is trained",
                    UserWarning, stacklevel=2,
                )
        else:
            self.history = History()
            self.epoch = 0
            self.stop_training = False
        if self.epoch > epochs:
            warnings.warn(f"fit: the checkpoint is at epoch {self.epoch}, past epochs={epochs}",
                          UserWarning, stacklevel=2)
        self._clip_params = [p for p in self.model.parameters() if p.requires_grad]
        self._call("on_train_begin", {})
        while self.epoch < epochs and not self.stop_training:
            self._train_epoch(self.epoch + 1, epochs)
        self._call("on_train_end", self.history.records[-1] if len(self.history) else {})
        return self.history

    def _train_epoch(self, epoch, epochs):
        self._call("on_epoch_begin", epoch, {})
        # the lr in force during this epoch (an epoch scheduler changes it at the end)
        lrs = [float(group["lr"]) for group in self.optimizer.param_groups]
        start = time.perf_counter()
        loader = self.train_loader
        try:
            total = len(loader)
        except TypeError:
            total = None
        progress = make_progress(total, f"epoch {epoch}/{epochs}", self.verbose, self.progress,
                                 self.file)
        collect = self.train_metrics and len(self.metrics) > 0
        device = _model_device(self.model)
        total_loss, total_n = 0.0, 0
        outputs, targets = [], []
        self.model.train()
        for index, batch in enumerate(loader):
            inputs, target = self.unpack(batch)
            if target is None:
                raise ValueError("fit: a training batch has no target; loaders must yield "
                                 "(inputs, targets) or pass unpack=")
            inputs = tuple(_as_tensor(x, device) for x in inputs)
            target = _as_tensor(target, device)
            output = self.model(*inputs)
            loss = self.loss_fn(output, target)
            self.optimizer.zero_grad()
            loss.backward()
            self._clip()
            self.optimizer.step()
            value = float(loss.item())
            n = _num_samples(target, inputs)
            total_loss += value * n
            total_n += n
            if collect:
                kept_target, kept_output = self.metrics.batch(_to_numpy(target),
                                                              _to_numpy(output))
                targets.append(kept_target)
                outputs.append(kept_output)
            self._call("on_batch_end", index, {"loss": value, "size": n})
            progress.update({"loss": total_loss / total_n})
        if total_n == 0:
            progress.close()
            raise ValueError("fit: the training loader yielded no batches")

        record = {"epoch": epoch, "loss": total_loss / total_n}
        if collect:
            record.update(self.metrics.compute(_concat(targets, "fit"), _concat(outputs, "fit")))
        if self.val_loader is not None:
            val = _run_eval(self.model, self.val_loader, self.loss_fn, self.metrics,
                            self.unpack, "fit (validation)")
            record.update({f"val_{k}": v for k, v in val.items()})
        record["lr"] = lrs[0]
        for i, lr in enumerate(lrs[1:], start=1):
            record[f"lr_{i}"] = lr
        record["time"] = time.perf_counter() - start
        progress.close(record)
        self.epoch = epoch
        self.history.append(record)
        self._call("on_epoch_end", epoch, record)

    def _clip(self):
        if self.clip_grad_value is not None:
            from minidl.nn.utils import clip_grad_value_

            clip_grad_value_(self._clip_params, self.clip_grad_value)
        if self.clip_grad_norm is not None:
            from minidl.nn.utils import clip_grad_norm_

            clip_grad_norm_(self._clip_params, self.clip_grad_norm)

    def evaluate(self, loader):
        """Loss and metrics on ``loader`` (see :func:`evaluate`)."""
        return _run_eval(self.model, loader, self.loss_fn, self.metrics, self.unpack,
                         "evaluate")

    def predict(self, loader):
        """Concatenated outputs on ``loader`` (see :func:`predict`)."""
        return predict(self.model, loader, self.unpack)

    # ------------------------------------------------------------------ checkpoints

    def _callback_keys(self):
        """``ClassName`` for the first callback of a class, ``ClassName_1``... after it."""
        counts, keys = {}, []
        for cb in self.callbacks:
            name = type(cb).__name__
            keys.append(name if name not in counts else f"{name}_{counts[name]}")
            counts[name] = counts.get(name, 0) + 1
        return list(zip(keys, self.callbacks))

    def save_checkpoint(self, path):
        """Write the complete training state to ``path`` (safetensors, atomic, no pickle).

        Model and optimizer tensors, the number of completed epochs, minidl's RNG state,
        and as JSON metadata the history, every callback's ``state_dict()`` (schedulers,
        early stopping) and the loaders' ``state_dict()`` (sampler epochs and generators).
        """
        from minidl.io import save_checkpoint

        loaders = {}
        for name, loader in (("train", self.train_loader), ("val", self.val_loader)):
            if hasattr(loader, "state_dict"):
                loaders[name] = loader.state_dict()
        extra = {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "history": self.history.to_dict(),
            "stop_training": bool(self.stop_training),
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_keys()},
            "loaders": loaders,
        }
        os.makedirs(os.path.dirname(os.path.abspath(os.fspath(path))), exist_ok=True)
        save_checkpoint(path, self.model.state_dict(), self.optimizer.state_dict(),
                        epoch=self.epoch, rng_state=_random.get_rng_state(), extra=extra)

    def load_checkpoint(self, path):
        """Restore the state written by :meth:`save_checkpoint` into this trainer.

        The model, optimizer, callbacks (and their schedulers) and loaders must be built as
        in the saved run; their states are loaded into them.

        Raises
        ------
        ValueError
            If the file is a checkpoint not written by a Trainer.
        """
        from minidl.io import load_checkpoint

        ckpt = load_checkpoint(path)
        extra = ckpt.get("extra") or {}
        if extra.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError(
                f"fit: {os.fspath(path)} is a checkpoint, but not one written by "
                "minidl.train (no training state: history, callbacks, loaders); load its "
                "weights with minidl.io.load_checkpoint instead"
            )
        self.model.load_state_dict(ckpt["model"])
        if ckpt.get("optimizer") is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch = int(ckpt.get("epoch") or 0)
        self.history = History.from_dict(extra.get("history", {}))
        self.stop_training = bool(extra.get("stop_training", False))
        saved = dict(extra.get("callbacks", {}))
        for key, cb in self._callback_keys():
            if key in saved:
                cb.load_state_dict(saved.pop(key))
            elif cb.state_dict():
                warnings.warn(f"fit: the checkpoint has no state for callback {key}; it "
                              "starts afresh", UserWarning, stacklevel=3)
        leftover = [key for key, state in saved.items() if state]
        if leftover:
            warnings.warn(f"fit: the checkpoint holds state for callbacks {leftover} that this "
                          "run does not have; ignored", UserWarning, stacklevel=3)
        loaders = extra.get("loaders", {})
        for name, loader in (("train", self.train_loader), ("val", self.val_loader)):
            if name in loaders and hasattr(loader, "load_state_dict"):
                loader.load_state_dict(loaders[name])
        if ckpt.get("rng_state") is not None:
            _random.set_rng_state(ckpt["rng_state"])


def fit(model, loss_fn, optimizer, train_loader, val_loader=None, epochs=1, *, scheduler=None,
        scheduler_interval="epoch", scheduler_monitor="val_loss", metrics=None, task=None,
        callbacks=None, clip_grad_norm=None, clip_grad_value=None, unpack=None,
        train_metrics=True, verbose=1, progress="auto", file=None, resume_from=None):
    """Train ``model`` for ``epochs`` epochs and return the :class:`History`.

    Parameters
    ----------
    model : minidl.nn.Module
    loss_fn : callable
        ``loss_fn(output, target) -> scalar Tensor``, e.g. ``nn.CrossEntropyLoss()``.
    optimizer : minidl.optim.Optimizer
    train_loader, val_loader : iterables of batches
        :class:`minidl.data.DataLoader` or any iterable (lists of ``(x, y)`` work); see the
        module docstring for the batch layouts. Without ``val_loader`` there are no
        ``val_*`` columns.
    epochs : int
        The total number of epochs (also when resuming: a run checkpointed after epoch
        ``k`` trains epochs ``k+1 .. epochs``).
    scheduler : LRScheduler, optional
        Stepped after every epoch (``scheduler_interval="epoch"``) or every optimizer step
        (``"step"``); a ``ReduceLROnPlateau`` is stepped with the epoch's
        ``scheduler_monitor`` value (default ``"val_loss"``).
    metrics : list, optional
        Names (``"accuracy"``, ``"balanced_accuracy"``, ``"precision"``, ``"recall"``,
        ``"f1"``, ``"mcc"``, ``"auroc"``, ``"auprc"``...) or callables
        ``fn(y_true, output) -> float`` (raw outputs). Computed on the validation set
        (``val_<name>``) and, with ``train_metrics=True``, on the outputs seen during the
        training epoch (``<name>``; in training mode, weights changing along the epoch).
    task : {"binary", "multiclass", "regression", None}
        How raw outputs (logits) become probabilities and labels for named metrics:
        sigmoid of one logit, softmax over axis 1, or nothing. None infers binary/multiclass
        from the number of output columns.
    callbacks : list of Callback, optional
        :class:`EarlyStopping`, :class:`ModelCheckpoint`, :class:`CSVLogger`...
    clip_grad_norm : float, optional
        Clip the total gradient norm to this value before every step
        (:func:`minidl.nn.utils.clip_grad_norm_`).
    clip_grad_value : float, optional
        Clip every gradient element to ``[-v, v]`` (:func:`minidl.nn.utils.clip_grad_value_`).
    unpack : callable, optional
        ``batch -> (inputs tuple, target)`` for batch layouts the default does not know.
    verbose : {0, 1, 2}, default 1
        0 silent; 1 a progress bar on a terminal (tqdm if installed, a built-in text bar
        otherwise) and one summary line per epoch when output is not a terminal; 2 one
        line per epoch.
    progress : {"auto", "tqdm", "text", "line", "none"}
        Force the kind of progress display.
    file : text stream, optional
        Where progress goes (``sys.stdout`` by default).
    resume_from : str or os.PathLike, optional
        A checkpoint written by :meth:`Trainer.save_checkpoint` (``last.safetensors`` of
        a :class:`ModelCheckpoint` directory): continue that run exactly.

    Returns
    -------
    History

    Examples
    --------
    >>> import numpy as np, minidl
    >>> from minidl import nn, optim
    >>> from minidl.train import fit
    >>> _ = minidl.manual_seed(0)
    >>> x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    >>> y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)
    >>> batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    >>> model = nn.Linear(2, 1)
    >>> history = fit(model, nn.BCEWithLogitsLoss(), optim.Adam(model.parameters(), lr=0.1),
    ...               batches, batches, epochs=20, metrics=["accuracy"], task="binary",
    ...               verbose=0)
    >>> history["val_accuracy"][-1] > 0.9
    True
    """
    trainer = Trainer(model, loss_fn, optimizer, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, scheduler_monitor=scheduler_monitor,
                      metrics=metrics, task=task, callbacks=callbacks,
                      clip_grad_norm=clip_grad_norm, clip_grad_value=clip_grad_value,
                      unpack=unpack, train_metrics=train_metrics, verbose=verbose,
                      progress=progress, file=file)
    return trainer.fit(train_loader, val_loader, epochs=epochs, resume_from=resume_from)
