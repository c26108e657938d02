"""Benchmark harness: minidl (each available kernel backend) against PyTorch, in one process.

Run from the repository root (see ``bench/README.md``)::

    python -m bench                       # everything: W1-W6, kernels, peak memory
    python bench/run.py --only W2,W6 --backends numpy,cpu --steps 30

What one run does, for each workload of :mod:`bench.workloads`:

1. builds the PyTorch model (seeded), copies its ``state_dict`` into one minidl model per
   backend, and feeds all of them the same float32 inputs;
2. **checks** that minidl, under each backend, computes what PyTorch computes: forward
   output, loss and the first step's gradients (dropout off for that step only), as a
   max difference relative to the reference's scale; a mismatch is printed and marked in
   the table instead of being timed silently;
3. **times** the steps interleaved (one minidl-backend step, one PyTorch step, ..., the
   order rotated every round) after warm-up rounds: the machine is noisy, and only
   ratios measured side by side in one process mean anything; median and IQR;
4. measures the **peak memory** of a step in a fresh subprocess per (workload, runner):
   build, warm up, reset the peak-RSS counter (``/proc/self/clear_refs``), run a few
   steps and read ``VmHWM``; growth over the resident size before the steps, in MiB.

A per-kernel table times every registered kernel that the workloads call, for each of its
implementations, on exactly the arguments the workloads pass it (recorded by wrapping the
registry's NumPy reference during one step).  Results: a Markdown table on stdout
(progress goes to stderr) and JSON in ``bench/results/<timestamp>.json`` and
``bench/results/latest.json``, written atomically.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # `python bench/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bench  # noqa: E402, I001 - sets the thread environment before NumPy loads

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as _dt  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench import workloads as W  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO_ROOT, "bench", "results")
CPU_BACKENDS = ("numpy", "cpu", "numba", "auto")
#: the GPU runner: minidl on CuPy (the kernel registry's "cuda" entries, else the references)
CUDA = "cuda"
MEMORY_MARK = "BENCH-MEMORY-RESULT "
_LIMITER = None  # threadpoolctl limits kept alive for the whole run


def log(*parts):
    """Progress to stderr, so that stdout carries only the tables."""
    print(*parts, file=sys.stderr, flush=True)


# ============================================================================== environment


def _set_threads(threads):
    global _LIMITER
    import minidl

    minidl.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        _LIMITER = threadpool_limits(limits=threads)
    except ImportError:
        pass


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(bench.THREADS)
    return torch


def available_backends():
    """The CPU backends that registered at least one kernel (``numpy`` always)."""
    import minidl.nn  # noqa: F401 - imports every op module, registering the references
    from minidl import backend, kernels

    kernels.load()
    found = {"numpy"}
    for impls in backend._KERNELS.values():
        found.update(b for b in impls if b in CPU_BACKENDS)
    return [b for b in CPU_BACKENDS if b in found]


def cuda_status():
    """``(True, description)`` when minidl can use a GPU, else ``(False, why not)``."""
    from minidl import cuda

    try:
        cupy = cuda.require_cupy()
    except RuntimeError as err:
        return False, str(err)
    try:
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        name = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - a description only
        name = "CUDA GPU"
    return True, f"{name}, CuPy {getattr(cupy, '__version__', '?')}"


def _device(runner):
    return "cuda" if runner == CUDA else "cpu"


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None


def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "unknown")


def _git_commit():
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, text=True, capture_output=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def machine_info(torch):
    """CPU, cores, library versions, BLAS (threadpoolctl) and the relevant environment."""
    info = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "memory_gib": _mem_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in
                     ("numpy", "torch", "numba", "Cython", "threadpoolctl", "minidl")},
        "git_commit": _git_commit(),
        "env": {k: os.environ.get(k) for k in (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
            "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MINIDL_BACKEND", "MINIDL_NUM_THREADS",
            "NUMBA_NUM_THREADS", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_")},
    }
    try:
        import threadpoolctl

        # every pool loaded so far: NumPy's OpenBLAS (its core type is "architecture"),
        # PyTorch's OpenMP/MKL, Numba's and the C extension's OpenMP once they are loaded
        info["threadpools"] = threadpoolctl.threadpool_info()
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    blas = [p for p in info["threadpools"] if isinstance(p, dict)
            and p.get("user_api") == "blas"] if isinstance(info["threadpools"], list) else []
    info["numpy_blas"] = [
        {k: p.get(k) for k in ("internal_api", "version", "threading_layer", "architecture",
                               "num_threads")} for p in blas]
    if torch is not None:
        info["torch_parallel_info"] = torch.__config__.parallel_info()
        info["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available())
    return info


# ============================================================================= correctness


def compare(reference, candidate, tol):
    """Compare the ``check()`` values of two runs.

    Each entry's error is ``max|a - b| / scale`` with ``scale`` the reference entry's
    largest magnitude, but at least 1% of the largest magnitude in its group (outputs,
    loss, gradients): a gradient that is zero in exact arithmetic (the bias of a
    convolution followed by batch norm) is float32 noise in both libraries, and its
    relative error would be meaningless.
    """
    def group(key):
        return "grad" if key.startswith("grad") else key

    result = {"ok": True, "max_rel_diff": 0.0, "max_abs_diff": 0.0, "worst": None,
              "problems": [], "diffs": {}}
    for key in sorted(set(reference) - set(candidate)):
        result["problems"].append(f"{key}: missing")
    for key in sorted(set(candidate) - set(reference)):
        result["problems"].append(f"{key}: unexpected")
    scale_of_group = {}
    for key, ref in reference.items():
        g = group(key)
        scale_of_group[g] = max(scale_of_group.get(g, 0.0), float(np.max(np.abs(ref)))
                                if ref.size else 0.0)
    for key, ref in reference.items():
        if key not in candidate:
            continue
        got = candidate[key]
        if got.shape != ref.shape:
            result["problems"].append(f"{key}: shape {got.shape} != {ref.shape}")
            continue
        if ref.size == 0:
            continue
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        abs_diff = float(np.max(diff)) if np.all(np.isfinite(diff)) else float("inf")
        scale = max(float(np.max(np.abs(ref))), 0.01 * scale_of_group[group(key)], 1e-30)
        rel = abs_diff / scale
        result["diffs"][key] = {"max_abs": abs_diff, "rel": rel}
        result["max_abs_diff"] = max(result["max_abs_diff"], abs_diff)
        if rel >= result["max_rel_diff"]:
            result["max_rel_diff"], result["worst"] = rel, key
        if not rel <= tol:
            result["problems"].append(f"{key}: max|diff| {abs_diff:.3g} (relative {rel:.3g})")
    result["ok"] = not result["problems"]
    return result


# ================================================================================== timing


def _stats(samples_s):
    a = np.asarray(samples_s) * 1e3
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3),
            "iqr_ms": float(q3 - q1), "min_ms": float(a.min()), "n": int(a.size),
            "samples_ms": [round(float(v), 4) for v in a]}


@contextlib.contextmanager
def _backend(name):
    """Select a minidl backend (``None``: leave it alone) for the duration."""
    import minidl

    if name is None:
        yield
        return
    if name == CUDA:  # the GPU runner takes its kernels from the registry's "cuda" entries
        yield
        return
    old = minidl.backend.get_backend()
    minidl.set_backend(name)
    try:
        yield
    finally:
        minidl.set_backend(old)


def time_interleaved(runners, steps, warmup, block=5, warmin_s=0.25, budget_s=None,
                     min_steps=5):
    """Time ``runners`` (name -> (backend or None, callable)) block-interleaved.

    Each round visits every runner once, in a fresh random (seeded) order; a visit runs
    untimed *warm-in* steps for at least ``warmin_s`` seconds (``warmup`` steps at least
    on the first visit, one on later ones), then ``block`` timed steps back to back.
    Rounds repeat until every runner has ``steps`` samples, so machine drift is spread over
    all runners alike.  Returns name -> stats, or an ``error`` entry for a runner that
    raised.

    Why blocks and a warm-in rather than strict step-by-step alternation: on a 2-core
    machine the libraries' worker threads outlive their calls.  OpenBLAS's workers keep
    spinning for tens of milliseconds after a NumPy matrix multiply, PyTorch's OpenMP
    workers for a while after each parallel region, and a library that was idle for
    ~50 ms wakes slowly.  Measured here: a PyTorch Conv2d(3, 32) forward that takes 3.4 ms
    in a loop of its own took 6.9 ms right after a NumPy matrix multiply, and 14 ms after
    a 50 ms pause.  Strict alternation times that interference, not the step; the warm-in
    lets it die down, and the timed block is the steady state a training loop sees.
    ``block=1, warmin_s=0`` is strict alternation.

    ``budget_s`` caps a pathologically slow runner: when its first visit shows that
    ``steps`` steps would take longer, it gets ``max(min_steps, budget_s / step time)``
    timed steps instead (its ``n`` in the result says so).
    """
    names = list(runners)
    samples = {n: [] for n in names}
    target = dict.fromkeys(names, steps)
    errors = {}
    visited = set()
    order_rng = np.random.default_rng(12345)
    while any(len(samples[n]) < target[n] for n in names if n not in errors):
        for name in [names[i] for i in order_rng.permutation(len(names))]:
            if name in errors or len(samples[name]) >= target[name]:
                continue
            backend_name, fn = runners[name]
            min_warm = max(warmup, 1) if name not in visited else 1
            visited.add(name)
            try:
                with _backend(backend_name):
                    t_start = time.perf_counter()
                    k = 0
                    while k < 10_000:
                        elapsed = time.perf_counter() - t_start
                        if k >= min_warm and elapsed >= warmin_s:
                            break
                        if k >= 1 and budget_s and elapsed > 0.1 * budget_s:
                            break  # a very slow runner: one warm step is enough
                        fn()
                        k += 1
                    first_block = not samples[name]
                    for _ in range(min(block, target[name] - len(samples[name]))):
                        t0 = time.perf_counter()
                        fn()
                        samples[name].append(time.perf_counter() - t0)
                    if budget_s and first_block:
                        # decided on the first block's median, not on one (noisy) step
                        per_step = float(np.median(samples[name]))
                        affordable = int(budget_s / max(per_step, 1e-9))
                        if affordable < steps:
                            target[name] = max(min_steps, affordable, len(samples[name]))
                            log(f"    {name}: {per_step * 1e3:.0f} ms a step; timing "
                                f"{target[name]} steps instead of {steps} (--runner-budget-s)")
            except Exception as err:  # a broken kernel must not stop the whole bench
                errors[name] = f"{type(err).__name__}: {err}"
                log(f"    {name}: ERROR {errors[name]}")
    out = {}
    for name in names:
        out[name] = {"error": errors[name]} if name in errors else _stats(samples[name])
    return out


# ============================================================================ one workload


class LoadMeter:
    """How many cores *other* processes kept busy while a block of code ran.

    The machine is shared (2 cores): any other process preempts one of the two threads of
    a step, and an OpenMP barrier then waits for a whole scheduler tick.  Busy time of the
    whole machine comes from ``/proc/stat``, this process's own from
    :func:`time.process_time`; the difference over the wall time is the other load (and
    ``steal`` the time the hypervisor gave to other machines).  ``None`` where
    ``/proc/stat`` is not readable.
    """

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _stat():
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = v[0] + v[1] + v[2] + v[5] + v[6]  # user nice system irq softirq
        steal = v[7] if len(v) > 7 else 0
        return busy, steal

    def __enter__(self):
        self.t0, self.p0, self.s0 = time.perf_counter(), time.process_time(), self._stat()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        own = time.process_time() - self.p0
        s1 = self._stat()
        if self.s0 is None or s1 is None or wall <= 0:
            self.other_cores = self.steal_cores = None
            return
        self.other_cores = max(((s1[0] - self.s0[0]) / self.hz - own) / wall, 0.0)
        self.steal_cores = (s1[1] - self.s0[1]) / self.hz / wall


def wait_for_quiet(max_wait_s, threshold, window_s=3.0):
    """Sleep until other processes use at most ``threshold`` cores over a ``window_s``
    window, or until ``max_wait_s`` has passed; returns the last load seen."""
    deadline = time.perf_counter() + max_wait_s
    while True:
        with LoadMeter() as load:
            time.sleep(window_s)
        if load.other_cores is None or load.other_cores <= threshold:
            return load.other_cores
        if time.perf_counter() >= deadline:
            log(f"    still {load.other_cores:.2f} cores of other load after waiting "
                f"{max_wait_s:.0f} s; timing anyway")
            return load.other_cores
        log(f"    waiting for a quiet machine ({load.other_cores:.2f} cores of other load)")


def run_workload(workload, backends, torch_fw, minidl_fw, args):
    """Check, then time, one workload for PyTorch and each minidl backend."""
    log(f"[{workload.id}] {workload.title}")
    torch_step, msteps = W.make_pair(workload, args.seed, torch_fw, minidl_fw,
                                     n_minidl=len(backends),
                                     devices=[_device(b) for b in backends])
    steps = dict(zip(backends, msteps))
    record = {"id": workload.id, "title": workload.title, "kind": workload.kind,
              "reference": "torch" if torch_step is not None else "minidl[numpy]",
              "check": {}, "timings": {}}

    # -- correctness before timing
    if torch_step is not None:
        reference = torch_step.check()
    else:
        with _backend("numpy"):
            reference = msteps[0].check()
    for b, step in steps.items():
        try:
            with _backend(b):
                got = step.check()
            cmp = compare(reference, got, args.tol)
        except Exception as err:
            cmp = {"ok": False, "problems": [f"check raised {type(err).__name__}: {err}"],
                   "max_rel_diff": float("inf"), "max_abs_diff": float("inf"),
                   "worst": None, "diffs": {}}
        record["check"][b] = cmp
        if cmp["ok"]:
            log(f"    check {b:6s} vs {record['reference']}: ok, max relative diff "
                f"{cmp['max_rel_diff']:.2e} ({cmp['worst']}), max abs {cmp['max_abs_diff']:.2e}")
        else:
            log(f"    !!! MISMATCH {b} vs {record['reference']}: " + "; ".join(cmp["problems"]))

    # -- timing, interleaved (on a quiet machine, if asked to wait for one)
    if args.wait_quiet > 0:
        wait_for_quiet(args.wait_quiet, args.noisy_cores)
    runners = {}
    for b, step in steps.items():
        runners[b] = (b, step.run)
    if torch_step is not None:
        runners["torch"] = (None, torch_step.run)
    gc.collect()
    with LoadMeter() as load:
        timings = time_interleaved(runners, args.steps, args.warmup, args.block,
                                   args.warmin_ms / 1e3, args.runner_budget_s)
    record["other_load_cores"] = load.other_cores
    record["steal_cores"] = load.steal_cores
    record["timings"] = timings
    tmed = timings.get("torch", {}).get("median_ms")
    record["ratio"] = {}
    for b in backends:
        med = timings[b].get("median_ms")
        record["ratio"][b] = med / tmed if (med is not None and tmed) else None
    valid = [b for b in backends if record["check"][b]["ok"]
             and timings[b].get("median_ms") is not None]
    best = min(valid, key=lambda b: timings[b]["median_ms"]) if valid else None
    record["best_backend"] = best
    record["best_ratio"] = record["ratio"].get(best) if best else None
    parts = [f"{n} {t['median_ms']:.2f} ms" if "median_ms" in t else f"{n} ERROR"
             for n, t in timings.items()]
    if load.other_cores is not None:
        parts.append(f"other processes {load.other_cores:.2f} cores, steal "
                     f"{load.steal_cores:.2f}")
    log("    " + ", ".join(parts))
    # free the models before the next workload (large activations and optimizer state)
    del torch_step, msteps, steps, runners
    gc.collect()
    return record


# ============================================================================ kernel table


def _arg_key(a):
    if isinstance(a, np.ndarray):
        layout = "C" if a.flags.c_contiguous else ("F" if a.flags.f_contiguous else "S")
        return ("array", a.shape, a.dtype.str, layout)
    if isinstance(a, (list, tuple)):
        return tuple(_arg_key(v) for v in a)
    return repr(a)


def _arg_text(a):
    if isinstance(a, np.ndarray):
        layout = "" if a.flags.c_contiguous else ("ᶠ" if a.flags.f_contiguous else "ˢ")
        return "(" + ",".join(map(str, a.shape)) + ")" + layout
    if isinstance(a, (list, tuple)):
        return "(" + ",".join(_arg_text(v) for v in a) + ")"
    if isinstance(a, float):
        return f"{a:g}"
    return repr(a)


def _clone(a):
    # a contiguous array is copied (the recording must not see later in-place writes of
    # the step); a strided view is kept as it is, since copying would change its layout
    if isinstance(a, np.ndarray):
        return a.copy(order="K") if (a.flags.c_contiguous or a.flags.f_contiguous) else a
    if isinstance(a, list):
        return [_clone(v) for v in a]
    if isinstance(a, tuple):
        return tuple(_clone(v) for v in a)
    return a


def capture_kernel_calls(workload, minidl_fw, seed):
    """The distinct kernel calls (name and arguments) of one step of ``workload``.

    Runs one warm-up step, then wraps every registered NumPy reference so that the next
    step records the arguments of each distinct call signature and how often it occurs.
    """
    from minidl import backend

    _, (step,) = W.make_pair(workload, seed, None, minidl_fw, n_minidl=1)
    records = {}
    originals = {}

    def recorder(name, fn):
        def wrapper(*a, **kw):
            key = (name, _arg_key(a), _arg_key(tuple(sorted(kw.items()))))
            rec = records.get(key)
            if rec is None:
                records[key] = rec = {"kernel": name, "args": _clone(a),
                                      "kwargs": {k: _clone(v) for k, v in kw.items()},
                                      "calls": 0}
            rec["calls"] += 1
            return fn(*a, **kw)
        return wrapper

    with _backend("numpy"):
        step.run()
        for name, impls in backend._KERNELS.items():
            if "numpy" in impls:
                originals[name] = impls["numpy"]
                impls["numpy"] = recorder(name, impls["numpy"])
        try:
            step.run()
        finally:
            for name, fn in originals.items():
                backend._KERNELS[name]["numpy"] = fn
    return list(records.values())


def time_kernel_call(rec, backends, reps):
    """Median time of one call of each implementation on the recorded arguments."""
    from minidl import backend

    impls = backend._KERNELS[rec["kernel"]]
    names = [b for b in backends if b in impls and b != "auto"]
    calls = {}
    for b in names:
        args = _clone(rec["args"])
        kwargs = {k: _clone(v) for k, v in rec["kwargs"].items()}
        calls[b] = (impls[b], args, kwargs)
    out, errors, inner = {}, {}, {}
    for b, (fn, a, kw) in calls.items():  # warm-up (Numba compiles here) and calibration
        try:
            fn(*a, **kw)
            t0 = time.perf_counter()
            fn(*a, **kw)
            dt = time.perf_counter() - t0
            inner[b] = int(min(100, max(1, 2e-3 / max(dt, 1e-9))))  # >= ~2 ms per sample
        except Exception as err:
            errors[b] = f"{type(err).__name__}: {err}"
    live = [b for b in names if b not in errors]
    samples = {b: [] for b in live}
    for rnd in range(reps):
        k = rnd % max(len(live), 1)
        for b in live[k:] + live[:k]:
            fn, a, kw = calls[b]
            t0 = time.perf_counter()
            for _ in range(inner[b]):
                fn(*a, **kw)
            samples[b].append((time.perf_counter() - t0) / inner[b])
    for b in names:
        out[b] = {"error": errors[b]} if b in errors else _stats(samples[b])
    return out


def kernel_table(selected, backends, minidl_fw, args):
    """Capture the kernel calls of every selected workload and time each implementation."""
    from minidl import backend

    merged = {}
    for w in selected:
        log(f"[kernels] capturing the kernel calls of {w.id}")
        for rec in capture_kernel_calls(w, minidl_fw, args.seed):
            key = (rec["kernel"], _arg_key(rec["args"]), _arg_key(tuple(rec["kwargs"].items())))
            if key in merged:
                merged[key]["workloads"].append(w.id)
                merged[key]["calls_per_step"][w.id] = rec["calls"]
            else:
                merged[key] = dict(rec, workloads=[w.id], calls_per_step={w.id: rec["calls"]})
    rows = []
    for rec in merged.values():
        impls = backend._KERNELS[rec["kernel"]]
        text = ", ".join([_arg_text(a) for a in rec["args"]]
                         + [f"{k}={_arg_text(v)}" for k, v in rec["kwargs"].items()])
        row = {"kernel": rec["kernel"], "call": text, "workloads": rec["workloads"],
               "calls_per_step": rec["calls_per_step"],
               "implementations": sorted(b for b in impls if b in CPU_BACKENDS)}
        if len(row["implementations"]) > 1 or args.all_kernels:
            log(f"[kernels] {rec['kernel']}({text[:70]})")
            row["timings"] = time_kernel_call(rec, backends, args.kernel_reps)
            meds = {b: t["median_ms"] for b, t in row["timings"].items() if "median_ms" in t}
            row["best"] = min(meds, key=meds.get) if meds else None
        rows.append(row)
    rows.sort(key=lambda r: (r["kernel"], r["workloads"][0]))
    return rows


def suggested_order(rows, backends):
    """Per kernel: the backends ordered by their total time over the recorded calls
    (weighted by calls per step), for ``minidl.backend._MEASURED_ORDER``."""
    totals = {}
    for row in rows:
        timings = row.get("timings")
        if not timings or len(timings) < 2:
            continue
        if any("median_ms" not in t for t in timings.values()):
            continue
        calls = sum(row["calls_per_step"].values())
        acc = totals.setdefault(row["kernel"], {})
        for b, t in timings.items():
            acc[b] = acc.get(b, 0.0) + calls * t["median_ms"]
    return {k: [b for b in sorted(v, key=v.get)] for k, v in sorted(totals.items())
            if len(v) > 1}


# ============================================================================ peak memory


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter (VmHWM); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmHWM") <= _proc_status_kib("VmRSS") + 64
    except OSError:
        return False


def _malloc_trim():
    # hand freed heap pages back to the OS so that the baseline is the live memory only
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _small_batch(data, n):
    """The inputs cut to ``n`` samples: every array's first axis scaled by ``n / N`` (``N``
    the batch of ``x``), which also cuts flattened per-position targets correctly."""
    batch = data["x"].shape[0]
    return {k: np.ascontiguousarray(v[: max(1, v.shape[0] * n // batch)])
            for k, v in data.items()}


def memory_child(workload_id, runner, args):
    """In a fresh process: the peak RSS of training one workload for one runner (``torch``
    or a minidl backend), above the process once the libraries are loaded.

    The baseline is taken after the imports, the kernel modules' loading, the creation of
    the input arrays and two steps of a throw-away model on a 2-sample batch (so that
    library code and JIT caches are resident); the peak then covers building
    the model, its gradients, the optimizer state, activations and workspaces over
    ``1 + args.memory_steps`` steps.  The peak counter is reset first
    (``/proc/self/clear_refs``), so the imports' own transient peak is not counted.
    """
    (workload,) = [w for w in W.WORKLOADS if w.id == workload_id]
    if runner == "torch":
        if _import_torch() is None:
            raise SystemExit("memory child: torch is not installed")
        fw = W.TorchFramework()
    else:
        import minidl

        _set_threads(bench.THREADS)
        minidl.set_backend(runner)
        available_backends()  # loads every kernel module now, outside the measurement
        fw = W.MinidlFramework()
    data = workload.make_inputs(np.random.default_rng(args.seed))
    # Warm up on a 2-sample batch of a throw-away model: the libraries' code pages (MKL,
    # oneDNN, OpenBLAS, compiled kernels) fault in on first use and Numba loads its
    # cached machine code; none of that is the memory of training this model.
    warm = _small_batch(data, 2)
    make = (lambda d: W.make_pair(workload, args.seed, fw, None, data=d)[0]) \
        if runner == "torch" else \
        (lambda d: W.make_pair(workload, args.seed, None, fw, data=d)[1][0])
    warm_step = make(warm)
    warm_step.run()
    warm_step.run()
    del warm_step, warm
    gc.collect()
    _malloc_trim()
    baseline_kib = _proc_status_kib("VmRSS")
    method = "VmHWM after /proc/self/clear_refs"
    if not _reset_peak_rss():
        method = "ru_maxrss (lifetime peak; may include the imports' transient peak)"
    step = make(data)
    for _ in range(1 + args.memory_steps):
        step.run()
    if method.startswith("VmHWM"):
        peak_kib = _proc_status_kib("VmHWM")
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"workload": workload_id, "runner": runner, "method": method,
              "steps": 1 + args.memory_steps, "baseline_mib": baseline_kib / 1024,
              "peak_mib": peak_kib / 1024,
              "peak_growth_mib": max(peak_kib - baseline_kib, 0) / 1024}
    print(MEMORY_MARK + json.dumps(result), flush=True)


def measure_memory(workload, runners, args):
    """Run :func:`memory_child` in a subprocess for each runner; name -> result."""
    out = {}
    for runner in runners:
        cmd = [sys.executable, "-m", "bench", "--memory-child", workload.id,
               "--runner", runner, "--seed", str(args.seed),
               "--memory-steps", str(args.memory_steps)]
        env = dict(os.environ)
        if runner != "torch":
            env["MINIDL_BACKEND"] = runner
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, text=True,
                                  capture_output=True, timeout=args.memory_timeout)
        except subprocess.TimeoutExpired:
            out[runner] = {"error": f"timed out after {args.memory_timeout} s"}
            continue
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MEMORY_MARK)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            out[runner] = {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
        else:
            out[runner] = json.loads(lines[-1][len(MEMORY_MARK):])
        r = out[runner]
        log(f"    memory {runner:6s}: " + (f"+{r['peak_growth_mib']:.1f} MiB" if "error" not in r
                                             else r["error"]))
    return out


# ================================================================================= output


def _fmt_ms(t):
    if t is None or "median_ms" not in t:
        return "error"
    m = t["median_ms"]
    return f"{m:.3g}" if m < 10 else f"{m:.1f}"


def markdown(result):
    """The tables, in Markdown, for README's "Performance" section."""
    lines = []
    m = result["machine"]
    backends = result["backends"]["timed"]
    has_torch = result["torch"]
    lines.append(f"Machine: {m['cpu_model']}, {m['logical_cpus']} CPUs; {result['threads']} "
                 f"threads; float32; median of {result['settings']['steps']} interleaved steps "
                 f"after {result['settings']['warmup']} warm-up; "
                 f"numpy {m['versions']['numpy']}, torch {m['versions']['torch']}, "
                 f"numba {m['versions']['numba']}; BLAS: "
                 + ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']}, "
                             f"{b['threading_layer']})" for b in m["numpy_blas"]) + ".")
    lines.append(f"Command: `{result['command']}` ({result['timestamp']}).")
    gpu = result.get("cuda") or {}
    if gpu.get("available"):
        lines.append(f"GPU runner `cuda`: {gpu['device']} (kernels from the registry's "
                     "\"cuda\" entries; each step ends with a device synchronisation).")
    elif gpu:
        lines.append(f"GPU runner `cuda`: skipped ({gpu.get('reason')}).")
    lines.append("")
    head = ["id", "workload"] + (["PyTorch ms"] if has_torch else [])
    head += [f"{b} ms" + (" (×PyTorch)" if has_torch else "") for b in backends]
    head += ["best"] + (["best / PyTorch"] if has_torch else []) + ["check (max rel. diff)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join("---" for _ in head) + "|")
    noisy = result["settings"]["noisy_cores"]
    for w in result["workloads"]:
        other = w.get("other_load_cores")
        row = [w["id"] + (" †" if other is not None and other > noisy else ""), w["title"]]
        if has_torch:
            row.append(_fmt_ms(w["timings"].get("torch")))
        checks = []
        steps = result["settings"]["steps"]
        if has_torch and w["timings"].get("torch", {}).get("n", steps) < steps:
            row[-1] += f" (n={w['timings']['torch']['n']})"
        for b in backends:
            t = w["timings"].get(b, {})
            cell = _fmt_ms(t)
            r = w["ratio"].get(b)
            if r is not None:
                cell += f" ({r:.2f}×)"
            if t.get("n", steps) < steps:
                cell += f" (n={t['n']})"
            if not w["check"][b]["ok"]:
                cell = "**MISMATCH** " + cell
                checks.append(f"**{b} MISMATCH: {'; '.join(w['check'][b]['problems'])[:120]}**")
            else:
                checks.append(f"{b} {w['check'][b]['max_rel_diff']:.0e}")
            row.append(cell)
        row.append(w["best_backend"] or "—")
        if has_torch:
            row.append(f"**{w['best_ratio']:.2f}**" if w["best_ratio"] is not None else "—")
        row.append(", ".join(checks))
        lines.append("| " + " | ".join(row) + " |")

    loads = [w["other_load_cores"] for w in result["workloads"]
             if w.get("other_load_cores") is not None]
    if loads:
        lines.append("")
        lines.append(f"Other processes kept {np.mean(loads):.2f} cores busy on average while "
                     f"the steps were timed (at most {max(loads):.2f}); "
                     + ("† marks workloads timed with more than "
                        f"{noisy:.2f} cores of other load: their ratios are less reliable."
                        if max(loads) > noisy else "the machine was quiet."))
    mem = [w for w in result["workloads"] if w.get("memory")]
    if mem:
        lines.append("")
        lines.append("Peak memory of training (peak RSS above the process with its libraries "
                     "loaded: model, gradients, optimizer state, activations, workspaces; "
                     "a fresh process per cell; MiB):")
        lines.append("")
        head = ["id"] + (["PyTorch"] if has_torch else [])
        mem_backends = [b for b in backends if b != CUDA]  # host memory only
        head += [b + (" (×PyTorch)" if has_torch else "") for b in mem_backends]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for w in mem:
            row = [w["id"]]
            tm = w["memory"].get("torch", {}).get("peak_growth_mib")
            if has_torch:
                row.append("error" if tm is None else f"{tm:.1f}")
            for b in mem_backends:
                r = w["memory"].get(b, {})
                if "peak_growth_mib" not in r:
                    row.append("error")
                    continue
                cell = f"{r['peak_growth_mib']:.1f}"
                if tm:
                    cell += f" ({r['peak_growth_mib'] / tm:.2f}×)"
                row.append(cell)
            lines.append("| " + " | ".join(row) + " |")

    rows = [r for r in result.get("kernels", []) if r.get("timings")]
    lines.append("")
    if rows:
        lines.append("Per kernel (median ms per call on the workloads' own arguments; "
                     "calls per step in brackets):")
        lines.append("")
        kb = [b for b in backends if b != "auto"]
        head = ["kernel", "call", "workloads"] + [f"{b} ms" for b in kb] + ["best"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            wl = ", ".join(f"{w} [{r['calls_per_step'][w]}]" for w in r["workloads"])
            call = r["call"] if len(r["call"]) <= 60 else r["call"][:57] + "..."
            row = [r["kernel"], f"`{call}`", wl]
            for b in kb:
                t = r["timings"].get(b)
                row.append("—" if t is None else _fmt_ms(t))
            row.append(r.get("best") or "—")
            lines.append("| " + " | ".join(row) + " |")
        order = result.get("suggested_measured_order")
        if order:
            lines.append("")
            lines.append("Fastest first, by total time per step over the workloads "
                         "(for `minidl.backend._MEASURED_ORDER`):")
            lines.append("")
            lines.append("```python")
            lines.append("{")
            for k, v in order.items():
                lines.append(f"    {k!r}: {tuple(v)!r},")
            lines.append("}")
            lines.append("```")
    elif result.get("kernels") is not None:
        lines.append("Per kernel: no kernel called by these workloads has more than one "
                     "implementation among the timed backends (only the NumPy reference is "
                     "available), so there is nothing to compare.")
    return "\n".join(lines)


def write_json_atomic(path, data):
    """Write ``data`` as JSON to ``path`` via a temporary file, fsync and rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".bench-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            # strict JSON: an infinite difference (NaN/inf in a result) becomes null
            json.dump(_finite(data), f, indent=1, default=_json_default, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _finite(obj):
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return repr(obj)


# =================================================================================== main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="minidl (each available backend) vs PyTorch on workloads W1-W6: "
                    "correctness check, interleaved timing, per-kernel table, peak memory.")
    p.add_argument("--only", default="", help="comma-separated workload ids or groups "
                   "(W1, W1a-fwd, W2, ...); default: all")
    p.add_argument("--backends", default="", help="comma-separated minidl backends "
                   "(numpy,cpu,numba,auto,cuda); default: every available concrete backend, "
                   "and cuda when a GPU is present")
    p.add_argument("--no-cuda", action="store_true",
                   help="leave the GPU runner out even when a GPU is present")
    p.add_argument("--steps", type=int, default=20, help="timed steps per runner (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="warm-up rounds (default 3)")
    p.add_argument("--block", type=int, default=5,
                   help="timed steps per visit of a runner (default 5; 1 = strict alternation)")
    p.add_argument("--warmin-ms", type=float, default=250.0,
                   help="untimed steps for at least this long before each block (default 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runner-budget-s", type=float, default=120.0,
                   help="a runner whose steps would take longer than this gets fewer "
                        "(at least 5) timed steps, marked in the table (default 120; "
                        "0 = no cap)")
    p.add_argument("--tol", type=float, default=1e-3,
                   help="largest relative difference accepted by the check (default 1e-3)")
    p.add_argument("--noisy-cores", type=float, default=0.2,
                   help="other processes' load (cores) above which a workload is marked "
                        "as timed on a busy machine (default 0.2)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before timing each workload, wait up to this long for other "
                        "processes to use at most --noisy-cores cores (default 0: no wait)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-kernels", action="store_true", help="skip the per-kernel table")
    p.add_argument("--all-kernels", action="store_true",
                   help="also time kernels that have only the NumPy reference")
    p.add_argument("--kernel-reps", type=int, default=20, help="samples per kernel timing")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--memory-steps", type=int, default=3)
    p.add_argument("--memory-timeout", type=int, default=600)
    p.add_argument("--out", default=RESULTS_DIR, help="folder for the JSON results")
    p.add_argument("--no-save", action="store_true", help="write no JSON")
    p.add_argument("--list", action="store_true", help="list the workloads and backends")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--runner", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.steps, args.kernel_reps, args.memory_steps, args.block) < 1 \
            or args.warmup < 0 or args.warmin_ms < 0:
        p.error("--steps, --block, --kernel-reps and --memory-steps must be >= 1; "
                "--warmup and --warmin-ms >= 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.runner, args)
        return 0
    started = time.perf_counter()
    import minidl

    _set_threads(bench.THREADS)
    torch = None if args.no_torch else _import_torch()
    available = available_backends()
    gpu_ok, gpu_text = cuda_status()
    if args.backends:
        wanted = [b.strip().lower() for b in args.backends.split(",") if b.strip()]
        bad = [b for b in wanted if b not in CPU_BACKENDS + (CUDA,)]
        if bad:
            raise SystemExit(f"unknown backend(s) {bad}; choose from {CPU_BACKENDS + (CUDA,)}")
        # "auto" (each kernel from the fastest available backend) always runs
        backends = [b for b in wanted if b in available or b == "auto"]
        skipped = {b: "not available (see minidl.backend.info())"
                   for b in wanted if b not in backends and b != CUDA}
        want_cuda = CUDA in wanted and not args.no_cuda
    else:
        backends = [b for b in available if b != "auto"]
        skipped = {}
        want_cuda = not args.no_cuda
    if want_cuda:
        if gpu_ok:
            backends.append(CUDA)
            available = available + [CUDA]
        else:
            skipped[CUDA] = f"no GPU: {gpu_text}"
    elif args.no_cuda:
        skipped[CUDA] = "--no-cuda"
    try:
        selected = W.select(args.only.split(",") if args.only else None)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.list:
        for w in W.WORKLOADS:
            print(f"{w.id:11s} {w.kind:7s} {w.title}")
        print("backends available:", ", ".join(available), "| torch:", torch is not None,
              "| cuda:", gpu_text)
        return 0
    for b, why in skipped.items():
        log(f"note: {'the GPU runner' if b == CUDA else 'backend ' + b} skipped: {why}")
    if not backends:
        raise SystemExit("no minidl backend to run")
    blas_env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                if k in os.environ}
    if blas_env:
        log(f"note: {blas_env} is set: NumPy's OpenBLAS runs that core type's kernels, "
            "which can be slower; see bench/README.md to run with both unset")
    log(f"backends: {', '.join(backends)}; torch: "
        f"{torch.__version__ if torch is not None else 'not installed'}; "
        f"threads: {bench.THREADS}")

    torch_fw = W.TorchFramework() if torch is not None else None
    minidl_fw = W.MinidlFramework()
    now = _dt.datetime.now(_dt.timezone.utc)
    result = {
        "schema": 1,
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python -m bench" + ("" if argv is None and len(sys.argv) <= 1
                                        else " " + " ".join(sys.argv[1:] if argv is None
                                                            else argv)),
        "threads": bench.THREADS,
        "torch": torch is not None,
        "settings": {k: getattr(args, k) for k in
                     ("only", "steps", "warmup", "block", "warmin_ms", "runner_budget_s",
                      "seed", "tol", "kernel_reps", "memory_steps", "no_kernels",
                      "no_memory", "all_kernels", "noisy_cores", "wait_quiet")},
        "backends": {"available": available, "timed": backends, "skipped": skipped},
        "cuda": {"available": gpu_ok, "device": gpu_text if gpu_ok else None,
                 "reason": None if gpu_ok else gpu_text},
        "workloads": [],
    }
    for w in selected:
        result["workloads"].append(run_workload(w, backends, torch_fw, minidl_fw, args))
    if not args.no_kernels:
        with LoadMeter() as load:
            # the per-kernel table times host kernels on host arrays: CPU backends only
            cpu_backends = [b for b in backends if b != CUDA]
            rows = kernel_table(selected, cpu_backends, minidl_fw, args)
        result["kernels"] = rows
        result["kernels_other_load_cores"] = load.other_cores
        result["suggested_measured_order"] = suggested_order(rows, cpu_backends)
    if not args.no_memory:
        # peak host RSS says nothing about GPU memory: the GPU runner is left out
        runners = (["torch"] if torch is not None else []) + [b for b in backends if b != CUDA]
        for w, rec in zip(selected, result["workloads"]):
            if w.kind in ("train", "fwdbwd"):
                log(f"[memory] {w.id}")
                rec["memory"] = measure_memory(w, runners, args)
                tm = rec["memory"].get("torch", {}).get("peak_growth_mib")
                rec["memory_ratio"] = {
                    b: rec["memory"][b]["peak_growth_mib"] / tm
                    for b in backends
                    if tm and "peak_growth_mib" in rec["memory"].get(b, {})}
    # machine info last: by now every thread pool (OpenBLAS, OpenMP of torch, numba and
    # the C extension) has been loaded, so threadpoolctl sees them all
    result["machine"] = machine_info(torch)
    result["minidl_backend_info"] = minidl.backend.info()
    result["runtime_s"] = round(time.perf_counter() - started, 1)

    table = markdown(result)
    print(table)
    mismatches = [f"{w['id']}:{b}" for w in result["workloads"]
                  for b, c in w["check"].items() if not c["ok"]]
    errors = [f"{w['id']}:{n}" for w in result["workloads"]
              for n, t in w["timings"].items() if "error" in t]
    result["mismatches"] = mismatches
    result["errors"] = errors
    if not args.no_save:
        stamp = now.strftime("%Y%m%d-%H%M%S")
        path = os.path.join(args.out, f"{stamp}.json")
        write_json_atomic(path, result)
        write_json_atomic(os.path.join(args.out, "latest.json"), result)
        log(f"results: {path} (and latest.json); {result['runtime_s']} s in all")
    if mismatches or errors:
        log("!!! " + ", ".join(
            ([f"MISMATCH in {', '.join(mismatches)}"] if mismatches else [])
            + ([f"ERRORS in {', '.join(errors)}"] if errors else [])))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
