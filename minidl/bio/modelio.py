"""A trained bio model on disk: a directory with ``model.safetensors`` and ``config.json``.

``config.json`` holds everything needed to rebuild the model and its input encoding:

.. code-block:: json

    {"format": "minidl-bio-model", "version": 1, "task": "dna",
     "model": {"model": "cnn", "num_classes": 2, ...},
     "classes": ["0", "1"], "encoding": {"alphabet": "dna", "length": 251},
     "training": {...}}

so a saved model runs with NumPy alone (no numba, tqdm, matplotlib or torch).  Shipped
pretrained models live in ``minidl/bio/pretrained/<name>/`` and load by name.
"""

from __future__ import annotations

import json
from pathlib import Path

from minidl.io import safetensors
from minidl.io.atomic import atomic_write_json

__all__ = ["save_model_dir", "load_model_dir", "pretrained_names", "resolve_model_dir"]

FORMAT = "minidl-bio-model"
_PRETRAINED = Path(__file__).resolve().parent / "pretrained"


def pretrained_names():
    """Names of the shipped pretrained models."""
    if not _PRETRAINED.is_dir():
        return []
    return sorted(p.name for p in _PRETRAINED.iterdir() if (p / "config.json").exists())


def resolve_model_dir(name_or_dir) -> Path:
    """A model directory from a path or a shipped model's name."""
    path = Path(name_or_dir)
    if (path / "config.json").exists():
        return path
    if (_PRETRAINED / str(name_or_dir) / "config.json").exists():
        return _PRETRAINED / str(name_or_dir)
    shipped = ", ".join(pretrained_names()) or "none"
    raise FileNotFoundError(
        f"{name_or_dir!r} is neither a model directory (with config.json and "
        f"model.safetensors) nor a shipped model (shipped: {shipped})"
    )


def save_model_dir(directory, model, config: dict):
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (atomic writes;
    the weights first, so a config never points at missing weights)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().numpy() if hasattr(v, "detach") else v
             for k, v in model.state_dict().items()}
    safetensors.save(state, directory / "model.safetensors")
    atomic_write_json(directory / "config.json", dict(config, format=FORMAT, version=1))


def load_model_dir(name_or_dir, build):
    """Load ``(model, config)``; ``build(config["model"])`` makes the architecture."""
    directory = resolve_model_dir(name_or_dir)
    try:
        config = json.loads((directory / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{directory / 'config.json'}: not valid JSON ({err})") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{directory / 'config.json'}: not a minidl bio model config")
    model = build(config["model"])
    weights = safetensors.load(directory / "model.safetensors")
    model.load_state_dict(weights)
    model.eval()
    return model, config
