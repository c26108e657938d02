"""The kernel registry: backend selection, thread setting, info(), and the fallback to the
NumPy reference when neither the compiled extension nor Numba can be imported."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl import backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_backend():
    previous = backend.get_backend()
    yield
    backend.set_backend(previous)


def test_set_backend_rejects_unknown_names(restore_backend):
    with pytest.raises(ValueError, match="'gpu' is not one of auto, numpy, numba, cpu"):
        minidl.set_backend("gpu")


def test_numpy_backend_selects_every_reference(restore_backend):
    minidl.set_backend("numpy")
    report = backend.info()
    assert report["selected"] == "numpy"
    assert report["kernels"], "no kernel registered"
    for name, entry in report["kernels"].items():
        assert entry["chosen"] == "numpy", name
        assert backend.get_kernel(name) is backend._KERNELS[name]["numpy"]


def test_auto_prefers_an_accelerated_kernel_when_one_is_registered(restore_backend):
    minidl.set_backend("auto")
    report = backend.info()
    for name, entry in report["kernels"].items():
        accelerated = [b for b in entry["available"] if b in ("cpu", "numba")]
        expected = next(b for b in backend._order(name) if b in entry["available"])
        assert entry["chosen"] == expected, name
        if accelerated and "numpy" not in backend._MEASURED_ORDER.get(name, ())[:1]:
            assert entry["chosen"] != "numpy", name


def test_a_backend_without_the_kernel_falls_back_to_the_reference(restore_backend):
    backend.register_kernel("test_only_kernel", "numpy", lambda x: x + 1)
    try:
        minidl.set_backend("numba")
        assert backend.get_kernel("test_only_kernel")(1) == 2
    finally:
        del backend._KERNELS["test_only_kernel"]


def test_unknown_kernel_name_is_a_clear_error():
    with pytest.raises(KeyError, match="no kernel named 'not_a_kernel'"):
        backend.get_kernel("not_a_kernel")


def test_num_threads_setting(monkeypatch):
    monkeypatch.setattr(backend, "_num_threads", None)
    monkeypatch.setenv("MINIDL_NUM_THREADS", "3")
    assert minidl.get_num_threads() == 3
    minidl.set_num_threads(2)
    assert minidl.get_num_threads() == 2
    with pytest.raises(ValueError, match="positive int"):
        minidl.set_num_threads(0)


@pytest.mark.parametrize("hide_threadpoolctl", [False, True])
def test_set_num_threads_also_bounds_numpys_blas(hide_threadpoolctl):
    """Asked through threadpoolctl when installed, else through the BLAS library's own
    ``*_get_num_threads`` entry point, both independent of the setter under test."""
    stdout = _run_isolated(
        f"""
        import sys
        if {hide_threadpoolctl}:
            sys.modules["threadpoolctl"] = None        # import fails: the ctypes path
        import numpy as np
        np.ones((64, 64)) @ np.ones((64, 64))          # BLAS loaded
        import minidl
        from minidl import backend
        libs = [l for l in backend._loaded_blas_libraries()
                if backend._blas_entry(l, backend._BLAS_GETTERS) is not None]
        if not libs:
            print("no-blas-entry")
            raise SystemExit
        get = backend._blas_entry(libs[0], backend._BLAS_GETTERS)
        before = int(get())
        minidl.set_num_threads(1)
        after_one = int(get())
        minidl.set_num_threads(before)
        print(before, after_one, int(get()), backend.blas_num_threads())
        """
    )
    if stdout.strip() == "no-blas-entry":
        pytest.skip("NumPy's BLAS exposes no thread-count entry point here")
    if not hide_threadpoolctl:
        pytest.importorskip("threadpoolctl")
    before, after_one, restored, reported = map(int, stdout.split())
    assert after_one == 1
    assert restored == before
    assert reported == before


def _run_isolated(code, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_bad_environment_variable_warns_instead_of_failing_import():
    stdout = _run_isolated(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import minidl
        print(minidl.backend.get_backend(), any("MINIDL_BACKEND" in str(w.message) for w in caught))
        """,
        {"MINIDL_BACKEND": "fastest"},
    )
    assert stdout.split() == ["auto", "True"]


def test_everything_runs_on_the_reference_without_extension_or_numba():
    # Block numba and every compiled extension before minidl is imported, then train a
    # model that uses every kernel family; compare with the same run on the numpy backend.
    stdout = _run_isolated(
        """
        import json, sys
        import importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                leaf = name.rsplit(".", 1)[-1]
                if name in ("numba", "llvmlite") or (
                        name.startswith("minidl.kernels.cpu.") and leaf.startswith("_")):
                    raise ImportError(f"{name} blocked by the test")
                return None

        sys.meta_path.insert(0, Block())
        import numpy as np
        import minidl
        from minidl import nn

        def run():
            minidl.manual_seed(0)
            model = nn.Sequential(
                nn.Conv1d(4, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
            )
            lstm = nn.LSTM(8, 6, batch_first=True, bidirectional=True)
            gru = nn.GRU(12, 5, batch_first=True)
            head = nn.Linear(5, 3)
            x = minidl.randn(4, 4, 16)
            h = model(x).transpose(1, 2)
            out, _ = gru(lstm(h)[0])
            loss = nn.CrossEntropyLoss()(head(out[:, -1]), minidl.tensor([0, 1, 2, 1]))
            loss.backward()
            return loss.item(), float(model[0].weight.grad.abs().sum().item())

        auto = run()
        minidl.set_backend("numpy")
        ref = run()
        info = minidl.backend.info()
        chosen = {entry["chosen"] for entry in info["kernels"].values()}
        print(json.dumps({"auto": auto, "ref": ref, "chosen": sorted(chosen),
                          "extensions": info["extensions"]}))
        """
    )
    result = json.loads(stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["auto"], result["ref"], rtol=1e-6)
    assert result["chosen"] == ["numpy"]
    expected = {f"cpu.{p.stem.lstrip('_')}" for p in (ROOT / "minidl/kernels/cpu").glob("_*.pyx")}
    expected |= {f"numba.{p.stem}" for p in (ROOT / "minidl/kernels/numba").glob("[!_]*.py")}
    assert set(result["extensions"]) == expected
    for module, state in result["extensions"].items():
        assert state.startswith("unavailable"), (module, state)
