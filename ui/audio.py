"""Cached wrappers and job submission for the Audio page (kept out of ``pages/``)."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from chaosmining.attribution import METHODS
from chaosmining.data.audio import wav_bytes
from chaosmining.data.speech import ENGINES, resolve_engine
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.audio import (
    MODEL_KIND,
    RESULT_KIND,
    AudioConfig,
    AudioEvalConfig,
    AudioResult,
    background_counterpart,
    result_key,
    run_audio,
)
from ui.common import get_cache, jobs

__all__ = [
    "cached_result",
    "model_cached",
    "job_key",
    "submit_run",
    "engine_note",
    "channel_wav",
    "reading",
    "counterpart",
]


@st.cache_resource(max_entries=32, show_spinner=False)
def _load(key: str, config_json: str, eval_json: str) -> AudioResult:
    return run_audio(
        AudioConfig.from_dict(json.loads(config_json)),
        AudioEvalConfig.from_dict(json.loads(eval_json)),
        cache=get_cache(),
    )


def cached_result(config: AudioConfig, ev: AudioEvalConfig) -> AudioResult | None:
    """The result if the cache (or the shipped assets) hold it, loaded once per server process; else ``None``."""
    key = result_key(config, ev)
    if not get_cache().has(RESULT_KIND, key):
        return None
    try:
        return _load(key, json.dumps(config.to_dict()), json.dumps(ev.to_dict()))
    except ChaosMiningError as exc:
        st.error(str(exc))
        return None


def model_cached(config: AudioConfig) -> bool:
    return get_cache().has(MODEL_KIND, config.config_hash)


def job_key(config: AudioConfig, ev: AudioEvalConfig) -> str:
    return f"audio:{result_key(config, ev)}"


def submit_run(config: AudioConfig, ev: AudioEvalConfig, device: str, widgets: dict[str, Any]) -> None:
    """Train and evaluate ``config`` in a background job (deduplicated by its cache key)."""
    cache = get_cache()

    def work(ctx: Any) -> AudioResult:
        return run_audio(config, ev, cache=cache, device=device, report=ctx.report, should_stop=ctx.should_stop)

    key = job_key(config, ev)
    jobs().submit(
        key,
        work,
        kind="audio",
        description=f"{config.model.arch} on {config.data.setting}, {config.preset} preset, seed {config.seed}",
        payload={"epochs": config.train.epochs, "widgets": widgets},
    )
    mine = st.session_state.setdefault("aud_jobs", [])
    if key not in mine:
        mine.append(key)


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
