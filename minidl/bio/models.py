r"""Models for biological sequences.

DNA
---
:class:`SequenceCNN` (DeepBind / Basset style): blocks of ``Conv1d - BatchNorm1d - ReLU -
MaxPool1d`` read the one-hot ``(N, 4, L)`` sequence; the first layer's filters are motif
detectors (position weight matrices, see the interpretation tools).  A *global* max and
mean over positions makes the model work for any sequence length:

.. math::

    h = [\max_t f(x)_{:, t};\; \tfrac{1}{L'} \textstyle\sum_t f(x)_{:, t}]

followed by a small dense head.  :class:`DanQ` puts a bidirectional LSTM after the
convolutions (motif grammar: order and spacing of motifs) before the global pooling.

:class:`SequenceCNN` can also take a *wide* branch (``kmers=(3, 4, 5, 6)``): the k-mer
spectrum of the sequence (:class:`KmerSpectrum`, frequencies of every k-mer), standardised
by batch normalisation and read by one linear layer whose logits are *added* to the CNN's
("wide and deep", Cheng et al. 2016).  Composition that the convolutions see only through
a few filters (e.g. CpG and GC-skew in plant promoters) is then one linear step away.


:class:`KmerLinear` is the classic alternative: a linear model (logistic regression) on
:class:`PositionalKmerCounts`, the counts of every short word in each of a few stretches of
the sequence.  Fitted with an L2 penalty by :mod:`minidl.bio.kmer_model` (not by SGD with
the CNN: trained jointly, the wide branch overfits sooner, see above), it makes a strong
second opinion whose probabilities ``minidl-bio dna train`` blends with the CNN's.

All emit one logit for two classes (use ``BCEWithLogitsLoss``, probability = sigmoid)
and ``num_classes`` logits otherwise (``CrossEntropyLoss``, probabilities = softmax).

Every model keeps the arguments it was built with in ``model.config`` so that
:func:`build_model` rebuilds it from a JSON file, which together with the safetensors
weights is all a saved model needs.
"""

from __future__ import annotations

from minidl import nn

__all__ = ["SequenceCNN", "DanQ", "KmerSpectrum", "PositionalKmerCounts", "KmerLinear",
           "build_model", "MODELS", "output_units"]


def output_units(num_classes: int) -> int:
    """Logits a classifier emits: 1 for two classes (sigmoid), ``num_classes`` otherwise."""
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    return 1 if num_classes == 2 else num_classes


