r"""The ``minidl-bio cells`` commands: train, evaluate, predict, explain (see
:mod:`minidl.bio.cli`).

Data: a shipped dataset name (``pbc_bloodmnist_like_28``), a MedMNIST-style ``.npz`` or a
folder of class sub-folders (:mod:`minidl.bio.images`).  ``train`` writes into ``--out``:
``model.safetensors``, ``config.json`` (architecture, classes, input channels and size,
normalisation numbers), ``metrics.json`` (test split), ``history.csv``, ``curves.png`` and
``confusion.png``.

Prediction averages the softmax over the 8 symmetries of the square (4 rotations x flip;
the 2 flips and their product for non-square images) unless ``--no-tta``: a cell's class
does not depend on its orientation, and the averaged probabilities are steadier.

Transfer learning (``--init-from MODEL``): the new model has the pretrained architecture
and backbone weights and a *freshly initialised head* for the new classes; the first
convolution is adapted to the new channel count with
:func:`minidl.bio.cell_models.adapt_input_channels` (summed over the pretrained channels,
spread evenly over the new ones).  ``--freeze-backbone`` trains the head only (the
backbone's batch norm keeps its running statistics).  The normalisation numbers are
recomputed on the new training images.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from minidl.bio import images as imio

__all__ = ["train", "evaluate", "predict", "explain", "cell_metrics", "predict_proba",
           "saliency"]


# ------------------------------------------------------------------ metrics and plots


def cell_metrics(y_true, proba, classes):
    """``metrics.json``: the DNA tool's classification metrics (accuracy, MCC (multi-class,
    Gorodkin), AUROC/AUPRC, the confusion matrix with rows = true class, per-class recall,
    ``n_test``) plus balanced accuracy (mean per-class recall) and ``macro_auroc`` (the
    one-vs-rest mean; for two classes the AUROC of the second)."""
    from minidl import metrics
    from minidl.bio.dna_cli import classification_metrics

    m = classification_metrics(y_true, proba, classes)
    m["balanced_accuracy"] = float(metrics.balanced_accuracy(np.asarray(y_true),
                                                             proba.argmax(axis=1)))
    m["macro_auroc"] = m["auroc"]
    return m


def _print_metrics(m, file=sys.stdout):
    print(f"accuracy {m['accuracy']:.4f}  balanced accuracy {m['balanced_accuracy']:.4f}  "
          f"macro AUROC {m['macro_auroc']:.4f}  MCC {m['mcc']:.4f}  (n = {m['n_test']})",
          file=file)
    print("recall per class: " + ", ".join(
        f"{c} {'nan' if r is None else f'{r:.3f}'}" for c, r in m["recall"].items()), file=file)


def _hot(values):
    """Values in [0, 1] -> RGB uint8 with a black-red-yellow-white ("hot") colour map."""
    v = np.clip(np.asarray(values, np.float32), 0, 1)[..., None]
    rgb = np.clip(np.concatenate([3 * v, 3 * v - 1, 3 * v - 2], axis=-1), 0, 1)
    return (rgb * 255).astype(np.uint8)


def write_confusion_png(cm, classes, path):
    """``confusion.png``: the confusion matrix (rows true, columns predicted), cells shaded
    by the row fraction, counts written in; matplotlib when installed, else minidl's own PNG
    writer.  Returns the backend used."""
    from minidl.io.atomic import atomic_write_bytes

    cm = np.asarray(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.nan_to_num(cm / cm.sum(axis=1, keepdims=True))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import io

        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is not None:
        k = len(classes)
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * k, 0.8 + 0.6 * k))
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())
        return "matplotlib"
    from minidl.train._png import Canvas, encode_png

    k, cell = len(classes), 44
    labels = [str(c)[:10] for c in classes]
    left = max(Canvas.text_width(s) for s in labels) + 12
    title = "TRUE (ROWS) VS PREDICTED (COLUMNS)"
    canvas = Canvas(max(left + k * cell + 10, Canvas.text_width(title) + 8),
                    40 + k * cell + 10)
    canvas.text(4, 8, title)
    for i in range(k):
        canvas.text(4, 40 + i * cell + cell // 2 - 5, labels[i])
        for j in range(k):
            shade = (255 * (1 - 0.8 * frac[i, j])).astype(int)
            x0, y0 = left + j * cell, 40 + i * cell
            canvas.fill_rect(x0, y0, x0 + cell, y0 + cell, (shade, shade, 255))
            canvas.rect(x0, y0, x0 + cell, y0 + cell, (160, 160, 160))
            canvas.text(x0 + 4, y0 + cell // 2 - 5, str(cm[i, j]))
    atomic_write_bytes(path, encode_png(canvas.image))
    return "builtin"


# ------------------------------------------------------------------ prediction


def _symmetries(square):
    """The image symmetries for test-time averaging: (k quarter turns, flip)."""
    turns = (0, 1, 2, 3) if square else (0, 2)
    return [(k, f) for k in turns for f in (False, True)]


def predict_proba(model, x, tta=True, batch_size=128):
    """Softmax probabilities ``(N, K)`` for normalised images ``x`` ``(N, C, H, W)``,
    averaged over the image symmetries when ``tta``."""
    import minidl

    model.eval()
    square = x.shape[2] == x.shape[3]
    views = _symmetries(square) if tta else [(0, False)]
    out = []
    with minidl.no_grad():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size]
            total = 0.0
            for k, flip in views:
                view = np.rot90(batch, k, axes=(2, 3))
                if flip:
                    view = view[..., ::-1]
                logits = model(minidl.from_numpy(np.ascontiguousarray(view))).numpy()
                logits = logits - logits.max(axis=1, keepdims=True)
                p = np.exp(logits)
                total = total + p / p.sum(axis=1, keepdims=True)
            out.append(total / len(views))
    return np.concatenate(out).astype(np.float64)


def saliency(model, x, target=None):
    r"""Gradient saliency (Simonyan et al. 2014): for each image, the absolute gradient of
    the target class's logit with respect to the input pixels, maximum over channels:

    .. math:: S_{ij} = \max_c \left|\frac{\partial z_{y}}{\partial x_{cij}}\right|

    ``target`` defaults to the predicted class.  Returns ``(saliency (N, H, W),
    target (N,))``.  The computation is :func:`minidl.bio.interpret.image_saliency`
    (shared with the other attribution methods); the model is left in evaluation mode.
    """
    from minidl.bio.interpret import image_saliency

    model.eval()
    return image_saliency(model, x, target)


def _display(image):
    """A raw ``(C, H, W)`` image as RGB uint8 for viewing (percentile-stretched; grey for
    1 channel, the channel mean for other counts than 3)."""
    x = imio.percentile_normalize(image[None], 0.5, 99.5)[0]
    x = np.clip(x, 0, 1)
    if x.shape[0] == 3:
        rgb = x.transpose(1, 2, 0)
    else:
        grey = x.mean(axis=0) if x.shape[0] != 1 else x[0]
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    return (rgb * 255).astype(np.uint8)


def _upscale(rgb, factor):
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


# ------------------------------------------------------------------ commands


def _transfer(model, pretrained, in_channels):
    """Copy the backbone of ``pretrained`` into ``model`` (head left as initialised; the
    first convolution adapted to ``in_channels``); returns the number of tensors copied."""
    from minidl.bio.cell_models import adapt_input_channels

    source = {k: v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
              for k, v in pretrained.state_dict().items()}
    state = {k: v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)
             for k, v in model.state_dict().items()}
    copied = 0
    for key, value in source.items():
        if key.startswith("head."):
            continue
        if key not in state:
            raise ValueError(f"--init-from: the pretrained model has {key!r}, the new one not")
        if key == model.input_conv_key:
            value = adapt_input_channels(value, in_channels)
        if value.shape != state[key].shape:
            raise ValueError(f"--init-from: {key} has shape {value.shape} in the pretrained "
                             f"model, {state[key].shape} in the new one")
        state[key] = value
        copied += 1
    model.load_state_dict(state)
    return copied


def _keep_classes(data, wanted):
    """Keep only the images of the ``wanted`` classes (names), relabelled 0..k-1 in that
    order (e.g. to pretrain on some cell types and fine-tune on others)."""
    unknown = [c for c in wanted if c not in data.classes]
    if unknown or len(wanted) < 2:
        raise ValueError(f"--classes: need at least 2 of {data.classes}; unknown: {unknown}")
    old_index = np.array([data.classes.index(c) for c in wanted])
    for split in list(data.images):
        labels = data.labels[split]
        keep = np.flatnonzero(np.isin(labels, old_index))
        remap = {int(o): n for n, o in enumerate(old_index)}
        data.images[split] = data.images[split][keep]
        data.labels[split] = np.array([remap[int(v)] for v in labels[keep]], np.int64)
        data.names[split] = [data.names[split][i] for i in keep] if data.names else []
    data.classes = list(wanted)


def train(args):
    """``minidl-bio cells train``: fit a CNN with augmentation, keep the best epoch on
    validation, report test metrics."""
    import minidl
    from minidl import nn, optim
    from minidl.bio.cell_models import build_cell_model
    from minidl.bio.modelio import save_model_dir
    from minidl.data import DataLoader, TensorDataset, TransformDataset
    from minidl.io.atomic import atomic_write_json
    from minidl.train import EarlyStopping, fit

    out = Path(args.out)
    size = (args.size, args.size) if args.size else None
    data = imio.load_image_data(args.data, seed=args.seed, size=size)
    if args.classes:
        _keep_classes(data, [c.strip() for c in args.classes.split(",")])
    classes = data.classes
    train_x, train_y = data.images["train"], data.labels["train"]
    if args.train_fraction < 1:
        keep = imio.stratified_subset(train_y, args.train_fraction, seed=args.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    if args.limit:
        # a quick look at a large set: a stratified sample of at most --limit per split
        def sample(y):
            return imio.stratified_subset(y, min(1.0, args.limit / len(y)), seed=args.seed)

        for split in ("valid", "test"):
            keep = sample(data.labels[split])
            data.images[split] = data.images[split][keep]
            data.labels[split] = data.labels[split][keep]
        keep = sample(train_y)
        train_x, train_y = train_x[keep], train_y[keep]
    height, width = train_x.shape[2:]
    if not args.quiet:
        print(f"data: {data.source}; {len(classes)} classes; {data.channels} channel(s); "
              f"{height}x{width} px")
        print(f"      train {len(train_y)}; valid {len(data.labels['valid'])}; "
              f"test {len(data.labels['test'])}")

    if args.normalize == "percentile":
        spec = {"method": "percentile", "low": 1.0, "high": 99.8}
    else:
        scale = 255.0 if train_x.dtype == np.uint8 else float(np.abs(train_x).max() or 1.0)
        spec = {"method": "scale", "scale": scale}
    train_norm = imio.normalize_images(train_x, spec)
    spec["mean"], spec["std"] = imio.standardize_stats(train_norm)
    train_norm = imio.normalize_images(train_x, spec)
    x = {s: imio.normalize_images(data.images[s], spec) for s in ("valid", "test")}

    minidl.manual_seed(args.seed)
    init_from = None
    if args.init_from:
        pretrained, pre_config = _load(args.init_from)
        arch = dict(pre_config["model"], num_classes=len(classes),
                    in_channels=data.channels)
        model = build_cell_model(arch)
        copied = _transfer(model, pretrained, data.channels)
        init_from = {"model": str(args.init_from), "tensors_copied": copied,
                     "pretrained_channels": pre_config["model"]["in_channels"],
                     "freeze_backbone": bool(args.freeze_backbone)}
        if not args.quiet:
            print(f"init from {args.init_from}: {copied} backbone tensors copied, new head "
                  f"for {len(classes)} classes"
                  + (", backbone frozen" if args.freeze_backbone else ""))
    else:
        arch = {"model": args.model, "num_classes": len(classes), "in_channels": data.channels}
        width_key = "channels" if args.model == "cnn" else "widths"
        arch[width_key] = [int(c) for c in args.channels.split(",")]
        model = build_cell_model(arch)
    if args.freeze_backbone:
        if not args.init_from:
            raise ValueError("--freeze-backbone needs --init-from (a pretrained backbone)")
        model.freeze_backbone()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.lr is None:
        # Fine-tuning a whole pretrained network on a few dozen images at the from-scratch
        # peak rate (3e-3) threw one seed of three off (test accuracy 0.81 at 1 % of the
        # labels); 1e-3 gave 0.97-0.98 on all three and the same 0.99 at 5 %.
        args.lr = 1e-3 if args.init_from and not args.freeze_backbone else 3e-3
    optimizer = optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)

    train_set = TensorDataset(train_norm, train_y)
    if not args.no_augment:
        train_set = TransformDataset(train_set, transform=imio.augmentation(
            args.seed + 1, square=height == width))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True,
                              generator=args.seed, drop_last=len(train_y) > args.batch_size)
    # evaluation batches of 128: larger ones only grow the im2col buffers (slower, not faster)
    valid_loader = DataLoader(TensorDataset(x["valid"], data.labels["valid"]), batch_size=128)
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader))
    started = time.perf_counter()
    history = fit(
        model, nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), optimizer,
        train_loader, valid_loader, epochs=args.epochs, scheduler=scheduler,
        scheduler_interval="step", metrics=["accuracy"], task="multiclass",
        callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience,
                                 restore_best_weights=True)],
        verbose=0 if args.quiet else 1,
    )
    train_seconds = time.perf_counter() - started

    tta = not args.no_tta
    proba = predict_proba(model, x["test"], tta=tta)
    metrics = cell_metrics(data.labels["test"], proba, classes)
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["epochs_run"] = len(history)
    metrics["n_train"] = int(len(train_y))
    full_config = {
        "task": "cells",
        "model": model.config,
        "classes": classes,
        "input": {"channels": data.channels, "height": int(height), "width": int(width)},
        "normalization": spec,
        "predict": {"tta": tta},
        "training": {"data": data.source, "epochs": args.epochs,
                     "batch_size": args.batch_size, "lr": args.lr,
                     "weight_decay": args.weight_decay, "seed": args.seed,
                     "patience": args.patience, "augment": not args.no_augment,
                     "label_smoothing": args.label_smoothing,
                     "train_fraction": args.train_fraction, "classes": args.classes,
                     "init_from": init_from},
    }
    save_model_dir(out, model, full_config)
    atomic_write_json(out / "metrics.json", metrics)
    history.to_csv(out / "history.csv")
    history.plot(out / "curves.png")
    write_confusion_png(metrics["confusion_matrix"], classes, out / "confusion.png")
    if not args.quiet:
        print(f"test ({len(data.labels['test'])} images), trained in {train_seconds:.0f} s:")
        _print_metrics(metrics)
        from minidl.bio.dna_cli import _print_published

        _print_published(args.data)
        print(f"wrote {out}/model.safetensors, config.json, metrics.json, history.csv, "
              "curves.png, confusion.png")
    return 0


def _load(model_name):
    import json

    from minidl.bio.cell_models import build_cell_model
    from minidl.bio.modelio import load_model_dir, resolve_model_dir

    # the task is checked before the architecture is built (a DNA config cannot build)
    try:
        task = json.loads((resolve_model_dir(model_name) / "config.json").read_text()).get("task")
    except json.JSONDecodeError:
        task = None      # load_model_dir reports the broken file
    if task not in ("cells", None):
        raise ValueError(f"{model_name}: not a cell-image model (task {task!r})")
    model, config = load_model_dir(model_name, build_cell_model)
    if config.get("task") != "cells":
        raise ValueError(f"{model_name}: not a cell-image model (task {config.get('task')!r})")
    return model, config


def _prepare(images, config):
    """Raw ``(N, C, H, W)`` images -> the model's input: checked channels, resized to the
    training size (the scale the model learned), normalised as in training."""
    want = config["input"]
    if images.shape[1] != want["channels"]:
        raise ValueError(f"the model expects {want['channels']}-channel images, these have "
                         f"{images.shape[1]} (fine-tune with --init-from to change channels)")
    size = (want["height"], want["width"])
    if images.shape[2:] != size:
        images = np.stack([imio.resize_image(im, *size) for im in images])
    return imio.normalize_images(images, config["normalization"])


def _read_inputs(source, split):
    """``(images (N, C, H, W), names, labels or None)`` from a dataset name, ``.npz``,
    folder (of class sub-folders, or any images) or a single image file."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in imio.IMAGE_SUFFIXES:
        return imio.to_common_size([imio.read_image(path)]), [str(path)], None
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and p.suffix.lower() in imio.IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no image files ({', '.join(imio.IMAGE_SUFFIXES)})")
        arrays = [imio.read_image(f) for f in files]
        return imio.to_common_size(arrays) if len({a.shape for a in arrays}) == 1 else arrays, \
            [str(f) for f in files], None
    data = imio.load_image_data(source)
    split = split or "test"
    return data.images[split], data.names[split], data.labels[split]


