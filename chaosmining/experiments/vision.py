"""The vision experiment end to end (paper section 3.2, Tables 2 and 3, appendix A.3).

Composite images -> a classifier trained from scratch -> attributions for the predicted class ->
localisation scores against the known foreground box. :func:`run_vision` is the one code path shared by
the CLI, the app's jobs and the what-if over the four noise conditions. The trained model and the
evaluation are cached separately: changing the methods re-uses the trained checkpoint.

The paper's IoU protocol (:func:`localisation_scores`)
-----------------------------------------------------
|attribution| averaged over the colour channels -> Gaussian smoothing (sigma 6 at 224 px, scaled with
the canvas) -> the k highest pixels, k = the foreground's area -> the box spanning them -> IoU with the
true box. As in the original code, the predicted box runs from the smallest to the largest coordinate of
those pixels (corner coordinates, not pixel counts), which is why a perfect map scores 0.94 at 224 px
rather than 1: smoothing widens the region by a pixel or two. Every IoU is reported beside the
protocol's floor (the IoU of a uniformly random map, about 0.02: a few outliers stretch the box over
the image) and ceiling (the IoU of the ground-truth mask itself), and beside two scores that do not
depend on a bounding box: the pointing game (is the single highest pixel of the raw map inside the box?)
and the share of the raw map's mass inside the box. Both have the box's share of the canvas as their
chance level.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..attribution import (
    METHODS,
    InputGeometry,
    attribute,
    method_defaults,
    method_feature_mask,
    methods_for,
    patch_grid_mask,
)
from ..cache import Cache
from ..config import ConfigBase, stable_hash, to_jsonable
from ..data.vision import (
    BACKGROUNDS,
    POSITIONS,
    VisionData,
    VisionDataConfig,
    VisionSplit,
    condition_code,
    make_vision_data,
    to_model_input,
)
from ..errors import AttributionMethodError, JobCancelled
from ..metrics import (
    box_iou,
    chance_level,
    localisation_scores,
    perfect_map_iou,
    random_map_iou,
    smooth_maps,
    topk_box,
)
from ..models.vision import ARCHITECTURES, ArchitectureSpec, build_model, logits_of, method_availability
from ..registry import Registry
from ..runtime import loader_context, resolve_device
from ..trainer import Checkpoint, TrainerHooks, train_classifier
from ..validation import check_choice, check_float, check_int, param_error
from .common import ClassifierRunResult
from .symbolic import EvalConfig

__all__ = [
    "DEFAULT_METHODS",
    "MODEL_KIND",
    "RESULT_KIND",
    "Preset",
    "PRESETS",
    "patch_grid_note",
    "SCHEDULES",
    "VisionTrainConfig",
    "VisionConfig",
    "VisionEvalConfig",
    "VisionMethodScores",
    "VisionResult",
    "TrainedVisionModel",
    "vision_methods",
    "vision_param_defaults",
    "patch_mask",
    "attribution_maps",
    "smooth_maps",
    "paper_sigma",
    "topk_box",
    "box_iou",
    "localisation_scores",
    "random_map_iou",
    "perfect_map_iou",
    "classification_loss",
    "fit_classifier",
    "predict",
    "gallery_factor",
    "train_vision_model",
    "evaluate_vision",
    "run_vision",
    "noise_conditions",
    "run_conditions",
    "rebuild_command",
    "result_key",
]

DEFAULT_METHODS = ("saliency", "deeplift", "integrated_gradients", "feature_ablation")
MODEL_KIND = "vision-model"
RESULT_KIND = "vision-result"
_EVAL_BLOCK = 64


def vision_methods() -> list[str]:
    """Registered attribution methods that apply to images, in registry order."""
    return methods_for("vision")


# --- presets and training configuration --------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named bundle of data size, training and evaluation settings."""

    name: str
    display_name: str
    description: str
    train_size: int
    val_size: int
    epochs: int
    batch_size: int
    lr: float
    schedule: str
    eval_samples: int
    canvas: int = 224
    foreground_size: int = 32
    weight_decay: float = 0.01
    gallery: int = 16
    recompose: bool = False


