r"""Microscopy images: readers, normalisation and on-the-fly augmentation.

Readers
-------
:func:`read_npz` reads a MedMNIST-style ``.npz`` (``train_images``, ``train_labels``,
``val_images``... ``test_labels``; images grey ``(N, H, W)`` or colour ``(N, H, W, C)``,
labels ``(N, 1)`` or ``(N,)``; an optional ``class_names`` array).  :func:`read_folder`
reads a directory with one sub-folder per class, optionally inside ``train/``,
``valid/`` (or ``val/``) and ``test/``::

    cells/train/lymphocyte/img001.png     cells/lymphocyte/img001.png
    cells/valid/lymphocyte/...       or   cells/neutrophil/...
    cells/test/...                        (then split 80/10/10, stratified, seeded)

PNG and JPEG go through Pillow, TIFF through tifffile (every channel kept: ``(H, W)``,
``(C, H, W)`` or ``(H, W, C)``); both are optional dependencies, imported only when such a
file is read.  Both readers return :class:`ImageData` with images channels-first
``(N, C, H, W)``.  Images of different sizes are resized (bilinear) to one size, by
default the median height and width of the training images.

Normalisation
-------------
Per image and per channel, percentiles :math:`q_{1}` and :math:`q_{99.8}` (the
microscopy convention, robust to a few saturated or dead pixels):

.. math::

    x' = \frac{x - q_{\text{low}}}{q_{\text{high}} - q_{\text{low}} + \epsilon}

then dataset standardisation with the per-channel mean and standard deviation of the
*training* images (after the first step), stored in ``config.json`` so that prediction
applies the same numbers: :math:`x'' = (x' - \mu_c) / \sigma_c`.

Augmentation
------------
:func:`augmentation` composes :mod:`minidl.data.transforms` (random flips, 90-degree
rotations, shifts of a few pixels, brightness/contrast jitter), each with its own seeded
generator, so a run with the same seed sees the same augmented images.  Cell identity does
not depend on orientation or position, so the label never changes.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ImageData", "read_npz", "read_folder", "read_image", "load_image_data",
    "percentile_normalize", "standardize_stats", "normalize_images", "resize_image",
    "to_common_size", "augmentation", "IMAGE_SUFFIXES", "stratified_subset",
]

SPLITS = ("train", "valid", "test")
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
_TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = _PIL_SUFFIXES + _TIFF_SUFFIXES
_SPLIT_DIRS = {"train": ("train",), "valid": ("valid", "val", "validation"), "test": ("test",)}


@dataclass
class ImageData:
    """Images per split, channels first ``(N, C, H, W)`` (their original dtype), integer
    labels, class names, and where each image came from."""

    images: dict
    labels: dict
    classes: list
    source: str
    names: dict = field(default_factory=dict)

    @property
    def channels(self):
        return int(self.images["train"].shape[1])

    def counts(self):
        return "; ".join(f"{s} {len(self.labels[s])}" for s in SPLITS if s in self.labels)


# ------------------------------------------------------------------ readers


def _channels_first(images, path, key):
    images = np.asarray(images)
    if images.ndim == 3:                          # grey (N, H, W)
        return images[:, None]
    if images.ndim == 4:                          # colour (N, H, W, C)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise ValueError(f"{path}: {key} has shape {images.shape}; expected grey (N, H, W) "
                     f"or colour (N, H, W, C)")


def read_npz(path):
    """Read a MedMNIST-style ``.npz`` (see the module docstring) into :class:`ImageData`.

    Split keys: ``train_*``, ``val_*`` (or ``valid_*``) and ``test_*``; ``train`` is
    required, a missing validation or test split is an error (split the data first).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    with archive:
        keys = set(archive.files)
        images, labels = {}, {}
        for split, prefixes in (("train", ("train",)), ("valid", ("val", "valid")),
                                ("test", ("test",))):
            prefix = next((p for p in prefixes if f"{p}_images" in keys), None)
            if prefix is None:
                raise ValueError(f"{path}: no {'/'.join(p + '_images' for p in prefixes)} "
                                 f"array (has {sorted(keys)})")
            if f"{prefix}_labels" not in keys:
                raise ValueError(f"{path}: {prefix}_images without {prefix}_labels")
            x = _channels_first(archive[f"{prefix}_images"], path, f"{prefix}_images")
            y = np.asarray(archive[f"{prefix}_labels"])
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1 or len(y) != len(x):
                raise ValueError(f"{path}: {prefix}_labels has shape {y.shape}, expected "
                                 f"({len(x)},) or ({len(x)}, 1) (one class per image)")
            images[split], labels[split] = x, y.astype(np.int64)
        num_classes = int(max(y.max() for y in labels.values() if len(y))) + 1
        if "class_names" in keys:
            classes = [str(c) for c in archive["class_names"]]
            if len(classes) < num_classes:
                raise ValueError(f"{path}: {len(classes)} class_names for labels up to "
                                 f"{num_classes - 1}")
        else:
            classes = [str(i) for i in range(num_classes)]
    shapes = {x.shape[1:] for x in images.values()}
    if len({s[0] for s in shapes}) != 1:
        raise ValueError(f"{path}: splits differ in channels: {sorted(shapes)}")
    if any((y < 0).any() for y in labels.values()):
        raise ValueError(f"{path}: negative labels")
    names = {s: [f"{s}:{i}" for i in range(len(labels[s]))] for s in labels}
    return ImageData(images, labels, classes, str(path), names)


