r"""Image transforms: normalisation and random augmentation, applied to an image and its
mask alike.

Layout
------
An image is a NumPy array ``(C, H, W)`` (channels first, as the convolution layers
expect) or ``(H, W)``; a mask (segmentation labels, or any per-pixel target) is
``(H, W)`` or ``(C', H, W)`` with the same ``H, W``.  Geometric transforms act on the last
two axes (any leading axes are carried along unchanged).  Tensors are accepted and
NumPy arrays returned.

Calling
-------
``t(image)`` returns the transformed image; ``t(image, mask)`` returns
``(image, mask)`` with the *same* random geometric change (flip, rotation, crop,
shift) applied to both, so labels stay on their pixels.  Intensity changes (noise,
brightness, normalisation) touch the image only; the mask is returned as is.  Outputs
are new arrays; the inputs are never modified.

Randomness
----------
Every random transform takes ``seed``: an int (its own ``numpy.random.Generator``,
seeded once, so the sequence of calls is reproducible), a ``Generator`` (shared), or
``None`` (minidl's global generator, so ``minidl.manual_seed`` fixes it).  One call draws
its random parameters once, then applies them to image and mask.  For a training run that
must resume bit for bit from a checkpoint, prefer ``None``: checkpoints save the global
generator's state, not the private generators of int-seeded transforms.

Percentile normalisation
------------------------
Per image and per channel, robust to a few saturated or dead pixels (the convention of
microscopy tools such as CSBDeep and StarDist):

.. math::

    x' = \frac{x - q_{\text{low}}}{q_{\text{high}} - q_{\text{low}} + \epsilon}

where :math:`q_p` is the ``p``-th percentile of that channel's pixels (defaults 1 and
99.8), so most pixels land in :math:`[0, 1]`.

Examples
--------
>>> import numpy as np
>>> from minidl.data import transforms as T
>>> image = np.arange(16.0).reshape(1, 4, 4)
>>> mask = (image[0] > 7).astype(np.int64)
>>> aug = T.Compose([T.RandomFlip(seed=0), T.RandomRot90(seed=1), T.GaussianNoise(0.01, seed=2)])
>>> out_image, out_mask = aug(image, mask)
>>> out_image.shape, out_mask.shape, out_mask.dtype
((1, 4, 4), (4, 4), dtype('int64'))
>>> bool(((out_image[0] > 7.5) == (out_mask == 1)).all())   # pixels and labels moved together
True
"""

from __future__ import annotations

import numbers

import numpy as np

from minidl import random as _random

__all__ = [
    "Compose",
    "Normalize",
    "PercentileNormalize",
    "RandomFlip",
    "RandomRot90",
    "RandomShift",
    "RandomCrop",
    "GaussianNoise",
    "BrightnessContrast",
]


