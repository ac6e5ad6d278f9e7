"""Faithfulness without retraining: deletion and insertion curves, and Sensitivity-n.

* **Deletion / insertion** (Petsiuk, Das & Saenko, RISE, BMVC 2018, https://arxiv.org/abs/1806.07421):
  remove the units in the estimator's order (most relevant first), replacing them by the training mean,
  and track how much the prediction survives; insertion starts from a blurred copy (images: Gaussian,
  sigma = side / 8; audio: along time, sigma = length / 32; tabular: the training mean) and puts the
  original units back in the same order. "Survives" is the mean probability of the originally predicted
  class (classifiers), the share of unchanged decisions (the thresholded 16-d toy) or the R^2 of the
  perturbed against the original predictions (regressors). Area under the curve: lower is better for
  deletion, higher for insertion. The spread is over five folds of the samples.
* **Sensitivity-n** (Ancona, Ceolini, Oeztireli & Gross, ICLR 2018, https://arxiv.org/abs/1711.06104):
  for random subsets S of n units, the Pearson correlation between the sum of the attributions over S
  and the drop of the explained output when S is set to the baseline 0, per sample, averaged. On a
  linear model with a zero baseline, Input x Gradient, Integrated Gradients and DeepLift give 1 for every
  n; Occlusion-1 (feature ablation) gives 1 at n = 1 on any model. The spread is over samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..attribution import attribute
from ..cache import Cache
from ..errors import AttributionMethodError
from ..validation import check_int
from .common import Curve, MethodsConfig, Progress, cached_summary, derive_seed
from .estimators import CONTROLS, estimator_label, estimator_scores
from .removal import expand_mask, rank_units, unit_scores
from .tasks import LoadedTask, load_task

__all__ = ["FaithfulnessConfig", "FaithfulnessResult", "run_faithfulness", "sensitivity_n", "insertion_substrate"]

KIND = "eval-faithfulness"
DEFAULT_FAITH_METHODS = ("saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "random", "oracle")
_OWNER = "FaithfulnessConfig"
FOLDS = 5


@dataclass(frozen=True, kw_only=True)
class FaithfulnessConfig(MethodsConfig):
    """Deletion/insertion on ``samples`` test rows in ``steps`` steps; Sensitivity-n on ``sens_samples``
    rows with ``subsets`` random subsets per size in ``n_values`` (``()``: powers of two up to 80 % of
    the units)."""

    methods: tuple[str, ...] = DEFAULT_FAITH_METHODS
    samples: int = 200
    steps: int = 16
    sens_samples: int = 50
    subsets: int = 100
    n_values: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "samples", check_int(self.samples, "samples", owner=_OWNER, low=FOLDS, high=100_000))
        object.__setattr__(self, "steps", check_int(self.steps, "steps", owner=_OWNER, low=2, high=1000))
        object.__setattr__(
            self, "sens_samples", check_int(self.sens_samples, "sens_samples", owner=_OWNER, low=2, high=100_000)
        )
        object.__setattr__(self, "subsets", check_int(self.subsets, "subsets", owner=_OWNER, low=3, high=100_000))
        object.__setattr__(
            self,
            "n_values",
            tuple(sorted({check_int(n, "n_values", owner=_OWNER, low=1, high=10_000_000) for n in self.n_values})),
        )


def insertion_substrate(X: np.ndarray, modality: str, fill: np.ndarray) -> np.ndarray:
    """The starting point of insertion: a blurred copy (images, audio) or the training mean (tabular)."""
    if modality == "image":
        s = max(1.0, X.shape[-1] / 8)
        return ndimage.gaussian_filter(X, sigma=(0, 0, s, s), mode="nearest").astype(X.dtype)
    if modality == "audio":
        return ndimage.gaussian_filter(X, sigma=(0, 0, max(1.0, X.shape[-1] / 32)), mode="nearest").astype(X.dtype)
    return np.broadcast_to(fill, X.shape).astype(X.dtype)


def _curve_points(
    task: LoadedTask, order: np.ndarray, X: np.ndarray, start: np.ndarray, steps: int, ref: np.ndarray
) -> np.ndarray:
    """Agreement with ``ref`` after moving the first ``k`` ranked units from ``X`` to ``start``, for
    ``steps + 1`` evenly spaced k, per fold: shape ``(FOLDS, steps + 1)``."""
    n, U = order.shape
    folds = np.array_split(np.arange(n), FOLDS)
    out = np.zeros((FOLDS, steps + 1))
    for j in range(steps + 1):
        k = round(j * U / steps)
        mask = np.zeros((n, U), dtype=bool)
        np.put_along_axis(mask, order[:, :k], True, axis=1)
        full = expand_mask(mask.reshape(n, *task.unit_shape), X.shape[1:], task.modality)
        out_j = task.outputs(task.model, np.where(full, start, X).astype(X.dtype))
        for f, rows in enumerate(folds):
            out[f, j] = task.output.agreement(out_j[rows], ref[rows])
    return out


def _explained(task: LoadedTask, out: np.ndarray, target: Any) -> np.ndarray:
    if isinstance(target, torch.Tensor):
        return out[np.arange(len(out)), target.numpy()]
    return out[:, int(target)]


def sensitivity_n(
    task: LoadedTask,
    attributions: np.ndarray,
    X: np.ndarray,
    n_values: Sequence[int],
    subsets: int,
    seed: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """Per-sample Pearson correlations ``(len(n_values), n)`` of sum_S R with f(x) - f(x_S = 0).

    ``attributions`` have the inputs' shape; they are summed (signed) over colour channels per pixel.
    """
    target = task.targets(task.model, X)
    base = _explained(task, task.outputs(task.model, X), target)
    R = unit_scores(attributions, task.modality, "signed").reshape(len(X), -1)
    n, U = R.shape
    rng = np.random.default_rng(derive_seed(seed, 0x5E))
    tgt = target.repeat_interleave(subsets) if isinstance(target, torch.Tensor) else target
    out = np.full((len(n_values), n), np.nan)
    for i, size in enumerate(n_values):
        size = min(size, U)
        keys = rng.random((n, subsets, U))
        chosen = np.argpartition(keys, size - 1, axis=2)[:, :, :size]
        mask = np.zeros((n, subsets, U), dtype=bool)
        np.put_along_axis(mask, chosen, True, axis=2)
        sums = (mask * R[:, None, :]).sum(axis=2)
        rows = mask.reshape(n * subsets, *task.unit_shape)
        Xrep = np.repeat(X, subsets, axis=0)
        perturbed = np.where(expand_mask(rows, X.shape[1:], task.modality), 0.0, Xrep).astype(X.dtype)
        drop = np.repeat(base, subsets) - _explained(task, task.outputs(task.model, perturbed), tgt)
        drop = drop.reshape(n, subsets)
        a = sums - sums.mean(axis=1, keepdims=True)
        b = drop - drop.mean(axis=1, keepdims=True)
        denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(denom > 1e-12, (a * b).sum(axis=1) / np.where(denom > 1e-12, denom, 1), np.nan)
        if progress is not None:
            progress.check()
    return out


def default_n_values(n_units: int) -> tuple[int, ...]:
    """Powers of two from 1 up to 80 % of the units (at most 8 values)."""
    top = max(1, int(0.8 * n_units))
    values = [2**i for i in range(0, 30) if 2**i <= top]
    if len(values) > 8:
        values = [int(v) for v in np.unique(np.geomspace(1, top, 8).round().astype(int))]
    return tuple(values)


@dataclass
class FaithfulnessResult:
    """Deletion and insertion curves (x: fraction of units moved) and Sensitivity-n (x: n), per estimator;
    ``errors`` holds the message of each estimator that failed (no curves)."""

    config: FaithfulnessConfig
    task: dict[str, Any]
    deletion: dict[str, Curve]
    insertion: dict[str, Curve]
    sensitivity: dict[str, Curve]
    n_values: tuple[int, ...]
    seconds: float = 0.0
    cached: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def aucs(self) -> dict[str, dict[str, float]]:
        return {
            k: {"deletion_auc": self.deletion[k].area(), "insertion_auc": self.insertion[k].area()}
            for k in self.deletion
        }

    def summary(self) -> dict[str, Any]:
        return {
            "evaluation": "faithfulness",
            "task": self.task,
            "auc": self.aucs(),
            "methods": {k: c.points() for k, c in self.deletion.items()},
            "deletion": {k: c.to_dict() for k, c in self.deletion.items()},
            "insertion": {k: c.to_dict() for k, c in self.insertion.items()},
            "sensitivity_n": {k: c.to_dict() for k, c in self.sensitivity.items()},
            "n_values": list(self.n_values),
            "errors": self.errors,
            "seconds": self.seconds,
            "cached": self.cached,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        from ..export import bundle_json

        return bundle_json("faithfulness", self.config.to_dict(), self.summary())

    def table(self) -> list[dict[str, Any]]:
        rows = [{"estimator": self.deletion[k].label, "key": k, **v} for k, v in self.aucs().items()]
        for k, c in self.sensitivity.items():
            for n, s in zip(c.fractions, c.score):
                rows.append({"estimator": c.label, "key": k, "n": int(n), "sensitivity_n": s})
        return rows

    def reading(self) -> str:
        aucs = self.aucs()
        if not aucs:
            return ""
        best_del = min(aucs, key=lambda k: aucs[k]["deletion_auc"])
        best_ins = max(aucs, key=lambda k: aucs[k]["insertion_auc"])
        text = [
            f"Lowest deletion AUC (the prediction collapses soonest): {self.deletion[best_del].label} "
            f"({aucs[best_del]['deletion_auc']:.3f}); highest insertion AUC: {self.insertion[best_ins].label} "
            f"({aucs[best_ins]['insertion_auc']:.3f})."
        ]
        if "random" in aucs:
            text.append(
                f"Random order: deletion {aucs['random']['deletion_auc']:.3f}, insertion "
                f"{aucs['random']['insertion_auc']:.3f}."
            )
        if self.sensitivity:
            mean = {k: float(np.nanmean(c.score)) for k, c in self.sensitivity.items()}
            top = max(mean, key=mean.get)
            text.append(
                f"Sensitivity-n: the attributions of {self.sensitivity[top].label} track the output's drop best "
                f"(mean correlation {mean[top]:.2f} over n); 1 would mean the attributions add up exactly like the "
                "model's response to removing any n units."
            )
        return " ".join(text)


def run_faithfulness(
    config: FaithfulnessConfig,
    *,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FaithfulnessResult:
    """Run (or load from the cache) deletion/insertion curves and Sensitivity-n."""
    cache = cache or Cache()

    def compute() -> dict[str, Any]:
        progress = Progress(len(config.methods) * 3, report, should_stop)
        progress.stage("training the model to explain")
        task = load_task(config.task, cache=cache, should_stop=progress.check)
        seed = config.task.seed
        n = min(config.samples, len(task.X_test))
        X = task.X_test[:n]
        ref = task.outputs(task.model, X)
        fill = np.broadcast_to(task.fill(), X.shape)
        start = insertion_substrate(X, task.modality, task.fill())
        n_values = config.n_values or default_n_values(task.n_units)
        ns = min(config.sens_samples, n)
        out: dict[str, Any] = {"deletion": {}, "insertion": {}, "sensitivity": {}, "labels": {}, "errors": {}}
        for i, m in enumerate(config.methods):
            out["labels"][m] = estimator_label(m)
            try:
                scores = estimator_scores(task, m, config.params_for(m), "test", seed=seed, cache=cache, rows=n)
                attr = None
                if m not in CONTROLS:
                    target = task.targets(task.model, X[:ns])
                    attr = attribute(
                        task.model, X[:ns], m, target=target, params=config.params_for(m), seed=seed
                    ).values
            except AttributionMethodError as exc:  # this method fails alone; the others are scored
                out["errors"][m] = str(exc)
                continue
            order = rank_units(scores, np.random.default_rng(derive_seed(seed, i, 0xF1)))
            out["deletion"][m] = _curve_points(task, order, X, fill, config.steps, ref).tolist()
            progress.step(f"{estimator_label(m)}: deletion")
            out["insertion"][m] = _curve_points(task, order, start, X, config.steps, ref).tolist()
            progress.step(f"{estimator_label(m)}: insertion")
            if attr is not None:
                out["sensitivity"][m] = sensitivity_n(
                    task, attr, X[:ns], n_values, config.subsets, seed, progress
                ).tolist()
            progress.step(f"{estimator_label(m)}: Sensitivity-n")
        out["task"] = task.describe()
        out["n_values"] = list(n_values)
        out["steps"] = config.steps
        return out

    s, cached, seconds = cached_summary(cache, KIND, config, compute)
    xs = tuple(j / s["steps"] for j in range(s["steps"] + 1))
    nv = tuple(s["n_values"])

    def curves(raw: dict[str, list[list[float]]], x: tuple[float, ...]) -> dict[str, Curve]:
        return {k: Curve(k, s["labels"][k], x, tuple(tuple(r) for r in reps)) for k, reps in raw.items()}

    sens = {
        k: Curve(k, s["labels"][k], tuple(float(v) for v in nv), tuple(tuple(col) for col in np.array(v).T.tolist()))
        for k, v in s["sensitivity"].items()
    }
    return FaithfulnessResult(
        config,
        s["task"],
        curves(s["deletion"], xs),
        curves(s["insertion"], xs),
        sens,
        nv,
        seconds,
        cached,
        errors=dict(s.get("errors", {})),
    )
