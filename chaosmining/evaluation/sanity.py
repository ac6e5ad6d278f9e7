"""Sanity checks: do the maps change when the model's parameters or the training labels are randomised?

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, *Sanity Checks for Saliency Maps*, NeurIPS 2018,
https://arxiv.org/abs/1810.03292; the random-logit test of Sixt, Granz & Landgraf, *When Explanations
Lie*, ICML 2020, https://arxiv.org/abs/1912.09818.

Tests (``test``):

* ``cascading`` - re-draw the weights layer by layer from the top (output layer first), keeping the
  earlier randomisations, and compare each map with the trained model's map;
* ``independent`` - re-draw one layer at a time;
* ``labels`` - train a model on permuted training labels until it memorises them, and compare its maps
  with the trained model's; a second model trained on the *true* labels with another seed is the
  control (two honest models do not agree perfectly either);
* ``random-logit`` - compare the map of the predicted class with the map of a random other class
  (classifiers only).

A method that passes produces maps that *differ* (similarity near 0) from the trained model's. Maps always
explain the class the trained model predicted. Weights are re-drawn from PyTorch's default
distributions with a seeded generator (:func:`.lite.reinitialise`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..attribution import attribute
from ..cache import Cache
from ..errors import AttributionMethodError, ConfigError
from ..registry import Registry
from ..validation import check_choice, check_float, check_int
from .common import MethodsConfig, Progress, cached_summary, derive_seed
from .estimators import CONTROLS, estimator_label
from .lite import reinitialise
from .similarity import SIMILARITIES, similarities_for, similarity
from .tasks import LoadedTask, load_task

__all__ = ["SanityConfig", "SanityResult", "run_sanity", "SANITY_TESTS", "parametrised_layers", "randomised"]

KIND = "eval-sanity"
DEFAULT_SANITY_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "guided_backprop", "smoothgrad")
_OWNER = "SanityConfig"
PERMUTED = "true vs permuted labels"
CONTROL = "true vs true (other seed)"


@dataclass(frozen=True, kw_only=True)
class SanityConfig(MethodsConfig):
    """One sanity check on ``samples`` test rows.

    The ``labels`` test trains three models on the first ``label_samples`` training examples: two on the
    true labels (seeds differ; ``true_scale`` times the task's training budget) and one on permuted labels
    with ``memorise`` times the budget (memorising noise takes longer than learning).
    """

    methods: tuple[str, ...] = DEFAULT_SANITY_METHODS
    test: str = "cascading"
    samples: int = 64
    label_samples: int = 500
    true_scale: float = 5.0
    memorise: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.test, "test", owner=_OWNER, choices=SANITY_TESTS.names())
        controls = [m for m in self.methods if m in CONTROLS]
        if controls:
            raise ConfigError(
                f"The 'methods' parameter of {_OWNER} must name attribution methods: controls such as {controls} "
                "ignore the model, so randomising it tells nothing."
            )
        object.__setattr__(self, "samples", check_int(self.samples, "samples", owner=_OWNER, low=2, high=100_000))
        object.__setattr__(self, "memorise", check_float(self.memorise, "memorise", owner=_OWNER, low=0.1, high=1000.0))
        object.__setattr__(
            self, "true_scale", check_float(self.true_scale, "true_scale", owner=_OWNER, low=0.1, high=1000.0)
        )
        object.__setattr__(
            self, "label_samples", check_int(self.label_samples, "label_samples", owner=_OWNER, low=20, high=1_000_000)
        )


def parametrised_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Leaf modules that hold parameters, in the order the forward pass calls them (input first)."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if not list(module.children()) and list(module.parameters(recurse=False)):
            handles.append(module.register_forward_hook(lambda m, i, o, name=name: order.append(name)))
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    modules = dict(model.named_modules())
    return [(n, modules[n]) for n in dict.fromkeys(order)]


def randomised(model: nn.Module, names: list[str], seed: int) -> nn.Module:
    """A copy of ``model`` whose modules ``names`` have freshly drawn weights."""
    twin = copy.deepcopy(model)
    modules = dict(twin.named_modules())
    gen = torch.Generator().manual_seed(seed)
    for n in names:
        reinitialise(modules[n], gen)
    return twin.eval()


def _layer_label(name: str, module: nn.Module) -> str:
    return f"{type(module).__name__} {name}" if name else type(module).__name__


@dataclass
class SanityResult:
    """``values[method][step][metric]`` = (mean, std over samples) of the similarity to the trained model's map.

    ``steps`` are the layers randomised (top first), the two comparisons of the label test, or the one
    comparison of the random-logit test. ``errors`` holds the message of each method that failed (no values).
    """

    config: SanityConfig
    task: dict[str, Any]
    steps: list[str]
    metrics: list[str]
    values: dict[str, dict[str, dict[str, tuple[float, float]]]]
    info: dict[str, Any]
    seconds: float = 0.0
    cached: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON: per method and layer (or model) each similarity value."""
        return {
            "evaluation": "sanity",
            "test": self.config.test,
            "task": self.task,
            "steps": self.steps,
            "metrics": self.metrics,
            "methods": {
                m: {s: {k: v[0] for k, v in by.items()} for s, by in steps.items()} for m, steps in self.values.items()
            },
            "spread": {
                m: {s: {k: v[1] for k, v in by.items()} for s, by in steps.items()} for m, steps in self.values.items()
            },
            "info": self.info,
            "errors": self.errors,
            "seconds": self.seconds,
            "cached": self.cached,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        from ..export import bundle_json

        return bundle_json("sanity", self.config.to_dict(), self.summary())

    def table(self) -> list[dict[str, Any]]:
        return [
            {"method": estimator_label(m), "key": m, "step": s, "metric": k, "value": v[0], "std": v[1]}
            for m, steps in self.values.items()
            for s, by in steps.items()
            for k, v in by.items()
        ]

    def reading(self) -> str:
        """Which methods' maps stay similar to the trained model's (fail) and which change (pass)."""
        primary = next((k for k in self.metrics if SIMILARITIES.get(k).primary), self.metrics[0])
        step = {"cascading": self.steps[0] if self.steps else None, "labels": PERMUTED}.get(self.config.test)
        step = step or (self.steps[0] if self.steps else None)
        if step is None:
            return ""
        level = {m: by[step][primary][0] for m, by in self.values.items() if step in by}
        fail = sorted((m for m, v in level.items() if v > 0.5), key=lambda m: -level[m])
        passed = [m for m, v in level.items() if v < 0.3]
        what = {
            "cascading": f"after re-drawing only the top layer ({step})",
            "independent": f"after re-drawing only {step}",
            "labels": "between the trained model and one trained on permuted labels",
            "random-logit": "between the predicted class's map and a random other class's map",
        }[self.config.test]
        text = [f"{SIMILARITIES.get(primary).display_name} {what}: a faithful method changes its map (value near 0)."]
        if passed:
            text.append(f"Pass: {', '.join(estimator_label(m) for m in passed)}.")
        if fail:
            text.append(
                f"Fail (the map barely changes, so it does not depend on what changed): "
                f"{', '.join(f'{estimator_label(m)} ({level[m]:.2f})' for m in fail)}."
            )
        if self.config.test == "labels" and CONTROL in self.steps:
            ctrl = {m: by[CONTROL][primary][0] for m, by in self.values.items() if CONTROL in by}
            text.append(
                "Control: two models trained on the true labels with different seeds agree at "
                + ", ".join(f"{estimator_label(m)} {v:.2f}" for m, v in ctrl.items())
                + "; a permuted-label value far below its control is a pass."
            )
        return " ".join(text)


Comparison = tuple[str, nn.Module, Any]  # (label, model, target) whose maps are compared with the reference's


@dataclass
class _Plan:
    """What a test compares: the reference model, the comparisons, and facts to report."""

    reference: nn.Module
    comparisons: list[Comparison]
    info: dict[str, Any]


def _randomisation(independent: bool) -> Callable[..., _Plan]:
    def plan(task: LoadedTask, config: SanityConfig, X: np.ndarray, target: Any, progress: Progress) -> _Plan:
        layers = parametrised_layers(task.model, torch.as_tensor(X[:1]))[::-1]
        comparisons = []
        for i, (name, module) in enumerate(layers):
            names = [name] if independent else [n_ for n_, _ in layers[: i + 1]]
            label = ("+ " if not independent and i else "") + _layer_label(name, module)
            comparisons.append((label, randomised(task.model, names, derive_seed(config.task.seed, i, 0x5A)), target))
        return _Plan(task.model, comparisons, {"layers": [_layer_label(n_, m_) for n_, m_ in layers]})

    return plan


def _labels(task: LoadedTask, config: SanityConfig, X: np.ndarray, target: Any, progress: Progress) -> _Plan:
    seed = config.task.seed
    n = min(config.label_samples, len(task.X_train))
    Xs, ys = task.X_train[:n], task.y_train[:n]
    permuted = np.random.default_rng(derive_seed(seed, 0x1AB)).permutation(ys)
    progress.stage(f"training on the true labels of {n} examples")
    true = task.fit(Xs, ys, seed=derive_seed(seed, 1), scale=config.true_scale, should_stop=progress.check)
    progress.stage("training the true-label control (another seed)")
    control = task.fit(Xs, ys, seed=derive_seed(seed, 2), scale=config.true_scale, should_stop=progress.check)
    progress.stage("training on permuted labels until they are memorised")
    shuffled = task.fit(Xs, permuted, seed=derive_seed(seed, 3), scale=config.memorise, should_stop=progress.check)
    info = {
        "label_samples": n,
        "true_train_score": task.score(true, Xs, ys),
        "true_test_score": task.score(true, task.X_test, task.y_test),
        "control_test_score": task.score(control, task.X_test, task.y_test),
        "permuted_train_score": task.score(shuffled, Xs, permuted),
        "permuted_test_score": task.score(shuffled, task.X_test, task.y_test),
        "true_scale": config.true_scale,
        "memorise": config.memorise,
    }
    target = task.targets(true, X)
    return _Plan(true, [(PERMUTED, shuffled, target), (CONTROL, control, target)], info)


def _random_logit(task: LoadedTask, config: SanityConfig, X: np.ndarray, target: Any, progress: Progress) -> _Plan:
    out = task.outputs(task.model, X)
    if out.shape[1] < 2 or task.output.name != "multiclass":
        raise ConfigError(
            f"The 'test' parameter of {_OWNER} can be 'random-logit' only for classifiers with several outputs; "
            f"task {config.task.task!r} has {out.shape[1]} output(s)."
        )
    rng = np.random.default_rng(derive_seed(config.task.seed, 0x106))
    pred = out.argmax(axis=1)
    other = (pred + rng.integers(1, out.shape[1], len(pred))) % out.shape[1]
    return _Plan(
        task.model,
        [("predicted vs random other class", task.model, torch.as_tensor(other))],
        {"classes": int(out.shape[1])},
    )


@dataclass(frozen=True)
class SanityTestSpec:
    name: str
    description: str
    plan: Callable[[LoadedTask, SanityConfig, np.ndarray, Any, Progress], _Plan]


SANITY_TESTS: Registry[SanityTestSpec] = Registry("sanity test")
for _t in (
    SanityTestSpec("cascading", "cascading parameter randomisation, from the output layer down", _randomisation(False)),
    SanityTestSpec("independent", "one layer at a time re-drawn", _randomisation(True)),
    SanityTestSpec("labels", "models trained on permuted labels, with a true-label control of another seed", _labels),
    SanityTestSpec("random-logit", "the map of a random other class", _random_logit),
):
    SANITY_TESTS.register(_t.name, _t)


def run_sanity(
    config: SanityConfig,
    *,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SanityResult:
    """Run (or load from the cache) one sanity check."""
    cache = cache or Cache()

    def compute() -> dict[str, Any]:
        progress = Progress(1, report, should_stop)
        progress.stage("training the model to explain")
        task = load_task(config.task, cache=cache, should_stop=progress.check)
        X = task.X_test[: min(config.samples, len(task.X_test))]
        seed = config.task.seed
        plan = SANITY_TESTS.get(config.test).plan(task, config, X, task.targets(task.model, X), progress)
        target = plan.comparisons[0][2] if config.test == "labels" else task.targets(task.model, X)
        metrics = similarities_for(task.modality)
        progress.total = max(1, (len(plan.comparisons) + 1) * len(config.methods))
        values: dict[str, dict[str, dict[str, list[float]]]] = {}
        errors: dict[str, str] = {}
        for m in config.methods:
            params = config.params_for(m)
            try:
                values[m] = _method_values(m, params, plan, X, target, seed, metrics, task.modality, progress)
            except AttributionMethodError as exc:  # this method fails alone; the others are scored
                errors[m] = str(exc)
        return {
            "task": task.describe(),
            "steps": [c[0] for c in plan.comparisons],
            "metrics": metrics,
            "values": values,
            "info": plan.info,
            "errors": errors,
        }

    summary, cached, seconds = cached_summary(cache, KIND, config, compute)
    values = {
        m: {s: {k: (float(v[0]), float(v[1])) for k, v in by.items()} for s, by in steps.items()}
        for m, steps in summary["values"].items()
    }
    return SanityResult(
        config,
        summary["task"],
        summary["steps"],
        summary["metrics"],
        values,
        summary["info"],
        seconds,
        cached,
        errors=dict(summary.get("errors", {})),
    )


def _method_values(
    m: str,
    params: dict[str, Any],
    plan: _Plan,
    X: np.ndarray,
    target: Any,
    seed: int,
    metrics: list[str],
    modality: str,
    progress: Progress,
) -> dict[str, dict[str, list[float]]]:
    """``[step][metric] = [mean, std]`` of method ``m``'s similarity to the reference map, per comparison."""
    reference = attribute(plan.reference, X, m, target=target, params=params, seed=seed).values
    progress.step(f"{estimator_label(m)}: the reference map")
    out: dict[str, dict[str, list[float]]] = {}
    for label, model, tgt in plan.comparisons:
        other = attribute(model, X, m, target=tgt, params=params, seed=seed).values
        out[label] = {}
        for k in metrics:
            sims = similarity(k, reference, other, modality)
            out[label][k] = [float(np.nanmean(sims)), float(np.nanstd(sims))]
        progress.step(f"{estimator_label(m)}: {label}")
    return out
