"""``History``: what happened in each epoch of a training run, as a table.

One record per epoch, a dict such as::

    {"epoch": 3, "loss": 0.31, "accuracy": 0.88, "val_loss": 0.35, "val_accuracy": 0.86,
     "lr": 0.001, "time": 1.24}

``loss`` is the training loss, averaged over the epoch's samples (each batch's mean loss
weighted by its number of samples); ``val_*`` are measured on the validation loader after
the epoch; ``lr`` is the learning rate of the first parameter group during the epoch
(``lr_1``, ``lr_2``... for further groups); ``time`` the epoch's wall-clock seconds.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import os

from minidl.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["History"]

_NOT_PLOTTED = ("epoch", "time")


def _number(text):
    """A CSV cell back to int/float (empty -> nan)."""
    if text == "":
        return float("nan")
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


class History:
    """Per-epoch records of a training run.

    Attributes
    ----------
    records : list of dict
        One dict per epoch, in order.

    Examples
    --------
    >>> h = History()
    >>> h.append({"epoch": 1, "loss": 0.9, "val_loss": 1.0})
    >>> h.append({"epoch": 2, "loss": 0.5, "val_loss": 0.7})
    >>> h["val_loss"]
    [1.0, 0.7]
    >>> h.best("val_loss")
    (2, 0.7)
    """

    def __init__(self, records=None):
        self.records = [dict(r) for r in (records or [])]

    # ------------------------------------------------------------------ access

    def append(self, record):
        """Add one epoch's record (a dict of str -> number)."""
        self.records.append(dict(record))

    def __len__(self):
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def keys(self):
        """Column names, in order of first appearance."""
        seen = {}
        for record in self.records:
            for key in record:
                seen.setdefault(key, None)
        return list(seen)

    def __getitem__(self, key):
        """The column ``key``: one value per epoch (``nan`` where an epoch lacks it)."""
        if isinstance(key, int):
            return self.records[key]
        if key not in self.keys():
            raise KeyError(f"History has no column {key!r}; columns: {self.keys()}")
        return [r.get(key, float("nan")) for r in self.records]

    def __contains__(self, key):
        return key in self.keys()

    def best(self, monitor="val_loss", mode="min"):
        """``(epoch, value)`` of the best epoch for ``monitor``; NaN epochs are skipped.

        ``mode="min"`` picks the smallest value, ``"max"`` the largest; ties go to the
        earliest epoch.
        """
        if mode not in ("min", "max"):
            raise ValueError(f"History.best: mode must be 'min' or 'max', got {mode!r}")
        best = None
        for record in self.records:
            value = record.get(monitor)
            if value is None or not math.isfinite(value):
                continue
            if best is None or (value < best[1] if mode == "min" else value > best[1]):
                best = (record.get("epoch"), value)
        if best is None:
            raise KeyError(f"History.best: no finite value of {monitor!r} in any epoch")
        return best

    def to_dict(self):
        """``{"records": [...]}``: plain data, for checkpoints."""
        return {"records": [dict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data):
        return cls(data.get("records", []))

    def __repr__(self):
        return f"History({len(self)} epochs, columns {self.keys()})"

    # ------------------------------------------------------------------ CSV

    def to_csv(self, path):
        """Write the table as CSV (header line, one row per epoch), atomically.

        Values are written with ``repr`` so floats read back exactly; a missing value is
        an empty cell. Returns ``path``.
        """
        buffer = io.StringIO()
        columns = self.keys()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for record in self.records:
            writer.writerow([repr(record[c]) if isinstance(record.get(c), float)
                             else record.get(c, "") for c in columns])
        atomic_write_text(path, buffer.getvalue())
        return path

    @classmethod
    def from_csv(cls, path):
        """Read a file written by :meth:`to_csv`."""
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return cls()
        header = rows[0]
        records = []
        for row in rows[1:]:
            records.append({k: _number(v) for k, v in zip(header, row) if v != ""})
        return cls(records)

    # ------------------------------------------------------------------ plots

    def _panels(self, keys):
        """``[(title, [(label, epochs, values), ...]), ...]``: one panel per quantity,
        with its training and validation curves together."""
        columns = [c for c in self.keys() if c not in _NOT_PLOTTED]
        bases = []
        for column in columns:
            base = column[4:] if column.startswith("val_") else column
            if base.startswith("lr_"):
                base = "lr"
            if base not in bases:
                bases.append(base)
        if keys is None:
            # a constant learning rate says nothing: plot lr only when it changes
            chosen = [b for b in bases
                      if b != "lr" or len({r.get("lr") for r in self.records}) > 1]
        else:
            keys = [keys] if isinstance(keys, str) else list(keys)
            unknown = [k for k in keys if k not in bases]
            if unknown:
                raise KeyError(f"History.plot: no columns for {unknown}; available: {bases}")
            chosen = keys
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(self.records)]
        panels = []
        for base in chosen:
            if base == "lr":
                names = [c for c in columns if c == "lr" or c.startswith("lr_")]
            else:
                names = [c for c in (base, "val_" + base) if c in columns]
            series = []
            for name in names:
                values = [float(r.get(name, float("nan"))) for r in self.records]
                label = ("train" if name == base and base != "lr"
                         else "val" if name.startswith("val_") else name)
                series.append((label, epochs, values))
            panels.append((base, series))
        return panels

    def plot(self, path, keys=None, backend="auto"):
        """Draw the learning curves to a PNG file, one panel per quantity.

        Each panel has the training curve and, when there is one, the validation curve
        (``loss`` with ``val_loss``, ``accuracy`` with ``val_accuracy``...), against the
        epoch. The learning rate gets a panel when it changes during the run.

        Parameters
        ----------
        path : str or os.PathLike
            The PNG file (written atomically).
        keys : str or list of str, optional
            Quantities to plot (``["loss", "auroc"]``); by default all.
        backend : {"auto", "matplotlib", "builtin"}
            ``"auto"`` uses matplotlib when it is installed, else the built-in writer
            (``minidl.train._png``: NumPy and zlib, a plain 3x5-pixel font, no
            anti-aliasing). ``"matplotlib"`` without matplotlib raises an ImportError that
            names ``pip install matplotlib``.

        Returns
        -------
        str
            ``path``.
        """
        if backend not in ("auto", "matplotlib", "builtin"):
            raise ValueError(
                f"History.plot: backend must be 'auto', 'matplotlib' or 'builtin', got "
                f"{backend!r}"
            )
        if not self.records:
            raise ValueError("History.plot: the history is empty (no epoch recorded)")
        panels = self._panels(keys)
        figure_module = None
        if backend != "builtin":
            try:
                # the package itself first: with sys.modules["matplotlib"] = None (how tests
                # and users block it) this fails even if a submodule is cached
                importlib.import_module("matplotlib")
                figure_module = importlib.import_module("matplotlib.figure")
                agg = importlib.import_module("matplotlib.backends.backend_agg")
            except ImportError as exc:
                if backend == "matplotlib":
                    raise ImportError(
                        "History.plot(backend='matplotlib') needs matplotlib: pip install "
                        "matplotlib (or pip install \"minidl[plot]\"); backend='builtin' "
                        "needs nothing"
                    ) from exc
        if figure_module is None:
            from minidl.train._png import COLORS, render_panels

            colored = [(title, [(label, xs, ys, COLORS[i % len(COLORS)])
                                for i, (label, xs, ys) in enumerate(series)])
                       for title, series in panels]
            atomic_write_bytes(path, render_panels(colored))
            return os.fspath(path)

        # Figure + Agg canvas directly, not pyplot: no global figure state, no GUI backend
        figure = figure_module.Figure(figsize=(4.2 * len(panels), 3.4), dpi=100)
        agg.FigureCanvasAgg(figure)
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, series) in zip(axes, panels):
            for label, xs, ys in series:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
            ax.set_title(title)
            ax.set_xlabel("epoch")
            if title == "lr" and all(v > 0 for _, _, ys in series for v in ys
                                     if math.isfinite(v)):
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        atomic_write_bytes(path, buffer.getvalue())
        return os.fspath(path)