PRESETS: Registry[Preset] = Registry("preset")
for _p in (
    Preset(
        "quick",
        "Quick (about a minute on a CPU)",
        "4 000 images on a 112-px canvas (the 32-px foreground covers 8 % of it), 20 one-cycle epochs of which "
        "every one after the first recomposes the images (each foreground pasted over another image's, so on a new "
        "background and place): for what-ifs. Smaller than the paper's geometry so that a from-scratch CNN learns "
        "in about a minute of CPU time (measured: 0.6-0.7 accuracy at a fixed position, 0.5-0.6 at random ones).",
        train_size=4_000,
        val_size=500,
        epochs=20,
        batch_size=64,
        lr=3e-3,
        schedule="onecycle",
        eval_samples=100,
        canvas=112,
        recompose=True,
    ),
    Preset(
        "demo",
        "Demo (about five minutes on a CPU)",
        "The paper's geometry (224 px, 32-px foreground) with 10 000 training images and 18 one-cycle epochs of which "
        "every one after the first recomposes the images (each foreground pasted over another image's, so on a new "
        "background and place; labels and boxes stay exact); 200 images evaluated. Measured on a 2-core machine, "
        "2 threads, a run alone: accuracy 0.88 (RBFP), 0.89 (SBFP), 0.77 (RBRP), 0.80 (SBRP) with seed 0, 0.87 and "
        "0.84 (RBFP, SBFP) with seed 7, in about 4 minutes per whole run; about 1.8x that on one thread, while "
        "another run holds the other core.",
        train_size=10_000,
        val_size=1_000,
        epochs=18,
        batch_size=64,
        lr=3e-3,
        schedule="onecycle",
        eval_samples=200,
        recompose=True,
    ),
    Preset(
        "paper",
        "Paper (GPU)",
        "The paper's setting: 50 000 / 10 000 images, 30 epochs, batch 128, AdamW lr 1e-3 with cosine annealing "
        "warm restarts (T_0 = 30); every validation image evaluated. Meant for a GPU.",
        train_size=50_000,
        val_size=10_000,
        epochs=30,
        batch_size=128,
        lr=1e-3,
        schedule="cosine_restarts",
        eval_samples=0,
    ),
):
    PRESETS.register(_p.name, _p)


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule: ``make(optimizer, epochs, steps_per_epoch)``; ``per_batch`` says when it steps."""

    name: str
    display_name: str
    make: Callable[[torch.optim.Optimizer, int, int], Any]
    per_batch: bool


SCHEDULES: Registry[ScheduleSpec] = Registry("schedule")
SCHEDULES.register(
    "cosine_restarts",
    ScheduleSpec(
        "cosine_restarts",
        "Cosine annealing with warm restarts (paper, T_0 = epochs)",
        lambda opt, epochs, steps: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=max(1, epochs)),
        per_batch=False,
    ),
)
SCHEDULES.register(
    "onecycle",
    ScheduleSpec(
        "onecycle",
        "One-cycle (warm-up then anneal; converges in fewer epochs)",
        lambda opt, epochs, steps: torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=opt.param_groups[0]["lr"], total_steps=max(1, epochs * steps)
        ),
        per_batch=True,
    ),
)

_TOWNER = "VisionTrainConfig"


@dataclass(frozen=True, kw_only=True)
class VisionTrainConfig(ConfigBase):
    """How the classifier is trained: AdamW, cross-entropy, ``schedule`` from :data:`SCHEDULES`.

    ``recompose``: from the second epoch on, train on the training images recomposed (each foreground
    pasted over another image's foreground, so on new backgrounds and, at random positions, at new
    places; see :meth:`VisionSplit.for_epoch`). Labels and boxes stay exact; a small data set then
    shows the model many more combinations, at no cost in image making. Off by default (the paper's
    recipe); the quick and demo presets turn it on.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    schedule: str = "onecycle"
    recompose: bool = False

    def __post_init__(self) -> None:
        set_ = lambda n, v: object.__setattr__(self, n, v)  # noqa: E731
        set_("epochs", check_int(self.epochs, "epochs", owner=_TOWNER, low=1, high=10_000))
        set_("batch_size", check_int(self.batch_size, "batch_size", owner=_TOWNER, low=1, high=65_536))
        set_("lr", check_float(self.lr, "lr", owner=_TOWNER, low=0.0, high=10.0, low_open=True))
        set_("weight_decay", check_float(self.weight_decay, "weight_decay", owner=_TOWNER, low=0.0, high=10.0))
        check_choice(self.schedule, "schedule", owner=_TOWNER, choices=SCHEDULES.names())
        if not isinstance(self.recompose, bool):
            raise param_error("recompose", _TOWNER, "a bool", self.recompose)

    def hash_payload(self) -> dict[str, Any]:
        out = super().hash_payload()
        if not self.recompose:  # configurations from before the option keep their cache keys
            out.pop("recompose")
        return out


@dataclass(frozen=True, kw_only=True)
class VisionConfig(ConfigBase):
    """Everything that determines a trained vision model: data, architecture, training and the seed.

    Build one from a preset with :meth:`from_preset`.
    """

    data: VisionDataConfig = field(default_factory=VisionDataConfig)
    model: str = "compact_cnn"
    train: VisionTrainConfig = field(default_factory=VisionTrainConfig)
    seed: int = 0
    preset: str = "demo"

    def __post_init__(self) -> None:
        check_choice(self.model, "model", owner="VisionConfig", choices=ARCHITECTURES.names())
        ARCHITECTURES.get(self.model).check_canvas(self.data.canvas)
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner="VisionConfig", low=0, high=2**31 - 1))
        if not isinstance(self.preset, str):
            raise param_error("preset", "VisionConfig", "a str", self.preset)

    @classmethod
    def from_preset(
        cls,
        preset: str = "demo",
        *,
        model: str = "compact_cnn",
        seed: int = 0,
        train: Mapping[str, Any] | None = None,
        **data: Any,
    ) -> VisionConfig:
        """The preset's sizes, geometry and training, with ``data`` fields (foreground, background,
        position, canvas, ...) and ``train`` fields overriding it. ``None`` values are ignored."""
        p = PRESETS.get(preset)
        data = {k: v for k, v in data.items() if v is not None}
        d = {
            "train_size": p.train_size,
            "val_size": p.val_size,
            "canvas": p.canvas,
            "foreground_size": p.foreground_size,
            **data,
        }
        t = {
            "epochs": p.epochs,
            "batch_size": p.batch_size,
            "lr": p.lr,
            "weight_decay": p.weight_decay,
            "schedule": p.schedule,
            "recompose": p.recompose,
            **{k: v for k, v in (train or {}).items() if v is not None},
        }
        return cls(data=VisionDataConfig(**d), model=model, train=VisionTrainConfig(**t), seed=seed, preset=preset)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VisionConfig:
        return cls(
            data=VisionDataConfig(**d.get("data", {})),
            model=d.get("model", "compact_cnn"),
            train=VisionTrainConfig(**d.get("train", {})),
            seed=d.get("seed", 0),
            preset=d.get("preset", "custom"),
        )

    @property
    def condition(self) -> str:
        return condition_code(self.data.background, self.data.position)