def _missing(package, pip_name, path):
    return ImportError(f"reading {path} needs {package}: pip install {pip_name}")


def read_image(path):
    """One image as a channels-first array ``(C, H, W)`` (its own dtype).

    PNG/JPEG/BMP/GIF through Pillow (grey stays 1 channel, palette images become RGB,
    RGBA drops alpha); TIFF through tifffile with every channel kept.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in _TIFF_SUFFIXES:
        try:
            import tifffile
        except ImportError:
            raise _missing("tifffile", "tifffile", path) from None
        try:
            array = np.asarray(tifffile.imread(path))
        except Exception as err:  # tifffile raises many kinds on a broken file
            raise ValueError(f"{path}: cannot read this TIFF file ({err})") from None
        array = np.squeeze(array)
        if array.ndim == 2:
            return array[None]
        if array.ndim == 3:
            # NOTE: channels last when the last axis is short and the first is not
            # (ImageJ and most scanners write (C, H, W); RGB TIFFs are (H, W, 3))
            if array.shape[-1] <= 4 < array.shape[0]:
                array = array.transpose(2, 0, 1)
            return np.ascontiguousarray(array)
        raise ValueError(f"{path}: TIFF with shape {array.shape}; expected one 2-D image "
                         "with optional channels (stacks and time series are not images)")
    if suffix not in _PIL_SUFFIXES:
        raise ValueError(f"{path}: unsupported image type {suffix!r} (supported: "
                         f"{', '.join(IMAGE_SUFFIXES)})")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise _missing("Pillow", "Pillow", path) from None
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "PA", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                img = img.convert("L" if img.mode in ("LA",) else "RGB")
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: cannot read this image ({err})") from None
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))


def _image_files(directory):
    return sorted(p for p in Path(directory).rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_dirs(directory):
    return sorted(p for p in Path(directory).iterdir()
                  if p.is_dir() and not p.name.startswith("."))


def resize_image(image, height, width):
    r"""Bilinear resize of ``(C, H, W)`` to ``(C, height, width)`` (pixel centres aligned:
    source coordinate :math:`(i + 0.5) H / h - 0.5`, clamped), in float32.

    >>> resize_image(np.arange(4.0).reshape(1, 2, 2), 2, 2).tolist()
    [[[0.0, 1.0], [2.0, 3.0]]]
    """
    image = np.asarray(image, dtype=np.float32)
    c, h, w = image.shape
    if (h, w) == (height, width):
        return image.copy()

    def coords(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, fy = coords(height, h)
    x0, x1, fx = coords(width, w)
    top = image[:, y0][:, :, x0] * (1 - fx) + image[:, y0][:, :, x1] * fx
    bottom = image[:, y1][:, :, x0] * (1 - fx) + image[:, y1][:, :, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def to_common_size(images, size=None):
    """Stack a list of ``(C, H, W)`` arrays into ``(N, C, h, w)``: unchanged when they share
    one size and ``size`` is None, else each resized (bilinear) to ``size`` = ``(h, w)``
    (default: the median height and width)."""
    shapes = {im.shape[1:] for im in images}
    if size is None and len(shapes) == 1:
        return np.stack(images)
    if size is None:
        size = (int(np.median([im.shape[1] for im in images])),
                int(np.median([im.shape[2] for im in images])))
    return np.stack([resize_image(im, *size) for im in images])


def read_folder(directory, seed=0, size=None):
    """Read a folder of class sub-folders (see the module docstring) into
    :class:`ImageData`; without ``train/valid/test`` sub-folders the images are split
    80/10/10 per class with ``seed``.  Images are stacked at one size (``size`` or, when
    they differ, the median size; see :func:`to_common_size`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    split_dirs = {}
    for split, names in _SPLIT_DIRS.items():
        found = [directory / n for n in names if (directory / n).is_dir()]
        if found:
            split_dirs[split] = found[0]
    if split_dirs and "train" not in split_dirs:
        raise ValueError(f"{directory}: has {sorted(split_dirs)} sub-folders but no train/")
    roots = split_dirs or {"all": directory}
    classes = sorted({d.name for root in roots.values() for d in _class_dirs(root)})
    if len(classes) < 2:
        raise ValueError(f"{directory}: need one sub-folder per class (at least 2), found "
                         f"{classes or 'none'}")
    files, labels = {}, {}
    for split, root in roots.items():
        files[split], labels[split] = [], []
        for d in _class_dirs(root):
            for f in _image_files(d):
                files[split].append(f)
                labels[split].append(classes.index(d.name))
        if not files[split]:
            raise ValueError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    if "all" in files:
        all_files, all_labels = files.pop("all"), np.asarray(labels.pop("all"))
        parts = _stratified_split(all_labels, seed)
        for split, idx in parts.items():
            files[split] = [all_files[i] for i in idx]
            labels[split] = all_labels[idx].tolist()
    for split in SPLITS:
        if split not in files or not files[split]:
            raise ValueError(f"{directory}: the {split} split is empty (add images, or drop "
                             "the train/valid/test sub-folders to split automatically)")
    arrays = {s: [read_image(f) for f in files[s]] for s in files}
    channel_counts = {a.shape[0] for s in arrays for a in arrays[s]}
    if len(channel_counts) != 1:
        odd = next(f for s in arrays for f, a in zip(files[s], arrays[s])
                   if a.shape[0] != arrays["train"][0].shape[0])
        raise ValueError(f"{directory}: images differ in channel count "
                         f"({sorted(channel_counts)}), e.g. {odd} has a different one")
    if size is None and len({a.shape[1:] for s in arrays for a in arrays[s]}) > 1:
        size = (int(np.median([a.shape[1] for a in arrays["train"]])),
                int(np.median([a.shape[2] for a in arrays["train"]])))
    images = {s: to_common_size(arrays[s], size) for s in arrays}
    names = {s: [str(f) for f in files[s]] for s in files}
    return ImageData(images, {s: np.asarray(labels[s], np.int64) for s in labels}, classes,
                     str(directory), names)


def _stratified_split(labels, seed, fractions=(0.8, 0.1, 0.1)):
    rng = np.random.default_rng(seed)
    parts = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_valid = max(1, int(round(fractions[1] * len(idx)))) if len(idx) >= 3 else 0
        n_test = max(1, int(round(fractions[2] * len(idx)))) if len(idx) >= 3 else 0
        parts["valid"] += idx[:n_valid].tolist()
        parts["test"] += idx[n_valid:n_valid + n_test].tolist()
        parts["train"] += idx[n_valid + n_test:].tolist()
    return {s: np.sort(np.asarray(v, np.int64)) for s, v in parts.items()}


def stratified_subset(labels, fraction, seed=0):
    """Indices of a seeded, class-stratified ``fraction`` of ``labels`` (at least one
    image per class), sorted."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        keep += idx[:max(1, int(round(fraction * len(idx))))].tolist()
    return np.sort(np.asarray(keep, np.int64))


def load_image_data(source, seed=0, size=None):
    """:class:`ImageData` from a shipped dataset name, a ``.npz`` file or a folder."""
    from minidl.bio import datasets

    path = Path(source)
    if not path.exists() and str(source) in datasets.available():
        path = datasets.dataset_path(str(source))
        data = read_npz(path)
        data.source = str(source)
        data.classes = datasets.class_names(str(source)) or data.classes
    elif path.is_dir():
        data = read_folder(path, seed=seed, size=size)
    elif path.is_file():
        data = read_npz(path)
    else:
        raise FileNotFoundError(f"{source!r} is neither a .npz file, a folder of images nor "
                                f"a shipped dataset (shipped: {', '.join(datasets.available())})")
    if size is not None and data.images["train"].shape[2:] != tuple(size):
        for s in data.images:
            data.images[s] = np.stack([resize_image(im, *size) for im in data.images[s]])
    return data


# ------------------------------------------------------------------ normalisation


def percentile_normalize(images, low=1.0, high=99.8, eps=1e-6):
    r"""Per image and per channel: :math:`(x - q_{low}) / (q_{high} - q_{low} + \epsilon)`
    over the spatial axes of ``(N, C, H, W)``; float32.

    >>> x = np.array([[[[0, 50], [100, 200]]]], dtype=np.uint8)
    >>> percentile_normalize(x, 0, 100).round(3).tolist()
    [[[[0.0, 0.25], [0.5, 1.0]]]]
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"percentile_normalize: expected (N, C, H, W), got {images.shape}")
    out = np.empty(images.shape, np.float32)
    # in chunks: np.percentile copies and sorts the whole array in float64
    for start in range(0, len(images), 2048):
        chunk = images[start:start + 2048].astype(np.float32)
        lo, hi = np.percentile(chunk, [low, high], axis=(2, 3), keepdims=True)
        out[start:start + 2048] = (chunk - lo) / (hi - lo + eps)
    return out


