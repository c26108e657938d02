"""Training, moving, saving and loading on "cuda", compared with the same work on the CPU.

The W2 (DNA CNN, BCEWithLogits, Adam) and W5 (cell-image CNN with batch norm and dropout,
CrossEntropy, SGD with momentum) training steps of DESIGN.md, and W3 (BiLSTM) and W6 (MLP)
as well, run on both devices from the same weights and inputs; losses, outputs, gradients,
updated weights, optimizer state and batch-norm statistics must agree to 1e-4 (relative to
each array's scale).  The batch is smaller than the benchmark's so that the CPU reference
stays fast; the layers are the same.

See ``conftest.py`` for the two kinds of "cuda" (the host-side fake CuPy, which checks
genericity, and the real CuPy on a GPU, marked ``gpu``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.io import load, load_checkpoint, save, save_checkpoint

TOL = 1e-4


def _assert_close(got, want, what, group_scale=0.0):
    """``got`` equals ``want`` to ``TOL`` relative to ``want``'s largest magnitude, or to 1%
    of ``group_scale`` (the largest of its kind) where that is larger: a gradient that is
    zero in exact arithmetic (a convolution bias before batch norm) is float32 noise on
    both devices."""
    got, want = np.asarray(got), np.asarray(want)
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=TOL,
                               atol=TOL * max(scale, 0.01 * group_scale, 1e-3),
                               err_msg=what)


def _host(t):
    return np.array(t.detach().cpu().numpy(), copy=True)


# ----------------------------------------------------------------------------- models


class DnaCNN(nn.Module):
    """W2: Conv1d(4,128,19)-ReLU-MaxPool(4)-Conv1d(128,128,11)-ReLU-MaxPool(4)-
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
        return self.head(self.features(x).amax(dim=-1))


def cell_cnn():
    """W5: 3 x [Conv2d 3x3-BatchNorm2d-ReLU-MaxPool2d(2)] (32, 64, 128), Dropout(0.5),
    Linear(8192, 10)."""

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(128 * 8 * 8, 10))


def _w2_data(rng, batch=4, length=200):
    idx = rng.integers(0, 4, size=(batch, length))
    x = np.ascontiguousarray(np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1))
    y = rng.integers(0, 2, size=(batch, 1)).astype(np.float32)
    return x, y


def _w5_data(rng, batch=4):
    x = rng.standard_normal((batch, 1, 64, 64)).astype(np.float32)
    y = rng.integers(0, 10, size=(batch,)).astype(np.int64)
    return x, y


