"""Two more DNA tasks, made from the shipped promoter data, to check that ``minidl-bio dna
train`` with its defaults also works on data of other lengths, class counts and strandedness.

Only one real DNA dataset ships with minidl, so these are *derived* from it (same
sequences, same grouped train/valid/test splits, so no leak between splits):

``promoter_strand`` (3 classes, lengths 120-251)
    ``plus``: a promoter window read on its own strand; ``minus``: a promoter window read
    on the opposite strand (the reverse complement); ``none``: a window of a non-promoter
    (either strand).  Each promoter window is a random stretch of 120-251 nt that still
    contains the transcription start site (position 200 of the original -200..+50
    window), so neither the length nor the TSS position is fixed.  Here the label *does*
    depend on the strand: reverse-complement augmentation would turn ``plus`` into
    ``minus``, and the strand check must say "forward".

``promoter_any_strand`` (2 classes, 251 nt)
    The original promoter / non-promoter task with every sequence given on a random strand,
    as from a strand-blind assay (e.g. a ChIP-seq peak).  The strand check should say
    "both" (augment with reverse complements, average both strands).

    python examples/dna_derived_tasks.py --out runs/derived
    minidl-bio dna train --data runs/derived/promoter_strand.tsv.gz --out runs/strand
    minidl-bio dna train --data runs/derived/promoter_any_strand.tsv.gz --out runs/anystrand
"""

import argparse
import csv
import gzip
import io
from pathlib import Path

import numpy as np

from minidl.bio import datasets
from minidl.bio.alphabets import reverse_complement
from minidl.io.atomic import atomic_write_bytes

TSS = 200  # 0-based position of the TSS in the -200..+50 promoter windows


def _rows():
    with gzip.open(datasets.dataset_path("arabidopsis_nontata_promoters"), "rt") as fh:
        return list(csv.DictReader(fh))


def promoter_strand(rows, rng, min_len=120):
    out = []
    for r in rows:
        seq = r["sequence"]
        n = int(rng.integers(min_len, len(seq) + 1))
        if r["label"] == "1":
            # start such that the window [start, start + n) contains the TSS
            lo, hi = max(0, TSS - n + 1), min(TSS, len(seq) - n)
            start = int(rng.integers(lo, hi + 1))
            window = seq[start:start + n]
            if rng.random() < 0.5:
                label, window = "plus", window
            else:
                label, window = "minus", reverse_complement(window)
        else:
            start = int(rng.integers(0, len(seq) - n + 1))
            window = seq[start:start + n]
            if rng.random() < 0.5:
                window = reverse_complement(window)
            label = "none"
        out.append({"id": r["id"], "split": r["split"], "label": label, "sequence": window})
    return out


def promoter_any_strand(rows, rng):
    out = []
    for r in rows:
        seq = r["sequence"]
        if rng.random() < 0.5:
            seq = reverse_complement(seq)
        out.append({"id": r["id"], "split": r["split"], "label": r["label"], "sequence": seq})
    return out


def write_table(path, rows):
    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=["id", "split", "label", "sequence"], delimiter="\t")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(path, gzip.compress(text.getvalue().encode(), mtime=0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/derived")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None,
                        help="keep only this many rows per split (quick trials, tests)")
    args = parser.parse_args(argv)
    rows = _rows()
    rng = np.random.default_rng(args.seed)
    if args.limit:
        kept = []
        for split in ("train", "valid", "test"):
            in_split = [r for r in rows if r["split"] == split]
            kept += [in_split[i] for i in sorted(rng.permutation(len(in_split))[:args.limit])]
        rows = kept
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, make in (("promoter_strand", lambda: promoter_strand(rows, rng)),
                       ("promoter_any_strand", lambda: promoter_any_strand(rows, rng))):
        table = make()
        write_table(out / f"{name}.tsv.gz", table)
        counts = {}
        for r in table:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        print(f"wrote {out / (name + '.tsv.gz')}: {len(table)} rows, classes {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
