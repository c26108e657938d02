"""Training toolkit: a fit loop with progress, callbacks, history, resume, hyperparameter search.

>>> from minidl.train import fit, evaluate, predict, EarlyStopping, ModelCheckpoint
>>> # history = fit(model, nn.CrossEntropyLoss(), optimizer, train_loader, val_loader,
>>> #               epochs=50, metrics=["accuracy", "auroc"], task="multiclass",
>>> #               callbacks=[EarlyStopping(patience=5, restore_best_weights=True),
>>> #                          ModelCheckpoint("runs/exp1")])
>>> # history.to_csv("runs/exp1/history.csv"); history.plot("runs/exp1/curves.png")

- :mod:`minidl.train.loop`: :func:`fit`, :class:`Trainer`, :func:`evaluate`, :func:`predict`;
- :mod:`minidl.train.callbacks`: :class:`Callback`, :class:`EarlyStopping`,
  :class:`ModelCheckpoint`, :class:`LRSchedulerCallback`, :class:`CSVLogger`;
- :mod:`minidl.train.history`: :class:`History` (CSV, PNG learning curves);
- :mod:`minidl.train.progress`: tqdm or a built-in bar, a line per epoch off a terminal;
- :mod:`minidl.train.search`: :func:`grid_search`, :func:`random_search`,
  :func:`optuna_search` over :class:`LogUniform`, :class:`Uniform`, :class:`IntUniform`,
  lists.

Only NumPy is needed; tqdm, matplotlib and optuna are used when installed (imported when
first needed, never by ``import minidl.train``).
"""

from minidl.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LRSchedulerCallback,
    ModelCheckpoint,
)
from minidl.train.history import History
from minidl.train.loop import Trainer, default_unpack, evaluate, fit, predict
from minidl.train.search import (
    Choice,
    IntUniform,
    LogUniform,
    SearchResult,
    Uniform,
    grid_search,
    optuna_search,
    random_search,
    search,
)

__all__ = [
    "fit", "Trainer", "evaluate", "predict", "default_unpack", "History",
    "Callback", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback", "CSVLogger",
    "LambdaCallback",
    "grid_search", "random_search", "optuna_search", "search", "SearchResult",
    "Uniform", "LogUniform", "IntUniform", "Choice",
]
