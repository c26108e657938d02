"""minidl.io.save_checkpoint / load_checkpoint: resumable training state without pickle."""

import json
import math
import os

import numpy as np
import pytest

import minidl.io.safetensors as st_module
import minidl.random
from minidl.io import SafetensorsError, load, load_checkpoint, load_metadata, save_checkpoint
from minidl.tensor import Tensor


def assert_same(got, expected, where="root"):
    """Equal structure, equal types (int stays int, tuple stays tuple), tensors equal arrays."""
    if isinstance(expected, (Tensor, np.ndarray)):
        assert isinstance(got, Tensor), f"{where}: {type(got).__name__} is not a Tensor"
        expected = expected.data if isinstance(expected, Tensor) else expected
        assert got.dtype == expected.dtype and got.shape == expected.shape, where
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=where)
        return
    if isinstance(expected, dict):  # an OrderedDict equals a dict with the same order
        assert isinstance(got, dict) and list(got) == list(expected), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
        return
    assert type(got) is type(expected), f"{where}: {type(got)} vs {type(expected)}"
    if isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, f"{where}[{i}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), where
    else:
        assert got == expected, where


def _adam_like_state(rng):
    """An optimizer state_dict in PyTorch's layout, with the awkward cases in it."""
    return {
        "state": {
            0: {"step": Tensor(np.array(3.0, np.float32)),
                "exp_avg": Tensor(rng.standard_normal((4, 3)).astype(np.float32)),
                "exp_avg_sq": Tensor(rng.random((4, 3)).astype(np.float32))},
            1: {"step": 3, "momentum_buffer": rng.standard_normal(4)},  # plain int, ndarray
        },
        "param_groups": [{
            "lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
            "amsgrad": False, "foreach": None, "maximize": False, "params": [0, 1],
        }],
    }


def test_round_trip_with_optimizer_epoch_rng_and_extra(tmp_path):
    rng = np.random.default_rng(0)
    minidl.random.manual_seed(7)
    model = {"fc.weight": Tensor(rng.standard_normal((4, 3)).astype(np.float32)),
             "fc.bias": Tensor(np.zeros(4, np.float32)),
             "bn.num_batches_tracked": Tensor(np.array(12, np.int64))}
    optimizer = _adam_like_state(rng)
    rng_state = minidl.random.get_rng_state()
    extra = {"best_loss": float("inf"), "history": [0.5, 0.25, float("nan")],
             "name": "résumé", "count": np.int64(4), "flags": {"early_stop": True},
             "mean": np.float32(0.5), "tensor": np.arange(3), "nested": [(1, 2), {"a": None}],
             "__tuple__": "a key that looks like a tag", 3: "an int key"}
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, epoch=5, rng_state=rng_state, extra=extra)
    ckpt = load_checkpoint(path)
    assert set(ckpt) == {"model", "optimizer", "epoch", "rng_state", "extra"}
    assert list(ckpt["model"]) == list(model)  # the state_dict's order, not the file's
    assert_same(ckpt["model"], model, "model")
    assert_same(ckpt["optimizer"], optimizer, "optimizer")
    assert ckpt["epoch"] == 5 and type(ckpt["epoch"]) is int
    assert_same(ckpt["rng_state"], rng_state, "rng_state")
    # NumPy scalars come back as the Python numbers they equal
    expected_extra = dict(extra, count=4, mean=0.5)
    assert_same(ckpt["extra"], expected_extra, "extra")


def test_file_layout_is_plain_safetensors(tmp_path):
    """The tensor names and the JSON metadata are what the module docstring promises, so other
    tools can read a checkpoint."""
    rng = np.random.default_rng(1)
    optimizer = _adam_like_state(rng)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"w": np.ones(3, np.float32)}, optimizer, epoch=2)
    names = set(load(path))
    assert names == {"model.w", "optim.state.0.step", "optim.state.0.exp_avg",
                     "optim.state.0.exp_avg_sq", "optim.state.1.momentum_buffer"}
    record = json.loads(load_metadata(path)["minidl.checkpoint"])
    assert record["epoch"] == 2 and record["model_keys"] == ["w"]
    assert record["optimizer"]["param_groups"][0]["lr"] == 0.001
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    reference = safetensors_numpy.load_file(path)
    np.testing.assert_array_equal(reference["optim.state.0.exp_avg"],
                                  optimizer["state"][0]["exp_avg"].numpy())


def test_rng_state_resumes_the_same_stream(tmp_path):
    minidl.random.manual_seed(123)
    minidl.random.default_generator().standard_normal(10)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {}, rng_state=minidl.random.get_rng_state())
    expected = minidl.random.default_generator().standard_normal(5)
    minidl.random.manual_seed(999)  # move away, then restore
    minidl.random.set_rng_state(load_checkpoint(path)["rng_state"])
    np.testing.assert_array_equal(minidl.random.default_generator().standard_normal(5), expected)