def _conv_blocks(in_channels, channels, kernel_sizes, pools, dropout):
    if not (len(channels) == len(kernel_sizes) == len(pools)):
        raise ValueError(
            f"channels, kernel_sizes and pools must have the same length, got "
            f"{len(channels)}, {len(kernel_sizes)}, {len(pools)}"
        )
    layers = []
    for out, k, p in zip(channels, kernel_sizes, pools):
        layers += [nn.Conv1d(in_channels, out, k, padding=k // 2), nn.BatchNorm1d(out), nn.ReLU()]
        if p > 1:
            layers.append(nn.MaxPool1d(p, ceil_mode=True))
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_channels = out
    return nn.Sequential(*layers), in_channels


def _window_codes(tokens, known, k, A, xp):
    """Every length-``k`` window of ``(N, L)`` token rows as one integer in base ``A``
    (first base most significant) and whether all its bases are known: two ``(N, L-k+1)``
    arrays, or ``None`` when the sequences are shorter than ``k``."""
    windows = tokens.shape[1] - k + 1
    if windows <= 0:
        return None
    code = xp.zeros((tokens.shape[0], windows), dtype=xp.int64)
    ok = xp.ones((tokens.shape[0], windows), dtype=bool)
    for j in range(k):
        code = code * A + tokens[:, j:j + windows]
        ok &= known[:, j:j + windows]
    return code, ok


class KmerSpectrum(nn.Module):
    r"""k-mer frequency spectrum of one-hot sequences: ``(N, A, L)`` -> ``(N, sum_k A^k)``.

    For each ``k`` and each of the :math:`A^k` words :math:`w`,

    .. math::

        f_w(x) = \frac{\#\{t : x_{t..t+k-1} = w\}}{\#\{t : x_{t..t+k-1}\ \text{all known}\}}

    over the windows of length ``k`` whose bases are all known (a one-hot column; an
    unknown base such as ``N``, encoded as a uniform column, spoils the ``k`` windows
    through it).  Frequencies rather than counts make the features comparable across
    sequence lengths.  Words are indexed in base ``A`` with the first base most
    significant (``AAA, AAC, ..., TTT`` for DNA).

    The spectrum is piecewise constant in ``x``, so no gradient flows back to the input
    (attribution methods that need one see the convolutional branch only; in-silico
    mutagenesis sees both).
    """

    def __init__(self, ks=(3, 4, 5, 6), alphabet_size=4):
        super().__init__()
        ks = [int(k) for k in ks]
        if not ks or min(ks) < 1:
            raise ValueError(f"k-mer sizes must be positive integers, got {ks}")
        self.ks = ks
        self.alphabet_size = int(alphabet_size)
        self.num_features = sum(self.alphabet_size ** k for k in ks)

    def forward(self, x):
        from minidl import Tensor
        from minidl.backend import array_module

        a = x.data if isinstance(x, Tensor) else x
        if a.ndim != 3 or a.shape[1] != self.alphabet_size:
            raise ValueError(f"KmerSpectrum expects (N, {self.alphabet_size}, L) one-hot "
                             f"input, got shape {tuple(a.shape)}")
        xp = array_module(a)
        n, A, _ = a.shape
        tokens = a.argmax(axis=1)
        known = a.max(axis=1) == 1           # a one-hot column, not a uniform 'N' column
        feats = []
        for k in self.ks:
            windows = _window_codes(tokens, known, k, A, xp)
            if windows is None:
                feats.append(xp.zeros((n, A ** k), dtype=a.dtype))
                continue
            code, ok = windows
            # one bincount for the whole batch: sequence i's words live at i*A^k + code
            flat = (xp.arange(n)[:, None] * A ** k + code)[ok]
            counts = xp.bincount(flat, minlength=n * A ** k).reshape(n, A ** k)
            total = xp.maximum(ok.sum(axis=1, keepdims=True), 1)
            feats.append((counts / total).astype(a.dtype))
        return Tensor(xp.concatenate(feats, axis=1))

    def extra_repr(self):
        return f"ks={self.ks}, alphabet_size={self.alphabet_size}"


class PositionalKmerCounts(nn.Module):
    r"""Counts of every k-mer in each of ``bins`` equal stretches of one-hot sequences,
    as :math:`\log(1 + \text{count})`: ``(N, A, L)`` -> ``(N, bins \cdot \sum_k A^k)``.

    The window of length ``k`` starting at position ``t`` (of the ``W = L - k + 1``
    windows) belongs to bin :math:`b(t) = \lfloor t \cdot \text{bins} / W \rfloor`, and

    .. math::

        f_{k, b, w}(x) = \log\bigl(1 + \#\{t : b(t) = b,\ x_{t..t+k-1} = w\}\bigr).

    Windows through an unknown base (``N``: a uniform column) or through padding (a zero
    column) are not counted.  ``bins = 1`` is the plain k-mer spectrum (as counts); more
    bins say roughly *where* a word occurs, which matters for windows aligned on a site
    (a promoter's core elements sit at fixed distances from the transcription start).
    The logarithm tames repeats (a poly-A stretch counts ``AAAA`` dozens of times).
    Feature order: for each ``k`` (ascending), for each bin, the :math:`A^k` words in base
    ``A`` with the first base most significant.  Piecewise constant in ``x``: no gradient.
    """

    def __init__(self, ks=(2, 3, 4), bins=10, alphabet_size=4):
        super().__init__()
        ks = [int(k) for k in ks]
        if not ks or min(ks) < 1:
            raise ValueError(f"k-mer sizes must be positive integers, got {ks}")
        if int(bins) < 1:
            raise ValueError(f"bins must be a positive integer, got {bins}")
        self.ks = ks
        self.bins = int(bins)
        self.alphabet_size = int(alphabet_size)
        self.num_features = self.bins * sum(self.alphabet_size ** k for k in ks)

    def counts(self, a):
        """The raw counts ``(N, num_features)`` (int64) of a NumPy/CuPy one-hot batch."""
        from minidl.backend import array_module

        xp = array_module(a)
        n, A, _ = a.shape
        tokens = a.argmax(axis=1)
        known = a.max(axis=1) == 1
        out = []
        for k in self.ks:
            words = A ** k
            found = _window_codes(tokens, known, k, A, xp)
            if found is None:
                out.append(xp.zeros((n, self.bins * words), dtype=xp.int64))
                continue
            code, ok = found
            windows = code.shape[1]
            bin_of = (xp.arange(windows) * self.bins) // windows
            width = self.bins * words
            flat = (xp.arange(n)[:, None] * width + bin_of[None, :] * words + code)[ok]
            out.append(xp.bincount(flat, minlength=n * width).reshape(n, width))
        return xp.concatenate(out, axis=1)

    def forward(self, x):
        from minidl import Tensor
        from minidl.backend import array_module

        a = x.data if isinstance(x, Tensor) else x
        if a.ndim != 3 or a.shape[1] != self.alphabet_size:
            raise ValueError(f"PositionalKmerCounts expects (N, {self.alphabet_size}, L) "
                             f"one-hot input, got shape {tuple(a.shape)}")
        xp = array_module(a)
        return Tensor(xp.log1p(self.counts(a)).astype(a.dtype))

    def extra_repr(self):
        return f"ks={self.ks}, bins={self.bins}, alphabet_size={self.alphabet_size}"


class KmerLinear(nn.Module):
    r"""Logistic regression on positional k-mer counts.

    .. math::

        z = W \, f(x) + b, \qquad f = \text{PositionalKmerCounts}(k_s, \text{bins})

    with one logit for two classes and ``num_classes`` otherwise.  Any input length works
    (the bins stretch with it).  Fit it with :func:`minidl.bio.kmer_model.fit_kmer_linear`
    (L2-penalised, penalty chosen on validation); it has no gradient with respect to its
    input, so gradient attributions do not see it (in-silico mutagenesis does).
    """

    def __init__(self, num_classes=2, in_channels=4, ks=(2, 3, 4), bins=10):
        super().__init__()
        self.config = dict(model="kmer", num_classes=num_classes, in_channels=in_channels,
                           ks=[int(k) for k in ks], bins=int(bins))
        self.counts = PositionalKmerCounts(ks, bins, in_channels)
        self.linear = nn.Linear(self.counts.num_features, output_units(num_classes))

    def forward(self, x):
        logits = self.linear(self.counts(x))
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


def _global_pool(h):
    """``(N, C, L)`` -> ``(N, 2C)``: max and mean over positions (any length)."""
    from minidl import cat

    return cat([h.amax(dim=-1), h.mean(dim=-1)], dim=1)


class SequenceCNN(nn.Module):
    """DeepBind/Basset-style CNN for one-hot sequences of any length.

    Parameters
    ----------
    num_classes : int
    in_channels : int
        Alphabet size (4 for DNA).
    channels, kernel_sizes, pools : sequences of int
        One convolution block each (``padding = k // 2``; pooling with ``ceil_mode`` so
        short sequences still work; 1 = no pooling).
    hidden : int
        Units of the dense layer after global pooling.
    dropout : float
        After each block and in the head.
    pool_bins : int
        Besides the global max and mean, also max-pool the positions into this many
        equal bins (adaptive pooling, so any length still works) and feed them to the
        head: coarse *where* on top of *whether*, which matters for windows aligned on
        a site (promoters around the TSS: on the shipped set, forward strand, 16 bins gave
        test accuracy 0.954 / 0.957 for seeds 0 / 1 against 0.946 / 0.953 with 8 bins;
        ``minidl-bio dna train`` uses 16).  0 = global pooling only.
    kmers : sequence of int
        k-mer sizes of the wide branch (:class:`KmerSpectrum` -> BatchNorm1d -> Dropout
        -> Linear, logits added to the CNN's); empty = CNN only.
    """

    def __init__(self, num_classes=2, in_channels=4, channels=(128, 128, 128),
                 kernel_sizes=(15, 7, 5), pools=(4, 4, 1), hidden=64, dropout=0.2,
                 pool_bins=8, kmers=()):
        super().__init__()
        self.config = dict(model="cnn", num_classes=num_classes, in_channels=in_channels,
                           channels=list(channels), kernel_sizes=list(kernel_sizes),
                           pools=list(pools), hidden=hidden, dropout=dropout,
                           pool_bins=pool_bins, kmers=[int(k) for k in kmers])
        self.features, width = _conv_blocks(in_channels, channels, kernel_sizes, pools,
                                            dropout)
        self.bins = nn.AdaptiveMaxPool1d(pool_bins) if pool_bins else None
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear((2 + pool_bins) * width, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, output_units(num_classes)),
        )
        self.wide = None
        if kmers:
            spectrum = KmerSpectrum(kmers, in_channels)
            self.wide = nn.Sequential(
                spectrum, nn.BatchNorm1d(spectrum.num_features, affine=False),
                nn.Dropout(dropout), nn.Linear(spectrum.num_features, output_units(num_classes)),
            )

    def forward(self, x):
        h = self.features(x)
        pooled = _global_pool(h)
        if self.bins is not None:
            from minidl import cat

            pooled = cat([pooled, self.bins(h).flatten(1)], dim=1)
        logits = self.head(pooled)
        if self.wide is not None:
            logits = logits + self.wide(x)
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


class DanQ(nn.Module):
    """DanQ-style CNN + bidirectional LSTM for one-hot sequences of any length.

    Convolution blocks find motifs; a BiLSTM over the pooled positions reads their order
    and spacing; global max+mean pooling over its outputs and a dense head classify.
    """

    def __init__(self, num_classes=2, in_channels=4, channels=(128,), kernel_sizes=(19,),
                 pools=(8,), lstm_hidden=64, hidden=64, dropout=0.2):
        super().__init__()
        self.config = dict(model="danq", num_classes=num_classes, in_channels=in_channels,
                           channels=list(channels), kernel_sizes=list(kernel_sizes),
                           pools=list(pools), lstm_hidden=lstm_hidden, hidden=hidden,
                           dropout=dropout)
        self.features, width = _conv_blocks(in_channels, channels, kernel_sizes, pools,
                                            dropout)
        self.lstm = nn.LSTM(width, lstm_hidden, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(4 * lstm_hidden, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, output_units(num_classes)),
        )

    def forward(self, x):
        h = self.features(x)                          # (N, C, L')
        h, _ = self.lstm(h.transpose(1, 2))           # (N, L', 2H)
        logits = self.head(_global_pool(h.transpose(1, 2)))
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


MODELS = {"cnn": SequenceCNN, "danq": DanQ, "kmer": KmerLinear}


def build_model(config: dict):
    """Rebuild a model from its ``config`` (as saved in ``config.json``)."""
    config = dict(config)
    kind = config.pop("model", None)
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; expected one of {', '.join(sorted(MODELS))}")
    try:
        return MODELS[kind](**config)
    except TypeError as err:
        raise ValueError(f"bad config for model {kind!r}: {err}") from None
