"""The tasks the evaluations run on, behind one small registry.

A task provides data with a known ground truth (which units carry the signal), a trained model to
explain, and a ``fit`` function that trains a *fresh* model of the same kind on modified data (ROAR's
retraining, the sanity checks' permuted labels). Names:

* ``toy16`` - the 16-d example of Hooker et al. (least squares; see :mod:`.toy16`), seconds.
* ``formula:ID`` - a paper formula (1-15) with 20 noise features and the symbolic MLP (ReLU, width 64,
  depth 2, 300 full-batch Adam epochs), trained with :func:`chaosmining.training.train_mlp` and cached
  like the Symbolic page's models. Scored by R^2 (1 - MSE / variance: 0 is predicting the mean).
* ``vision`` - 16x16 synthetic shapes and a small CNN (:mod:`.lite`), retrained in seconds.
* ``audio`` - 4-channel tone bursts in noise and a small 1-D CNN (:mod:`.lite`).
* ``vision-quick`` - the Vision page's quick preset (its data, its cached model, its trainer for every
  retraining); the audio page's presets are not offered (its quick preset now learns, but a retraining
  costs about a minute of CPU).

Units (what gets ranked and removed): features for tabular data, pixels for images (the attribution
is aggregated over colour channels), (channel, time step) cells for audio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cache import Cache
from ..config import ConfigBase
from ..data.formulas import get_formula
from ..errors import ConfigError
from ..registry import Registry
from ..validation import check_choice, check_int, param_error
from . import lite
from .toy16 import DISTRACTORS, least_squares, make_toy16

__all__ = [
    "TaskConfig",
    "TaskSpec",
    "LoadedTask",
    "OutputSpec",
    "TASKS",
    "OUTPUTS",
    "load_task",
    "task_names",
    "MODALITY_METHODS",
    "preflight_notes",
]

_OWNER = "TaskConfig"
TASK_MODEL_KIND = "eval-task-model"
# Which attribution-method modality (MethodSpec.modalities) serves each data modality.
MODALITY_METHODS = {"tabular": "symbolic", "image": "vision", "audio": "audio"}
_CHUNK = 2048


# --- what a model's output means ------------------------------------------------------------------


@dataclass(frozen=True)
class OutputSpec:
    """How to score a model's outputs ``(n, k)`` and which output an attribution explains.

    ``agreement(out, ref)`` compares perturbed outputs with the unperturbed ones (deletion/insertion
    curves): 1 means the prediction is unchanged.
    """

    name: str
    score_name: str
    score: Callable[[np.ndarray, np.ndarray], float]
    targets: Callable[[np.ndarray], np.ndarray | None]
    agreement: Callable[[np.ndarray, np.ndarray], float]


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    var = y.var()
    return float(1 - ((pred - y) ** 2).mean() / var) if var > 0 else float("nan")


def _softmax(out: np.ndarray) -> np.ndarray:
    z = out - out.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _class_probability(out: np.ndarray, ref: np.ndarray) -> float:
    cls = ref.argmax(axis=1)
    return float(_softmax(out)[np.arange(len(out)), cls].mean())


OUTPUTS: Registry[OutputSpec] = Registry("model output")
for _o in (
    OutputSpec(
        "multiclass",
        "accuracy",
        lambda out, y: float((out.argmax(axis=1) == y).mean()),
        lambda out: out.argmax(axis=1),
        _class_probability,
    ),
    OutputSpec(
        "threshold",
        "accuracy",
        lambda out, y: float(((out[:, 0] > 0.5).astype(int) == y).mean()),
        lambda out: None,
        lambda out, ref: float(((out[:, 0] > 0.5) == (ref[:, 0] > 0.5)).mean()),
    ),
    OutputSpec(
        "regression",
        "R^2",
        lambda out, y: _r2(out[:, 0], y),
        lambda out: None,
        lambda out, ref: _r2(out[:, 0], ref[:, 0]),
    ),
):
    OUTPUTS.register(_o.name, _o)


# --- configuration ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TaskConfig(ConfigBase):
    """Which task, its size, its training budget and the seed.

    ``n_train``, ``n_test`` and ``epochs`` of 0 take the task's defaults; ``distractor`` applies to
    ``toy16`` only.
    """

    task: str = "toy16"
    distractor: str = "dense"
    n_train: int = 0
    n_test: int = 0
    epochs: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        spec, arg = split_task(self.task)
        spec.check_argument(arg)
        check_choice(self.distractor, "distractor", owner=_OWNER, choices=DISTRACTORS.names())
        object.__setattr__(self, "n_train", check_int(self.n_train, "n_train", owner=_OWNER, low=0, high=200_000))
        object.__setattr__(self, "n_test", check_int(self.n_test, "n_test", owner=_OWNER, low=0, high=200_000))
        if 0 < self.n_train < 20 or 0 < self.n_test < 20:
            raise param_error(
                "n_train" if 0 < self.n_train < 20 else "n_test",
                _OWNER,
                "0 (the task's default) or an int >= 20",
                self.n_train if 0 < self.n_train < 20 else self.n_test,
            )
        object.__setattr__(self, "epochs", check_int(self.epochs, "epochs", owner=_OWNER, low=0, high=100_000))
        object.__setattr__(self, "seed", check_int(self.seed, "seed", owner=_OWNER, low=0, high=2**31 - 1))

    def hash_payload(self) -> dict[str, Any]:
        d = super().hash_payload()
        if split_task(self.task)[0].name != "toy16":
            d.pop("distractor")  # irrelevant elsewhere: keep one cache entry per real setting
        return d

    @property
    def spec(self) -> TaskSpec:
        return split_task(self.task)[0]

    def resolved(self, name: str) -> int:
        """``n_train``, ``n_test`` or ``epochs`` with the task's default filled in."""
        value = getattr(self, name)
        return value if value else self.spec.defaults[name]