def evaluate(args):
    """``minidl-bio cells evaluate``: metrics of a saved model on labelled images."""
    from minidl.io.atomic import atomic_write_json

    model, config = _load(args.model)
    data = imio.load_image_data(args.data, seed=args.seed)
    split = args.split or "test"
    if split not in data.images:
        raise ValueError(f"{args.data}: no split {split!r}")
    if data.classes != config["classes"]:
        if set(config["classes"]) <= set(data.classes):
            _keep_classes(data, config["classes"])      # a model trained with --classes
        elif len(data.classes) != len(config["classes"]):
            raise ValueError(f"{args.data}: classes {data.classes} differ from the model's "
                             f"{config['classes']}")
    x = _prepare(data.images[split], config)
    proba = predict_proba(model, x, tta=config["predict"]["tta"] and not args.no_tta)
    metrics = cell_metrics(data.labels[split], proba, config["classes"])
    _print_metrics(metrics)
    if args.out:
        target = Path(args.out)
        if target.suffix != ".json":
            target.mkdir(parents=True, exist_ok=True)
            write_confusion_png(metrics["confusion_matrix"], config["classes"],
                                target / "confusion.png")
            target = target / "metrics.json"
        atomic_write_json(target, metrics)
    return 0


def predict(args):
    """``minidl-bio cells predict``: a TSV of image name, class probabilities, prediction."""
    from minidl.io.atomic import atomic_write_text

    model, config = _load(args.model)
    classes = config["classes"]
    images, names, _ = _read_inputs(args.images, args.split)
    if isinstance(images, list):   # different sizes: each resized to the training size
        x = np.concatenate([_prepare(im[None], config) for im in images])
    else:
        x = _prepare(images, config)
    proba = predict_proba(model, x, tta=config["predict"]["tta"] and not args.no_tta)
    lines = ["image\t" + "\t".join(f"p_{c}" for c in classes) + "\tpredicted"]
    for name, p in zip(names, proba):
        lines.append(name + "\t" + "\t".join(f"{v:.6f}" for v in p) + "\t"
                     + classes[int(np.argmax(p))])
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def explain(args):
    """``minidl-bio cells explain``: gradient saliency maps as PNG: for each image, the
    image, the saliency map and the map over the image, side by side
    (``saliency_<i>_<class>.png``), and all of them in ``saliency_grid.png``."""
    from minidl.io.atomic import atomic_write_bytes, atomic_write_text
    from minidl.train._png import encode_png

    model, config = _load(args.model)
    classes = config["classes"]
    images, names, labels = _read_inputs(args.images, args.split)
    if isinstance(images, list):
        images = imio.to_common_size(images, (config["input"]["height"],
                                              config["input"]["width"]))
    images, names = images[:args.n], names[:args.n]
    x = _prepare(images, config)
    sal, target = saliency(model, x)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h, w = x.shape[2:]
    factor = max(1, 160 // max(h, w))
    rows, lines = [], ["index\timage\tpredicted\tlabel\tfile"]
    for i in range(len(x)):
        s = sal[i] / (np.percentile(sal[i], 99.5) + 1e-12)
        raw_image = np.asarray(images[i])
        if raw_image.shape[1:] != (h, w):
            raw_image = imio.resize_image(raw_image, h, w)
        base = _display(raw_image).astype(np.float32)
        heat = _hot(s).astype(np.float32)
        overlay = (0.55 * base + 0.45 * heat).astype(np.uint8)
        gap = np.full((h, 1, 3), 255, np.uint8)
        row = np.concatenate([base.astype(np.uint8), gap, heat.astype(np.uint8), gap, overlay],
                             axis=1)
        row = _upscale(row, factor)
        name = f"saliency_{i:03d}_{classes[int(target[i])]}.png"
        atomic_write_bytes(out / name, encode_png(row))
        rows.append(row)
        label = "" if labels is None else classes[int(labels[i])]
        lines.append(f"{i}\t{names[i]}\t{classes[int(target[i])]}\t{label}\t{name}")
    grid = np.concatenate([np.concatenate([r, np.full((4, r.shape[1], 3), 255, np.uint8)])
                           for r in rows])
    atomic_write_bytes(out / "saliency_grid.png", encode_png(grid))
    atomic_write_text(out / "saliency.tsv", "\n".join(lines) + "\n")
    print(f"wrote {len(rows)} saliency maps (image | saliency | overlay) and "
          f"saliency_grid.png, saliency.tsv into {out}")
    return 0
