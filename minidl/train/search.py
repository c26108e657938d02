r"""Hyperparameter search: grid, random, and Optuna when it is installed.

A *space* is a dict from hyperparameter name to what it may be:

=====================================  ==============================================
value                                  meaning
=====================================  ==============================================
``[16, 32, 64]``, ``("a", "b")``,      one of these (categorical)
``range(1, 4)``
``Uniform(0.0, 0.5)``                  a float, uniform on :math:`[a, b]`
``LogUniform(1e-4, 1e-1)``             a float whose log is uniform: :math:`e^{U(\ln a,
                                       \ln b)}` (learning rates, weight decays)
``IntUniform(1, 4)``                   an int in :math:`\{a, \ldots, b\}` (both included)
a number or string                     fixed
=====================================  ==============================================

Grid search takes every combination; a continuous range then needs ``num=`` grid points
(``LogUniform(1e-4, 1e-1, num=4)`` gives 1e-4, 1e-3, 1e-2, 1e-1). Random search draws
``n_trials`` configurations from a seeded NumPy generator.

Every trial does the same thing: ``minidl.manual_seed(seed)`` (so every configuration
starts from the same random state), ``build(config)`` makes the model and optimizer,
:func:`~minidl.train.fit` trains it for at most ``epochs`` epochs with
:class:`~minidl.train.EarlyStopping` on ``monitor`` (best weights restored), and the
trial's *score* is the best value of ``monitor`` over its epochs (e.g. the lowest
``val_loss``). Loaders with a ``state_dict`` are rewound before each trial, so every trial
sees the same batch orders.

``build(config)`` returns ``(model, optimizer)``, ``(model, optimizer, loss_fn)`` or a dict
with ``"model"``, ``"optimizer"`` and optionally ``"loss_fn"``, ``"scheduler"``,
``"train_loader"``, ``"val_loader"`` (e.g. when the batch size is searched).
"""

from __future__ import annotations

import csv
import importlib
import io
import itertools
import math
import sys
import time

import numpy as np

from minidl.io.atomic import atomic_write_text
from minidl.train.callbacks import EarlyStopping, _check_mode

__all__ = [
    "Uniform",
    "LogUniform",
    "IntUniform",
    "Choice",
    "SearchResult",
    "grid_search",
    "random_search",
    "optuna_search",
    "search",
]


# ---------------------------------------------------------------------------- the space


class Choice:
    """One of a list of values."""

    def __init__(self, values):
        self.values = list(values)
        if not self.values:
            raise ValueError("Choice: needs at least one value")

    def grid(self, name):
        return list(self.values)

    def sample(self, rng):
        return self.values[int(rng.integers(len(self.values)))]

    def __repr__(self):
        return f"Choice({self.values!r})"


class Uniform:
    r"""A float drawn uniformly from :math:`[low, high]`; ``num`` points for a grid."""

    def __init__(self, low, high, num=None):
        if not low < high:
            raise ValueError(f"{type(self).__name__}: needs low < high, got {low}, {high}")
        self.low, self.high, self.num = float(low), float(high), num

    def _check_num(self, name):
        if self.num is None or int(self.num) < 1:
            raise ValueError(
                f"grid_search: {name!r} is a continuous range ({self!r}); give it grid points "
                f"with num=, e.g. {type(self).__name__}({self.low:g}, {self.high:g}, num=4)"
            )
        return int(self.num)

    def grid(self, name):
        return [float(v) for v in np.linspace(self.low, self.high, self._check_num(name))]

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def __repr__(self):
        num = "" if self.num is None else f", num={self.num}"
        return f"{type(self).__name__}({self.low:g}, {self.high:g}{num})"


class LogUniform(Uniform):
    r"""A positive float whose logarithm is uniform: :math:`\exp U(\ln low, \ln high)`.

    Grids are geometric: ``LogUniform(1e-4, 1e-1, num=4)`` gives 1e-4, 1e-3, 1e-2, 1e-1.
    """

    def __init__(self, low, high, num=None):
        if not low > 0:
            raise ValueError(f"LogUniform: low must be > 0, got {low}")
        super().__init__(low, high, num)

    def grid(self, name):
        return [float(v) for v in np.geomspace(self.low, self.high, self._check_num(name))]

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class IntUniform:
    """An int from ``low`` to ``high`` inclusive, in steps of ``step``."""

    def __init__(self, low, high, step=1):
        if int(step) < 1 or int(high) < int(low):
            raise ValueError(f"IntUniform: needs low <= high and step >= 1, got {low}, {high}, "
                             f"{step}")
        self.low, self.high, self.step = int(low), int(high), int(step)

    def grid(self, name):
        return list(range(self.low, self.high + 1, self.step))

    def sample(self, rng):
        count = (self.high - self.low) // self.step + 1
        return self.low + self.step * int(rng.integers(count))

    def __repr__(self):
        return f"IntUniform({self.low}, {self.high}, step={self.step})"