class ProteinBiLSTM(nn.Module):
    """W3: LSTM(21, 128, bidirectional, batch_first), Linear(256, 3) per residue."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(21, 128, batch_first=True, bidirectional=True)
        self.head = nn.Linear(256, 3)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out).reshape(-1, 3)


def _w3_data(rng, batch=3, length=24):
    x = np.eye(21, dtype=np.float32)[rng.integers(0, 21, size=(batch, length))]
    y = rng.integers(0, 3, size=(batch * length,)).astype(np.int64)
    return x, y


def mlp():
    """W6: 784-256-256-10 with ReLU."""
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10))


def _w6_data(rng, batch=8):
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    return x, rng.integers(0, 10, size=(batch,)).astype(np.int64)


WORKLOADS = {
    "W2": (DnaCNN, _w2_data, nn.BCEWithLogitsLoss,
           lambda params: optim.Adam(params, lr=1e-3)),
    "W5": (cell_cnn, _w5_data, nn.CrossEntropyLoss,
           lambda params: optim.SGD(params, lr=0.01, momentum=0.9)),
    "W3": (ProteinBiLSTM, _w3_data, nn.CrossEntropyLoss,
           lambda params: optim.Adam(params, lr=1e-3)),
    "W6": (mlp, _w6_data, nn.CrossEntropyLoss, lambda params: optim.Adam(params, lr=1e-3)),
}


def _train(workload, device, steps=2):
    """``steps`` training steps on ``device`` from seeded weights; everything to compare."""
    build, make_data, make_loss, make_optimizer = WORKLOADS[workload]
    minidl.manual_seed(0)
    model = build()  # initialised on the host from the seed: the same weights everywhere
    model.to(device)
    model.train()
    criterion = make_loss()
    optimizer = make_optimizer(model.parameters())
    x_host, y_host = make_data(np.random.default_rng(1))
    x = minidl.tensor(x_host, device=device)
    y = minidl.tensor(y_host, device=device)
    record = {"losses": [], "outputs": []}
    for step in range(steps):
        # NOTE: dropout masks are drawn on the host from minidl's generator, so one seed
        # gives the same masks on both devices and W5 compares with dropout on
        minidl.manual_seed(100 + step)
        optimizer.zero_grad()
        out = model(x)
        loss = criterion(out, y)
        loss.backward()
        optimizer.step()
        record["losses"].append(loss)
        record["outputs"].append(out)
    record.update(model=model, optimizer=optimizer)
    return record


def _device_arrays(model, optimizer):
    """Every array a training step leaves behind: weights, gradients, buffers, state."""
    arrays = {}
    for name, p in model.named_parameters():
        arrays[name] = p.data
        arrays[f"grad {name}"] = p.grad.data
    for name, b in model.named_buffers():
        arrays[f"buffer {name}"] = b.data
    for i, state in enumerate(optimizer.state.values()):
        for key, value in state.items():
            if isinstance(value, minidl.Tensor):
                arrays[f"state {i} {key}"] = value.data
    return arrays


@pytest.mark.parametrize("workload", ["W2", "W5", "W3", "W6"])
def test_training_steps_on_cuda_match_cpu(gpu, workload):
    cpu = _train(workload, "cpu")
    cuda = _train(workload, "cuda")
    for step, (got, want) in enumerate(zip(cuda["losses"], cpu["losses"])):
        assert got.device == "cuda"
        _assert_close(_host(got), _host(want), f"{workload} loss, step {step}")
        _assert_close(_host(cuda["outputs"][step]), _host(cpu["outputs"][step]),
                      f"{workload} output, step {step}")
    got_arrays = _device_arrays(cuda["model"], cuda["optimizer"])
    want_arrays = _device_arrays(cpu["model"], cpu["optimizer"])
    assert got_arrays.keys() == want_arrays.keys()
    assert any(key.startswith("state") for key in got_arrays)  # momentum / Adam moments
    group_scale = {}
    for key, array in want_arrays.items():
        kind = key.split()[0]
        group_scale[kind] = max(group_scale.get(kind, 0.0), float(np.max(np.abs(array))))
    for key, array in got_arrays.items():
        # the weights, their gradients, the batch-norm statistics and the optimizer state
        # were all made (and updated) on the device, never on the host
        assert gpu.is_device_array(array), f"{workload}: {key} is a {type(array)}"
        _assert_close(gpu.host(array), want_arrays[key], f"{workload}: {key}",
                      group_scale[key.split()[0]])


def test_model_to_moves_parameters_gradients_and_buffers(gpu):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    params = list(model.parameters())
    model(minidl.randn(5, 3)).sum().backward()
    host_weight = _host(params[0])
    assert model.cuda() is model
    # same Parameter objects (an optimizer made before .cuda() still holds them)
    assert list(model.parameters()) == params
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.device == "cuda" and gpu.is_device_array(t.data), name
    for p in params:
        assert p.grad.device == "cuda"
    assert model[1].num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    np.testing.assert_array_equal(gpu.host(params[0]), host_weight)
    model.to("cpu")
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.device == "cpu" and isinstance(t.data, np.ndarray), name
    np.testing.assert_array_equal(params[0].numpy() if not params[0].requires_grad
                                  else params[0].detach().numpy(), host_weight)


def test_layers_built_on_cuda_and_optimizers_keep_state_there(gpu):
    minidl.manual_seed(3)
    layer = nn.Linear(4, 2, device="cuda")
    assert layer.weight.device == "cuda"
    x = minidl.randn(6, 4, device="cuda")
    for make in (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                 lambda p: optim.Adam(p, lr=0.1, amsgrad=True),
                 lambda p: optim.AdamW(p, lr=0.1),
                 lambda p: optim.RMSprop(p, lr=0.1, momentum=0.5, centered=True),
                 lambda p: optim.Adagrad(p, lr=0.1)):
        opt = make(layer.parameters())
        for _ in range(2):
            opt.zero_grad()
            layer(x).square().mean().backward()
            nn.utils.clip_grad_norm_(layer.parameters(), 0.5)
            opt.step()
        for p in layer.parameters():
            assert gpu.is_device_array(p.data), type(opt).__name__
            for key, value in opt.state[p].items():
                if isinstance(value, minidl.Tensor):
                    assert gpu.is_device_array(value.data), (type(opt).__name__, key)


def test_save_from_cuda_and_load_to_cuda(gpu, tmp_path):
    minidl.manual_seed(5)
    model = cell_cnn().cuda()
    model(minidl.randn(2, 1, 64, 64, device="cuda"))  # batch-norm statistics move
    path = os.path.join(tmp_path, "cells.safetensors")
    save(model.state_dict(), path)

    on_host = load(path)  # the file holds host bytes: loaded on the CPU by default
    for key, t in model.state_dict().items():
        assert on_host[key].device == "cpu"
        np.testing.assert_array_equal(on_host[key].numpy(), gpu.host(t), err_msg=key)

    for kwargs in ({"device": "cuda"}, {"map_location": "cuda"}, {"map_location": "cuda:0"}):
        on_gpu = load(path, **kwargs)
        for key, t in on_gpu.items():
            assert t.device == "cuda" and gpu.is_device_array(t.data), (kwargs, key)
            np.testing.assert_array_equal(gpu.host(t), on_host[key].numpy(), err_msg=key)

    fresh = cell_cnn().cuda()
    fresh.load_state_dict(load(path, device="cuda"))
    again = cell_cnn().cuda()
    again.load_state_dict(on_host)  # host tensors are copied onto the GPU parameters
    for (key, a), b, c in zip(model.state_dict().items(), fresh.state_dict().values(),
                              again.state_dict().values()):
        assert b.device == "cuda" and c.device == "cuda"
        np.testing.assert_array_equal(gpu.host(b), gpu.host(a), err_msg=key)
        np.testing.assert_array_equal(gpu.host(c), gpu.host(a), err_msg=key)


def test_checkpoint_round_trip_from_cuda(gpu, tmp_path):
    minidl.manual_seed(6)
    model = nn.Linear(3, 2).cuda()
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(minidl.randn(4, 3, device="cuda")).sum().backward()
    opt.step()
    path = os.path.join(tmp_path, "ckpt.safetensors")
    save_checkpoint(path, model.state_dict(), opt.state_dict(), epoch=1,
                    rng_state=minidl.get_rng_state())

    # resume on the GPU
    ck = load_checkpoint(path, map_location="cuda")
    model2 = nn.Linear(3, 2).cuda()
    model2.load_state_dict(ck["model"])
    opt2 = optim.Adam(model2.parameters(), lr=0.01)
    opt2.load_state_dict(ck["optimizer"])
    # resume on the CPU from the same file (state saved on the GPU, loaded on the host)
    model3 = nn.Linear(3, 2)
    model3.load_state_dict(load_checkpoint(path)["model"])
    opt3 = optim.Adam(model3.parameters(), lr=0.01)
    opt3.load_state_dict(ck["optimizer"])  # GPU tensors into a CPU optimizer
    for p, p2, p3 in zip(model.parameters(), model2.parameters(), model3.parameters()):
        for key in ("exp_avg", "exp_avg_sq"):
            want = gpu.host(opt.state[p][key])
            assert gpu.is_device_array(opt2.state[p2][key].data)
            assert isinstance(opt3.state[p3][key].data, np.ndarray)
            np.testing.assert_array_equal(gpu.host(opt2.state[p2][key]), want)
            np.testing.assert_array_equal(opt3.state[p3][key].data, want)


def test_gradient_flows_back_across_devices(gpu):
    x = minidl.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda" and y.grad_fn is not None
    z = (y * y).sum()
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    w = minidl.ones(3, device="cuda", requires_grad=True)
    (w.cpu() * 3).sum().backward()
    assert w.grad.device == "cuda"
    np.testing.assert_allclose(gpu.host(w.grad), [3.0, 3.0, 3.0])


def test_creation_functions_on_cuda(gpu):
    made = {
        "zeros": minidl.zeros(2, 3, device="cuda"),
        "ones": minidl.ones((2, 3), device="cuda", dtype=minidl.float64),
        "full": minidl.full((2,), 7, device="cuda"),
        "empty": minidl.empty(4, device="cuda"),
        "arange": minidl.arange(5, device="cuda"),
        "linspace": minidl.linspace(0, 1, 5, device="cuda"),
        "eye": minidl.eye(3, device="cuda"),
        "tensor": minidl.tensor([[1.0, 2.0]], device="cuda", requires_grad=True),
        "as_tensor": minidl.as_tensor(np.arange(3), device="cuda"),
        "rand": minidl.rand(3, device="cuda"),
        "randn": minidl.randn(3, device="cuda"),
        "randint": minidl.randint(0, 5, (4,), device="cuda"),
        "randperm": minidl.randperm(6, device="cuda"),
    }
    base = made["randn"]
    made.update({
        "zeros_like": minidl.zeros_like(base), "ones_like": minidl.ones_like(base),
        "full_like": minidl.full_like(base, 2.5), "empty_like": minidl.empty_like(base),
        "rand_like": minidl.rand_like(base), "randn_like": minidl.randn_like(base),
        "zeros_like_cpu": minidl.zeros_like(base, device="cpu"),
    })
    for name, t in made.items():
        want = "cpu" if name.endswith("_cpu") else "cuda"
        assert t.device == want, name
        assert gpu.is_device_array(t.data) == (want == "cuda"), name
    assert made["tensor"].requires_grad and made["tensor"].is_leaf
    assert made["full"].dtype == np.int64 and made["ones"].dtype == np.float64
    # random numbers come from the host generator: the same seed, the same values
    minidl.manual_seed(11)
    on_gpu = minidl.randn(4, device="cuda")
    minidl.manual_seed(11)
    np.testing.assert_array_equal(gpu.host(on_gpu), minidl.randn(4).numpy())


def test_tensor_methods_on_cuda(gpu):
    t = minidl.arange(6, dtype=minidl.float32, device="cuda").reshape(2, 3)
    assert t.is_cuda and t.cuda() is t and t.to("cuda:0") is t
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert t.sum().item() == 15.0 and float(t[1, 2]) == 5.0
    assert "device='cuda'" in repr(t)
    np.testing.assert_array_equal(np.asarray(t), [[0, 1, 2], [3, 4, 5]])
    with pytest.raises(TypeError, match="cpu"):
        t.numpy()
    u = t.clone()
    with minidl.no_grad():
        u.add_(1).mul_(2).clamp_(0, 9).masked_fill_(u > 8, -1.0)
        u[0, 0] = 42.0
        u[1] = minidl.tensor([7.0, 7.0, 7.0])  # host values are copied onto the device
        u.copy_(u.cpu() * 2)
    assert gpu.is_device_array(u.data)
    np.testing.assert_array_equal(gpu.host(u), [[84.0, 8.0, 12.0], [14.0, 14.0, 14.0]])
    v = t.double().half().float()
    assert v.dtype == np.float32 and v.device == "cuda"
    idx = minidl.tensor([1, 0])
    np.testing.assert_array_equal(gpu.host(t[idx]), [[3, 4, 5], [0, 1, 2]])


INITS = {
    "uniform_": lambda t: nn.init.uniform_(t, -0.5, 0.5),
    "normal_": lambda t: nn.init.normal_(t, 0.0, 0.1),
    "trunc_normal_": lambda t: nn.init.trunc_normal_(t, std=0.5),
    "constant_": lambda t: nn.init.constant_(t, 0.25),
    "ones_": nn.init.ones_,
    "zeros_": nn.init.zeros_,
    "dirac_": nn.init.dirac_,
    "xavier_uniform_": nn.init.xavier_uniform_,
    "xavier_normal_": nn.init.xavier_normal_,
    "kaiming_uniform_": nn.init.kaiming_uniform_,
    "kaiming_normal_": lambda t: nn.init.kaiming_normal_(t, mode="fan_out"),
    "orthogonal_": nn.init.orthogonal_,
    "tensor.uniform_": lambda t: t.uniform_(0.0, 2.0),
    "tensor.normal_": lambda t: t.normal_(1.0, 0.5),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_init_on_cuda_gives_the_cpu_values(gpu, name):
    """Initialisation draws on the host: the same seed fills a GPU weight with exactly the
    values it gives a CPU weight, and the weight stays on the GPU."""
    values = {}
    for device in ("cpu", "cuda"):
        weight = nn.Parameter(minidl.zeros(4, 3, 3, device=device))
        minidl.manual_seed(21)
        with minidl.no_grad():
            INITS[name](weight)
        assert weight.device == device
        values[device] = _host(weight)
    np.testing.assert_array_equal(values["cuda"], values["cpu"])


def test_eye_init_on_cuda(gpu):
    weight = nn.Parameter(minidl.zeros(3, 4, device="cuda"))
    nn.init.eye_(weight)
    assert gpu.is_device_array(weight.data)
    np.testing.assert_array_equal(gpu.host(weight), np.eye(3, 4))


def test_gradcheck_on_cuda(gpu):
    """Users check their own ops' gradients on the device they run on."""
    minidl.manual_seed(2)
    x = minidl.randn(2, 3, 5, dtype=minidl.float64, device="cuda", requires_grad=True)
    w = minidl.randn(4, 3, 2, dtype=minidl.float64, device="cuda", requires_grad=True)
    assert minidl.gradcheck(lambda a, b: nn.functional.conv1d(a, b, padding=1).tanh(), [x, w])


def test_layers_from_device_arrays(gpu):
    table = gpu.xp.asarray(np.arange(15, dtype=np.float32).reshape(5, 3))
    emb = nn.Embedding.from_pretrained(table)
    assert emb.weight.device == "cuda"
    out = emb(minidl.tensor([4, 0], device="cuda"))
    np.testing.assert_array_equal(gpu.host(out), [[12, 13, 14], [0, 1, 2]])
    p = nn.Parameter(gpu.xp.zeros((2, 2), dtype=np.float32))
    assert p.device == "cuda" and p.is_leaf and p.requires_grad
    wrapped = minidl.tensor(gpu.xp.ones(3, dtype=np.float32))  # CuPy data stays on the GPU
    assert wrapped.device == "cuda" and wrapped.data is not None


def test_cuda_module_helpers(gpu):
    assert minidl.cuda.is_available() and minidl.cuda.device_count() >= 1
    t = minidl.ones(1000, device="cuda") * 2
    minidl.cuda.synchronize()
    del t
    minidl.cuda.empty_cache()
