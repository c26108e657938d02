"""The public ops driving the CUDA kernels, under the simulator, against the NumPy backend.

The kernel tests call the wrappers with arguments written by hand; here the ops call
them, with the arguments they really pass (tuples, per-window divisors, pooling
indices, the recurrent loop's views of its time-step buffers, broadcast loss
gradients).  No GPU and no CuPy here, so the CUDA implementations are put in the
registry's ``"numba"`` slot for the test and ``set_backend("numba")`` selects them for
NumPy tensors; a tiny model using every family then runs forward and backward, and its
loss and gradients are compared with the same run on the ``numpy`` backend.
"""

import numpy as np
import pytest

import minidl
from minidl import backend, nn

pytestmark = pytest.mark.cudasim


@pytest.fixture
def cuda_kernels_as_the_backend(cuda_kernels, monkeypatch):
    """Select the CUDA kernels for CPU tensors (counting their calls); restore everything
    afterwards.  Returns ``{kernel name: number of calls}``."""
    from minidl import kernels

    kernels.load()  # the CPU backends register now, not over the entries set below
    previous = backend.get_backend()
    calls = dict.fromkeys(cuda_kernels, 0)

    def counting(name, kernel):
        def run(*args):
            calls[name] += 1
            return kernel(*args)
        return run

    for name, kernel in cuda_kernels.items():
        monkeypatch.setitem(backend._KERNELS[name], "numba", counting(name, kernel))
    yield calls
    backend.set_backend(previous)


def _step(dtype):
    """Loss and every gradient (parameters and inputs) of a tiny model using all families."""
    minidl.manual_seed(0)
    features = nn.Sequential(
        nn.Conv1d(4, 5, 3, padding=1), nn.BatchNorm1d(5), nn.ReLU(),
        nn.MaxPool1d(2, stride=1), nn.AvgPool1d(2, ceil_mode=True, count_include_pad=False),
    )
    image = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, stride=(1, 2)), nn.BatchNorm2d(2),
                          nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(2, padding=1))
    lstm = nn.LSTM(5, 3, batch_first=True, bidirectional=True)
    gru = nn.GRU(6, 4, batch_first=True)
    head = nn.Linear(4 + 2 * 2 * 2, 3)
    modules = [features, image, lstm, gru, head]
    rng = np.random.default_rng(1)
    # inputs that want gradients: the first convolutions' backward then needs col2im
    x = minidl.tensor(rng.standard_normal((3, 4, 7)).astype(dtype), requires_grad=True)
    pictures = minidl.tensor(rng.standard_normal((3, 1, 5, 6)).astype(dtype),
                             requires_grad=True)
    h = features(x).transpose(1, 2)  # (3, L, 5)
    out, _ = gru(lstm(h)[0])
    flat = image(pictures).reshape(3, -1)
    logits = head(minidl.cat([out[:, -1], flat], dim=1))
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)(logits, minidl.tensor([0, 2, 1]))
    loss.backward()
    grads = [p.grad.numpy().copy() for m in modules for p in m.parameters()]
    grads += [x.grad.numpy(), pictures.grad.numpy()]
    return loss.item(), grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_through_every_cuda_kernel_match_the_numpy_backend(
        cuda_kernels_as_the_backend, dtype):
    from minidl.kernels.cuda import _common

    minidl.set_default_dtype(dtype)  # the parameters' dtype (conftest restores float32)
    minidl.set_backend("numpy")
    want_loss, want_grads = _step(dtype)
    minidl.set_backend("numba")
    with _common.launch_config(threads_per_block=8, max_blocks=4):
        loss, grads = _step(dtype)
    calls = cuda_kernels_as_the_backend
    assert [name for name, count in calls.items() if count == 0] == []  # every kernel ran
    tol = dict(rtol=2e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(loss, want_loss, **tol)
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads):
        np.testing.assert_allclose(got, want, **tol)
