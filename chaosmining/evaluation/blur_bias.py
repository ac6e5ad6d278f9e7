"""The blur bias of removal benchmarks (Song, Cha & Seo, https://arxiv.org/abs/2304.13836).

The same attribution maps are ranked raw, after a 3x3 maximum filter and after a Gaussian blur (sigma 1;
along time for audio). Blurring knows nothing about the model, so by the data-processing inequality it
cannot add information about it; if it still "improves" ROAR (a lower curve) or ROAD, the benchmark
rewards blurry masks rather than information. Beside the curves: how blurry each mask is (boundary ratio,
connected components), how much of the ground truth it covers, and how well a linear probe predicts
the label from the mask alone (class information leaking through the mask's shape). The random ranking
is blurred too: it carries no information, blurred or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..cache import Cache
from ..errors import ConfigError
from ..validation import check_bool, check_choice, check_int
from .common import Curve, MethodsConfig, Progress, cached_summary, check_fractions, nested_curves
from .removal import AGGREGATIONS, POSTPROCESS
from .road import road_curves
from .roar import Variant, default_fractions, removal_curves
from .tasks import load_task

__all__ = ["BlurConfig", "BlurResult", "run_blur"]

KIND = "eval-blur"
_OWNER = "BlurConfig"


@dataclass(frozen=True, kw_only=True)
class BlurConfig(MethodsConfig):
    """Each method is ranked with every post-processing in ``posts``; controls (``oracle``, ``sobel``)
    once, raw. ROAR retrains ``repeats`` times per point; ``road`` adds ROAD (noisy linear imputation,
    MoRF and LeRF) on ``road_samples`` test rows."""

    methods: tuple[str, ...] = ("saliency", "random", "oracle")
    posts: tuple[str, ...] = ("none", "max", "gaussian")
    fractions: tuple[float, ...] = ()
    repeats: int = 1
    retrain: bool = True
    road: bool = True
    road_samples: int = 200
    aggregate: str = "abs"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task.spec.modality == "tabular":
            raise ConfigError(
                f"The 'task' parameter of {_OWNER} must be an image or audio task: tabular features have no "
                f"neighbours to blur over. Got {self.task.task!r} instead."
            )
        for p in self.posts:
            check_choice(p, "posts", owner=_OWNER, choices=POSTPROCESS.names())
        object.__setattr__(self, "posts", tuple(dict.fromkeys(self.posts)) or ("none",))
        object.__setattr__(self, "fractions", check_fractions(self.fractions, "fractions", _OWNER))
        object.__setattr__(self, "repeats", check_int(self.repeats, "repeats", owner=_OWNER, low=1, high=50))
        object.__setattr__(
            self, "road_samples", check_int(self.road_samples, "road_samples", owner=_OWNER, low=0, high=1_000_000)
        )
        check_bool(self.retrain, "retrain", owner=_OWNER)
        check_bool(self.road, "road", owner=_OWNER)
        check_choice(self.aggregate, "aggregate", owner=_OWNER, choices=AGGREGATIONS.names())

    def variants(self) -> list[Variant]:
        from .estimators import CONTROLS

        out = []
        for m in self.methods:
            posts = ("none",) if m in CONTROLS else self.posts
            out += [Variant(m, p, tuple(sorted(self.params_for(m).items()))) for p in posts]
        return out


@dataclass
class BlurResult:
    """ROAR curves (retrained and not), ROAD curves, and per-variant mask statistics and probe scores.

    ``mask_stats[key][stat]`` and ``probe[key]`` are lists over ``fractions`` (test masks, first repeat).
    ``errors`` holds the message of each variant whose method failed (no curves).
    """

    config: BlurConfig
    task: dict[str, Any]
    fractions: tuple[float, ...]
    roar: dict[str, Curve]
    no_retrain: dict[str, Curve]
    road: dict[str, dict[str, Curve]]
    mask_stats: dict[str, dict[str, list[float]]]
    probe: dict[str, list[float]]
    labels: dict[str, str]
    seconds: float = 0.0
    cached: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "evaluation": "blur",
            "task": self.task,
            "fractions": list(self.fractions),
            "methods": {k: c.points() for k, c in (self.roar or self.no_retrain).items()},
            "roar": {k: c.to_dict() for k, c in self.roar.items()},
            "no_retrain": {k: c.to_dict() for k, c in self.no_retrain.items()},
            "road": {o: {k: c.to_dict() for k, c in cs.items()} for o, cs in self.road.items()},
            "mask_stats": self.mask_stats,
            "probe": self.probe,
            "errors": self.errors,
            "seconds": self.seconds,
            "cached": self.cached,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        from ..export import bundle_json

        return bundle_json("blur", self.config.to_dict(), self.summary())

    def mask_table(self) -> list[dict[str, Any]]:
        rows = []
        for k, stats in self.mask_stats.items():
            for i, f in enumerate(self.fractions):
                row = {"estimator": self.labels.get(k, k), "key": k, "fraction": f}
                row.update({name: values[i] for name, values in stats.items()})
                row["mask-only probe"] = self.probe.get(k, [None] * len(self.fractions))[i]
                rows.append(row)
        return rows

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name, curves in (
            ("ROAR", self.roar),
            ("no retrain", self.no_retrain),
            *[(f"ROAD {o.upper()}", cs) for o, cs in self.road.items()],
        ):
            for k, c in curves.items():
                rows += [{"curve": name, "estimator": c.label, "key": k, **p} for p in c.points()]
        return rows

    def reading(self) -> str:
        """Did blurring 'improve' the curves, and did it make the masks blurrier?"""
        curves = self.roar or self.no_retrain
        text = []
        for m in self.config.methods:
            raw = curves.get(m)
            if raw is None:
                continue
            for post in self.config.posts:
                key = f"{m}+{post}"
                if post == "none" or key not in curves:
                    continue
                delta = curves[key].area() - raw.area()
                verdict = "improves" if delta < -0.005 else ("worsens" if delta > 0.005 else "leaves unchanged")
                stats = self.mask_stats.get(key, {}).get("boundary_ratio")
                base = self.mask_stats.get(m, {}).get("boundary_ratio")
                blur_note = ""
                if stats and base:
                    blur_note = f"; its masks' boundary ratio is {_mean(stats):.2f} against {_mean(base):.2f} raw"
                text.append(
                    f"{POSTPROCESS.get(post).display_name} {verdict} the {'ROAR' if self.roar else 'no-retrain'} score of "
                    f"{raw.label} (area {curves[key].area():.3f} vs {raw.area():.3f}, lower is better){blur_note}."
                )
        if text:
            text.append(
                "Blurring adds no information about the model, so an improvement here is the blur bias: the benchmark "
                "rewards smooth, contiguous masks."
            )
        if self.probe:
            best = max(self.probe, key=lambda k: _mean(self.probe[k]))
            text.append(
                f"The mask alone predicts the label best for {self.labels.get(best, best)} ({_mean(self.probe[best]):.2f} "
                f"on average over the fractions; chance {self.task.get('chance', float('nan')):.2f}): class information "
                "leaks through the mask's shape, and a retrained model can use it."
            )
        return " ".join(text)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and v == v]
    return sum(finite) / len(finite) if finite else float("nan")


def run_blur(
    config: BlurConfig,
    *,
    cache: Cache | None = None,
    report: Callable[..., None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BlurResult:
    """Run (or load from the cache) the blur comparison."""
    cache = cache or Cache()

    def compute() -> dict[str, Any]:
        variants = config.variants()
        progress = Progress(1, report, should_stop)
        progress.stage("training the model to explain")
        task = load_task(config.task, cache=cache, should_stop=progress.check)
        fractions = list(config.fractions) or list(default_fractions(task.relevant_fraction, task.n_units))
        roar = removal_curves(
            config.task,
            variants,
            fractions,
            order="morf",
            retrain=config.retrain,
            repeats=config.repeats,
            aggregate=config.aggregate,
            probe=True,
            cache=cache,
            report=report,
            should_stop=should_stop,
        )
        road: dict[str, Any] = {}
        errors: dict[str, str] = dict(roar.get("errors", {}))
        if config.road:
            progress.total = len(variants) * 2
            road = road_curves(
                task,
                [v for v in variants if v.key not in errors],
                fractions,
                orders=("morf", "lerf"),
                imputations=("linear",),
                samples=config.road_samples,
                repeats=1,
                aggregate=config.aggregate,
                cache=cache,
                progress=progress,
                errors=errors,
            )["linear"]
        return {**roar, "road": road, "errors": errors}

    s, cached, seconds = cached_summary(cache, KIND, config, compute)
    fr = tuple(s["fractions"])
    labels = s["labels"]
    return BlurResult(
        config=config,
        task=s["task"],
        fractions=fr,
        roar=nested_curves(s["retrain"], labels, fr),
        no_retrain=nested_curves(s["no_retrain"], labels, fr),
        road=nested_curves(s["road"], labels, fr),
        mask_stats=s["mask_stats"],
        probe=s["probe"],
        labels=labels,
        seconds=seconds,
        cached=cached,
        errors=dict(s.get("errors", {})),
    )
