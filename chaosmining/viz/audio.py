"""Figures of the audio modality: channel importance, channel FPrec, waveforms with the attribution
shaded over time, linear and log-mel spectrograms, the attribution over time, training curves and the background what-if."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import librosa
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..metrics import chance_level
from .common import FLOOR_COLOR, OTHER_COLOR, RELEVANT_COLOR, method_color, method_label, reference_line
from .common import layout as _layout
from .common import rgba as _rgba

if TYPE_CHECKING:  # pragma: no cover
    from ..experiments.audio import AudioResult

__all__ = [
    "channel_importance_bars",
    "channel_fprec_bars",
    "waveforms_figure",
    "spectrogram_figure",
    "mel_spectrogram_figure",
    "log_mel_db",
    "attribution_over_time",
    "audio_training_curves",
    "background_whatif",
    "audio_figures",
    "spectrogram_db",
]

SAMPLE_RATE = 16_000
_BG_COLORS = {"random": "#4c78a8", "structured": "#59a14f"}


def _fixed(result: AudioResult) -> bool:
    pos = result.arrays["positions"]
    return bool(len(pos)) and bool((pos == pos[0]).all())


def channel_importance_bars(result: AudioResult, example: int | None = None) -> go.Figure:
    """Mean channel importance per method, the speech channel highlighted, the chance line 1/C.

    With the speech channel in a fixed place, bars are the channels themselves. With random positions
    each clip is re-ordered as "speech channel, then the other channels from most to least important",
    so the first bar shows the speech channel's share and the others show the strongest distractors.
    With ``example``, the bars are that one clip's channels.
    """
    c = result.channels
    fig = go.Figure()
    speech_at = 0
    if example is not None:
        speech_at = int(result.arrays["positions"][example])
        labels = [f"ch {i}" + (" (speech)" if i == speech_at else "") for i in range(c)]
        title = f"Channel importance of test clip {example} (the word '{result.example(example)['word']}')"
    elif _fixed(result):
        speech_at = int(result.arrays["positions"][0])
        labels = [f"ch {i}" + (" (speech)" if i == speech_at else "") for i in range(c)]
        title = f"Channel importance per method, mean over {result.n_eval} test clips"
    else:
        labels = ["speech"] + [f"other #{i}" for i in range(1, c)]
        title = f"Speech channel vs the other channels ranked by importance, mean over {result.n_eval} clips"
    for m in result.scores:
        imp = result.arrays[f"importance_{m}"].astype(np.float64)
        if example is not None:
            y = imp[example]
        elif _fixed(result):
            y = imp.mean(axis=0)
        else:
            pos = result.arrays["positions"]
            speech = imp[np.arange(len(imp)), pos]
            others = np.sort(np.where(np.eye(c, dtype=bool)[pos], -np.inf, imp), axis=1)[:, ::-1][:, : c - 1]
            y = np.concatenate([[speech.mean()], others.mean(axis=0)])
        fig.add_bar(x=labels, y=y, name=method_label(m), marker_color=method_color(m))
    fig.add_vrect(
        x0=speech_at - 0.5,
        x1=speech_at + 0.5,
        fillcolor=_rgba(RELEVANT_COLOR, 0.12),
        line_width=0,
        annotation_text="speech channel",
        annotation_position="top left",
    )
    reference_line(fig, chance_level("channel_fprec", channels=c), f"chance 1/{c}")
    return _layout(
        fig,
        title,
        barmode="group",
        yaxis=dict(title="share of |attribution|", rangemode="tozero"),
        legend=dict(orientation="h", y=-0.25),
    )


def channel_fprec_bars(result: AudioResult) -> go.Figure:
    """Channel FPrec per method (mean with a 95% interval over clips), top-1 hit rate, chance 1/C."""
    methods = list(result.scores)
    n = max(1, result.n_eval)
    fp = [result.scores[m].channel_fprec for m in methods]
    ci = [1.96 * result.scores[m].channel_fprec_std / np.sqrt(n) for m in methods]
    labels = [method_label(m) for m in methods]
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=fp,
        error_y=dict(type="data", array=ci, visible=True),
        marker_color=[method_color(m) for m in methods],
        text=[f"{v:.3f}" for v in fp],
        textposition="outside",
        name="channel FPrec",
    )
    fig.add_scatter(
        x=labels,
        y=[result.scores[m].top1_hit for m in methods],
        mode="markers",
        marker=dict(symbol="diamond", size=12, color="#000"),
        name="top-1 hit rate",
    )
    reference_line(fig, result.chance, f"chance {result.chance:.2f}")
    return _layout(
        fig,
        "Channel FPrec (speech channel's share) and top-1 hit rate",
        yaxis=dict(range=[0, 1.1], title="score"),
    )


def _minmax(wave: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = len(wave) - len(wave) % bins
    w = wave[:t].reshape(bins, -1)
    x = (np.arange(bins) + 0.5) * (t / bins) / SAMPLE_RATE
    return x, w.min(axis=1), w.max(axis=1)


def waveforms_figure(result: AudioResult, example: int = 0, method: str | None = None) -> go.Figure:
    """The clip's channels stacked, each with ``method``'s |attribution| envelope shaded over time."""
    ex = result.example(example)
    waves, c = ex["waves"], result.channels
    method = method or next(iter(result.scores))
    env = result.arrays.get(f"envelope_{method}")
    fig = make_subplots(rows=c, cols=1, shared_xaxes=True, vertical_spacing=0.01)
    color = method_color(method)
    for ch in range(c):
        is_speech = ch == ex["channel"]
        if env is not None:
            e = env[example, ch]
            tx = (np.arange(len(e)) + 0.5) / len(e)
            fig.add_scatter(
                x=np.concatenate([tx, tx[::-1]]),
                y=np.concatenate([e, -e[::-1]]),
                fill="toself",
                fillcolor=_rgba(color, 0.35),
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=ch == 0,
                name=f"|attribution| ({method_label(method)})",
                row=ch + 1,
                col=1,
            )
        x, lo, hi = _minmax(waves[ch], 800)
        fig.add_scatter(
            x=np.repeat(x, 2),
            y=np.column_stack([lo, hi]).ravel(),
            mode="lines",
            line=dict(width=0.8, color=RELEVANT_COLOR if is_speech else OTHER_COLOR),
            name="speech" if is_speech else "background",
            showlegend=ch == 0 or is_speech,
            row=ch + 1,
            col=1,
        )
        fig.update_yaxes(
            range=[-1.05, 1.05],
            showticklabels=False,
            title=dict(
                text=f"{ch}{'*' if is_speech else ''}", font=dict(color=RELEVANT_COLOR if is_speech else "#444")
            ),
            row=ch + 1,
            col=1,
        )
    fig.update_xaxes(title="time (s)", row=c, col=1)
    title = (
        f"Clip {example}: '{ex['word']}' in channel {ex['channel']} (predicted '{ex['predicted']}'); "
        f"shaded: {method_label(method)}"
    )
    height = max(380, 70 * c)
    return _layout(
        fig,
        title,
        height=height,
        margin=dict(l=60, r=20, t=60, b=95),
        legend=dict(orientation="h", yanchor="top", y=-60 / height),
    )


def spectrogram_db(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB (torchaudio transforms): ``(freqs_hz, times_s, db (freqs, frames))``."""
    import torch
    import torchaudio

    spec = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=hop, power=2.0)(torch.as_tensor(wave).float())
    db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)(spec).numpy()
    freqs = np.linspace(0, SAMPLE_RATE / 2, db.shape[0])
    times = np.arange(db.shape[1]) * hop / SAMPLE_RATE
    return freqs, times, db