_EOWNER = "VisionEvalConfig"


@dataclass(frozen=True, kw_only=True)
class VisionEvalConfig(EvalConfig):
    """Which methods to run, for which class, on how many validation images.

    ``target`` is ``'predicted'`` (the paper) or ``'true'``. ``samples`` validation images are attributed
    (0 = all); the first ``gallery`` of them keep their smoothed maps for the app's gallery. ``sigma`` is
    the smoothing in pixels at a 224-px canvas (scaled with the canvas; the paper: 6).
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    samples: int = 200
    curve_samples: int = 0
    measure_memory: bool = False
    target: str = "predicted"
    gallery: int = 16
    sigma: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        wrong = [m for m in self.methods if "vision" not in METHODS.get(m).modalities]
        if wrong:
            raise param_error("methods", _EOWNER, f"methods that apply to images ({vision_methods()})", wrong)
        check_choice(self.target, "target", owner=_EOWNER, choices=("predicted", "true"))
        object.__setattr__(self, "gallery", check_int(self.gallery, "gallery", owner=_EOWNER, low=0, high=256))
        object.__setattr__(self, "sigma", check_float(self.sigma, "sigma", owner=_EOWNER, low=0.0, high=100.0))

    def default_geometry(self) -> InputGeometry:
        """The paper's geometry; :meth:`for_preset` and :meth:`for_config` fill in the run's own."""
        return InputGeometry("vision", canvas=224, patch=32)

    @classmethod
    def for_preset(
        cls,
        preset: str,
        methods: Sequence[str] = DEFAULT_METHODS,
        *,
        canvas: int | None = None,
        foreground_size: int | None = None,
        **kw: Any,
    ) -> VisionEvalConfig:
        """The preset's evaluation size, with every method's image defaults for the preset's geometry
        (or ``canvas`` / ``foreground_size`` when given) under the parameters in ``params``."""
        p = PRESETS.get(preset)
        kw.setdefault("samples", p.eval_samples)
        kw.setdefault("gallery", p.gallery)
        given = kw.pop("params", None) or {}
        canvas, size = canvas or p.canvas, foreground_size or p.foreground_size
        params = {m: {**vision_param_defaults(m, canvas, size), **dict(given.get(m, {}))} for m in methods}
        return cls.create(methods, {m: v for m, v in params.items() if v}, **kw)

    @classmethod
    def for_config(cls, config: VisionConfig, methods: Sequence[str] = DEFAULT_METHODS, **kw: Any) -> VisionEvalConfig:
        """:meth:`for_preset` for ``config``'s preset and geometry."""
        preset = config.preset if config.preset in PRESETS else "demo"
        d = config.data
        return cls.for_preset(preset, methods, canvas=d.canvas, foreground_size=d.foreground_size, **kw)


def vision_param_defaults(method: str, canvas: int = 224, foreground_size: int = 32) -> dict[str, Any]:
    """``method``'s parameters for images of this geometry: the defaults its registry entry declares for
    images (Occlusion: a foreground-sized window; KernelSHAP: foreground-sized patches), else the registry's."""
    return method_defaults(method, InputGeometry("vision", canvas=canvas, patch=foreground_size))


# --- the IoU protocol and the box-free scores --------------------------------------------------


def paper_sigma(canvas: int, sigma_at_224: float = 6.0) -> float:
    """The smoothing for ``canvas``: ``sigma_at_224`` scaled with the canvas side."""
    return sigma_at_224 * canvas / 224.0


def attribution_maps(values: np.ndarray) -> np.ndarray:
    """``(n, C, H, W)`` attributions -> ``(n, H, W)`` mean of |attribution| over channels (float32)."""
    return np.abs(np.asarray(values, dtype=np.float32)).mean(axis=1)


def patch_mask(canvas: int, patch: int) -> torch.Tensor:
    """Feature-ablation groups: a grid of ``patch``-px squares, ``(1, 1, canvas, canvas)`` int64
    (the method registry's image groups, :func:`chaosmining.attribution.patch_grid_mask`).

    At 224 px with 32-px patches this is the paper's 7x7 grid of 49 patches.
    """
    return patch_grid_mask(canvas, patch)


