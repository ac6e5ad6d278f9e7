"""Audio: a spoken word in one of ten channels, sequence models, channel-importance bars."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from chaosmining import viz
from chaosmining.attribution import METHODS
from chaosmining.data.audio import SOURCES, WORD_SETS, AudioDataConfig
from chaosmining.errors import ChaosMiningError
from chaosmining.experiments.audio import (
    AUDIO_DEFAULT_METHODS,
    AUDIO_PARAM_DEFAULTS,
    PRESETS,
    AudioConfig,
    AudioEvalConfig,
    audio_methods,
    preset_note,
    result_key,
)
from chaosmining.models.audio import AUDIO_MODELS
from chaosmining.sandbox import resolve_user_folder, roots_text
from ui import links
from ui.audio import (
    RUNS,
    cached_result,
    channel_wav,
    counterpart,
    engine_note,
    job_key,
    model_cached,
    reading,
)
from ui.common import (
    export_section,
    fmt,
    init_defaults,
    job_notice,
    jobs,
    learning_warning,
    method_params_widgets,
    persist,
    result_or_run,
    setup_page,
    show_job,
    widget_state,
)

setup_page("Audio", ":material/graphic_eq:")
persist("aud_")

P = "aud_"
D = AudioDataConfig()
TABS = ["Channels", "Listen and look", "What-if: background", "Export"]
LINK = {  # the settings a shared link carries (ui/links.py), with the widgets' bounds and choices
    "background": links.one_of(["random", "structured"]),
    "position": links.one_of(["fixed", "random"]),
    "source": links.one_of(SOURCES.names),
    "data_root": links.path(),
    "structured_source": links.one_of(["soundscape", "rfcx"], name="recordings"),
    "rfcx_root": links.path(),
    "channels": links.integer(2, 64),
    "words": links.one_of(lambda: list(WORD_SETS)),
    "model": links.one_of(AUDIO_MODELS.names),
    "preset": links.one_of(PRESETS.names),
    "device": links.one_of(["auto", "cpu", "cuda"]),
    "methods": links.some_of(audio_methods),
    **links.method_param_fields(audio_methods()),
    "seed": links.integer(0, 2**31 - 1),
    "tab": links.tab(TABS),
}


def _apply_preset() -> None:
    st.session_state[P + "words"] = PRESETS.get(st.session_state[P + "preset"]).words


def _reset() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


st.title("Audio")
st.caption(
    "Paper section 3.3: ten channels of one second at 16 kHz; one channel holds a spoken command word, the others "
    "background noise (Gaussian) or structure (a rainforest soundscape). A sequence model learns the word; each "
    "attribution method should put its mass on the speech channel. Channel FPrec is the speech channel's share of "
    "|attribution|: 1/channels for a method that ignores the channels."
)

# ---- sidebar: every setting, built from the registries ------------------------------------------
init_defaults(
    {
        P + "background": D.background,
        P + "position": D.position,
        P + "source": D.source,
        P + "data_root": "",
        P + "structured_source": D.structured_source,
        P + "rfcx_root": "",
        P + "channels": D.channels,
        P + "words": PRESETS.get("demo").words,
        P + "model": "tcn",
        P + "preset": "demo",
        P + "device": "auto",
        P + "methods": list(AUDIO_DEFAULT_METHODS),
        P + "seed": 0,
    }
)
link = links.sync_query_params(P, LINK)
sb = st.sidebar
sb.header("Data")
background = sb.radio(
    "Background",
    ["random", "structured"],
    key=P + "background",
    horizontal=True,
    help="random: Gaussian noise, std 0.25, clipped to [-1, 1]. structured: a random second of a rainforest "
    "recording, divided by its 99th percentile of |x| and clipped, as the paper treats RFCx.",
)
position = sb.radio(
    "Speech channel",
    ["fixed", "random"],
    key=P + "position",
    horizontal=True,
    help="fixed: channel 0 (the paper's Table 4). random: a uniform channel per clip (the paper's models failed there).",
)
source = sb.selectbox(
    "Words from", SOURCES.names(), format_func=lambda n: SOURCES.get(n).display_name, key=P + "source"
)
data_root = ""
if SOURCES.get(source).needs_root:
    data_root = sb.text_input(
        "Data root (local folder)",
        key=P + "data_root",
        help="Speech Commands v0.02 (word folders + validation_list.txt) or the published ChaosMining audio "
        f"(<root>/<SETTING>/<split>/metadata.csv). Nothing is downloaded. A folder under the data roots: {roots_text()}.",
    )
structured_source, rfcx_root = D.structured_source, ""
if background == "structured" and source != "published":
    structured_source = sb.radio(
        "Recordings",
        ["soundscape", "rfcx"],
        format_func=lambda s: {"soundscape": "procedural rainforest", "rfcx": "RFCx FLAC folder"}[s],
        key=P + "structured_source",
        horizontal=True,
    )
    if structured_source == "rfcx":
        rfcx_root = sb.text_input(
            "RFCx folder",
            key=P + "rfcx_root",
            help=f"A folder of .flac files (train/ and test/ if split) under the data roots: {roots_text()}.",
        )
c1, c2 = sb.columns(2)
channels = c1.number_input("Channels", 2, 64, key=P + "channels", help="The speech channel included (paper: 10).")
words = c2.selectbox("Words", list(WORD_SETS), format_func=lambda w: f"{w} ({len(WORD_SETS[w])})", key=P + "words")

sb.header("Model and training")
model_name = sb.selectbox(
    "Model", AUDIO_MODELS.names(), format_func=lambda n: AUDIO_MODELS.get(n).display_name, key=P + "model"
)
preset = sb.selectbox(
    "Preset",
    PRESETS.names(),
    format_func=lambda n: PRESETS.get(n).display_name,
    key=P + "preset",
    on_change=_apply_preset,
    help="Data size, training and evaluation. Choosing one also sets the word list to its own.",
)
sb.caption(PRESETS.get(preset).description)
device = sb.selectbox("Device", ["auto", "cpu", "cuda"], key=P + "device", help="auto uses CUDA when present.")

sb.header("Attribution")
methods = sb.multiselect(
    "Methods",
    audio_methods(),
    format_func=lambda m: METHODS.get(m).display_name,
    key=P + "methods",
    help="The paper: Saliency, DeepLift, Integrated Gradients and Feature Ablation (one feature per channel). "
    "Channel scores use |attribution|, so signed and absolute Saliency agree.",
)
for m in methods:  # audio-sized defaults where the registry's suit tabular rows
    init_defaults({f"{P}_param_{m}_{k}": v for k, v in AUDIO_PARAM_DEFAULTS.get(m, {}).items()})
if "deeplift" in methods and AUDIO_MODELS.get(model_name).deeplift_note:
    sb.caption(AUDIO_MODELS.get(model_name).deeplift_note)
method_params = method_params_widgets(methods, P)
seed = sb.number_input("Seed", 0, 2**31 - 1, key=P + "seed")
sb.button("Reset to defaults", on_click=_reset, key=P + "reset_btn")

# ---- validate: bad input gets a clear message, the other settings stay ----------------------------
if not methods:
    st.error("The 'methods' setting must name at least one attribution method. Got none instead.")
    st.stop()
try:
    data_root = resolve_user_folder(data_root, parameter="data root") or ""  # only under the data roots
    rfcx_root = resolve_user_folder(rfcx_root, parameter="RFCx folder") or ""
    config = AudioConfig.from_preset(
        preset,
        model=model_name,
        seed=int(seed),
        background=background,
        position=position,
        source=source,
        data_root=data_root,
        structured_source=structured_source,
        rfcx_root=rfcx_root,
        channels=int(channels),
        words=words,
    )
    ev = AudioEvalConfig.for_preset(preset, methods, params=method_params)
except ChaosMiningError as exc:
    st.error(str(exc))
    st.stop()

word_text = (  # a published folder defines its own classes (its training metadata), not the word set
    "the words of the published set"
    if source == "published"
    else f"{len(config.data.word_list)} words from {SOURCES.get(source).display_name.lower()}"
)
st.markdown(
    f"**Setting {config.data.setting}**: {config.data.channels} channels, {word_text}, "
    f"{background} background, speech in {'channel 0' if position == 'fixed' else 'a random channel'}; "
    f"{AUDIO_MODELS.get(model_name).display_name}, preset {PRESETS.get(preset).display_name}."
)
learn_note = preset_note(model_name, preset)
if learn_note:
    st.warning(learn_note, icon=":material/warning:")
note = engine_note(source)
if note:
    st.warning(note, icon=":material/record_voice_over:")

tab_channels, tab_clip, tab_whatif, tab_export = st.tabs(TABS, key=P + "tab", on_change="rerun")


def render_progress(snap: Any) -> None:
    stage = snap.latest("stage") or "starting"
    epoch, total = snap.latest("epoch"), snap.payload.get("epochs", 1)
    done, count = snap.latest("done"), snap.latest("total")
    if stage == "training" and epoch is not None:
        loss = snap.latest("loss")
        st.progress(
            min(1.0, epoch / max(total, 1)),
            text=f"training: epoch {epoch:.1f} / {total}" + (f", loss {loss:.3f}" if loss is not None else ""),
        )
    elif done is not None and count and stage.startswith("synthesising"):
        st.progress(min(1.0, done / count), text=f"{stage}: {done} / {count}")
    else:
        st.progress(0.0, text=stage)
    accs = [e["test_accuracy"] for e in snap.events if "test_accuracy" in e]
    if accs:
        st.caption("Test accuracy by epoch: " + ", ".join(f"{a:.0%}" for a in accs))


def render_channels(result: Any) -> None:
    learning_warning(result)
    c = st.columns(5)
    c[0].metric("Accuracy", f"{result.accuracy:.1%}", help=f"chance {result.class_chance:.1%}")
    methods_only = [s for m, s in result.scores.items() if not METHODS.get(m).is_control]
    best = max(methods_only or result.scores.values(), key=lambda s: s.channel_fprec)
    c[1].metric(
        "Best channel FPrec",
        fmt(best.channel_fprec),
        help=f"{METHODS.get(best.method).display_name}; chance 1/{result.channels} = {result.chance:.3f}",
    )
    c[2].metric("Chance (1/channels)", fmt(result.chance))
    c[3].metric("Training time", f"{result.train_seconds:.0f} s", help=f"on {result.device}")
    done_job = jobs().get(job_key(result.config, result.eval))
    c[4].metric(
        "Source",
        "new" if done_job is not None and done_job.status == "done" and not done_job.cached else "cache",
        help=f"loaded in {result.seconds:.2f} s",
    )
    if result.cache_note:
        st.warning(result.cache_note)
    for n in result.notes:
        st.info(n, icon=":material/info:")
    for m, reason in getattr(result, "unavailable", {}).items():
        st.warning(f"**{METHODS.get(m).display_name} could not run on this model.** {reason}", icon=":material/block:")
    for m, s in result.scores.items():
        for w in s.warnings:
            st.info(f"{METHODS.get(m).display_name}: {w}", icon=":material/info:")
    st.markdown(reading(result))
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.channel_importance_bars(result), key="aud_importance")
    c2.plotly_chart(viz.channel_fprec_bars(result), key="aud_fprec")
    st.dataframe(pd.DataFrame(result.scores_table()).drop(columns=["method"]), hide_index=True, key="aud_table")
    st.caption(
        f"Speech-time share: the part of the speech channel's |attribution| that falls where the word is; the word "
        f"covers {result.voiced_share:.0%} of the clip (the chance level). Methods that multiply by the input (IG, "
        "DeepLift, Input x Gradient) are zero on the silent samples by construction."
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(viz.attribution_over_time(result), key="aud_time")
    c2.plotly_chart(viz.audio_training_curves(result), key="aud_training")


def render_clip(result: Any) -> None:
    learning_warning(result)
    kept = len(result.arrays.get("examples", ()))
    if not kept:
        st.info("This evaluation kept no example clips (examples = 0).")
        return
    c1, c2 = st.columns(2)
    example = c1.selectbox(
        "Test clip",
        list(range(kept)),
        format_func=lambda i: f"clip {i}: '{result.example(i)['word']}' (predicted '{result.example(i)['predicted']}')",
        key=P + "example",
    )
    method = c2.selectbox("Shade with", list(result.scores), format_func=viz.method_label, key=P + "shade_method")
    ex = result.example(example)
    st.plotly_chart(viz.waveforms_figure(result, example, method), key="aud_waves")
    st.markdown("**Listen** (the speech channel is marked):")
    cols = st.columns(min(5, result.channels))
    for ch in range(result.channels):
        with cols[ch % len(cols)]:
            st.caption(f"channel {ch}" + (" - speech" if ch == ex["channel"] else ""))
            st.audio(channel_wav(result, example, ch), format="audio/wav")
    c1, c2 = st.columns(2)
    channel = c1.selectbox(
        "Spectrogram of channel",
        list(range(result.channels)),
        index=ex["channel"],
        format_func=lambda ch: f"{ch}" + (" (speech)" if ch == ex["channel"] else ""),
        key=P + f"spec_channel_{example}",
    )
    c2.plotly_chart(viz.channel_importance_bars(result, example), key="aud_clip_importance")
    c1, c2 = st.columns(2)
    # theme=None: Streamlit's theme would replace the spectrogram's colour scale with its own
    c1.plotly_chart(viz.spectrogram_figure(result, example, int(channel), method), key="aud_spec", theme=None)
    c2.plotly_chart(viz.mel_spectrogram_figure(result, example, int(channel), method), key="aud_mel", theme=None)


with tab_channels:
    have_model = model_cached(config)
    d = config.data
    result = result_or_run(
        RUNS,
        config,
        ev,
        device,
        render_result=render_channels,
        render_progress=render_progress,
        have_model=have_model,
        plan=(
            "The trained model is cached; only the attributions need computing "
            f"({ev.samples or 'all'} test clips, {len(methods)} method(s))."
        )
        if have_model
        else (
            f"This configuration is not in the cache yet. Making the words, training the "
            f"{AUDIO_MODELS.get(model_name).display_name} for {config.train.epochs} epochs on "
            f"{'the published words' if source == 'published' else f'{len(d.word_list)} words'} x "
            f"{d.train_per_class or 'all'} clips, then attributing "
            f"{ev.samples or 'all'} test clips."
        ),
    )

with tab_clip:
    if result is not None:
        render_clip(result)
    else:
        st.info("Train this configuration first (Channels tab) to see, hear and inspect its test clips.")

with tab_whatif:
    st.markdown(
        "The same model, preset and methods with the other background. The paper (Table 4) found structured "
        "backgrounds easier than random noise for both the models and the attribution methods."
    )
    other_cfg = counterpart(config)
    other = cached_result(other_cfg, ev)
    pair = {config.data.background: result, other_cfg.data.background: other}
    ready = {bg: r for bg, r in sorted(pair.items()) if r is not None}
    okey = job_key(other_cfg, ev)
    ojob = jobs().get(okey)
    if ojob is not None and not ojob.snapshot().done:
        show_job(okey, render_progress, interval=2.0)
    elif other is None:
        job_notice(okey)
        if st.button(f"Train with the {other_cfg.data.background} background", key=P + "whatif_btn"):
            if RUNS.submit(other_cfg, ev, device, widget_state(P)) is not None:
                st.rerun()
    if ready:
        st.plotly_chart(viz.background_whatif(ready), key="aud_whatif")
        rows = []
        for bg, r in ready.items():
            row = {"background": bg, "accuracy": r.accuracy, "learned": r.learned}
            row.update({f"{METHODS.get(m).short} channel FPrec": s.channel_fprec for m, s in r.scores.items()})
            rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="aud_whatif_table")

with tab_export:
    if result is None:
        st.info(
            "Train this configuration first; its figures, numbers, a WAV and a re-runnable bundle can then be exported."
        )
    else:

        def _figures() -> dict[str, Any]:
            figs = viz.audio_figures(result)
            if len(ready) > 1:
                figs["background_whatif"] = viz.background_whatif(ready)
            return figs

        export_section(
            f"chaosmining-audio-{config.data.setting}-{config.model.arch}",
            _figures,
            result.bundle,
            lambda: {"scores": pd.DataFrame(result.scores_table())},
            key=f"aud_export_{result_key(config, ev)}",
            extra_files=lambda: result.sample_wavs(0),
        )

link.finish()
