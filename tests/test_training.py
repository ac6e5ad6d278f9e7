"""The fast MLP trainer: gradients against autograd, determinism, divergence and cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining.errors import ConfigError, JobCancelled, TrainingDivergedError
from chaosmining.models.mlp import ACTIVATIONS, MLPConfig, build_mlp, init_mlp_parameters, load_parameters
from chaosmining.runtime import native_bf16
from chaosmining.training import (
    OPTIMIZERS,
    TrainConfig,
    check_precision,
    mlp_loss_and_grads,
    snapshot_epochs,
    train_mlp,
)


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_hand_written_gradients_match_autograd(activation, dropout):
    cfg = MLPConfig(width=9, depth=3, activation=activation, dropout=dropout)
    gen = torch.Generator().manual_seed(0)
    params = init_mlp_parameters(6, cfg, gen)
    params = [p.double() for p in params]
    X = torch.randn(40, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(40, generator=gen, dtype=torch.float64)
    mask = None
    if dropout:
        mask = (torch.rand(cfg.width, 40, generator=gen) > dropout).double() / (1 - dropout)
    loss, grads = mlp_loss_and_grads(params, X.T.contiguous(), y.reshape(1, -1), ACTIVATIONS.get(activation), mask)

    net = load_parameters(build_mlp(6, cfg).double(), params)
    leaves = [p for p in net.parameters()]
    h = X
    layers = list(net)
    for layer in layers[:-2]:
        h = layer(h)
    if mask is not None:
        h = h * mask.T
    pred = layers[-1](h).squeeze(1)
    ref = ((pred - y) ** 2).mean()
    ref_grads = torch.autograd.grad(ref, leaves)
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.reshape(r.shape), r, rtol=1e-10, atol=1e-12)


def _toy(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = np.clip(rng.standard_normal((n, d)) * 0.33, -1, 1)
    return X, np.sin(2 * X[:, 0]) + X[:, 1] ** 2


def test_training_reduces_the_loss_and_is_deterministic():
    X, y = _toy()
    cfg, tc = MLPConfig(width=16, depth=2), TrainConfig(epochs=150, lr=1e-2, snapshots=3)
    a = train_mlp(X, y, cfg, tc, seed=5)
    b = train_mlp(X, y, cfg, tc, seed=5)
    c = train_mlp(X, y, cfg, tc, seed=6)
    assert a.loss_values[-1] < 0.2 * a.loss_values[0]
    for p, q in zip(a.params, b.params):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert not torch.equal(a.params[0], c.params[0])
    assert [e for e, _ in a.snapshots] == snapshot_epochs(150, 3) == [0, 50, 100, 150]
    with torch.no_grad():
        pred = a.model()(torch.tensor(X, dtype=torch.float32)).squeeze(1).numpy()
    assert np.mean((pred - y) ** 2) == pytest.approx(a.loss_values[-1], rel=0.2)


def test_minibatches_and_dropout_train_too():
    X, y = _toy()
    res = train_mlp(
        X, y, MLPConfig(width=16, depth=2, dropout=0.2), TrainConfig(epochs=20, lr=1e-2, batch_size=64), seed=0
    )
    assert np.isfinite(res.loss_values).all() and res.loss_values[-1] < res.loss_values[0]
    assert not res.model().training  # exported in eval mode: dropout off for attribution


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "adadelta", "adagrad", "asgd"])
def test_the_papers_six_optimizers_are_registered_and_step(optimizer):
    X, y = _toy(100)
    res = train_mlp(X, y, MLPConfig(width=8, depth=1), TrainConfig(epochs=3, optimizer=optimizer), seed=0)
    assert np.isfinite(res.loss_values).all()
    assert optimizer in OPTIMIZERS


def test_a_diverging_run_says_what_to_change():
    X, y = _toy(100)
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch \d+.*'lr' parameter \(50\).*lower it"):
        train_mlp(
            X,
            y * 1e3,
            MLPConfig(width=32, depth=3, activation="relu"),
            TrainConfig(epochs=400, lr=50.0, optimizer="sgd"),
            seed=0,
        )


def test_stop_request_cancels_between_epochs():
    X, y = _toy(100)

    class Stopper:
        epochs_seen = 0

        def on_progress(self, epoch, loss):
            self.epochs_seen = epoch

        def on_snapshot(self, epoch, model):
            pass

        def should_stop(self):
            return self.epochs_seen >= 5

    with pytest.raises(JobCancelled, match="stopped by the user at epoch 5"):
        train_mlp(X, y, MLPConfig(width=8, depth=1), TrainConfig(epochs=100), seed=0, monitor=Stopper(), report_every=1)


def test_train_config_validation_messages():
    with pytest.raises(
        ConfigError, match=r"The 'lr' parameter of TrainConfig must be a float in \(0, 100\]. Got -1.0 instead."
    ):
        TrainConfig(lr=-1.0)
    with pytest.raises(ConfigError, match="'optimizer' parameter of TrainConfig must be one of"):
        TrainConfig(optimizer="lbfgs")


needs_bf16 = pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bfloat16 products")


def test_float32_is_the_default_and_keeps_the_cache_keys():
    assert TrainConfig().precision == "fp32"
    assert "precision" not in TrainConfig().hash_payload()  # keys from before the option stay valid
    assert TrainConfig(precision="bf16").config_hash != TrainConfig().config_hash
    with pytest.raises(
        ConfigError, match=r"The 'precision' parameter of TrainConfig must be one of \['fp32', 'bf16'\]"
    ):
        TrainConfig(precision="fp16")


def test_bf16_is_refused_where_it_would_be_emulated(monkeypatch):
    import chaosmining.training as training

    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    with pytest.raises(ConfigError, match="no native bfloat16 products"):
        check_precision("bf16", "cpu")
    assert check_precision("fp32", "cpu") == torch.float32


@needs_bf16
def test_bf16_gradients_follow_float32_and_training_keeps_float32_weights():
    rng = np.random.default_rng(0)
    X = np.clip(0.33 * rng.standard_normal((2000, 12)), -1, 1).astype(np.float32)
    y = (X[:, 0] * X[:, 1] + np.sin(X[:, 2])).astype(np.float32)
    params = init_mlp_parameters(12, MLPConfig(width=32), torch.Generator().manual_seed(0))
    XT, yT = torch.tensor(X.T.copy()), torch.tensor(y.reshape(1, -1))
    act = ACTIVATIONS.get("gelu")
    _, g32 = mlp_loss_and_grads(params, XT, yT, act)
    _, g16 = mlp_loss_and_grads([p.bfloat16() for p in params], XT.bfloat16(), yT.bfloat16(), act)
    for a, b in zip(g32, g16):
        assert torch.linalg.norm(a - b.float()) <= 0.05 * torch.linalg.norm(a) + 1e-6
    cfg = TrainConfig(epochs=150, snapshots=2)
    r32 = train_mlp(X, y, MLPConfig(width=32), cfg, seed=0)
    r16 = train_mlp(X, y, MLPConfig(width=32), cfg.replace(precision="bf16"), seed=0)
    assert all(p.dtype == torch.float32 for p in r16.params)
    assert all(p.dtype == torch.float32 for _, snap in r16.snapshots for p in snap)
    assert r16.loss_values[-1] < 0.2 * r16.loss_values[0]
    assert r16.loss_values[-1] == pytest.approx(r32.loss_values[-1], rel=0.3)
