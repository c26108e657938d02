"""The ``minidl-bio dna`` commands: train, evaluate, predict (see :mod:`minidl.bio.cli`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from minidl.bio.dna import (
    encode_split,
    load_dna_data,
    predict_proba,
)

__all__ = ["train", "evaluate", "predict", "classification_metrics"]


def classification_metrics(y_true, proba, classes):
    """The metrics ``metrics.json`` holds: accuracy, MCC, AUROC, AUPRC (binary: of the
    positive class; more classes: macro one-vs-rest), per-class recall, ``n_test``."""
    from minidl import metrics

    y_true = np.asarray(y_true)
    y_pred = proba.argmax(axis=1)
    score = proba[:, 1] if len(classes) == 2 else proba
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=len(classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diag(cm) / cm.sum(axis=1)
    return {
        "accuracy": float(metrics.accuracy(y_true, y_pred)),
        "mcc": float(metrics.mcc(y_true, y_pred)),
        "auroc": float(metrics.auroc(y_true, score)),
        "auprc": float(metrics.auprc(y_true, score)),
        "recall": {c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
        "n_test": int(len(y_true)),
    }


def _print_metrics(m, file=sys.stdout):
    print(f"accuracy {m['accuracy']:.4f}  MCC {m['mcc']:.4f}  AUROC {m['auroc']:.4f}  "
          f"AUPRC {m['auprc']:.4f}  (n = {m['n_test']})", file=file)
    print("recall per class: " + ", ".join(
        f"{c} {'nan' if r is None else f'{r:.4f}'}" for c, r in m["recall"].items()), file=file)


def _print_published(name, file=sys.stdout):
    from minidl.bio.datasets import published

    for method, values in published(name):
        print(f"  published: {method}: " + ", ".join(f"{k} {v}" for k, v in values.items()),
              file=file)


def _write_history(history, out):
    """``history.csv`` and ``curves.png`` (matplotlib when installed, else minidl's own
    PNG writer) into ``out``."""
    history.to_csv(out / "history.csv")
    history.plot(out / "curves.png")


def _parse_kmers(text):
    """``"3,4,5,6"`` -> ``[3, 4, 5, 6]``; ``""`` or ``"0"`` -> ``[]``."""
    text = str(text or "").strip()
    if text in ("", "0"):
        return []
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise ValueError(f"--kmers: expected comma-separated integers, got {text!r}") from None
    if min(ks) < 1 or max(ks) > 8:
        raise ValueError(f"--kmers: sizes must be between 1 and 8 (4^8 features), got {text!r}")
    return ks


def train(args):
    """``minidl-bio dna train``: fit a CNN, keep the best epoch on validation, report test."""
    import minidl
    from minidl import nn, optim
    from minidl.bio.augment import RandomReverseComplement
    from minidl.bio.modelio import save_model_dir
    from minidl.bio.models import build_model
    from minidl.io.atomic import atomic_write_json

    out = Path(args.out)
    data = load_dna_data(data=args.data, train=args.train, valid=args.valid, test=args.test,
                         fasta=args.fasta, seed=args.seed)
    classes = data.classes
    length = args.length or max(len(s) for s in data.sequences["train"])
    if not args.quiet:
        print(f"data: {data.source}; {len(classes)} classes; length {length}")
        print("      " + data.counts())
    x = {s: encode_split(data.sequences[s], length, ids=data.ids[s]) for s in data.sequences}
    y = data.labels

    minidl.manual_seed(args.seed)
    config = {"model": args.model, "num_classes": len(classes)}
    if args.model == "cnn":
        config["pool_bins"] = args.pool_bins
        config["kmers"] = _parse_kmers(getattr(args, "kmers", ""))
    model = build_model(config)
    binary = len(classes) == 2
    loss_fn = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    from minidl.data import DataLoader, TensorDataset
    from minidl.train import EarlyStopping, fit

    train_y = y["train"].astype(np.float32) if binary else y["train"]
    valid_y = y["valid"].astype(np.float32) if binary else y["valid"]
    rc = None if args.no_rc else RandomReverseComplement(p=0.5, seed=args.seed + 1)

    def collate(batch):
        xb = np.stack([b[0] for b in batch])
        yb = np.stack([b[1] for b in batch])
        if rc is not None:
            xb = rc(xb)
        return minidl.from_numpy(xb), minidl.from_numpy(yb)

    train_loader = DataLoader(TensorDataset(x["train"], train_y), batch_size=args.batch_size,
                              shuffle=True, generator=args.seed, collate_fn=collate)
    valid_loader = DataLoader(TensorDataset(x["valid"], valid_y), batch_size=512)
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader))
    started = time.perf_counter()
    history = fit(
        model, loss_fn, optimizer, train_loader, valid_loader, epochs=args.epochs,
        scheduler=scheduler, scheduler_interval="step",
        metrics=["accuracy", "mcc"] if binary else ["accuracy"],
        task="binary" if binary else "multiclass",
        callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience,
                                 restore_best_weights=True)],
        verbose=0 if args.quiet else 1,
    )
    train_seconds = time.perf_counter() - started

    proba = predict_proba(model, x["test"], len(classes), rc_average=not args.no_rc)
    metrics = classification_metrics(y["test"], proba, classes)
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["epochs_run"] = len(history)
    full_config = {
        "task": "dna",
        "model": model.config,
        "classes": classes,
        "encoding": {"alphabet": "dna", "length": int(length), "crop": "center"},
        "predict": {"rc_average": not args.no_rc},
        "training": {"data": data.source, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
                     "patience": args.patience},
    }
    save_model_dir(out, model, full_config)
    atomic_write_json(out / "metrics.json", metrics)
    _write_history(history, out)
    if not args.quiet:
        print(f"test ({len(y['test'])} sequences), trained in {train_seconds:.0f} s:")
        _print_metrics(metrics)
        _print_published(args.data)
        print(f"wrote {out}/model.safetensors, config.json, metrics.json, history.csv, "
              "curves.png")
    return 0


def _load(model_name):
    from minidl.bio.modelio import load_model_dir
    from minidl.bio.models import build_model

    model, config = load_model_dir(model_name, build_model)
    if config.get("task") != "dna":
        raise ValueError(f"{model_name}: not a DNA model (task {config.get('task')!r})")
    return model, config


def evaluate(args):
    """``minidl-bio dna evaluate``: metrics of a saved model on a labelled table."""
    from minidl.bio.io import read_labelled_table
    from minidl.io.atomic import atomic_write_json

    model, config = _load(args.model)
    classes = config["classes"]
    table = read_labelled_table(args.data, classes=classes)
    keep = np.arange(len(table.sequences))
    split = args.split or ("test" if table.split is not None else None)
    if split is not None:
        if table.split is None:
            raise ValueError(
                f"{args.data}: --split {split} given but the table has no split column")
        keep = np.flatnonzero(np.asarray(table.split) == split)
        if keep.size == 0:
            raise ValueError(f"{args.data}: no rows with split {split!r}")
    seqs = [table.sequences[i] for i in keep]
    x = encode_split(seqs, config["encoding"]["length"], ids=[table.ids[i] for i in keep])
    proba = predict_proba(model, x, len(classes), rc_average=config["predict"]["rc_average"])
    metrics = classification_metrics(np.asarray(table.labels)[keep], proba, classes)
    _print_metrics(metrics)
    if args.out:
        target = Path(args.out)
        if target.suffix != ".json":
            target = target / "metrics.json"
        atomic_write_json(target, metrics)
    return 0


def predict(args):
    """``minidl-bio dna predict``: a TSV of id and class probabilities per FASTA record."""
    from minidl.bio.io import read_fasta
    from minidl.io.atomic import atomic_write_text

    model, config = _load(args.model)
    classes = config["classes"]
    records = read_fasta(args.fasta, alphabet="dna")
    x = encode_split([r.sequence for r in records], config["encoding"]["length"],
                     ids=[r.id for r in records])
    rc_average = config["predict"]["rc_average"] and not args.no_rc
    proba = predict_proba(model, x, len(classes), rc_average=rc_average)
    lines = ["id\t" + "\t".join(f"p_{c}" for c in classes) + "\tpredicted"]
    for rec, p in zip(records, proba):
        lines.append(rec.id + "\t" + "\t".join(f"{v:.6f}" for v in p) + "\t"
                     + classes[int(np.argmax(p))])
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