def _source(seed, owner):
    """What a random transform draws from: a Generator, or None for the global one."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"{owner}: seed must be >= 0, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(
        f"{owner}: seed must be None, an int or a numpy.random.Generator, "
        f"got {type(seed).__name__}"
    )


def _as_array(x, what, owner):
    from minidl.tensor import Tensor

    x = np.asarray(x.detach()) if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"{owner}: {what} must be (H, W) or (C, H, W), got shape {x.shape}"
        )
    return x


def _float(x):
    """Float view of the values for intensity maths: float inputs keep their precision,
    integer images (uint8, uint16) become float32."""
    return x if x.dtype.kind == "f" else x.astype(np.float32)


class _Transform:
    """Base class: draw parameters once per call, apply them to the image and (for
    geometric transforms) to the mask."""

    geometric = False

    def __call__(self, image, mask=None):
        name = type(self).__name__
        image = _as_array(image, "image", name)
        if mask is not None:
            mask = _as_array(mask, "mask", name)
            if mask.shape[-2:] != image.shape[-2:]:
                raise ValueError(
                    f"{name}: mask {mask.shape} and image {image.shape} differ in (H, W)"
                )
        params = self._draw(image)
        out = self._apply(image, params, is_mask=False)
        if mask is None:
            return out
        return out, (self._apply(mask, params, is_mask=True) if self.geometric else mask.copy())

    def _draw(self, image):
        return None

    def _apply(self, x, params, is_mask):
        raise NotImplementedError

    def _rng(self):
        return self._generator if self._generator is not None else _random.default_generator()

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose:
    """Apply ``transforms`` in order, to an image or to an image and its mask.

    >>> import numpy as np
    >>> t = Compose([Normalize(1.0, 2.0), RandomFlip(p=1.0, vertical=False)])
    >>> t(np.array([[1.0, 3.0]])).tolist()
    [[1.0, 0.0]]
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, mask=None):
        for t in self.transforms:
            if mask is None:
                image = t(image)
            else:
                image, mask = t(image, mask)
        return image if mask is None else (image, mask)

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Normalize(_Transform):
    r"""Per-channel standardisation :math:`x'_c = (x_c - \mu_c) / \sigma_c`.

    Parameters
    ----------
    mean, std : float or sequence of float
        One value for every channel, or one per channel of a ``(C, H, W)`` image.

    >>> import numpy as np
    >>> Normalize([0.0, 10.0], [1.0, 5.0])(np.full((2, 1, 1), 20.0)).ravel().tolist()
    [20.0, 2.0]
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.size == 0 or self.std.size == 0:
            raise ValueError("Normalize: mean and std must not be empty")
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and > 0, got {std}")

    def _apply(self, x, params, is_mask):
        x = _float(x)
        size = max(self.mean.size, self.std.size)
        if size == 1:
            mean, std = self.mean[0], self.std[0]
        else:
            channels = x.shape[-3] if x.ndim >= 3 else 1
            if channels != size or (self.mean.size not in (1, size)) or \
                    (self.std.size not in (1, size)):
                raise ValueError(
                    f"Normalize: {self.mean.size} means and {self.std.size} stds for an image "
                    f"of shape {x.shape} ({channels} channels)"
                )
            mean = self.mean.reshape(-1, 1, 1)
            std = self.std.reshape(-1, 1, 1)
        return ((x - mean) / std).astype(x.dtype)


class PercentileNormalize(_Transform):
    r"""Per-image percentile normalisation (see the module docstring for the formula).

    Parameters
    ----------
    low, high : float, default 1 and 99.8
        Percentiles, ``0 <= low < high <= 100``.
    per_channel : bool, default True
        Percentiles of each channel of a ``(C, H, W)`` image separately (else of all
        pixels together).
    clip : bool, default False
        Clip the result to :math:`[0, 1]`.
    eps : float, default 1e-20
        Keeps a constant image finite (it maps to 0).

    >>> import numpy as np
    >>> out = PercentileNormalize(0, 100)(np.array([[2.0, 4.0], [6.0, 10.0]]))
    >>> out.tolist()
    [[0.0, 0.25], [0.5, 1.0]]
    """

    def __init__(self, low=1.0, high=99.8, per_channel=True, clip=False, eps=1e-20):
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"PercentileNormalize: need 0 <= low < high <= 100, got low={low}, high={high}"
            )
        self.low, self.high = float(low), float(high)
        self.per_channel, self.clip, self.eps = bool(per_channel), bool(clip), float(eps)

    def _apply(self, x, params, is_mask):
        x = _float(x)
        # percentiles over the spatial axes of each channel, or over everything
        axes = (-2, -1) if (self.per_channel and x.ndim >= 3) else None
        values = x.astype(np.float64)
        lo = np.percentile(values, self.low, axis=axes, keepdims=True)
        hi = np.percentile(values, self.high, axis=axes, keepdims=True)
        out = (values - lo) / (hi - lo + self.eps)
        if self.clip:
            out = np.clip(out, 0.0, 1.0)
        return out.astype(x.dtype)


class RandomFlip(_Transform):
    """Flip left-right (last axis) and/or up-down (axis -2), each with probability ``p``.

    >>> import numpy as np
    >>> RandomFlip(p=1.0, vertical=False)(np.array([[1, 2, 3]])).tolist()
    [[3, 2, 1]]
    """

    geometric = True

    def __init__(self, p=0.5, horizontal=True, vertical=True, seed=None):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: p must be in [0, 1], got {p}")
        self.p, self.horizontal, self.vertical = float(p), bool(horizontal), bool(vertical)
        self._generator = _source(seed, "RandomFlip")

    def _draw(self, image):
        # both coins are always tossed, so the stream of draws does not depend on flags
        u = self._rng().random(2)
        return self.horizontal and u[0] < self.p, self.vertical and u[1] < self.p

    def _apply(self, x, params, is_mask):
        horizontal, vertical = params
        if horizontal:
            x = x[..., ::-1]
        if vertical:
            x = x[..., ::-1, :]
        return np.ascontiguousarray(x)


class RandomRot90(_Transform):
    """Rotate by ``k`` quarter turns (counter-clockwise), ``k`` uniform in {0, 1, 2, 3}.

    NOTE: a non-square ``(H, W)`` image becomes ``(W, H)`` for odd ``k``; batch such
    images with a collate that allows it, or crop them square first.

    >>> import numpy as np
    >>> out = RandomRot90(seed=0)(np.arange(4).reshape(2, 2))
    >>> sorted(out.ravel().tolist())
    [0, 1, 2, 3]
    """

    geometric = True

    def __init__(self, seed=None):
        self._generator = _source(seed, "RandomRot90")

    def _draw(self, image):
        return int(self._rng().integers(0, 4))

    def _apply(self, x, k, is_mask):
        return np.ascontiguousarray(np.rot90(x, k, axes=(-2, -1)))


def _pair(value, owner, what):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        pair = tuple(int(v) for v in value)
        if len(pair) != 2:
            raise ValueError(f"{owner}: {what} must be an int or a pair (h, w), got {value!r}")
    if min(pair) < 0:
        raise ValueError(f"{owner}: {what} must be >= 0, got {value!r}")
    return pair


class RandomShift(_Transform):
    r"""Translate by :math:`(d_y, d_x)`, each uniform in :math:`[-m, m]` (integers):
    :math:`x'[i + d_y, j + d_x] = x[i, j]`, vacated pixels set to ``fill`` (``mask_fill``
    in the mask).  The shape is kept.

    Parameters
    ----------
    max_shift : int or (int, int)
        :math:`m`, the largest shift in pixels (rows, columns).
    fill, mask_fill : number, default 0
    seed : None, int or numpy.random.Generator

    >>> import numpy as np
    >>> t = RandomShift(1, seed=3)
    >>> t(np.ones((3, 3))).sum() in (4.0, 6.0, 9.0)
    True
    """

    geometric = True

    def __init__(self, max_shift=2, fill=0, mask_fill=0, seed=None):
        self.max_shift = _pair(max_shift, "RandomShift", "max_shift")
        self.fill, self.mask_fill = fill, mask_fill
        self._generator = _source(seed, "RandomShift")

    def _draw(self, image):
        (my, mx), rng = self.max_shift, self._rng()
        return int(rng.integers(-my, my + 1)), int(rng.integers(-mx, mx + 1))

    def _apply(self, x, shift, is_mask):
        dy, dx = shift
        h, w = x.shape[-2:]
        out = np.full_like(x, self.mask_fill if is_mask else self.fill)
        if abs(dy) < h and abs(dx) < w:
            out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        return out


class RandomCrop(_Transform):
    """A random ``size`` window, the image first padded by ``padding`` on every side.

    Parameters
    ----------
    size : int or (int, int)
        Output ``(h, w)``; must fit in the (padded) image.
    padding : int or (int, int), default 0
        Pixels added above/below and left/right before cropping (``padding=4`` with
        ``size`` equal to the image size is the classic "random shift by up to 4").
    fill, mask_fill : number, default 0
        Values of the padded pixels.
    seed : None, int or numpy.random.Generator

    >>> import numpy as np
    >>> RandomCrop(2, seed=0)(np.zeros((3, 5, 5))).shape
    (3, 2, 2)
    """

    geometric = True

    def __init__(self, size, padding=0, fill=0, mask_fill=0, seed=None):
        self.size = _pair(size, "RandomCrop", "size")
        if min(self.size) < 1:
            raise ValueError(f"RandomCrop: size must be positive, got {size!r}")
        self.padding = _pair(padding, "RandomCrop", "padding")
        self.fill, self.mask_fill = fill, mask_fill
        self._generator = _source(seed, "RandomCrop")

    def _draw(self, image):
        h, w = image.shape[-2:]
        (ph, pw), (ch, cw) = self.padding, self.size
        if ch > h + 2 * ph or cw > w + 2 * pw:
            raise ValueError(
                f"RandomCrop: crop {self.size} is larger than the image {(h, w)} padded by "
                f"{self.padding}"
            )
        rng = self._rng()
        return int(rng.integers(0, h + 2 * ph - ch + 1)), int(rng.integers(0, w + 2 * pw - cw + 1))

    def _apply(self, x, corner, is_mask):
        (ph, pw), (ch, cw) = self.padding, self.size
        if ph or pw:
            widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
            x = np.pad(x, widths, constant_values=self.mask_fill if is_mask else self.fill)
        y0, x0 = corner
        return np.ascontiguousarray(x[..., y0:y0 + ch, x0:x0 + cw])


class GaussianNoise(_Transform):
    r"""Add noise :math:`x' = x + \varepsilon`, :math:`\varepsilon \sim \mathcal{N}(\mu,
    \sigma^2)` independently per pixel, with probability ``p`` (image only).

    Parameters
    ----------
    std : float, default 0.05
        :math:`\sigma`, in the image's units (after normalisation, a fraction of its range).
    mean : float, default 0
    p : float, default 1
    seed : None, int or numpy.random.Generator

    >>> import numpy as np
    >>> out = GaussianNoise(0.1, seed=0)(np.zeros((64, 64), dtype=np.float32))
    >>> out.dtype, bool(0.08 < out.std() < 0.12)
    (dtype('float32'), True)
    """

    def __init__(self, std=0.05, mean=0.0, p=1.0, seed=None):
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"GaussianNoise: p must be in [0, 1], got {p}")
        self.std, self.mean, self.p = float(std), float(mean), float(p)
        self._generator = _source(seed, "GaussianNoise")

    def _draw(self, image):
        rng = self._rng()
        if rng.random() >= self.p:
            return None
        return rng.normal(self.mean, self.std, size=image.shape)

    def _apply(self, x, noise, is_mask):
        x = _float(x)
        return x.copy() if noise is None else (x + noise).astype(x.dtype)


class BrightnessContrast(_Transform):
    r"""Random brightness and contrast: :math:`x'_c = c\,(x_c - m_c) + m_c + b`.

    :math:`m_c` is the mean of channel :math:`c`, the contrast factor
    :math:`c \sim U[1 - \text{contrast}, 1 + \text{contrast}]` and the brightness offset
    :math:`b \sim U[-\text{brightness}, \text{brightness}]` (one draw per call, in the
    image's units: meant for images normalised to about :math:`[0, 1]` or unit variance).
    Image only.

    >>> import numpy as np
    >>> image = np.array([[0.0, 1.0]])
    >>> out = BrightnessContrast(brightness=0.0, contrast=0.5, seed=0)(image)
    >>> bool(np.isclose(out.mean(), 0.5))   # pure contrast keeps the mean
    True
    """

    def __init__(self, brightness=0.1, contrast=0.1, p=1.0, seed=None):
        if brightness < 0 or not 0 <= contrast <= 1:
            raise ValueError(
                f"BrightnessContrast: need brightness >= 0 and 0 <= contrast <= 1, got "
                f"{brightness}, {contrast}"
            )
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"BrightnessContrast: p must be in [0, 1], got {p}")
        self.brightness, self.contrast, self.p = float(brightness), float(contrast), float(p)
        self._generator = _source(seed, "BrightnessContrast")

    def _draw(self, image):
        rng = self._rng()
        apply, b, c = rng.random(), rng.uniform(-1, 1), rng.uniform(-1, 1)
        if apply >= self.p:
            return None
        return self.brightness * b, 1.0 + self.contrast * c

    def _apply(self, x, params, is_mask):
        x = _float(x)
        if params is None:
            return x.copy()
        offset, factor = params
        axes = (-2, -1) if x.ndim >= 3 else None
        m = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        return ((x - m) * factor + m + offset).astype(x.dtype)
