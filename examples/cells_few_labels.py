"""Few labelled images: training from scratch vs fine-tuning a pretrained backbone.

The protocol keeps the comparison honest on the one shipped cell dataset: the backbone is
pretrained on four of the eight blood-cell types (basophil, eosinophil, erythroblast,
immature granulocyte) and then transferred to the *other four* (lymphocyte, monocyte,
neutrophil, platelet), of which it has never seen an image or a label.  On those four
classes each arm gets the same stratified 5 % of the training images (about 290) and is
scored on all their test images:

* scratch      - ``minidl-bio cells train --classes B --train-fraction 0.05``
* fine-tuned   - the same plus ``--init-from PRETRAINED`` (backbone copied, new 4-class head)
* head only    - the same plus ``--freeze-backbone`` (a linear probe on frozen features)

repeated over seeds (the seed draws the 5 % subset, the head and the augmentations).

    python examples/cells_few_labels.py [--fraction 0.05] [--seeds 0 1 2] [--out runs/few_labels]

It prints a table and writes ``summary.json``.  The runs are ordinary ``minidl-bio cells``
runs, so every one leaves its model, metrics and curves under ``--out``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from minidl.bio.cli import main as minidl_bio
from minidl.io.atomic import atomic_write_json

DATA = "pbc_bloodmnist_like_28"
PRETRAIN_CLASSES = "basophil,eosinophil,erythroblast,immature_granulocyte"
TARGET_CLASSES = "lymphocyte,monocyte,neutrophil,platelet"


def run(args_list):
    started = time.perf_counter()
    status = minidl_bio(["cells", "train", "--data", DATA, "--quiet", *args_list])
    if status != 0:
        raise SystemExit(f"minidl-bio cells train {' '.join(args_list)} failed ({status})")
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40,
                        help="epochs of every few-label run (few images: short epochs)")
    parser.add_argument("--out", default="runs/few_labels")
    parser.add_argument("--threads", default="2")
    parser.add_argument("--pretrain-epochs", type=int, default=None,
                        help="epochs of the pretraining run (default: the tool's default)")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most N images per split in every run (quick trials, tests)")
    parser.add_argument("--pretrained", default=None,
                        help="reuse this 4-class pretrained model (default: train it into "
                             "OUT/pretrained_4_classes)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    limit = ["--limit", str(args.limit)] if args.limit else []

    pretrained = Path(args.pretrained) if args.pretrained else out / "pretrained_4_classes"
    if not (pretrained / "model.safetensors").exists():
        print(f"pretraining on {PRETRAIN_CLASSES} ...", flush=True)
        epochs = ["--epochs", str(args.pretrain_epochs)] if args.pretrain_epochs else []
        seconds = run(["--classes", PRETRAIN_CLASSES, "--out", str(pretrained),
                       "--threads", args.threads, *epochs, *limit])
        print(f"  done in {seconds:.0f} s", flush=True)

    arms = {"scratch": [], "fine-tuned": ["--init-from", str(pretrained)],
            "head only": ["--init-from", str(pretrained), "--freeze-backbone"]}
    results = {arm: [] for arm in arms}
    for seed in args.seeds:
        for arm, extra in arms.items():
            run_dir = out / f"{arm.replace(' ', '_')}_seed{seed}"
            seconds = run(["--classes", TARGET_CLASSES, "--train-fraction", str(args.fraction),
                           "--epochs", str(args.epochs), "--seed", str(seed),
                           "--out", str(run_dir), "--threads", args.threads, *limit, *extra])
            m = json.loads((run_dir / "metrics.json").read_text())
            results[arm].append({"seed": seed, "accuracy": m["accuracy"],
                                 "balanced_accuracy": m["balanced_accuracy"],
                                 "macro_auroc": m["macro_auroc"], "seconds": round(seconds, 1)})
            print(f"seed {seed} {arm:10s} accuracy {m['accuracy']:.3f} balanced "
                  f"{m['balanced_accuracy']:.3f} macro AUROC {m['macro_auroc']:.3f} "
                  f"({seconds:.0f} s)", flush=True)

    first = json.loads((out / f"scratch_seed{args.seeds[0]}" / "metrics.json").read_text())
    summary = {"data": DATA, "pretrain_classes": PRETRAIN_CLASSES.split(","),
               "target_classes": TARGET_CLASSES.split(","), "fraction": args.fraction,
               "epochs": args.epochs, "runs": results,
               "n_train_images": first.get("n_train"), "n_test_images": first.get("n_test")}
    print(f"\n{'arm':12s} accuracy (mean ± sd over {len(args.seeds)} seeds)   macro AUROC")
    for arm, rows in results.items():
        acc = np.array([r["accuracy"] for r in rows])
        auc = np.array([r["macro_auroc"] for r in rows])
        summary[arm] = {"accuracy_mean": float(acc.mean()), "accuracy_sd": float(acc.std()),
                        "macro_auroc_mean": float(auc.mean())}
        print(f"{arm:12s} {acc.mean():.3f} ± {acc.std():.3f}                      "
              f"{auc.mean():.3f}")
    atomic_write_json(out / "summary.json", summary)
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
