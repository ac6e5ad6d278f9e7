"""Audio models: every registered architecture, every audio attribution method, channel scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chaosmining.attribution import METHODS, attribute, preflight
from chaosmining.errors import ConfigError
from chaosmining.experiments.audio import (
    AUDIO_PARAM_DEFAULTS,
    CHANNEL_FEATURE_METHODS,
    audio_methods,
    channel_fprec_per_sample,
    channel_importance,
    channel_mask,
    speech_mask,
    time_profile,
    top1_hits,
)
from chaosmining.models.audio import AUDIO_MODELS, AudioModelConfig, build_audio_model, frames_after_front_end

C, T = 3, 16_000
ARCHS = AUDIO_MODELS.names()


def _model(arch: str, classes: int = 4, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_audio_model(AudioModelConfig(arch=arch, hidden=12, heads=3, **kw), C, classes)
    for p in model.head.parameters():  # a zero head (the default) gives zero gradients: make it non-trivial
        torch.nn.init.normal_(p, std=0.5)
    return model.eval()


def _x(n: int = 2) -> torch.Tensor:
    return torch.randn(n, C, T, generator=torch.Generator().manual_seed(1)) * 0.25


def test_registry_lists_the_paper_models():
    assert set(ARCHS) == {"rnn", "lstm", "tcn", "transformer"}
    assert AUDIO_MODELS.get("transformer").lr == 1e-4 and AUDIO_MODELS.get("tcn").lr == 1e-3
    assert frames_after_front_end(16_000, AudioModelConfig()) == 249


@pytest.mark.parametrize("arch", ARCHS)
def test_identical_inputs_give_identical_outputs_in_eval_mode_and_a_batch_of_one_works(arch):
    model = _model(arch)
    x = _x(3)
    with torch.no_grad():
        a, b = model(x), model(x)
        one = model(x[:1])
    assert torch.equal(a, b)
    assert one.shape == (1, 4)
    # each clip is processed on its own: no state, attention or statistics shared across the batch
    torch.testing.assert_close(one, a[:1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_initial_weights_depend_on_the_seed_only(arch):
    from chaosmining.experiments.audio import AudioConfig, _new_model

    cfg = AudioConfig.from_preset("quick", model=arch, source="formant")
    a, b = _new_model(cfg, 10, 35), _new_model(cfg, 10, 35)
    c = _new_model(cfg.replace(seed=1), 10, 35)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point() and sa[k].std() > 0)


def test_transformer_attends_over_time_not_over_the_batch():
    model = _model("transformer")
    x = _x(2)
    with torch.no_grad():
        together = model(x)
        swapped = model(torch.stack([x[1], x[0]]))
    torch.testing.assert_close(together, swapped.flip(0), rtol=1e-4, atol=1e-5)


def test_pre_norm_encoder_layer_matches_torchs_norm_first_layer():
    from chaosmining.models.audio import EncoderBlock

    torch.manual_seed(0)
    ours = EncoderBlock(12, 3, 0.0, norm_first=True).eval()
    ref = torch.nn.TransformerEncoderLayer(12, 3, 48, 0.0, batch_first=True, norm_first=True).eval()
    sd = ours.state_dict()
    ref.load_state_dict(
        {
            "self_attn.in_proj_weight": sd["attn.in_proj_weight"],
            "self_attn.in_proj_bias": sd["attn.in_proj_bias"],
            "self_attn.out_proj.weight": sd["attn.out_proj.weight"],
            "self_attn.out_proj.bias": sd["attn.out_proj.bias"],
            "linear1.weight": sd["ff.0.weight"],
            "linear1.bias": sd["ff.0.bias"],
            "linear2.weight": sd["ff.3.weight"],
            "linear2.bias": sd["ff.3.bias"],
            "norm1.weight": sd["norm1.weight"],
            "norm1.bias": sd["norm1.bias"],
            "norm2.weight": sd["norm2.weight"],
            "norm2.bias": sd["norm2.bias"],
        }
    )
    x = torch.randn(2, 7, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_norm_first_keeps_the_paper_models_cache_keys():
    post = AudioModelConfig(arch="transformer")
    assert "norm_first" not in post.hash_payload()  # keys made before the field existed stay valid
    assert post.config_hash != post.replace(norm_first=True).config_hash
    assert AudioModelConfig(arch="rnn").config_hash == AudioModelConfig(arch="rnn", norm_first=True).config_hash
    with pytest.raises(ConfigError, match="The 'norm_first' parameter of AudioModelConfig"):
        AudioModelConfig(norm_first="yes")


def test_heads_must_divide_hidden_for_the_transformer():
    with pytest.raises(ConfigError, match="The 'heads' parameter of AudioModelConfig must be a divisor of hidden=60"):
        AudioModelConfig(arch="transformer", heads=7)
    AudioModelConfig(arch="tcn", heads=7)  # irrelevant elsewhere


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", audio_methods())
def test_every_method_gives_a_finite_attribution_of_the_input_shape(arch, method):
    model = _model(arch)
    params = dict(AUDIO_PARAM_DEFAULTS.get(method, {}))
    params.update({p.name: max(2, int(p.low)) for p in METHODS.get(method).params if p.name in ("steps", "samples")})
    res = attribute(
        model,
        _x(2),
        method,
        target=torch.tensor([0, 3]),
        params=params,
        feature_mask=channel_mask(C) if method in CHANNEL_FEATURE_METHODS else None,
    )
    assert res.values.shape == (2, C, T)
    assert np.isfinite(res.values).all()
    assert model.training is False  # attributed in eval mode


def test_recurrent_models_are_attributed_without_cudnn_on_a_gpu():
    from chaosmining.experiments.audio import _no_cudnn

    with _no_cudnn(torch.device("cuda"), recurrent=True):
        assert torch.backends.cudnn.enabled is False  # cuDNN's RNN backward refuses eval mode
    with _no_cudnn(torch.device("cuda"), recurrent=False):
        assert torch.backends.cudnn.enabled is True
    with _no_cudnn(torch.device("cpu"), recurrent=True):
        assert torch.backends.cudnn.enabled is True


def test_feature_ablation_gives_one_value_per_channel():
    res = attribute(_model("tcn"), _x(1), "feature_ablation", target=1, feature_mask=channel_mask(C))
    per_channel = res.values[0]
    assert all(np.unique(per_channel[c]).size == 1 for c in range(C))


def test_deeplift_on_recurrent_models_says_what_it_computes():
    notes = preflight(_model("lstm"), "deeplift", _x(1))
    assert any("gates inside LSTM" in n for n in notes)


def test_channel_fprec_is_one_when_all_mass_is_on_the_speech_channel():
    attr = np.zeros((3, 5, 40))
    positions = np.array([0, 2, 4])
    attr[np.arange(3), positions] = np.random.default_rng(0).normal(size=(3, 40))
    imp = channel_importance(attr)
    np.testing.assert_allclose(channel_fprec_per_sample(imp, positions), 1.0)
    assert top1_hits(imp, positions).tolist() == [1.0, 1.0, 1.0]


def test_channel_fprec_is_one_over_channels_for_a_uniform_attribution():
    imp = channel_importance(np.full((2, 10, 16), -0.3))
    np.testing.assert_allclose(channel_fprec_per_sample(imp, np.array([0, 7])), 0.1)
    assert top1_hits(imp, np.array([0, 7])).tolist() == [0.0, 0.0]  # a tie is not a hit
    np.testing.assert_allclose(channel_importance(np.zeros((1, 4, 8))), 0.25)  # all-zero maps count as uniform


def test_time_profile_and_speech_mask():
    x = np.zeros((1, 1000))
    x[0, 300:400] = 1.0
    prof = time_profile(x, 10)
    assert prof.tolist() == [[0, 0, 0, 100, 0, 0, 0, 0, 0, 0]]
    assert speech_mask(x, bins=10).tolist() == [[False, False, False, True] + [False] * 6]