# --- the loaded task --------------------------------------------------------------------------------


@dataclass(eq=False)
class LoadedTask:
    """Data, ground truth, the trained model and how to train a fresh one.

    ``relevant_*`` are boolean masks over units, shape ``(n, *unit_shape)``; ``fit(X, y, seed=...,
    scale=1.0, should_stop=None)`` returns a fresh model trained on ``(X, y)`` with ``scale`` times
    the task's training budget.
    """

    config: TaskConfig
    spec: TaskSpec
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    relevant_train: np.ndarray
    relevant_test: np.ndarray
    model: nn.Module
    fit: Callable[..., nn.Module]
    output: OutputSpec
    chance: float
    budget: str
    train_seconds: float = 0.0
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return self.spec.modality

    @property
    def method_modality(self) -> str:
        return MODALITY_METHODS[self.spec.modality]

    @property
    def unit_shape(self) -> tuple[int, ...]:
        return tuple(self.relevant_test.shape[1:])

    @property
    def n_units(self) -> int:
        return int(np.prod(self.unit_shape))

    @property
    def relevant_fraction(self) -> float:
        return float(self.relevant_test.mean())

    @property
    def score_name(self) -> str:
        return self.output.score_name

    def outputs(self, model: nn.Module, X: np.ndarray) -> np.ndarray:
        """The model's outputs ``(n, k)`` for ``X``, computed in chunks without gradients."""
        model.eval()
        parts = []
        with torch.no_grad():
            for start in range(0, len(X), _CHUNK):
                out = model(torch.as_tensor(X[start : start + _CHUNK], dtype=torch.float32))
                parts.append(out.reshape(len(out), -1).numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 1))

    def score(self, model: nn.Module, X: np.ndarray, y: np.ndarray) -> float:
        return self.output.score(self.outputs(model, X), y)

    def targets(self, model: nn.Module, X: np.ndarray) -> torch.Tensor | int:
        """What attributions explain: the predicted class of a classifier (Hooker et al.), else output 0."""
        t = self.output.targets(self.outputs(model, X))
        return 0 if t is None else torch.as_tensor(t, dtype=torch.long)

    def fill(self) -> np.ndarray:
        """Removal value of one sample's shape: the per-feature (tabular) or per-channel training mean."""
        X = self.X_train
        if self.modality == "tabular":
            return X.mean(axis=0)
        axes = tuple(range(2, X.ndim))
        return np.broadcast_to(X.mean(axis=(0, *axes)).reshape(-1, *([1] * len(axes))), X.shape[1:]).copy()

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.config.task,
            "display": self.spec.display_name,
            "modality": self.modality,
            "score_name": self.score_name,
            "chance": self.chance,
            "budget": self.budget,
            "n_train": len(self.X_train),
            "n_test": len(self.X_test),
            "n_units": self.n_units,
            "relevant_fraction": self.relevant_fraction,
            "base_score": self.score(self.model, self.X_test, self.y_test),
            "train_seconds": self.train_seconds,
            **self.extra,
        }


