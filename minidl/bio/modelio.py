"""A trained bio model on disk: a directory with ``model.safetensors`` and ``config.json``.

``config.json`` holds everything needed to rebuild the model and its input encoding:

.. code-block:: json

    {"format": "minidl-bio-model", "version": 1, "task": "dna",
     "model": {"model": "cnn", "num_classes": 2, ...},
     "classes": ["0", "1"], "encoding": {"alphabet": "dna", "length": 251},
     "training": {...}}

so a saved model runs with NumPy alone (no numba, tqdm, matplotlib or torch).  Shipped
pretrained models live in ``minidl/bio/pretrained/<name>/`` and load by name.

An *ensemble* directory (:func:`save_ensemble_dir`, ``minidl-bio ensemble``) holds several
trained models of the same task, classes and encoding, e.g. the same command run with
different seeds: ``"model": {"model": "ensemble", "output": "softmax", "members": [...]}``
and the members' weights under ``members.<i>.`` in one safetensors file.  It loads like
any model (:class:`Ensemble`), so ``evaluate`` and ``predict`` use it unchanged.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import minidl
import minidl.nn.functional as F
from minidl import nn
from minidl.io import safetensors
from minidl.io.atomic import atomic_write_json

__all__ = ["save_model_dir", "load_model_dir", "pretrained_names", "resolve_model_dir",
           "Ensemble", "save_ensemble_dir"]

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


class Ensemble(nn.Module):
    r"""Average of the members' predicted probabilities, returned as logits.

    For ``output="softmax"`` (classes on the last axis) the result is

    .. math::

        z = \log \tfrac{1}{M} \textstyle\sum_m \operatorname{softmax}(f_m(x)),

    so ``softmax(z)`` is exactly the mean probability; for ``output="sigmoid"`` (one
    logit per example) ``z = \log \bar p - \log(1 - \bar p)`` with
    :math:`\bar p = \frac{1}{M}\sum_m \sigma(f_m(x))`, so ``sigmoid(z) = \bar p``.
    With ``weights`` (positive, summing to 1) the mean is the weighted one,
    :math:`\sum_m w_m p_m`.  Both are computed with log-sum-exp, without forming
    probabilities that could round to 0 or 1.  Arguments are passed to every member
    unchanged.
    """

    def __init__(self, members, output="softmax", weights=None):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if output not in ("softmax", "sigmoid"):
            raise ValueError(f"ensemble output must be 'softmax' or 'sigmoid', got {output!r}")
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != len(members) or min(weights) <= 0 or \
                    abs(sum(weights) - 1.0) > 1e-6:
                raise ValueError(f"ensemble weights must be {len(members)} positive numbers "
                                 f"summing to 1, got {weights}")
        self.members = nn.ModuleList(members)
        self.output = output
        self.weights = weights
        self.config = {"model": "ensemble", "output": output,
                       "members": [getattr(m, "config", None) for m in members]}
        if weights is not None:
            self.config["weights"] = weights

    def forward(self, *args, **kwargs):
        outs = [m(*args, **kwargs) for m in self.members]
        if self.weights is None:
            log_w = [-math.log(len(outs))] * len(outs)
        else:
            log_w = [math.log(w) for w in self.weights]
        if self.output == "softmax":
            logp = minidl.stack([F.log_softmax(o, dim=-1) + lw for o, lw in zip(outs, log_w)],
                                dim=0)
            return logp.logsumexp(dim=0)
        log_p = minidl.stack([F.logsigmoid(o) + lw for o, lw in zip(outs, log_w)],
                             dim=0).logsumexp(dim=0)
        log_q = minidl.stack([F.logsigmoid(-o) + lw for o, lw in zip(outs, log_w)],
                             dim=0).logsumexp(dim=0)
        return log_p - log_q



def save_ensemble_dir(directory, member_dirs, build, task=None):
    """Write an ensemble model directory from trained model directories (or shipped names).

    The members must share ``task``, ``classes`` and ``encoding`` (they read the same
    input and predict the same labels); the first member's config gives those and the
    members' ``training`` records are kept.  ``build`` rebuilds one member from its model
    config (as for :func:`load_model_dir`); ``task``, when given, is what every member must
    be.  Nothing is written unless every member loads and agrees.  Returns the ensemble and
    its config.
    """
    if len(member_dirs) < 2:
        raise ValueError("an ensemble needs at least 2 member models")
    members, configs = [], []
    for name in member_dirs:
        if task is not None:
            found = json.loads((resolve_model_dir(name) / "config.json").read_text()).get("task")
            if found != task:
                raise ValueError(f"{name}: a {found!r} model, not a {task!r} one")
        model, config = load_model_dir(name, build)
        members.append(model)
        configs.append(config)
    first = configs[0]
    for name, config in zip(member_dirs[1:], configs[1:]):
        for key in ("task", "classes", "encoding"):
            if config.get(key) != first.get(key):
                raise ValueError(f"{name}: {key} {config.get(key)!r} differs from the first "
                                 f"member's {first.get(key)!r}")
    output = "sigmoid" if len(first.get("classes", [])) == 2 and first.get("task") == "dna" \
        else "softmax"
    # A member that is itself an ensemble (e.g. the CNN + k-mer blend of ``dna train``)
    # is flattened: each of the M listed models weighs 1/M, shared among its own members
    # by its own weights, so the probabilities are the mean of the listed models'.
    flat, weights, flat_configs = [], [], []
    for model, config in zip(members, configs):
        if isinstance(model, Ensemble):
            inner = model.weights or [1.0 / len(model.members)] * len(model.members)
            for sub, w, sub_config in zip(model.members, inner, config["model"]["members"]):
                flat.append(sub)
                weights.append(w / len(members))
                flat_configs.append(sub_config)
        else:
            flat.append(model)
            weights.append(1.0 / len(members))
            flat_configs.append(config["model"])
    equal = len(flat) == len(members)
    ensemble = Ensemble(flat, output=output, weights=None if equal else weights)
    config = {k: v for k, v in first.items() if k not in ("model", "training", "format",
                                                          "version")}
    config["model"] = {"model": "ensemble", "output": output, "members": flat_configs}
    if not equal:
        config["model"]["weights"] = weights
    config["members"] = [{"source": str(name), "training": c.get("training")}
                         for name, c in zip(member_dirs, configs)]
    save_model_dir(directory, ensemble, config)
    return ensemble, config


def load_model_dir(name_or_dir, build):
    """Load ``(model, config)``; ``build(config["model"])`` makes the architecture (for an
    ensemble, ``build`` makes each member)."""
    directory = resolve_model_dir(name_or_dir)
    try:
        config = json.loads((directory / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{directory / 'config.json'}: not valid JSON ({err})") from None
    if config.get("format") != FORMAT:
        raise ValueError(f"{directory / 'config.json'}: not a minidl bio model config")
    if config["model"].get("model") == "ensemble":
        spec = config["model"]
        model = Ensemble([build(c) for c in spec["members"]],
                         output=spec.get("output", "softmax"), weights=spec.get("weights"))
    else:
        model = build(config["model"])
    weights = safetensors.load(directory / "model.safetensors")
    model.load_state_dict(weights)
    model.eval()
    return model, config
