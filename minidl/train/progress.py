"""Progress display for training: tqdm, a built-in text bar, one line per epoch, or nothing.

Which one :func:`make_progress` picks (``mode="auto"``):

- ``verbose=0``: nothing at all;
- ``verbose=2``, or output that is not a terminal (a log file, a pipe, a notebook): no bar,
  one summary line per epoch (``epoch 3/10 - loss 0.3012 - val_loss 0.2811 - 1.2s``);
- ``verbose=1`` on a terminal: a bar per epoch that shows the running loss, from ``tqdm``
  when it is installed and from :class:`TextBar` (a few lines of plain Python) otherwise;
  the bar ends with the epoch's summary.

``mode`` forces a choice (``"tqdm"``, ``"text"``, ``"line"``, ``"none"``); ``"tqdm"`` without
tqdm installed is an ImportError that names ``pip install tqdm``.
"""

from __future__ import annotations

import importlib
import math
import sys
import time

__all__ = ["make_progress", "format_logs", "TextBar"]

MODES = ("auto", "tqdm", "text", "line", "none")


def _format_value(value):
    if isinstance(value, float):
        if value != value or math.isinf(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def format_logs(logs, skip=("epoch",)):
    """``"loss 0.3012 - val_loss 0.2811 - lr 1.000e-04 - 1.2s"`` from an epoch's logs."""
    parts = []
    for key, value in logs.items():
        if key in skip:
            continue
        if key == "time":
            parts.append(f"{value:.1f}s")
        else:
            parts.append(f"{key} {_format_value(value)}")
    return " - ".join(parts)


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def _import_tqdm():
    """tqdm's class, or None when it is not installed."""
    try:
        module = importlib.import_module("tqdm")
    except ImportError:
        return None
    return getattr(module, "tqdm", None)


class _Silent:
    """No output."""

    def update(self, postfix=None):
        pass

    def close(self, logs=None):
        pass


class _Line:
    """One summary line per epoch, written when the epoch ends."""

    def __init__(self, desc, file):
        self.desc = desc
        self.file = file

    def update(self, postfix=None):
        pass

    def close(self, logs=None):
        line = self.desc if not logs else f"{self.desc} - {format_logs(logs)}"
        self.file.write(line + "\n")
        self.file.flush()


class TextBar:
    r"""A progress bar written with ``\r`` to a terminal; no dependency.

    ``epoch 3/10 [#########...........]  9/20 loss 0.3012``

    Redraws at most every ``min_interval`` seconds (and always at the last batch), so a fast
    loop does not spend its time printing.
    """

    def __init__(self, total, desc, file, width=20, min_interval=0.1):
        self.total = total
        self.desc = desc
        self.file = file
        self.width = width
        self.min_interval = min_interval
        self.count = 0
        self._last_draw = -math.inf
        self._last_len = 0

    def _render(self, postfix):
        if self.total:
            filled = int(self.width * min(self.count, self.total) / self.total)
            bar = "[" + "#" * filled + "." * (self.width - filled) + "]"
            digits = len(str(self.total))
            text = f"{self.desc} {bar} {self.count:>{digits}}/{self.total}"
        else:
            text = f"{self.desc} {self.count}"
        if postfix:
            text += " " + " ".join(f"{k} {_format_value(v)}" for k, v in postfix.items())
        return text

    def _write(self, text, end=""):
        # pad with spaces so a shorter line fully covers the previous one
        padding = " " * max(0, self._last_len - len(text))
        self.file.write("\r" + text + padding + end)
        self.file.flush()
        self._last_len = len(text)

    def update(self, postfix=None):
        self.count += 1
        now = time.monotonic()
        if now - self._last_draw >= self.min_interval or self.count == self.total:
            self._last_draw = now
            self._write(self._render(postfix))

    def close(self, logs=None):
        text = self._render(None)
        if logs:
            text += " - " + format_logs(logs)
        self._write(text, end="\n")


class _Tqdm:
    """A tqdm bar; the summary goes into its postfix before it closes."""

    def __init__(self, tqdm_class, total, desc, file):
        self.bar = tqdm_class(total=total, desc=desc, file=file, leave=True, unit="batch",
                              dynamic_ncols=True)

    def update(self, postfix=None):
        if postfix:
            self.bar.set_postfix({k: _format_value(v) for k, v in postfix.items()},
                                 refresh=False)
        self.bar.update(1)

    def close(self, logs=None):
        if logs:
            shown = {k: (f"{v:.1f}s" if k == "time" else _format_value(v))
                     for k, v in logs.items() if k != "epoch"}
            self.bar.set_postfix(shown, refresh=False)
        self.bar.close()


def make_progress(total, desc, verbose=1, mode="auto", file=None):
    """A progress display for one epoch: ``update(postfix)`` per batch, ``close(logs)``.

    Parameters
    ----------
    total : int or None
        Number of batches (None when the loader has no length).
    desc : str
        Label, e.g. ``"epoch 3/10"``.
    verbose : {0, 1, 2}
        0 silent, 1 a bar on a terminal (a line per epoch elsewhere), 2 a line per epoch.
    mode : {"auto", "tqdm", "text", "line", "none"}
        Force a kind of display (see the module docstring).
    file : text stream, optional
        Where to write; ``sys.stdout`` (looked up at call time) by default.
    """
    if mode not in MODES:
        raise ValueError(f"progress: mode must be one of {MODES}, got {mode!r}")
    if file is None:
        file = sys.stdout
    if mode == "none" or verbose == 0:
        return _Silent()
    if mode == "line" or (mode == "auto" and (verbose >= 2 or not _is_terminal(file))):
        return _Line(desc, file)
    if mode == "text":
        return TextBar(total, desc, file)
    tqdm_class = _import_tqdm()
    if tqdm_class is None:
        if mode == "tqdm":
            raise ImportError(
                "progress='tqdm' needs the tqdm package: pip install tqdm "
                "(or pip install \"minidl[progress]\"); progress='text' needs nothing"
            )
        return TextBar(total, desc, file)
    return _Tqdm(tqdm_class, total, desc, file)
