"""The benchmark workloads W1-W6 of DESIGN.md, each written once for both frameworks.

A workload builds its model from a *framework adapter* (:class:`MinidlFramework` or
:class:`TorchFramework`): the same class body runs with ``fw.nn = minidl.nn`` or
``torch.nn``, so the two models cannot drift apart, and their ``state_dict`` keys are the
same.  :func:`make_pair` builds the PyTorch model first (PyTorch's seeded initialisation),
then copies its ``state_dict`` into the minidl model as NumPy arrays, so both start from
identical float32 weights and see identical inputs.

Every workload gives a :class:`Step` per framework:

- ``run()`` is the timed unit (one training step, or one forward / forward+backward);
- ``check()`` runs the same computation once with dropout switched off and returns the
  values to compare between frameworks (outputs, loss, gradients), as NumPy arrays.

==========  ===========================================================================
id          workload
==========  ===========================================================================
W1a-fwd     Conv2d(3, 32, 3, pad 1) forward on x(32, 3, 32, 32)
W1a-fwdbwd  the same, forward+backward (gradients of input, weight and bias)
W1b-fwd     Conv2d(32, 64, 3, pad 1) forward on x(32, 32, 16, 16)
W1b-fwdbwd  the same, forward+backward
W2          DNA CNN training step (one-hot (64, 4, 1000), BCEWithLogits, Adam)
W3          protein BiLSTM training step (one-hot (16, 256, 21), CrossEntropy, Adam)
W4          BatchNorm2d(64) train-mode forward+backward on (32, 64, 16, 16)
W5          cell-image CNN training step ((32, 1, 64, 64), CrossEntropy, SGD momentum 0.9)
W6          MLP training step (batch 64, 784-256-256-10, CrossEntropy, Adam)
==========  ===========================================================================
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = [
    "WORKLOADS",
    "Workload",
    "Step",
    "MinidlFramework",
    "TorchFramework",
    "make_pair",
    "select",
]


# ------------------------------------------------------------------------ framework adapters


class MinidlFramework:
    """What a workload needs from minidl: ``nn``, ``optim``, tensors from NumPy and back.

    ``device="cuda"`` puts the inputs (and, through :meth:`place`, the model) on the GPU;
    :meth:`sync` then waits for the GPU at the end of every step, so that a timer measures
    the work rather than the kernel launches.
    """

    name = "minidl"

    def __init__(self, device="cpu"):
        import minidl
        import minidl.nn
        import minidl.optim

        self.lib = minidl
        self.nn = minidl.nn
        self.optim = minidl.optim
        self.device = device

    def on(self, device):
        """The same adapter for another device."""
        return self if device == self.device else MinidlFramework(device)

    def manual_seed(self, seed):
        self.lib.manual_seed(seed)

    def tensor(self, array, requires_grad=False):
        t = self.lib.from_numpy(np.array(array, copy=True))
        if self.device != "cpu":
            t = t.to(self.device)
        if requires_grad:
            t.requires_grad_()
        return t

    def place(self, model):
        """The model on this adapter's device (in place)."""
        return model.to(self.device) if self.device != "cpu" else model

    def sync(self):
        if self.device == "cuda":
            self.lib.cuda.synchronize()

    def numpy(self, t):
        return np.array(t.detach().cpu().numpy(), copy=True)

    def no_grad(self):
        return self.lib.no_grad()

    def global_max1d(self, x):
        # the fused op (one kernel) rather than a generic reduction
        from minidl.ops.pool import global_max_pool1d

        return global_max_pool1d(x)


class TorchFramework:
    """The same interface on PyTorch (CPU, float32)."""

    name = "torch"

    def __init__(self):
        import torch

        self.lib = torch
        self.nn = torch.nn
        self.optim = torch.optim

    def manual_seed(self, seed):
        self.lib.manual_seed(seed)

    def tensor(self, array, requires_grad=False):
        t = self.lib.from_numpy(np.array(array, copy=True))
        if requires_grad:
            t.requires_grad_()
        return t

    def numpy(self, t):
        return np.array(t.detach().numpy(), copy=True)

    def sync(self):
        pass

    def no_grad(self):
        return self.lib.no_grad()

    def global_max1d(self, x):
        return x.amax(dim=-1)


