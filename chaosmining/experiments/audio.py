"""The audio experiment end to end (paper section 3.3, Table 4, appendix A.4).

Multi-channel clips with one speech channel -> a sequence classifier trained from scratch ->
attributions for the predicted class -> per-channel scores against the known speech channel.
:func:`run_audio` is the one code path shared by the CLI, the app's jobs and the background what-if.
The trained model and the evaluation are cached separately: changing the methods re-uses the
checkpoint (and only the test words are made again, from their cached arrays).

Scores (paper section 3.3)
--------------------------
For an attribution ``a`` of shape ``(C, T)``:

* **channel importance** ``I_c = sum_t |a_{c,t}| / sum_{c', t} |a_{c',t}|``;
* **channel FPrec** = ``I`` of the speech channel, averaged over clips (chance = 1 / C);
* **top-1 hit rate** = share of clips whose most important channel is the speech channel (chance 1/C);
* **attribution over time**: within the speech channel, |a| in 10-ms bins; its **speech-time share** is
  the part of that mass falling where the word is (bins with at least 10 % of the word's peak
  energy), against the share of the clip the word covers (the chance level).

Target = the model's predicted class; baseline 0 (silence); Feature Ablation uses one feature per
channel. Attribution runs in eval mode (dropout off, BatchNorm frozen). On CUDA, cuDNN cannot
back-propagate through an RNN in eval mode, so recurrent models are attributed with cuDNN disabled.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..attribution import (
    METHODS,
    InputGeometry,
    attribute,
    channel_groups,
    method_availability,
    method_defaults,
    method_feature_mask,
    methods_for,
)
from ..cache import Cache
from ..config import ConfigBase, stable_hash, to_jsonable
from ..data.audio import AudioDataConfig, AudioSplit, load_split
from ..data.speech import CLIP_SAMPLES
from ..errors import AttributionMethodError, JobCancelled
from ..metrics import chance_level, channel_fprec_per_sample, channel_importance, top1_hits
from ..models.audio import AUDIO_MODELS, AudioModelConfig, build_audio_model
from ..registry import Registry
from ..runtime import loader_context, resolve_device
from ..trainer import Checkpoint, TrainerHooks, train_classifier
from ..validation import check_float, check_int, param_error
from .common import ClassifierRunResult
from .symbolic import EvalConfig

__all__ = [
    "AUDIO_DEFAULT_METHODS",
    "AUDIO_PARAM_DEFAULTS",
    "MODEL_KIND",
    "RESULT_KIND",
    "AudioPreset",
    "PRESETS",
    "AudioTrainConfig",
    "AudioConfig",
    "AudioEvalConfig",
    "AudioMethodScores",
    "AudioResult",
    "TrainedAudioModel",
    "audio_methods",
    "preset_note",
    "cpu_presets",
    "channel_importance",
    "channel_fprec_per_sample",
    "top1_hits",
    "time_profile",
    "fit_classifier",
    "train_audio_model",
    "evaluate_audio",
    "run_audio",
    "result_key",
    "background_counterpart",
    "rebuild_command",
]

AUDIO_DEFAULT_METHODS = ("saliency", "deeplift", "integrated_gradients", "feature_ablation")
MODEL_KIND = "audio-model"
RESULT_KIND = "audio-result"
TIME_BINS = 100  # 10-ms bins for the attribution over time
ENVELOPE_BINS = 400  # 2.5-ms bins for the waveform shading of the kept examples
AUDIO_GEOMETRY = InputGeometry("audio", channels=10, samples=CLIP_SAMPLES)
# What the method registry declares for audio (read there; kept here for the page and the tests): the
# methods that remove whole channels (the paper's FA), and the audio-sized defaults (Occlusion's 0.1-s
# windows instead of 3 samples, 160,000 forward passes per clip; KernelSHAP's ten 0.1-s segments).
CHANNEL_FEATURE_METHODS = frozenset(m for m in METHODS.names() if method_feature_mask(m, AUDIO_GEOMETRY) is not None)
AUDIO_PARAM_DEFAULTS: dict[str, dict[str, Any]] = {
    m: method_defaults(m, AUDIO_GEOMETRY)
    for m, spec in METHODS.items()
    if "audio" in spec.needs and spec.needs["audio"].defaults is not None
}


def preset_note(model: str, preset: str) -> str | None:
    """Why ``model`` will not learn in ``preset`` and which preset it needs, or None when it does.

    Read from the model registry's ``learns_in`` (measured on a 2-core CPU for the CPU presets).
    """
    spec = AUDIO_MODELS.get(model)
    if preset in spec.learns_in or preset not in PRESETS:
        return None
    needs = " or ".join(f"'{PRESETS.get(p).display_name}'" for p in spec.learns_in)
    gpu = not cpu_presets(model)
    return (
        f"The {spec.display_name} stays at chance in the '{PRESETS.get(preset).display_name}' preset (measured): it "
        f"needs the {needs} preset{', meant for a GPU' if gpu else ''}. Its channel scores here will say nothing."
    )


def cpu_presets(model: str) -> list[str]:
    """The presets not meant for a GPU in which ``model`` was measured to learn (its ``learns_in``)."""
    return [p for p in AUDIO_MODELS.get(model).learns_in if p in PRESETS and not PRESETS.get(p).gpu]


def audio_methods() -> list[str]:
    """Registered attribution methods offered for audio, in registry order."""
    return methods_for("audio")


# --- presets and configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class AudioPreset:
    """A named bundle of data size, training length and evaluation size.

    ``lr_scale`` multiplies the paper's learning rate of the architecture (1e-3; Transformer 1e-4);
    ``words`` and ``fresh_backgrounds`` are the data settings the preset starts from.
    """

    name: str
    display_name: str
    description: str
    train_per_class: int
    test_per_class: int
    epochs: int
    batch_size: int
    eval_samples: int
    examples: int = 3
    words: str = "all"
    lr_scale: float = 1.0
    fresh_backgrounds: bool = False
    model: tuple[tuple[str, Any], ...] = ()  # AudioModelConfig fields the preset sets (e.g. the front end's stride)
    gpu: bool = False  # meant for a GPU (the page and the CLI point a model to a CPU preset it learns in first)


PRESETS: Registry[AudioPreset] = Registry("audio preset")
for _p in (
    AudioPreset(
        "smoke",
        "Smoke test (seconds; stays at chance)",
        "The 35 words, 8 clips each, 3 epochs: checks the whole path in about a minute; accuracy stays at chance, "
        "so its channel scores say nothing.",
        train_per_class=8,
        test_per_class=2,
        epochs=3,
        batch_size=64,
        eval_samples=10,
        examples=2,
        fresh_backgrounds=True,
    ),
    AudioPreset(
        "quick",
        "Quick (about two minutes on a CPU)",
        "The 10 command words, 150 clips each, fresh backgrounds every epoch, 20 epochs, batch 32, 6x the paper's "
        "learning rate, and a front end with stride 32 (half the paper's time steps, twice the clips per second). "
        "Tuned for the TCN (measured: 0.6 accuracy on the random background after 8 of 12 epochs, 0.58 on the "
        "structured one after 15 of 20; about two minutes of CPU time on one core); the RNN, LSTM and Transformer "
        "stayed at chance here (0.10 after 20 epochs, seed 7): they need the sequence preset.",
        train_per_class=150,
        test_per_class=20,
        epochs=20,
        batch_size=32,
        eval_samples=40,
        examples=2,
        words="core",
        lr_scale=6.0,
        fresh_backgrounds=True,
        model=(("stride", 32),),
    ),
    AudioPreset(
        "sequence",
        "Sequence models (a few minutes on a CPU)",
        "For the RNN, LSTM and Transformer (the TCN learns here too): the quick preset's data (the 10 command words, "
        "150 clips each, fresh backgrounds every epoch), 30 epochs, batch 32, 3x the paper's learning rate (the "
        "Transformer 10x its 1e-4), a front end with stride 64 (62 time steps instead of the paper's 249), one "
        "recurrent or encoder layer instead of three, and pre-norm encoder layers for the Transformer. Measured accuracy "
        "(chance 0.10; one core, 70-110 s of CPU time per training): random background, seeds 0 / 7: RNN 0.39 / "
        "0.52, LSTM 0.34 / 0.51, Transformer 0.33 / 0.35, TCN 0.61 (seed 7); structured background, seed 7: RNN "
        "0.27, LSTM 0.18, Transformer 0.24. In probes the three-layer RNN and the post-norm Transformer stayed at "
        "chance.",
        train_per_class=150,
        test_per_class=20,
        epochs=30,
        batch_size=32,
        eval_samples=40,
        examples=2,
        words="core",
        lr_scale=3.0,
        fresh_backgrounds=True,
        model=(("stride", 64), ("layers", 1), ("norm_first", True)),
    ),
    AudioPreset(
        "demo",
        "Demo (about five minutes on a CPU)",
        "The 10 command words (yes, no, up, down, left, right, on, off, stop, go), 400 clips each, fresh backgrounds "
        "every epoch, 24 epochs, batch 32, 6x the paper's learning rate and a front end with stride 32 (half the "
        "paper's time steps; the quick preset's recipe with more clips and epochs); 100 test clips attributed. "
        "Tuned for the TCN (measured on a 2-core machine, 2 threads, seed 0 / 7: accuracy 0.95 / 0.97 on the random "
        "background, 0.81 / 0.76 on the structured one, about 4 minutes per whole run). The RNN, LSTM and "
        "Transformer stayed at chance in a former, slower demo recipe: they learn in the sequence preset, or the "
        "paper preset on a GPU.",
        train_per_class=400,
        test_per_class=30,
        epochs=24,
        batch_size=32,
        eval_samples=100,
        words="core",
        lr_scale=6.0,
        fresh_backgrounds=True,
        model=(("stride", 32),),
    ),
    AudioPreset(
        "paper",
        "Paper (GPU)",
        "The paper's size: 84,840 training and 9,975 test clips, 30 epochs, batch 128, AdamW (Transformer lr 1e-4) "
        "with one cosine cycle; 1,000 test clips attributed. Meant for a GPU.",
        train_per_class=2424,
        test_per_class=285,
        epochs=30,
        batch_size=128,
        eval_samples=1000,
        gpu=True,
    ),
):
    PRESETS.register(_p.name, _p)

_TOWNER = "AudioTrainConfig"


@dataclass(frozen=True, kw_only=True)
class AudioTrainConfig(ConfigBase):
    """How the classifier is trained: AdamW, cross-entropy, one cosine annealing cycle over the run
    (the paper's CosineAnnealingWarmRestarts with T_0 = epochs = 30), stepped every batch."""

    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        set_ = lambda n, v: object.__setattr__(self, n, v)  # noqa: E731
        set_("epochs", check_int(self.epochs, "epochs", owner=_TOWNER, low=1, high=10_000))
        set_("batch_size", check_int(self.batch_size, "batch_size", owner=_TOWNER, low=1, high=65_536))
        set_("lr", check_float(self.lr, "lr", owner=_TOWNER, low=0.0, high=10.0, low_open=True))
        set_("weight_decay", check_float(self.weight_decay, "weight_decay", owner=_TOWNER, low=0.0, high=10.0))


@dataclass(frozen=True, kw_only=True)
class AudioConfig(ConfigBase):
    """Everything that determines a trained audio model: data, architecture, training and the seed.

    Build one from a preset with :meth:`from_preset`; ``preset`` is a label (it does not enter the
    cache key, the values it set do).
    """

    data: AudioDataConfig = field(default_factory=AudioDataConfig)
    model: AudioModelConfig = field(default_factory=AudioModelConfig)
    train: AudioTrainConfig = field(default_factory=AudioTrainConfig)
    seed: int = 0
    preset: str = "demo"

    def __post_init__(self) -> None:
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner="AudioConfig", low=0, high=2**31 - 1))
        if not isinstance(self.preset, str):
            raise param_error("preset", "AudioConfig", "a str", self.preset)

    def hash_payload(self) -> dict[str, Any]:
        out = super().hash_payload()
        out.pop("preset")
        return out

    @classmethod
    def from_preset(
        cls,
        preset: str = "demo",
        *,
        model: str = "tcn",
        seed: int = 0,
        train: Mapping[str, Any] | None = None,
        **data: Any,
    ) -> AudioConfig:
        """The preset's sizes and training with ``data`` fields (background, position, channels, source,
        ...) and ``train`` fields overriding it; ``None`` values are ignored. The learning rate is the
        paper's for the architecture (1e-3; Transformer 1e-4) times the preset's ``lr_scale`` (or the
        model's own factor for this preset, ``AudioModelSpec.preset_lr_scale``) unless ``train`` sets one."""
        p = PRESETS.get(preset)
        d = {
            "train_per_class": p.train_per_class,
            "test_per_class": p.test_per_class,
            "words": p.words,
            "fresh_backgrounds": p.fresh_backgrounds,
        }
        d.update({k: v for k, v in data.items() if v is not None})
        spec = AUDIO_MODELS.get(model)
        t = {
            "epochs": p.epochs,
            "batch_size": p.batch_size,
            "lr": spec.lr * dict(spec.preset_lr_scale).get(preset, p.lr_scale),
        }
        t.update({k: v for k, v in (train or {}).items() if v is not None})
        return cls(
            data=AudioDataConfig(**d),
            model=AudioModelConfig(arch=model, **dict(p.model)),
            train=AudioTrainConfig(**t),
            seed=seed,
            preset=preset,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AudioConfig:
        return cls(
            data=AudioDataConfig(**d.get("data", {})),
            model=AudioModelConfig(**d.get("model", {})),
            train=AudioTrainConfig(**d.get("train", {})),
            seed=d.get("seed", 0),
            preset=d.get("preset", "custom"),
        )


_EOWNER = "AudioEvalConfig"


@dataclass(frozen=True, kw_only=True)
class AudioEvalConfig(EvalConfig):
    """Which methods to run on how many test clips (``samples``, 0 = all); the first ``examples`` clips
    keep their waveforms and attribution envelopes for the page. Every method's parameters are stored
    resolved (defaults filled in), so equal settings give equal cache keys however they were given."""

    methods: tuple[str, ...] = AUDIO_DEFAULT_METHODS
    samples: int = 100
    curve_samples: int = 0
    measure_memory: bool = False
    examples: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        wrong = [m for m in self.methods if "audio" not in METHODS.get(m).modalities]
        if wrong:
            raise param_error("methods", _EOWNER, f"methods that apply to audio ({audio_methods()})", wrong)
        object.__setattr__(self, "examples", check_int(self.examples, "examples", owner=_EOWNER, low=0, high=64))

    def default_geometry(self) -> InputGeometry:
        return AUDIO_GEOMETRY

    @classmethod
    def for_preset(cls, preset: str, methods: Sequence[str] = AUDIO_DEFAULT_METHODS, **kw: Any) -> AudioEvalConfig:
        p = PRESETS.get(preset)
        kw.setdefault("samples", p.eval_samples)
        kw.setdefault("examples", p.examples)
        return cls.create(methods, kw.pop("params", None), **kw)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AudioEvalConfig:
        d = {"methods": AUDIO_DEFAULT_METHODS, **d}
        return super().from_dict(d)  # type: ignore[return-value]


# --- scores --------------------------------------------------------------------------------------


def time_profile(x: np.ndarray, bins: int) -> np.ndarray:
    """Sum of ``|x|`` in ``bins`` equal windows along the last axis."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    t = x.shape[-1] - x.shape[-1] % bins
    return x[..., :t].reshape(*x.shape[:-1], bins, t // bins).sum(axis=-1)


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    s = x.sum(axis=-1, keepdims=True)
    return x / np.where(s > 0, s, 1.0)


def speech_mask(speech: np.ndarray, bins: int = TIME_BINS, rel: float = 0.1) -> np.ndarray:
    """Bins where the word is: energy at least ``rel`` x the clip's loudest bin. ``(n, T)`` -> ``(n, bins)``."""
    energy = time_profile(np.asarray(speech, dtype=np.float64) ** 2, bins)
    return energy >= rel * energy.max(axis=1, keepdims=True).clip(min=1e-12)


# --- training ------------------------------------------------------------------------------------

_BUILD_LOCK = threading.Lock()


def _new_model(config: AudioConfig, channels: int, classes: int) -> nn.Module:
    """A fresh model whose initial weights depend only on ``config.seed``.

    torch's layer initialisers draw from the global generator, so the build runs inside
    :func:`torch.random.fork_rng` (the global state is restored afterwards) under a lock.
    """
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return build_audio_model(config.model, channels, classes, CLIP_SAMPLES)


def _batches(
    split: AudioSplit, order: np.ndarray, batch_size: int, workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, indices)`` in ``order``; composed in ``workers`` processes when asked (GPU runs)."""
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if workers == 0:
        for idx in chunks:
            yield split.batch(idx), idx
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        chunks,
        batch_size=None,
        num_workers=workers,
        collate_fn=lambda idx: (split.batch(idx), idx),
        multiprocessing_context=loader_context(),
    )
    yield from loader


def _no_cudnn(device: torch.device, recurrent: bool) -> contextlib.AbstractContextManager:
    """cuDNN's RNN backward refuses eval mode; gradients of recurrent models then run without cuDNN."""
    if device.type == "cuda" and recurrent:
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def predict(
    model: nn.Module, split: AudioSplit, device: torch.device, batch_size: int = 128, limit: int = 0
) -> np.ndarray:
    """Predicted class of the first ``limit`` clips of ``split`` (all when 0), eval mode, no gradients."""
    model.eval()
    n = len(split) if limit == 0 else min(limit, len(split))
    out = np.zeros(n, dtype=np.int64)
    with torch.no_grad():
        for x, idx in _batches(split, np.arange(n), batch_size, 0):
            out[idx] = model(torch.from_numpy(x).to(device)).argmax(1).cpu().numpy()
    return out


def fit_classifier(
    model: nn.Module,
    train_split: AudioSplit,
    test_split: AudioSplit,
    train: AudioTrainConfig,
    *,
    seed: int,
    device: torch.device,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 0,
    test_limit: int = 2000,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    resume: Checkpoint | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place; return the per-epoch history (loss, train and test accuracy, seconds).

    The loop is :func:`chaosmining.trainer.train_classifier` (``checkpoint`` after every epoch,
    ``resume`` from one).

    The batch order comes from a generator seeded with ``seed``. Test accuracy on up to ``test_limit``
    clips is measured after every epoch.

    Raises
    ------
    JobCancelled when ``should_stop()`` turns true; TrainingDivergedError when the loss is not finite.
    """
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    n = len(train_split)
    steps = math.ceil(n / train.batch_size)

    def batches(epoch: int, gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(n, generator=gen).numpy()
        split = train_split.for_epoch(epoch)
        for x, idx in _batches(split, order, train.batch_size, workers):
            yield (
                torch.from_numpy(np.asarray(x)).to(device, non_blocking=True),
                torch.as_tensor(split.labels[idx]).to(device),
            )

    def validate(m: nn.Module) -> float:
        pred = predict(m, test_split, device, limit=test_limit)
        return float((pred == test_split.labels[: len(pred)]).mean()) if len(pred) else float("nan")

    history = train_classifier(
        model,
        epochs=train.epochs,
        batches=batches,
        steps_per_epoch=steps,
        loss_fn=nn.functional.cross_entropy,
        optimizer=opt,
        schedule=torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, train.epochs * steps)),
        schedule_per_batch=True,
        validate=validate,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        hooks=TrainerHooks(report=report, should_stop=should_stop, checkpoint=checkpoint, every=5),
        resume=resume,
        val_key="test_accuracy",
        diverged_hint=f"The 'lr' parameter ({train.lr:g}) is too large for this model; lower it (the paper uses "
        "1e-3, 1e-4 for the Transformer).",
    )
    return history.as_dict()


@dataclass
class TrainedAudioModel:
    """A trained classifier (eval mode) with its class names and training history."""

    model: nn.Module
    arch: str
    words: tuple[str, ...]
    channels: int
    n_train: int
    history: dict[str, list[float]]
    seconds: float
    device: str
    notes: list[str] = field(default_factory=list)


def rebuild_command(config: AudioConfig) -> str:
    """The CLI line that rebuilds ``config``'s model (flags for fields that differ from its preset)."""
    preset = config.preset if config.preset in PRESETS else "demo"
    d, t = config.data, config.train
    base = AudioConfig.from_preset(preset, model=config.model.arch)
    parts = [
        "python -m chaosmining audio",
        f"--background {d.background}",
        f"--position {d.position}",
        f"--model {config.model.arch}",
        f"--preset {preset}",
        f"--seed {config.seed}",
    ]
    flags = {
        "--channels": (d.channels, base.data.channels),
        "--source": (d.source, base.data.source),
        "--words": (d.words, base.data.words),
        "--fresh-backgrounds": (d.fresh_backgrounds, base.data.fresh_backgrounds),
        "--train-per-class": (d.train_per_class, base.data.train_per_class),
        "--test-per-class": (d.test_per_class, base.data.test_per_class),
        "--epochs": (t.epochs, base.train.epochs),
        "--batch-size": (t.batch_size, base.train.batch_size),
        "--lr": (t.lr, base.train.lr),
        "--data-root": (d.data_root, ""),
        "--rfcx-root": (d.rfcx_root, ""),
    }
    for flag, (v, default) in flags.items():
        if v != default:
            parts.append(flag if v is True else f"--no-{flag[2:]}" if v is False else f"{flag} {v}")
    return " ".join(parts)


def _load_trained(folder: Path, config: AudioConfig, device: torch.device) -> TrainedAudioModel:
    info = json.loads((folder / "model.json").read_text())
    model = _new_model(config, info["channels"], len(info["words"]))
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    model.to(device).eval()
    return TrainedAudioModel(
        model,
        config.model.arch,
        tuple(info["words"]),
        info["channels"],
        info["n_train"],
        info["history"],
        info["train_seconds"],
        info["device"],
        info["notes"],
    )


def train_audio_model(
    config: AudioConfig,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> tuple[TrainedAudioModel, bool, str | None]:
    """The trained model for ``config`` from the cache, or trained now (once) and cached.

    Returns ``(model, cached, cache_note)``. ``workers`` processes compose training batches (default:
    none on the CPU, up to 8 with a GPU, where composing would otherwise starve it).
    """
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    if workers is None:
        import os

        workers = 0 if dev.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))

    def build(folder: Path) -> dict[str, Any]:
        train_split, words, notes = load_split(config.data, "train", config.seed, cache=cache, progress=report)
        test_split, _, test_notes = load_split(config.data, "test", config.seed, cache=cache, progress=report)
        notes += [n for n in test_notes if n not in notes]
        if should_stop and should_stop():
            raise JobCancelled("Stopped by the user before training.")
        model = _new_model(config, config.data.channels, len(words))
        start = time.perf_counter()
        history = fit_classifier(
            model,
            train_split,
            test_split,
            config.train,
            seed=config.seed,
            device=dev,
            report=report,
            should_stop=should_stop,
            workers=workers,
        )
        seconds = time.perf_counter() - start
        model.to("cpu").eval()
        torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.pt")
        info = {
            "arch": config.model.arch,
            "words": list(words),
            "channels": config.data.channels,
            "n_train": len(train_split),
            "history": history,
            "train_seconds": seconds,
            "device": str(dev),
            "notes": notes,
        }
        (folder / "model.json").write_text(json.dumps(to_jsonable(info), allow_nan=True))
        return {
            "train_seconds": seconds,
            "device": str(dev),
            "final_test_accuracy": history["test_accuracy"][-1],
            "rebuild": rebuild_command(config),
        }

    outcome = cache.get_or_create(MODEL_KIND, config.config_hash, build, config=config)
    return _load_trained(outcome.entry.path, config, dev), outcome.cached, outcome.note


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioMethodScores:
    """Scores of one method over the attributed clips (means, with the standard deviation over clips)."""

    method: str
    channel_fprec: float
    channel_fprec_std: float
    top1_hit: float
    time_share: float
    time_share_std: float
    seconds: float
    seconds_per_clip: float
    warnings: tuple[str, ...] = ()


def channel_mask(channels: int) -> torch.Tensor:
    """Feature mask ``(1, C, 1)`` giving each channel its own feature (broadcast over time)."""
    return channel_groups(channels)


def evaluate_audio(
    trained: TrainedAudioModel,
    test_split: AudioSplit,
    ev: AudioEvalConfig,
    *,
    device: torch.device,
    seed: int = 0,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    chunk: int = 32,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Accuracy on the whole test split and every method's scores on its first ``ev.samples`` clips.

    Returns a JSON-able summary and arrays for the figures (importances ``(n, C)``, time profiles,
    the kept examples' waveforms ``(k, C, 16000)`` and attribution envelopes ``(k, C, 400)``).
    """
    model = trained.model.to(device).eval()
    arch = AUDIO_MODELS.get(trained.arch)
    recurrent = arch.recurrent
    test_pred = predict(model, test_split, device)
    n = len(test_split) if ev.samples == 0 else min(ev.samples, len(test_split))
    k = min(ev.examples, n)
    idx_all = np.arange(n)
    positions = np.asarray(test_split.positions[:n])
    pred = test_pred[:n]
    geometry = InputGeometry("audio", channels=trained.channels, samples=CLIP_SAMPLES)
    speech = test_split.speech(idx_all)
    voiced = speech_mask(speech)
    arrays: dict[str, np.ndarray] = {
        "test_pred": test_pred.astype(np.int16),
        "test_labels": np.asarray(test_split.labels).astype(np.int16),
        "positions": positions.astype(np.int16),
        "speech_time": _normalise_rows(time_profile(speech**2, TIME_BINS)).astype(np.float32),
        "voiced": voiced,
        "examples": test_split.batch(np.arange(k)).astype(np.float16),
    }
    scores: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    probe = torch.as_tensor(test_split.batch(np.arange(min(1, n))), device=device) if n else None
    for m in ev.methods:
        reason, _ = method_availability(model, m, probe) if probe is not None else (None, [])
        if reason is not None:
            unavailable[m] = reason  # reported beside the other methods' scores
            continue
        if report:
            report(stage=f"attributing: {METHODS.get(m).display_name}")
        params = ev.params_for(m)
        groups = method_feature_mask(m, geometry)
        mask = groups.to(device) if groups is not None else None
        imp_parts, time_parts, env_parts = [], [], []
        seconds, warns = 0.0, []
        try:
            with _no_cudnn(device, recurrent):
                for start in range(0, n, chunk):
                    if should_stop and should_stop():
                        raise JobCancelled("Stopped by the user while attributing.")
                    rows = idx_all[start : start + chunk]
                    x = test_split.batch(rows)
                    res = attribute(
                        model,
                        x,
                        m,
                        target=torch.as_tensor(pred[rows], device=device),
                        params=params,
                        feature_mask=mask,
                        seed=seed + start,
                    )
                    seconds += res.seconds
                    warns += [w for w in res.warnings if w not in warns]
                    a = res.values
                    imp_parts.append(channel_importance(a))
                    time_parts.append(time_profile(a[np.arange(len(rows)), positions[rows]], TIME_BINS))
                    keep = rows < k
                    if keep.any():
                        env_parts.append(time_profile(a[keep], ENVELOPE_BINS))
        except AttributionMethodError as exc:  # a plugin that failed: reported, the others still score
            unavailable[m] = str(exc)
            continue
        if m == "deeplift" and arch.deeplift_note and arch.deeplift_note not in warns:
            warns.append(arch.deeplift_note)  # the gates inside nn.RNN/nn.LSTM are invisible to hooks
        imp = np.concatenate(imp_parts)
        prof = np.concatenate(time_parts)
        fp = channel_fprec_per_sample(imp, positions)
        share = (_normalise_rows(prof) * voiced).sum(axis=1)
        scores[m] = {
            "method": m,
            "channel_fprec": float(fp.mean()),
            "channel_fprec_std": float(fp.std()),
            "top1_hit": float(top1_hits(imp, positions).mean()),
            "time_share": float(share.mean()),
            "time_share_std": float(share.std()),
            "seconds": seconds,
            "seconds_per_clip": seconds / max(n, 1),
            "warnings": warns,
        }
        arrays[f"importance_{m}"] = imp.astype(np.float32)
        arrays[f"time_{m}"] = _normalise_rows(prof).astype(np.float32)
        if env_parts:
            env = np.concatenate(env_parts)
            arrays[f"envelope_{m}"] = (env / env.max(axis=(1, 2), keepdims=True).clip(min=1e-30)).astype(np.float32)
    labels = np.asarray(test_split.labels)
    summary = {
        "accuracy": float((test_pred == labels).mean()) if len(labels) else float("nan"),
        "n_test": int(len(labels)),
        "n_eval": int(n),
        "scores": scores,
        "unavailable": unavailable,
        "voiced_share": float(voiced.mean()),
    }
    return summary, arrays


# --- result ----------------------------------------------------------------------------------------


@dataclass
class AudioResult(ClassifierRunResult):
    """What one configuration produced; arrays are kept for the app's figures (see ``arrays``)."""

    bundle_task: ClassVar[str] = "audio"

    config: AudioConfig
    eval: AudioEvalConfig
    words: tuple[str, ...]
    accuracy: float
    scores: dict[str, AudioMethodScores]
    history: dict[str, list[float]]
    train_seconds: float
    n_train: int
    n_test: int
    n_eval: int
    voiced_share: float
    device: str
    notes: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    cached: bool = False
    seconds: float = 0.0
    cache_note: str | None = None

    @property
    def channels(self) -> int:
        return self.config.data.channels

    @property
    def chance(self) -> float:
        """Channel FPrec and top-1 hit rate of a uniformly random attribution: 1 / channels (the metric
        registry's chance level)."""
        return chance_level("channel_fprec", channels=self.channels)

    @property
    def class_chance(self) -> float:
        return 1.0 / len(self.words)

    @property
    def chance_accuracy(self) -> float:
        """Accuracy of guessing (``class_chance``), the name every classifier result shares."""
        return self.class_chance

    @property
    def channel_fprec(self) -> dict[str, float]:
        return {m: s.channel_fprec for m, s in self.scores.items()}

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON contract plus everything needed to reproduce the run."""
        return {
            "task": "audio",
            "setting": self.config.data.setting,
            "model": self.config.model.arch,
            "preset": self.config.preset,
            "accuracy": self.accuracy,
            "class_chance": self.class_chance,
            **self.learning_fields(),
            "preset_note": preset_note(self.config.model.arch, self.config.preset),
            "channel_fprec": self.channel_fprec,
            "channel_fprec_std": {m: s.channel_fprec_std for m, s in self.scores.items()},
            "top1_hit": {m: s.top1_hit for m, s in self.scores.items()},
            "time_share": {m: s.time_share for m, s in self.scores.items()},
            "voiced_share": self.voiced_share,
            "chance": self.chance,
            "channels": self.channels,
            "classes": len(self.words),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_eval": self.n_eval,
            "method_seconds": {m: s.seconds for m, s in self.scores.items()},
            "seconds_per_clip": {m: s.seconds_per_clip for m, s in self.scores.items()},
            "warnings": {m: list(s.warnings) for m, s in self.scores.items() if s.warnings},
            "unavailable": self.unavailable,
            "notes": self.notes,
            **self.run_fields(),
        }

    def scores_table(self) -> list[dict[str, Any]]:
        n = max(1, self.n_eval)
        return [
            {
                "method": m,
                "display": METHODS.get(m).display_name if m in METHODS else m,
                "channel FPrec": s.channel_fprec,
                "FPrec std": s.channel_fprec_std,
                "FPrec 95% CI": 1.96 * s.channel_fprec_std / math.sqrt(n),
                "top-1 hit rate": s.top1_hit,
                "speech-time share": s.time_share,
                "seconds per clip": s.seconds_per_clip,
            }
            for m, s in self.scores.items()
        ]

    def sample_wavs(self, i: int = 0) -> dict[str, bytes]:
        """Kept clip ``i`` as a multi-channel float64 WAV (the published layout's format), by file name."""
        from ..data.audio import wav_bytes

        if len(self.arrays.get("examples", ())) <= i:
            return {}
        ex = self.example(i)
        return {f"clip{i}_{ex['word']}_speech-channel-{ex['channel']}.wav": wav_bytes(ex["waves"], subtype="DOUBLE")}

    def example(self, i: int) -> dict[str, Any]:
        """Waveforms ``(C, T)`` float32, true channel, word and predicted word of kept example ``i``."""
        x = self.arrays["examples"][i].astype(np.float32)
        label = int(self.arrays["test_labels"][i])
        pred = int(self.arrays["test_pred"][i])
        return {
            "waves": x,
            "channel": int(self.arrays["positions"][i]),
            "word": self.words[label],
            "predicted": self.words[pred],
        }


def result_key(config: AudioConfig, ev: AudioEvalConfig) -> str:
    return stable_hash({"model": config.config_hash, "eval": ev.config_hash})


def run_audio(
    config: AudioConfig,
    ev: AudioEvalConfig | None = None,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int | None = None,
) -> AudioResult:
    """Train (or load) the model for ``config``, attribute the test clips with ``ev.methods``, score them.

    Parameters
    ----------
    report : called with progress events: ``stage`` strings, ``epoch``/``epochs``/``loss`` and the
        accuracies while training, ``done``/``total`` while words are synthesised.
    should_stop : polled between batches; when it returns True a :class:`JobCancelled` is raised and
        nothing is cached.

    Examples
    --------
    >>> cfg = AudioConfig.from_preset("quick", model="tcn", source="formant")
    >>> run_audio(cfg, AudioEvalConfig.for_preset("quick")).accuracy >= 0  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    ev = ev or AudioEvalConfig.for_preset(config.preset if config.preset in PRESETS else "demo")
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    model_note: str | None = None

    def build(folder: Path) -> dict[str, Any]:
        nonlocal model_note
        if report:
            report(stage="preparing data")
        trained, cached, model_note = train_audio_model(
            config, cache=cache, device=dev, report=report, should_stop=should_stop, workers=workers
        )
        test_split, _, notes = load_split(config.data, "test", config.seed, cache=cache, progress=report)
        summary, arrays = evaluate_audio(
            trained, test_split, ev, device=dev, seed=config.seed, report=report, should_stop=should_stop
        )
        summary.update(
            words=list(trained.words),
            history=trained.history,
            train_seconds=trained.seconds,
            n_train=trained.n_train,
            device=trained.device if cached else str(dev),
            notes=trained.notes + [n for n in notes if n not in trained.notes],
        )
        (folder / "result.json").write_text(json.dumps(to_jsonable(summary), allow_nan=True))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        (folder / "arrays.npz").write_bytes(buf.getvalue())
        return {"model_key": config.config_hash, "rebuild": rebuild_command(config)}

    outcome = cache.get_or_create(RESULT_KIND, result_key(config, ev), build, config={"model": config, "eval": ev})
    return _result_from(
        outcome.entry.path, config, ev, outcome.cached, time.perf_counter() - start, outcome.note or model_note
    )


def _result_from(
    folder: Path, config: AudioConfig, ev: AudioEvalConfig, cached: bool, seconds: float, note: str | None
) -> AudioResult:
    summary = json.loads((folder / "result.json").read_text())
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return AudioResult(
        config=config,
        eval=ev,
        words=tuple(summary["words"]),
        accuracy=summary["accuracy"],
        scores={m: AudioMethodScores(**{**s, "warnings": tuple(s["warnings"])}) for m, s in summary["scores"].items()},
        history=summary["history"],
        train_seconds=summary["train_seconds"],
        n_train=summary["n_train"],
        n_test=summary["n_test"],
        n_eval=summary["n_eval"],
        voiced_share=summary["voiced_share"],
        device=summary["device"],
        notes=summary["notes"],
        unavailable=summary.get("unavailable", {}),
        arrays=arrays,
        cached=cached,
        seconds=seconds,
        cache_note=note,
    )


def background_counterpart(config: AudioConfig) -> AudioConfig:
    """The same configuration with the other background (the page's what-if)."""
    other = "structured" if config.data.background == "random" else "random"
    return config.replace(data=config.data.replace(background=other))
