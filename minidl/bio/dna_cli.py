"""The ``minidl-bio dna`` commands: train, evaluate, predict, explain (see
:mod:`minidl.bio.cli`)."""

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

__all__ = ["train", "evaluate", "predict", "explain", "classification_metrics"]


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


def _parse_kmers(text, option="--kmers", largest=8):
    """``"3,4,5,6"`` -> ``[3, 4, 5, 6]``; ``""`` or ``"0"`` -> ``[]``."""
    text = str(text or "").strip()
    if text in ("", "0"):
        return []
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if min(ks) < 1 or max(ks) > largest:
        raise ValueError(f"{option}: sizes must be between 1 and {largest} "
                         f"(4^{largest} features), got {text!r}")
    return ks


def _strand(args):
    """The ``--strand`` choice, with the older ``--no-rc`` meaning ``forward``."""
    if getattr(args, "no_rc", False):
        return "forward"
    return getattr(args, "strand", "auto") or "auto"


def train(args):
    """``minidl-bio dna train``: fit a CNN (keeping the best epoch on validation) and a
    k-mer linear model, blend them with a weight chosen on validation, report test.

    Steps: (1) the strand check (``--strand auto``: is reverse-complement augmentation
    harmless here? see :func:`minidl.bio.kmer_model.choose_strand`); (2) unless
    ``--no-kmer``, the L2-penalised logistic regression on positional k-mer counts; (3) the
    CNN, AdamW with a one-cycle schedule and early stopping on the validation loss; (4) the
    blend weight :math:`w` minimising the validation log loss of
    :math:`(1 - w) p_\text{CNN} + w p_\text{k-mer}`; a weight of 0 keeps the CNN alone.
    """
    import minidl
    from minidl import nn, optim
    from minidl.bio.augment import RandomReverseComplement
    from minidl.bio.kmer_model import choose_blend_weight, choose_strand, fit_kmer_linear
    from minidl.bio.modelio import Ensemble, save_model_dir
    from minidl.bio.models import build_model
    from minidl.io.atomic import atomic_write_json

    out = Path(args.out)
    say = (lambda *a: None) if args.quiet else print
    fixed = getattr(args, "kmer_weight", None)
    if fixed is not None and not 0.0 <= fixed < 1.0:
        raise ValueError(f"--kmer-weight must be in [0, 1), got {fixed}")
    data = load_dna_data(data=args.data, train=args.train, valid=args.valid, test=args.test,
                         fasta=args.fasta, seed=args.seed)
    classes = data.classes
    num_classes = len(classes)
    length = args.length or max(len(s) for s in data.sequences["train"])
    say(f"data: {data.source}; {num_classes} classes; length {length}")
    say("      " + data.counts())
    x = {s: encode_split(data.sequences[s], length, ids=data.ids[s]) for s in data.sequences}
    y = data.labels
    # 4^6 words x 10 bins is already 41k features per sequence
    kmer_ks = _parse_kmers(getattr(args, "kmer_ks", "2,3,4"), "--kmer-ks", 6) or [2, 3, 4]
    kmer_bins = getattr(args, "kmer_bins", 10)
    use_kmer = not getattr(args, "no_kmer", False)

    started = time.perf_counter()
    strand = _strand(args)
    strand_check = None
    if strand == "auto":
        strand, strand_check = choose_strand(x["train"], y["train"], x["valid"], y["valid"],
                                             num_classes, ks=kmer_ks, bins=kmer_bins, log=say)
    both = strand == "both"
    if use_kmer:
        # before the CNN, which it does not need: a failure here costs seconds, not a training
        kmer, kmer_info = fit_kmer_linear(x["train"], y["train"], x["valid"], y["valid"],
                                          num_classes, ks=kmer_ks, bins=kmer_bins, rc=both,
                                          log=say, seed=args.seed)

    minidl.manual_seed(args.seed)
    config = {"model": args.model, "num_classes": num_classes}
    if args.model == "cnn":
        config["pool_bins"] = args.pool_bins
        config["kmers"] = _parse_kmers(getattr(args, "kmers", ""))
    model = build_model(config)
    binary = num_classes == 2
    loss_fn = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    from minidl.data import DataLoader, TensorDataset
    from minidl.train import EarlyStopping, fit

    train_y = y["train"].astype(np.float32) if binary else y["train"]
    valid_y = y["valid"].astype(np.float32) if binary else y["valid"]
    rc = RandomReverseComplement(p=0.5, seed=args.seed + 1) if both else None

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
    strands = "both (reverse-complement augmentation)" if both else "forward only"
    say(f"CNN ({args.model}), strands: {strands}")
    history = fit(
        model, loss_fn, optimizer, train_loader, valid_loader, epochs=args.epochs,
        scheduler=scheduler, scheduler_interval="step",
        metrics=["accuracy", "mcc"] if binary else ["accuracy"],
        task="binary" if binary else "multiclass",
        callbacks=[EarlyStopping(monitor="val_loss", patience=args.patience,
                                 restore_best_weights=True)],
        verbose=0 if args.quiet else 1,
    )

    final, parts, blend = model, {}, None
    if use_kmer:
        valid_cnn = predict_proba(model, x["valid"], num_classes, rc_average=both)
        valid_kmer = predict_proba(kmer, x["valid"], num_classes, rc_average=both)
        weight, losses = choose_blend_weight(
            y["valid"], valid_cnn, valid_kmer,
            grid=None if fixed is None else sorted({0.0, float(fixed)}))
        if fixed is not None:
            weight = float(fixed)
        say(f"blend: weight of the k-mer model {weight:g} (validation log loss: CNN alone "
            f"{losses[0.0]:.4f}, blend {losses[weight]:.4f})")
        blend = {"kmer_weight": weight, "kmer_C": kmer_info["C"], "kmer_ks": kmer_ks,
                 "kmer_bins": kmer_bins, "kmer_seconds": kmer_info["seconds"],
                 "valid_log_loss": {"cnn": losses[0.0], "blend": losses[weight]}}
        for name, member in (("cnn", model), ("kmer", kmer)):
            proba = predict_proba(member, x["test"], num_classes, rc_average=both)
            m = classification_metrics(y["test"], proba, classes)
            parts[name] = {k: m[k] for k in ("accuracy", "mcc", "auroc", "auprc")}
        if weight > 0:
            final = Ensemble([model, kmer], output="sigmoid" if binary else "softmax",
                             weights=[1.0 - weight, weight])
    train_seconds = time.perf_counter() - started

    proba = predict_proba(final, x["test"], num_classes, rc_average=both)
    metrics = classification_metrics(y["test"], proba, classes)
    metrics["train_seconds"] = round(train_seconds, 1)
    metrics["epochs_run"] = len(history)
    metrics["strand"] = strand
    if parts:
        metrics["members"] = parts
        metrics["kmer_weight"] = blend["kmer_weight"]
    full_config = {
        "task": "dna",
        "model": final.config,
        "classes": classes,
        "encoding": {"alphabet": "dna", "length": int(length), "crop": "center"},
        "predict": {"rc_average": both},
        "training": {"data": data.source, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr": args.lr, "weight_decay": args.weight_decay, "seed": args.seed,
                     "patience": args.patience, "strand": strand,
                     "strand_check": strand_check, "blend": blend},
    }
    save_model_dir(out, final, full_config)
    atomic_write_json(out / "metrics.json", metrics)
    _write_history(history, out)
    if not args.quiet:
        print(f"test ({len(y['test'])} sequences), trained in {train_seconds:.0f} s:")
        for name, m in parts.items():
            print(f"  {name} alone: accuracy {m['accuracy']:.4f}  MCC {m['mcc']:.4f}  "
                  f"AUROC {m['auroc']:.4f}")
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


