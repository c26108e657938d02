"""Compiled (Cython) LSTM and GRU step kernels, registered as the ``cpu`` backend.

The extension :mod:`minidl.kernels.cpu._recurrent` implements ``lstm_cell_forward``,
``lstm_cell_backward``, ``gru_cell_forward`` and ``gru_cell_backward`` with the signatures
and results of the NumPy references in :mod:`minidl.ops.recurrent` (see their docstrings:
every array argument is written or read in place; nothing is returned).

They are called once per time step, so the compiled functions are registered as they
are, without a Python wrapper around them: a wrapper's frame would cost a sizeable
fraction of a step.  The extension checks its arguments itself (float32 or float64, all
of one dtype, the shapes the reference expects, rows contiguous) and hands anything
else to the NumPy reference.

Importing this module raises ``ImportError`` when the extension is not built; the
registry then reports the ``cpu`` backend as unavailable and the reference runs.
"""

from __future__ import annotations

from minidl.backend import register_kernel
from minidl.kernels.cpu import _recurrent

__all__ = []

for _name in ("lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward",
              "gru_cell_backward"):
    register_kernel(_name, "cpu", getattr(_recurrent, _name))
