"""Score extractors: how each kind of cached result turns into rows of the results store.

:data:`EXTRACTORS` is keyed by the cache's result kind (``symbolic-result``, ``vision-result``,
``audio-result``, ``rfe-result``, ``eval-roar``, ``eval-road``, ``eval-blur``, ``eval-sanity``,
``eval-faithfulness``). An extractor reads a typed result object (its ``summary()`` and, for the
evaluation tests, its curves) and returns a :class:`RunRecord`: where the run belongs (modality, task,
setting, model, seed) and one :class:`ScoreRow` per method and metric. A score of the run itself (a
model's accuracy, the prediction UScore) has ``method == ""``.

Metric names are the summaries' own keys (``fprec``, ``uscore``, ``iou``, ``pointing_game``,
``channel_fprec``, ...); curves add their normalised area (``roar_area``, ``deletion_auc``, ...) and
one point per fraction (``roar@0.1``).

A method that failed in a run (its ``errors`` or ``unavailable`` entry, a selector's ``error_message``)
has no scores there, so it gets no rows: its NaN placeholders never reach the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from ..registry import Registry
from .store import RunRecord, ScoreRow

__all__ = ["EXTRACTORS", "Extractor", "extract", "failed_methods"]

Extractor = Callable[[Any], RunRecord]
EXTRACTORS: Registry[Extractor] = Registry("result kind")


def extract(kind: str, result: Any) -> RunRecord:
    """The store's view of ``result`` of cache result kind ``kind`` (see :data:`EXTRACTORS`); methods
    that failed in the run are left out (:func:`failed_methods`)."""
    record = EXTRACTORS.get(kind)(result)
    failed = failed_methods(result)
    if not failed:
        return record
    return replace(record, scores=tuple(r for r in record.scores if r.method not in failed))


def failed_methods(result: Any) -> set[str]:
    """Methods (or selectors) that failed in ``result``: its summary's ``errors``/``unavailable`` keys,
    and selectors with an ``error_message``."""
    summary = result.summary()
    failed = {m for key in ("errors", "unavailable") if isinstance(summary.get(key), Mapping) for m in summary[key]}
    for name, run in (summary.get("selectors") or {}).items():
        if isinstance(run, Mapping) and run.get("error_message"):
            failed.add(name)
    return failed


def _per_method(summary: Mapping[str, Any], keys: Iterable[str]) -> list[ScoreRow]:
    rows = []
    for key in keys:
        for method, value in (summary.get(key) or {}).items():
            rows.append(ScoreRow(method, key, value))
    return rows


def _run_level(summary: Mapping[str, Any], keys: Iterable[str]) -> list[ScoreRow]:
    return [ScoreRow("", k, summary.get(k)) for k in keys if k in summary]


def _setting(d: Mapping[str, Any], keys: Iterable[str]) -> str:
    return ";".join(f"{k}={d[k]}" for k in keys if k in d)


@EXTRACTORS.register("symbolic-result")
def _symbolic(result: Any) -> RunRecord:
    s = result.summary()
    c = s["config"]
    data, model, train = c.get("data", {}), c.get("model", {}), c.get("train", {})
    return RunRecord(
        modality="symbolic",
        task=f"formula:{data.get('formula')}",
        setting=_setting(
            {**data, **train}, ("noise_features", "samples", "label_noise", "optimizer", "lr", "epochs", "batch_size")
        ),
        model=f"mlp({_setting(model, ('width', 'depth', 'dropout', 'activation'))})",
        seed=c.get("seed"),
        scores=tuple(
            _per_method(
                s, ("fprec", "uscore", "consistency", "convergence", "method_seconds", "method_peak_memory_bytes")
            )
            + [ScoreRow(m, "fprec_std", v.fprec_std) for m, v in result.scores.items()]
            + _run_level(s, ("prediction_uscore", "test_mae", "random_fprec_expected"))
        ),
    )


@EXTRACTORS.register("vision-result")
def _vision(result: Any) -> RunRecord:
    s = result.summary()
    c = s["config"]
    data = c.get("data", {})
    return RunRecord(
        modality="vision",
        task=f"vision:{data.get('foreground', '')}",
        setting=s.get("condition", ""),
        model=str(c.get("model", "")),
        seed=c.get("seed"),
        scores=tuple(
            _per_method(s, ("iou", "iou_std", "pointing_game", "mass_inside", "method_seconds_per_image"))
            + _run_level(s, ("accuracy", "chance_accuracy", "random_iou", "perfect_iou", "pointing_chance"))
        ),
    )


@EXTRACTORS.register("audio-result")
def _audio(result: Any) -> RunRecord:
    s = result.summary()
    c = s["config"]
    return RunRecord(
        modality="audio",
        task=f"audio:{s.get('preset', '')}",
        setting=str(s.get("setting", "")),
        model=str(s.get("model", "")),
        seed=c.get("seed"),
        scores=tuple(
            _per_method(s, ("channel_fprec", "channel_fprec_std", "top1_hit", "time_share", "seconds_per_clip"))
            + _run_level(s, ("accuracy", "class_chance", "chance"))
        ),
    )


@EXTRACTORS.register("rfe-result")
def _rfe(result: Any) -> RunRecord:
    s = result.summary()
    c = s["config"]
    rows: list[ScoreRow] = []
    for selector, run in s["selectors"].items():
        rows += [
            ScoreRow(selector, "precision", run.get("final_precision")),
            ScoreRow(selector, "recall", run.get("final_recall")),
            ScoreRow(selector, "test_error", run.get("final_error")),
            ScoreRow(selector, "seconds", run.get("seconds")),
        ]
        for r in run.get("rounds", ()):
            n = r["n_features"]
            rows += [
                ScoreRow(selector, f"precision@{n}", r.get("precision")),
                ScoreRow(selector, f"test_error@{n}", r.get("error")),
            ]
    return RunRecord(
        modality="feature_selection",
        task=str(c.get("data", {}).get("task", "")),
        setting=_setting({**c, "error_metric": s.get("error_metric")}, ("strategy", "error_metric")),
        model="",
        seed=c.get("seed"),
        scores=tuple(rows),
    )


def _curve_rows(curves: Mapping[str, Any], name: str) -> list[ScoreRow]:
    """Per estimator: the curve's normalised area and its mean score at every fraction."""
    rows = []
    for key, curve in curves.items():
        rows.append(ScoreRow(key, f"{name}_area", curve.area()))
        rows += [ScoreRow(key, f"{name}@{f:g}", v) for f, v in zip(curve.fractions, curve.score)]
    return rows


