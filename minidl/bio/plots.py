r"""Plots for interpretation: sequence logos, attribution maps, mutagenesis heatmaps,
image saliency overlays (matplotlib, an optional extra, imported only when drawing).

- :func:`plot_logo`: letters stacked per position with given heights, e.g. a motif's
  :math:`P_{ib}\, IC_i` (:func:`minidl.bio.motifs.logo_heights`) or an attribution map
  projected on the sequence (:func:`minidl.bio.interpret.at_reference`), where negative
  heights are drawn below the axis;
- :func:`plot_sequence_attributions`: one figure per sequence with a logo per attribution
  method and the in-silico mutagenesis heatmap (position x base);
- :func:`plot_heatmap`: a position x base matrix (diverging colours around 0);
- :func:`plot_image_saliency`: image | saliency | overlay.

Every function writes a PNG atomically and closes its figure.  Without matplotlib they
raise ``ImportError`` with the ``pip install matplotlib`` line (``minidl-bio cells
explain`` draws saliency overlays without it, with :mod:`minidl.train._png`).
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["require_matplotlib", "draw_logo", "plot_logo", "plot_heatmap",
           "plot_sequence_attributions", "plot_image_saliency", "BASE_COLORS"]

# The usual nucleotide colours (A green, C blue, G orange, T red).
BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}


def require_matplotlib():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or an ImportError that
    says how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib, an optional extra of minidl: "
                          "pip install matplotlib") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi=100):
    """PNG bytes of ``fig`` written atomically; the figure is closed."""
    from minidl.io.atomic import atomic_write_bytes

    plt = require_matplotlib()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


_GLYPHS = {}


def _glyph(letter):
    """The letter's outline, normalised to the unit square (cached)."""
    if letter not in _GLYPHS:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath
        from matplotlib.transforms import Affine2D

        path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans",
                                                                    weight="bold"))
        box = path.get_extents()
        unit = Affine2D().translate(-box.x0, -box.y0).scale(1 / box.width, 1 / box.height)
        _GLYPHS[letter] = unit.transform_path(path)
    return _GLYPHS[letter]


def draw_logo(ax, heights, alphabet="ACGT", colors=None, start=0):
    """Draw letters of ``heights`` ``(L, A)`` on ``ax``: per position, positive heights
    stacked upwards from 0 with the tallest on top, negative ones downwards with the most
    negative at the bottom."""
    from matplotlib.patches import PathPatch
    from matplotlib.transforms import Affine2D

    colors = colors or BASE_COLORS
    heights = np.asarray(heights, dtype=np.float64)
    for pos, row in enumerate(heights):
        up, down = 0.0, 0.0
        for b in np.argsort(np.abs(row)):        # small letters nearest the axis
            h = row[b]
            if not np.isfinite(h) or h == 0:
                continue
            y0 = up if h > 0 else down + h
            if h > 0:
                up += h
            else:
                down += h
            place = Affine2D().scale(0.9, abs(h)).translate(start + pos - 0.45, y0)
            ax.add_patch(PathPatch(place.transform_path(_glyph(alphabet[b])), lw=0,
                                   color=colors.get(alphabet[b], "black")))
    ax.set_xlim(start - 0.6, start + len(heights) - 0.4)
    low = min(0.0, np.nanmin(np.where(heights < 0, heights, 0).sum(axis=1), initial=0))
    high = max(0.0, np.nanmax(np.where(heights > 0, heights, 0).sum(axis=1), initial=0))
    pad = 0.05 * (high - low or 1.0)
    ax.set_ylim(low - (pad if low < 0 else 0), high + pad)
    ax.axhline(0, color="black", lw=0.5)


