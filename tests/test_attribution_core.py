"""The attribution registry's contract and analytic answers on models whose attributions are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from chaosmining.attribution import METHODS, attribute, measure_peak_memory, preflight, resolve_params
from chaosmining.errors import ConfigError
from chaosmining.metrics import fprec
from chaosmining.models.mlp import MLPConfig, build_mlp


def _linear(w: list[float], b: float = 0.3) -> nn.Linear:
    lin = nn.Linear(len(w), 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w]))
        lin.bias.fill_(b)
    return lin


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_gives_finite_attributions_of_the_input_shape(method):
    torch.manual_seed(0)
    model = build_mlp(7, MLPConfig(width=8, depth=2))
    x = torch.randn(5, 7)
    res = attribute(model, x, method, target=0, measure_memory=True)
    assert res.values.shape == (5, 7)
    assert np.isfinite(res.values).all()
    assert res.seconds >= 0 and res.peak_memory_bytes is not None and res.peak_memory_bytes >= 0


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_entry_is_complete(method):
    spec = METHODS.get(method)
    assert spec.display_name and spec.short and spec.reference.startswith("https://")
    defaults = resolve_params(method)
    assert set(defaults) == {p.name for p in spec.params}
    for p in spec.params:
        assert p.validate(p.default, "test") == p.default


def test_integrated_gradients_on_a_linear_model_equals_w_times_x_minus_baseline():
    w = [1.5, -2.0, 0.25, 0.0]
    model = _linear(w)
    x = torch.tensor([[0.2, -0.4, 0.9, 0.7], [-1.0, 0.5, 0.1, 0.3]])
    baseline = torch.tensor([[0.1, 0.1, -0.2, 0.0]])
    ig = attribute(model, x, "integrated_gradients", target=0, baselines=baseline, params={"steps": 7}).values
    np.testing.assert_allclose(ig, (np.array(w) * (x - baseline).numpy()), rtol=1e-5, atol=1e-6)


def test_saliency_is_the_signed_gradient_and_saliency_abs_its_magnitude():
    w = [1.5, -2.0, 0.25]
    model = _linear(w)
    x = torch.randn(3, 3)
    np.testing.assert_allclose(attribute(model, x, "saliency", target=0).values, np.tile(w, (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(
        attribute(model, x, "saliency_abs", target=0).values, np.abs(np.tile(w, (3, 1))), rtol=1e-6
    )


def test_feature_ablation_on_a_linear_model_is_w_times_x():
    w = [1.0, -3.0, 0.5]
    x = torch.tensor([[0.3, 0.2, -0.8]])
    np.testing.assert_allclose(
        attribute(_linear(w), x, "feature_ablation", target=0).values, [[0.3, -0.6, -0.4]], rtol=1e-6
    )


def test_deeplift_on_a_gelu_mlp_is_input_times_gradient_and_the_user_is_told():
    torch.manual_seed(1)
    model = build_mlp(6, MLPConfig(width=10, depth=2, activation="gelu"))
    x = torch.randn(4, 6)
    res = attribute(model, x, "deeplift", target=0)
    grad = attribute(model, x, "saliency", target=0).values
    np.testing.assert_allclose(res.values, x.numpy() * grad, rtol=1e-4, atol=1e-6)
    assert res.warnings and "GELU" in res.warnings[0] and "Input x Gradient" in res.warnings[0]


def test_deeplift_on_a_relu_mlp_uses_its_rule_without_warning():
    torch.manual_seed(2)
    model = build_mlp(6, MLPConfig(width=10, depth=2, activation="relu"))
    x = torch.randn(64, 6)
    res = attribute(model, x, "deeplift", target=0)
    assert res.warnings == ()
    # DeepLift's summation-to-delta: attributions add up to F(x) - F(0).
    with torch.no_grad():
        delta = (model(x) - model(torch.zeros_like(x))).squeeze(1).numpy()
    np.testing.assert_allclose(res.values.sum(1), delta, rtol=1e-4, atol=1e-5)


def test_preflight_refuses_hook_methods_on_reused_modules():
    class Reuse(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(3, 3), nn.Linear(3, 1), nn.ReLU()

        def forward(self, x):
            return self.fc2(self.act(self.fc1(self.act(x))))

    with pytest.raises(ConfigError, match="called more than once"):
        preflight(Reuse(), "deeplift", torch.randn(2, 3))
    assert preflight(Reuse(), "saliency", torch.randn(2, 3)) == []


def test_random_control_gives_the_fprec_floor():
    x = torch.zeros(4000, 20)
    values = attribute(_linear([1.0] * 20), x, "random", target=0, seed=3).values
    assert fprec(values, relevant=[0, 1]) == pytest.approx(2 / 20, abs=0.01)


def test_unknown_method_and_parameters_are_named_in_the_error():
    with pytest.raises(ConfigError, match="Unknown attribution method 'gradcam'.*saliency"):
        attribute(_linear([1.0]), torch.ones(1, 1), "gradcam")
    with pytest.raises(ConfigError, match=r"Unknown parameter\(s\) \['step'\]"):
        resolve_params("integrated_gradients", {"step": 3})
    with pytest.raises(ConfigError, match="The 'steps' parameter of method 'integrated_gradients' must be an int in"):
        resolve_params("integrated_gradients", {"steps": 0})


def test_peak_memory_counts_tensor_allocations():
    def work():
        a = torch.zeros(1000, 1000)  # 4 MB
        b = torch.zeros(2000, 1000)  # 8 MB
        del a
        return b.sum()

    _, peak = measure_peak_memory(work, torch.device("cpu"))
    assert 12_000_000 <= peak < 12_100_000


def test_large_inputs_are_attributed_in_chunks_with_identical_results():
    torch.manual_seed(0)
    model = build_mlp(5, MLPConfig(width=8, depth=1, activation="tanh"))
    x = torch.randn(4500, 5)
    whole = attribute(model, x, "saliency", target=0).values
    first = attribute(model, x[:10], "saliency", target=0).values
    np.testing.assert_allclose(whole[:10], first, rtol=1e-6)
