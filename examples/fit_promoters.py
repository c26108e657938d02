"""The promoter MLP of train_mlp_promoters.py, trained with minidl.train instead of a hand loop.

Same data (the Arabidopsis non-TATA promoters shipped with minidl, fixed train/valid/test
splits), same model; here ``minidl.data`` batches it and ``minidl.train.fit`` runs the epochs
with a progress bar, accuracy/MCC/AUROC on the validation split, ReduceLROnPlateau, early
stopping that restores the best weights, and checkpoints. Interrupt it (Ctrl-C) and run it
again with ``--resume``: it continues from the last completed epoch with the losses it would
have had.

    python examples/fit_promoters.py [--epochs 15] [--out runs/fit_promoters] [--resume]
"""

import argparse
import json
from pathlib import Path

import numpy as np

import minidl
from minidl import nn, optim
from minidl.bio import datasets
from minidl.data import DataLoader, TensorDataset
from minidl.train import CSVLogger, EarlyStopping, ModelCheckpoint, evaluate, fit

BASES = "ACGT"


def one_hot(sequences):
    """(N, L) strings -> (N, L*4) float32; unknown bases get 0.25 in every column."""
    lookup = np.full((256, 4), 0.25, dtype=np.float32)
    for i, base in enumerate(BASES):
        lookup[ord(base)] = lookup[ord(base.lower())] = np.eye(4, dtype=np.float32)[i]
    codes = np.frombuffer("".join(sequences).encode("ascii"), dtype=np.uint8)
    return lookup[codes].reshape(len(sequences), -1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N sequences of each split (quick runs)")
    parser.add_argument("--out", default="runs/fit_promoters")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/checkpoints/last.safetensors")
    args = parser.parse_args(argv)

    minidl.manual_seed(args.seed)
    table = datasets.read_table("arabidopsis_nontata_promoters")
    split = np.array(table["split"])
    x_all = one_hot(table["sequence"])
    y_all = np.array(table["label"], dtype=np.float32)[:, None]  # (N, 1) like the logits
    loaders = {}
    rng = np.random.default_rng(args.seed)
    for name in ("train", "valid", "test"):
        rows = np.flatnonzero(split == name)
        if args.limit is not None and args.limit < len(rows):
            # a random subset: the table is sorted by label, its first rows are one class
            rows = np.sort(rng.choice(rows, args.limit, replace=False))
        loaders[name] = DataLoader(TensorDataset(x_all[rows], y_all[rows]),
                                   batch_size=args.batch_size, shuffle=name == "train",
                                   generator=args.seed)

    model = nn.Sequential(
        nn.Linear(x_all.shape[1], args.hidden), nn.ReLU(),
        nn.Linear(args.hidden, args.hidden // 2), nn.ReLU(),
        nn.Linear(args.hidden // 2, 1),
    )
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    out = Path(args.out)
    last = out / "checkpoints" / "last.safetensors"
    history = fit(
        model, loss_fn, optimizer, loaders["train"], loaders["valid"], epochs=args.epochs,
        metrics=["accuracy", "mcc", "auroc"], task="binary",
        scheduler=optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1),
        callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience,
                                 restore_best_weights=True),
                   ModelCheckpoint(out / "checkpoints", monitor="val_loss"),
                   CSVLogger(out / "history.csv")],
        resume_from=last if args.resume and last.exists() else None,
    )
    history.plot(out / "curves.png")
    test = evaluate(model, loaders["test"], loss_fn, ["accuracy", "mcc", "auroc"], task="binary")
    best_epoch, best_loss = history.best("val_loss")
    results = {"best_epoch": best_epoch, "valid_loss": best_loss,
               **{f"test_{k}": v for k, v in test.items()}}
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"best epoch {best_epoch}: test accuracy {test['accuracy']:.4f}, "
          f"MCC {test['mcc']:.3f}, AUROC {test['auroc']:.3f}")
    print(f"history, learning curves, checkpoints and metrics written to {out}/")
    return results


if __name__ == "__main__":
    main()
