"""Training checkpoints (model, optimizer, epoch, RNG) in one safetensors file, without pickle.

Layout of a checkpoint file:

- model tensors as ``model.<key>`` (e.g. ``model.fc.weight``);
- every tensor found in the optimizer state as ``optim.<path>``: PyTorch's optimizer
  ``state_dict()`` is ``{"state": {0: {"exp_avg": T, "step": T}, ...}, "param_groups": [...]}``,
  so Adam's first moment of parameter 0 is stored as ``optim.state.0.exp_avg``;
  tensors inside ``extra`` or ``rng_state`` go under ``extra.<path>`` / ``rng.<path>`` likewise;
- everything else (hyperparameters, param_groups, step counts given as numbers, the epoch, the RNG
  state, the ``extra`` dict) as one JSON document in ``__metadata__["minidl.checkpoint"]``.

JSON alone would lose types that training code relies on, so the document uses a few tagged
objects, each a JSON object with a single reserved key:

- ``{"__tensor__": "optim.state.0.exp_avg"}``: a tensor stored in the file under that name;
- ``{"__tuple__": [0.9, 0.999]}``: a tuple (e.g. Adam's ``betas``);
- ``{"__dict__": [[0, {...}], ...]}``: a dict with non-str keys (``state`` has int keys);
- ``{"__float__": "inf"}``: a non-finite float (``nan``, ``inf``, ``-inf``);

so a round trip gives back equal structures: ints stay ints, floats floats, tuples tuples,
tensors Tensors. NumPy scalars (``np.float32(0.1)``) are stored as the Python number they equal.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict

import numpy as np

from minidl.io.safetensors import (
    SafetensorsError,
    _load_arrays,
    _target_device,
    _tensor_class,
    _wrap,
    save,
)

__all__ = ["save_checkpoint", "load_checkpoint"]

CHECKPOINT_KEY = "minidl.checkpoint"
FORMAT_VERSION = 1
_TAGS = ("__tensor__", "__tuple__", "__dict__", "__float__")


def _is_tensor(value):
    """Tensors and arrays go in the binary part; NumPy scalars are numbers, not tensors."""
    if isinstance(value, np.generic):
        return False
    try:
        tensor_cls = _tensor_class()
    except ImportError:
        tensor_cls = ()
    return (
        (bool(tensor_cls) and isinstance(value, tensor_cls))
        or isinstance(value, np.ndarray)
        or hasattr(value, "__array__")
    )


class _Encoder:
    """Turns a nested structure into JSON-able values, moving its tensors into ``self.tensors``."""

    def __init__(self, tensors, where):
        self.tensors = tensors
        self.where = where

    def encode(self, value, path):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)  # an IntEnum or other int subclass becomes a plain int
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else {"__float__": repr(float(value))}
        if isinstance(value, np.generic):
            if not isinstance(value, (np.bool_, np.integer, np.floating)):
                raise self._unsupported(value, path)
            return self.encode(value.item(), path)
        if _is_tensor(value):
            if path in self.tensors:
                raise SafetensorsError(
                    f"{self.where}: two tensors would both be stored as {path!r}; rename a key "
                    "(keys that contain '.' can collide with nested dicts)"
                )
            self.tensors[path] = value
            return {"__tensor__": path}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}.{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(k, str) for k in value) and not any(k in _TAGS for k in value):
                return {k: self.encode(v, f"{path}.{k}") for k, v in value.items()}
            # int keys (optimizer "state"), or keys that would read back as a tag
            return {"__dict__": [[self._encode_key(k, path), self.encode(v, f"{path}.{k}")]
                                 for k, v in value.items()]}
        raise self._unsupported(value, path)

    def _encode_key(self, key, path):
        if key is None or isinstance(key, (bool, int, float, str, np.integer)):
            return self.encode(key, path)
        if isinstance(key, tuple):
            return self.encode(key, path)
        raise SafetensorsError(
            f"{self.where}: at {path!r}: dict key {key!r} ({type(key).__name__}) cannot be "
            "stored; use str, int, float, bool, None or a tuple of those"
        )

    def _unsupported(self, value, path):
        return SafetensorsError(
            f"{self.where}: at {path!r}: cannot store a {type(value).__module__}."
            f"{type(value).__name__}; a checkpoint holds tensors, numbers, str, None, and "
            "lists/tuples/dicts of those"
        )


class _Decoder:
    """Inverse of :class:`_Encoder`: takes each referenced tensor out of ``tensors``."""

    def __init__(self, tensors, where):
        self.tensors = tensors
        self.where = where

    def decode(self, value):
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (tag, content), = value.items()
            if tag == "__tensor__":
                if content not in self.tensors:
                    raise SafetensorsError(
                        f"{self.where}: the metadata refers to tensor {content!r}, which is not "
                        "in the file"
                    )
                return self.tensors.pop(content)
            if tag == "__tuple__":
                return tuple(self.decode(v) for v in content)
            if tag == "__dict__":
                return {self._key(self.decode(k)): self.decode(v) for k, v in content}
            if tag == "__float__":
                return float(content)
        return {k: self.decode(v) for k, v in value.items()}

    @staticmethod
    def _key(key):
        return tuple(key) if isinstance(key, list) else key


def save_checkpoint(path, model_state, optimizer_state=None, epoch=None, rng_state=None,
                    extra=None):
    """Save everything needed to resume training into one safetensors file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file (``.safetensors`` suffix recommended); replaced only once the new file is
        complete and fsync-ed.
    model_state : dict of str -> Tensor or array
        ``model.state_dict()``; stored as ``model.<key>``.
    optimizer_state : dict, optional
        ``optimizer.state_dict()`` in PyTorch's layout: ``{"state": {int: {name: Tensor or
        number}}, "param_groups": [{..., "params": [int, ...]}]}``. Tensors are stored as
        ``optim.state.<i>.<name>``; numbers and hyperparameters go into the JSON metadata.
    epoch : int, optional
    rng_state : dict, optional
        ``minidl.random.get_rng_state()``; restore it with ``minidl.random.set_rng_state``.
    extra : dict, optional
        Anything else made of numbers, str, None, lists, tuples, dicts and tensors
        (e.g. ``{"best_loss": 0.31, "history": [...]}``).

    Raises
    ------
    SafetensorsError
        For a value that is none of the supported types (the message gives its path in the
        structure), or any error :func:`minidl.io.save` raises.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from minidl.io import save_checkpoint, load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> optim = {"state": {0: {"step": 3, "momentum_buffer": np.ones(2, np.float32)}},
    ...          "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]}
    >>> save_checkpoint(path, {"w": np.ones(2, np.float32)}, optim, epoch=4)
    >>> ckpt = load_checkpoint(path)
    >>> ckpt["epoch"], ckpt["optimizer"]["param_groups"], ckpt["optimizer"]["state"][0]["step"]
    (4, [{'lr': 0.1, 'betas': (0.9, 0.999), 'params': [0]}], 3)
    """
    where = f"minidl.io.save_checkpoint({os.fspath(path)!r})"
    if not hasattr(model_state, "items"):
        raise SafetensorsError(
            f"{where}: model_state must be a dict of name -> tensor, got "
            f"{type(model_state).__name__}"
        )
    tensors = {}
    model_keys = []
    for key, value in model_state.items():
        if not isinstance(key, str):
            raise SafetensorsError(
                f"{where}: model_state keys must be str, got {type(key).__name__} {key!r}"
            )
        if not _is_tensor(value):
            raise SafetensorsError(
                f"{where}: model_state[{key!r}] is a {type(value).__name__}, not a tensor"
            )
        tensors[f"model.{key}"] = value
        model_keys.append(key)

    encoder = _Encoder(tensors, where)
    record = {
        "format": CHECKPOINT_KEY,
        "version": FORMAT_VERSION,
        "model_keys": model_keys,  # keeps the state_dict's order, which the file layout does not
        "optimizer": encoder.encode(optimizer_state, "optim"),
        "epoch": encoder.encode(epoch, "epoch"),
        "rng_state": encoder.encode(rng_state, "rng"),
        "extra": encoder.encode(extra, "extra"),
    }
    # allow_nan=False: non-finite floats were tagged above, so the text is strict JSON that any
    # reader (not only Python's) accepts.
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    save(tensors, path, metadata={CHECKPOINT_KEY: text})


def load_checkpoint(path, device="cpu", map_location=None):
    """Load a file written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
    device : str, default "cpu"
        Where the tensors go (see :func:`minidl.io.load`).
    map_location : str or dict, optional
        PyTorch's name for ``device`` (see :func:`minidl.io.load`).

    Returns
    -------
    dict
        ``{"model": OrderedDict of str -> Tensor (in the saved order), "optimizer": dict or None,
        "epoch": int or None, "rng_state": dict or None, "extra": dict or None}``, each equal to
        what was saved, with every tensor or array given back as a minidl Tensor.

    Raises
    ------
    SafetensorsError
        If the file is not a valid safetensors file, or is a plain weight file without the
        ``minidl.checkpoint`` metadata, or its metadata and tensors disagree.
    """
    where = f"minidl.io.load_checkpoint({os.fspath(path)!r})"
    device = _target_device(device, map_location, where)
    arrays, metadata = _load_arrays(path, where)
    if CHECKPOINT_KEY not in metadata:
        raise SafetensorsError(
            f"{where}: no {CHECKPOINT_KEY!r} entry in the metadata: this is a plain weight file, "
            "not a checkpoint; read it with minidl.io.load"
        )
    try:
        record = json.loads(metadata[CHECKPOINT_KEY])
    except json.JSONDecodeError as exc:
        raise SafetensorsError(f"{where}: checkpoint metadata is not valid JSON: {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != CHECKPOINT_KEY:
        raise SafetensorsError(f"{where}: checkpoint metadata is not a minidl checkpoint record")
    if record.get("version") != FORMAT_VERSION:
        raise SafetensorsError(
            f"{where}: checkpoint format version {record.get('version')!r} is not supported "
            f"(this minidl reads version {FORMAT_VERSION})"
        )

    tensors = _wrap(arrays, device)
    model = OrderedDict()
    for key in record.get("model_keys", []):
        name = f"model.{key}"
        if name not in tensors:
            raise SafetensorsError(f"{where}: model tensor {name!r} is missing from the file")
        model[key] = tensors.pop(name)
    decoder = _Decoder(tensors, where)
    result = {
        "model": model,
        "optimizer": decoder.decode(record.get("optimizer")),
        "epoch": decoder.decode(record.get("epoch")),
        "rng_state": decoder.decode(record.get("rng_state")),
        "extra": decoder.decode(record.get("extra")),
    }
    if tensors:
        raise SafetensorsError(
            f"{where}: tensors {sorted(tensors)} are in the file but not referenced by the "
            "checkpoint metadata (corrupt or hand-edited file)"
        )
    return result