def _normalise_space(space):
    if not isinstance(space, dict) or not space:
        raise ValueError("search: space must be a non-empty dict of name -> values or range")
    out = {}
    for name, spec in space.items():
        if isinstance(spec, (Choice, Uniform, IntUniform)):
            out[name] = spec
        elif isinstance(spec, (list, tuple, range)):
            out[name] = Choice(spec)
        elif isinstance(spec, (int, float, str, bool)) or spec is None:
            out[name] = Choice([spec])
        else:
            raise ValueError(
                f"search: {name!r}: {spec!r} is not a list, range, Uniform, LogUniform, "
                "IntUniform or fixed value"
            )
    return out


def grid_configs(space):
    """Every combination of the space's grid values, the last name varying fastest."""
    space = _normalise_space(space)
    names = list(space)
    grids = [space[name].grid(name) for name in names]
    return [dict(zip(names, values)) for values in itertools.product(*grids)]


def random_configs(space, n_trials, seed=0):
    """``n_trials`` configurations drawn independently from ``space`` with a seeded
    generator (``numpy.random.default_rng(seed)``)."""
    space = _normalise_space(space)
    rng = np.random.default_rng(seed)
    return [{name: spec.sample(rng) for name, spec in space.items()} for _ in range(n_trials)]


# ---------------------------------------------------------------------------- results


def _sort_key(mode):
    def key(trial):
        score = trial["score"]
        if score != score:  # NaN (failed trial) last
            return (1, 0.0, trial["trial"])
        return (0, score if mode == "min" else -score, trial["trial"])
    return key


class SearchResult:
    """The outcome of a search.

    Attributes
    ----------
    trials : list of dict
        One per trial, in the order run: ``{"trial", "params", "score", "best_epoch",
        "epochs", "time"}``.
    monitor, mode : what was optimised, and in which direction
    best_config : dict
        The parameters of the best trial.
    best_score : float
    best_model : minidl.nn.Module
        The best trial's model, with the weights of its best epoch.
    best_history : History
    study : optuna.Study or None
        For :func:`optuna_search`.
    """

    def __init__(self, trials, monitor, mode, best_model=None, best_history=None, study=None):
        self.trials = trials
        self.monitor = monitor
        self.mode = mode
        self.best_model = best_model
        self.best_history = best_history
        self.study = study

    def table(self):
        """Rows sorted best first (failed trials, score NaN, last), with ``rank``."""
        rows = []
        for rank, trial in enumerate(sorted(self.trials, key=_sort_key(self.mode)), start=1):
            rows.append({"rank": rank, "trial": trial["trial"], "score": trial["score"],
                         **trial["params"], "best_epoch": trial["best_epoch"],
                         "epochs": trial["epochs"], "time": trial["time"]})
        return rows

    @property
    def best(self):
        ranked = sorted(self.trials, key=_sort_key(self.mode))
        if not ranked or ranked[0]["score"] != ranked[0]["score"]:
            raise ValueError(f"search: no trial produced a finite {self.monitor!r}")
        return ranked[0]

    @property
    def best_config(self):
        return dict(self.best["params"])

    @property
    def best_score(self):
        return self.best["score"]

    def to_csv(self, path):
        """Write :meth:`table` as CSV (atomically); the score column is named after the
        monitored quantity. Returns ``path``."""
        rows = self.table()
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([self.monitor if c == "score" else c for c in columns])
        for row in rows:
            writer.writerow([repr(row[c]) if isinstance(row.get(c), float) else row.get(c, "")
                             for c in columns])
        atomic_write_text(path, buffer.getvalue())
        return path

    def __repr__(self):
        try:
            best = f"best {self.monitor}={self.best_score:.4g} with {self.best_config}"
        except ValueError:
            best = "no finite score"
        return f"SearchResult({len(self.trials)} trials, {best})"


# ---------------------------------------------------------------------------- trials


