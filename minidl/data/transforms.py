r"""Image transforms: normalisation and random augmentation, applied to an image and its
mask alike.

Images are ``(C, H, W)`` or ``(H, W)`` NumPy arrays (a mask is ``(H, W)`` or ``(C', H, W)``).
Every random transform draws from its own seeded ``np.random.Generator``, so a run is
reproducible; called as ``t(image)`` it returns the image, as ``t(image, mask)`` it returns
``(image, mask)`` with the *same* geometric change applied to both (intensity changes:
image only).

Percentile normalisation (per image, per channel), robust to a few hot pixels:

.. math::

    x' = \frac{x - q_{low}}{q_{high} - q_{low} + \epsilon}

with :math:`q_p` the ``p``-th percentile of the channel's pixels (defaults 1 and 99.8,
as microscopy tools such as CSBDeep/StarDist use).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Compose", "Normalize", "PercentileNormalize", "RandomFlip", "RandomRot90",
           "RandomShift", "RandomCrop", "GaussianNoise", "BrightnessContrast"]


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _spatial(a):
    return (a.ndim - 2, a.ndim - 1)


class _Transform:
    geometric = False

    def __call__(self, image, mask=None):
        image = np.asarray(image)
        params = self.draw(image)
        out = self.apply(image, params)
        if mask is None:
            return out
        mask = np.asarray(mask)
        if mask.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"{type(self).__name__}: mask {mask.shape} and image "
                             f"{image.shape} differ in height/width")
        return out, (self.apply(mask, params) if self.geometric else mask)

    def draw(self, image):
        return None


class Compose:
    """Apply transforms in order (to an image, or an image and its mask)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, mask=None):
        for t in self.transforms:
            if mask is None:
                image = t(image)
            else:
                image, mask = t(image, mask)
        return image if mask is None else (image, mask)


class Normalize(_Transform):
    """``(x - mean[c]) / std[c]`` per channel of a ``(C, H, W)`` image."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if (self.std <= 0).any():
            raise ValueError(f"Normalize: std must be > 0, got {std}")

    def apply(self, image, _):
        shape = (-1, 1, 1) if image.ndim == 3 else ()
        return ((image - self.mean.reshape(shape)) / self.std.reshape(shape)).astype(np.float32)


class PercentileNormalize(_Transform):
    """Per-image (per-channel) percentile normalisation; see the module docs."""

    def __init__(self, low=1.0, high=99.8, per_channel=True, clip=False, eps=1e-6):
        if not 0 <= low < high <= 100:
            raise ValueError(f"PercentileNormalize: need 0 <= low < high <= 100, got {low}, {high}")
        self.low, self.high, self.per_channel = low, high, per_channel
        self.clip, self.eps = clip, eps

    def apply(self, image, _):
        x = image.astype(np.float32)
        axes = _spatial(x) if (self.per_channel and x.ndim == 3) else None
        lo = np.percentile(x, self.low, axis=axes, keepdims=True)
        hi = np.percentile(x, self.high, axis=axes, keepdims=True)
        out = (x - lo) / (hi - lo + self.eps)
        return np.clip(out, 0, 1) if self.clip else out.astype(np.float32)


class RandomFlip(_Transform):
    """Flip left-right and/or up-down, each with probability ``p``."""

    geometric = True

    def __init__(self, p=0.5, horizontal=True, vertical=True, seed=None):
        self.p, self.horizontal, self.vertical, self.rng = p, horizontal, vertical, _rng(seed)

    def draw(self, image):
        return (self.horizontal and self.rng.random() < self.p,
                self.vertical and self.rng.random() < self.p)

    def apply(self, image, params):
        h, v = params
        if h:
            image = image[..., ::-1]
        if v:
            image = image[..., ::-1, :]
        return np.ascontiguousarray(image)


class RandomRot90(_Transform):
    """Rotate by a random multiple of 90 degrees (square images keep their shape)."""

    geometric = True

    def __init__(self, seed=None):
        self.rng = _rng(seed)

    def draw(self, image):
        return int(self.rng.integers(0, 4))

    def apply(self, image, k):
        return np.ascontiguousarray(np.rot90(image, k, axes=_spatial(image)))


class RandomShift(_Transform):
    """Shift by up to ``max_shift`` pixels in each direction, filling with ``fill``."""

    geometric = True

    def __init__(self, max_shift=2, fill=0.0, seed=None):
        self.max_shift, self.fill, self.rng = int(max_shift), fill, _rng(seed)

    def draw(self, image):
        return tuple(self.rng.integers(-self.max_shift, self.max_shift + 1, size=2))

    def apply(self, image, shift):
        out = np.full_like(image, self.fill)
        dy, dx = shift
        h, w = image.shape[-2:]
        src_y, dst_y = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
        src_x, dst_x = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
        out[..., dst_y, dst_x] = image[..., src_y, src_x]
        return out


class RandomCrop(_Transform):
    """A random ``size`` (h, w) window (the image must be at least that large)."""

    geometric = True

    def __init__(self, size, seed=None):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.rng = _rng(seed)

    def draw(self, image):
        h, w = image.shape[-2:]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop: crop {self.size} larger than image {(h, w)}")
        return int(self.rng.integers(0, h - ch + 1)), int(self.rng.integers(0, w - cw + 1))

    def apply(self, image, corner):
        y, x = corner
        return np.ascontiguousarray(image[..., y:y + self.size[0], x:x + self.size[1]])


class GaussianNoise(_Transform):
    """Add N(0, ``std``^2) noise to the image (never to a mask)."""

    def __init__(self, std=0.05, seed=None):
        self.std, self.rng = std, _rng(seed)

    def draw(self, image):
        return self.rng.normal(0.0, self.std, size=image.shape).astype(np.float32)

    def apply(self, image, noise):
        return (image + noise).astype(np.float32)


class BrightnessContrast(_Transform):
    """``x' = (x - m) * c + m + b`` with contrast ``c`` in ``1 +- contrast`` and
    brightness ``b`` in ``+- brightness`` (``m`` the image mean); image only."""

    def __init__(self, brightness=0.1, contrast=0.1, seed=None):
        self.brightness, self.contrast, self.rng = brightness, contrast, _rng(seed)

    def draw(self, image):
        return (self.rng.uniform(-self.brightness, self.brightness),
                self.rng.uniform(1 - self.contrast, 1 + self.contrast))

    def apply(self, image, params):
        b, c = params
        m = image.mean()
        return ((image - m) * c + m + b).astype(np.float32)
