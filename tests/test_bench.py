"""Smoke test of the benchmark harness (``python -m bench``).

The harness runs one small workload (W6, the MLP step) for two steps with the NumPy
backend, in a subprocess exactly as a user runs it, and must write valid JSON with the
fields the README's table is made from.  No time is asserted: the numbers are noise on a
shared machine; only their presence and shape are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_bench(out_dir, *extra):
    cmd = [sys.executable, "-m", "bench", "--only", "W6", "--steps", "2", "--warmup", "1",
           "--backends", "numpy", "--kernel-reps", "2", "--memory-steps", "1",
           "--out", str(out_dir), *extra]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    files = sorted(p.name for p in out_dir.iterdir())
    assert "latest.json" in files and len(files) == 2, files  # <timestamp>.json + latest
    assert not [f for f in files if f.endswith(".tmp")]
    with open(out_dir / "latest.json") as f:
        latest = json.load(f)
    stamped = next(f for f in files if f != "latest.json")
    with open(out_dir / stamped) as f:
        assert json.load(f) == latest
    return proc, latest


@pytest.fixture
def bench_module():
    """``bench.run`` imported in this process, without leaking the thread variables that
    importing ``bench`` sets into the environment of the other tests."""
    saved = dict(os.environ)
    sys.path.insert(0, REPO_ROOT)
    try:
        import bench.run as run
    finally:
        sys.path.remove(REPO_ROOT)
        os.environ.clear()
        os.environ.update(saved)
    return run


def test_bench_numpy_backend_writes_json(tmp_path):
    proc, result = _run_bench(tmp_path, "--no-torch")
    assert result["threads"] == 2
    assert result["backends"]["timed"] == ["numpy"]
    assert result["torch"] is False
    (w6,) = result["workloads"]
    assert w6["id"] == "W6" and w6["kind"] == "train"
    # without PyTorch the check still runs, against minidl's own reference
    assert w6["reference"] == "minidl[numpy]" and w6["check"]["numpy"]["ok"]
    t = w6["timings"]["numpy"]
    assert t["n"] == 2 and len(t["samples_ms"]) == 2
    assert t["q1_ms"] <= t["median_ms"] <= t["q3_ms"] and t["iqr_ms"] >= 0
    assert w6["best_backend"] == "numpy"
    mem = w6["memory"]["numpy"]
    assert "error" not in mem and mem["peak_growth_mib"] >= 0
    # the kernel calls of the step were recorded (softmax-cross-entropy at least)
    assert any(r["kernel"].startswith("softmax_cross_entropy") for r in result["kernels"])
    machine = result["machine"]
    assert machine["logical_cpus"] >= 1 and machine["versions"]["numpy"] == np.__version__
    assert "OPENBLAS_CORETYPE" in machine["env"] and "threadpools" in machine
    assert "| W6 |" in proc.stdout  # the Markdown table goes to stdout


def test_bench_against_torch(tmp_path):
    pytest.importorskip("torch")
    proc, result = _run_bench(tmp_path, "--no-memory", "--no-kernels")
    (w6,) = result["workloads"]
    assert w6["reference"] == "torch"
    check = w6["check"]["numpy"]
    assert check["ok"], check["problems"]
    assert check["max_rel_diff"] < 1e-3 and "grad 0.weight" in check["diffs"]
    assert w6["timings"]["torch"]["n"] == 2
    assert w6["ratio"]["numpy"] > 0 and w6["best_ratio"] == w6["ratio"]["numpy"]
    assert "PyTorch ms" in proc.stdout


def test_compare_flags_a_wrong_gradient(bench_module):
    rng = np.random.default_rng(0)
    ref = {"output": rng.standard_normal((4, 3)), "grad w": rng.standard_normal((3, 5)),
           "grad b": np.full(3, 1e-9)}  # a gradient that is zero up to rounding
    same = {k: v + 1e-7 * np.abs(v).max() for k, v in ref.items()}
    same["grad b"] = np.full(3, -2e-9)  # noise on a zero gradient is not a mismatch
    assert bench_module.compare(ref, same, 1e-3)["ok"]
    wrong = dict(same, **{"grad w": ref["grad w"] * 1.01})
    cmp = bench_module.compare(ref, wrong, 1e-3)
    assert not cmp["ok"] and cmp["worst"] == "grad w"
    assert any(p.startswith("grad w") for p in cmp["problems"])
    missing = {k: v for k, v in same.items() if k != "grad b"}
    assert not bench_module.compare(ref, missing, 1e-3)["ok"]


def test_mismatch_is_marked_in_the_table(bench_module, tmp_path):
    _, result = _run_bench(tmp_path, "--no-torch", "--no-memory", "--no-kernels")
    assert "MISMATCH" not in bench_module.markdown(result)
    result["workloads"][0]["check"]["numpy"].update(ok=False, problems=["output: off"])
    assert "**MISMATCH**" in bench_module.markdown(result)


def test_workload_selection(bench_module):
    from bench import workloads

    assert [w.id for w in workloads.select(["W1"])] == [
        "W1a-fwd", "W1a-fwdbwd", "W1b-fwd", "W1b-fwdbwd"]
    assert [w.id for w in workloads.select(["w6", "W2"])] == ["W2", "W6"]
    with pytest.raises(ValueError, match="W9"):
        workloads.select(["W9"])
