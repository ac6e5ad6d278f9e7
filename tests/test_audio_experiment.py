"""The audio experiment end to end on tiny data, its cache behaviour and the CLI contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chaosmining.cli import main
from chaosmining.errors import ConfigError
from chaosmining.experiments.audio import (
    AUDIO_DEFAULT_METHODS,
    MODEL_KIND,
    PRESETS,
    AudioConfig,
    AudioEvalConfig,
    background_counterpart,
    rebuild_command,
    result_key,
    run_audio,
)
from chaosmining.viz import audio_figures, background_whatif

TINY = dict(
    source="formant",
    words="core",
    train_per_class=3,
    test_per_class=1,
    channels=4,
    background_recordings=3,
    background_seconds=2,
)


def _config(**kw) -> AudioConfig:
    return AudioConfig.from_preset("quick", model=kw.pop("model", "tcn"), train={"epochs": 1}, **{**TINY, **kw})


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    from chaosmining.cache import Cache

    cache = Cache(tmp_path_factory.mktemp("audio-cache"))
    events = []
    ev = AudioEvalConfig.for_preset("quick", samples=4, examples=2, params={"integrated_gradients": {"steps": 4}})
    result = run_audio(
        _config(background="structured", position="random"), ev, cache=cache, report=lambda **e: events.append(e)
    )
    return result, cache, ev, events


def test_run_reports_scores_for_every_method(tiny_result):
    result, _, _, events = tiny_result
    s = result.summary()
    assert set(s["channel_fprec"]) == set(AUDIO_DEFAULT_METHODS)
    assert 0 <= s["accuracy"] <= 1 and s["chance"] == 0.25 and s["class_chance"] == 0.1
    assert all(0 <= v <= 1 for v in s["channel_fprec"].values())
    assert all(0 <= v <= 1 for v in s["top1_hit"].values())
    assert s["n_train"] == 30 and s["n_test"] == 10 and s["n_eval"] == 4 and not s["cached"]
    assert any(e.get("stage") == "training" for e in events) and any("test_accuracy" in e for e in events)
    assert any("at least 170 per word" in n for n in s["notes"])
    imp = result.arrays["importance_saliency"]
    assert imp.shape == (4, 4) and np.allclose(imp.sum(axis=1), 1, atol=1e-5)
    assert result.arrays["examples"].shape == (2, 4, 16_000)
    assert result.arrays["envelope_feature_ablation"].shape == (2, 4, 400)
    json.dumps(result.bundle())  # the bundle is JSON


def test_second_run_is_a_cache_hit_and_new_methods_reuse_the_model(tiny_result):
    result, cache, ev, _ = tiny_result
    again = run_audio(result.config, ev, cache=cache)
    assert again.cached and again.accuracy == result.accuracy
    assert again.channel_fprec == result.channel_fprec
    models = [p for p in (cache.root / MODEL_KIND).iterdir() if p.is_dir()]
    other = run_audio(
        result.config, AudioEvalConfig.for_preset("quick", ["saliency", "random"], samples=4), cache=cache
    )
    assert not other.cached and other.train_seconds == result.train_seconds  # same checkpoint
    assert [p for p in (cache.root / MODEL_KIND).iterdir() if p.is_dir()] == models
    assert abs(other.channel_fprec["random"] - 0.25) < 0.1  # a random map spreads evenly


def test_figures_render_from_a_result(tiny_result):
    result, *_ = tiny_result
    figs = audio_figures(result, 1, "deeplift")
    assert {"channel_importance", "channel_fprec", "attribution_over_time", "training"} <= set(figs)
    assert any(k.startswith("clip1_spectrogram") for k in figs)
    assert len(background_whatif({"random": result, "structured": result}).data) == 4
    wavs = result.sample_wavs(0)
    assert len(wavs) == 1 and next(iter(wavs.values()))[:4] == b"RIFF"


def test_equal_method_settings_give_equal_keys():
    cfg = _config()
    a = AudioEvalConfig.create(["saliency", "integrated_gradients"])
    b = AudioEvalConfig.create(["integrated_gradients", "saliency"], {"integrated_gradients": {"steps": 20}})
    assert result_key(cfg, a) == result_key(cfg, b)
    assert cfg.config_hash == cfg.replace(preset="custom").config_hash  # the preset is a label only


def test_presets_and_counterpart():
    assert PRESETS.names() == ["smoke", "quick", "sequence", "demo", "paper"]
    seq = AudioConfig.from_preset("sequence", model="transformer")
    assert (seq.model.stride, seq.model.layers, seq.model.norm_first) == (64, 1, True)
    assert seq.train.lr == pytest.approx(1e-3) and seq.train.epochs == 30 and seq.data.words == "core"
    assert AudioConfig.from_preset("sequence", model="rnn").train.lr == pytest.approx(3e-3)
    paper = AudioConfig.from_preset("paper", model="transformer")
    assert paper.train.lr == 1e-4 and paper.train.epochs == 30 and paper.train.batch_size == 128
    assert len(paper.data.word_list) * paper.data.train_per_class == 84_840 and not paper.data.fresh_backgrounds
    demo = AudioConfig.from_preset("demo", model="tcn")
    assert demo.data.words == "core" and demo.train.lr == pytest.approx(6e-3) and demo.data.fresh_backgrounds
    assert demo.model.stride == 32 and demo.train.epochs == 24 and demo.data.train_per_class == 400
    assert "--fresh-backgrounds" not in rebuild_command(demo)
    assert "--no-fresh-backgrounds" in rebuild_command(demo.replace(data=demo.data.replace(fresh_backgrounds=False)))
    other = background_counterpart(_config())
    assert other.data.background == "structured" and other.model == _config().model
    assert rebuild_command(_config()).startswith("python -m chaosmining audio --background random")


def test_methods_must_apply_to_audio(monkeypatch):
    from chaosmining import attribution

    spec = attribution.METHODS.get("saliency")
    monkeypatch.setitem(
        attribution.METHODS._entries, "saliency", spec.__class__(**{**spec.__dict__, "modalities": ("vision",)})
    )
    with pytest.raises(
        ConfigError, match="The 'methods' parameter of AudioEvalConfig must be methods that apply to audio"
    ):
        AudioEvalConfig.create(["saliency"])


def test_cli_prints_the_json_contract(tmp_path, capsys):
    args = ["audio", "--preset", "quick", "--source", "formant", "--words", "core", "--channels", "3"]
    args += ["--train-per-class", "2", "--test-per-class", "1", "--epochs", "1", "--eval-samples", "2"]
    args += ["--methods", "saliency,feature_ablation", "--cache-dir", str(tmp_path), "--json", "--quiet"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("accuracy", "channel_fprec", "chance", "seconds", "cached"):
        assert key in out
    assert set(out["channel_fprec"]) == {"saliency", "feature_ablation"} and out["chance"] == pytest.approx(1 / 3)
    export = tmp_path / "export"
    assert main([*args, "--export", str(export), "--export-formats", "html,csv"]) == 0
    assert json.loads(capsys.readouterr().out)["cached"] is True
    names = {p.name for p in export.iterdir()}
    assert {"bundle.json", "scores.csv", "channel_importance.html", "channel_fprec.csv"} <= names
    wav = next(p for p in export.iterdir() if p.suffix == ".wav")
    import soundfile as sf

    data, rate = sf.read(str(wav))
    assert rate == 16_000 and data.shape == (16_000, 3)  # the published layout's (samples, channels)
    assert main(["rerun", str(export / "bundle.json"), "--cache-dir", str(tmp_path), "--json"]) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["cached"] and rerun["max_channel_fprec_difference_from_bundle"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data-root", "/no/such/folder"], "must be a folder holding Speech Commands v0.02"),
        (["--channels", "1"], "The 'channels' parameter of AudioDataConfig must be an int in [2, 64]"),
        (["--methods", "nope"], "Unknown attribution method 'nope'"),
        (["--param", "integrated_gradients.steps=0"], "The 'steps' parameter of method 'integrated_gradients'"),
    ],
)
def test_cli_bad_input_is_one_line_and_status_2(args, message, capsys, tmp_path):
    assert main(["audio", "--preset", "quick", "--cache-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_the_rebuild_line_parses_back_to_the_same_configuration(tmp_path):
    import shlex

    from chaosmining.cli import build_parser
    from chaosmining.commands.audio import config_from_args

    (tmp_path / "rfcx").mkdir()
    cfg = AudioConfig.from_preset(
        "demo",
        model="lstm",
        background="structured",
        structured_source="rfcx",
        rfcx_root=str(tmp_path / "rfcx"),
        channels=6,
        train={"epochs": 3},
    )
    argv = shlex.split(rebuild_command(cfg))[3:]  # after "python -m chaosmining"
    assert config_from_args(build_parser().parse_args(argv)).config_hash == cfg.config_hash
