"""``minidl-bio``: train, evaluate and use bio models from the command line.

::

    minidl-bio dna train --data arabidopsis_nontata_promoters --out runs/promoters
    minidl-bio dna train --fasta promoter=pos.fa --fasta background=neg.fa --out runs/mine
    minidl-bio dna evaluate --model runs/promoters --data table.csv
    minidl-bio dna predict --model arabidopsis_promoters --fasta new.fa --out scores.tsv
    minidl-bio dna explain --model arabidopsis_promoters --fasta new.fa --out explain/
    minidl-bio dna gan --data arabidopsis_nontata_promoters --out runs/gan
    minidl-bio cells train --data pbc_bloodmnist_like_28 --out runs/blood
    minidl-bio cells explain --model blood_cells_cnn --images cells/ --out saliency/

(also ``python -m minidl.bio ...``).  ``train`` writes into ``--out``: ``model.safetensors``,
``config.json``, ``metrics.json`` (test split), ``history.csv`` and ``curves.png`` (when
matplotlib is installed).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _add_backend_options(p):
    p.add_argument("--backend", default=None, choices=["auto", "numpy", "cpu", "numba"],
                   help="kernel backend (default: MINIDL_BACKEND or auto)")
    p.add_argument("--threads", type=int, default=None, help="threads for compiled kernels")


def build_parser():
    parser = argparse.ArgumentParser(prog="minidl-bio", description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True)
    dna = tasks.add_parser("dna", help="DNA sequence classification")
    cmds = dna.add_subparsers(dest="command", required=True)

    t = cmds.add_parser("train", help="train a classifier")
    src = t.add_argument_group("data (one of --data, --train/--valid/--test, --fasta)")
    src.add_argument("--data", help="shipped dataset name or a CSV/TSV table "
                     "(columns sequence, label; optional split, id)")
    src.add_argument("--train")
    src.add_argument("--valid")
    src.add_argument("--test")
    src.add_argument("--fasta", action="append", metavar="LABEL=PATH",
                     help="one FASTA file per class (repeat)")
    t.add_argument("--out", required=True, help="output directory")
    t.add_argument("--model", default="cnn", choices=["cnn", "danq"],
                   help="cnn: DeepBind/Basset-style CNN (default); danq: CNN + BiLSTM")
    t.add_argument("--pool-bins", type=int, default=16,
                   help="cnn: coarse positional bins besides global pooling (0 = global only)")
    t.add_argument("--kmers", default="",
                   help="cnn: k-mer sizes of a wide k-mer-spectrum branch, e.g. 3,4,5,6 "
                        "('' or 0 = none)")
    t.add_argument("--epochs", type=int, default=24)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    t.add_argument("--weight-decay", type=float, default=1e-2)
    t.add_argument("--patience", type=int, default=8,
                   help="early stopping on validation loss (epochs)")
    t.add_argument("--length", type=int, default=None,
                   help="pad/crop sequences to this length (default: longest training sequence)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--strand", default="auto", choices=["auto", "both", "forward"],
                   help="both: reverse-complement augmentation and strand averaging (labels "
                        "that do not depend on the strand, e.g. binding sites); forward: "
                        "the sequences as given (stranded labels, e.g. promoters); auto "
                        "(default): decided on validation by a quick k-mer model")
    t.add_argument("--no-rc", action="store_true", help="the same as --strand forward")
    t.add_argument("--no-kmer", action="store_true",
                   help="the CNN alone, without the blended k-mer logistic regression")
    t.add_argument("--kmer-ks", default="2,3,4",
                   help="k-mer sizes of the blended k-mer model (default 2,3,4)")
    t.add_argument("--kmer-bins", type=int, default=10,
                   help="position bins of the k-mer model's counts (default 10; 1 = whole "
                        "sequence)")
    t.add_argument("--kmer-weight", type=float, default=None,
                   help="fixed weight of the k-mer model in the blend, in [0, 1) (default: "
                        "chosen on validation)")
    t.add_argument("--quiet", action="store_true")
    _add_backend_options(t)

    e = cmds.add_parser("evaluate", help="metrics of a trained model on labelled data")
    e.add_argument("--model", required=True, help="model directory or shipped model name")
    e.add_argument("--data", required=True, help="table (CSV/TSV) with sequence and label")
    e.add_argument("--split", default=None,
                   help="evaluate only rows of this split (default: test if the table has a "
                   "split column, else all rows)")
    e.add_argument("--out", default=None, help="write metrics.json here (a file or directory)")
    _add_backend_options(e)

    pr = cmds.add_parser("predict", help="class probabilities for sequences in a FASTA file")
    pr.add_argument("--model", required=True)
    pr.add_argument("--fasta", required=True)
    pr.add_argument("--out", default=None, help="TSV output (default: standard output)")
    pr.add_argument("--no-rc", action="store_true", help="forward strand only")
    _add_backend_options(pr)
    _add_dna_explain(cmds)
    from minidl.bio.gan_cli import add_gan_parser
    add_gan_parser(cmds)  # dna gan
    _add_ensemble(cmds, "dna")
    _add_protein(tasks)
    _add_cells(tasks)
    return parser


def _add_dna_explain(cmds):
    x = cmds.add_parser(
        "explain", help="attributions per sequence (saliency, gradient x input, integrated "
        "gradients, in-silico mutagenesis) and first-layer motifs (MEME + logos)")
    x.add_argument("--model", required=True, help="model directory or shipped model name")
    x.add_argument("--fasta", required=True, help="sequences to explain")
    x.add_argument("--out", required=True, help="output directory")
    x.add_argument("--method", default="all",
                   help="all (default) or a comma-separated subset of saliency, "
                   "gradient_x_input (gxi), integrated_gradients (ig), ism")
    x.add_argument("--target", default=None,
                   help="class to explain (default: the second class of a two-class model, "
                   "else each sequence's predicted class)")
    x.add_argument("--ig-steps", type=int, default=50,
                   help="integrated gradients: trapezoid steps (default 50)")
    x.add_argument("--baseline", default="shuffle", choices=["shuffle", "zeros", "uniform"],
                   help="integrated gradients: the mean over shuffles of each sequence "
                   "(default), all-zero columns, or 0.25 per base")
    x.add_argument("--shuffles", type=int, default=8,
                   help="--baseline shuffle: shuffled baselines per sequence (default 8)")
    x.add_argument("--max-sequences", type=int, default=None,
                   help="explain only the first N records of the FASTA file")
    x.add_argument("--top-positions", type=int, default=10,
                   help="positions listed per sequence in summary.json")
    x.add_argument("--data", default=None,
                   help="collect first-layer activations for motifs over this shipped "
                   "dataset or table instead of the FASTA sequences")
    x.add_argument("--data-split", default="all", help="--data: all, train, valid or test")
    x.add_argument("--data-class", default=None,
                   help="--data: only the sequences of this class (e.g. the promoters)")
    x.add_argument("--data-limit", type=int, default=2000,
                   help="--data: at most this many sequences (seeded sample; 0 = all)")
    x.add_argument("--motif-threshold", type=float, default=0.5,
                   help="a window is a site when its activation exceeds this fraction of "
                   "the filter's maximum (Basset: 0.5)")
    x.add_argument("--motif-top-n", type=int, default=None,
                   help="instead of the threshold: each filter's N highest-activation windows")
    x.add_argument("--motifs", type=int, default=12,
                   help="logo PNGs for this many most informative filters (MEME has all)")
    x.add_argument("--min-sites", type=int, default=10,
                   help="rank (tsv, logos) only filters with at least this many sites")
    x.add_argument("--no-motifs", action="store_true", help="skip the first-layer motifs")
    x.add_argument("--no-plots", action="store_true", help="arrays and tables only, no PNG")
    x.add_argument("--batch-size", type=int, default=256)
    x.add_argument("--seed", type=int, default=0, help="seed of the shuffles and of --data")
    x.add_argument("--quiet", action="store_true")
    _add_backend_options(x)


def _add_protein(tasks):
    prot = tasks.add_parser("protein", help="per-residue secondary structure (H/E/C)")
    cmds = prot.add_subparsers(dest="command", required=True)
    t = cmds.add_parser("train", help="train a BiLSTM tagger")
    t.add_argument("--data", required=True,
                   help="shipped dataset name or a CSV/TSV with sequence and ss3 (or ss8), "
                   "optional split and mask columns")
    t.add_argument("--mask-column", default=None,
                   help="0/1 per residue, 1 = scored (default: the first of resolved_mask, "
                   "eval_mask, mask present)")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=4e-3, help="peak learning rate (one-cycle)")
    t.add_argument("--hidden", type=int, default=128, help="LSTM hidden size per direction")
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--dropout", type=float, default=0.25)
    t.add_argument("--conv-channels", type=int, default=64,
                   help="convolution before the LSTM (0 = plain BiLSTM tagger)")
    t.add_argument("--conv-kernel", type=int, default=11)
    t.add_argument("--patience", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    _add_backend_options(t)
    e = cmds.add_parser("evaluate", help="Q3 of a trained model on a labelled table")
    e.add_argument("--model", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--mask-column", default=None)
    e.add_argument("--split", default=None,
                   help="only this split (default: test when the table has one, else all)")
    e.add_argument("--out", default=None)
    _add_backend_options(e)
    pr = cmds.add_parser("predict", help="H/E/C per residue for a FASTA file")
    pr.add_argument("--model", required=True)
    pr.add_argument("--fasta", required=True)
    pr.add_argument("--out", default=None)
    _add_backend_options(pr)
    _add_ensemble(cmds, "protein")


def _add_ensemble(cmds, task):
    """``minidl-bio TASK ensemble --members A B ... --out DIR``: one model directory that
    averages the members' probabilities (e.g. the same ``train`` command run with several
    seeds, one per core); ``evaluate`` and ``predict`` take it like any model."""
    en = cmds.add_parser("ensemble", help="combine trained models into one that averages "
                                          "their probabilities")
    en.add_argument("--members", nargs="+", required=True,
                    help="model directories or shipped names (same task, classes, encoding)")
    en.add_argument("--out", required=True, help="output model directory")
    en.set_defaults(func=_run_ensemble, ensemble_task=task)


def _run_ensemble(args):
    from minidl.bio.modelio import save_ensemble_dir

    if args.ensemble_task == "dna":
        from minidl.bio.models import build_model as build
    elif args.ensemble_task == "protein":
        from minidl.bio.protein import build_tagger as build
    else:
        from minidl.bio.cell_models import build_cell_model as build
    _, config = save_ensemble_dir(args.out, args.members, build, task=args.ensemble_task)
    print(f"wrote {args.out}: an ensemble of {len(args.members)} {args.ensemble_task} models "
          f"(mean {config['model']['output']} probabilities); score it with "
          f"`minidl-bio {args.ensemble_task} evaluate --model {args.out} --data ... --out "
          f"{args.out}`")
    return 0


def _add_cells(tasks):
    cells = tasks.add_parser("cells", help="microscopy cell-image classification")
    cmds = cells.add_subparsers(dest="command", required=True)
    t = cmds.add_parser("train", help="train a CNN (or fine-tune a pretrained one)")
    t.add_argument("--data", required=True,
                   help="shipped dataset name, a MedMNIST-style .npz, or a folder with one "
                   "sub-folder per class (optionally inside train/ valid/ test/)")
    t.add_argument("--out", required=True)
    t.add_argument("--model", default="cnn", choices=["cnn", "resnet"],
                   help="cnn: conv-BN-ReLU-pool blocks (default); resnet: small ResNet")
    t.add_argument("--channels", default="32,64,128",
                   help="channels per block (cnn) or per stage (resnet)")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (one-cycle; default 3e-3, or 1e-3 when "
                        "fine-tuning a whole network with --init-from)")
    t.add_argument("--weight-decay", type=float, default=1e-2)
    t.add_argument("--label-smoothing", type=float, default=0.05)
    t.add_argument("--patience", type=int, default=10,
                   help="early stopping on validation loss (epochs)")
    t.add_argument("--normalize", default="percentile", choices=["percentile", "scale"],
                   help="per-image per-channel percentiles 1/99.8 (default) or a fixed "
                   "scale (255 for 8-bit); then standardisation with training statistics")
    t.add_argument("--size", type=int, default=None,
                   help="resize images to SIZE x SIZE (default: as read; the median size "
                   "when a folder's images differ)")
    t.add_argument("--no-augment", action="store_true",
                   help="no flips, rotations, shifts or brightness/contrast jitter")
    t.add_argument("--no-tta", action="store_true",
                   help="predict on the image only, not averaged over its 8 symmetries")
    t.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on this stratified fraction of the training split")
    t.add_argument("--limit", type=int, default=None,
                   help="a stratified sample of at most N images per split (quick trials)")
    t.add_argument("--classes", default=None, metavar="A,B,...",
                   help="train on these classes only (names, comma-separated)")
    t.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from a pretrained cell model (directory or shipped name): "
                   "its backbone, a new head")
    t.add_argument("--freeze-backbone", action="store_true",
                   help="with --init-from: train the new head only")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    _add_backend_options(t)
    e = cmds.add_parser("evaluate", help="metrics of a trained model on labelled images")
    e.add_argument("--model", required=True, help="model directory or shipped model name")
    e.add_argument("--data", required=True, help="dataset name, .npz or class folders")
    e.add_argument("--split", default=None, help="train, valid or test (default: test)")
    e.add_argument("--seed", type=int, default=0,
                   help="seed of the automatic split of a folder without train/valid/test")
    e.add_argument("--no-tta", action="store_true")
    e.add_argument("--out", default=None, help="metrics.json (+ confusion.png in a directory)")
    _add_backend_options(e)
    pr = cmds.add_parser("predict", help="class probabilities per image (TSV)")
    pr.add_argument("--model", required=True)
    pr.add_argument("--images", required=True,
                    help="an image file, a folder of images, a .npz or a dataset name")
    pr.add_argument("--split", default=None, help=".npz/dataset split (default: test)")
    pr.add_argument("--no-tta", action="store_true")
    pr.add_argument("--out", default=None, help="TSV output (default: standard output)")
    _add_backend_options(pr)
    x = cmds.add_parser("explain", help="gradient saliency maps as PNG")
    x.add_argument("--model", required=True)
    x.add_argument("--images", required=True,
                   help="an image file, a folder of images, a .npz or a dataset name")
    x.add_argument("--split", default=None, help=".npz/dataset split (default: test)")
    x.add_argument("--n", type=int, default=16, help="explain the first N images")
    x.add_argument("--out", required=True, help="output directory for the PNG files")
    _add_backend_options(x)
    _add_ensemble(cmds, "cells")


def _data_path(name_or_path):
    """A table path from a path or a shipped dataset name."""
    from pathlib import Path

    from minidl.bio import datasets

    if Path(name_or_path).exists():
        return Path(name_or_path)
    if name_or_path in datasets.available():
        return datasets.dataset_path(name_or_path)
    raise FileNotFoundError(f"{name_or_path!r} is neither a file nor a shipped dataset "
                            f"(shipped: {', '.join(datasets.available())})")


def _apply_backend(args):
    """Set the backend/threads the options ask for; returns what to restore (``main`` is
    also called in-process, from notebooks and tests, where settings must not leak)."""
    import minidl
    from minidl import backend

    previous = (backend.get_backend(), None)
    if getattr(args, "backend", None):
        minidl.set_backend(args.backend)
    if getattr(args, "threads", None):
        # restored afterwards only when changed: setting threads also bounds NumPy's BLAS,
        # which must keep whatever the user chose (e.g. OPENBLAS_NUM_THREADS) otherwise
        previous = (previous[0], backend.get_num_threads())
        minidl.set_num_threads(args.threads)
    return previous


def main(argv=None):
    """Entry point of ``minidl-bio``; returns the exit status (2 on a user error)."""
    import minidl

    args = build_parser().parse_args(argv)
    backend, threads = _apply_backend(args)
    try:
        if getattr(args, "func", None) is not None:  # commands that name their runner
            return args.func(args)
        if args.task == "dna":
            from minidl.bio import dna_cli

            return {"train": dna_cli.train, "evaluate": dna_cli.evaluate,
                    "predict": dna_cli.predict, "explain": dna_cli.explain}[args.command](args)
        if args.task == "protein":
            from minidl.bio import protein_cli

            if getattr(args, "data", None) is not None:
                args.data_path = _data_path(args.data)
            return {"train": protein_cli.train, "evaluate": protein_cli.evaluate,
                    "predict": protein_cli.predict}[args.command](args)
        if args.task == "cells":
            from minidl.bio import cells_cli

            return {"train": cells_cli.train, "evaluate": cells_cli.evaluate,
                    "predict": cells_cli.predict, "explain": cells_cli.explain}[args.command](args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"minidl-bio: error: {err}", file=sys.stderr)
        return 2
    finally:
        minidl.set_backend(backend)
        if threads is not None:
            minidl.set_num_threads(threads)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
