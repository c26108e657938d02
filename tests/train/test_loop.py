"""The fit loop, evaluate and predict: batches, metrics by name, clipping, modes."""

from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset, pad_collate
from minidl.train import Trainer, default_unpack, evaluate, fit, predict


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z.astype(np.float64)))


def _softmax(z):
    e = np.exp(z.astype(np.float64) - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_fit_learns_blobs_with_a_dataloader(blobs):
    x, y, xv, yv = blobs
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=0)
    val = DataLoader(TensorDataset(xv, yv), batch_size=16)
    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05), train,
                  val, epochs=15, metrics=["accuracy"], task="multiclass", verbose=0)
    assert history.keys() == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr",
                              "time"]
    assert history["epoch"] == list(range(1, 16))
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.9
    assert model.training  # fit leaves the model in training mode, as it trained it


def test_epoch_loss_is_the_sample_weighted_mean(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)
    # lr 0: the weights never move, so every batch loss is computable by hand
    batches = [(x[:40], y[:40]), (x[40:], y[40:])]
    history = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.0), batches,
                  batches, epochs=1, verbose=0)
    w = model.weight.detach().numpy().astype(np.float64)
    b = model.bias.detach().numpy().astype(np.float64)
    full_mse = float(np.mean((x.astype(np.float64) @ w.T + b - y) ** 2))
    assert history["loss"][0] == pytest.approx(full_mse, rel=1e-6)
    assert history["val_loss"][0] == pytest.approx(full_mse, rel=1e-6)


def test_named_metrics_match_scikit_learn_binary(regression):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=50) > 0).astype(np.float32)[:, None]
    model = nn.Linear(3, 1)
    batches = [(x[i:i + 20], y[i:i + 20]) for i in range(0, 50, 20)]
    result = evaluate(model, batches, nn.BCEWithLogitsLoss(),
                      metrics=["accuracy", "auroc", "auprc", "mcc", "f1"], task="binary")
    with minidl.no_grad():
        logits = model(minidl.from_numpy(x)).numpy()[:, 0]
    prob = _sigmoid(logits)
    labels = (prob > 0.5).astype(int)
    truth = y[:, 0].astype(int)
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(truth, labels))
    assert result["auroc"] == pytest.approx(sklearn_metrics.roc_auc_score(truth, prob))
    assert result["auprc"] == pytest.approx(
        sklearn_metrics.average_precision_score(truth, prob))
    assert result["mcc"] == pytest.approx(sklearn_metrics.matthews_corrcoef(truth, labels))
    assert result["f1"] == pytest.approx(sklearn_metrics.f1_score(truth, labels))
    bce = -np.mean(truth * np.log(prob) + (1 - truth) * np.log(1 - prob))
    assert result["loss"] == pytest.approx(bce, rel=1e-5)