def patch_grid_note(data: VisionDataConfig) -> str | None:
    """Why Feature Ablation's IoU may flatter it here, or None.

    Its patches are foreground-sized squares on a fixed grid. At a fixed position whose corner lies on
    that grid (the paper's 224/32: corner 96 = 3 x 32), the true box IS one patch, so a map that ranks
    that patch first retrieves the box exactly, while pixel-level maps must trace it. At random
    positions the box straddles patches and the advantage disappears (paper, Tables 2/3: FA's FP vs RP).
    """
    if data.position != "fixed":
        return None
    size = data.foreground_size
    top, left = POSITIONS.get("fixed").place(np.random.default_rng(0), data.canvas, size)
    if top % size or left % size:
        return None
    return (
        f"Feature Ablation removes {size}-px patches on a fixed grid, and here the fixed foreground box "
        f"(corner {top}, {size} px) is exactly one of those patches: its IoU is partly geometry. Compare "
        "methods at a random position (RP), where the box straddles patches."
    )


# --- training ----------------------------------------------------------------------------------


@dataclass
class TrainedVisionModel:
    """A trained classifier and its training history."""

    model: nn.Module
    architecture: str
    n_classes: int
    canvas: int
    class_names: tuple[str, ...]
    history: dict[str, list[float]]
    seconds: float
    device: str


def _amp(device: torch.device) -> tuple[bool, torch.dtype]:
    if device.type != "cuda":
        return False, torch.float32
    return True, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _to_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(to_model_input(images))
    if device.type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last)


def _batches(split: VisionSplit, order: np.ndarray, batch_size: int, workers: int):
    """Yield ``(images uint8, indices)`` in ``order``; built in worker processes when not in memory."""
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if split._array is not None or workers == 0:
        for idx in chunks:
            yield split.images(idx), idx
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        chunks,
        batch_size=None,
        num_workers=workers,
        collate_fn=lambda idx: (split.images(idx), idx),
        prefetch_factor=4,
        multiprocessing_context=loader_context(),
    )
    yield from loader


def predict(model: nn.Module, split: VisionSplit, device: torch.device, batch_size: int = 128) -> np.ndarray:
    """Predicted class of every image of ``split`` (eval mode, no gradients)."""
    model.eval()
    out = np.zeros(len(split), dtype=np.int64)
    amp, dtype = _amp(device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=amp):
        for images, idx in _batches(split, np.arange(len(split)), batch_size, 0):
            out[idx] = logits_of(model(_to_input(images, device))).argmax(1).cpu().numpy()
    return out


