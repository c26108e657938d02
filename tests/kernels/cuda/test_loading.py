"""How the ``"cuda"`` kernel family loads: lazily, never breaking the CPU path.

The first tests (main run, real ``numba.cuda``, no GPU here) run in fresh interpreters,
so that what they import and register cannot leak into other tests: nothing CUDA is
imported by ``import minidl`` or ``backend.info()``; without Numba, or without a GPU,
:func:`minidl.kernels.load_cuda` marks the family unavailable with the reason and CUDA
tensors keep the NumPy references.  The ``cudasim`` tests check, under the simulator,
that loading registers a CUDA kernel for every kernel the issue names, that
``get_kernel(name, "cuda")`` returns it, and the launch-configuration rules.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

#: every kernel with a NumPy reference that the CUDA backend implements
CUDA_KERNELS = sorted(
    [f"{kind}{nd}d" for kind in ("im2col", "col2im") for nd in (1, 2)]
    + [f"{kind}_pool{nd}d_{way}" for kind in ("max", "avg") for nd in (1, 2)
       for way in ("forward", "backward")]
    + [f"{name}_{way}" for name in ("batch_norm", "lstm_cell", "gru_cell",
                                    "softmax_cross_entropy") for way in ("forward", "backward")]
)


def _run(code, simulator=False):
    """Run ``code`` in a fresh interpreter; its last output line, parsed as JSON."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = str(ROOT)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_info_load_nothing_cuda():
    result = _run("""
        import json, sys
        import minidl
        info = minidl.backend.info()
        print(json.dumps({"cuda": info["cuda"],
                          "imported": [m for m in ("numba.cuda", "minidl.kernels.cuda")
                                       if m in sys.modules]}))
    """)
    assert result["imported"] == []
    assert set(result["cuda"]) == {f"cuda.{f}" for f in ("conv", "pool", "norm", "recurrent",
                                                         "loss")}
    assert all(state.startswith("not loaded") for state in result["cuda"].values())


def test_without_numba_the_family_is_unavailable_and_the_cpu_path_works():
    result = _run("""
        import json, sys
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("numba", "llvmlite"):
                    raise ImportError(f"{name} blocked by the test", name=name)
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import minidl
        from minidl import backend, kernels
        import minidl.nn.functional as F

        kernels.load_cuda()
        x = minidl.randn(2, 3, 8, requires_grad=True)
        w = minidl.randn(4, 3, 3, requires_grad=True)
        F.max_pool1d(F.conv1d(x, w, padding=1), 2).sum().backward()
        print(json.dumps({
            "cuda": backend.info()["cuda"],
            "reference": backend.get_kernel("im2col1d", "cuda") is
                         backend._KERNELS["im2col1d"]["numpy"],
            "grad": bool(np.isfinite(x.grad.numpy()).all()),
        }))
    """)
    assert result["reference"] and result["grad"]
    for state in result["cuda"].values():
        assert state == 'unavailable: numba is not installed (pip install "minidl[gpu]")'


def test_without_a_gpu_nothing_is_registered_and_cuda_tensors_keep_the_references():
    result = _run("""
        import json
        from minidl import backend, kernels
        import minidl.nn.functional  # every reference registered

        kernel = backend.get_kernel("lstm_cell_forward", "cuda")  # loads the cuda family
        print(json.dumps({
            "status": kernels.cuda_status(),
            "registered": sorted(n for n, i in backend._KERNELS.items() if "cuda" in i),
            "reference": kernel is backend._KERNELS["lstm_cell_forward"]["numpy"],
        }))
    """)
    assert result["registered"] == [] and result["reference"]
    for state in result["status"].values():
        assert state.startswith("unavailable: Numba finds no usable CUDA GPU"), state


@pytest.mark.cudasim
def test_the_simulator_loads_a_cuda_kernel_for_every_named_kernel(cuda_kernels, monkeypatch):
    from minidl import backend

    assert sorted(cuda_kernels) == CUDA_KERNELS
    assert set(backend.info()["cuda"].values()) == {"loaded"}
    for name in CUDA_KERNELS:
        assert "numpy" in backend._KERNELS[name]  # each has its reference
        assert backend.get_kernel(name, "cuda") is cuda_kernels[name]
        assert backend.get_kernel(name, "cpu") is not cuda_kernels[name]
    # the switch that runs the references on CUDA tensors instead
    monkeypatch.setattr(backend, "_use_cuda_kernels", False)
    assert backend.get_kernel("im2col2d", "cuda") is backend._KERNELS["im2col2d"]["numpy"]


@pytest.mark.cudasim
def test_launch_configuration_rules():
    from minidl.kernels.cuda import _common

    assert _common.threads_per_block() == _common.MAX_THREADS == 256
    assert _common.blocks_for(1) == 1 and _common.blocks_for(257) == 2
    assert _common.block_threads(10) == 32  # a classifier's row: one warp
    assert _common.block_threads(100) == 128 and _common.block_threads(10**6) == 256
    with _common.launch_config(threads_per_block=8, max_blocks=3):
        assert _common.blocks_for(17) == 3 and _common.blocks_for(9) == 2
        assert _common.block_threads(100) == 8
    assert _common.threads_per_block() == 256  # restored
    for bad in (0, 3, 512, 2.0):
        with pytest.raises(ValueError, match="power of two"):
            with _common.launch_config(threads_per_block=bad):
                pass
    with pytest.raises(ValueError, match="max_blocks"):
        with _common.launch_config(max_blocks=0):
            pass


@pytest.mark.cudasim
def test_cupy_arrays_launch_on_cupys_stream_without_a_host_wait(cuda_kernels, monkeypatch):
    # No GPU here: a stand-in "cupy" whose arrays are NumPy arrays, and stand-ins for the
    # Numba calls the GPU path makes, recording them.  What is checked is the plumbing: the
    # arrays are viewed with sync=False (no stream synchronisation per launch) and the
    # kernel is launched on the stream CuPy is using; the kernel itself runs as usual.
    import types

    import numpy as np

    from minidl.kernels.cuda import _common
    from minidl.ops import conv as reference

    class FakeArray(np.ndarray):
        pass

    calls = []
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.ndarray = FakeArray
    fake_cupy.empty = lambda *args, **kwargs: np.empty(*args, **kwargs).view(FakeArray)
    fake_cupy.cuda = types.SimpleNamespace(
        get_current_stream=lambda: types.SimpleNamespace(ptr=0))
    fake_numba_cuda = types.SimpleNamespace(
        legacy_default_stream=lambda: calls.append("legacy stream") or 0,
        external_stream=lambda ptr: calls.append(("external stream", ptr)) or 0,
        as_cuda_array=lambda a, sync=True: calls.append(("view", sync)) or a.view(np.ndarray),
    )
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(_common, "cuda", fake_numba_cuda)
    monkeypatch.setattr(_common, "_streams", {})
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    with _common.launch_config(threads_per_block=8):
        cols = cuda_kernels["im2col1d"](x.view(FakeArray), 3, 1, (1, 1), 1)
    assert isinstance(cols, FakeArray)  # allocated by the input's array module
    np.testing.assert_array_equal(cols, reference.im2col1d(x, 3, 1, (1, 1), 1))
    assert calls[0] == "legacy stream"
    assert ("view", False) in calls and ("view", True) not in calls
