"""``minidl.train.fit`` with a model on "cuda": batches from a host DataLoader are moved to
the model's device, metrics and saved weights come back to the host, and the run matches
the same run on the CPU (the ``gpu`` fixture: fake CuPy everywhere, the real one on a GPU)."""

from __future__ import annotations

import os

import numpy as np

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import evaluate, fit, predict


def _run(device, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    data = TensorDataset(x, y)
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    model.to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = os.path.join(tmp_path, f"{device}.safetensors")
    history = fit(model, nn.CrossEntropyLoss(), opt,
                  DataLoader(data, batch_size=16, shuffle=True, generator=1),
                  DataLoader(data, batch_size=16), epochs=3, metrics=["accuracy"],
                  clip_grad_norm=5.0, verbose=0)
    minidl.save(model.state_dict(), path)
    result = evaluate(model, DataLoader(data, batch_size=16), nn.CrossEntropyLoss())
    outputs = predict(model, DataLoader(data, batch_size=16))
    return model, history, result, outputs, path


def test_fit_on_cuda_matches_the_cpu(gpu, tmp_path):
    cpu_model, cpu_history, cpu_eval, cpu_out, _ = _run("cpu", tmp_path)
    model, history, result, outputs, path = _run("cuda", tmp_path)
    assert all(p.device == "cuda" for p in model.parameters())
    assert isinstance(outputs, np.ndarray)  # predictions come back to the host
    np.testing.assert_allclose(outputs, cpu_out, rtol=1e-4, atol=1e-5)
    for key, value in cpu_eval.items():
        np.testing.assert_allclose(result[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    for name, t in minidl.load(path).items():  # weights written from the GPU
        np.testing.assert_allclose(t.numpy(), cpu_model.state_dict()[name].numpy(),
                                   rtol=1e-4, atol=1e-5, err_msg=name)
    assert len(history) == len(cpu_history) == 3
    for got, want in zip(history.records, cpu_history.records):
        for key, value in want.items():
            if isinstance(value, float) and key != "time":
                np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-6, err_msg=key)
