"""The public surface: ``__all__``, imports without optional dependencies, a README-style run."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minidl

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# NumPy is the only runtime dependency: none of these may be needed to import or run minidl
_OPTIONAL = ["torch", "numba", "cupy", "cupyx", "safetensors", "sklearn", "scipy",
             "matplotlib", "tqdm", "pandas"]


@pytest.mark.parametrize("name", minidl.__all__)
def test_every_name_in_all_exists(name):
    assert getattr(minidl, name) is not None


def test_all_has_no_duplicates_or_private_names():
    assert len(minidl.__all__) == len(set(minidl.__all__))
    assert not [n for n in minidl.__all__ if n.startswith("_")]


def test_torch_style_names_are_exported():
    for name in ["Tensor", "tensor", "from_numpy", "zeros", "ones", "randn", "arange", "cat",
                 "stack", "where", "exp", "log", "tanh", "sigmoid", "logsumexp", "no_grad",
                 "manual_seed", "gradcheck", "float32", "float64", "int64"]:
        assert name in minidl.__all__, name
    assert minidl.float32 == np.float32 and minidl.int64 == np.int64


_TENSOR_METHODS = [
    "numpy", "item", "tolist", "detach", "clone", "requires_grad_", "backward", "retain_grad",
    "register_hook", "sum", "mean", "max", "min", "amax", "amin", "var", "std", "logsumexp",
    "argmax", "reshape", "view", "permute", "transpose", "unsqueeze", "squeeze", "expand",
    "flatten", "exp", "log", "sqrt", "abs", "clamp", "relu", "sigmoid", "tanh", "softmax",
    "log_softmax", "matmul", "to", "float", "double", "long", "zero_", "fill_", "copy_", "add_",
    "mul_", "sub_", "div_", "uniform_", "normal_", "size", "dim", "numel",
]


@pytest.mark.parametrize("name", _TENSOR_METHODS)
def test_tensor_has_the_torch_method(torch, name):
    assert callable(getattr(minidl.Tensor, name))
    assert callable(getattr(torch.Tensor, name))  # the name really is torch's


def _run_python(code):
    env = dict(os.environ, PYTHONPATH=_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=_ROOT, timeout=120)


def test_import_minidl_works_with_optional_dependencies_blocked():
    # sys.modules[name] = None makes `import name` raise ImportError, as if not installed
    code = textwrap.dedent(f"""
        import sys
        for name in {_OPTIONAL!r}:
            sys.modules[name] = None
        import minidl
        x = minidl.randn(4, 3, requires_grad=True)
        w = minidl.randn(3, 2, requires_grad=True)
        loss = (x @ w).exp().mean()
        loss.backward()
        assert x.grad.shape == (4, 3) and w.grad.shape == (3, 2)
        assert minidl.gradcheck(lambda t: (t * t).sum(), [minidl.randn(3, dtype=minidl.float64,
                                                                  requires_grad=True)])
        print("ok")
    """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["minidl.nn", "minidl.optim", "minidl.io"])
def test_subpackages_import_with_optional_dependencies_blocked(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    code = textwrap.dedent(f"""
        import sys
        for name in {_OPTIONAL!r}:
            sys.modules[name] = None
        import {module}
        print("ok")
    """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr


def test_import_minidl_does_not_load_optional_dependencies():
    code = textwrap.dedent(f"""
        import sys
        import minidl
        minidl.randn(2).sum()
        print(sorted(n for n in {_OPTIONAL!r} if n in sys.modules))
    """)
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_readme_style_training_example_runs():
    try:
        nn = importlib.import_module("minidl.nn")
        optim = importlib.import_module("minidl.optim")
        nn.Linear, nn.ReLU, nn.Sequential, nn.MSELoss, optim.SGD  # noqa: B018
    except (ImportError, AttributeError) as error:
        pytest.skip(f"minidl.nn / minidl.optim not available yet: {error}")

    minidl.manual_seed(0)
    x = minidl.randn(64, 3)
    y = x @ minidl.tensor([[1.0], [-2.0], [0.5]]) + 0.3  # a linear target
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    loss_fn = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(60):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert all(np.isfinite(losses))
    assert losses[-1] < 0.1 * losses[0], f"loss went from {losses[0]:.3f} to {losses[-1]:.3f}"