def test_torch_adam_resumes_exactly_after_a_round_trip(tmp_path):
    """Train 3 steps, checkpoint, continue 2 steps in a fresh model/optimizer; the result must
    equal 5 uninterrupted steps, bit for bit (PyTorch is the oracle)."""
    torch = pytest.importorskip("torch")

    def make():
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        return model, torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))

    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(1))

    def step(model, optimizer):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()

    model, optimizer = make()
    for _ in range(5):
        step(model, optimizer)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    model, optimizer = make()
    for _ in range(3):
        step(model, optimizer)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model.state_dict(), optimizer.state_dict(), epoch=3)

    def to_torch(value):
        if isinstance(value, Tensor):
            return torch.from_numpy(value.numpy())
        if isinstance(value, dict):
            return {k: to_torch(v) for k, v in value.items()}
        if isinstance(value, list):
            return [to_torch(v) for v in value]
        return value

    ckpt = load_checkpoint(path)
    assert ckpt["optimizer"]["param_groups"][0]["betas"] == (0.8, 0.99)
    model, optimizer = make()
    model.load_state_dict(to_torch(ckpt["model"]))
    optimizer.load_state_dict(to_torch(ckpt["optimizer"]))
    for _ in range(2):
        step(model, optimizer)
    for name, value in model.state_dict().items():
        assert torch.equal(value, uninterrupted[name]), name


def test_plain_weight_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    st_module.save({"w": np.ones(2)}, path)
    with pytest.raises(SafetensorsError, match=r"weights\.safetensors.*not a checkpoint"):
        load_checkpoint(path)


def test_unreferenced_or_missing_tensors_are_reported(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    record = {"format": "minidl.checkpoint", "version": 1, "model_keys": ["w"],
              "optimizer": {"m": {"__tensor__": "optim.m"}}, "epoch": None,
              "rng_state": None, "extra": None}
    st_module.save({"model.w": np.ones(2), "optim.m": np.ones(2), "stray": np.ones(1)}, path,
                   metadata={"minidl.checkpoint": json.dumps(record)})
    with pytest.raises(SafetensorsError, match=r"\['stray'\].*not referenced"):
        load_checkpoint(path)
    st_module.save({"optim.m": np.ones(2)}, path,
                   metadata={"minidl.checkpoint": json.dumps(record)})
    with pytest.raises(SafetensorsError, match="model tensor 'model.w' is missing"):
        load_checkpoint(path)
    record["version"] = 99
    st_module.save({}, path, metadata={"minidl.checkpoint": json.dumps(record)})
    with pytest.raises(SafetensorsError, match="version 99 is not supported"):
        load_checkpoint(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"extra": {"s": {1, 2}}}, r"at 'extra\.s': cannot store a builtins\.set"),
    ({"extra": {"f": lambda: 0}}, r"at 'extra\.f': cannot store a builtins\.function"),
    ({"extra": {"a.b": np.ones(1), "a": {"b": np.ones(1)}}}, "both be stored as 'extra.a.b'"),
    ({"extra": {"o": np.array([None], dtype=object)}}, "tensor 'extra.o': dtype object"),
    ({"epoch": object()}, "at 'epoch': cannot store"),
], ids=["set", "function", "collision", "object-array", "object"])
def test_unsupported_values_fail_and_keep_the_previous_checkpoint(tmp_path, kwargs, message):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"w": np.ones(2, np.float32)}, epoch=1)
    before = path.read_bytes()
    with pytest.raises(SafetensorsError, match=message):
        save_checkpoint(path, {"w": np.zeros(2, np.float32)}, **kwargs)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_model_state_must_hold_tensors(tmp_path):
    with pytest.raises(SafetensorsError, match=r"model_state\['lr'\] is a float, not a tensor"):
        save_checkpoint(tmp_path / "c.safetensors", {"lr": 0.1})
    with pytest.raises(SafetensorsError, match="model_state keys must be str"):
        save_checkpoint(tmp_path / "c.safetensors", {0: np.ones(1)})
    assert os.listdir(tmp_path) == []


def test_disk_error_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, {"w": np.ones(2, np.float32)}, epoch=1)
    before = path.read_bytes()

    def boom(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(st_module.os, "replace", boom)
    with pytest.raises(OSError, match="Input/output error"):
        save_checkpoint(path, {"w": np.zeros(2, np.float32)}, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    assert load_checkpoint(path)["epoch"] == 1
