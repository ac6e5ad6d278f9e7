"""Contract and analytic tests of the attribution methods added for the evaluation issue.

Every registered method runs on a tiny MLP (see test_attribution_core.py), a tiny image CNN and a tiny
audio-like ``(channels, time)`` CNN; the new methods are checked against answers known in closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_attribution_core import _linear
from torch import nn

from chaosmining.attribution import (
    METHODS,
    attribute,
    functional_nonlinearities,
    group_mask,
    methods_for,
    preflight,
    resolve_params,
)
from chaosmining.errors import ConfigError
from chaosmining.models.mlp import MLPConfig, build_mlp


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()


def _tiny_audio_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(2, 4, 5, padding=2), nn.ReLU(), nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


# Small settings so that the contract tests stay fast for the sampling methods.
FAST = {
    "integrated_gradients": {"steps": 4},
    "smoothgrad": {"samples": 4},
    "smoothgrad_sq": {"samples": 4},
    "vargrad": {"samples": 4},
    "gradient_shap": {"samples": 4},
    "kernel_shap": {"samples": 20},
}


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_gives_a_finite_map_of_the_image_shape(method):
    x = torch.randn(2, 3, 8, 8)
    res = attribute(_tiny_cnn(), x, method, target=1, params=FAST.get(method))
    assert res.values.shape == (2, 3, 8, 8)
    assert np.isfinite(res.values).all()


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_gives_a_finite_map_of_the_audio_shape(method):
    x = torch.randn(2, 2, 24)
    target = torch.tensor([0, 2])
    res = attribute(_tiny_audio_cnn(), x, method, target=target, params=FAST.get(method))
    assert res.values.shape == (2, 2, 24)
    assert np.isfinite(res.values).all()


@pytest.mark.parametrize("modality", ["symbolic", "vision", "audio"])
def test_methods_for_each_modality_include_the_new_methods(modality):
    names = methods_for(modality)
    for m in ("input_x_gradient", "smoothgrad", "smoothgrad_sq", "vargrad", "guided_backprop", "occlusion"):
        assert m in names


def test_input_x_gradient_on_a_linear_model_is_w_times_x():
    w = [1.5, -2.0, 0.25]
    x = torch.tensor([[0.2, -0.4, 0.9], [-1.0, 0.5, 0.1]])
    out = attribute(_linear(w), x, "input_x_gradient", target=0).values
    np.testing.assert_allclose(out, np.array(w) * x.numpy(), rtol=1e-6)


def test_noise_tunnel_methods_on_a_linear_model():
    """The gradient of a linear model is w everywhere: SG = w, SG^2 = w^2, VarGrad = 0."""
    w = [1.5, -2.0, 0.25]
    x = torch.randn(4, 3)
    model = _linear(w)
    for method, expected in (("smoothgrad", w), ("smoothgrad_sq", np.square(w)), ("vargrad", [0.0] * 3)):
        out = attribute(model, x, method, target=0, params={"samples": 8}).values
        np.testing.assert_allclose(out, np.tile(expected, (4, 1)), rtol=1e-5, atol=1e-6)


class _HalfSquare(nn.Module):
    """f(x) = 0.5 * ||x||^2, whose gradient is x itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x * x).flatten(1).sum(1, keepdim=True)


def test_smoothgrad_noise_is_in_units_of_each_samples_range():
    """On f = ||x||^2 / 2 the gradient at x + e is x + e, so VarGrad = sigma^2 with sigma = level * range."""
    x = torch.tensor([[0.0, 1.0, 2.0, 4.0] * 8, [0.0, 0.5, 0.25, 0.1] * 8])  # ranges 4 and 0.5
    level = 0.1
    var = attribute(_HalfSquare(), x, "vargrad", target=0, params={"samples": 400, "noise_level": level}).values
    expected = (level * np.array([4.0, 0.5])) ** 2
    np.testing.assert_allclose(var.mean(axis=1), expected, rtol=0.1)
    sg = attribute(_HalfSquare(), x, "smoothgrad", target=0, params={"samples": 400, "noise_level": level}).values
    np.testing.assert_allclose(sg, x.numpy(), atol=4 * level * 4.0 / np.sqrt(400))


def test_sampling_methods_are_reproducible_from_the_seed():
    x = torch.randn(3, 6)
    model = build_mlp(6, MLPConfig(width=8, depth=2, activation="relu"))
    for method in ("smoothgrad", "gradient_shap", "kernel_shap"):
        params = FAST[method]
        a = attribute(model, x, method, target=0, params=params, seed=4).values
        b = attribute(model, x, method, target=0, params=params, seed=4).values
        c = attribute(model, x, method, target=0, params=params, seed=5).values
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_gradient_shap_on_a_linear_model_is_w_times_x_minus_baseline():
    w = [1.0, -3.0, 0.5]
    x = torch.tensor([[0.3, 0.2, -0.8], [1.0, -1.0, 0.5]])
    out = attribute(_linear(w), x, "gradient_shap", target=0, params={"samples": 5}).values
    np.testing.assert_allclose(out, np.array(w) * x.numpy(), rtol=1e-5)
    # A baseline distribution of identical members behaves like that single baseline.
    dist = torch.tensor([[0.1, 0.2, 0.3]]).repeat(7, 1)
    out = attribute(_linear(w), x, "gradient_shap", target=0, baselines=dist, params={"samples": 5}).values
    np.testing.assert_allclose(out, np.array(w) * (x.numpy() - [0.1, 0.2, 0.3]), rtol=1e-5, atol=1e-6)


