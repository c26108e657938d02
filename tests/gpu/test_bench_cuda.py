"""The benchmark's GPU runner: ``python -m bench`` adds a ``cuda`` column when a GPU is
present.  Here the harness runs in-process on the "cuda" of the ``gpu`` fixture (the fake
CuPy everywhere, the real one on a GPU machine) for one small workload, and the GPU runner's
correctness check against the CPU must pass.  No time is asserted.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def bench_run(monkeypatch):
    """``bench.run``, imported without leaking the thread variables that importing
    ``bench`` sets into the environment of the other tests."""
    from minidl import backend

    saved = dict(os.environ)
    monkeypatch.syspath_prepend(REPO_ROOT)
    # bench.main pins minidl's and the BLAS thread counts: undone below
    monkeypatch.setattr(backend, "_num_threads", backend._num_threads)
    try:
        import bench.run as run

        yield run
    finally:
        os.environ.clear()
        os.environ.update(saved)
        limiter = getattr(sys.modules.get("bench.run"), "_LIMITER", None)
        if limiter is not None:
            limiter.restore_original_limits()
            sys.modules["bench.run"]._LIMITER = None


def test_bench_times_and_checks_the_cuda_runner(gpu, bench_run, tmp_path, capsys):
    status = bench_run.main(["--only", "W6", "--backends", "numpy,cuda", "--steps", "2",
                             "--warmup", "1", "--block", "1", "--warmin-ms", "0",
                             "--no-torch", "--no-kernels", "--no-memory",
                             "--out", str(tmp_path)])
    assert status == 0
    with open(tmp_path / "latest.json") as f:
        result = json.load(f)
    assert result["backends"]["timed"] == ["numpy", "cuda"]
    assert result["cuda"]["available"] is True
    (w6,) = result["workloads"]
    assert w6["check"]["cuda"]["ok"], w6["check"]["cuda"]["problems"]
    assert w6["timings"]["cuda"]["n"] == 2
    assert "cuda ms" in capsys.readouterr().out


def test_bench_skips_the_cuda_runner_without_a_gpu(bench_run, tmp_path, monkeypatch, capsys):
    import minidl.cuda

    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)
    status = bench_run.main(["--only", "W6", "--backends", "numpy,cuda", "--steps", "1",
                             "--warmup", "0", "--block", "1", "--warmin-ms", "0",
                             "--no-torch", "--no-kernels", "--no-memory", "--no-save"])
    assert status == 0
    out = capsys.readouterr()
    assert "the GPU runner skipped" in out.err and 'pip install "minidl[gpu]"' in out.err
    assert "cuda ms" not in out.out
