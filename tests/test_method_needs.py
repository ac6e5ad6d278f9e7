"""Methods carry their own needs: per-modality defaults and feature groups declared once in the method
registry, read by every experiment and the CLI; a method a model cannot run is reported, the others score."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chaosmining.attribution import (
    METHODS,
    InputGeometry,
    method_availability,
    method_defaults,
    method_feature_mask,
    resolve_params,
)
from chaosmining.experiments.audio import AUDIO_PARAM_DEFAULTS, CHANNEL_FEATURE_METHODS, AudioEvalConfig
from chaosmining.experiments.vision import VisionConfig, VisionEvalConfig

GEOMETRIES = {
    "symbolic": None,
    "vision": InputGeometry("vision", canvas=64, patch=16),
    "audio": InputGeometry("audio", channels=4, samples=16_000),
}
SHAPES = {"vision": (1, 3, 64, 64), "audio": (1, 4, 16_000)}


@pytest.mark.parametrize("modality", list(GEOMETRIES))
@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_resolves_valid_defaults_on_every_modality(method, modality):
    geometry = GEOMETRIES[modality]
    params = method_defaults(method, geometry)
    assert params == resolve_params(method, params)  # valid against the method's own spec
    if geometry is not None:
        mask = method_feature_mask(method, geometry)
        if mask is not None:  # a mask broadcasts over one input row
            torch.broadcast_shapes(mask.shape, SHAPES[modality])


def test_the_declared_defaults_are_sized_for_the_input():
    assert method_defaults("occlusion") == {"window": 3, "stride": 1}
    assert method_defaults("occlusion", GEOMETRIES["vision"]) == {"window": 16, "stride": 8}
    assert method_defaults("occlusion", GEOMETRIES["audio"]) == {"window": 1600, "stride": 1600}
    assert method_defaults("kernel_shap", GEOMETRIES["vision"])["segments"] == 4
    assert method_defaults("kernel_shap", GEOMETRIES["audio"])["segments"] == 10
    fa = method_feature_mask("feature_ablation", GEOMETRIES["vision"])
    assert fa.shape == (1, 1, 64, 64) and int(fa.max()) + 1 == 16  # a 4x4 grid of foreground-sized patches
    assert method_feature_mask("feature_ablation", GEOMETRIES["audio"]).flatten().tolist() == [0, 1, 2, 3]
    assert method_feature_mask("saliency", GEOMETRIES["audio"]) is None


def test_the_audio_eval_config_applies_the_registry_defaults_unless_told_otherwise():
    # The bug of issue 15: `chaosmining audio --methods occlusion` ran a 3-sample window.
    ev = AudioEvalConfig.for_preset("quick", ("occlusion", "kernel_shap"))
    assert ev.params_for("occlusion") == {"window": 1600, "stride": 1600}
    assert ev.params_for("kernel_shap")["segments"] == 10
    told = AudioEvalConfig.for_preset("quick", ("occlusion",), params={"occlusion": {"window": 800, "stride": 400}})
    assert told.params_for("occlusion") == {"window": 800, "stride": 400}
    assert AUDIO_PARAM_DEFAULTS["occlusion"]["window"] == 1600 and CHANNEL_FEATURE_METHODS == {"feature_ablation"}


def test_the_vision_eval_config_takes_the_run_s_geometry():
    cfg = VisionConfig.from_preset("quick", canvas=64, foreground_size=16)
    ev = VisionEvalConfig.for_config(cfg, ("occlusion", "saliency"))
    assert ev.params_for("occlusion") == {"window": 16, "stride": 8}
    assert VisionEvalConfig(methods=("occlusion",)).params_for("occlusion") == {"window": 32, "stride": 16}


class _Reused(nn.Module):
    """One ReLU instance called twice: DeepLift's hooks cannot tell the calls apart."""

    def __init__(self) -> None:
        super().__init__()
        self.lin, self.act = nn.Linear(4, 4), nn.ReLU()

    def forward(self, x):
        return self.act(self.lin(self.act(x)))


def test_availability_refuses_with_a_reason_and_allows_the_others():
    model, x = _Reused(), torch.zeros(2, 4)
    reason, _ = method_availability(model, "deeplift", x)
    assert reason and "more than once" in reason
    assert method_availability(model, "saliency", x) == (None, [])


class _ReusedAudio(nn.Module):
    """``(n, C, T) -> (n, classes)`` with one ReLU instance used twice (DeepLift cannot run on it)."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, 4, 400, stride=400)
        self.act = nn.ReLU()
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        h = self.act(self.act(self.conv(x)))
        return self.head(h.amax(dim=-1))


def test_an_audio_method_the_model_cannot_run_is_reported_and_the_others_score(tmp_cache):
    from chaosmining.data.audio import load_split
    from chaosmining.experiments.audio import AudioConfig, TrainedAudioModel, evaluate_audio

    cfg = AudioConfig.from_preset(
        "smoke", source="formant", words="core", train_per_class=1, test_per_class=1, channels=3
    )
    test, words, _ = load_split(cfg.data, "test", 0, cache=tmp_cache)
    trained = TrainedAudioModel(_ReusedAudio(3, len(words)), "tcn", words, 3, 10, {}, 0.0, "cpu")
    ev = AudioEvalConfig.for_preset("smoke", ("saliency", "deeplift", "feature_ablation"), samples=2, examples=0)
    summary, _ = evaluate_audio(trained, test, ev, device=torch.device("cpu"))
    assert set(summary["scores"]) == {"saliency", "feature_ablation"}
    assert "more than once" in summary["unavailable"]["deeplift"]
