"""Utilities for training modules: gradient clipping, packed sequences, transfer learning."""

from minidl.nn.utils import rnn

from .clip_grad import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .spectral_norm import remove_spectral_norm, spectral_norm
from .transfer import (
    count_parameters,
    freeze,
    param_groups,
    replace_head,
    trainable_parameters,
    unfreeze,
)

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm", "rnn",
           "freeze", "unfreeze", "trainable_parameters", "count_parameters", "replace_head",
           "param_groups", "spectral_norm", "remove_spectral_norm"]