class _Runner:
    """Trains one configuration as described in the module docstring."""

    def __init__(self, build, train_loader, val_loader, loss_fn, epochs, monitor, mode,
                 patience, min_delta, metrics, task, seed, verbose, fit_kwargs):
        self.build = build
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss_fn = loss_fn
        self.epochs = epochs
        self.monitor = monitor
        self.mode = _check_mode("search", mode, monitor)
        self.patience, self.min_delta = patience, min_delta
        self.metrics, self.task = metrics, task
        self.seed = seed
        self.verbose = verbose
        self.fit_kwargs = dict(fit_kwargs or {})
        # rewind points, so that every trial sees the same batch orders
        self.loader_states = {id(loader): loader.state_dict()
                              for loader in (train_loader, val_loader)
                              if hasattr(loader, "state_dict")}
        self.trials = []
        self.best_model = None
        self.best_history = None

    def _built(self, built, config):
        if isinstance(built, dict):
            parts = dict(built)
        elif isinstance(built, (tuple, list)) and len(built) in (2, 3):
            parts = dict(zip(("model", "optimizer", "loss_fn"), built))
        else:
            raise ValueError(
                "search: build(config) must return (model, optimizer), (model, optimizer, "
                f"loss_fn) or a dict with 'model' and 'optimizer'; got {type(built).__name__}"
            )
        missing = [k for k in ("model", "optimizer") if k not in parts]
        if missing:
            raise ValueError(f"search: build({config}) returned no {missing}")
        parts.setdefault("loss_fn", self.loss_fn)
        if parts["loss_fn"] is None:
            raise ValueError("search: no loss: pass loss_fn= or return it from build(config)")
        return parts

    def run(self, config, total=None):
        from minidl import random as _random
        from minidl.train.loop import fit

        index = len(self.trials)
        _random.manual_seed(self.seed)
        parts = self._built(self.build(dict(config)), config)
        train_loader = parts.get("train_loader", self.train_loader)
        val_loader = parts.get("val_loader", self.val_loader)
        if val_loader is None and self.monitor.startswith("val_"):
            raise ValueError(f"search: monitor={self.monitor!r} needs a val_loader (give one, "
                             "or return 'val_loader' from build)")
        for loader in (train_loader, val_loader):
            if id(loader) in self.loader_states:
                loader.load_state_dict(self.loader_states[id(loader)])
        stopper = EarlyStopping(self.monitor, self.mode, self.patience, self.min_delta,
                                restore_best_weights=True)
        start = time.perf_counter()
        history = fit(parts["model"], parts["loss_fn"], parts["optimizer"], train_loader,
                      val_loader, epochs=self.epochs, scheduler=parts.get("scheduler"),
                      metrics=self.metrics, task=self.task,
                      callbacks=[stopper, *self.fit_kwargs.get("callbacks", [])], verbose=0,
                      **{k: v for k, v in self.fit_kwargs.items() if k != "callbacks"})
        try:
            best_epoch, score = history.best(self.monitor, self.mode)
        except KeyError:
            best_epoch, score = None, float("nan")
        trial = {"trial": index, "params": dict(config), "score": float(score),
                 "best_epoch": best_epoch, "epochs": len(history),
                 "time": time.perf_counter() - start}
        self.trials.append(trial)
        current_best = min(self.trials, key=_sort_key(self.mode))
        if current_best is trial:
            self.best_model, self.best_history = parts["model"], history
        if self.verbose:
            count = f"{index + 1}/{total}" if total else f"{index + 1}"
            shown = " ".join(f"{k}={_short(v)}" for k, v in config.items())
            sys.stdout.write(f"trial {count} {shown}: {self.monitor} {score:.4g} "
                             f"(epoch {best_epoch}, {len(history)} run)\n")
            sys.stdout.flush()
        return float(score)

    def result(self, study=None):
        return SearchResult(self.trials, self.monitor, self.mode, self.best_model,
                            self.best_history, study)


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


_COMMON_DOC = """
    Parameters
    ----------
    build : callable
        ``build(config) -> (model, optimizer)`` (see the module docstring).
    space : dict
        Name -> list, range, Uniform, LogUniform, IntUniform or fixed value.
    train_loader, val_loader :
        As for :func:`~minidl.train.fit` (``build`` may return its own instead).
    loss_fn : callable, optional
        Unless ``build`` returns one.
    epochs : int, default 20
        At most this many epochs per trial.
    monitor : str, default "val_loss"
        The score: its best value over the trial's epochs.
    mode : {"auto", "min", "max"}
        As for :class:`~minidl.train.EarlyStopping`.
    patience, min_delta :
        Early stopping of each trial.
    metrics, task :
        As for :func:`~minidl.train.fit` (to monitor ``"val_auroc"``...).
    seed : int, default 0
        ``minidl.manual_seed(seed)`` before every trial, and the seed of the sampler.
    results_csv : path, optional
        Write the sorted results table there (atomically).
    verbose : int, default 1
        One line per trial.
    fit_kwargs : dict, optional
        More arguments for :func:`~minidl.train.fit` (``clip_grad_norm``, ``unpack``...).

    Returns
    -------
    SearchResult
        ``best_config``, ``best_score``, ``best_model``, ``table()``, ``to_csv(path)``.
"""


def _finish(runner, results_csv, study=None):
    result = runner.result(study)
    if results_csv is not None:
        result.to_csv(results_csv)
    return result