# --- the registry -----------------------------------------------------------------------------------

Builder = Callable[[TaskConfig, str, Cache, Callable[[], bool] | None], LoadedTask]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task. ``argument`` names what follows ``name:`` (``formula:7``), if anything.

    ``skeleton(config, argument)`` returns an untrained model of the task's architecture and the shape of
    one input, so that pre-flight checks can run before anything is trained.
    """

    name: str
    display_name: str
    modality: str
    description: str
    defaults: dict[str, int]
    build: Builder
    skeleton: Callable[[TaskConfig, str], tuple[nn.Module, tuple[int, ...]]]
    argument: str | None = None
    check: Callable[[str], None] | None = None

    def check_argument(self, arg: str | None) -> None:
        if self.argument is None and arg is not None:
            raise param_error("task", _OWNER, f"{self.name!r} without ':' and an argument", f"{self.name}:{arg}")
        if self.argument is not None and not arg:
            raise param_error("task", _OWNER, f"'{self.name}:{self.argument.upper()}'", self.name)
        if self.check is not None and arg is not None:
            self.check(arg)


TASKS: Registry[TaskSpec] = Registry("evaluation task")


def split_task(task: str) -> tuple[TaskSpec, str | None]:
    """``"formula:7"`` -> (the formula spec, ``"7"``). Unknown names raise a :class:`ConfigError`."""
    if not isinstance(task, str):
        raise param_error("task", _OWNER, f"one of {task_names()}", task)
    name, _, arg = task.partition(":")
    if name not in TASKS:
        raise param_error("task", _OWNER, f"one of {task_names()}", task)
    return TASKS.get(name), (arg or None) if ":" in task else None


def task_names() -> list[str]:
    """Task names as the CLI accepts them (``formula:ID`` for the formula task)."""
    return [f"{n}:{s.argument.upper()}" if s.argument else n for n, s in TASKS.items()]


def load_task(
    config: TaskConfig, *, cache: Cache | None = None, should_stop: Callable[[], bool] | None = None
) -> LoadedTask:
    """Build the task's data and its trained model (from the cache when it was trained before)."""
    spec, arg = split_task(config.task)
    return spec.build(config, arg or "", cache or Cache(), should_stop)


# --- toy16 -------------------------------------------------------------------------------------------


def _build_toy16(config: TaskConfig, _arg: str, _cache: Cache, _stop: Callable[[], bool] | None) -> LoadedTask:
    data = make_toy16(config.resolved("n_train"), config.resolved("n_test"), config.distractor, config.seed)

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int = 0, scale: float = 1.0, should_stop: Any = None) -> nn.Module:
        return least_squares(X, y)

    return LoadedTask(
        config=config,
        spec=TASKS.get("toy16"),
        X_train=data.X_train,
        y_train=data.y_train,
        X_test=data.X_test,
        y_test=data.y_test,
        relevant_train=np.broadcast_to(data.relevant, data.X_train.shape),
        relevant_test=np.broadcast_to(data.relevant, data.X_test.shape),
        model=least_squares(data.X_train, data.y_train),
        fit=fit,
        output=OUTPUTS.get("threshold"),
        chance=0.5,
        budget="least squares in closed form (no training budget to confound the curve)",
        extra={"distractor": config.distractor, "d": data.d.tolist()},
    )


