"""Benchmarks of minidl (each available kernel backend) against PyTorch: ``python -m bench``.

Importing this package pins the BLAS/OpenMP thread pools to ``BENCH_THREADS`` (default 2)
through the environment, which only works before NumPy or PyTorch is first imported, so
``bench/run.py`` imports it first.  See ``bench/README.md``.
"""

import os

#: the thread count of every benchmark run (issue 4: "2 threads")
THREADS = int(os.environ.get("BENCH_THREADS", "2"))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

# Spinning OpenMP workers (libgomp's default) steal the 2 cores from OpenBLAS's threads in
# the next matrix multiply, for minidl's kernels and PyTorch's alike; libgomp reads this
# once, when it loads, so it is set here, before torch or the extensions are imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
