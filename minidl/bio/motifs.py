r"""Motifs learned by a DNA model's first convolution layer, as PWMs, MEME files and logos.

A first-layer filter of a sequence CNN (:class:`~minidl.bio.models.SequenceCNN`,
:class:`~minidl.bio.models.DanQ`) is a motif detector, but its weights are not
probabilities.  The DeepBind / Basset recipe (Alipanahi et al. 2015; Kelley et al. 2016)
turns it into a position weight matrix from the data: run the filter over many sequences,
keep the windows (filter width :math:`W`) where its activation is high, and count bases:

.. math::

    \text{sites}_f = \{(n, t) : a_{n f t} > \theta \max_{n', t'} a_{n' f t'}\}, \qquad
    P_{f, i, b} = \frac{\sum_{(n, t) \in \text{sites}_f} x_{n, b, t + i} + \epsilon}
                       {\sum_{b'} \big(\sum_{(n, t)} x_{n, b', t + i} + \epsilon\big)}

with :math:`\theta = 0.5` (Basset) or the top-:math:`N` windows instead, and a pseudocount
:math:`\epsilon`.  The activation :math:`a` is read after the layers that directly follow
the convolution in its block (batch norm, activation), before pooling: what the next layer
sees.

A PWM's information content (bits) per position, against a background :math:`q`
(uniform: :math:`q_b = 1/4`, at most 2 bits):

.. math:: IC_i = \sum_b P_{i b} \log_2 \frac{P_{i b}}{q_b}

and a sequence logo draws each base with height :math:`P_{i b} \cdot IC_i`.

Files are MEME minimal motif format, version 4 (read by Tomtom, FIMO, JASPAR tools):
:func:`write_meme` / :func:`format_meme` and :func:`read_meme` / :func:`parse_meme`.
Logos need matplotlib (an optional extra): :func:`save_logo` raises an ``ImportError``
saying ``pip install matplotlib`` when it is missing; everything else here needs NumPy only.

Examples
--------
>>> import numpy as np
>>> pwm = np.array([[0.97, 0.01, 0.01, 0.01], [0.25, 0.25, 0.25, 0.25]])
>>> information_content(pwm).round(2)
array([1.76, 0.  ])
>>> Motif("m1", pwm, nsites=10).consensus()
'AN'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Motif",
    "MemeFile",
    "first_conv1d",
    "first_layer",
    "first_layer_activations",
    "filter_motifs",
    "information_content",
    "logo_heights",
    "background_frequencies",
    "format_meme",
    "write_meme",
    "parse_meme",
    "read_meme",
    "save_logo",
]

ALPHABET = "ACGT"


@dataclass
class Motif:
    """A position probability matrix ``pwm`` of shape ``(W, 4)`` (rows: positions, columns
    A, C, G, T, each row summing to 1), with the number of sites it was counted from."""

    name: str
    pwm: np.ndarray
    nsites: int = 0
    alt_name: str = ""
    evalue: float = 0.0
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.pwm = np.asarray(self.pwm, dtype=np.float64)
        if self.pwm.ndim != 2 or self.pwm.shape[1] != len(ALPHABET):
            raise ValueError(f"motif {self.name}: pwm must be (W, 4), got {self.pwm.shape}")

    @property
    def width(self) -> int:
        return self.pwm.shape[0]

    def information_content(self, background=None) -> np.ndarray:
        """Bits per position (see :func:`information_content`)."""
        return information_content(self.pwm, background)

    def consensus(self, min_bits=0.5) -> str:
        """The most probable base per position, ``N`` where the position carries less
        than ``min_bits`` of information (upper case; a quick name, not IUPAC codes)."""
        ic = self.information_content()
        best = np.array(list(ALPHABET))[self.pwm.argmax(axis=1)]
        return "".join(np.where(ic >= min_bits, best, "N"))


# ------------------------------------------------------------------ the first layer


def first_conv1d(model):
    """The first :class:`~minidl.nn.Conv1d` of ``model`` (in registration order, which
    for the bio models is the order data flows through): the motif-detector layer."""
    from minidl import nn

    for module in model.modules():
        if isinstance(module, nn.Conv1d):
            return module
    raise ValueError(f"{type(model).__name__}: no Conv1d layer, so no first-layer motifs")


def first_layer(model):
    """The first Conv1d and the layers right after it in its ``Sequential`` that map
    position to position: batch norm and activations (``[conv, bn, relu]`` for the bio
    models), stopping at pooling or anything else.  A Conv1d that is not inside a
    ``Sequential`` comes alone."""
    from minidl import nn
    from minidl.nn import activation

    conv = first_conv1d(model)
    pointwise = (nn.BatchNorm1d,) + tuple(
        getattr(activation, name) for name in ("ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid",
                                               "Tanh", "Softplus", "SiLU", "Hardtanh")
        if hasattr(activation, name))
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            where = [i for i, child in enumerate(children) if child is conv]
            if where:
                layers = [conv]
                for child in children[where[0] + 1:]:
                    if not isinstance(child, pointwise):
                        break
                    layers.append(child)
                return layers
    return [conv]


def first_layer_activations(model, x, batch_size=256):
    """First-layer activations ``(N, F, L_out)`` (float32) of one-hot ``x`` ``(N, 4, L)``,
    in evaluation mode (see :func:`first_layer`)."""
    layers = first_layer(model)
    was_training = model.training
    model.eval()
    try:
        out = [act for _, act in _batched_activations(layers, x, batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, layers[0].out_channels, 0),
                                                    np.float32)


def _window_index(conv, out_length):
    """``(left_pad, index (L_out, W))``: output position ``t`` of ``conv`` reads input
    positions ``t s - p + i d`` (``i = 0..W-1``), offset here by the left padding."""
    (k,), (s,), (d,) = conv.kernel_size, conv.stride, conv.dilation
    if conv.padding == "same":
        left = d * (k - 1) // 2          # NOTE: PyTorch's split: the extra column goes right
    elif conv.padding == "valid":
        left = 0
    else:
        left = conv.padding[0]
    index = np.arange(out_length)[:, None] * s + np.arange(k)[None, :] * d
    return left, index


def _batched_activations(layers, x, batch_size):
    """``(x batch, activations)`` pairs, ``batch_size`` sequences at a time."""
    import minidl

    with minidl.no_grad():
        for start in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)
            h = minidl.from_numpy(xb)
            for layer in layers:
                h = layer(h)
            yield xb, h.numpy()


def filter_motifs(model, x, threshold=0.5, top_n=None, pseudocount=0.5, batch_size=256,
                  prefix="filter"):
    r"""One PWM per first-layer filter from the windows of ``x`` that activate it most.

    Parameters
    ----------
    model : Module
        Its first Conv1d is read (with the batch norm / activation right after it).
    x : array ``(N, 4, L)``
        One-hot sequences (ACGT); zero (padding) and 0.25 (``N``) columns count as such.
    threshold : float
        Keep windows with activation :math:`> \theta \cdot` (the filter's maximum over
        all of ``x``) (Basset: 0.5).  Ignored when ``top_n`` is given.
    top_n : int, optional
        Keep each filter's ``top_n`` highest-activation windows instead (only positive
        ones; ties at the cut broken by data order).
    pseudocount : float
        Added to every base count of every position before normalising.
    prefix : str
        Motif names are ``f"{prefix}{index}"``.

    Returns
    -------
    list of :class:`Motif`, one per filter in filter order (a filter whose activation is
    never positive has ``nsites = 0`` and a uniform matrix).  ``info`` holds the filter's
    ``index`` and ``max_activation``.

    Notes
    -----
    Two passes over ``x`` (the first finds each filter's maximum, or its ``top_n``-th
    largest activation; the second counts, recomputing the same activations), so memory
    stays at one batch of activations.
    Counting is one contraction per batch over the unfolded windows,
    :math:`C_{f b i} = \sum_{n, t} [a_{n f t} > \tau_f]\, x_{n, b, t s - p + i d}`.
    """
    layers = first_layer(model)
    conv = layers[0]
    if conv.in_channels != len(ALPHABET):
        raise ValueError(f"filter_motifs: the first Conv1d reads {conv.in_channels} "
                         f"channels, not one-hot DNA (4)")
    x = np.asarray(x, dtype=np.float32)
    filters, width = conv.out_channels, conv.kernel_size[0]
    was_training = model.training
    model.eval()
    try:
        # Pass 1: the per-filter cut-off tau_f.
        if top_n is not None:
            best = np.full((filters, 0), -np.inf, np.float32)
            for _, act in _batched_activations(layers, x, batch_size):
                flat = act.transpose(1, 0, 2).reshape(filters, -1)
                best = np.concatenate([best, flat], axis=1)
                if best.shape[1] > top_n:
                    best = -np.partition(-best, top_n - 1, axis=1)[:, :top_n]
            maximum = best.max(axis=1) if best.size else np.full(filters, -np.inf)
            cutoff = best.min(axis=1) if best.shape[1] else np.full(filters, np.inf)
            # Windows at exactly the cut-off still to take, so that ties give top_n sites.
            ties_left = top_n - (best > cutoff[:, None]).sum(axis=1)
            strict = False
        else:
            maximum = np.full(filters, -np.inf, np.float32)
            for _, act in _batched_activations(layers, x, batch_size):
                maximum = np.maximum(maximum, act.max(axis=(0, 2)) if act.size else maximum)
            cutoff = threshold * maximum
            strict = True
        # A filter that never fires positively has no sites at all.
        cutoff = np.where(maximum > 0, cutoff, np.inf).astype(np.float32)

        # Pass 2: count bases in the selected windows.
        counts = np.zeros((filters, len(ALPHABET), width))
        nsites = np.zeros(filters, np.int64)
        for xb, act in _batched_activations(layers, x, batch_size):
            left, index = _window_index(conv, act.shape[-1])
            right = max(0, int(index.max()) - left - (xb.shape[-1] - 1)) if index.size else 0
            padded = np.pad(xb, ((0, 0), (0, 0), (left, right)))
            windows = padded[:, :, index]                          # (n, 4, L_out, W)
            c = cutoff[None, :, None]
            if strict:
                mask = act > c
            else:
                mask = (act > c) & (act > 0)
                tied = ((act == c) & (act > 0)).transpose(1, 0, 2).reshape(filters, -1)
                rank = np.cumsum(tied, axis=1)                    # data order within batch
                take = tied & (rank <= ties_left[:, None])
                ties_left = ties_left - take.sum(axis=1)
                mask |= take.reshape(filters, act.shape[0], -1).transpose(1, 0, 2)
            nsites += mask.sum(axis=(0, 2))
            counts += np.einsum("nft,nbtw->fbw", mask.astype(np.float32), windows,
                                optimize=True)
    finally:
        model.train(was_training)

    motifs = []
    for f in range(filters):
        pwm = (counts[f] + pseudocount).T
        total = pwm.sum(axis=1, keepdims=True)
        # A position with nothing counted (no sites, and no pseudocount) is uniform.
        pwm = np.divide(pwm, total, out=np.full_like(pwm, 1.0 / len(ALPHABET)),
                        where=total > 0)
        motifs.append(Motif(f"{prefix}{f}", pwm, nsites=int(nsites[f]),
                            info={"index": f, "max_activation": float(maximum[f])}))
    for m in motifs:
        m.alt_name = m.consensus()
    return motifs


# ------------------------------------------------------------------ information


def information_content(pwm, background=None):
    r"""Bits per position: :math:`IC_i = \sum_b P_{ib} \log_2 (P_{ib} / q_b)` (the
    relative entropy to the background :math:`q`, uniform by default; :math:`0 \log 0 = 0`).
    """
    pwm = np.asarray(pwm, dtype=np.float64)
    q = np.full(pwm.shape[-1], 1.0 / pwm.shape[-1]) if background is None else \
        np.asarray(background, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(pwm > 0, pwm * np.log2(pwm / q), 0.0)
    return terms.sum(axis=-1)


def logo_heights(pwm, background=None):
    r"""Letter heights of a sequence logo (Schneider & Stephens 1990):
    :math:`h_{ib} = P_{ib} \cdot IC_i`, shape ``(W, 4)``."""
    pwm = np.asarray(pwm, dtype=np.float64)
    return pwm * information_content(pwm, background)[:, None]


def background_frequencies(x):
    """Base frequencies ``(4,)`` of one-hot ``x`` ``(N, 4, L)`` (padding ignored)."""
    totals = np.asarray(x, dtype=np.float64).sum(axis=(0, 2))
    if totals.sum() == 0:
        return np.full(len(ALPHABET), 1.0 / len(ALPHABET))
    return totals / totals.sum()


# ------------------------------------------------------------------ MEME format


@dataclass
class MemeFile:
    """A parsed MEME motif file."""

    motifs: list
    version: str = "4"
    alphabet: str = ALPHABET
    strands: str = "+ -"
    background: np.ndarray = field(default_factory=lambda: np.full(4, 0.25))


def format_meme(motifs, background=None, strands="+ -"):
    """MEME minimal motif format (version 4) text for ``motifs``:

    .. code-block:: text

        MEME version 4

        ALPHABET= ACGT

        strands: + -

        Background letter frequencies
        A 0.250000 C 0.250000 G 0.250000 T 0.250000

        MOTIF filter0 TATAAA
        letter-probability matrix: alength= 4 w= 6 nsites= 120 E= 0
         0.010000 0.010000 0.010000 0.970000
         ...
    """
    q = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    lines = ["MEME version 4", "", f"ALPHABET= {ALPHABET}", "", f"strands: {strands}", "",
             "Background letter frequencies",
             " ".join(f"{b} {v:.6f}" for b, v in zip(ALPHABET, q)), ""]
    for m in motifs:
        name = m.name if not m.alt_name else f"{m.name} {m.alt_name}"
        if any(c.isspace() for c in m.name) or not m.name:
            raise ValueError(f"MEME: motif name {m.name!r} must be one word")
        lines.append(f"MOTIF {name}")
        evalue = "0" if not m.evalue else f"{m.evalue:.3g}"
        lines.append(f"letter-probability matrix: alength= {len(ALPHABET)} w= {m.width} "
                     f"nsites= {int(m.nsites)} E= {evalue}")
        lines += [" " + " ".join(f"{p:.6f}" for p in row) for row in m.pwm]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_meme(path, motifs, background=None, strands="+ -"):
    """Write ``motifs`` as a MEME file (atomically)."""
    from minidl.io.atomic import atomic_write_text

    atomic_write_text(path, format_meme(motifs, background, strands))


_KEY_VALUE = re.compile(r"(\w+)\s*=\s*(\S+)")


def parse_meme(text, source="MEME text"):
    """Parse MEME minimal motif format (version 4, DNA) into a :class:`MemeFile`.

    Reads the header lines it knows (``MEME version``, ``ALPHABET=``, ``strands:``,
    ``Background letter frequencies``), and for every ``MOTIF name [alt]`` its
    ``letter-probability matrix:`` (``alength``, ``w``, ``nsites``, ``E``) and ``w`` rows;
    other lines (``URL``, comments) are skipped.
    """
    lines = text.splitlines()
    out = MemeFile(motifs=[])
    seen_version = False
    i = 0

    def error(msg):
        return ValueError(f"{source}, line {i + 1}: {msg}")

    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("MEME version"):
            out.version = line.split()[2] if len(line.split()) > 2 else ""
            seen_version = True
        elif line.startswith("ALPHABET"):
            out.alphabet = line.split("=", 1)[1].strip() if "=" in line else line.split()[1]
            if out.alphabet != ALPHABET:
                raise error(f"alphabet {out.alphabet!r} is not supported (only {ALPHABET})")
        elif line.startswith("strands:"):
            out.strands = line.split(":", 1)[1].strip()
        elif line.startswith("Background letter frequencies"):
            values = {}
            while len(values) < len(ALPHABET) and i + 1 < len(lines):
                i += 1
                tokens = lines[i].split()
                values.update(zip(tokens[0::2], tokens[1::2]))
            try:
                out.background = np.array([float(values[b]) for b in ALPHABET])
            except (KeyError, ValueError):
                raise error(f"bad background frequencies {values}") from None
        elif line.startswith("MOTIF"):
            parts = line.split()
            if len(parts) < 2:
                raise error("MOTIF without a name")
            name, alt = parts[1], " ".join(parts[2:])
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("letter-probability"):
                if lines[i].strip().startswith("MOTIF"):
                    raise error(f"motif {name}: no letter-probability matrix")
                i += 1
            if i == len(lines):
                raise error(f"motif {name}: no letter-probability matrix")
            keys = dict(_KEY_VALUE.findall(lines[i].split(":", 1)[1]))
            try:
                width = int(keys["w"])
                alength = int(keys.get("alength", len(ALPHABET)))
                nsites = int(float(keys.get("nsites", 0)))
                evalue = float(keys.get("E", 0))
            except (KeyError, ValueError):
                raise error(f"motif {name}: bad matrix header {lines[i].strip()!r}") from None
            if alength != len(ALPHABET):
                raise error(f"motif {name}: alength {alength}, expected {len(ALPHABET)}")
            rows = []
            while len(rows) < width:
                i += 1
                if i == len(lines):
                    raise error(f"motif {name}: file ends after {len(rows)} of {width} rows")
                if not lines[i].strip():
                    continue
                try:
                    row = [float(v) for v in lines[i].split()]
                except ValueError:
                    raise error(f"motif {name}: bad matrix row {lines[i].strip()!r}") from None
                if len(row) != alength:
                    raise error(f"motif {name}: row has {len(row)} values, expected {alength}")
                rows.append(row)
            out.motifs.append(Motif(name, np.array(rows), nsites=nsites, alt_name=alt,
                                    evalue=evalue))
        i += 1
    if not seen_version:
        raise ValueError(f"{source}: not a MEME motif file (no 'MEME version' line)")
    return out


def read_meme(path):
    """Read a MEME motif file (see :func:`parse_meme`)."""
    return parse_meme(Path(path).read_text(), source=str(path))


# ------------------------------------------------------------------ logos


def save_logo(motif, path, title=None, background=None):
    """Draw ``motif`` (a :class:`Motif` or a ``(W, 4)`` PWM) as an information-content
    sequence logo PNG (needs matplotlib: ``pip install matplotlib``)."""
    from minidl.bio import plots

    pwm = motif.pwm if isinstance(motif, Motif) else np.asarray(motif, dtype=np.float64)
    if title is None and isinstance(motif, Motif):
        title = f"{motif.name}  {motif.alt_name}  (nsites {motif.nsites}, " \
                f"{motif.information_content(background).sum():.1f} bits)"
    plots.plot_logo(logo_heights(pwm, background), path, title=title, ylabel="bits",
                    ylim=(0, 2))
