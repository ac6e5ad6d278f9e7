"""What a feature-selection comparison produced: rounds, per-selector runs, the result and its cache entry."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cache import Cache
from ..config import to_jsonable
from ..errors import ChaosMiningError
from ..selection import get_selector
from .rfe_config import RFEConfig
from .rfe_tasks import TASK_TYPE_SPECS

__all__ = ["RESULT_KIND", "RoundRecord", "SelectorRun", "RFEResult", "load_rfe", "save_rfe"]

RESULT_KIND = "rfe-result"


@dataclass(frozen=True)
class RoundRecord:
    """One round of one selector.

    ``error`` is the test error of the round's predictor (MAE, or 1 - balanced accuracy), ``val_error``
    the same on the validation rows; ``seconds`` is the compute time of the selection step (training +
    attribution for RFEwNA, the RFE fit for classic selectors), measured when it was computed even if
    it was shared or cached; ``eval_seconds`` the bi-module network's training time.
    """

    n_features: int
    kept: tuple[int, ...]
    error: float
    val_error: float
    test_metrics: dict[str, float]
    val_metrics: dict[str, float]
    precision: float | None
    recall: float | None
    seconds: float
    predictor: str
    cached: bool = False
    eval_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(self)


@dataclass(frozen=True)
class SelectorRun:
    """Every round of one selector, from all features down to the target."""

    selector: str
    rounds: tuple[RoundRecord, ...]
    error_message: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def final(self) -> RoundRecord | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def kept(self) -> tuple[int, ...]:
        return self.final.kept if self.final else ()

    @property
    def final_precision(self) -> float | None:
        return self.final.precision if self.final else None

    @property
    def final_error(self) -> float | None:
        return self.final.error if self.final else None

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.rounds))


@dataclass
class RFEResult:
    """What :func:`run_rfe` produced for one configuration."""

    config: RFEConfig
    title: str
    task_type: str
    feature_names: list[str]
    true_features: tuple[int, ...] | None
    schedule: list[int]
    runs: dict[str, SelectorRun]
    notes: tuple[str, ...] = ()
    formula_latex: str | None = None
    seconds: float = 0.0
    cached: bool = False
    workers: int = 1

    @property
    def error_name(self) -> str:
        return TASK_TYPE_SPECS.get(self.task_type).error_name

    @property
    def errors(self) -> list[str]:
        return [f"{s}: {r.error_message}" for s, r in self.runs.items() if r.error_message]

    def summary(self) -> dict[str, Any]:
        """The CLI's JSON contract (per selector: ``rounds``, ``final_precision``, ``final_error``,
        ``kept``) plus what is needed to reproduce and read the run."""
        return {
            "task": "rfe",
            "title": self.title,
            "task_type": self.task_type,
            "error_metric": self.error_name,
            "n_features": len(self.feature_names),
            "true_features": None if self.true_features is None else list(self.true_features),
            "schedule": list(self.schedule),
            "strategy": self.config.strategy,
            "selectors": {
                s: {
                    "rounds": [
                        {
                            "n_features": r.n_features,
                            "error": r.error,
                            "precision": r.precision,
                            "recall": r.recall,
                            "seconds": r.seconds,
                            "val_error": r.val_error,
                            "metrics": r.test_metrics,
                            "cached": r.cached,
                        }
                        for r in run.rounds
                    ],
                    "final_precision": run.final_precision,
                    "final_recall": run.final.recall if run.final else None,
                    "final_error": run.final_error,
                    "kept": list(run.kept),
                    "kept_names": [self._name(i) for i in run.kept],
                    "seconds": run.seconds,
                    "error_message": run.error_message,
                    "warnings": list(run.warnings),
                }
                for s, run in self.runs.items()
            },
            "notes": list(self.notes),
            "seconds": self.seconds,
            "cached": self.cached,
            "workers": self.workers,
            "config": self.config.to_dict(),
        }

    def bundle(self) -> dict[str, Any]:
        """The re-runnable JSON bundle (``python -m chaosmining rerun bundle.json``)."""
        from ..export import bundle_json

        return bundle_json("rfe", self.config.to_dict(), self.summary())

    def final_table(self) -> list[dict[str, Any]]:
        rows = []
        for s, run in self.runs.items():
            f = run.final
            rows.append(
                {
                    "selector": s,
                    "display": get_selector(s).display_name,
                    "features kept": None if f is None else f.n_features,
                    "precision": None if f is None else f.precision,
                    "recall": None if f is None else f.recall,
                    f"test {self.error_name}": None if f is None else f.error,
                    f"validation {self.error_name}": None if f is None else f.val_error,
                    **({} if f is None else {f"test {k}": v for k, v in f.test_metrics.items()}),
                    "seconds": run.seconds,
                    "kept (* = true)": ", ".join(self._name(i) for i in run.kept),
                    "error": run.error_message or "",
                }
            )
        return rows

    def _name(self, i: int) -> str:
        return self.feature_names[i] + ("*" if self.true_features and i in self.true_features else "")

    def rounds_table(self) -> list[dict[str, Any]]:
        rows = []
        for s, run in self.runs.items():
            for i, r in enumerate(run.rounds):
                rows.append(
                    {
                        "selector": s,
                        "round": i,
                        "n_features": r.n_features,
                        "error": r.error,
                        "val_error": r.val_error,
                        "precision": r.precision,
                        "recall": r.recall,
                        "seconds": r.seconds,
                        "eval_seconds": r.eval_seconds,
                        "predictor": r.predictor,
                        "cached": r.cached,
                        **{f"test_{k}": v for k, v in r.test_metrics.items()},
                    }
                )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "task_type": self.task_type,
            "feature_names": self.feature_names,
            "true_features": None if self.true_features is None else list(self.true_features),
            "schedule": self.schedule,
            "runs": {
                s: {
                    "rounds": [r.to_json() for r in run.rounds],
                    "error_message": run.error_message,
                    "warnings": list(run.warnings),
                }
                for s, run in self.runs.items()
            },
            "notes": list(self.notes),
            "formula_latex": self.formula_latex,
            "seconds": self.seconds,
            "workers": self.workers,
        }

    @classmethod
    def from_json(cls, config: RFEConfig, d: Mapping[str, Any], cached: bool = True) -> RFEResult:
        def record(r: Mapping[str, Any]) -> RoundRecord:
            return RoundRecord(**{**r, "kept": tuple(r["kept"])})

        return cls(
            config=config,
            title=d["title"],
            task_type=d["task_type"],
            feature_names=list(d["feature_names"]),
            true_features=None if d["true_features"] is None else tuple(d["true_features"]),
            schedule=list(d["schedule"]),
            runs={
                s: SelectorRun(s, tuple(record(r) for r in v["rounds"]), v["error_message"], tuple(v["warnings"]))
                for s, v in d["runs"].items()
            },
            notes=tuple(d["notes"]),
            formula_latex=d["formula_latex"],
            seconds=d["seconds"],
            cached=cached,
            workers=d["workers"],
        )


def load_rfe(config: RFEConfig, cache: Cache | None = None) -> RFEResult | None:
    """A finished comparison from the cache, or ``None``."""
    cache = cache or Cache()
    try:
        entry = cache.load(RESULT_KIND, config.config_hash) if cache.has(RESULT_KIND, config.config_hash) else None
    except ChaosMiningError:
        return None
    if entry is None:
        return None
    return RFEResult.from_json(config, json.loads(entry.file("result.json").read_text()))


def save_rfe(result: RFEResult, cache: Cache) -> None:
    """Cache a finished comparison (``rfe-result``); one with a failed selector is not cached."""
    if result.errors:
        return  # a failed selector is retried next time; its finished units are cached anyway
    payload = json.dumps(to_jsonable(result.to_json()), allow_nan=True)

    def build(folder: Path) -> dict[str, Any]:
        (folder / "result.json").write_text(payload)
        return {}

    cache.delete(RESULT_KIND, result.config.config_hash)
    cache.write(RESULT_KIND, result.config.config_hash, build, config=result.config)