# ------------------------------------------------------------------------------- the models
# Each builder takes the adapter and returns a Module of that framework; the class body is
# shared, so parameter names (state_dict keys) are the same in both.


def _conv2d_layer(fw, cin, cout):
    return fw.nn.Conv2d(cin, cout, 3, padding=1)


def _dna_cnn(fw):
    nn = fw.nn

    class DnaCNN(nn.Module):
        """Conv1d(4,128,19)-ReLU-MaxPool(4)-Conv1d(128,128,11)-ReLU-MaxPool(4)-
        Conv1d(128,64,7)-ReLU-global max-Linear(64,1)."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv1d(4, 128, 19, padding=9), nn.ReLU(), nn.MaxPool1d(4),
                nn.Conv1d(128, 128, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4),
                nn.Conv1d(128, 64, 7, padding=3), nn.ReLU(),
            )
            self.head = nn.Linear(64, 1)

        def forward(self, x):
            return self.head(fw.global_max1d(self.features(x)))

    return DnaCNN()


def _protein_bilstm(fw):
    nn = fw.nn

    class ProteinBiLSTM(nn.Module):
        """LSTM(21, 128, bidirectional, batch_first) then Linear(256, 3) per residue."""

        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(21, 128, batch_first=True, bidirectional=True)
            self.head = nn.Linear(256, 3)

        def forward(self, x):
            out, _ = self.lstm(x)
            logits = self.head(out)  # (N, L, 3)
            return logits.reshape(-1, 3)

    return ProteinBiLSTM()


def _cell_cnn(fw):
    nn = fw.nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(1, 32), *block(32, 64), *block(64, 128),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(128 * 8 * 8, 10),
    )


def _mlp(fw):
    nn = fw.nn
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


# --------------------------------------------------------------------------------- the steps


@contextlib.contextmanager
def _dropout_off(model):
    """Dropout p = 0 for the comparison step only (the random masks of two libraries can
    never agree); every other layer keeps its training-mode behaviour."""
    saved = []
    for module in model.modules():
        if type(module).__name__ in ("Dropout", "Dropout1d", "Dropout2d"):
            saved.append((module, module.p))
            module.p = 0.0
    try:
        yield
    finally:
        for module, p in saved:
            module.p = p


class Step:
    """One timed unit of work of one framework; ``run()`` is timed, ``check()`` compared."""

    def __init__(self, fw, model):
        self.fw = fw
        self.model = model

    def run(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def _param_grads(self):
        out = {}
        for name, p in self.model.named_parameters():
            if p.grad is not None:
                out[f"grad {name}"] = self.fw.numpy(p.grad)
        return out


class ForwardStep(Step):
    """Inference forward (no graph recorded): ``y = model(x)``."""

    def __init__(self, fw, model, x):
        super().__init__(fw, model)
        self.x = fw.tensor(x)

    def run(self):
        with self.fw.no_grad():
            self.model(self.x)
        self.fw.sync()

    def check(self):
        with self.fw.no_grad():
            return {"output": self.fw.numpy(self.model(self.x))}


class ForwardBackwardStep(Step):
    """``y = model(x)``; ``y.backward(g)`` with a fixed upstream gradient ``g``; gradients
    of the input and of every parameter."""

    def __init__(self, fw, model, x, grad_output):
        super().__init__(fw, model)
        self.x = fw.tensor(x, requires_grad=True)
        self.g = fw.tensor(grad_output)

    def _zero(self):
        self.x.grad = None
        self.model.zero_grad(set_to_none=True)

    def run(self):
        self._zero()
        out = self.model(self.x)
        out.backward(self.g)
        self.fw.sync()

    def check(self):
        self._zero()
        out = self.model(self.x)
        out.backward(self.g)
        values = {"output": self.fw.numpy(out), "grad input": self.fw.numpy(self.x.grad)}
        values.update(self._param_grads())
        self._zero()
        return values


class TrainStep(Step):
    """``zero_grad``; ``loss = criterion(model(x), y)``; ``backward``; ``optimizer.step``."""

    def __init__(self, fw, model, x, y, criterion, optimizer):
        super().__init__(fw, model)
        self.x = fw.tensor(x)
        self.y = fw.tensor(y)
        self.criterion = criterion
        self.optimizer = optimizer

    def run(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.criterion(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        self.fw.sync()

    def check(self):
        """The first step's output, loss and gradients, with dropout off; no update."""
        self.optimizer.zero_grad(set_to_none=True)
        with _dropout_off(self.model):
            out = self.model(self.x)
            loss = self.criterion(out, self.y)
            loss.backward()
        values = {"output": self.fw.numpy(out), "loss": self.fw.numpy(loss).reshape(1)}
        values.update(self._param_grads())
        self.optimizer.zero_grad(set_to_none=True)
        return values