# ------------------------------------------------------------------ explain

EXPLAIN_METHODS = ("saliency", "gradient_x_input", "integrated_gradients", "ism")
_METHOD_ALIASES = {"gxi": "gradient_x_input", "ig": "integrated_gradients",
                   "mutagenesis": "ism"}


def _parse_methods(text):
    """``"all"`` or a comma-separated subset of :data:`EXPLAIN_METHODS` (aliases gxi,
    ig, mutagenesis)."""
    if text in (None, "", "all"):
        return list(EXPLAIN_METHODS)
    methods = []
    for name in (t.strip() for t in text.split(",") if t.strip()):
        name = _METHOD_ALIASES.get(name, name)
        if name not in EXPLAIN_METHODS:
            raise ValueError(f"--method: unknown method {name!r}; expected 'all' or some of "
                             f"{', '.join(EXPLAIN_METHODS)} (aliases gxi, ig)")
        if name not in methods:
            methods.append(name)
    return methods


def _npy_bytes(array):
    """``.npy`` bytes of a numeric array (never pickled)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _safe_name(text, limit=60):
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:limit].strip("_") or "seq"


def _motif_sequences(args, length, fasta_x):
    """One-hot sequences whose first-layer activations make the motifs: ``--data`` (a
    shipped dataset or table; ``--data-split``, ``--data-class``, at most ``--data-limit``
    rows, seeded) or the FASTA sequences."""
    if not args.data:
        return fasta_x, f"the {len(fasta_x)} FASTA sequences"
    data = load_dna_data(data=args.data, seed=args.seed)
    splits = ["train", "valid", "test"] if args.data_split == "all" else [args.data_split]
    if any(s not in data.sequences for s in splits):
        raise ValueError(f"--data-split must be all, train, valid or test, got "
                         f"{args.data_split!r}")
    wanted = None
    if args.data_class is not None:
        if args.data_class not in data.classes:
            raise ValueError(f"--data-class {args.data_class!r}: not a class of {args.data} "
                             f"({', '.join(data.classes)})")
        wanted = data.classes.index(args.data_class)
    seqs = [s for split in splits
            for s, label in zip(data.sequences[split], data.labels[split])
            if wanted is None or label == wanted]
    if args.data_limit and len(seqs) > args.data_limit:
        keep = np.sort(np.random.default_rng(args.seed).choice(len(seqs), args.data_limit,
                                                               replace=False))
        seqs = [seqs[i] for i in keep]
    which = args.data_split + ("" if wanted is None else f", class {args.data_class}")
    return encode_split(seqs, length), f"{len(seqs)} sequences of {args.data} ({which})"


def _differentiable_part(model):
    """``(model, None)``, or for an ensemble with k-mer members the ensemble of its other
    members (or the one other member) and a description of it."""
    from minidl.bio.modelio import Ensemble
    from minidl.bio.models import KmerLinear

    if not isinstance(model, Ensemble):
        return model, None
    keep = [(m, w) for m, w in zip(model.members, model.weights or [1.0] * len(model.members))
            if not isinstance(m, KmerLinear)]
    if len(keep) == len(model.members):
        return model, None
    if not keep:
        raise ValueError("the model has only k-mer members, which have no input gradient "
                         "to explain")
    if len(keep) == 1:
        return keep[0][0], f"{keep[0][0].config['model']} member"
    total = sum(w for _, w in keep)
    sub = Ensemble([m for m, _ in keep], output=model.output,
                   weights=[w / total for _, w in keep])
    sub.eval()
    return sub, f"ensemble of its {len(keep)} non-k-mer members"


def explain(args):
    """``minidl-bio dna explain``: attributions per FASTA sequence and first-layer motifs.

    Into ``--out``:

    - ``sequences/<NNN>_<id>/``: ``saliency.npy`` (|gradient|, 4 x n), ``gradient_x_input.npy``
      and ``integrated_gradients.npy`` (4 x n, non-zero at the observed base),
      ``ism.npy`` (n x 4 score changes, 0 at the observed base), ``attribution.tsv`` (one row
      per position: the maps at the observed base and the mean/min ISM change) and
      ``explain.png`` (logos + ISM heatmap, with matplotlib); ``n`` is the sequence length,
      or the model's input length for a longer sequence (centre window, whose start is
      ``window_start`` in the summary); bases in the ACGT order;
    - ``motifs.meme`` (MEME format, every first-layer filter with sites), ``motifs.tsv``,
      ``motif_logos/<filter>.png`` for the ``--motifs`` most informative filters;
    - ``summary.json``: scores, probabilities, the top positions by integrated gradients,
      the completeness gap of integrated gradients, the motif table and the files.

    Scores are logits (for a two-class model: the logit of the second class, or its
    negative with ``--target`` naming the first), on the forward strand.  Integrated
    gradients start by default from shuffles of each sequence (``--baseline shuffle``):
    a trained promoter model may score the all-zero input as a very confident promoter
    (the shipped one's CNN: logit 8.3), which makes zero-baseline attributions explain the
    distance to that instead of what is in the sequence.

    A CNN + k-mer blend (what ``dna train`` saves by default) is explained through its
    CNN: the k-mer member counts words, which has no gradient, so gradient attributions
    could not add up to the blend's score.  Scores, attributions and mutagenesis are then
    the CNN member's; the probabilities are still the whole model's.
    """
    from minidl.bio import interpret
    from minidl.bio import motifs as motif_tools
    from minidl.bio.encode import _window, one_hot
    from minidl.bio.io import read_fasta
    from minidl.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

    full_model, config = _load(args.model)
    model, explained = _differentiable_part(full_model)
    if explained is not None:
        print(f"note: explaining the {explained} of the blend (the k-mer member has no "
              "input gradient)", file=sys.stderr)
    classes = config["classes"]
    length = config["encoding"]["length"]
    methods = _parse_methods(args.method)
    records = read_fasta(args.fasta, alphabet="dna")
    if args.max_sequences:
        records = records[:args.max_sequences]
    ids = [r.id for r in records]
    x, real = one_hot([r.sequence for r in records], "dna", length=length, ids=ids,
                      return_mask=True)
    target = None
    if args.target is not None:
        if args.target not in classes:
            raise ValueError(f"--target {args.target!r}: not a class of the model "
                             f"({', '.join(classes)})")
        target = classes.index(args.target)

    plots = None
    if not args.no_plots:
        try:
            from minidl.bio import plots

            plots.require_matplotlib()
        except ImportError as err:
            plots = None
            print(f"note: no PNG files ({err})", file=sys.stderr)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scores, targets = interpret.model_scores(model, x, target, args.batch_size)
    proba = predict_proba(full_model, x, len(classes), rc_average=False)
    proba_rc = predict_proba(full_model, x, len(classes), rc_average=True)
    maps = {}
    if {"saliency", "gradient_x_input"} & set(methods):
        grads, _, _ = interpret.input_gradients(model, x, targets, args.batch_size)
        if "saliency" in methods:
            maps["saliency"] = np.abs(grads)
        if "gradient_x_input" in methods:
            maps["gradient_x_input"] = grads * x
    ig_gap = None
    if "integrated_gradients" in methods:
        maps["integrated_gradients"], ig_gap = interpret.integrated_gradients(
            model, x, baseline=args.baseline, steps=args.ig_steps, target=targets,
            batch_size=args.batch_size, return_delta=True, n_shuffles=args.shuffles,
            seed=args.seed)

    summary_rows, started = [], time.perf_counter()
    for i, rec in enumerate(records):
        n = int(real[i].sum())
        start, _ = _window(len(rec.sequence), length, "center")
        folder = out / "sequences" / f"{i:03d}_{_safe_name(rec.id)}"
        folder.mkdir(parents=True, exist_ok=True)
        xi = x[i, :, :n]
        seq_maps = {name: values[i, :, :n] for name, values in maps.items()}
        ism = None
        if "ism" in methods:
            ism = interpret.in_silico_mutagenesis(model, x[i], targets[i], args.batch_size,
                                                  positions=np.arange(n))[:n]
        files = {}
        for name, values in seq_maps.items():
            atomic_write_bytes(folder / f"{name}.npy", _npy_bytes(values.astype(np.float32)))
            files[name] = f"{folder.relative_to(out)}/{name}.npy"
        if ism is not None:
            atomic_write_bytes(folder / "ism.npy", _npy_bytes(ism.astype(np.float32)))
            files["ism"] = f"{folder.relative_to(out)}/ism.npy"

        # One row per position, the values at the observed base (the sum over bases of
        # map x one-hot; for an N it is the mean of the four).
        letters = rec.sequence[start:start + n].upper()
        header = ["position", "base"] + list(seq_maps)
        columns = [(values * xi).sum(axis=0) for values in seq_maps.values()]
        if ism is not None:
            header += ["ism_mean", "ism_min"]
            alt = np.where(xi.T == 1, np.nan, ism)      # the observed base is no mutation
            columns += [np.nanmean(alt, axis=1), np.nanmin(alt, axis=1)]
        lines = ["\t".join(header)]
        for p in range(n):
            lines.append(f"{start + p}\t{letters[p]}\t" + "\t".join(
                f"{c[p]:.6g}" for c in columns))
        atomic_write_text(folder / "attribution.tsv", "\n".join(lines) + "\n")
        files["tsv"] = f"{folder.relative_to(out)}/attribution.tsv"

        row = {"id": rec.id, "length": len(rec.sequence), "window_start": int(start),
               "window_length": n, "target": classes[int(targets[i])],
               "score": float(scores[i]),
               "probabilities": {c: float(p) for c, p in zip(classes, proba[i])},
               "probabilities_rc_average": {c: float(p) for c, p in zip(classes, proba_rc[i])},
               "predicted": classes[int(np.argmax(proba_rc[i]))], "files": files}
        ranking = seq_maps.get("integrated_gradients", seq_maps.get("gradient_x_input"))
        if ranking is not None:
            at_base = (ranking * xi).sum(axis=0)
            top = np.argsort(-np.abs(at_base))[:args.top_positions]
            row["top_positions"] = [{"position": int(start + p), "base": letters[p],
                                     "attribution": float(at_base[p])} for p in top]
        if ig_gap is not None:
            row["integrated_gradients_gap"] = float(ig_gap[i])
        if plots is not None:
            plots.plot_sequence_attributions(
                xi, seq_maps, folder / "explain.png", ism=ism,
                title=f"{rec.id}: score {scores[i]:.2f} "
                      f"(p_{classes[-1]} {proba[i, -1]:.3f}), positions from {start}")
            files["png"] = f"{folder.relative_to(out)}/explain.png"
        summary_rows.append(row)
    attribution_seconds = time.perf_counter() - started

    summary = {"model": str(args.model), "classes": classes, "input_length": length,
               "explained": explained or "the whole model",
               "methods": methods, "score": "logit of the target class (forward strand)",
               "integrated_gradients": {
                   "steps": args.ig_steps, "baseline": args.baseline, "rule": "trapezoid",
                   "shuffles": args.shuffles if args.baseline == "shuffle" else None},
               "sequences": summary_rows, "png": plots is not None,
               "attribution_seconds": round(attribution_seconds, 2)}

    if not args.no_motifs:
        xm, source = _motif_sequences(args, length, x)
        found = motif_tools.filter_motifs(model, xm, threshold=args.motif_threshold,
                                          top_n=args.motif_top_n, batch_size=args.batch_size)
        with_sites = [m for m in found if m.nsites > 0]
        background = motif_tools.background_frequencies(xm)
        motif_tools.write_meme(out / "motifs.meme", with_sites, background=background)
        bits = {m.name: float(m.information_content().sum()) for m in with_sites}
        ranked = sorted((m for m in with_sites if m.nsites >= args.min_sites),
                        key=lambda m: -bits[m.name])
        lines = ["filter\tconsensus\tnsites\tbits\tmax_activation"]
        lines += [f"{m.name}\t{m.alt_name}\t{m.nsites}\t{bits[m.name]:.3f}\t"
                  f"{m.info['max_activation']:.4g}" for m in ranked]
        atomic_write_text(out / "motifs.tsv", "\n".join(lines) + "\n")
        logos = []
        if plots is not None and args.motifs > 0:
            (out / "motif_logos").mkdir(exist_ok=True)
            for m in ranked[:args.motifs]:
                motif_tools.save_logo(m, out / "motif_logos" / f"{m.name}.png")
                logos.append(f"motif_logos/{m.name}.png")
        summary["motifs"] = {
            "source": source, "threshold": None if args.motif_top_n else args.motif_threshold,
            "top_n": args.motif_top_n,
            "filters": len(found), "filters_with_sites": len(with_sites),
            "min_sites": args.min_sites, "file": "motifs.meme", "table": "motifs.tsv",
            "background": dict(zip("ACGT", map(float, background))), "logos": logos,
            "top": [{"name": m.name, "consensus": m.alt_name, "nsites": m.nsites,
                     "bits": round(bits[m.name], 3)} for m in ranked[:args.motifs or 10]],
        }
    atomic_write_json(out / "summary.json", summary)
    if not args.quiet:
        for row in summary_rows:
            print(f"{row['id']}: score {row['score']:.3f}, predicted {row['predicted']}"
                  + (f", IG gap {row['integrated_gradients_gap']:.2e}"
                     if "integrated_gradients_gap" in row else ""))
        if "motifs" in summary:
            top = ", ".join(f"{t['name']} {t['consensus']}"
                            for t in summary["motifs"]["top"][:5])
            print(f"motifs from {summary['motifs']['source']}: "
                  f"{summary['motifs']['filters_with_sites']} filters with sites; "
                  f"most informative: {top}")
        print(f"wrote {out}/summary.json, sequences/ ({len(records)} folders)"
              + (", motifs.meme, motifs.tsv" if "motifs" in summary else "")
              + ("" if plots is not None else " (no PNGs: matplotlib missing or --no-plots)"))
    return 0