def log_mel_db(
    wave: np.ndarray, n_mels: int = 64, n_fft: int = 512, hop: int = 128
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-mel spectrogram (librosa): ``(band_centres_hz (n_mels,), times_s, db (n_mels, frames))``.

    Power mel spectrogram (Slaney mel scale and norm, librosa's defaults) in dB relative to its peak,
    floored 80 dB below it. A 1 kHz tone peaks in the band whose centre is nearest 1 kHz.

    References
    ----------
    McFee et al., "librosa: Audio and Music Signal Analysis in Python", SciPy 2015.
    """
    mel = librosa.feature.melspectrogram(
        y=np.asarray(wave, dtype=np.float32), sr=SAMPLE_RATE, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0
    )
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    centres = librosa.mel_frequencies(n_mels=n_mels + 2, fmax=SAMPLE_RATE / 2)[1:-1]
    times = np.arange(db.shape[1]) * hop / SAMPLE_RATE
    return centres, times, db


def _with_attribution(
    result: AudioResult, example: int, channel: int, method: str, fig: go.Figure, y_title: str, what: str
) -> go.Figure:
    """Overlay ``method``'s |attribution| over time on a spectrogram heatmap (secondary y axis)."""
    ex = result.example(example)
    env = result.arrays.get(f"envelope_{method}")
    if env is not None:
        e = env[example, channel]
        fig.add_scatter(
            x=(np.arange(len(e)) + 0.5) / len(e),
            y=e,
            mode="lines",
            line=dict(color="#00e5ff", width=1.5),
            name=f"|attribution| ({method_label(method)})",
            secondary_y=True,
        )
    fig.update_yaxes(title=y_title, secondary_y=False)
    fig.update_yaxes(title="relative |attribution|", range=[0, 1.05], secondary_y=True, showgrid=False)
    fig.update_xaxes(title="time (s)")
    kind = "speech" if channel == ex["channel"] else "background"
    return _layout(
        fig,
        f"{what} of channel {channel} ({kind}) of clip {example}",
        legend=dict(orientation="h", y=-0.2),
        margin=dict(l=60, r=70, t=60, b=50),
    )


def spectrogram_figure(
    result: AudioResult, example: int = 0, channel: int | None = None, method: str | None = None
) -> go.Figure:
    """Spectrogram of one channel of a kept clip, with ``method``'s attribution over time overlaid."""
    ex = result.example(example)
    channel = ex["channel"] if channel is None else channel
    method = method or next(iter(result.scores))
    freqs, times, db = spectrogram_db(ex["waves"][channel])
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_heatmap(x=times, y=freqs / 1000, z=db, colorscale="Magma", colorbar=dict(title="dB", x=1.08), name="power")
    return _with_attribution(result, example, channel, method, fig, "frequency (kHz)", "Spectrogram")


def mel_spectrogram_figure(
    result: AudioResult, example: int = 0, channel: int | None = None, method: str | None = None, n_mels: int = 64
) -> go.Figure:
    """Log-mel spectrogram (:func:`log_mel_db`) of one channel of a kept clip, ``method``'s attribution over time
    overlaid: the speech formants get as many rows as the rest of the band, as a listener hears them."""
    ex = result.example(example)
    channel = ex["channel"] if channel is None else channel
    method = method or next(iter(result.scores))
    centres, times, db = log_mel_db(ex["waves"][channel], n_mels=n_mels)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_heatmap(
        x=times,
        y=np.arange(n_mels),
        z=db,
        colorscale="Magma",
        colorbar=dict(title="dB re max", x=1.08),
        name="mel power",
        customdata=np.repeat(centres[:, None] / 1000, len(times), axis=1),
        hovertemplate="t %{x:.3f} s<br>mel band %{y} (%{customdata:.2f} kHz)<br>%{z:.1f} dB<extra></extra>",
    )
    ticks = np.linspace(0, n_mels - 1, 6).round().astype(int)
    fig.update_yaxes(tickvals=ticks, ticktext=[f"{centres[i] / 1000:.1f}" for i in ticks], secondary_y=False)
    return _with_attribution(result, example, channel, method, fig, "mel band centre (kHz)", "Log-mel spectrogram")


def attribution_over_time(result: AudioResult) -> go.Figure:
    """Within the speech channel: each method's share of |attribution| per 10-ms bin (mean over clips),
    beside where the word's energy is."""
    fig = go.Figure()
    speech = result.arrays["speech_time"].mean(axis=0)
    t = (np.arange(len(speech)) + 0.5) / len(speech)
    fig.add_scatter(
        x=t, y=speech, mode="lines", line=dict(color="#000", dash="dot"), fill="tozeroy", name="word energy (share)"
    )
    for m in result.scores:
        prof = result.arrays[f"time_{m}"].mean(axis=0)
        fig.add_scatter(x=t, y=prof, mode="lines", line=dict(color=method_color(m)), name=method_label(m))
    return _layout(
        fig,
        "Attribution over time in the speech channel",
        xaxis=dict(title="time (s)"),
        yaxis=dict(title="share per 10-ms bin", rangemode="tozero"),
    )


def audio_training_curves(result: AudioResult) -> go.Figure:
    """Training loss and train/test accuracy per epoch, with chance accuracy."""
    h = result.history
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(x=h["epoch"], y=h["loss"], mode="lines+markers", name="training loss", line=dict(color="#555"))
    fig.add_scatter(x=h["epoch"], y=h["train_accuracy"], mode="lines+markers", name="train accuracy", secondary_y=True)
    fig.add_scatter(
        x=h["epoch"],
        y=h["test_accuracy"],
        mode="lines+markers",
        name="test accuracy",
        line=dict(color=RELEVANT_COLOR),
        secondary_y=True,
    )
    fig.add_hline(
        y=result.class_chance,
        line_dash="dash",
        line_color=FLOOR_COLOR,
        secondary_y=True,
        annotation_text=f"chance 1/{len(result.words)}",
    )
    fig.update_yaxes(title="loss", secondary_y=False)
    fig.update_yaxes(title="accuracy", range=[0, 1], secondary_y=True)
    fig.update_xaxes(title="epoch")
    return _layout(
        fig,
        f"Training ({result.train_seconds:.0f} s on {result.device})",
        margin=dict(l=60, r=70, t=60, b=50),
        legend=dict(orientation="h", y=-0.25),
    )


def background_whatif(results: Mapping[str, AudioResult]) -> go.Figure:
    """Accuracy and channel FPrec per method for each background (keys 'random' / 'structured')."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.25, 0.75], subplot_titles=("accuracy", "channel FPrec"))
    methods: list[str] = []
    for r in results.values():
        methods += [m for m in r.scores if m not in methods]
    for bg, r in results.items():
        color = _BG_COLORS.get(bg, "#888")
        fig.add_bar(x=[bg], y=[r.accuracy], marker_color=color, name=bg, legendgroup=bg, showlegend=False, row=1, col=1)
        n = max(1, r.n_eval)
        fig.add_bar(
            x=[method_label(m) for m in methods],
            y=[r.scores[m].channel_fprec if m in r.scores else None for m in methods],
            error_y=dict(
                type="data",
                array=[1.96 * r.scores[m].channel_fprec_std / np.sqrt(n) if m in r.scores else 0 for m in methods],
                visible=True,
            ),
            marker_color=color,
            name=f"{bg} background",
            legendgroup=bg,
            row=1,
            col=2,
        )
    any_r = next(iter(results.values()))
    fig.add_hline(y=any_r.class_chance, line_dash="dash", line_color=FLOOR_COLOR, row=1, col=1)
    reference_line(fig, any_r.chance, f"chance {any_r.chance:.2f}", row=1, col=2)
    fig.update_yaxes(range=[0, 1.05])
    return _layout(fig, "What-if: random vs structured background", barmode="group")


def audio_figures(result: AudioResult, example: int = 0, method: str | None = None) -> dict[str, go.Figure]:
    """Every figure of an audio result, keyed by a file-friendly name (used by exports)."""
    method = method or next(iter(result.scores))
    figs = {
        "channel_importance": channel_importance_bars(result),
        "channel_fprec": channel_fprec_bars(result),
        "attribution_over_time": attribution_over_time(result),
        "training": audio_training_curves(result),
    }
    if len(result.arrays.get("examples", ())) > example:
        ex = result.example(example)
        figs[f"clip{example}_channel_importance"] = channel_importance_bars(result, example)
        figs[f"clip{example}_waveforms_{method}"] = waveforms_figure(result, example, method)
        figs[f"clip{example}_spectrogram_ch{ex['channel']}_{method}"] = spectrogram_figure(
            result, example, None, method
        )
        figs[f"clip{example}_logmel_ch{ex['channel']}_{method}"] = mel_spectrogram_figure(result, example, None, method)
    return figs
