"""Progress display: tqdm when installed, the built-in bar without it, a line per epoch off a
terminal, nothing with verbose=0. tqdm's absence is simulated with sys.modules["tqdm"] = None,
which makes ``import tqdm`` raise ImportError as if it were not installed."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

from minidl import nn, optim
from minidl.train import fit
from minidl.train.progress import TextBar, format_logs, make_progress

EPOCHS = 3


def _run(regression, stream, **kwargs):
    x, y, xv, yv = regression
    model = nn.Linear(1, 1)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    return fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.05), batches,
               [(xv, yv)], epochs=EPOCHS, file=stream,
               metrics=[("mae", lambda t, o: float(np.mean(np.abs(o - t))))], **kwargs)


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)


def test_not_a_terminal_gives_one_summary_line_per_epoch(regression):
    stream = io.StringIO()
    history = _run(regression, stream, verbose=1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == EPOCHS
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {epoch}/{EPOCHS} - loss ")
        for key in ("mae", "val_loss", "val_mae", "lr"):
            assert f" {key} " in line
        assert f"loss {history['loss'][epoch - 1]:.4f}" in line
    assert "\r" not in stream.getvalue()


def test_verbose_0_is_silent(regression, terminal, capsys):
    _run(regression, terminal, verbose=0)
    assert terminal.getvalue() == ""
    _run(regression, None, verbose=0)
    assert capsys.readouterr().out == ""


def test_default_stream_is_stdout(regression, capsys):
    _run(regression, None, verbose=2)
    assert len(capsys.readouterr().out.splitlines()) == EPOCHS


def test_verbose_2_on_a_terminal_is_line_mode(regression, terminal):
    _run(regression, terminal, verbose=2)
    assert len(terminal.getvalue().splitlines()) == EPOCHS
    assert "\r" not in terminal.getvalue()


def test_builtin_bar_without_tqdm(regression, terminal, no_tqdm):
    _run(regression, terminal, verbose=1)
    out = terminal.getvalue()
    finals = [line.split("\r")[-1] for line in out.split("\n") if line]
    assert len(finals) == EPOCHS
    for epoch, line in enumerate(finals, start=1):
        # the completed bar, the batch count, then the epoch summary
        assert re.match(rf"epoch {epoch}/{EPOCHS} \[#{{20}}\] 4/4 - loss \S+ - mae ", line), line
        assert "val_loss" in line
    assert out.count("\r") >= EPOCHS
    assert "batch/s" not in out  # not tqdm


def test_forcing_tqdm_without_it_names_the_package(regression, terminal, no_tqdm):
    with pytest.raises(ImportError, match="pip install tqdm"):
        _run(regression, terminal, verbose=1, progress="tqdm")


def test_tqdm_bar_when_installed(regression, terminal):
    pytest.importorskip("tqdm")
    _run(regression, terminal, verbose=1)
    out = terminal.getvalue()
    assert out.count("batch/s") >= EPOCHS  # tqdm's rate display with our unit
    assert "loss=" in out and "val_loss=" in out  # the postfix
    assert "epoch 3/3" in out


@pytest.mark.parametrize("mode", ["text", "line", "none"])
def test_forced_modes(regression, terminal, mode):
    _run(regression, terminal, verbose=1, progress=mode)
    out = terminal.getvalue()
    assert ("[####" in out) == (mode == "text")
    assert (out.count("\n") == EPOCHS) == (mode in ("text", "line"))
    assert (out == "") == (mode == "none")


def test_text_bar_throttles_and_pads():
    stream = io.StringIO()
    bar = TextBar(total=1000, desc="e", file=stream, width=10, min_interval=3600)
    for _ in range(1000):
        bar.update({"loss": 0.5})
    bar.close({"epoch": 1, "loss": 0.25, "time": 2.0})
    out = stream.getvalue()
    # first batch and last batch drawn, the 998 between skipped; then the summary line
    assert out.count("\r") == 3
    assert out.endswith("e [##########] 1000/1000 - loss 0.2500 - 2.0s\n")
    unknown = io.StringIO()
    bar = TextBar(total=None, desc="e", file=unknown, min_interval=0)
    bar.update()
    assert unknown.getvalue() == "\re 1"


def test_format_logs():
    logs = {"epoch": 2, "loss": 0.123456, "lr": 1e-5, "time": 1.25, "val_loss": float("nan")}
    assert format_logs(logs) == "loss 0.1235 - lr 1.000e-05 - 1.2s - val_loss nan"
    with pytest.raises(ValueError, match="mode"):
        make_progress(3, "x", mode="fancy")