def test_named_metrics_match_scikit_learn_multiclass(blobs):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    x, y, _, _ = blobs
    minidl.manual_seed(1)
    model = nn.Linear(6, 3)
    result = evaluate(model, [(x[:50], y[:50]), (x[50:], y[50:])], metrics=[
        "accuracy", "balanced_accuracy", "macro_f1", "auroc"], task="multiclass")
    with minidl.no_grad():
        logits = model(minidl.from_numpy(x)).numpy()
    prob = _softmax(logits)
    labels = prob.argmax(axis=1)
    assert "loss" not in result  # no loss_fn given
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, labels))
    assert result["balanced_accuracy"] == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(y, labels))
    assert result["macro_f1"] == pytest.approx(
        sklearn_metrics.f1_score(y, labels, average="macro"))
    assert result["auroc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(y, prob, multi_class="ovr"))


def test_task_none_infers_from_the_output_columns(blobs):
    x, y, _, _ = blobs
    model = nn.Linear(6, 3)
    explicit = evaluate(model, [(x, y)], metrics=["accuracy", "auroc"], task="multiclass")
    inferred = evaluate(model, [(x, y)], metrics=["accuracy", "auroc"])
    assert explicit == inferred


def test_per_position_outputs_skip_padding_targets():
    """Sequence tagging: outputs (N, K, L), targets (N, L) padded with -100."""
    logits = np.zeros((2, 3, 4), np.float32)
    logits[0, :, 0] = [5, 0, 0]   # predicts 0, truth 0
    logits[0, :, 1] = [0, 5, 0]   # predicts 1, truth 2
    logits[1, :, 0] = [0, 0, 5]   # predicts 2, truth 2
    logits[1, :, 1] = [0, 5, 0]   # padding, ignored
    targets = np.array([[0, 2, -100, -100], [2, -100, -100, -100]])

    class Fixed(nn.Module):
        def forward(self, x):
            return minidl.from_numpy(logits)

    result = evaluate(Fixed(), [(np.zeros(2, np.float32), targets)], metrics=["accuracy"],
                      task="multiclass")
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_metric_callables_and_triples(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)

    def mae(y_true, output):
        return float(np.mean(np.abs(output - y_true)))

    seen = {}

    def labels_seen(y_true, labels):
        seen["labels"] = labels
        return 0.0

    result = evaluate(model, [(x, y)], metrics=[mae, ("max_err", lambda t, o: np.max(
        np.abs(o - t)))], task="regression")
    with minidl.no_grad():
        out = model(minidl.from_numpy(x)).numpy()
    assert result["mae"] == pytest.approx(np.mean(np.abs(out - y)))
    assert result["max_err"] == pytest.approx(np.max(np.abs(out - y)))
    evaluate(model, [(x, (y > 1).astype(np.float32))], metrics=[("l", labels_seen, "labels")],
             task="binary")
    np.testing.assert_array_equal(seen["labels"], (out[:, 0] > 0).astype(np.int64))


@pytest.mark.parametrize("metrics,task,match", [
    (["acuracy"], None, "unknown metric 'acuracy'.*accuracy"),
    (["accuracy", "accuracy"], None, "duplicate"),
    (["accuracy"], "regression", "task='binary' or 'multiclass'"),
    (["accuracy"], "ranking", "task must be"),
    ([("loss", len)], None, "clash"),
])
def test_bad_metric_specs_are_refused(metrics, task, match):
    with pytest.raises(ValueError, match=match):
        evaluate(nn.Linear(1, 1), [], metrics=metrics, task=task)


def test_predict_concatenates_in_eval_mode_without_grad(blobs):
    x, y, _, _ = blobs
    states = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5), nn.Linear(8, 2))

        def forward(self, inputs):
            states.append((self.training, minidl.is_grad_enabled()))
            return self.body(inputs)

    model = Probe()
    model.train()
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    out = predict(model, loader)
    assert isinstance(out, np.ndarray) and out.shape == (90, 2)
    assert states == [(False, False)] * 3
    assert model.training  # the previous mode is back
    model.eval()
    with minidl.no_grad():
        whole = model(minidl.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, whole, rtol=1e-6, atol=1e-6)
    # inputs without targets: a bare array per batch
    np.testing.assert_array_equal(predict(model, [x[:45], x[45:]]), out)


def test_predict_tuple_outputs_and_shape_mismatch():
    class Two(nn.Module):
        def forward(self, x):
            return x * 2, x.sum(dim=1)

    a, b = predict(Two(), [(np.ones((2, 3), np.float32),), (np.ones((1, 3), np.float32),)])
    assert a.shape == (3, 3) and b.shape == (3,)
    with pytest.raises(ValueError, match="different trailing shapes"):
        predict(nn.Identity(), [np.ones((2, 3), np.float32), np.ones((2, 4), np.float32)])
    with pytest.raises(ValueError, match="no batches"):
        predict(nn.Identity(), [])


