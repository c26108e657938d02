r"""A generative adversarial network for DNA sequences, and how to judge what it makes.

A **generator** :math:`G` maps noise :math:`z \sim \mathcal N(0, I)` to a ``(4, L)`` matrix
of per-position base probabilities (a softmax over A, C, G, T at every position); a
**discriminator** :math:`D` (a 1-D CNN) scores one-hot sequences (Killoran et al. 2017,
*Generating and designing DNA with deep generative models*; Gupta & Zou 2019, *Feedback
GAN for DNA*).

Training recipe
---------------
Both papers train a Wasserstein GAN with a gradient penalty (WGAN-GP) and show the
discriminator the generator's probabilities.  The penalty
:math:`(\lVert\nabla_x D(x)\rVert - 1)^2` needs the gradient *of a gradient*, and minidl's
autograd is first order, so this module uses a recipe that needs first-order gradients
only:

* **Spectral normalisation** of every weight of :math:`D` (Miyato et al. 2018;
  :func:`minidl.nn.utils.spectral_norm`): each layer's weight is divided by its largest
  singular value (one power-iteration step per training step), which makes :math:`D`
  1-Lipschitz, the constraint the gradient penalty imposes softly.
* The **hinge loss** (Lim & Ye 2017; Miyato et al. 2018):

  .. math::

      L_D = \mathbb E_x[\max(0, 1 - D(x))] + \mathbb E_z[\max(0, 1 + D(\tilde x))],
      \qquad L_G = -\mathbb E_z[D(\tilde x)].

* **Straight-through samples** :math:`\tilde x`: :math:`D` sees a one-hot sequence drawn
  from :math:`G(z)`'s probabilities, and the gradient flows back as if it had seen the
  probabilities (Bengio et al. 2013).  Shown the probabilities themselves, :math:`D` tells
  soft from one-hot columns at once and :math:`G` collapses (here to ``AAAA...`` within
  about 100 steps on the toy set of the tests).
* **Adam** with learning rate :math:`10^{-4}` and :math:`\beta = (0, 0.9)` for both
  networks, one discriminator step per generator step, batch 32.
* A **moving average of the generator's weights** (decay 0.99; Yazici et al. 2019) is
  what :func:`train_gan` returns: on the promoters the raw generator's k-mer distance
  jumped between 0.12 and 0.65 from one check to the next, the average's does not.

Why not the WGAN with weight clipping of Arjovsky et al. (2017), the other first-order
recipe?  Measured on the shipped *Arabidopsis* promoters (1 thread, same generator,
straight-through samples and weight averaging, 136 s each): clipping (RMSprop
:math:`5 \cdot 10^{-5}`, 5 critic steps per generator step, clip 0.01) reached the same
k-mer distance (3-mer Jensen-Shannon 0.109 vs 0.106) but a worse GC content (mean 0.399
vs 0.369, real 0.358) and a much lower promoter classifier score (0.29 vs 0.78; real
held-out promoters 0.86, random sequences 0.05; scored by the CNN shipped at the time,
trained with reverse-complement augmentation).  On the planted-motif toy set both
reached the same 3-mer distance in 500 generator steps (0.124).

Known limit: with this recipe the generator learns composition, k-mer content and
position-specific preferences well, but uses :math:`z` little (most of the variety of
its samples comes from the per-position draws), so long motifs at varying positions are
reproduced only partly (on the toy set of the tests, 7 % of the samples carry the full
planted 6-mer after 300 steps, against 100 % of the real ones).  On the promoters
(``minidl-bio dna gan``, 12 epochs, 338 s on one thread) the samples match the GC content
(0.358, real 0.358, random 0.501) and have a third (3-mers: Jensen-Shannon 0.083, random
0.242, held-out real 0.008) to a half (6-mers: 0.195, 0.372, 0.057) of the k-mer distance
of random sequences; the shipped classifier calls 53 % of them promoters (held-out real
89 %, random 2 %), a figure that moves between runs (the 136 s trial above: 84 %).

Evaluation
----------
:func:`evaluate_samples` compares generated sequences with real ones by their k-mer
spectra (:func:`kmer_spectrum_distance`), their GC content (:func:`gc_content`,
:func:`wasserstein_1d`) and, given a trained classifier, its mean score for the positive
class; uniform random sequences of the same number and length are the floor, held-out
real sequences (when given) the ceiling.
"""