# ----------------------------------------------------------------------------- the workloads


class Workload:
    """A benchmark workload: a model builder, seeded inputs and how to make its step.

    Parameters
    ----------
    id, title : str
        Short id (``"W2"``) and one-line description for the table.
    kind : {"fwd", "fwdbwd", "train"}
    build_model : callable(fw) -> Module
    make_inputs : callable(rng) -> dict of NumPy arrays
    make_step : callable(fw, model, inputs) -> Step
    """

    def __init__(self, id, title, kind, build_model, make_inputs, make_step):
        self.id = id
        self.title = title
        self.kind = kind
        self.build_model = build_model
        self.make_inputs = make_inputs
        self.make_step = make_step

    @property
    def group(self):
        """``"W1"`` for ``"W1a-fwd"``: what ``--only`` matches on as well as the id."""
        return self.id.split("-")[0].rstrip("ab")

    def __repr__(self):
        return f"Workload({self.id!r})"


def _conv_workload(id, cin, cout, hw, kind):
    def inputs(rng):
        x = rng.standard_normal((32, cin, hw, hw), dtype=np.float32)
        g = rng.standard_normal((32, cout, hw, hw), dtype=np.float32)
        return {"x": x, "g": g}

    def step(fw, model, data):
        if kind == "fwd":
            return ForwardStep(fw, model, data["x"])
        return ForwardBackwardStep(fw, model, data["x"], data["g"])

    what = "forward" if kind == "fwd" else "forward+backward"
    title = f"conv2d {cin}->{cout} 3x3 {what}, x(32,{cin},{hw},{hw})"
    return Workload(id, title, kind, lambda fw: _conv2d_layer(fw, cin, cout), inputs, step)


def _one_hot(rng, shape_nl, depth, channels_last):
    n, length = shape_nl
    idx = rng.integers(0, depth, size=(n, length))
    x = np.eye(depth, dtype=np.float32)[idx]  # (N, L, depth)
    return x if channels_last else np.ascontiguousarray(x.transpose(0, 2, 1))


def _w2_inputs(rng):
    return {"x": _one_hot(rng, (64, 1000), 4, channels_last=False),
            "y": rng.integers(0, 2, size=(64, 1)).astype(np.float32)}


def _w2_step(fw, model, data):
    crit = fw.nn.BCEWithLogitsLoss()
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    return TrainStep(fw, model, data["x"], data["y"], crit, opt)


def _w3_inputs(rng):
    return {"x": _one_hot(rng, (16, 256), 21, channels_last=True),
            "y": rng.integers(0, 3, size=(16 * 256,)).astype(np.int64)}


def _w3_step(fw, model, data):
    crit = fw.nn.CrossEntropyLoss()
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    return TrainStep(fw, model, data["x"], data["y"], crit, opt)


def _w4_inputs(rng):
    return {"x": rng.standard_normal((32, 64, 16, 16), dtype=np.float32),
            "g": rng.standard_normal((32, 64, 16, 16), dtype=np.float32)}


def _w4_step(fw, model, data):
    model.train()
    return ForwardBackwardStep(fw, model, data["x"], data["g"])


def _w5_inputs(rng):
    return {"x": rng.standard_normal((32, 1, 64, 64), dtype=np.float32),
            "y": rng.integers(0, 10, size=(32,)).astype(np.int64)}


def _w5_step(fw, model, data):
    model.train()
    crit = fw.nn.CrossEntropyLoss()
    opt = fw.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return TrainStep(fw, model, data["x"], data["y"], crit, opt)


def _w6_inputs(rng):
    return {"x": rng.standard_normal((64, 784), dtype=np.float32),
            "y": rng.integers(0, 10, size=(64,)).astype(np.int64)}