def test_batch_layouts():
    x = minidl.ones(2, 3)
    assert default_unpack((x, 1)) == ((x,), 1)
    assert default_unpack([x, x, 2]) == ((x, x), 2)
    assert default_unpack((x,)) == ((x,), None)
    assert default_unpack(x) == ((x,), None)
    assert default_unpack({"inputs": x, "targets": 3, "mask": 0}) == ((x,), 3)
    assert default_unpack({"x": x, "y": 4}) == ((x,), 4)
    with pytest.raises(ValueError, match="keys"):
        default_unpack({"features": x})


def test_fit_on_padded_sequences_with_a_custom_unpack():
    """pad_collate dicts: the model also takes the mask, via unpack."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 2)).astype(np.float32) for n in (3, 5, 2, 4)]
    labels = [(s.sum(axis=1) > 0).astype(np.int64) for s in seqs]
    dataset = list(zip(seqs, labels))
    loader = DataLoader(dataset, batch_size=2, collate_fn=pad_collate)

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, inputs, mask):
            assert mask.shape == inputs.shape[:2]
            return self.fc(inputs).permute(0, 2, 1)  # (N, K, L) for CrossEntropyLoss

    model = Tagger()
    history = fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.1), loader,
                  loader, epochs=3, metrics=["accuracy"], task="multiclass", verbose=0,
                  unpack=lambda b: ((b["inputs"], b["mask"]), b["targets"]))
    assert len(history) == 3
    assert 0.0 <= history["val_accuracy"][-1] <= 1.0


def test_missing_targets_and_empty_loaders_are_errors(regression):
    x, _, _, _ = regression
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="no target"):
        fit(model, nn.MSELoss(), opt, [x], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, nn.MSELoss(), opt, [], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="metrics need targets"):
        evaluate(model, [x], metrics=["accuracy"])
    with pytest.raises(ValueError, match="no target"):
        evaluate(model, [x], nn.MSELoss())
    with pytest.raises(ValueError, match="epochs"):
        fit(model, nn.MSELoss(), opt, [], epochs=-1, verbose=0)


def test_clip_grad_value_and_norm():
    x = np.ones((4, 1), np.float32)
    y = np.full((4, 1), 10.0, np.float32)

    def one_step(**clip):
        model = nn.Linear(1, 1)
        model.weight.data[...] = 0.0
        model.bias.data[...] = 0.0
        fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=1.0), [(x, y)], epochs=1,
            verbose=0, **clip)
        return float(model.weight.item()), float(model.bias.item())

    # unclipped gradient of mean((w + b - 10)^2) at 0: -20 for both w and b
    assert one_step() == pytest.approx((20.0, 20.0))
    assert one_step(clip_grad_value=0.5) == pytest.approx((0.5, 0.5))
    # total norm sqrt(2) * 20 scaled to 1: each component 1 / sqrt(2)
    w, b = one_step(clip_grad_norm=1.0)
    assert w == pytest.approx(1 / np.sqrt(2), rel=1e-5) and b == pytest.approx(w)


def test_several_param_groups_log_each_lr(regression):
    x, y, _, _ = regression
    model = nn.Linear(1, 1)
    opt = optim.SGD([{"params": [model.weight]}, {"params": [model.bias], "lr": 0.5}], lr=0.1)
    history = fit(model, nn.MSELoss(), opt, [(x, y)], epochs=1, verbose=0)
    assert history["lr"] == [0.1] and history["lr_1"] == [0.5]


def test_trainer_keeps_state_between_calls(regression):
    x, y, xv, yv = regression
    model = nn.Linear(1, 1)
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), verbose=0)
    history = trainer.fit([(x, y)], [(xv, yv)], epochs=3)
    assert trainer.epoch == 3 and history is trainer.history
    assert trainer.evaluate([(xv, yv)])["loss"] == pytest.approx(history["val_loss"][-1])
    assert trainer.predict([(xv, yv)]).shape == (16, 1)
    with pytest.raises(ValueError, match="verbose"):
        Trainer(model, nn.MSELoss(), None, verbose=3)