# --- formula:ID --------------------------------------------------------------------------------------


def _formula_configs(config: TaskConfig, formula: str) -> Any:
    from ..data.symbolic import SymbolicDataConfig
    from ..experiments.symbolic import SymbolicConfig
    from ..models.mlp import MLPConfig
    from ..training import TrainConfig

    n = config.resolved("n_train") + config.resolved("n_test")
    return SymbolicConfig(
        data=SymbolicDataConfig(
            formula=formula, noise_features=20, samples=n, test_fraction=config.resolved("n_test") / n
        ),
        model=MLPConfig(width=64, depth=2, activation="relu"),
        train=TrainConfig(epochs=config.resolved("epochs"), lr=3e-3, snapshots=1),
        seed=config.seed,
    )


def _check_formula(arg: str) -> None:
    get_formula(arg)


def _build_formula(config: TaskConfig, arg: str, cache: Cache, stop: Callable[[], bool] | None) -> LoadedTask:
    from ..data.symbolic import make_symbolic_data
    from ..experiments.symbolic import train_symbolic_model
    from ..training import train_mlp

    sym = _formula_configs(config, arg)
    ds = make_symbolic_data(sym.data, sym.seed)
    trained, cached, _ = train_symbolic_model(sym, cache=cache, device="cpu", should_stop=stop, dataset=ds)

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int = 0, scale: float = 1.0, should_stop: Any = None) -> nn.Module:
        train = sym.train.replace(epochs=max(1, round(sym.train.epochs * scale)))
        return train_mlp(X, y, sym.model, train, seed=seed).model()

    rel = ds.relevant_mask
    return LoadedTask(
        config=config,
        spec=TASKS.get("formula"),
        X_train=ds.X_train.astype(np.float32),
        y_train=ds.y_train.astype(np.float32),
        X_test=ds.X_test.astype(np.float32),
        y_test=ds.y_test.astype(np.float32),
        relevant_train=np.broadcast_to(rel, ds.X_train.shape),
        relevant_test=np.broadcast_to(rel, ds.X_test.shape),
        model=trained.model(),
        fit=fit,
        output=OUTPUTS.get("regression"),
        chance=0.0,
        budget=f"MLP (ReLU, width 64, depth 2), {sym.train.epochs} full-batch Adam epochs at lr 3e-3 per training",
        train_seconds=trained.seconds,
        cached=cached,
        extra={"formula": ds.formula.text, "relevant_features": list(ds.relevant)},
    )


# --- vision and audio (lite) -------------------------------------------------------------------------


def _lite_builder(make: Callable[..., lite.LiteData], net: Callable[[], nn.Module], name: str, what: str) -> Builder:
    def build(config: TaskConfig, _arg: str, cache: Cache, stop: Callable[[], bool] | None) -> LoadedTask:
        train = make(config.resolved("n_train"), config.seed)
        test = make(config.resolved("n_test"), config.seed + 10_000)
        epochs = config.resolved("epochs")

        def fit(
            X: np.ndarray, y: np.ndarray, *, seed: int = 0, scale: float = 1.0, should_stop: Any = None
        ) -> nn.Module:
            model, _ = lite.train_classifier(
                net(), X, y, epochs=max(1, round(epochs * scale)), seed=seed, should_stop=should_stop
            )
            return model

        seconds: dict[str, float] = {}

        def build_model(folder: Path) -> dict[str, Any]:
            model, secs = lite.train_classifier(
                net(), train.X, train.y, epochs=epochs, seed=config.seed, should_stop=stop
            )
            torch.save(model.state_dict(), folder / "model.pt")
            seconds["train"] = secs
            return {"train_seconds": secs}

        outcome = cache.get_or_create(TASK_MODEL_KIND, config.config_hash, build_model, config=config)
        model = net()
        model.load_state_dict(torch.load(outcome.entry.file("model.pt"), map_location="cpu", weights_only=True))
        classes = int(train.y.max()) + 1
        return LoadedTask(
            config=config,
            spec=TASKS.get(name),
            X_train=train.X,
            y_train=train.y,
            X_test=test.X,
            y_test=test.y,
            relevant_train=train.relevant,
            relevant_test=test.relevant,
            model=model.eval(),
            fit=fit,
            output=OUTPUTS.get("multiclass"),
            chance=1.0 / classes,
            budget=f"{what}, {epochs} epochs of Adam (lr 3e-3, batch 64) on {len(train.X)} examples per training",
            train_seconds=float(outcome.entry.meta.get("train_seconds", seconds.get("train", 0.0))),
            cached=outcome.cached,
        )

    return build