def _w6_step(fw, model, data):
    crit = fw.nn.CrossEntropyLoss()
    opt = fw.optim.Adam(model.parameters(), lr=1e-3)
    return TrainStep(fw, model, data["x"], data["y"], crit, opt)


WORKLOADS = [
    _conv_workload("W1a-fwd", 3, 32, 32, "fwd"),
    _conv_workload("W1a-fwdbwd", 3, 32, 32, "fwdbwd"),
    _conv_workload("W1b-fwd", 32, 64, 16, "fwd"),
    _conv_workload("W1b-fwdbwd", 32, 64, 16, "fwdbwd"),
    Workload("W2", "DNA CNN step, one-hot (64,4,1000), BCEWithLogits, Adam", "train",
             _dna_cnn, _w2_inputs, _w2_step),
    Workload("W3", "protein BiLSTM(21,128) step, (16,256,21), CrossEntropy, Adam", "train",
             _protein_bilstm, _w3_inputs, _w3_step),
    Workload("W4", "BatchNorm2d(64) train fwd+bwd, (32,64,16,16)", "fwdbwd",
             lambda fw: fw.nn.BatchNorm2d(64), _w4_inputs, _w4_step),
    Workload("W5", "cell CNN step, (32,1,64,64), CrossEntropy, SGD momentum", "train",
             _cell_cnn, _w5_inputs, _w5_step),
    Workload("W6", "MLP 784-256-256-10 step, batch 64, CrossEntropy, Adam", "train",
             _mlp, _w6_inputs, _w6_step),
]


def select(only=None):
    """The workloads whose id or group (``W1`` for every W1 variant) is in ``only``."""
    if not only:
        return list(WORKLOADS)
    wanted = {w.strip().lower() for w in only if w.strip()}
    known = {w.id.lower() for w in WORKLOADS} | {w.group.lower() for w in WORKLOADS}
    unknown = sorted(w.strip() for w in only if w.strip() and w.strip().lower() not in known)
    if unknown:
        raise ValueError(f"unknown workload(s) {', '.join(unknown)}; "
                         f"known: {', '.join(w.id for w in WORKLOADS)}")
    return [w for w in WORKLOADS if w.id.lower() in wanted or w.group.lower() in wanted]


def state_dict_as_numpy(torch_model):
    """A PyTorch model's ``state_dict`` as float32 (or integer) NumPy arrays, copied."""
    return {k: np.array(v.detach().cpu().numpy(), copy=True)
            for k, v in torch_model.state_dict().items()}


def make_pair(workload, seed=0, torch_fw=None, minidl_fw=None, n_minidl=1, data=None,
              devices=None):
    """Build the workload for both frameworks from the same weights and inputs.

    Returns ``(torch_step or None, [minidl_step, ...])``: ``n_minidl`` independent minidl
    copies (one per backend timed, so that no backend inherits another's buffers), each
    loaded from the PyTorch model's ``state_dict`` when PyTorch is given, otherwise from
    the first minidl model (built with minidl's own seeded initialisation).  ``data``
    (the inputs) defaults to ``workload.make_inputs(np.random.default_rng(seed))``.
    ``devices`` (default all ``"cpu"``) gives each minidl copy's device: a ``"cuda"`` copy
    is loaded on the host, then moved to the GPU with its inputs.
    """
    devices = list(devices) if devices is not None else ["cpu"] * n_minidl
    if data is None:
        data = workload.make_inputs(np.random.default_rng(seed))
    torch_step = None
    if torch_fw is not None:
        torch_fw.manual_seed(seed)
        tmodel = workload.build_model(torch_fw)
        state = state_dict_as_numpy(tmodel)
        torch_step = workload.make_step(torch_fw, tmodel, data)
    minidl_steps = []
    if minidl_fw is not None:
        minidl_fw.manual_seed(seed)
        for i in range(n_minidl):
            model = workload.build_model(minidl_fw)
            if torch_fw is None and i == 0:
                state = {k: minidl_fw.numpy(v) for k, v in model.state_dict().items()}
            else:
                model.load_state_dict(state)
            fw = minidl_fw.on(devices[i])
            minidl_steps.append(workload.make_step(fw, fw.place(model), data))
    return torch_step, minidl_steps