def test_occlusion_with_a_window_of_one_is_feature_ablation():
    w = [1.0, -3.0, 0.5, 2.0]
    x = torch.tensor([[0.3, 0.2, -0.8, 0.1]])
    occ = attribute(_linear(w), x, "occlusion", target=0, params={"window": 1, "stride": 1}).values
    fa = attribute(_linear(w), x, "feature_ablation", target=0).values
    np.testing.assert_allclose(occ, fa, rtol=1e-6)


def test_occlusion_averages_the_windows_that_cover_each_feature():
    """Window 2, stride 1 on a linear model over 3 features: windows {0,1} and {1,2}."""
    w = np.array([1.0, 2.0, 4.0])
    x = torch.tensor([[1.0, 1.0, 1.0]])
    occ = attribute(_linear(list(w)), x, "occlusion", target=0, params={"window": 2, "stride": 1}).values
    np.testing.assert_allclose(occ[0], [3.0, (3.0 + 6.0) / 2, 6.0], rtol=1e-6)


def test_occlusion_refuses_a_stride_longer_than_the_window():
    with pytest.raises(ConfigError, match="The 'stride' parameter of method 'occlusion'"):
        attribute(_linear([1.0, 2.0, 3.0]), torch.ones(1, 3), "occlusion", target=0, params={"window": 1, "stride": 2})


def test_kernel_shap_on_a_linear_model_recovers_the_shapley_values():
    w = [1.0, -3.0, 0.5, 2.0]
    x = torch.tensor([[0.3, 0.2, -0.8, 0.1], [1.0, -1.0, 0.5, 0.2]])
    out = attribute(_linear(w), x, "kernel_shap", target=0, params={"samples": 200}).values
    np.testing.assert_allclose(out, np.array(w) * x.numpy(), rtol=1e-3, atol=1e-4)


def test_group_mask_shapes():
    assert group_mask((7,), 4) is None
    audio = group_mask((2, 8), 4)
    assert audio.shape == (1, 2, 8) and audio.max() == 7 and (audio[0, 0, :2] == 0).all()
    image = group_mask((3, 8, 8), 2)
    assert image.shape == (1, 3, 8, 8) and image.max() == 3
    assert (image[0, 0] == image[0, 2]).all()


class _GuidedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


def test_guided_backprop_matches_a_hand_written_guided_relu():
    torch.manual_seed(3)
    model = build_mlp(5, MLPConfig(width=6, depth=2, activation="relu")).eval()
    x = torch.randn(4, 5)
    gbp = attribute(model, x, "guided_backprop", target=0)
    assert gbp.warnings == ()
    xx = x.clone().requires_grad_()
    h = xx
    for layer in model:
        h = _GuidedRelu.apply(h) if isinstance(layer, nn.ReLU) else layer(h)
    h.sum().backward()
    np.testing.assert_allclose(gbp.values, xx.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_guided_backprop_on_a_gelu_mlp_is_the_gradient_and_the_user_is_told():
    torch.manual_seed(1)
    model = build_mlp(6, MLPConfig(width=10, depth=2, activation="gelu"))
    x = torch.randn(4, 6)
    res = attribute(model, x, "guided_backprop", target=0)
    np.testing.assert_allclose(res.values, attribute(model, x, "saliency", target=0).values, rtol=1e-6)
    assert res.warnings and "has none" in res.warnings[0] and "GELU" in res.warnings[0]


class _FunctionalNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def test_preflight_finds_functional_activations_for_hook_methods():
    model, x = _FunctionalNet(), torch.randn(3, 4)
    assert functional_nonlinearities(model, x) == [("relu", "_FunctionalNet")]
    for method in ("deeplift", "guided_backprop"):
        notes = preflight(model, method, x)
        assert any("relu() in _FunctionalNet" in n for n in notes), notes
    assert preflight(model, "saliency", x) == []
    # Activations used as modules are not reported.
    assert functional_nonlinearities(build_mlp(4, MLPConfig(width=5, depth=2, activation="relu")), x) == []


def test_preflight_reports_recurrent_gates_for_deeplift():
    class Rnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm, self.head = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.lstm(x)[0][:, -1])

    notes = preflight(Rnn(), "deeplift", torch.randn(2, 5, 3))
    assert any("LSTM" in n and "gates" in n for n in notes)


def test_guided_backprop_runs_on_reused_modules_but_deeplift_refuses():
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(3, 3), nn.Linear(3, 1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc2(self.act(self.fc1(self.act(x))))

    x = torch.randn(2, 3)
    assert preflight(Reuse(), "guided_backprop", x) == []
    with pytest.raises(ConfigError, match="called more than once"):
        preflight(Reuse(), "deeplift", x)


def test_new_parameters_are_validated_with_the_standard_message():
    with pytest.raises(ConfigError, match="The 'noise_level' parameter of method 'smoothgrad' must be a float in"):
        resolve_params("smoothgrad", {"noise_level": -0.1})
    with pytest.raises(ConfigError, match="The 'samples' parameter of method 'kernel_shap' must be an int in"):
        resolve_params("kernel_shap", {"samples": 2})
