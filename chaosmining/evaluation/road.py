"""ROAD: remove and debias, without retraining (Rong et al., ICML 2022, https://arxiv.org/abs/2202.00449).

Removal by a fixed value leaks class information through the shape of the mask and pushes inputs off
the data distribution; ROAD fills removed units by noisy linear imputation instead (see
:mod:`.imputation`) and scores the *original* model, so no retraining is needed. Both orders are given
as the fraction **removed**: most-relevant-first (MoRF: lower is better) and least-relevant-first (LeRF:
removing what the estimator calls unimportant should cost little: higher is better). Mean imputation is
computed beside it. A consistent evaluation ranks the estimators alike under MoRF and LeRF; the
agreement is reported as the Spearman correlation of the two rankings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from ..cache import Cache
from ..errors import AttributionMethodError
from ..validation import check_choice, check_int
from .common import (
    Curve,
    MethodsConfig,
    Progress,
    cached_summary,
    check_fractions,
    check_postprocess,
    derive_seed,
    nested_curves,
)
from .estimators import estimator_scores
from .imputation import IMPUTERS, fit_imputer
from .removal import AGGREGATIONS, POSTPROCESS, rank_units, removal_mask
from .roar import DEFAULT_ROAR_METHODS, Variant, baseline_verdicts, default_fractions, variants_for
from .tasks import LoadedTask, load_task

__all__ = ["RoadConfig", "RoadResult", "run_road", "road_curves", "ORDERS"]

KIND = "eval-road"
ORDERS = {"morf": "most relevant first (lower is better)", "lerf": "least relevant first (higher is better)"}
_OWNER = "RoadConfig"


@dataclass(frozen=True, kw_only=True)
class RoadConfig(MethodsConfig):
    """One ROAD run: estimators x orders x imputations x fractions removed, on ``samples`` test rows.

    ``repeats`` re-draw the test rows (when ``samples`` is below the test size) and the imputation
    noise; the spread is over repeats.
    """

    methods: tuple[str, ...] = DEFAULT_ROAR_METHODS
    fractions: tuple[float, ...] = ()
    orders: tuple[str, ...] = ("morf", "lerf")
    imputations: tuple[str, ...] = ("linear", "mean")
    postprocess: str = "none"
    aggregate: str = "abs"
    samples: int = 200
    repeats: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "fractions", check_fractions(self.fractions, "fractions", _OWNER))
        for o in self.orders:
            check_choice(o, "orders", owner=_OWNER, choices=list(ORDERS))
        for i in self.imputations:
            check_choice(i, "imputations", owner=_OWNER, choices=IMPUTERS.names())
        object.__setattr__(self, "orders", tuple(dict.fromkeys(self.orders)) or ("morf",))
        object.__setattr__(self, "imputations", tuple(dict.fromkeys(self.imputations)) or ("linear",))
        check_choice(self.postprocess, "postprocess", owner=_OWNER, choices=POSTPROCESS.names())
        check_choice(self.aggregate, "aggregate", owner=_OWNER, choices=AGGREGATIONS.names())
        check_postprocess(self.postprocess, self.task, _OWNER)
        object.__setattr__(self, "samples", check_int(self.samples, "samples", owner=_OWNER, low=0, high=1_000_000))
        object.__setattr__(self, "repeats", check_int(self.repeats, "repeats", owner=_OWNER, low=1, high=50))


@dataclass
class RoadResult:
    """``curves[imputation][order][estimator]`` is a :class:`Curve` over the fractions removed; ``errors``
    holds the message of each estimator that failed (no curves)."""

    config: RoadConfig
    task: dict[str, Any]
    fractions: tuple[float, ...]
    curves: dict[str, dict[str, dict[str, Curve]]]
    seconds: float = 0.0
    cached: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def consistency(self, imputation: str) -> float | None:
        """Spearman correlation of the estimators' MoRF ranking (low area first) and LeRF ranking (high area first)."""
        by = self.curves.get(imputation, {})
        if "morf" not in by or "lerf" not in by or len(by["morf"]) < 3:
            return None
        keys = list(by["morf"])
        morf = [-by["morf"][k].area() for k in keys]
        lerf = [by["lerf"][k].area() for k in keys]
        rho = stats.spearmanr(morf, lerf).statistic
        return None if not np.isfinite(rho) else float(rho)

    def summary(self) -> dict[str, Any]:
        return {
            "evaluation": "road",
            "task": self.task,
            "fractions": list(self.fractions),
            "methods": {
                f"{k}|{order}|{imp}": c.points()
                for imp, orders in self.curves.items()
                for order, cs in orders.items()
                for k, c in cs.items()
            },
            "curves": {
                imp: {o: {k: c.to_dict() for k, c in cs.items()} for o, cs in orders.items()}
                for imp, orders in self.curves.items()
            },
            "consistency": {imp: self.consistency(imp) for imp in self.curves},
            "errors": self.errors,
            "seconds": self.seconds,
            "cached": self.cached,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        from ..export import bundle_json

        return bundle_json("road", self.config.to_dict(), self.summary())

    def table(self) -> list[dict[str, Any]]:
        return [
            {"imputation": imp, "order": o, "estimator": c.label, "key": k, **p}
            for imp, orders in self.curves.items()
            for o, cs in orders.items()
            for k, c in cs.items()
            for p in c.points()
        ]

    def reading(self) -> str:
        parts = []
        for imp, orders in self.curves.items():
            name = IMPUTERS.get(imp).display_name
            for order, higher, shown in (("morf", False, "MoRF"), ("lerf", True, "LeRF")):
                if order in orders:
                    verdicts = baseline_verdicts(orders[order], higher_is_better=higher)
                    if verdicts:
                        parts.append(f"**{name}, {shown}.** " + " ".join(verdicts))
            rho = self.consistency(imp)
            if rho is not None:
                parts.append(
                    f"With {name} imputation, MoRF and LeRF rank the {len(orders['morf'])} estimators with Spearman "
                    f"{rho:.2f} ({'consistent' if rho > 0.5 else 'inconsistent'}; ROAD's claim is that imputation makes "
                    "them agree)."
                )
        return " ".join(parts)


def road_curves(
    task: LoadedTask,
    variants: Sequence[Variant],
    fractions: Sequence[float],
    *,
    orders: Sequence[str],
    imputations: Sequence[str],
    samples: int,
    repeats: int,
    aggregate: str,
    cache: Cache,
    progress: Progress,
    errors: dict[str, str] | None = None,
) -> dict[str, dict[str, dict[str, list[list[float]]]]]:
    """``raw[imputation][order][variant key][repeat][fraction]``: the original model's score after removal.

    Shared by ROAD and the blur comparison. Each repeat draws ``samples`` test rows (all when 0) and new
    imputation noise. A variant whose method fails (:class:`~chaosmining.errors.AttributionMethodError`)
    has no curves; its message goes into ``errors`` by its key, and the others are scored.
    """
    seed = task.config.seed
    imputers = {i: fit_imputer(i, task.X_train, task.modality) for i in imputations}
    n = len(task.X_test) if samples == 0 else min(samples, len(task.X_test))
    raw: dict[str, dict[str, dict[str, list[list[float]]]]] = {
        i: {o: {v.key: [] for v in variants} for o in orders} for i in imputations
    }
    for vi, v in enumerate(variants):
        progress.stage(f"attributing with {v.label}")
        kw = {"aggregate": aggregate, "post": v.post, "seed": seed, "cache": cache}
        try:
            scores = estimator_scores(task, v.method, dict(v.params), "test", **kw)
        except AttributionMethodError as exc:
            if errors is not None:
                errors[v.key] = str(exc)
            for by_order in raw.values():
                for curves in by_order.values():
                    curves.pop(v.key, None)
            continue
        for r in range(repeats):
            rng = np.random.default_rng(derive_seed(seed, r, 0xD0))
            rows = np.sort(rng.choice(len(task.X_test), n, replace=False)) if n < len(task.X_test) else np.arange(n)
            order = rank_units(scores[rows], np.random.default_rng(derive_seed(seed, r, vi)))
            X, y = task.X_test[rows], task.y_test[rows]
            for o in orders:
                for imp, impute in imputers.items():
                    row = []
                    for f in fractions:
                        mask = removal_mask(order, task.unit_shape, f, o)
                        noise = np.random.default_rng(derive_seed(seed, r, vi, int(f * 1e6)))
                        row.append(task.score(task.model, impute(X, mask, noise), y))
                    raw[imp][o][v.key].append(row)
                    progress.step(f"{v.label}: {o.upper()} with {imp} imputation")
    return raw


def run_road(
    config: RoadConfig,
    *,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RoadResult:
    """Run (or load from the cache) the ROAD curves of ``config``."""
    cache = cache or Cache()

    def compute() -> dict[str, Any]:
        progress = Progress(1, report, should_stop)
        progress.stage("training the model to explain")
        task = load_task(config.task, cache=cache, should_stop=progress.check)
        fractions = list(config.fractions) or list(default_fractions(task.relevant_fraction, task.n_units))
        variants = variants_for(config.methods, config.postprocess, config.params_for)
        progress.total = len(variants) * config.repeats * len(config.orders) * len(config.imputations)
        errors: dict[str, str] = {}
        raw = road_curves(
            task,
            variants,
            fractions,
            orders=config.orders,
            imputations=config.imputations,
            samples=config.samples,
            repeats=config.repeats,
            aggregate=config.aggregate,
            cache=cache,
            progress=progress,
            errors=errors,
        )
        return {
            "task": task.describe(),
            "fractions": fractions,
            "labels": {v.key: v.label for v in variants},
            "raw": raw,
            "errors": errors,
        }

    summary, cached, seconds = cached_summary(cache, KIND, config, compute)
    fr = tuple(summary["fractions"])
    curves = nested_curves(summary["raw"], summary["labels"], fr)
    return RoadResult(
        config, summary["task"], fr, curves, seconds=seconds, cached=cached, errors=dict(summary.get("errors", {}))
    )