def plot_logo(heights, path, title=None, ylabel="bits", ylim=None, alphabet="ACGT"):
    """A sequence logo PNG of ``heights`` ``(L, A)`` (see :func:`draw_logo`)."""
    plt = require_matplotlib()
    heights = np.asarray(heights, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.35 * len(heights) + 1), 2.2))
    draw_logo(ax, heights, alphabet)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xticks(range(len(heights)))
    ax.set_xticklabels([str(i + 1) for i in range(len(heights))], fontsize=7)
    ax.set_ylabel(ylabel)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def _heatmap(ax, matrix, alphabet, reference=None):
    """Position x base matrix ``(L, A)`` drawn bases-as-rows; colour limits symmetric
    around 0 so that white means "no change"."""
    matrix = np.asarray(matrix, dtype=np.float64)
    limit = np.nanmax(np.abs(matrix)) if np.isfinite(matrix).any() else 1.0
    limit = limit or 1.0
    image = ax.imshow(matrix.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.set_yticks(range(len(alphabet)))
    ax.set_yticklabels(list(alphabet))
    if reference is not None:        # a dot on the reference base of each position
        ref = np.asarray(reference)
        cols = np.flatnonzero(ref.max(axis=0) == 1)
        ax.scatter(cols, ref[:, cols].argmax(axis=0), s=2, c="black", marker=".")
    return image


def plot_heatmap(matrix, path, title=None, reference=None, alphabet="ACGT",
                 label="score change"):
    """A position x base heatmap PNG of ``matrix`` ``(L, A)`` (e.g. in-silico
    mutagenesis); ``reference`` ``(A, L)`` one-hot marks the observed bases."""
    plt = require_matplotlib()
    matrix = np.asarray(matrix, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.06 * len(matrix) + 2), 2.0))
    image = _heatmap(ax, matrix, alphabet, reference)
    fig.colorbar(image, ax=ax, label=label, fraction=0.03, pad=0.01)
    ax.set_xlabel("position (0-based)")
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)


def plot_sequence_attributions(onehot, maps, path, ism=None, title=None,
                               alphabet="ACGT"):
    """One PNG for one sequence: for every ``name -> (A, L)`` attribution map in ``maps``
    a logo of the map at the observed bases (:math:`A \\odot x`, signed), and the in-silico
    mutagenesis heatmap ``ism`` ``(L, A)`` under them when given."""
    plt = require_matplotlib()
    onehot = np.asarray(onehot, dtype=np.float64)
    length = onehot.shape[1]
    rows = len(maps) + (ism is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(max(6.0, 0.07 * length + 2), 1.7 * rows),
                             squeeze=False, sharex=True)
    for ax, (name, values) in zip(axes[:, 0], maps.items()):
        draw_logo(ax, (np.asarray(values) * onehot).T, alphabet)
        ax.set_ylabel(name, fontsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    if ism is not None:
        ax = axes[-1, 0]
        image = _heatmap(ax, ism, alphabet, onehot)
        ax.set_ylabel("ISM", fontsize=8)
        fig.colorbar(image, ax=axes[:, 0].tolist(), fraction=0.02, pad=0.01,
                     label="score change")
    axes[-1, 0].set_xlabel("position (0-based)")
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    _save(fig, path)


def plot_image_saliency(image, saliency, path, title=None, alpha=0.5):
    """image | saliency | overlay, as a PNG.  ``image`` is ``(C, H, W)`` (1 or 3 channels
    shown as they are, others as the channel mean) or ``(H, W)``; ``saliency`` ``(H, W)``
    (e.g. :func:`minidl.bio.interpret.image_saliency`), scaled to its 99.5th percentile."""
    plt = require_matplotlib()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.transpose(1, 2, 0) if image.shape[0] == 3 else image.mean(axis=0)
    low, high = np.percentile(image, [0.5, 99.5])
    shown = np.clip((image - low) / ((high - low) or 1.0), 0, 1)
    sal = np.asarray(saliency, dtype=np.float64)
    sal = np.clip(sal / (np.percentile(sal, 99.5) or 1.0), 0, 1)
    cmap = None if shown.ndim == 3 else "gray"
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    axes[0].imshow(shown, cmap=cmap)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(sal, cmap="inferno")
    axes[1].set_title("saliency", fontsize=9)
    axes[2].imshow(shown, cmap=cmap)
    axes[2].imshow(sal, cmap="inferno", alpha=alpha)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)
