"""The ``minidl-bio protein`` commands: train, evaluate, predict (see :mod:`minidl.bio.cli`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from minidl.bio.protein import (
    IGNORE,
    SS3,
    build_tagger,
    collate_chains,
    encode_chain,
    length_batches,
    q3_metrics,
    read_ss_table,
)

__all__ = ["train", "evaluate", "predict", "ChainLoader", "masked_cross_entropy"]


class ChainLoader:
    """Batches ``(x, lengths, y)`` of chains of similar length (see
    :func:`~minidl.bio.protein.length_batches`); a new seeded order every epoch."""

    def __init__(self, encoded, labels, batch_size, shuffle=False, seed=0):
        self.encoded, self.labels = encoded, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.lengths = np.array([len(e) for e in encoded])
        self.epoch = 0

    def __len__(self):
        return -(-len(self.encoded) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        self.epoch += 1
        for idx in length_batches(self.lengths, self.batch_size, self.shuffle, rng):
            labels = [self.labels[i] for i in idx] if self.labels is not None else None
            x, lengths, y = collate_chains([self.encoded[i] for i in idx], labels)
            yield (x, lengths, y) if y is not None else (x, lengths)


def masked_cross_entropy(output, target):
    """Cross-entropy over scored residues: ``output`` ``(N, L, C)``, ``target`` ``(N, L)``
    with -100 at padded and unscored positions (their gradient is exactly zero)."""
    from minidl import nn

    return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]),
                                       target.reshape(-1), ignore_index=IGNORE)


def _encode_all(sequences, ids):
    return [encode_chain(s, where=f"chain {i}") for s, i in zip(sequences, ids)]


def _predict_chains(model, encoded, batch_size=32):
    """Per-chain ``(L_i, 3)`` probabilities, in the input order."""
    import minidl

    out = [None] * len(encoded)
    loader = ChainLoader(encoded, None, batch_size)
    model.eval()
    start = 0
    order = length_batches(loader.lengths, batch_size)
    with minidl.no_grad():
        for idx, (x, lengths) in zip(order, loader):
            logits = model(minidl.from_numpy(x), lengths).numpy()
            z = np.exp(logits - logits.max(axis=-1, keepdims=True))
            p = z / z.sum(axis=-1, keepdims=True)
            for row, i in enumerate(idx):
                out[i] = p[row, : lengths[row]]
            start += len(idx)
    return out


def train(args):
    """``minidl-bio protein train``: fit a BiLSTM tagger, report Q3 on the test split."""
    import minidl
    from minidl import optim
    from minidl.bio.dna_cli import _write_history
    from minidl.bio.modelio import save_model_dir
    from minidl.io.atomic import atomic_write_json
    from minidl.train import EarlyStopping, fit

    out = Path(args.out)
    data = read_ss_table(args.data_path, mask_column=args.mask_column, seed=args.seed)
    if not args.quiet:
        print(f"data: {data.source}\n      {data.counts()}")
    enc = {s: _encode_all(data.sequences[s], data.ids[s]) for s in data.sequences}
    minidl.manual_seed(args.seed)
    config = {"model": "conv_bilstm" if args.conv_channels else "bilstm",
              "hidden_size": args.hidden, "num_layers": args.layers, "dropout": args.dropout,
              "conv_channels": args.conv_channels, "conv_kernel": args.conv_kernel}
    model = build_tagger(config)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    train_loader = ChainLoader(enc["train"], data.labels["train"], args.batch_size,
                               shuffle=True, seed=args.seed)
    valid_loader = ChainLoader(enc["valid"], data.labels["valid"], 64)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr,
                                              total_steps=args.epochs * len(train_loader))
    started = time.perf_counter()
    history = fit(model, masked_cross_entropy, optimizer, train_loader, valid_loader,
                  epochs=args.epochs, scheduler=scheduler, scheduler_interval="step",
                  clip_grad_norm=5.0,
                  callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience,
                                           restore_best_weights=True)],
                  verbose=0 if args.quiet else 1)
    seconds = time.perf_counter() - started
    probs = _predict_chains(model, enc["test"])
    metrics = q3_metrics(data.labels["test"], [p.argmax(axis=1) for p in probs])
    metrics["train_seconds"] = round(seconds, 1)
    metrics["epochs_run"] = len(history)
    save_model_dir(out, model, {
        "task": "protein", "model": model.config, "classes": list(SS3),
        "encoding": {"alphabet": "protein", "one_hot_columns": 21},
        "training": {"data": data.source, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "seed": args.seed, "patience": args.patience},
    })
    atomic_write_json(out / "metrics.json", metrics)
    _write_history(history, out)
    if not args.quiet:
        print(f"test: Q3 {metrics['q3']:.4f} over {metrics['n_residues']} residues of "
              f"{metrics['n_chains']} chains; trained in {seconds:.0f} s")
        from minidl.bio.dna_cli import _print_published

        _print_published(args.data)
        print(f"wrote {out}/model.safetensors, config.json, metrics.json, history.csv, "
              "curves.png")
    return 0


def _load(name):
    from minidl.bio.modelio import load_model_dir

    model, config = load_model_dir(name, build_tagger)
    if config.get("task") != "protein":
        raise ValueError(f"{name}: not a protein model (task {config.get('task')!r})")
    return model, config


def evaluate(args):
    """``minidl-bio protein evaluate``: Q3 and per-class precision/recall of a saved model."""
    from minidl.io.atomic import atomic_write_json

    model, _ = _load(args.model)
    data = read_ss_table(args.data_path, mask_column=args.mask_column)
    split = args.split
    if split is None:
        split = "test" if data.sequences["test"] else None
    names = [split] if split else ["train", "valid", "test"]
    seqs = [s for n in names for s in data.sequences[n]]
    ids = [i for n in names for i in data.ids[n]]
    labels = [y for n in names for y in data.labels[n]]
    if not seqs:
        raise ValueError(f"{args.data_path}: no chains in split {split!r}")
    probs = _predict_chains(model, _encode_all(seqs, ids))
    metrics = q3_metrics(labels, [p.argmax(axis=1) for p in probs])
    print(f"Q3 {metrics['q3']:.4f} ({metrics['n_residues']} residues, {metrics['n_chains']} "
          "chains); precision " + ", ".join(f"{k} {v:.3f}" for k, v in
                                             metrics["precision"].items() if v is not None))
    if args.out:
        target = Path(args.out)
        atomic_write_json(target if target.suffix == ".json" else target / "metrics.json",
                          metrics)
    return 0


def predict(args):
    """``minidl-bio protein predict``: per-residue H/E/C for every FASTA record (TSV)."""
    from minidl.bio.io import read_fasta
    from minidl.io.atomic import atomic_write_text

    model, _ = _load(args.model)
    records = read_fasta(args.fasta, alphabet="protein")
    probs = _predict_chains(model, _encode_all([r.sequence for r in records],
                                               [r.id for r in records]))
    lines = ["id\tsequence\tss3\tconfidence"]
    for rec, p in zip(records, probs):
        states = "".join(SS3[k] for k in p.argmax(axis=1))
        conf = "".join(str(min(9, int(v * 10))) for v in p.max(axis=1))
        lines.append(f"{rec.id}\t{rec.sequence}\t{states}\t{conf}")
    text = "\n".join(lines) + "\n"
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 0
