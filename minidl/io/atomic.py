"""Atomic file writes for everything minidl saves (weights, tables, configs, plots).

A reader (or a crash) sees either the old file or the complete new one, never half of it:
the bytes go to a temporary file in the same directory, which is flushed, fsync-ed and
renamed over the target (``os.replace`` is atomic on one file system).
"""

from __future__ import annotations

import json
import os

from minidl.io.safetensors import _atomic_write

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json"]


def atomic_write_bytes(path, data: bytes):
    """Write ``data`` to ``path`` atomically (parent directories are created)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _atomic_write(path, lambda fh: fh.write(data), f"write {path}")


def atomic_write_text(path, text: str, encoding="utf-8"):
    """Write ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path, obj, indent=2):
    """Write ``obj`` as JSON (sorted keys off, NaN written as ``NaN``) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")
