"""The BCE-with-logits option of the fast MLP trainer (used by RFEwNA's classification tasks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining.errors import ConfigError
from chaosmining.models.mlp import ACTIVATIONS, MLPConfig, build_mlp, init_mlp_parameters, load_parameters
from chaosmining.training import LOSSES, TrainConfig, mlp_loss_and_grads, train_mlp


@pytest.mark.parametrize("activation", ACTIVATIONS.names())
@pytest.mark.parametrize("loss", LOSSES.names())
def test_hand_written_gradients_match_autograd(activation, loss):
    cfg = MLPConfig(width=7, depth=2, activation=activation)
    params = [p.double() for p in init_mlp_parameters(4, cfg, torch.Generator().manual_seed(0))]
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(9, 4, generator=gen, dtype=torch.float64)
    y = (torch.rand(9, generator=gen, dtype=torch.float64) > 0.5).double()
    value, grads = mlp_loss_and_grads(
        params, X.T.contiguous(), y.reshape(1, -1), ACTIVATIONS.get(activation), loss=loss
    )

    net = load_parameters(build_mlp(4, cfg).double(), params)
    out = net(X).squeeze(1)
    ref = (
        torch.nn.functional.mse_loss(out, y)
        if loss == "mse"
        else torch.nn.functional.binary_cross_entropy_with_logits(out, y)
    )
    ref.backward()
    expected = [t for m in net if isinstance(m, torch.nn.Linear) for t in (m.weight.grad, m.bias.grad)]
    assert torch.allclose(value, ref.detach(), atol=1e-12)
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e, atol=1e-10)


def test_bce_is_stable_for_large_logits():
    value, g = LOSSES.get("bce").value_and_grad(torch.tensor([[80.0, -80.0]]), torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(value) and value.item() == pytest.approx(80.0)
    assert torch.allclose(g, torch.tensor([[0.5, -0.5]]))


def test_default_loss_keeps_the_old_cache_keys():
    # The hash before the option existed; changing it would orphan every cached symbolic model.
    assert TrainConfig().config_hash == "b9bb256d60ebb890"
    assert TrainConfig(loss="bce").config_hash != TrainConfig().config_hash


def test_unknown_loss_is_refused_with_the_standard_message():
    with pytest.raises(ConfigError, match=r"The 'loss' parameter of TrainConfig must be one of \['mse', 'bce'\]"):
        TrainConfig(loss="hinge")


def test_bce_training_separates_a_linearly_separable_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    y = (X[:, 0] > 0).astype(np.float64)
    trained = train_mlp(
        X,
        y,
        MLPConfig(width=16, depth=2, activation="relu"),
        TrainConfig(epochs=60, batch_size=100, loss="bce"),
        seed=0,
    )
    with torch.no_grad():
        logits = trained.model()(torch.as_tensor(X, dtype=torch.float32)).numpy().ravel()
    assert ((logits > 0) == (y > 0.5)).mean() > 0.95
    assert trained.loss_values[-1] < trained.loss_values[0]
