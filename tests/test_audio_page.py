"""AppTest smoke tests of the Audio page: shipped results on first visit, a quick run, bad input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chaosmining.cache import ASSETS_ROOT
from chaosmining.experiments.audio import RESULT_KIND, AudioConfig, AudioEvalConfig, result_key

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "3_Audio.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=180).run()


def _labels(at: AppTest) -> list[str]:
    return [m.label for m in at.metric]


def test_default_page_opens_on_the_shipped_demo_results():
    default = result_key(AudioConfig.from_preset("demo", model="tcn"), AudioEvalConfig.for_preset("demo"))
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Audio"
    if not (ASSETS_ROOT / RESULT_KIND / default / "manifest.json").is_file():
        assert [b.label for b in at.button if b.label == "Train"] == ["Train"]
        return
    assert "Accuracy" in _labels(at) and "Best channel FPrec" in _labels(at)
    assert len(at.get("plotly_chart")) >= 4
    assert any(b.label == "Train" for b in at.button) is False
    # the what-if compares both backgrounds, shipped for the default model
    whatif = [df.value for df in at.dataframe if "background" in df.value.columns]
    assert whatif and sorted(whatif[0]["background"]) == ["random", "structured"]


def test_quick_run_trains_polls_and_renders_channel_bars():
    # The same configuration as the browser test, which then finds it in the session's cache.
    at = _page()
    at.selectbox(key="aud_preset").set_value("smoke").run()
    at.selectbox(key="aud_words").set_value("core")
    at.number_input(key="aud_channels").set_value(4)
    at.number_input(key="aud__param_integrated_gradients_steps").set_value(2)
    at.run()
    at.button(key="aud_train_btn").click().run()
    for _ in range(240):
        if "Accuracy" in _labels(at):
            break
        time.sleep(0.5)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Accuracy" in _labels(at)
    assert len(at.get("plotly_chart")) >= 4
    assert at.get("audio"), "one audio player per channel"
    assert any("at least 170 per word" in i.value for i in at.info)


def test_bad_input_is_an_error_and_the_other_settings_stay():
    at = _page()
    at.selectbox(key="aud_model").set_value("lstm").run()
    at.selectbox(key="aud_source").set_value("speech_commands").run()
    assert not at.exception
    assert any("The 'data_root' parameter of AudioDataConfig must be a local folder" in e.value for e in at.error)
    at.text_input(key="aud_data_root").set_value("/no/such/folder").run()
    assert any(
        "The 'data root' parameter of the app must be a path under one of the data roots" in e.value for e in at.error
    )
    assert at.selectbox(key="aud_model").value == "lstm"
    at.multiselect(key="aud_methods").set_value([]).run()
    assert any("must name at least one attribution method" in e.value for e in at.error)


def test_listen_and_look_shows_a_log_mel_spectrogram_beside_the_linear_one():
    default = result_key(AudioConfig.from_preset("demo", model="tcn"), AudioEvalConfig.for_preset("demo"))
    if not (ASSETS_ROOT / RESULT_KIND / default / "manifest.json").is_file():
        pytest.skip("no shipped demo result with example clips")
    at = _page()
    assert not at.exception
    specs = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "Spectrogram of channel" in specs and "Log-mel spectrogram of channel" in specs
    assert "mel band centre (kHz)" in specs
