"""``audio`` command: one speech channel among background channels, sequence models, channel scores.

``python -m chaosmining audio --background random|structured --position fixed|random
--model rnn|lstm|tcn|transformer --preset smoke|quick|demo|paper [--data-root PATH] [--methods ...]
[--seed S] [--json]`` prints one JSON object with ``accuracy``, ``channel_fprec`` (by method),
``chance``, ``seconds`` and ``cached`` (with ``--json``; a table otherwise). Progress goes to stderr
(``--quiet``: none).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from ..data.audio import SOURCES, WORD_SETS, find_published, find_speech_commands, setting_code
from ..errors import ConfigError, DataError
from ..experiments.audio import (
    AUDIO_DEFAULT_METHODS,
    PRESETS,
    AudioConfig,
    AudioEvalConfig,
    AudioResult,
    preset_note,
)
from ..export import write_bundle
from ..models.audio import AUDIO_MODELS
from .base import (
    COMMANDS,
    Command,
    cache_from_args,
    comma_list,
    model_rerun,
    parse_method_params,
    through_executor,
)
from .progress import progress

__all__ = ["config_from_args", "eval_from_args", "detect_source"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--background", choices=("random", "structured"), default="random")
    p.add_argument("--position", choices=("fixed", "random"), default="fixed", help="speech in channel 0 or anywhere")
    p.add_argument("--model", choices=AUDIO_MODELS.names(), default="tcn")
    p.add_argument("--preset", choices=PRESETS.names(), default="demo")
    p.add_argument(
        "--data-root",
        default=None,
        help="a local Speech Commands v0.02 folder or the published ChaosMining audio layout (detected)",
    )
    p.add_argument("--source", choices=SOURCES.names(), default=None, help="where the words come from (default espeak)")
    p.add_argument("--rfcx-root", default=None, help="a folder of RFCx .flac recordings for structured backgrounds")
    p.add_argument("--channels", type=int, default=None, help="channels per clip, speech included (paper: 10)")
    p.add_argument("--words", choices=list(WORD_SETS), default=None, help="all 35 words or the 10 core commands")
    p.add_argument(
        "--fresh-backgrounds",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="new background channels every epoch (default: the preset's; the paper's data set is fixed)",
    )
    p.add_argument("--train-per-class", type=int, default=None)
    p.add_argument("--test-per-class", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="default: the paper's (1e-3; Transformer 1e-4)")
    p.add_argument("--methods", type=comma_list, default=list(AUDIO_DEFAULT_METHODS), help="comma-separated")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="METHOD.NAME=VALUE",
        help="a method parameter, e.g. integrated_gradients.steps=50",
    )
    p.add_argument("--eval-samples", type=int, default=None, help="test clips to attribute (0 = all)")
    p.add_argument("--examples", type=int, default=None, help="clips whose waveforms are kept for figures")
    p.add_argument("--loader-workers", type=int, default=None, help="processes composing batches (default 0 on CPU)")
    p.add_argument("--seed", type=int, default=0)


def detect_source(data_root: str, background: str, position: str) -> str:
    """'published' or 'speech_commands' for what ``data_root`` holds, else a :class:`ConfigError`."""
    for source, find in (
        ("published", lambda: find_published(data_root, setting_code(background, position))),
        ("speech_commands", lambda: find_speech_commands(data_root)),
    ):
        try:
            find()
            return source
        except DataError:
            continue
    raise ConfigError(
        f"The '--data-root' argument must be a folder holding Speech Commands v0.02 (word folders and "
        f"validation_list.txt) or the published ChaosMining audio layout ({setting_code(background, position)}/"
        f"train/metadata.csv). Got {data_root!r} instead."
    )


def config_from_args(a: argparse.Namespace) -> AudioConfig:
    source = a.source
    if a.data_root and source is None:
        source = detect_source(a.data_root, a.background, a.position)
    return AudioConfig.from_preset(
        a.preset,
        model=a.model,
        seed=a.seed,
        train={"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr},
        background=a.background,
        position=a.position,
        source=source,
        data_root=a.data_root,
        structured_source="rfcx" if a.rfcx_root else None,
        rfcx_root=a.rfcx_root,
        channels=a.channels,
        words=a.words,
        fresh_backgrounds=a.fresh_backgrounds,
        train_per_class=a.train_per_class,
        test_per_class=a.test_per_class,
    )


def eval_from_args(a: argparse.Namespace) -> AudioEvalConfig:
    kw = {k: v for k, v in (("samples", a.eval_samples), ("examples", a.examples)) if v is not None}
    return AudioEvalConfig.for_preset(a.preset, a.methods, params=parse_method_params(a.param), **kw)


def _export(result: AudioResult, a: argparse.Namespace) -> None:
    from ..viz import audio_figures

    write_bundle(
        a.export,
        audio_figures(result),
        result.bundle(),
        {"scores": pd.DataFrame(result.scores_table())},
        a.export_formats,
        extra_files=result.sample_wavs(0),
    )


def _run(a: argparse.Namespace) -> dict[str, Any]:
    config, ev = config_from_args(a), eval_from_args(a)
    note = preset_note(config.model.arch, config.preset)
    if note and not getattr(a, "quiet", False):  # before minutes of training; repeated in the result
        print(f"WARNING: {note}", file=sys.stderr)
    with progress(a) as report:
        result = through_executor("audio", a)(config, ev, cache=cache_from_args(a), device=a.device, report=report)
    if a.export:
        _export(result, a)
    return result.summary()


_rerun = model_rerun("audio", "channel_fprec", _export)


def _render(out: dict[str, Any]) -> str:
    lines = [f"WARNING: {out[k]}" for k in ("learning_note", "preset_note") if out.get(k)]
    lines += [
        f"{out['setting']} {out['model']} ({out['preset']}): {out['channels']} channels, {out['classes']} words, "
        f"{out['n_train']} training clips",
        f"accuracy {out['accuracy']:.3f} (chance {out['class_chance']:.3f})   "
        f"({'cached' if out['cached'] else 'trained'} on {out['device']}, {out['seconds']:.1f} s)",
        f"{'method':<24}{'channel FPrec':>14}{'top-1 hit':>11}{'time share':>12}{'s/clip':>9}",
    ]
    for m, f in out["channel_fprec"].items():
        lines.append(
            f"{m:<24}{f:>9.3f} ±{out['channel_fprec_std'][m]:.2f}{out['top1_hit'][m]:>11.3f}"
            f"{out['time_share'][m]:>12.3f}{out['seconds_per_clip'][m]:>9.3f}"
        )
    lines += [f"{m:<24}{'n/a':>9}  {reason}" for m, reason in out.get("unavailable", {}).items()]
    lines.append(
        f"chance (1/channels): {out['chance']:.3f}; the word covers {out['voiced_share']:.0%} of the speech channel"
    )
    lines += [f"note: {n}" for n in out.get("notes", [])]
    for m, ws in out.get("warnings", {}).items():
        lines += [f"note ({m}): {w}" for w in ws]
    return "\n".join(lines)


COMMANDS.register(
    "audio",
    Command(
        "audio",
        "Train (or load) a sequence model on clips with one speech channel among background channels and score "
        "how much of each method's attribution lands on the speech channel.",
        _add_arguments,
        _run,
        _render,
        _rerun,
    ),
)
