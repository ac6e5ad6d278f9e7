"""The "has not learned" warning: one rule (accuracy below 1.5x chance) shared by vision and audio,
carried by the results, printed first by the CLI and shown on the pages before any map."""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from chaosmining.commands.audio import _render as render_audio
from chaosmining.commands.vision import _render as render_vision
from chaosmining.experiments.common import LEARNED_FACTOR, learned, learning_note
from chaosmining.experiments.vision import VisionConfig, VisionEvalConfig, run_vision


@pytest.mark.parametrize(
    ("accuracy", "chance", "expected"),
    [
        (0.10, 0.10, False),
        (0.149, 0.10, False),
        (0.15, 0.10, True),
        (0.9, 0.10, True),
        (0.05, 1 / 35, True),
        (0.04, 1 / 35, False),
    ],
)
def test_learned_is_accuracy_at_least_one_and_a_half_times_chance(accuracy, chance, expected):
    assert LEARNED_FACTOR == 1.5
    assert learned(accuracy, chance) is expected
    assert (learning_note(accuracy, chance) is None) is expected


def test_a_nan_accuracy_has_not_learned():
    assert not learned(float("nan"), 0.1)


def test_the_note_says_the_maps_say_nothing():
    note = learning_note(0.11, 0.1)
    assert "has not learned" in note and "say nothing" in note and "0.110" in note


def test_a_vision_result_at_chance_carries_the_note_and_the_cli_prints_it_first(tmp_cache):
    cfg = VisionConfig.from_preset(
        "quick", train={"epochs": 1}, canvas=32, foreground_size=8, train_size=40, val_size=20
    )
    result = run_vision(cfg, VisionEvalConfig.for_preset("quick", ("saliency",), samples=4, gallery=1), cache=tmp_cache)
    at_chance = dataclasses.replace(result, accuracy=result.chance_accuracy)
    assert at_chance.learned is False and at_chance.learning_note
    out = at_chance.summary()
    assert out["learned"] is False and out["learning_note"] == at_chance.learning_note
    assert render_vision(out).splitlines()[0].startswith("WARNING: This model has not learned")
    good = dataclasses.replace(result, accuracy=0.9).summary()
    assert good["learned"] is True and good["learning_note"] is None
    assert not render_vision(good).startswith("WARNING")


_AUDIO_OUT = {  # an audio run's summary at chance, as the CLI renders it
    "setting": "RBFP",
    "model": "tcn",
    "preset": "quick",
    "channels": 10,
    "classes": 10,
    "n_train": 100,
    "accuracy": 0.1,
    "class_chance": 0.1,
    "cached": False,
    "device": "cpu",
    "seconds": 1.0,
    "channel_fprec": {},
    "chance": 0.1,
    "voiced_share": 0.5,
}


def test_the_audio_cli_prints_the_note_first():
    out = {**_AUDIO_OUT, "learning_note": learning_note(0.1, 0.1)}
    assert render_audio(out).splitlines()[0].startswith("WARNING: This model has not learned")
    assert not render_audio({**out, "learning_note": None}).startswith("WARNING")


def test_the_audio_cli_names_the_preset_a_model_needs():
    from chaosmining.experiments.audio import preset_note

    out = {**_AUDIO_OUT, "learning_note": None, "preset_note": preset_note("rnn", "quick"), "model": "rnn"}
    first = render_audio(out).splitlines()[0]
    assert first.startswith("WARNING: The RNN") and "'Sequence models" in first
    assert preset_note("rnn", "sequence") is None and preset_note("tcn", "quick") is None


def _page_with_a_result(learned_: bool) -> None:
    import streamlit as st

    from chaosmining.experiments.common import learning_note as note_of
    from ui.common import learning_warning

    class Result:
        learning_note = None if learned_ else note_of(0.1, 0.1)

    learning_warning(Result())
    st.markdown("the maps")


@pytest.mark.parametrize("learned_", [False, True])
def test_the_page_warns_before_the_maps(learned_):
    at = AppTest.from_function(_page_with_a_result, args=(learned_,)).run()
    assert not at.exception
    assert bool(at.warning) is not learned_
    if not learned_:
        assert "has not learned" in at.warning[0].value and "say nothing" in at.warning[0].value
        first = list(at.main.children.values())[0]
        assert first.type == "warning" and first.value == at.warning[0].value, "the warning comes before the map"


def test_the_audio_page_names_the_preset_each_model_needs():
    from chaosmining.experiments.audio import PRESETS, preset_note
    from chaosmining.models.audio import AUDIO_MODELS

    for name, spec in AUDIO_MODELS.items():
        assert spec.learns_in, name
        for preset in PRESETS.names():
            note = preset_note(name, preset)
            assert (note is None) is (preset in spec.learns_in)
            if note:
                assert all(PRESETS.get(p).display_name in note for p in spec.learns_in)


def test_every_audio_model_learns_in_a_cpu_preset():
    # The registry's claims (issue 15): each model names presets that exist, at least one of them meant for a
    # CPU, and the note sends a model to that CPU preset rather than to the GPU one.
    from chaosmining.experiments.audio import PRESETS, cpu_presets, preset_note
    from chaosmining.models.audio import AUDIO_MODELS

    assert PRESETS.get("paper").gpu and not PRESETS.get("sequence").gpu
    for name, spec in AUDIO_MODELS.items():
        assert set(spec.learns_in) <= set(PRESETS.names()), name
        assert cpu_presets(name), f"{name} learns in no CPU preset"
        assert "paper" in spec.learns_in, name  # paper scale stays for GPUs
        for preset in PRESETS.names():
            note = preset_note(name, preset)
            if note:
                assert "meant for a GPU" not in note
                assert PRESETS.get(cpu_presets(name)[0]).display_name in note
    for name in ("rnn", "lstm", "transformer"):
        assert "sequence" in cpu_presets(name)
        assert "Sequence models" in preset_note(name, "demo")


def test_a_model_that_learns_only_at_paper_scale_is_sent_to_the_gpu(monkeypatch):
    import dataclasses

    from chaosmining.experiments.audio import cpu_presets, preset_note
    from chaosmining.models import audio as models

    spec = models.AUDIO_MODELS.get("lstm")
    monkeypatch.setitem(models.AUDIO_MODELS._entries, "lstm", dataclasses.replace(spec, learns_in=("paper",)))
    assert cpu_presets("lstm") == []
    assert "meant for a GPU" in preset_note("lstm", "sequence")