def classification_loss(spec: ArchitectureSpec, output: Any, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main logits plus ``spec.aux_weight`` times that of each auxiliary output
    (GoogLeNet's two auxiliary classifiers in train mode)."""
    loss = nn.functional.cross_entropy(logits_of(output), labels)
    if spec.aux_weight:
        for name in ("aux_logits1", "aux_logits2"):
            aux = getattr(output, name, None)
            if aux is not None:
                loss = loss + spec.aux_weight * nn.functional.cross_entropy(aux, labels)
    return loss


def fit_classifier(
    model: nn.Module,
    spec: ArchitectureSpec,
    data: VisionData,
    train: VisionTrainConfig,
    *,
    seed: int,
    device: torch.device,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    val_limit: int = 1000,
    checkpoint: Callable[[Checkpoint], None] | None = None,
    resume: Checkpoint | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place with AdamW and cross-entropy; return the per-epoch history.

    The loop is :func:`chaosmining.trainer.train_classifier` (``checkpoint`` is called after every
    epoch; ``resume`` continues from one).

    Mixed precision on CUDA (bfloat16, else float16 with loss scaling); channels-last on every device
    (bfloat16 autocast measured slower on this CPU, so it stays off there). With ``train.recompose``,
    epochs after the first read recomposed images (:meth:`VisionSplit.for_epoch`). The batch order
    comes from a generator seeded with ``seed``. Validation accuracy on up to ``val_limit`` images is
    reported after every epoch.

    Raises
    ------
    JobCancelled when ``should_stop()`` turns true; TrainingDivergedError when the loss is not finite.
    """
    amp, dtype = _amp(device)
    model.to(device)
    model.to(memory_format=torch.channels_last)  # faster convolutions on CUDA and on CPUs alike (measured)
    opt = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    n = len(data.train)
    steps = math.ceil(n / train.batch_size)
    sched_spec = SCHEDULES.get(train.schedule)
    workers = 0 if data.train._array is not None else min(8, max(1, (os.cpu_count() or 2) // 2))
    val_split = data.val
    val_idx = np.arange(min(len(val_split), val_limit))
    sub = VisionSplit("val", val_split.labels[val_idx], val_split.boxes[val_idx], (), val_split.canvas, val_split.image)

    def batches(epoch: int, gen: torch.Generator):
        order = torch.randperm(n, generator=gen).numpy()
        split = data.train.for_epoch(epoch, seed) if train.recompose else data.train
        for images, idx in _batches(split, order, train.batch_size, workers):
            yield _to_input(images, device), torch.as_tensor(split.labels[idx]).to(device)

    def validate(m: nn.Module) -> float:
        return float((predict(m, sub, device) == sub.labels).mean()) if len(sub) else float("nan")

    history = train_classifier(
        model,
        epochs=train.epochs,
        batches=batches,
        steps_per_epoch=steps,
        loss_fn=lambda out, y: classification_loss(spec, out, y),
        logits_fn=logits_of,
        optimizer=opt,
        schedule=sched_spec.make(opt, train.epochs, steps),
        schedule_per_batch=sched_spec.per_batch,
        validate=validate,
        generator=torch.Generator().manual_seed(seed),
        device=device,
        autocast_dtype=dtype if amp else None,
        hooks=TrainerHooks(report=report, should_stop=should_stop, checkpoint=checkpoint),
        resume=resume,
        diverged_hint=f"The 'lr' parameter ({train.lr:g}) is too large for this model; lower it (the paper uses 1e-3).",
    )
    return history.as_dict()


def rebuild_command(config: VisionConfig) -> str:
    """The CLI line that rebuilds ``config``'s model (flags for every field that differs from its preset)."""
    p = PRESETS.get(config.preset) if config.preset in PRESETS else None
    d, t = config.data, config.train
    parts = [
        "python -m chaosmining vision",
        f"--background {d.background}",
        f"--position {d.position}",
        f"--model {config.model}",
        f"--preset {config.preset if p else 'demo'}",
        f"--foreground {d.foreground}",
        f"--seed {config.seed}",
    ]
    base = VisionConfig.from_preset(p.name if p else "demo", model=config.model)
    flags = {
        "--canvas": (d.canvas, base.data.canvas),
        "--foreground-size": (d.foreground_size, base.data.foreground_size),
        "--train-size": (d.train_size, base.data.train_size),
        "--val-size": (d.val_size, base.data.val_size),
        "--epochs": (t.epochs, base.train.epochs),
        "--batch-size": (t.batch_size, base.train.batch_size),
        "--lr": (t.lr, base.train.lr),
        "--schedule": (t.schedule, base.train.schedule),
    }
    parts += [f"{flag} {v}" for flag, (v, default) in flags.items() if v != default]
    if d.data_root:
        parts.append(f"--data-root {d.data_root}")
    return " ".join(parts)


def _load_trained(folder: Path, config: VisionConfig, device: torch.device) -> TrainedVisionModel:
    info = json.loads((folder / "model.json").read_text())
    model = build_model(config.model, info["n_classes"], config.data.canvas, config.seed)
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    model.to(device).eval()
    return TrainedVisionModel(
        model,
        config.model,
        info["n_classes"],
        config.data.canvas,
        tuple(info["class_names"]),
        info["history"],
        info["train_seconds"],
        info["device"],
    )


def train_vision_model(
    config: VisionConfig,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data: VisionData | None = None,
) -> tuple[TrainedVisionModel, bool, str | None]:
    """The trained model for ``config`` from the cache, or trained now (once) and cached.

    Returns ``(model, cached, cache_note)``. Progress goes to ``report(stage=..., ...)``.
    """
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    spec = ARCHITECTURES.get(config.model)

    def build(folder: Path) -> dict[str, Any]:
        d = data or make_vision_data(config.data, config.seed)
        for split in (d.train, d.val):

            def progress(done: int, total: int, split: VisionSplit = split) -> None:
                if should_stop and should_stop():
                    raise JobCancelled("Stopped by the user while generating images.")
                if report:
                    report(stage=f"making {split.split} images", done=done, total=total)

            split.materialise(report=progress)
        model = build_model(config.model, d.n_classes, config.data.canvas, config.seed)
        start = time.perf_counter()
        history = fit_classifier(
            model, spec, d, config.train, seed=config.seed, device=dev, report=report, should_stop=should_stop
        )
        seconds = time.perf_counter() - start
        model.to("cpu").eval()
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        torch.save(state, folder / "model.pt")
        info = {
            "architecture": config.model,
            "n_classes": d.n_classes,
            "class_names": list(d.class_names),
            "history": history,
            "train_seconds": seconds,
            "device": str(dev),
        }
        (folder / "model.json").write_text(json.dumps(to_jsonable(info), allow_nan=True))
        return {
            "train_seconds": seconds,
            "device": str(dev),
            "final_val_accuracy": history["val_accuracy"][-1],
            "rebuild": rebuild_command(config),
        }

    outcome = cache.get_or_create(MODEL_KIND, config.config_hash, build, config=config)
    return _load_trained(outcome.entry.path, config, dev), outcome.cached, outcome.note


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisionMethodScores:
    """Localisation scores of one method over the evaluated images (means, spread, cost)."""

    method: str
    iou: float
    iou_std: float
    iou_median: float
    pointing: float
    mass: float
    mass_std: float
    seconds_per_image: float
    warnings: tuple[str, ...] = ()


def _downsample(maps: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return maps
    n, h, w = maps.shape
    hh, ww = h // factor, w // factor
    return maps[:, : hh * factor, : ww * factor].reshape(n, hh, factor, ww, factor).mean(axis=(2, 4))


def _normalise(maps: np.ndarray) -> np.ndarray:
    top = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(top > 0, top, 1.0)[:, None, None]


def gallery_factor(canvas: int) -> int:
    """Downsampling of the gallery's stored maps (the maps are smooth; 56 px at 224)."""
    return max(1, canvas // 56)


def evaluate_vision(
    trained: TrainedVisionModel,
    data: VisionData,
    ev: VisionEvalConfig,
    *,
    device: torch.device,
    seed: int = 0,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Accuracy on the validation split and localisation scores per method (a JSON-able dict + arrays)."""
    model = trained.model.to(device).eval()
    val = data.val
    canvas = trained.canvas
    if report:
        report(stage="predicting")
    val.materialise()  # every method attributes the same images; make them once when they fit
    preds = predict(model, val, device)
    n_eval = len(val) if ev.samples == 0 else min(ev.samples, len(val))
    idx = np.arange(n_eval)
    boxes = val.boxes[idx]
    targets = preds[idx] if ev.target == "predicted" else val.labels[idx]
    sigma = paper_sigma(canvas, ev.sigma)
    rng = np.random.default_rng([seed, 7])
    floor = random_map_iou(boxes, canvas, sigma, rng)
    ceiling = perfect_map_iou(boxes, canvas, sigma)
    n_gallery = min(ev.gallery, n_eval)
    factor = gallery_factor(canvas)
    n_classes = trained.n_classes
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (val.labels, preds), 1)
    arrays: dict[str, np.ndarray] = {
        "labels": val.labels.astype(np.int16),
        "preds": preds.astype(np.int16),
        "targets": targets.astype(np.int16),
        "true_boxes": boxes.astype(np.int16),
        "floor_iou": floor,
        "ceiling_iou": ceiling,
        "gallery_index": idx[:n_gallery].astype(np.int32),
        "confusion": confusion,
    }
    scores: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    geometry = InputGeometry("vision", canvas=canvas, patch=data.config.foreground_size)
    for m in ev.methods:
        reason, notes = method_availability(model, trained.architecture, m, canvas)
        if reason is not None:
            unavailable[m] = reason
            continue
        groups = method_feature_mask(m, geometry)
        mask = groups.to(device) if groups is not None else None
        per: dict[str, list[np.ndarray]] = {"iou": [], "pointing": [], "mass": [], "boxes": [], "gallery": []}
        seconds = 0.0
        warns: list[str] = list(notes)
        try:
            for block in range(0, n_eval, _EVAL_BLOCK):
                if should_stop and should_stop():
                    raise JobCancelled("Stopped by the user while attributing.")
                rows = idx[block : block + _EVAL_BLOCK]
                x = torch.from_numpy(to_model_input(val.images(rows)))
                res = attribute(
                    model,
                    x,
                    m,
                    target=torch.as_tensor(targets[rows], device=device),
                    params=ev.params_for(m),
                    feature_mask=mask,
                    seed=seed + block,
                )
                seconds += res.seconds
                warns += [w for w in res.warnings if w not in warns]
                sc = localisation_scores(attribution_maps(res.values), boxes[rows], sigma)
                for key in ("iou", "pointing", "mass", "boxes"):
                    per[key].append(sc[key])
                keep = rows < n_gallery
                if keep.any():
                    per["gallery"].append(_normalise(_downsample(sc["smoothed"][keep], factor)))
                if report:
                    report(stage=f"attributing with {METHODS.get(m).short}", done=int(rows[-1]) + 1, total=n_eval)
        except AttributionMethodError as exc:  # a plugin that failed: reported, the others still score
            unavailable[m] = str(exc)
            continue
        iou = np.concatenate(per["iou"])
        mass = np.concatenate(per["mass"])
        scores[m] = {
            "method": m,
            "iou": float(iou.mean()),
            "iou_std": float(iou.std()),
            "iou_median": float(np.median(iou)),
            "pointing": float(np.concatenate(per["pointing"]).mean()),
            "mass": float(mass.mean()),
            "mass_std": float(mass.std()),
            "seconds_per_image": seconds / max(n_eval, 1),
            "warnings": warns,
        }
        arrays[f"iou_{m}"] = iou
        arrays[f"pointing_{m}"] = np.concatenate(per["pointing"])
        arrays[f"mass_{m}"] = mass
        arrays[f"box_{m}"] = np.concatenate(per["boxes"]).astype(np.int16)
        if per["gallery"]:
            arrays[f"map_{m}"] = np.concatenate(per["gallery"]).astype(np.float16)
    pointing_chance = chance_level("pointing_game", boxes=boxes, canvas=canvas)
    mass_chance = chance_level("mass_inside", boxes=boxes, canvas=canvas)
    summary = {
        "accuracy": float((preds == val.labels).mean()) if len(val) else float("nan"),
        "chance_accuracy": 1.0 / n_classes,
        "scores": scores,
        "unavailable": unavailable,
        "random_iou": float(floor.mean()) if n_eval else float("nan"),
        "perfect_iou": float(ceiling.mean()) if n_eval else float("nan"),
        "pointing_chance": pointing_chance,
        "mass_chance": mass_chance,
        "eval_images": n_eval,
        "sigma": sigma,
    }
    return summary, arrays


# --- results -----------------------------------------------------------------------------------


@dataclass
class VisionResult(ClassifierRunResult):
    """What one configuration produced. Per-image arrays are in ``arrays`` (see :func:`evaluate_vision`)."""

    bundle_task: ClassVar[str] = "vision"

    config: VisionConfig
    eval: VisionEvalConfig
    accuracy: float
    chance_accuracy: float
    class_names: tuple[str, ...]
    scores: dict[str, VisionMethodScores]
    unavailable: dict[str, str]
    random_iou: float
    perfect_iou: float
    pointing_chance: float
    mass_chance: float
    eval_images: int
    sigma: float
    history: dict[str, list[float]]
    train_seconds: float
    device: str
    warnings: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    cached: bool = False
    seconds: float = 0.0
    cache_note: str | None = None

    @property
    def condition(self) -> str:
        return self.config.condition

    @property
    def iou(self) -> dict[str, float | None]:
        return {m: (self.scores[m].iou if m in self.scores else None) for m in self.eval.methods}

    @property
    def notes(self) -> list[str]:
        """Caveats for reading the scores (the page's reading and the CLI's ``notes`` show them)."""
        note = patch_grid_note(self.config.data) if "feature_ablation" in self.scores else None
        return [note] if note else []

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON contract plus everything needed to reproduce the run."""
        return {
            "task": "vision",
            "condition": self.condition,
            "accuracy": self.accuracy,
            "chance_accuracy": self.chance_accuracy,
            **self.learning_fields(),
            "iou": self.iou,
            "iou_std": {m: s.iou_std for m, s in self.scores.items()},
            "pointing_game": {m: s.pointing for m, s in self.scores.items()},
            "mass_inside": {m: s.mass for m, s in self.scores.items()},
            "random_iou": self.random_iou,
            "perfect_iou": self.perfect_iou,
            "pointing_chance": self.pointing_chance,
            "mass_chance": self.mass_chance,
            "unavailable": self.unavailable,
            "warnings": {m: list(s.warnings) for m, s in self.scores.items() if s.warnings},
            "data_warnings": list(self.warnings),
            "notes": self.notes,
            "method_seconds_per_image": {m: s.seconds_per_image for m, s in self.scores.items()},
            "eval_images": self.eval_images,
            "val_accuracy_by_epoch": list(self.history.get("val_accuracy", [])),
            **self.run_fields(),
            "rebuild": rebuild_command(self.config),
        }

    def scores_table(self) -> list[dict[str, Any]]:
        """One row per method, then the random-map floor and the perfect-map ceiling."""
        rows = []
        for m in self.eval.methods:
            spec = METHODS.get(m)
            s = self.scores.get(m)
            rows.append(
                {
                    "method": m,
                    "display": spec.display_name,
                    "accuracy": self.accuracy,
                    "IoU": None if s is None else s.iou,
                    "IoU std": None if s is None else s.iou_std,
                    "IoU median": None if s is None else s.iou_median,
                    "pointing game": None if s is None else s.pointing,
                    "mass inside box": None if s is None else s.mass,
                    "seconds per image": None if s is None else s.seconds_per_image,
                    "note": self.unavailable.get(m, "; ".join(s.warnings) if s else ""),
                }
            )
        for name, iou, chance in (
            ("floor: random map", self.random_iou, self.pointing_chance),
            ("ceiling: perfect map", self.perfect_iou, 1.0),
        ):
            rows.append(
                {
                    "method": name.split(":")[0],
                    "display": name,
                    "accuracy": None,
                    "IoU": iou,
                    "IoU std": None,
                    "IoU median": None,
                    "pointing game": chance,
                    "mass inside box": chance,
                    "seconds per image": None,
                    "note": "",
                }
            )
        return rows

    def per_image_table(self) -> list[dict[str, Any]]:
        """One row per evaluated image: label, prediction, true box and each method's scores and box."""
        a = self.arrays
        rows = []
        for i in range(self.eval_images):
            row: dict[str, Any] = {
                "image": i,
                "label": self.class_names[int(a["labels"][i])],
                "predicted": self.class_names[int(a["preds"][i])],
                "true_box": list(map(int, a["true_boxes"][i])),
                "random_map_iou": float(a["floor_iou"][i]),
                "perfect_map_iou": float(a["ceiling_iou"][i]),
            }
            for m in self.scores:
                row[f"{m}_iou"] = float(a[f"iou_{m}"][i])
                row[f"{m}_pointing"] = bool(a[f"pointing_{m}"][i])
                row[f"{m}_mass"] = float(a[f"mass_{m}"][i])
                row[f"{m}_box"] = list(map(int, a[f"box_{m}"][i]))
            rows.append(row)
        return rows

    def gallery_images(self) -> np.ndarray:
        """The gallery's validation images, regenerated from the configuration (uint8 ``(g, H, W, 3)``)."""
        data = make_vision_data(self.config.data, self.config.seed, splits=("val",))
        return data.val.images(self.arrays["gallery_index"])

    def gallery_map(self, method: str, j: int) -> np.ndarray:
        """Gallery image ``j``'s smoothed map for ``method``, resized to the canvas, in [0, 1]."""
        small = self.arrays[f"map_{method}"][j].astype(np.float32)
        canvas = self.config.data.canvas
        img = Image.fromarray(small, mode="F").resize((canvas, canvas), Image.Resampling.BILINEAR)
        return np.clip(np.asarray(img), 0.0, 1.0)


def result_key(config: VisionConfig, ev: VisionEvalConfig) -> str:
    return stable_hash({"model": config.config_hash, "eval": ev.config_hash})


def _result_from(
    config: VisionConfig, ev: VisionEvalConfig, summary: dict[str, Any], arrays: dict[str, np.ndarray]
) -> VisionResult:
    return VisionResult(
        config=config,
        eval=ev,
        accuracy=summary["accuracy"],
        chance_accuracy=summary["chance_accuracy"],
        class_names=tuple(summary["class_names"]),
        scores={m: VisionMethodScores(**{**s, "warnings": tuple(s["warnings"])}) for m, s in summary["scores"].items()},
        unavailable=summary["unavailable"],
        random_iou=summary["random_iou"],
        perfect_iou=summary["perfect_iou"],
        pointing_chance=summary["pointing_chance"],
        mass_chance=summary["mass_chance"],
        eval_images=summary["eval_images"],
        sigma=summary["sigma"],
        history=summary["history"],
        train_seconds=summary["train_seconds"],
        device=summary["device"],
        warnings=summary.get("data_warnings", []),
        arrays=arrays,
    )


def run_vision(
    config: VisionConfig,
    ev: VisionEvalConfig | None = None,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VisionResult:
    """Train (or load) the model for ``config``, attribute with ``ev.methods`` and score them.

    Parameters
    ----------
    report : called with progress events: ``stage`` strings, ``epoch``/``epochs``/``loss`` and
        ``val_accuracy`` while training, ``done``/``total`` while making images and attributing.
    should_stop : polled between batches; when it returns True a :class:`JobCancelled` is raised and
        nothing is cached.

    Examples
    --------
    >>> cfg = VisionConfig.from_preset("quick", canvas=64, foreground_size=16, train_size=200)
    >>> run_vision(cfg).accuracy >= 0  # doctest: +SKIP
    True
    """
    start = time.perf_counter()
    ev = ev or VisionEvalConfig.for_config(config)
    cache = cache or Cache()
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    key = result_key(config, ev)
    note = None

    def build(folder: Path) -> dict[str, Any]:
        nonlocal note
        data = make_vision_data(config.data, config.seed)
        trained, model_cached, note = train_vision_model(
            config, cache=cache, device=dev, report=report, should_stop=should_stop, data=data
        )
        summary, arrays = evaluate_vision(
            trained, data, ev, device=dev, seed=config.seed, report=report, should_stop=should_stop
        )
        summary.update(
            class_names=list(trained.class_names),
            history=trained.history,
            train_seconds=trained.seconds,
            device=trained.device,
            data_warnings=data.warnings,
            model_cached=model_cached,
        )
        (folder / "result.json").write_text(json.dumps(to_jsonable(summary), allow_nan=True))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        (folder / "arrays.npz").write_bytes(buf.getvalue())
        return {"model_key": config.config_hash, "rebuild": rebuild_command(config)}

    outcome = cache.get_or_create(RESULT_KIND, key, build, config={"model": config, "eval": ev})
    summary = json.loads(outcome.entry.file("result.json").read_text())
    with np.load(outcome.entry.file("arrays.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    result = _result_from(config, ev, summary, arrays)
    result.cached = outcome.cached
    result.cache_note = outcome.note or note
    result.seconds = time.perf_counter() - start
    return result


def noise_conditions(config: VisionConfig) -> dict[str, VisionConfig]:
    """``config`` under the paper's four noise conditions (RBFP, RBRP, SBFP, SBRP).

    The structured background is ``config``'s own when it is not the random one, else ``'structured'``.
    """
    bg = config.data.background
    structured = bg if BACKGROUNDS.get(bg).condition != "RB" else "structured"
    out = {}
    for background in ("random", structured):
        for position in POSITIONS.names():
            cfg = config.replace(data=config.data.replace(background=background, position=position))
            out[cfg.condition] = cfg
    return out


def run_conditions(
    config: VisionConfig,
    ev: VisionEvalConfig,
    *,
    cache: Cache | None = None,
    device: str | torch.device = "auto",
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, VisionResult]:
    """:func:`run_vision` for each of the four noise conditions of ``config`` (cached ones load at once)."""
    out = {}
    conditions = noise_conditions(config)
    for i, (code, cfg) in enumerate(conditions.items()):
        if report:
            report(stage=f"condition {code} ({i + 1} of {len(conditions)})", condition=code)
        out[code] = run_vision(cfg, ev, cache=cache, device=device, report=report, should_stop=should_stop)
    return out
