"""``minidl-bio dna gan``: train a GAN on the positive class of a dataset, sample, evaluate.

::

    minidl-bio dna gan --data arabidopsis_nontata_promoters --out runs/gan --threads 1

writes into ``--out``:

- ``samples.fa``: the generated sequences (FASTA, ids ``gan_000001`` ...);
- ``evaluation.json``: :func:`minidl.bio.gan.evaluate_samples` of the samples, of uniform
  random sequences (the baseline) and of the held-out real sequences (the ceiling) against
  the training sequences, with a classifier's score when there is one, plus the run's
  settings and wall time;
- ``generator.safetensors`` + ``config.json``: the trained (weight-averaged) generator,
  loadable with :func:`minidl.bio.gan.load_generator`;
- ``history.csv``: losses, mean discriminator scores and the 4-mer distance per epoch.

Data: a shipped dataset name or a labelled table (the training sequences are the
``train`` and ``valid`` rows of class ``--label``, the held-out ones its ``test`` rows;
a table without a ``split`` column is split 80/10/10, seeded), or a FASTA file of
positives only (a seeded 10 % is held out).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["add_gan_parser", "run_gan"]

_SHIPPED_CLASSIFIERS = {"arabidopsis_nontata_promoters": "arabidopsis_promoters"}


def add_gan_parser(dna_subparsers):
    """Add the ``gan`` command to the ``minidl-bio dna`` sub-parsers."""
    from minidl.bio.cli import _add_backend_options

    g = dna_subparsers.add_parser(
        "gan", help="train a GAN on one class of sequences; samples as FASTA, "
        "evaluation (k-mer spectra, GC, classifier score vs random) as JSON")
    g.add_argument("--data", required=True,
                   help="shipped dataset name, a CSV/TSV table (sequence, label; optional "
                   "split) or a FASTA file of positives")
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--label", default=None,
                   help="the class to learn (default: 1 when the data has it, else the "
                   "last class)")
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of both networks")
    g.add_argument("--channels", type=int, default=64, help="feature maps of both networks")
    g.add_argument("--length", type=int, default=None,
                   help="pad/crop sequences to this length (default: the longest)")
    g.add_argument("--n-samples", type=int, default=None,
                   help="sequences to generate (default: as many as held out, else 1000)")
    g.add_argument("--classifier", default=None, metavar="MODEL",
                   help="DNA model (directory or shipped name) whose positive-class score "
                   "is reported; default: the shipped model of a shipped dataset "
                   "(arabidopsis_promoters for arabidopsis_nontata_promoters); 'none' = no "
                   "classifier")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--quiet", action="store_true")
    _add_backend_options(g)
    g.set_defaults(func=run_gan)
    return g


def _is_fasta(path):
    from minidl.bio.io import open_text

    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                return line.lstrip().startswith(">")
    return False


def _load(args):
    """``(train, held_out, label, source)``: sequences of the class to learn."""
    from minidl.bio.dna import load_dna_data
    from minidl.bio.io import read_fasta

    path = Path(args.data)
    if path.is_file() and _is_fasta(path):
        sequences = [r.sequence.upper() for r in read_fasta(path, alphabet="dna")]
        order = np.random.default_rng(args.seed).permutation(len(sequences))
        held = set(order[: len(sequences) // 10].tolist())
        train = [s for i, s in enumerate(sequences) if i not in held]
        held_out = [s for i, s in enumerate(sequences) if i in held]
        return train, held_out, args.label, f"fasta: {args.data}"
    data = load_dna_data(data=args.data, seed=args.seed)
    label = args.label if args.label is not None else (
        "1" if "1" in data.classes else data.classes[-1])
    if label not in data.classes:
        raise ValueError(f"--label {label!r}: the data's classes are {data.classes}")
    k = data.classes.index(label)

    def of_class(splits):
        return [s.upper() for split in splits
                for s, y in zip(data.sequences[split], data.labels[split]) if y == k]

    return of_class(("train", "valid")), of_class(("test",)), label, data.source


def _classifier(args, label):
    """``((model, config), positive_class)`` or ``(None, None)``."""
    name = args.classifier
    if name is None:
        name = _SHIPPED_CLASSIFIERS.get(Path(args.data).name.split(".")[0])
    if name is None or str(name).lower() == "none":
        return None, None
    from minidl.bio.modelio import load_model_dir
    from minidl.bio.models import build_model

    model, config = load_model_dir(name, build_model)
    if config.get("task") != "dna":
        raise ValueError(f"--classifier {name}: not a DNA model (task {config.get('task')!r})")
    classes = [str(c) for c in config["classes"]]
    positive = label if label in classes else classes[-1]
    return (model, config), positive


def _print_summary(result, file=None):
    ks = result["ks"]
    sets = [s for s in ("generated", "random", "held_out") if s in result]
    has_classifier = "classifier_score" in result["generated"]
    header = "            " + "".join(f"  {k}-mer JS" for k in ks) + "  GC mean  GC W1"
    print(f"against the {result['reference']['n']} training sequences "
          f"(GC mean {result['reference']['gc_mean']:.3f}):", file=file)
    print(header + ("  classifier" if has_classifier else ""), file=file)
    for name in sets:
        row = result[name]
        line = f"  {name:<10}" + "".join(f"  {row['kmer_js'][str(k)]:8.4f}" for k in ks)
        line += f"  {row['gc_mean']:7.3f}  {row['gc_w1']:.3f}"
        if has_classifier:
            line += f"  {row['classifier_score']:10.3f}"
        print(line, file=file)


def run_gan(args):
    """``minidl-bio dna gan``: see the module docstring."""
    from minidl.bio import gan
    from minidl.bio.dna import encode_split
    from minidl.bio.io import write_fasta
    from minidl.io.atomic import atomic_write_json

    out = Path(args.out)
    train, held_out, label, source = _load(args)
    if len(train) < 2:
        raise ValueError(f"{args.data}: need at least 2 training sequences of class "
                         f"{label!r}, found {len(train)}")
    length = args.length or max(len(s) for s in train)
    classifier, positive = _classifier(args, label)
    n_samples = args.n_samples or (len(held_out) if held_out else 1000)
    if not args.quiet:
        print(f"data: {source}; class {label!r}: {len(train)} training, {len(held_out)} "
              f"held-out sequences; length {length}", flush=True)
    x = encode_split(train, length)

    started = time.perf_counter()
    generator, _, history = gan.train_gan(
        x, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        channels=args.channels, seed=args.seed, verbose=not args.quiet)
    train_seconds = time.perf_counter() - started

    samples = gan.sample(generator, n_samples, seed=args.seed)
    result = gan.evaluate_samples(samples, train, classifier=classifier,
                                  held_out=held_out or None, positive_class=positive,
                                  seed=args.seed)
    settings = {"data": source, "label": label, "length": int(length),
                "n_train": len(train), "n_held_out": len(held_out), "epochs": args.epochs,
                "batch_size": args.batch_size, "lr": args.lr, "channels": args.channels,
                "seed": args.seed, "sampling": "sample"}
    result["settings"] = dict(settings, classifier=None if classifier is None else (
        args.classifier or _SHIPPED_CLASSIFIERS.get(Path(args.data).name.split(".")[0])),
        positive_class=positive)
    result["train_seconds"] = round(train_seconds, 1)
    result["steps"] = int(history.records[-1]["steps"]) if len(history) else 0

    gan.save_generator(out, generator, extra={"training": settings})
    write_fasta(out / "samples.fa",
                [(f"gan_{i + 1:06d}", s) for i, s in enumerate(samples)])
    atomic_write_json(out / "evaluation.json", result)
    history.to_csv(out / "history.csv")
    if not args.quiet:
        print(f"trained in {train_seconds:.0f} s ({result['steps']} generator steps); "
              f"{n_samples} samples", flush=True)
        _print_summary(result)
        print(f"wrote {out}/samples.fa, evaluation.json, generator.safetensors, config.json, "
              "history.csv")
    return 0
