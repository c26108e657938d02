"""``python -m bench``: run the benchmark (see ``bench/README.md``)."""

import sys

import bench  # noqa: F401 - pins the thread pools before NumPy/PyTorch load
from bench.run import main

sys.exit(main())