from __future__ import annotations

import math
import time

import numpy as np

import minidl
from minidl import nn
from minidl.nn import functional as F

__all__ = [
    "Generator", "Discriminator", "train_gan", "sample", "sample_probabilities",
    "kmer_counts", "kmer_spectrum_distance", "gc_content", "wasserstein_1d",
    "random_sequences", "evaluate_samples", "classifier_scores", "save_generator",
    "load_generator",
]

FORMAT = "minidl-bio-gan"

BASES = "ACGT"


# --------------------------------------------------------------------------- networks


def _upsample2(x):
    """Nearest-neighbour upsampling by 2 along the last axis: ``(N, C, L) -> (N, C, 2L)``."""
    n, c, length = x.shape
    return x.unsqueeze(-1).expand(n, c, length, 2).reshape(n, c, 2 * length)


class _UpBlock(nn.Module):
    r"""A residual upsampling block: :math:`y = U(x) + W_2 * \mathrm{relu}(W_1 *
    \mathrm{relu}(U(x)))`, :math:`U` = nearest-neighbour upsampling by 2, :math:`*` a
    same-length convolution (as in the ResNet generators of WGAN-GP and SN-GAN)."""

    def __init__(self, channels, kernel_size):
        super().__init__()
        pad = kernel_size // 2
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, padding=pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, padding=pad)

    def forward(self, x):
        x = _upsample2(x)
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Generator(nn.Module):
    r"""Noise ``(N, z_dim)`` to per-position base probabilities ``(N, 4, length)``.

    .. math::

        h_0 = \mathrm{reshape}(W z + b) \in \mathbb R^{C \times L_0},\quad
        h_{i+1} = \mathrm{UpBlock}(h_i),\quad
        p = \mathrm{softmax}_{\text{bases}}\big(W_{\text{out}} * \mathrm{relu}(h_n)\big)

    with :math:`L_0 = \lceil L / 2^n \rceil`; the last map is centre-cropped to ``length``.
    A fully connected first layer lets the generator place features anywhere along the
    sequence; the upsampling convolutions add local structure (motifs, k-mer content).

    Parameters
    ----------
    length : int
        Sequence length ``L``.
    z_dim : int
        Noise dimension.
    channels : int
        Feature maps in every block.
    n_upsample : int, optional
        Upsampling blocks (default: as many as keep :math:`L_0 \ge 8`, at most 3).
    kernel_size : int
        Convolution width in the blocks.

    Examples
    --------
    >>> import minidl
    >>> _ = minidl.manual_seed(0)
    >>> g = Generator(length=30, z_dim=8, channels=16)
    >>> p = g(minidl.randn(2, 8))
    >>> p.shape
    (2, 4, 30)
    >>> bool(abs(p.sum(dim=1).detach().numpy() - 1).max() < 1e-5)
    True
    """

    def __init__(self, length, z_dim=64, channels=64, n_upsample=None, kernel_size=5):
        super().__init__()
        if length < 1:
            raise ValueError(f"Generator: length must be positive, got {length}")
        if n_upsample is None:
            n_upsample = max(0, min(3, int(math.floor(math.log2(max(length, 1) / 8)))))
        self.length, self.z_dim, self.channels = int(length), int(z_dim), int(channels)
        self.n_upsample, self.kernel_size = int(n_upsample), int(kernel_size)
        self.start_length = int(math.ceil(length / 2 ** n_upsample))
        self.fc = nn.Linear(z_dim, channels * self.start_length)
        self.blocks = nn.ModuleList([_UpBlock(channels, kernel_size) for _ in range(n_upsample)])
        self.out = nn.Conv1d(channels, 4, 1)

    @property
    def config(self):
        """The constructor arguments (``Generator(**g.config)`` rebuilds it)."""
        return {"length": self.length, "z_dim": self.z_dim, "channels": self.channels,
                "n_upsample": self.n_upsample, "kernel_size": self.kernel_size}

    def logits(self, z):
        """Unnormalised base scores ``(N, 4, length)``."""
        h = self.fc(z).reshape(z.shape[0], self.channels, self.start_length)
        for block in self.blocks:
            h = block(h)
        extra = h.shape[-1] - self.length
        if extra:  # centre crop, as the one-hot encoder crops long sequences
            h = h[:, :, extra // 2: extra // 2 + self.length]
        return self.out(F.relu(h))

    def forward(self, z):
        return F.softmax(self.logits(z), dim=1)


class Discriminator(nn.Module):
    r"""A 1-D CNN scoring one-hot (or probability) sequences ``(N, 4, length) -> (N,)``.

    .. math::

        h_1 = \phi(W_1 * x),\quad h_2 = \phi(W_2 *_{2} h_1),\quad
        h_3 = \phi(W_3 *_{2} h_2),\quad D(x) = w^\top \mathrm{vec}(h_3) + b

    :math:`\phi` = leaky ReLU (slope 0.2), :math:`*_2` a convolution with stride 2 (width 4,
    padding 1).  The last layer sees every position (not a global pool), so the
    discriminator can use where a motif sits, as in promoters aligned on the
    transcription start site.  With ``spectral=True`` (the default) every weight is
    spectrally normalised, so :math:`D` is 1-Lipschitz (see the module docstring).
    """

    def __init__(self, length, channels=64, kernel_size=5, spectral=True):
        super().__init__()
        self.length, self.channels = int(length), int(channels)
        self.kernel_size, self.spectral = int(kernel_size), bool(spectral)
        wrap = nn.utils.spectral_norm if spectral else (lambda m: m)
        self.conv1 = wrap(nn.Conv1d(4, channels, kernel_size, padding=kernel_size // 2))
        self.conv2 = wrap(nn.Conv1d(channels, channels, 4, stride=2, padding=1))
        self.conv3 = wrap(nn.Conv1d(channels, 2 * channels, 4, stride=2, padding=1))
        reduced = (length // 2) // 2  # stride 2, width 4, padding 1 maps L to floor(L/2)
        self.fc = wrap(nn.Linear(2 * channels * reduced, 1))

    @property
    def config(self):
        return {"length": self.length, "channels": self.channels,
                "kernel_size": self.kernel_size, "spectral": self.spectral}

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.leaky_relu(self.conv2(h), 0.2)
        h = F.leaky_relu(self.conv3(h), 0.2)
        return self.fc(h.reshape(h.shape[0], -1)).reshape(-1)


# --------------------------------------------------------------------------- training


def _noise(rng, n, z_dim):
    return minidl.from_numpy(rng.standard_normal((n, z_dim)).astype(np.float32))


def _draw_onehot(probs, rng):
    """One base per position drawn from ``probs`` ``(N, 4, L)`` (ndarray), as one-hot."""
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random((probs.shape[0], 1, probs.shape[2]))
    # the first base whose cumulative probability exceeds the uniform draw; the minimum
    # guards against a cumulative sum just under 1 from rounding
    index = np.minimum((cumulative < draws).sum(axis=1), 3)
    onehot = np.zeros(probs.shape, dtype=np.float32)
    np.put_along_axis(onehot, index[:, None, :], 1.0, axis=1)
    return onehot


def _fake_input(generator, z, rng):
    r"""What the discriminator sees of generated sequences: a **straight-through** sample.

    The forward value is a one-hot sequence drawn from the generator's probabilities
    :math:`p` (one base per position, independently), so the discriminator compares
    one-hot with one-hot; the gradient is that of :math:`p` (Bengio et al. 2013):
    :math:`x = \mathrm{onehot} + p - \mathrm{stop\_gradient}(p)`.
    """
    probs = generator(z)
    hard = minidl.from_numpy(_draw_onehot(probs.detach().numpy(), rng))
    if not probs.requires_grad:  # the discriminator's step: no gradient needed
        return hard
    return hard + (probs - probs.detach())


def _update_average(averaged, model, decay):
    r"""Exponential moving average of the weights: :math:`\bar\theta \leftarrow d\,\bar\theta
    + (1 - d)\,\theta`."""
    for avg, param in zip(averaged.parameters(), model.parameters()):
        avg.data[...] = decay * avg.data + (1.0 - decay) * param.data


def train_gan(real_onehot, epochs=12, batch_size=32, lr=1e-4, betas=(0.0, 0.9),
              z_dim=64, channels=64, n_critic=1, ema=0.99, seed=0, max_steps=None,
              callback=None, monitor_k=4, monitor_n=256, verbose=False):
    r"""Train a :class:`Generator` and a :class:`Discriminator` on real one-hot sequences.

    The recipe (hinge loss, spectrally normalised discriminator, straight-through samples,
    Adam, weight averaging) and why it was chosen are in the module docstring.  One
    *step* is ``n_critic`` discriminator updates followed by one generator update; an
    *epoch* is one pass of the discriminator over the real data (the last incomplete
    batch is dropped: a tiny batch gives a noisy discriminator step).

    Parameters
    ----------
    real_onehot : ndarray
        ``(N, 4, L)`` one-hot real sequences (float; columns of padding or ``N`` are fine).
    epochs : int
    batch_size : int
    lr : float
        Adam learning rate of both networks.
    betas : tuple of float
        Adam's :math:`\beta_1, \beta_2`; :math:`\beta_1 = 0` (no momentum) as in SN-GAN and
        SAGAN: momentum on a moving target makes the two players overshoot.
    z_dim, channels : int
        Generator noise size; feature maps of both networks.
    n_critic : int
        Discriminator updates per generator update.
    ema : float or None
        Decay of the moving average of the generator's weights that is returned (and
        monitored); None or 0 returns the last weights instead.
    seed : int
        Seeds weights, noise, shuffling and the base draws: the same seed gives the same
        networks.
    max_steps : int, optional
        Stop after this many generator updates (quick runs).
    callback : callable, optional
        ``callback(record)`` after every epoch, with that epoch's history record.
    monitor_k, monitor_n : int
        Each epoch's record holds ``kmer_js``, the Jensen-Shannon distance between the
        ``monitor_k``-mer spectra of ``monitor_n`` generated sequences and of the real
        data: a cheap measure of progress that, unlike GAN losses, falls as the samples
        improve.
    verbose : bool
        Print one line per epoch.

    Returns
    -------
    generator : Generator
        The averaged generator (with ``ema``), in eval mode.
    discriminator : Discriminator
    history : minidl.train.History
        One record per epoch: ``epoch``, ``steps``, ``d_loss``, ``g_loss``, ``d_real``,
        ``d_fake`` (mean discriminator scores), ``kmer_js``, ``seconds``.
    """
    import copy

    from minidl.train import History

    real = np.ascontiguousarray(np.asarray(real_onehot, dtype=np.float32))
    if real.ndim != 3 or real.shape[1] != 4:
        raise ValueError(f"train_gan: expected one-hot sequences (N, 4, L), got shape "
                         f"{real.shape}")
    if len(real) < 2:
        raise ValueError("train_gan: need at least two real sequences")
    if n_critic < 1:
        raise ValueError(f"train_gan: n_critic must be >= 1, got {n_critic}")
    n, _, length = real.shape
    batch_size = max(1, min(batch_size, n))
    minidl.manual_seed(seed)
    generator = Generator(length, z_dim=z_dim, channels=channels)
    discriminator = Discriminator(length, channels=channels)
    averaged = copy.deepcopy(generator) if ema else generator
    opt_g = minidl.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = minidl.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    d_params = list(discriminator.parameters())
    rng = np.random.default_rng(seed)
    reference = kmer_counts(real, monitor_k)

    history = History()
    steps = 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        sums = dict.fromkeys(("d_loss", "g_loss", "d_real", "d_fake"), 0.0)
        d_updates = g_updates = 0
        for start in range(0, n - batch_size + 1, batch_size):
            # discriminator: hinge loss on a real and a generated batch
            x_real = minidl.from_numpy(real[order[start:start + batch_size]])
            with minidl.no_grad():
                x_fake = _fake_input(generator, _noise(rng, batch_size, z_dim), rng)
            score_real = discriminator(x_real)
            score_fake = discriminator(x_fake)
            d_loss = F.relu(1.0 - score_real).mean() + F.relu(1.0 + score_fake).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            sums["d_loss"] += d_loss.item()
            sums["d_real"] += float(score_real.detach().numpy().mean())
            sums["d_fake"] += float(score_fake.detach().numpy().mean())
            d_updates += 1
            if d_updates % n_critic:
                continue
            # generator: raise the discriminator's score of its samples; D's weights are
            # constants in this step, so their gradients are not computed
            for param in d_params:
                param.requires_grad_(False)
            x_fake = _fake_input(generator, _noise(rng, batch_size, z_dim), rng)
            g_loss = -discriminator(x_fake).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            for param in d_params:
                param.requires_grad_(True)
            if ema:
                _update_average(averaged, generator, ema)
            sums["g_loss"] += g_loss.item()
            g_updates += 1
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        generated = sample(averaged, monitor_n, seed=int(rng.integers(2 ** 31)),
                           as_strings=False)
        record = {"epoch": epoch, "steps": steps,
                  "d_loss": sums["d_loss"] / max(d_updates, 1),
                  "g_loss": sums["g_loss"] / max(g_updates, 1),
                  "d_real": sums["d_real"] / max(d_updates, 1),
                  "d_fake": sums["d_fake"] / max(d_updates, 1),
                  "kmer_js": kmer_spectrum_distance(kmer_counts(generated, monitor_k),
                                                    reference)["js"],
                  "seconds": round(time.perf_counter() - started, 2)}
        history.append(record)
        if verbose:
            print(f"epoch {epoch}/{epochs}  step {steps}  D loss {record['d_loss']:.3f}  "
                  f"G loss {record['g_loss']:.3f}  D(real) {record['d_real']:+.2f}  "
                  f"D(fake) {record['d_fake']:+.2f}  {monitor_k}-mer JS {record['kmer_js']:.4f}"
                  f"  {record['seconds']:.0f} s", flush=True)
        if callback is not None:
            callback(record)
        if max_steps is not None and steps >= max_steps:
            break
    averaged.eval()
    discriminator.eval()
    return averaged, discriminator, history


# --------------------------------------------------------------------------- saving


def save_generator(directory, generator, extra=None):
    """Write ``generator.safetensors`` and ``config.json`` (the generator's constructor
    arguments plus ``extra``) into ``directory``; atomic writes, the weights first."""
    from pathlib import Path

    from minidl.io import safetensors
    from minidl.io.atomic import atomic_write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().numpy() for k, v in generator.state_dict().items()}
    safetensors.save(state, directory / "generator.safetensors")
    config = dict(extra or {}, format=FORMAT, version=1, generator=generator.config)
    atomic_write_json(directory / "config.json", config)


def load_generator(directory):
    """``(generator, config)`` from a directory written by :func:`save_generator` (eval
    mode; NumPy only)."""
    import json
    from pathlib import Path

    from minidl.io import safetensors

    directory = Path(directory)
    config = json.loads((directory / "config.json").read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{directory / 'config.json'}: not a minidl GAN generator config")
    generator = Generator(**config["generator"])
    generator.load_state_dict(safetensors.load(directory / "generator.safetensors"))
    generator.eval()
    return generator, config


# --------------------------------------------------------------------------- sampling


def sample_probabilities(generator, n, seed=0, batch_size=512):
    """The generator's base probabilities ``(n, 4, L)`` (float32) for ``n`` seeded noise
    vectors."""
    rng = np.random.default_rng(seed)
    out = []
    was_training = generator.training
    generator.eval()
    try:
        with minidl.no_grad():
            for start in range(0, n, batch_size):
                m = min(batch_size, n - start)
                out.append(generator(_noise(rng, m, generator.z_dim)).numpy())
    finally:
        generator.train(was_training)
    if not out:
        return np.zeros((0, 4, generator.length), dtype=np.float32)
    return np.concatenate(out)


def _onehot_to_strings(onehot):
    letters = np.frombuffer(BASES.encode(), dtype=np.uint8)[onehot.argmax(axis=1)]
    return [row.tobytes().decode() for row in letters]


def sample(generator, n, seed=0, mode="sample", as_strings=True):
    """Draw ``n`` sequences from a trained generator.

    Parameters
    ----------
    generator : Generator
    n : int
    seed : int
        Seeds both the noise and (``mode="sample"``) the base draws.
    mode : {"sample", "argmax"}
        ``"sample"`` (default) draws every base from the generator's probabilities at that
        position, independently: the distribution the probabilities describe, and what
        the discriminator was shown in training (straight-through samples).
        ``"argmax"`` takes the most likely base, which is sharper but shifts an uncertain
        position's composition towards its favourite base (e.g. all A or T where the
        generator gives A and T 0.3 each and C and G 0.2 each).
    as_strings : bool
        Return a list of ``str`` (default) or a one-hot ``(n, 4, L)`` float32 array.
    """
    probs = sample_probabilities(generator, n, seed=seed).astype(np.float64)
    if mode == "argmax":
        onehot = np.zeros(probs.shape, dtype=np.float32)
        np.put_along_axis(onehot, probs.argmax(axis=1)[:, None, :], 1.0, axis=1)
    elif mode == "sample":
        onehot = _draw_onehot(probs, np.random.default_rng([seed, 1]))
    else:
        raise ValueError(f"sample: mode must be 'sample' or 'argmax', got {mode!r}")
    return _onehot_to_strings(onehot) if as_strings else onehot


def random_sequences(n, length, seed=0, as_strings=True):
    """``n`` uniform random sequences (every base 1/4, independent): the baseline.
    ``length`` is an int or one length per sequence (strings only)."""
    rng = np.random.default_rng(seed)
    if np.ndim(length) == 0:
        index = rng.integers(0, 4, size=(n, int(length)))
        if not as_strings:
            onehot = np.zeros((n, 4, int(length)), dtype=np.float32)
            np.put_along_axis(onehot, index[:, None, :], 1.0, axis=1)
            return onehot
        return [bytes(np.frombuffer(BASES.encode(), np.uint8)[row]).decode() for row in index]
    if not as_strings:
        raise ValueError("random_sequences: several lengths need as_strings=True")
    return [bytes(np.frombuffer(BASES.encode(), np.uint8)[rng.integers(0, 4, int(m))]).decode()
            for m in length]


# --------------------------------------------------------------------------- evaluation


def _tokens(sequences):
    """Integer tokens ``(N, L)``: 0..3 for A, C, G, T, -1 for anything else (padding, N,
    an all-zero or uniform column).  Accepts strings or one-hot / probability arrays."""
    if isinstance(sequences, np.ndarray) or hasattr(sequences, "numpy"):
        x = np.asarray(sequences.detach().numpy() if hasattr(sequences, "detach")
                       else sequences)
        if x.ndim != 3 or x.shape[1] != 4:
            raise ValueError(f"expected one-hot sequences (N, 4, L), got shape {x.shape}")
        tokens = x.argmax(axis=1).astype(np.int64)
        # a column is a base only where one entry is strictly largest (one-hot, or a
        # generator's probabilities); padding (zeros) and N (0.25 each) are not
        tokens[(x == x.max(axis=1, keepdims=True)).sum(axis=1) != 1] = -1
        return tokens
    from minidl.bio.encode import tokens as encode_tokens

    if isinstance(sequences, str):
        sequences = [sequences]
    tokens = encode_tokens([s.upper() for s in sequences], "dna", pad_token=-1)
    tokens[tokens > 3] = -1  # N and ambiguity codes
    return tokens


def kmer_counts(sequences, k):
    """Counts of every k-mer ``(4**k,)`` int64 over all sequences, overlapping windows.

    k-mers are indexed in lexicographic order of ``ACGT`` (``AA..A`` = 0, ``AA..C`` = 1,
    ..., ``TT..T`` = 4**k - 1), i.e. base ``j`` of the k-mer is digit ``k - 1 - j`` in base 4.
    Windows that touch an ``N``, another non-ACGT letter or padding are not counted.
    ``sequences``: strings, or a one-hot ``(N, 4, L)`` array.

    >>> kmer_counts(["ACGT"], 2).nonzero()[0].tolist()  # AC, CG, GT
    [1, 6, 11]
    """
    if k < 1:
        raise ValueError(f"kmer_counts: k must be >= 1, got {k}")
    tokens = _tokens(sequences)
    if tokens.shape[1] < k:
        return np.zeros(4 ** k, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(tokens, k, axis=1)  # (N, L-k+1, k)
    valid = (windows >= 0).all(axis=2)
    place = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    index = (np.where(windows >= 0, windows, 0) * place).sum(axis=2)
    return np.bincount(index[valid], minlength=4 ** k).astype(np.int64)


def kmer_spectrum_distance(counts_a, counts_b):
    r"""Distances between two k-mer spectra (counts, or frequencies), each normalised to
    sum to 1 first (:math:`p`, :math:`q`).

    .. math::

        \mathrm{L1} = \sum_i |p_i - q_i| \in [0, 2], \qquad
        \mathrm{JS} = \sqrt{\tfrac12 \mathrm{KL}(p \Vert m) + \tfrac12 \mathrm{KL}(q \Vert m)}
        \in [0, 1],\ m = \tfrac12 (p + q),

    the Jensen-Shannon *distance* (a metric: the square root of the divergence), with
    logarithms in base 2 and :math:`0 \log 0 = 0` (as ``scipy.spatial.distance.jensenshannon``
    with ``base=2``).  Returns ``{"l1": float, "js": float}``; NaN where a spectrum is empty.

    >>> kmer_spectrum_distance([1, 0], [0, 1])
    {'l1': 2.0, 'js': 1.0}
    """
    a = np.asarray(counts_a, dtype=np.float64)
    b = np.asarray(counts_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"kmer_spectrum_distance: spectra of different sizes "
                         f"({a.shape} and {b.shape})")
    if a.sum() <= 0 or b.sum() <= 0:
        return {"l1": float("nan"), "js": float("nan")}
    p, q = a / a.sum(), b / b.sum()
    m = 0.5 * (p + q)

    def kl(x):  # KL(x || m) in bits; terms with x = 0 are 0
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    js = max(0.5 * kl(p) + 0.5 * kl(q), 0.0)  # max: rounding can give -1e-17
    return {"l1": float(np.abs(p - q).sum()), "js": float(np.sqrt(js))}


def gc_content(sequences):
    """The GC fraction of each sequence, ``(N,)`` float64: (G + C) / (A + C + G + T); other
    letters and padding are left out; NaN for a sequence without any ACGT.

    >>> gc_content(["GGCC", "ATGC", "ATNN"]).tolist()
    [1.0, 0.5, 0.0]
    """
    tokens = _tokens(sequences)
    bases = (tokens >= 0).sum(axis=1)
    gc = ((tokens == 1) | (tokens == 2)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(bases > 0, gc / np.maximum(bases, 1), np.nan)


def wasserstein_1d(a, b):
    r"""The 1-Wasserstein (earth mover's) distance between two samples of numbers:
    :math:`W_1 = \int |F_a(t) - F_b(t)|\,dt` with :math:`F` the empirical distribution
    functions (NaNs dropped).

    >>> wasserstein_1d([0.0, 1.0], [0.5, 0.5])
    0.5
    """
    a = np.sort(np.asarray(a, dtype=np.float64)[~np.isnan(a)])
    b = np.sort(np.asarray(b, dtype=np.float64)[~np.isnan(b)])
    if a.size == 0 or b.size == 0:
        return float("nan")
    points = np.sort(np.concatenate([a, b]))
    # between consecutive points both distribution functions are constant
    cdf_a = np.searchsorted(a, points[:-1], side="right") / a.size
    cdf_b = np.searchsorted(b, points[:-1], side="right") / b.size
    return float((np.abs(cdf_a - cdf_b) * np.diff(points)).sum())


def classifier_scores(classifier, sequences, positive_class=None):
    """A trained DNA classifier's probability of ``positive_class`` for each sequence.

    ``classifier``: a model directory or shipped model name (loaded with
    :mod:`minidl.bio.modelio`), or a ``(model, config)`` pair as it returns.
    ``positive_class``: a class name of the model (default: its last class, ``"1"`` for a
    0/1 model).  Sequences are encoded at the model's length; the strands are averaged
    when the model was trained that way.
    """
    from minidl.bio.dna import encode_split, predict_proba

    if isinstance(classifier, tuple):
        model, config = classifier
    else:
        from minidl.bio.modelio import load_model_dir
        from minidl.bio.models import build_model

        model, config = load_model_dir(classifier, build_model)
    classes = [str(c) for c in config["classes"]]
    positive = classes[-1] if positive_class is None else str(positive_class)
    if positive not in classes:
        raise ValueError(f"classifier has classes {classes}; no class {positive!r}")
    if not isinstance(sequences, (list, tuple)):
        sequences = _as_strings(sequences)
    x = encode_split(list(sequences), config["encoding"]["length"])
    proba = predict_proba(model, x, len(classes),
                          rc_average=config.get("predict", {}).get("rc_average", True))
    return proba[:, classes.index(positive)]


def _as_strings(sequences):
    if isinstance(sequences, str):
        return [sequences]
    if isinstance(sequences, (list, tuple)):
        return list(sequences)
    tokens = _tokens(sequences)
    letters = np.frombuffer(b"ACGTN", np.uint8)[np.where(tokens >= 0, tokens, 4)]
    return [row.tobytes().decode() for row in letters]


def _describe(sequences, reference_counts, reference_gc, ks, classifier, positive_class):
    gc = gc_content(sequences)
    out = {"n": int(len(gc)),
           "kmer_l1": {}, "kmer_js": {},
           "gc_mean": float(np.nanmean(gc)) if len(gc) else float("nan"),
           "gc_std": float(np.nanstd(gc)) if len(gc) else float("nan"),
           "gc_w1": wasserstein_1d(gc, reference_gc)}
    for k in ks:
        d = kmer_spectrum_distance(kmer_counts(sequences, k), reference_counts[k])
        out["kmer_l1"][str(k)] = d["l1"]
        out["kmer_js"][str(k)] = d["js"]
    if classifier is not None:
        scores = classifier_scores(classifier, _as_strings(sequences), positive_class)
        out["classifier_score"] = float(scores.mean())
        out["classifier_positive_fraction"] = float((scores > 0.5).mean())
    return out


def evaluate_samples(generated, real, classifier=None, held_out=None, ks=(3, 4, 5, 6),
                     positive_class=None, seed=0):
    """Compare generated sequences with real ones; random sequences are the baseline.

    Every set (``generated``, ``random``: uniform random sequences, as many as generated
    and of the same lengths; ``held_out``: real sequences not used in training, when
    given) is described against the reference set ``real`` by

    - ``kmer_l1`` / ``kmer_js``: for each k, the L1 and Jensen-Shannon distances between
      its k-mer spectrum and the reference's (:func:`kmer_spectrum_distance`);
    - ``gc_mean``, ``gc_std``, and ``gc_w1``: the 1-Wasserstein distance between its
      per-sequence GC contents and the reference's;
    - with a ``classifier``: ``classifier_score``, the mean probability of the positive
      class, and ``classifier_positive_fraction``, the fraction scored above 0.5.

    A good generator sits near ``held_out`` (the ceiling: real sequences differ from the
    reference only by sampling) and far from ``random``.  Spectrum distances of
    small samples are inflated by sampling noise (4**6 = 4096 six-mers), which is why
    ``random`` has as many sequences as ``generated``; compare sets of similar size.

    Parameters
    ----------
    generated, real, held_out : list of str or ndarray ``(N, 4, L)``
    classifier : model directory, shipped model name or ``(model, config)``, optional
    ks : sequence of int
    positive_class : str, optional
        The classifier's class to score (default its last).
    seed : int
        Seeds the random baseline.

    Returns
    -------
    dict
        JSON-serialisable: ``{"ks", "reference": {"n", "gc_mean", "gc_std",
        ["classifier_score"]}, "generated": {...}, "random": {...}, ["held_out": {...}]}``.
    """
    ks = [int(k) for k in ks]
    generated_strings = _as_strings(generated)
    real_strings = _as_strings(real)
    reference_counts = {k: kmer_counts(real_strings, k) for k in ks}
    reference_gc = gc_content(real_strings)
    result = {"ks": ks,
              "reference": {"n": len(real_strings),
                            "gc_mean": float(np.nanmean(reference_gc)),
                            "gc_std": float(np.nanstd(reference_gc))}}
    if classifier is not None:
        if not isinstance(classifier, tuple):  # load once, use for every set
            from minidl.bio.modelio import load_model_dir
            from minidl.bio.models import build_model

            classifier = load_model_dir(classifier, build_model)
        scores = classifier_scores(classifier, real_strings, positive_class)
        result["reference"]["classifier_score"] = float(scores.mean())
        result["reference"]["classifier_positive_fraction"] = float((scores > 0.5).mean())
    lengths = [len(s) for s in generated_strings]
    baseline = random_sequences(len(generated_strings), lengths, seed=seed)
    sets = {"generated": generated_strings, "random": baseline}
    if held_out is not None:
        sets["held_out"] = _as_strings(held_out)
    for name, sequences in sets.items():
        result[name] = _describe(sequences, reference_counts, reference_gc, ks, classifier,
                                 positive_class)
    return result
