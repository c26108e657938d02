"""A tiny line-plot rasteriser and PNG encoder (NumPy and zlib only).

Used by :meth:`minidl.train.History.plot` when matplotlib is not installed: the learning
curves still become a PNG file, plainer than matplotlib's (a 3x5 pixel upper-case font,
no anti-aliasing). The PNG is 8-bit RGB, one IDAT chunk, filter type 0 on every row: the
simplest file every reader accepts (PNG specification, ISO/IEC 15948).
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

__all__ = ["encode_png", "Canvas", "render_panels"]

# 3x5 glyphs, rows top to bottom; "#" is ink.
_FONT_ROWS = {
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###",
    "3": "### ..# .## ..# ###", "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###",
    "6": "### #.. ### #.# ###", "7": "### ..# ..# .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ###", "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.",
    "C": ".## #.. #.. #.. .##", "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###",
    "F": "### #.. ##. #.. #..", "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#",
    "I": "### .#. .#. .#. ###", "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#",
    "L": "#.. #.. #.. #.. ###", "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#",
    "O": ".#. #.# #.# #.# .#.", "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ### .##",
    "R": "##. #.# ##. #.# #.#", "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.",
    "U": "#.# #.# #.# #.# ###", "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#",
    "X": "#.# #.# .#. #.# #.#", "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    ".": "... ... ... ... .#.", "-": "... ... ### ... ...", "_": "... ... ... ... ###",
    "+": "... .#. ### .#. ...", ":": "... .#. ... .#. ...", " ": "... ... ... ... ...",
    "/": "..# ..# .#. #.. #..", "(": ".#. #.. #.. #.. .#.", ")": ".#. ..# ..# ..# .#.",
    "%": "#.# ..# .#. #.. #.#", "?": "### ..# .## ... .#.",
}
_FONT = {
    char: np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)
    for char, rows in _FONT_ROWS.items()
}

#: line colours (matplotlib's first "tab10" colours), RGB
COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
          (140, 86, 75)]
BLACK = (0, 0, 0)
GREY = (200, 200, 200)


def _chunk(kind, payload):
    # length, type, data, CRC-32 of type + data (PNG spec section 5.3)
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def encode_png(image):
    """Encode an ``(H, W, 3)`` uint8 RGB array as PNG bytes."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"encode_png: expected an (H, W, 3) array, got shape {image.shape}")
    height, width, _ = image.shape
    # each scanline is preceded by its filter-type byte (0 = None)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)],
                         axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + _chunk(b"IEND", b""))


class Canvas:
    """An RGB image with a few drawing primitives; (x, y) with y growing downwards."""

    def __init__(self, width, height, background=(255, 255, 255)):
        self.image = np.empty((height, width, 3), np.uint8)
        self.image[...] = background
        self.width, self.height = width, height

    def _put(self, xs, ys, color):
        inside = (xs >= 0) & (xs < self.width) & (ys >= 0) & (ys < self.height)
        self.image[ys[inside], xs[inside]] = color

    def line(self, x0, y0, x1, y1, color, thickness=1):
        """A straight segment, drawn by sampling one point per pixel of its longer side."""
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.rint(np.linspace(x0, x1, steps)).astype(np.int64)
        ys = np.rint(np.linspace(y0, y1, steps)).astype(np.int64)
        for dx in range(thickness):
            for dy in range(thickness):
                self._put(xs + dx, ys + dy, color)

    def fill_rect(self, x0, y0, x1, y1, color):
        x0, x1 = max(0, int(x0)), min(self.width, int(x1))
        y0, y1 = max(0, int(y0)), min(self.height, int(y1))
        if x0 < x1 and y0 < y1:
            self.image[y0:y1, x0:x1] = color

    def rect(self, x0, y0, x1, y1, color):
        self.line(x0, y0, x1, y0, color)
        self.line(x0, y1, x1, y1, color)
        self.line(x0, y0, x0, y1, color)
        self.line(x1, y0, x1, y1, color)

    def text(self, x, y, string, color=BLACK, scale=2):
        """Upper-case text from the 3x5 font; returns the x after the last glyph."""
        for char in str(string).upper():
            glyph = _FONT.get(char, _FONT["?"])
            ys, xs = np.nonzero(np.kron(glyph, np.ones((scale, scale), dtype=bool)))
            self._put(xs + int(x), ys + int(y), color)
            x += 4 * scale
        return x

    @staticmethod
    def text_width(string, scale=2):
        return 4 * scale * len(str(string))


def _short(value):
    if value == 0:
        return "0"
    if abs(value) < 1e-2 or abs(value) >= 1e4:
        return f"{value:.1e}"
    return f"{value:.3g}"


def _draw_panel(canvas, x0, y0, width, height, title, series):
    left, right, top, bottom = x0 + 70, x0 + width - 12, y0 + 44, y0 + height - 30
    canvas.text(x0 + (width - Canvas.text_width(title)) // 2, y0 + 8, title)
    canvas.rect(left, top, right, bottom, BLACK)

    xs_all = [x for _, xs, _, _ in series for x in xs]
    ys_all = [y for _, _, ys, _ in series for y in ys if math.isfinite(y)]
    if not xs_all or not ys_all:
        canvas.text(left + 10, (top + bottom) // 2, "no finite values")
        return
    x_min, x_max = min(xs_all), max(xs_all)
    y_min, y_max = min(ys_all), max(ys_all)
    if y_max == y_min:  # a flat curve: give it a band to sit in
        pad = abs(y_max) * 0.1 or 0.5
        y_min, y_max = y_min - pad, y_max + pad
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1

    def px(x):
        return left + 4 + (x - x_min) / (x_max - x_min) * (right - left - 8)

    def py(y):
        return bottom - 4 - (y - y_min) / (y_max - y_min) * (bottom - top - 8)

    # three horizontal grid lines with their values
    for fraction in (0.0, 0.5, 1.0):
        value = y_min + fraction * (y_max - y_min)
        y = py(value)
        canvas.line(left + 1, y, right - 1, y, GREY)
        label = _short(value)
        canvas.text(left - 6 - Canvas.text_width(label), int(y) - 5, label)
    for value in sorted({x_min, x_max}):
        label = _short(value)
        canvas.text(int(px(value)) - Canvas.text_width(label) // 2, bottom + 8, label)

    for _, xs, ys, color in series:
        points = [(px(x), py(y)) for x, y in zip(xs, ys) if math.isfinite(y)]
        for (ax, ay), (bx, by) in zip(points, points[1:]):
            canvas.line(ax, ay, bx, by, color, thickness=2)
        if len(points) == 1:
            canvas.fill_rect(points[0][0] - 2, points[0][1] - 2, points[0][0] + 3,
                             points[0][1] + 3, color)
    # legend in one row between the title and the frame, where no curve can cover it
    lx = left
    for label, _, _, color in series:
        canvas.fill_rect(lx, y0 + 28, lx + 12, y0 + 34, color)
        lx = canvas.text(lx + 16, y0 + 26, label) + 12


def render_panels(panels, panel_width=360, panel_height=260):
    """Draw panels side by side; ``panels`` is a list of ``(title, series)`` with
    ``series`` a list of ``(label, xs, ys, rgb)``. Returns PNG bytes."""
    canvas = Canvas(panel_width * max(1, len(panels)), panel_height)
    for i, (title, series) in enumerate(panels):
        _draw_panel(canvas, i * panel_width, 0, panel_width, panel_height, title, series)
    return encode_png(canvas.image)