def _eval_record(result: Any, scores: list[ScoreRow], setting: str) -> RunRecord:
    task = result.config.task
    return RunRecord(
        modality=str(result.task.get("modality", "")) if isinstance(result.task, Mapping) else "",
        task=task.task,
        setting=setting,
        model=str(result.task.get("model", "")) if isinstance(result.task, Mapping) else "",
        seed=task.seed,
        scores=tuple(scores),
    )


@EXTRACTORS.register("eval-roar")
def _roar(result: Any) -> RunRecord:
    c = result.config
    name = c.variant
    rows = _curve_rows(result.curves, name) + _curve_rows(result.no_retrain, f"{name}_no_retrain")
    return _eval_record(result, rows, f"{name};postprocess={c.postprocess};retrain={c.retrain}")


@EXTRACTORS.register("eval-road")
def _road(result: Any) -> RunRecord:
    rows = []
    for imputation, orders in result.curves.items():
        for order, curves in orders.items():
            rows += _curve_rows(curves, f"road_{order}_{imputation}")
    return _eval_record(result, rows, "road")


@EXTRACTORS.register("eval-blur")
def _blur(result: Any) -> RunRecord:
    rows = _curve_rows(result.roar, "roar") + _curve_rows(result.no_retrain, "roar_no_retrain")
    for order, curves in result.road.items():
        rows += _curve_rows(curves, f"road_{order}")
    return _eval_record(result, rows, "blur")


@EXTRACTORS.register("eval-sanity")
def _sanity(result: Any) -> RunRecord:
    rows = [
        ScoreRow(m, f"{metric}@{step}", mean)
        for m, steps in result.values.items()
        for step, by in steps.items()
        for metric, (mean, _std) in by.items()
    ]
    return _eval_record(result, rows, f"sanity:{result.config.test}")


@EXTRACTORS.register("eval-faithfulness")
def _faithfulness(result: Any) -> RunRecord:
    rows = [ScoreRow(k, metric, v) for k, aucs in result.aucs().items() for metric, v in aucs.items()]
    rows += _curve_rows(result.sensitivity, "sensitivity_n")
    return _eval_record(result, rows, "faithfulness")
