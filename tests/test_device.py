"""The device model and its errors: device names, what ``to("cuda")`` says when CuPy or a
GPU is missing, and the error for ops that mix devices.

No GPU is needed: a missing CuPy is simulated by blocking its import, "CuPy without a GPU"
by a stub module, and CUDA tensors (for the mixed-device errors) by the host-side fake CuPy
of ``fake_cupy.py``, which checks genericity, not CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest
from fake_cupy import install as install_fake_cupy

import minidl
import minidl.cuda
import minidl.nn.functional as F
from minidl import backend, nn, optim
from minidl.io import load, save

INSTALL_HINT = 'pip install "minidl[gpu]"'


@pytest.fixture
def no_cupy(monkeypatch):
    """``import cupy`` fails, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # None in sys.modules: ImportError
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)


def _cupy_without_gpu(raises):
    """A stub CuPy whose ``cuda.is_available()`` is False (or raises, as some drivers do)."""

    def is_available():
        if raises:
            raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is too old")
        return False

    stub = types.ModuleType("cupy")
    stub.cuda = types.SimpleNamespace(is_available=is_available)
    stub.ndarray = type("ndarray", (), {})
    return stub


@pytest.fixture(params=[False, True], ids=["unavailable", "driver-error"])
def cupy_without_gpu(request, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _cupy_without_gpu(request.param))
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA tensors backed by the host-side fake CuPy."""
    monkeypatch.setattr(minidl.cuda, "_checked_cupy", None)
    monkeypatch.setattr(backend, "_use_cuda_kernels", False)
    return install_fake_cupy(monkeypatch)


# ----------------------------------------------------------------------------- device names


@pytest.mark.parametrize("name, want", [
    ("cpu", "cpu"), ("cuda", "cuda"), ("cuda:0", "cuda"), ("CUDA", "cuda"), (0, "cuda"),
])
def test_parse_device_accepts_the_usual_spellings(name, want):
    assert backend.parse_device(name) == want


def test_parse_device_accepts_device_objects():
    device = type("device", (), {"type": "cuda", "__str__": lambda self: "cuda:0"})()
    assert backend.parse_device(device) == "cuda"


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "", "cpu:1", 1.5])
def test_unknown_device_is_a_value_error(name):
    with pytest.raises(ValueError, match="unknown device"):
        backend.parse_device(name)


def test_other_gpu_indices_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):
        backend.parse_device("cuda:1")


@pytest.mark.parametrize("make", [
    lambda: minidl.ones(2).to("gpu"),
    lambda: minidl.ones(2).to(device="xpu"),
    lambda: minidl.ones(2).cuda("cuda:7"),
    lambda: nn.Linear(2, 2).to("gpu"),
    lambda: nn.Linear(2, 2, device="mps"),
    lambda: minidl.zeros(2, device="gpu"),
    lambda: minidl.randn(2, device="gpu"),
    lambda: minidl.tensor([1.0], device="gpu"),
    lambda: minidl.zeros_like(minidl.ones(2), device="gpu"),
])
def test_bad_device_names_raise_value_error_everywhere(make):
    with pytest.raises(ValueError, match="device"):
        make()


def test_load_checks_the_device_before_reading(tmp_path):
    path = os.path.join(tmp_path, "w.safetensors")
    save({"w": np.ones(2, np.float32)}, path)
    with pytest.raises(ValueError, match="unknown device"):
        load(path, device="gpu")
    with pytest.raises(ValueError, match="unknown device"):
        load(path, map_location="gpu")
    with pytest.raises(TypeError, match="map_location"):
        load(path, map_location=lambda storage, loc: storage)
    assert load(path, map_location={"cuda": "cpu"})["w"].device == "cpu"
    assert load(path, map_location="cpu")["w"].device == "cpu"


def test_cpu_tensors_report_their_device():
    t = minidl.ones(2)
    assert t.device == "cpu" and not t.is_cuda
    assert t.to("cpu") is t and t.cpu() is t
    assert minidl.zeros_like(t).device == "cpu"


# ----------------------------------------------------------------------------- CuPy missing


@pytest.mark.parametrize("make", [
    lambda: minidl.ones(2).to("cuda"),
    lambda: minidl.ones(2).cuda(),
    lambda: nn.Linear(2, 2).cuda(),
    lambda: nn.Linear(2, 2, device="cuda"),
    lambda: minidl.zeros(2, device="cuda"),
    lambda: minidl.randn(2, device="cuda"),
    lambda: minidl.tensor([1.0], device="cuda"),
])
def test_without_cupy_cuda_says_what_to_install(no_cupy, make):
    with pytest.raises(RuntimeError, match="CuPy, which is not installed") as info:
        make()
    assert INSTALL_HINT in str(info.value)


def test_without_cupy_load_to_cuda_says_what_to_install(no_cupy, tmp_path):
    path = os.path.join(tmp_path, "w.safetensors")
    save({"w": np.ones(2, np.float32)}, path)
    with pytest.raises(RuntimeError, match="not installed") as info:
        load(path, device="cuda")
    assert INSTALL_HINT in str(info.value)


def test_without_cupy_is_available_is_false(no_cupy):
    assert minidl.cuda.is_available() is False
    assert minidl.cuda.device_count() == 0
    minidl.cuda.synchronize()  # a no-op, never an error


# ----------------------------------------------------------------------------- CuPy, no GPU


def test_cupy_without_gpu_says_no_gpu(cupy_without_gpu):
    assert minidl.cuda.is_available() is False
    for make in (lambda: minidl.ones(2).to("cuda"), lambda: nn.Linear(2, 2).cuda(),
                 lambda: minidl.zeros(3, device="cuda")):
        with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
            make()


def test_real_cupy_without_gpu_says_no_gpu():
    """With the real CuPy installed on a machine without a GPU (skipped elsewhere)."""
    try:
        import cupy
    except ImportError:
        pytest.skip("CuPy is not installed")
    if minidl.cuda.is_available():
        pytest.skip("a GPU is present")
    assert cupy.cuda.is_available() is False
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        minidl.ones(2).to("cuda")


# ----------------------------------------------------------------------------- mixed devices


def test_mixed_device_arithmetic_names_op_shapes_and_devices(fake_cuda):
    a = minidl.ones(2, 3)
    b = minidl.ones(3, device="cuda")
    with pytest.raises(RuntimeError) as info:
        a + b
    message = str(info.value)
    assert "Add" in message and "same device" in message
    assert "(2, 3) on cpu" in message and "(3,) on cuda" in message


@pytest.mark.parametrize("op", [
    lambda c, g: c @ g.reshape(3, 2),
    lambda c, g: minidl.cat([c, g]),
    lambda c, g: minidl.where(c > 0, c, g),
    lambda c, g: F.conv1d(c.reshape(1, 2, 3), g.reshape(1, 2, 3)),
    lambda c, g: F.mse_loss(g, c),
    lambda c, g: F.cross_entropy(g.reshape(2, 3), minidl.tensor([0, 1])),
    lambda c, g: F.binary_cross_entropy_with_logits(g, c.sigmoid(), pos_weight=c),
    lambda c, g: F.cross_entropy(g.reshape(2, 3), minidl.tensor([0, 1], device="cuda"),
                                 weight=c[0]),
    lambda c, g: F.embedding(minidl.tensor([0, 1]), g),
    lambda c, g: nn.Linear(3, 1).cuda()(c),
    lambda c, g: nn.LSTM(3, 2).cuda()(c.reshape(2, 1, 3)),
])
def test_ops_on_mixed_devices_raise_runtime_error(fake_cuda, op):
    cpu = minidl.arange(6, dtype=minidl.float32).reshape(2, 3)
    gpu = minidl.arange(6, dtype=minidl.float32, device="cuda").reshape(2, 3)
    with pytest.raises(RuntimeError, match="same device"):
        op(cpu, gpu)


def test_in_place_and_backward_across_devices(fake_cuda):
    g = minidl.ones(3, device="cuda")
    with minidl.no_grad(), pytest.raises(RuntimeError, match="add_.*same device"):
        g.add_(minidl.ones(3))
    with pytest.raises(RuntimeError, match="different device|is on cpu"):
        g.grad = minidl.ones(3)
    w = minidl.ones(3, device="cuda", requires_grad=True)
    with pytest.raises(RuntimeError, match="backward.*same device"):
        (w * 2).backward(minidl.ones(3))
    (w * 2).backward(np.ones(3, np.float32))  # host data (not a tensor) is moved
    with pytest.raises(RuntimeError, match="index"):
        minidl.ones(3)[minidl.tensor([0], device="cuda")]


def test_optimizer_step_with_gradients_on_the_parameter_device(fake_cuda):
    p = nn.Parameter(minidl.ones(2, device="cuda"))
    opt = optim.Adam([p], lr=0.1)
    p.grad = minidl.ones(2, device="cuda")
    opt.step()
    assert isinstance(opt.state[p]["exp_avg"].data, fake_cuda.ndarray)


# ----------------------------------------------------------------------------- imports


def test_import_minidl_imports_neither_cupy_nor_numba():
    code = ("import sys, minidl, minidl.nn, minidl.optim, minidl.io; "
            "minidl.ones(2).to('cpu'); "
            "print(sorted(m for m in ('cupy', 'cupyx', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_cuda_helpers_without_cupy(no_cupy):
    minidl.cuda.empty_cache()  # a no-op, never an error
    minidl.cuda.manual_seed(4)
    a = minidl.randn(3)
    minidl.manual_seed(4)
    np.testing.assert_array_equal(a.numpy(), minidl.randn(3).numpy())
    assert minidl.cuda.manual_seed_all is minidl.cuda.manual_seed