def standardize_stats(images):
    """Per-channel mean and standard deviation of ``(N, C, H, W)`` (lists of float)."""
    images = np.asarray(images, dtype=np.float64)
    mean = images.mean(axis=(0, 2, 3))
    std = images.std(axis=(0, 2, 3))
    return mean.tolist(), np.where(std > 0, std, 1.0).tolist()


def normalize_images(images, spec):
    """Apply a normalisation ``spec`` (as stored in ``config.json``):
    ``{"method": "percentile"|"scale", "low", "high", "mean", "std"}``; ``scale`` divides
    by ``spec["scale"]`` (255 for 8-bit images) instead of the percentile step."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if spec["method"] == "percentile":
        x = percentile_normalize(images, spec["low"], spec["high"])
    elif spec["method"] == "scale":
        x = images.astype(np.float32) / np.float32(spec["scale"])
    else:
        raise ValueError(f"unknown normalisation {spec['method']!r}")
    if "mean" in spec:
        mean = np.asarray(spec["mean"], np.float32)[None, :, None, None]
        std = np.asarray(spec["std"], np.float32)[None, :, None, None]
        x = (x - mean) / std
    return x.astype(np.float32, copy=False)


# ------------------------------------------------------------------ augmentation


def augmentation(seed, square=True, flips=True, rotations=True, max_shift=2,
                 brightness=0.2, contrast=0.2):
    """The training augmentation as one callable on a ``(C, H, W)`` image: random flips,
    90-degree rotations (only 0/180 degrees unless ``square``: the shape must stay),
    shifts of up to ``max_shift`` pixels (vacated pixels 0, the dataset mean after
    standardisation) and brightness/contrast jitter (in standardised units).  Each part
    has its own generator seeded from ``seed``, so the augmented stream is reproducible.

    >>> aug = augmentation(seed=0)
    >>> aug(np.ones((3, 8, 8), np.float32)).shape
    (3, 8, 8)
    """
    from minidl.data import transforms as T

    seeds = np.random.SeedSequence(seed).generate_state(4)
    parts = []
    if flips:
        parts.append(T.RandomFlip(p=0.5, seed=int(seeds[0])))
    if rotations and square:
        parts.append(T.RandomRot90(seed=int(seeds[1])))
    if max_shift:
        parts.append(T.RandomShift(max_shift, seed=int(seeds[2])))
    if brightness or contrast:
        parts.append(T.BrightnessContrast(brightness, contrast, seed=int(seeds[3])))
    return T.Compose(parts)
