"""Cached wrappers and job submission for the Audio page (kept out of ``pages/``)."""

from __future__ import annotations

import streamlit as st

from chaosmining.attribution import METHODS
from chaosmining.data.audio import wav_bytes
from chaosmining.data.speech import ENGINES, resolve_engine
from chaosmining.experiments.audio import MODEL_KIND, AudioConfig, AudioResult, background_counterpart, result_key
from ui.common import PageRuns

__all__ = [
    "cached_result",
    "model_cached",
    "job_key",
    "engine_note",
    "channel_wav",
    "reading",
    "counterpart",
]


RUNS = PageRuns("audio", "aud_", MODEL_KIND)
cached_result = RUNS.cached_result
job_key = RUNS.job_key

model_cached = RUNS.model_cached


@st.cache_data(show_spinner=False)
def engine_note(source: str) -> str | None:
    """Why a requested speech engine falls back to formant pseudo-words here, or ``None``."""
    return resolve_engine(source)[1] if source in ENGINES else None


@st.cache_data(max_entries=256, show_spinner=False)
def _wav(key: str, example: int, channel: int, _result: AudioResult) -> bytes:
    return wav_bytes(_result.example(example)["waves"][channel])


def channel_wav(result: AudioResult, example: int, channel: int) -> bytes:
    """A 16-bit WAV of one channel of a kept clip (written with soundfile), cached per clip and channel."""
    return _wav(result_key(result.config, result.eval), example, channel, result)


def counterpart(config: AudioConfig) -> AudioConfig:
    return background_counterpart(config)


def reading(result: AudioResult) -> str:
    """A plain-language reading of the scores."""
    ranked = sorted(
        ((s.channel_fprec, m) for m, s in result.scores.items() if not METHODS.get(m).is_control), reverse=True
    )
    if not ranked:
        return ""
    best_fp, best = ranked[0]
    c = result.channels
    text = (
        f"**Reading.** The {result.config.model.arch.upper()} names the spoken word in {result.accuracy:.0%} of the "
        f"{result.n_test} test clips (chance {result.class_chance:.0%}). With {c} channels, an attribution that ignored "
        f"the channels would put {1 / c:.0%} of its mass on the speech channel; **{METHODS.get(best).display_name}** "
        f"puts {best_fp:.0%} there on average and ranks it first in {result.scores[best].top1_hit:.0%} of the clips."
    )
    if result.accuracy < result.class_chance + 0.1:
        text += (
            " The model is close to chance, and the paper finds attribution quality tracks the model's accuracy: "
            "train on more clips (the demo or paper preset) before reading much into the channel scores."
        )
    return text
