"""History: columns, CSV (atomic, exact round trip), learning curves as PNG with matplotlib and
with the built-in writer. matplotlib's absence is simulated with sys.modules["matplotlib"] =
None. Built-in PNGs are decoded here with zlib and the PNG specification (chunk CRCs,
filter bytes), not with the writer's own code."""

from __future__ import annotations

import csv
import math
import os
import struct
import sys
import zlib

import numpy as np
import pytest

from minidl import nn, optim
from minidl.train import History, fit
from minidl.train._png import COLORS


def _history():
    return History([
        {"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + 0.04 * e, "val_loss": 1.2 / e + 0.01 * e,
         "val_accuracy": 0.5 + 0.03 * e, "lr": 0.1 * 0.5 ** (e // 3), "time": 0.01 * e}
        for e in range(1, 9)
    ])


def decode_png(data):
    """(H, W, 3) uint8 from an 8-bit RGB PNG whose rows all use filter 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        payload = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        chunks.setdefault(kind, []).append(payload)
        pos += 12 + length
    width, height, depth, color, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert (depth, color) == (8, 2)
    raw = np.frombuffer(zlib.decompress(b"".join(chunks[b"IDAT"])), np.uint8)
    rows = raw.reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    assert b"IEND" in chunks
    return rows[:, 1:].reshape(height, width, 3)


def _png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])  # width, height from IHDR


def _has_color(image, rgb):
    return bool((image == np.array(rgb, np.uint8)).all(axis=2).any())


def test_columns_and_best():
    h = _history()
    assert len(h) == 8
    assert h.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert h["epoch"] == list(range(1, 9))
    assert h[0]["loss"] == 1.0
    val = [1.2 / e + 0.01 * e for e in range(1, 9)]
    best = int(np.argmin(val))
    assert h.best("val_loss") == (best + 1, val[best])
    assert h.best("val_accuracy", "max") == (8, h["val_accuracy"][-1])
    assert "loss" in h and "nope" not in h
    with pytest.raises(KeyError, match="nope"):
        h["nope"]
    with pytest.raises(KeyError):
        History([{"epoch": 1, "loss": float("nan")}]).best("loss")


def test_csv_round_trip_is_exact(tmp_path):
    h = _history()
    h.append({"epoch": 9, "loss": float("nan"), "extra": 3})  # a NaN and a new column
    path = tmp_path / "sub" / "history.csv"
    h.to_csv(path)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == h.keys()
    assert len(rows) == 10
    assert float(rows[1][1]) == 1.0 and float(rows[3][1]) == 1.0 / 3  # repr: all digits
    back = History.from_csv(path)
    for key in h.keys():
        for a, b in zip(back[key], h[key]):
            assert (a == b) or (math.isnan(a) and math.isnan(b)), key
    assert back[-1]["extra"] == 3 and "accuracy" not in back[-1]  # empty cell: absent
    assert os.listdir(path.parent) == ["history.csv"]


def test_csv_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "h.csv"
    path.write_text("old content\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _history().to_csv(path)
    assert path.read_text() == "old content\n"  # the old file is intact
    assert os.listdir(tmp_path) == ["h.csv"]  # and the temporary file is gone


def test_fit_history_to_csv(tmp_path, regression):
    x, y, xv, yv = regression
    model = nn.Linear(1, 1)
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), [(x, y)],
                  [(xv, yv)], epochs=3, verbose=0)
    back = History.from_csv(history.to_csv(tmp_path / "h.csv"))
    assert back["val_loss"] == history["val_loss"]
    assert back["epoch"] == [1, 2, 3]


def test_plot_builtin_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    path = tmp_path / "curves.png"
    assert _history().plot(path) == os.fspath(path)
    image = decode_png(path.read_bytes())
    # panels loss, accuracy, lr (the lr changes here), 360 x 260 pixels each
    assert image.shape == (260, 3 * 360, 3)
    loss_panel = image[:, :360]
    assert _has_color(loss_panel, COLORS[0]) and _has_color(loss_panel, COLORS[1])  # train, val
    lr_panel = image[:, 720:]
    assert _has_color(lr_panel, COLORS[0]) and not _has_color(lr_panel, COLORS[1])
    assert (image == 255).all(axis=2).mean() > 0.5  # mostly background
    assert os.listdir(tmp_path) == ["curves.png"]


def test_plot_builtin_curve_goes_down_for_a_falling_loss(tmp_path):
    h = History([{"epoch": e, "loss": 10.0 - e} for e in range(1, 6)])
    h.plot(tmp_path / "p.png", backend="builtin")
    image = decode_png((tmp_path / "p.png").read_bytes())
    ys, xs = np.nonzero((image == np.array(COLORS[0], np.uint8)).all(axis=2))
    curve = ys > 40  # below the legend row
    left = ys[curve][xs[curve] < xs[curve].min() + 10].mean()
    right = ys[curve][xs[curve] > xs[curve].max() - 10].mean()
    assert left < right  # high on the left (large loss), low on the right (image y points down)


def test_plot_keys_and_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    h = _history()
    h.plot(tmp_path / "a.png", keys="accuracy")
    assert _png_size(tmp_path / "a.png") == (360, 260)
    with pytest.raises(KeyError, match="auroc"):
        h.plot(tmp_path / "b.png", keys=["auroc"])
    with pytest.raises(ImportError, match="pip install matplotlib"):
        h.plot(tmp_path / "c.png", backend="matplotlib")
    with pytest.raises(ValueError, match="empty"):
        History().plot(tmp_path / "d.png")
    with pytest.raises(ValueError, match="backend"):
        h.plot(tmp_path / "e.png", backend="svg")
    # NaN values and a single epoch still draw
    History([{"epoch": 1, "loss": float("nan"), "val_loss": 2.0}]).plot(tmp_path / "f.png")
    decode_png((tmp_path / "f.png").read_bytes())


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    path = tmp_path / "curves.png"
    _history().plot(path)
    # matplotlib's figure: 4.2 x 3.4 inches per panel at 100 dpi, three panels
    assert _png_size(path) == (1260, 340)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (340, 1260)
    # the built-in PNG reads back in matplotlib too: an independent decoder of our writer
    _history().plot(tmp_path / "builtin.png", backend="builtin")
    ours = matplotlib.image.imread(tmp_path / "builtin.png")
    np.testing.assert_array_equal(
        (ours[..., :3] * 255).round().astype(np.uint8),
        decode_png((tmp_path / "builtin.png").read_bytes()))
