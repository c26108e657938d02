"""Optimizers and learning-rate schedulers with PyTorch's names, arguments and update rules.

>>> import minidl
>>> from minidl import optim
>>> w = minidl.zeros(3, requires_grad=True)
>>> opt = optim.Adam([w], lr=1e-3)
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=10)
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