# --- vision-quick: the Vision page's quick preset ----------------------------------------------------


def _uint8_images(X: np.ndarray) -> np.ndarray:
    """Model inputs in [-1, 1], ``(n, 3, H, W)`` -> the uint8 ``(n, H, W, 3)`` images the vision trainer reads."""
    return np.clip(np.rint((X + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def _build_vision_preset(config: TaskConfig, _arg: str, cache: Cache, stop: Callable[[], bool] | None) -> LoadedTask:
    from ..data.vision import VisionData, VisionSplit, make_vision_data, to_model_input
    from ..experiments.vision import VisionConfig, fit_classifier, train_vision_model
    from ..models.vision import ARCHITECTURES, build_model

    vcfg = VisionConfig.from_preset(
        "quick",
        seed=config.seed,
        train={"epochs": config.epochs or None},
        train_size=config.n_train or None,
        val_size=config.n_test or None,
    )
    trained, cached, _ = train_vision_model(vcfg, cache=cache, device="cpu", should_stop=stop)
    data = make_vision_data(vcfg.data, vcfg.seed)
    train_images, test_images = data.train.materialise(), data.val.materialise()
    spec = ARCHITECTURES.get(vcfg.model)

    def fit(X: np.ndarray, y: np.ndarray, *, seed: int = 0, scale: float = 1.0, should_stop: Any = None) -> nn.Module:
        images = _uint8_images(X)
        split = VisionSplit(
            "train", y, data.train.boxes[: len(y)], data.class_names, vcfg.data.canvas, images.__getitem__
        )
        split._array = images
        val = VisionSplit("val", y[:32], data.train.boxes[:32], data.class_names, vcfg.data.canvas, images.__getitem__)
        model = build_model(vcfg.model, data.n_classes, vcfg.data.canvas, seed % 2**31)
        # Retrainings see the removed images as they are: recomposing would move the removal patterns.
        train = vcfg.train.replace(epochs=max(1, round(vcfg.train.epochs * scale)), recompose=False)
        fit_classifier(
            model,
            spec,
            VisionData(vcfg.data, seed, split, val, data.class_names),
            train,
            seed=seed,
            device=torch.device("cpu"),
            should_stop=should_stop,
            val_limit=32,
        )
        return model.eval()

    return LoadedTask(
        config=config,
        spec=TASKS.get("vision-quick"),
        X_train=to_model_input(train_images),
        y_train=data.train.labels,
        X_test=to_model_input(test_images),
        y_test=data.val.labels,
        relevant_train=data.train.masks(),
        relevant_test=data.val.masks(),
        model=trained.model.to("cpu").eval(),
        fit=fit,
        output=OUTPUTS.get("multiclass"),
        chance=1.0 / data.n_classes,
        budget=(
            f"the Vision page's quick preset: {vcfg.model} on {len(train_images)} images of {vcfg.data.canvas} px, "
            f"{vcfg.train.epochs} epochs of AdamW ({vcfg.train.schedule}) per training"
        ),
        train_seconds=trained.seconds,
        cached=cached,
    )


def _formula_skeleton(config: TaskConfig, arg: str) -> tuple[nn.Module, tuple[int, ...]]:
    from ..models.mlp import build_mlp

    sym = _formula_configs(config, arg)
    return build_mlp(sym.data.n_features, sym.model), (sym.data.n_features,)


def _vision_preset_skeleton(config: TaskConfig, _arg: str) -> tuple[nn.Module, tuple[int, ...]]:
    from ..experiments.vision import VisionConfig
    from ..models.vision import build_model

    vcfg = VisionConfig.from_preset("quick", seed=config.seed)
    return build_model(vcfg.model, 10, vcfg.data.canvas, 0), (3, vcfg.data.canvas, vcfg.data.canvas)


def preflight_notes(config: TaskConfig, methods: Sequence[str]) -> list[tuple[str, str, bool]]:
    """Pre-flight notes ``(method, message, fatal)`` for the task's architecture, before any training.

    ``fatal`` notes name methods that cannot run on it (reused modules for DeepLift); the others say
    what a hook-based method will compute instead (missing DeepLift rules, functional activations).
    """
    from ..attribution import METHODS, preflight

    spec, arg = split_task(config.task)
    model, shape = spec.skeleton(config, arg or "")
    example = torch.zeros(1, *shape)
    notes = []
    for m in methods:
        if m not in METHODS or not METHODS.get(m).checks:
            continue
        try:
            notes += [(m, n, False) for n in preflight(model.eval(), m, example)]
        except ConfigError as exc:
            notes.append((m, str(exc), True))
    return notes


for _spec in (
    TaskSpec(
        "toy16",
        "16-d toy (Hooker et al.)",
        "tabular",
        "x = a z/10 + d eta + eps/10 with 4 informative dimensions, y = 1(z > 0), least squares.",
        {"n_train": 4000, "n_test": 4000, "epochs": 1},
        _build_toy16,
        lambda config, arg: (nn.Linear(16, 1), (16,)),
    ),
    TaskSpec(
        "formula",
        "Symbolic formula (MLP)",
        "tabular",
        "A paper formula with 20 noise features, fitted by the symbolic MLP; scored by R^2.",
        {"n_train": 2000, "n_test": 500, "epochs": 300},
        _build_formula,
        _formula_skeleton,
        argument="id",
        check=_check_formula,
    ),
    TaskSpec(
        "vision",
        "Shapes 16x16 (CNN)",
        "image",
        "Four 6x6 shapes in a random colour at a random position on smoothed noise; a small CNN.",
        {"n_train": 2500, "n_test": 1000, "epochs": 6},
        _lite_builder(lite.make_shapes16, lite.shapes_cnn, "vision", "CNN 16-32-32"),
        lambda config, arg: (lite.shapes_cnn(), (3, 16, 16)),
    ),
    TaskSpec(
        "audio",
        "Tone bursts, 4 channels (1-D CNN)",
        "audio",
        "A 64-step tone (its frequency is the class) in one of 4 noisy channels; a small 1-D CNN.",
        {"n_train": 2500, "n_test": 1000, "epochs": 6},
        _lite_builder(lite.make_tones, lite.tones_cnn, "audio", "1-D CNN 16-32-32"),
        lambda config, arg: (lite.tones_cnn(), (4, 256)),
    ),
    TaskSpec(
        "vision-quick",
        "Vision page, quick preset",
        "image",
        "The Vision page's quick preset (a 32-px shape on a 112-px canvas of random pixels, the compact CNN); "
        "shares its trained model. Each retraining takes about a minute.",
        {"n_train": 4000, "n_test": 500, "epochs": 4},
        _build_vision_preset,
        _vision_preset_skeleton,
    ),
):
    TASKS.register(_spec.name, _spec)


def check_methods(methods: tuple[str, ...], task: str, owner: str) -> None:
    """Raise a :class:`ConfigError` naming the methods that do not apply to ``task``'s modality."""
    from ..attribution import METHODS

    modality = MODALITY_METHODS[split_task(task)[0].modality]
    bad = [m for m in methods if m in METHODS and modality not in METHODS.get(m).modalities]
    if bad:
        raise ConfigError(
            f"The 'methods' parameter of {owner} must name methods that apply to {modality} data. Got {bad} instead."
        )
