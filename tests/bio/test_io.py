"""FASTA and labelled-table readers: contents and the errors they give."""

import gzip

import pytest

from minidl.bio.io import iter_fasta, read_fasta, read_labelled_table, write_fasta


def _write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_gzip_fasta_and_streaming(tmp_path):
    p = _write(tmp_path / "x.fa.gz", ">a desc\nAC\nGT\n>b\nTT\n", gz=True)
    records = iter_fasta(p)
    first = next(records)  # a generator: records come one at a time
    assert (first.id, first.description, first.sequence, first.line) == ("a", "desc", "ACGT", 1)
    assert [r.sequence for r in records] == ["TT"]


def test_write_then_read(tmp_path):
    write_fasta(tmp_path / "o.fa", [("s1", "A" * 100), ("s2", "CG")], width=60)
    text = (tmp_path / "o.fa").read_text()
    assert text.splitlines()[1] == "A" * 60
    assert [r.sequence for r in read_fasta(tmp_path / "o.fa")] == ["A" * 100, "CG"]


@pytest.mark.parametrize("text,message", [
    ("ACGT\n>a\nAC\n", r"line 1: sequence before the first header"),
    (">a\n>b\nAC\n", r"record 'a' \(line 1\): empty sequence"),
    (">a\nAC\n>b\n", r"record 'b' \(line 3\): empty sequence"),
    (">a\nACGT\nAZGT\n", r"record 'a', line 3, column 2: invalid character 'Z'"),
    (">\nAC\n", r"line 1: header without an id"),
])
def test_malformed_fasta(tmp_path, text, message):
    p = _write(tmp_path / "bad.fa", text)
    with pytest.raises(ValueError, match=message):
        read_fasta(p, alphabet="dna")


def test_non_strict_accepts_other_characters(tmp_path):
    p = _write(tmp_path / "x.fa", ">a\nAZ\n")
    assert read_fasta(p, alphabet="dna", strict=False)[0].sequence == "AZ"


def test_empty_fasta_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no FASTA records"):
        read_fasta(_write(tmp_path / "e.fa", "\n"))
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_fasta(tmp_path / "missing.fa")


def test_tables_integer_and_named_labels(tmp_path):
    p = _write(tmp_path / "t.tsv.gz", "id\tsequence\tlabel\tsplit\nr1\tACGT\tbound\ttrain\n"
               "r2\tAAAA\tunbound\tval\nr3\tCCCC\tbound\ttest\n", gz=True)
    t = read_labelled_table(p)
    assert t.classes == ["bound", "unbound"] and t.labels == [0, 1, 0]
    assert t.split == ["train", "valid", "test"] and t.ids == ["r1", "r2", "r3"]
    p = _write(tmp_path / "t.csv", "sequence,label,extra\nAC,2,x\nGT,0,y\n")
    t = read_labelled_table(p)
    assert t.classes == ["0", "1", "2"] and t.labels == [2, 0] and t.split is None
    assert t.extra == {"extra": ["x", "y"]} and t.ids == ["seq1", "seq2"]


@pytest.mark.parametrize("text,message", [
    ("seq,label\nAC,1\n", r"missing column\(s\) sequence; the header has seq, label"),
    ("sequence,label\nAC,1\n,0\n", r"line 3: empty sequence"),
    ("sequence,label\nAC,1\nGT,\n", r"line 3: empty label"),
    ("sequence,label,split\nAC,1,train\nGT,0,holdout\n", r"line 3: split must be"),
    ("sequence,label\nAC,1\nGT,1\n", r"at least two classes"),
    ("", r"empty file"),
])
def test_malformed_tables(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_labelled_table(_write(tmp_path / "bad.csv", text))
