"""ROAR and KAR: remove (or keep) the top-ranked units, retrain a fresh model, measure what is left.

Hooker, Erhan, Kindermans & Kim, *A Benchmark for Interpretability Methods in Deep Neural Networks*,
NeurIPS 2019, https://arxiv.org/abs/1806.10758.

For every estimator and fraction ``t``: attribute the training and the test set with the trained model,
replace the top-``t`` units of every sample by the training mean (ROAR; KAR keeps the top ``t`` and
replaces the rest), train a new model from scratch on the modified training set and score it on the
modified test set. A better estimator makes the ROAR curve fall faster (lower is better) and the KAR
curve rise faster (higher is better). The *no-retrain* variant scores the original model on the modified
test set instead; it confounds information loss with the distribution shift the replacement causes,
which is why ROAR retrains.

Baselines: ``random`` (any ranking should beat it) and ``oracle`` (the ground truth: the floor of the
curve). Fractions default to a grid dense below the share of relevant units, where good curves saturate
in low-SNR data. The training budget of each retraining is part of the result: it confounds the curve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..attribution import METHODS
from ..cache import Cache
from ..errors import AttributionMethodError
from ..validation import check_bool, check_choice, check_int
from .blur import mask_probe, mask_statistics
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
from .estimators import CONTROLS, estimator_label, estimator_scores
from .removal import AGGREGATIONS, POSTPROCESS, apply_mask, rank_units, removal_mask, units_for_fraction
from .tasks import LoadedTask, TaskConfig, load_task

__all__ = [
    "RoarConfig",
    "RoarResult",
    "Variant",
    "run_roar",
    "default_fractions",
    "removal_curves",
    "DEFAULT_ROAR_METHODS",
    "STANDARD_FRACTIONS",
]

KIND = "eval-roar"
DEFAULT_ROAR_METHODS = ("saliency", "integrated_gradients", "random", "oracle")
STANDARD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
_OWNER = "RoarConfig"


def default_fractions(relevant_fraction: float, n_units: int) -> tuple[float, ...]:
    """A grid dense below the share of relevant units ``rho``: ``rho/4, rho/2, rho, 2 rho``, then 0.5 (good
    curves are at chance long before 0.9, which would only cost retrainings).

    When ``rho`` is a quarter or more (the 16-d toy) the standard grid 0.1, 0.3, ..., 0.9 is used.
    Fractions that name the same number of units are dropped.
    """
    rho = relevant_fraction
    grid = STANDARD_FRACTIONS if rho >= 0.25 else (rho / 4, rho / 2, rho, 2 * rho, 0.5)
    out: list[float] = []
    seen: set[int] = set()
    for f in sorted(round(min(0.95, g), 3) for g in grid):
        k = units_for_fraction(f, n_units)
        if f > 0 and k > 0 and k not in seen:
            seen.add(k)
            out.append(f)
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class RoarConfig(MethodsConfig):
    """One ROAR (or KAR) run.

    Parameters
    ----------
    task : which task, its size, budget and seed.
    methods : attribution methods and controls (``oracle``, ``anti_oracle``, ``sobel``), in plot order.
    method_params : ``(method, ((param, value), ...))`` pairs; defaults for the rest.
    fractions : fractions of units removed (ROAR) or kept (KAR); ``()`` = :func:`default_fractions`.
    retrain : train a fresh model per point (ROAR/KAR); False scores only the original model.
    keep : KAR (keep the top fraction) instead of ROAR.
    postprocess : ``none``, ``max`` or ``gaussian``, applied to the maps of attribution methods (not
        to the oracle controls) before ranking.
    aggregate : ``abs``, ``square`` or ``signed`` aggregation of colour channels (and of the sign).
    repeats : independent retrainings per point (new data as well for the cheap 16-d toy).
    probe : also fit the mask-only probe and the mask statistics (first repeat).
    """

    methods: tuple[str, ...] = DEFAULT_ROAR_METHODS
    fractions: tuple[float, ...] = ()
    retrain: bool = True
    keep: bool = False
    postprocess: str = "none"
    aggregate: str = "abs"
    repeats: int = 1
    probe: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "fractions", check_fractions(self.fractions, "fractions", _OWNER))
        check_bool(self.retrain, "retrain", owner=_OWNER)
        check_bool(self.keep, "keep", owner=_OWNER)
        check_bool(self.probe, "probe", owner=_OWNER)
        check_choice(self.postprocess, "postprocess", owner=_OWNER, choices=POSTPROCESS.names())
        check_choice(self.aggregate, "aggregate", owner=_OWNER, choices=AGGREGATIONS.names())
        check_postprocess(self.postprocess, self.task, _OWNER)
        object.__setattr__(self, "repeats", check_int(self.repeats, "repeats", owner=_OWNER, low=1, high=50))

    @property
    def variant(self) -> str:
        return "kar" if self.keep else "roar"


@dataclass(frozen=True)
class Variant:
    """One curve: an estimator and the post-processing applied to its maps. ``key`` names the curve."""

    method: str
    post: str = "none"
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        return self.method if self.post == "none" else f"{self.method}+{self.post}"

    @property
    def label(self) -> str:
        base = estimator_label(self.method)
        return base if self.post == "none" else f"{base} + {POSTPROCESS.get(self.post).display_name}"


def variants_for(methods: Iterable[str], post: str, params: Callable[[str], Mapping[str, Any]]) -> list[Variant]:
    """Post-processing applies to attribution methods (the random one included), never to controls."""
    return [Variant(m, "none" if m in CONTROLS else post, tuple(sorted(params(m).items()))) for m in methods]


def _tasks(task_config: TaskConfig, repeats: int, cache: Cache, progress: Progress) -> Iterable[tuple[int, LoadedTask]]:
    """The task for each repeat: re-drawn for cheap tasks, loaded once (and retrained) otherwise."""
    shared: LoadedTask | None = None
    for r in range(repeats):
        if task_config.spec.name == "toy16":
            yield r, load_task(task_config.replace(seed=task_config.seed + r), cache=cache)
        else:
            if shared is None:
                progress.stage("training the model to explain")
                shared = load_task(task_config, cache=cache, should_stop=progress.check)
            yield r, shared


def removal_curves(
    task_config: TaskConfig,
    variants: Sequence[Variant],
    fractions: Sequence[float],
    *,
    order: str,
    retrain: bool,
    repeats: int,
    aggregate: str = "abs",
    probe: bool = False,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """The shared loop of ROAR, KAR and the blur comparison; returns a JSON-able dict of raw results.

    ``order`` is ``morf`` (ROAR: remove the top fraction) or ``keep`` (KAR). Retraining seeds depend on
    the repeat and the fraction only, so every estimator is compared on the same draws. An estimator whose
    method fails (:class:`~chaosmining.errors.AttributionMethodError`) has no curve; its message is under
    ``errors`` by its key, and the others are scored.
    """
    cache = cache or Cache()
    progress = Progress(len(variants) * len(fractions) * repeats if fractions else 1, report, should_stop)
    raw: dict[str, list[list[float]]] = {v.key: [] for v in variants}
    plain: dict[str, list[list[float]]] = {v.key: [] for v in variants}
    stats: dict[str, dict[str, list[float]]] = {}
    probes: dict[str, list[float]] = {}
    retrain_seconds: list[float] = []
    errors: dict[str, str] = {}
    described: dict[str, Any] = {}
    fractions = list(fractions)
    for r, task in _tasks(task_config, repeats, cache, progress):
        if not described:
            described = task.describe()
            fractions = fractions or list(default_fractions(task.relevant_fraction, task.n_units))
            progress.total = max(1, len(variants) * len(fractions) * repeats)
        fill = task.fill()
        classify = task.output.name != "regression"
        for vi, v in enumerate(variants):
            if v.key in errors:
                continue
            progress.stage(f"attributing with {v.label}")
            attr_seed = task.config.seed + (r if v.method in METHODS and METHODS.get(v.method).is_control else 0)
            kw = {"aggregate": aggregate, "post": v.post, "seed": attr_seed, "cache": cache}
            params = dict(v.params)
            # One tie-breaking order of the units for both splits: a retrained model must meet the same
            # removed units at test time as in training.
            tie = derive_seed(task.config.seed, r, vi, 0xA0)
            try:
                scores_train = estimator_scores(task, v.method, params, "train", **kw)
                scores_test = estimator_scores(task, v.method, params, "test", **kw)
            except AttributionMethodError as exc:  # this estimator fails alone; the others are scored
                errors[v.key] = str(exc)
                continue
            order_train = rank_units(scores_train, np.random.default_rng(tie))
            order_test = rank_units(scores_test, np.random.default_rng(tie))
            row, plain_row = [], []
            for fi, t in enumerate(fractions):
                mask_train = removal_mask(order_train, task.unit_shape, t, order)
                mask_test = removal_mask(order_test, task.unit_shape, t, order)
                X_test = apply_mask(task.X_test, mask_test, fill, task.modality)
                plain_row.append(task.score(task.model, X_test, task.y_test))
                if retrain:
                    X_train = apply_mask(task.X_train, mask_train, fill, task.modality)
                    start = time.perf_counter()
                    model = task.fit(
                        X_train, task.y_train, seed=derive_seed(task.config.seed, r, fi), should_stop=progress.check
                    )
                    retrain_seconds.append(time.perf_counter() - start)
                    row.append(task.score(model, X_test, task.y_test))
                if probe and r == 0:
                    removed = mask_test if order == "morf" else ~mask_test
                    st = mask_statistics(removed, task.relevant_test, task.modality)
                    for name, value in st.items():
                        stats.setdefault(v.key, {}).setdefault(name, []).append(value)
                    removed_train = mask_train if order == "morf" else ~mask_train
                    probes.setdefault(v.key, []).append(
                        mask_probe(removed_train, task.y_train, removed, task.y_test, classify=classify)
                    )
                progress.step(f"{v.label}, {'kept' if order == 'keep' else 'removed'} {t:g}")
            raw[v.key].append(row)
            plain[v.key].append(plain_row)
    for key in errors:  # an estimator that failed in a later repeat keeps no partial curve
        for table in (raw, plain, stats, probes):
            table.pop(key, None)
    return {
        "task": described,
        "fractions": fractions,
        "labels": {v.key: v.label for v in variants},
        "retrain": raw if retrain else {},
        "no_retrain": plain,
        "mask_stats": stats,
        "probe": probes,
        "retrain_seconds": float(np.mean(retrain_seconds)) if retrain_seconds else None,
        "n_retrains": len(retrain_seconds),
        "errors": errors,
    }


@dataclass
class RoarResult:
    """Curves of one ROAR/KAR run; ``errors`` holds the message of each estimator that failed (no curve).

    ``curves`` hold the retrained scores (empty with ``retrain=False``), ``no_retrain`` the original
    model's scores on the same modified test sets; both keyed by estimator. ``task`` describes the task
    (score name, chance level, base score, training budget).
    """

    config: RoarConfig
    task: dict[str, Any]
    fractions: tuple[float, ...]
    curves: dict[str, Curve]
    no_retrain: dict[str, Curve]
    mask_stats: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    probe: dict[str, list[float]] = field(default_factory=dict)
    retrain_seconds: float | None = None
    n_retrains: int = 0
    seconds: float = 0.0
    cached: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def main(self) -> dict[str, Curve]:
        """The curves the run is about: retrained when it retrained, else the no-retrain ones."""
        return self.curves if self.config.retrain else self.no_retrain

    @property
    def x_label(self) -> str:
        return "fraction of units kept (top-ranked)" if self.config.keep else "fraction of units removed (top-ranked)"

    @property
    def labels(self) -> dict[str, str]:
        """Display label of every estimator, by key."""
        return {k: c.label for k, c in {**self.no_retrain, **self.curves}.items()}

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON: per method a list of ``{fraction, score, spread}`` (plus the no-retrain curves)."""
        return {
            "evaluation": self.config.variant,
            "task": self.task,
            "retrain": self.config.retrain,
            "keep": self.config.keep,
            "postprocess": self.config.postprocess,
            "repeats": self.config.repeats,
            "fractions": list(self.fractions),
            "methods": {k: c.points() for k, c in self.main.items()},
            "spread": {k: c.spread for k, c in self.main.items()},
            "curves": {k: c.to_dict() for k, c in self.curves.items()},
            "no_retrain": {k: c.to_dict() for k, c in self.no_retrain.items()},
            "mask_stats": self.mask_stats,
            "probe": self.probe,
            "retrain_seconds": self.retrain_seconds,
            "n_retrains": self.n_retrains,
            "errors": self.errors,
            "seconds": self.seconds,
            "cached": self.cached,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        from ..export import bundle_json

        return bundle_json("roar", self.config.to_dict(), self.summary())

    @classmethod
    def from_summary(cls, config: RoarConfig, s: Mapping[str, Any], *, cached: bool, seconds: float) -> RoarResult:
        labels = s["labels"]
        fr = tuple(s["fractions"])
        return cls(
            config=config,
            task=s["task"],
            fractions=fr,
            curves=nested_curves(s["retrain"], labels, fr),
            no_retrain=nested_curves(s["no_retrain"], labels, fr),
            mask_stats=s.get("mask_stats", {}),
            probe=s.get("probe", {}),
            retrain_seconds=s.get("retrain_seconds"),
            n_retrains=s.get("n_retrains", 0),
            seconds=seconds,
            cached=cached,
            errors=dict(s.get("errors", {})),
        )

    def table(self) -> list[dict[str, Any]]:
        """One row per estimator, fraction and variant (retrained or not)."""
        rows = []
        for variant, curves in (("retrain", self.curves), ("no retrain", self.no_retrain)):
            for k, c in curves.items():
                for p in c.points():
                    rows.append({"estimator": c.label, "key": k, "variant": variant, **p})
        return rows

    def reading(self) -> str:
        """A plain-language reading of the curves."""
        return read_removal(self.main, self.task, keep=self.config.keep, retrained=self.config.retrain)


def baseline_verdicts(curves: Mapping[str, Curve], *, higher_is_better: bool) -> list[str]:
    """Sentences: which estimators beat the random ranking (area under the curve, by more than 0.01) and how
    much of the way from random to the ground-truth oracle the best one goes."""
    area = {k: c.area() for k, c in curves.items()}
    text = []
    if "random" in area:
        sign = 1 if higher_is_better else -1
        beat = [curves[k].label for k in area if k != "random" and sign * (area[k] - area["random"]) > 0.01]
        lost = [curves[k].label for k in area if k != "random" and sign * (area[k] - area["random"]) < -0.01]
        if beat:
            text.append(f"Better than random: {', '.join(beat)}.")
        if lost:
            text.append(f"No better than random (or worse): {', '.join(lost)}.")
    if "oracle" in area and "random" in area and area["oracle"] != area["random"]:
        gap = {
            curves[k].label: (area["random"] - area[k]) / (area["random"] - area["oracle"])
            for k in area
            if k not in ("random", "oracle", "anti_oracle")
        }
        if gap:
            best = max(gap, key=gap.get)
            text.append(
                f"{best} goes {gap[best]:.0%} of the way from random to the ground-truth oracle (area under the curve)."
            )
    return text


def read_removal(curves: Mapping[str, Curve], task: Mapping[str, Any], *, keep: bool, retrained: bool) -> str:
    """Which estimators beat random (and by how much of the way to the oracle), in words."""
    if not curves:
        return ""
    name = task.get("score_name", "score")
    better = "higher" if keep else "lower"
    text = [
        f"Each curve is the {name} of a model {'retrained' if retrained else 'left as trained'} after "
        f"{'keeping only' if keep else 'removing'} the top-ranked units; a {better} curve means the ranking found more "
        f"of what the model needs (chance {task.get('chance', float('nan')):.2f}, unmodified model "
        f"{task.get('base_score', float('nan')):.2f})."
    ]
    text += baseline_verdicts(curves, higher_is_better=keep)
    if not retrained:
        text.append(
            "Without retraining, a drop also reflects the distribution shift of the replaced values, not only "
            "information loss: compare with the retrained curves."
        )
    return " ".join(text)


def run_roar(
    config: RoarConfig,
    *,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RoarResult:
    """Run (or load from the cache) the ROAR/KAR curves of ``config``.

    Examples
    --------
    >>> cfg = RoarConfig(task=TaskConfig(task="toy16", n_train=500, n_test=500), methods=("saliency", "random"))
    >>> run_roar(cfg).main["saliency"].score[1] < 0.6  # doctest: +SKIP
    True
    """
    cache = cache or Cache()

    def compute() -> dict[str, Any]:
        variants = variants_for(config.methods, config.postprocess, config.params_for)
        return removal_curves(
            config.task,
            variants,
            config.fractions,
            order="keep" if config.keep else "morf",
            retrain=config.retrain,
            repeats=config.repeats,
            aggregate=config.aggregate,
            probe=config.probe,
            cache=cache,
            report=report,
            should_stop=should_stop,
        )

    summary, cached, seconds = cached_summary(cache, KIND, config, compute)
    return RoarResult.from_summary(config, summary, cached=cached, seconds=seconds)
