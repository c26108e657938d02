"""A small model made of every kind of layer trains on a toy task to a lower loss.

Task: each sequence is random one-hot DNA; class 1 sequences contain the motif TATA
somewhere. A Conv1d-BatchNorm-ReLU-MaxPool-LSTM-Linear model must learn to find it.
"""

import numpy as np

import minidl
from minidl import nn, optim


class MotifNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 16, kernel_size=5, padding=2)
        self.bn = nn.BatchNorm1d(16)
        self.pool = nn.MaxPool1d(2)
        self.dropout = nn.Dropout(0.1)
        self.lstm = nn.LSTM(16, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 2)

    def forward(self, x):  # x: (N, 4, L)
        h = self.pool(self.bn(self.conv(x)).relu())  # (N, 16, L/2)
        out, _ = self.lstm(self.dropout(h).transpose(1, 2))  # (N, L/2, 32)
        return self.head(out.amax(dim=1))


def _toy_data(n, length, rng):
    bases = rng.integers(0, 4, size=(n, length))
    labels = rng.integers(0, 2, size=n)
    tata = np.array([3, 0, 3, 0])
    for i in np.flatnonzero(labels):
        start = rng.integers(0, length - 4)
        bases[i, start : start + 4] = tata
    one_hot = np.eye(4, dtype=np.float32)[bases].transpose(0, 2, 1)
    return minidl.from_numpy(np.ascontiguousarray(one_hot)), minidl.from_numpy(labels)


def test_conv_bn_pool_lstm_linear_model_learns_a_motif():
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    x, y = _toy_data(128, 24, rng)
    model = MotifNet()
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()

    losses = []
    for _ in range(40):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    model.eval()
    with minidl.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.9