def grid_search(build, space, train_loader, val_loader=None, *, loss_fn=None, epochs=20,
                monitor="val_loss", mode="auto", patience=3, min_delta=0.0, metrics=None,
                task=None, seed=0, results_csv=None, verbose=1, fit_kwargs=None):
    runner = _Runner(build, train_loader, val_loader, loss_fn, epochs, monitor, mode, patience,
                     min_delta, metrics, task, seed, verbose, fit_kwargs)
    configs = grid_configs(space)
    for config in configs:
        runner.run(config, len(configs))
    return _finish(runner, results_csv)


grid_search.__doc__ = """Train every combination of the space's values; return the best.

    Continuous ranges need ``num=`` grid points. The trials run in
    ``itertools.product`` order (the last name varies fastest).
""" + _COMMON_DOC


def random_search(build, space, train_loader, val_loader=None, *, n_trials=10, loss_fn=None,
                  epochs=20, monitor="val_loss", mode="auto", patience=3, min_delta=0.0,
                  metrics=None, task=None, seed=0, results_csv=None, verbose=1,
                  fit_kwargs=None):
    runner = _Runner(build, train_loader, val_loader, loss_fn, epochs, monitor, mode, patience,
                     min_delta, metrics, task, seed, verbose, fit_kwargs)
    for config in random_configs(space, n_trials, seed):
        runner.run(config, n_trials)
    return _finish(runner, results_csv)


random_search.__doc__ = """Train ``n_trials`` configurations drawn at random from the space.

    Draws are independent and seeded (``numpy.random.default_rng(seed)``); lists are
    sampled uniformly, ``LogUniform`` log-uniformly.

    n_trials : int, default 10
""" + _COMMON_DOC


def _import_optuna():
    try:
        return importlib.import_module("optuna")
    except ImportError as exc:
        raise ImportError(
            "optuna_search needs Optuna: pip install optuna (grid_search and random_search "
            "need nothing)"
        ) from exc


def _suggest(trial, name, spec):
    if isinstance(spec, LogUniform):
        return trial.suggest_float(name, spec.low, spec.high, log=True)
    if isinstance(spec, Uniform):
        return trial.suggest_float(name, spec.low, spec.high)
    if isinstance(spec, IntUniform):
        return trial.suggest_int(name, spec.low, spec.high, step=spec.step)
    values = spec.values
    if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        return trial.suggest_categorical(name, values)
    # Optuna stores only primitive choices: pick an index, hand back the value
    return values[trial.suggest_categorical(name, list(range(len(values))))]


def optuna_search(build, space, train_loader, val_loader=None, *, n_trials=20, loss_fn=None,
                  epochs=20, monitor="val_loss", mode="auto", patience=3, min_delta=0.0,
                  metrics=None, task=None, seed=0, sampler=None, results_csv=None, verbose=1,
                  fit_kwargs=None):
    optuna = _import_optuna()
    space = _normalise_space(space)
    runner = _Runner(build, train_loader, val_loader, loss_fn, epochs, monitor, mode, patience,
                     min_delta, metrics, task, seed, verbose, fit_kwargs)
    if sampler is None:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(
        direction="minimize" if runner.mode == "min" else "maximize", sampler=sampler)

    def objective(trial):
        config = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        return runner.run(config, n_trials)

    # quiet means quiet: Optuna logs a line per trial unless told otherwise (restored after)
    logging = getattr(optuna, "logging", None)
    previous = logging.get_verbosity() if logging is not None and not verbose else None
    if previous is not None:
        logging.set_verbosity(logging.WARNING)
    try:
        study.optimize(objective, n_trials=n_trials)
    finally:
        if previous is not None:
            logging.set_verbosity(previous)
    return _finish(runner, results_csv, study)


optuna_search.__doc__ = """Search with Optuna (TPE by default): ``pip install optuna``.

    The space maps onto ``trial.suggest_*``: lists to ``suggest_categorical``, ``Uniform``
    and ``LogUniform`` to ``suggest_float`` (``log=True``), ``IntUniform`` to
    ``suggest_int``. Optuna is imported only here; without it this raises an ImportError
    that names ``pip install optuna``.

    n_trials : int, default 20
    sampler : optuna sampler, optional
        Default ``optuna.samplers.TPESampler(seed=seed)``.
""" + _COMMON_DOC


def search(build, space, train_loader, val_loader=None, *, method="random", **kwargs):
    """Dispatch to :func:`grid_search` (``method="grid"``), :func:`random_search`
    (``"random"``) or :func:`optuna_search` (``"optuna"``); keyword arguments pass through.
    """
    methods = {"grid": grid_search, "random": random_search, "optuna": optuna_search}
    if method not in methods:
        raise ValueError(f"search: method must be one of {sorted(methods)}, got {method!r}")
    return methods[method](build, space, train_loader, val_loader, **kwargs)
