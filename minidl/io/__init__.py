"""Safe weight files: the safetensors format written with NumPy, and training checkpoints.

Nothing in this package unpickles: a weight file is a JSON header plus raw bytes, so loading an
untrusted file cannot run code. Writes are atomic (temporary file, fsync, rename).
"""

from minidl.io.checkpoint import load_checkpoint, save_checkpoint
from minidl.io.safetensors import SafetensorsError, load, load_metadata, save

__all__ = ["save", "load", "load_metadata", "save_checkpoint", "load_checkpoint",
           "SafetensorsError"]
