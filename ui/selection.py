"""Cached wrappers, job submission and progress rendering for the Feature Selection page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from chaosmining import viz
from chaosmining.attribution import preflight
from chaosmining.data.tabular import MAX_CSV_COLUMNS, sniff_csv
from chaosmining.experiments.rfe import (
    RFEConfig,
    RFEPlan,
    RFEResult,
    SelectionData,
    load_rfe,
    plan_rfe,
    prepare_data,
    rfe_config_from_dict,
)
from chaosmining.models.mlp import build_mlp
from chaosmining.runs import RunSnapshot, RunSpec
from chaosmining.sandbox import resolve_user_path
from chaosmining.selection import get_selector
from chaosmining.uploads import store_upload
from ui.common import get_cache, jobs, live_figure, submit_run

__all__ = [
    "TaskPreview",
    "job_key",
    "task_preview",
    "cached_result",
    "submit_rfe",
    "csv_source",
    "render_progress",
    "reading",
    "deeplift_note",
    "duration",
]


def job_key(config: RFEConfig) -> str:
    return RunSpec("rfe", config).key


@dataclass(frozen=True)
class TaskPreview:
    """What the page shows before a run: the prepared data's shape and the plan."""

    title: str
    n_features: int
    true_names: list[str] | None
    rows: tuple[int, int, int]
    notes: tuple[str, ...]
    formula_latex: str | None
    plan: RFEPlan


@st.cache_resource(max_entries=32, show_spinner="Preparing the data...")
def _preview(key: str, config_json: str) -> TaskPreview:
    config = rfe_config_from_dict(json.loads(config_json))
    _, data = prepare_data(config, get_cache())
    return _make_preview(config, data)


def _make_preview(config: RFEConfig, data: SelectionData) -> TaskPreview:
    true = None if data.true_features is None else [data.feature_names[i] for i in data.true_features]
    return TaskPreview(
        data.title,
        data.n_features,
        true,
        (len(data.y_train), len(data.y_val), len(data.y_test)),
        data.notes,
        data.formula_latex,
        plan_rfe(config, data),
    )


def task_preview(config: RFEConfig) -> TaskPreview:
    """Prepare (once, cached) the task's data; raises ChaosMiningError for bad data or a bad target."""
    return _preview(config.config_hash, json.dumps(config.to_dict()))


@st.cache_resource(max_entries=32, show_spinner=False)
def _load(key: str, config_json: str) -> RFEResult | None:
    return load_rfe(rfe_config_from_dict(json.loads(config_json)), get_cache())


def cached_result(config: RFEConfig) -> RFEResult | None:
    """The finished comparison: from this server's job, else from the cache (loaded once)."""
    job = jobs().get(job_key(config))
    if job is not None and job.status == "done":
        return job.result()
    if not get_cache().has("rfe-result", config.config_hash):
        return None
    return _load(config.config_hash, json.dumps(config.to_dict()))


def _task_label(config: RFEConfig) -> str:
    """The task as the job list names it: a CSV by its file name only, never its server path."""
    return f"CSV {Path(config.data.arg).name}" if config.data.kind == "csv" else config.data.task


def submit_rfe(config: RFEConfig, widgets: dict[str, Any], plan: RFEPlan) -> str | None:
    """Queue the selection (a composite run: its trainings queue as this session's runs)."""
    return submit_run(
        RunSpec("rfe", config),
        "rfe_",
        widgets,
        description=f"feature selection on {_task_label(config)}: {len(config.selectors)} selectors, "
        f"{' → '.join(map(str, plan.schedule))} features",
        selectors=list(config.selectors),
        schedule=plan.schedule,
    )


def csv_source(upload: Any | None, typed: str) -> str:
    """The CSV the page should read: the upload (stored privately for a day) or the typed server path.

    A typed path must lie under the data roots (:func:`chaosmining.sandbox.resolve_user_path`); either
    file is checked (:func:`chaosmining.data.tabular.sniff_csv`: empty, binary, not UTF-8, more than
    :data:`MAX_CSV_COLUMNS` columns) before anything reads it. Raises :class:`ChaosMiningError` with the
    message to show; returns the real path, which the page never displays.
    """
    if upload is not None:
        path = store_upload(upload.name, upload.getvalue())
    else:
        path = resolve_user_path(typed, parameter="CSV path", kind="file")
    sniff_csv(path, max_columns=MAX_CSV_COLUMNS)
    return str(path)


def render_progress(snap: RunSnapshot) -> None:
    """Per-selector progress bars and the curves filled in round by round."""
    schedule = snap.payload.get("schedule", [])
    rounds = [e for e in snap.events if "round" in e]
    errors = {e["selector"]: e["error"] for e in snap.events if "selector" in e and "round" not in e and "error" in e}
    running = snap.latest("running")
    st.caption(
        f"{running or 0} training(s) in flight; each selector's rounds land as they finish. "
        "Stopping keeps every finished training in the cache, so running again resumes."
    )
    for s in snap.payload.get("selectors", []):
        mine = [e for e in rounds if e["selector"] == s]
        done = len(mine)
        total = max(1, len(schedule))
        if s in errors:
            st.error(f"{viz.selector_label(s)}: {errors[s]}")
            continue
        last = max(mine, key=lambda e: e["round"]) if mine else None
        text = f"{viz.selector_label(s)}: {done}/{total} rounds"
        if last is not None:
            prec = "" if last["precision"] is None else f", precision {last['precision']:.2f}"
            text += f" - at {last['n_features']} features error {last['error']:.4g}{prec}"
        st.progress(min(1.0, done / total), text=text)
    if rounds:
        error_curves: dict[str, tuple[list[int], list[float]]] = {}
        precision_curves: dict[str, tuple[list[int], list[float]]] = {}
        for e in sorted(rounds, key=lambda e: (e["selector"], e["round"])):
            error_curves.setdefault(e["selector"], ([], []))
            error_curves[e["selector"]][0].append(e["n_features"])
            error_curves[e["selector"]][1].append(e["error"])
            if e["precision"] is not None:
                precision_curves.setdefault(e["selector"], ([], []))
                precision_curves[e["selector"]][0].append(e["n_features"])
                precision_curves[e["selector"]][1].append(e["precision"])
        c1, c2 = st.columns(2)
        c1.plotly_chart(
            live_figure(
                snap,
                "error",
                lambda: viz.selection_curves(error_curves, title="Test error so far", y_title="test error"),
            ),
            key=f"live_err_{snap.id}_{len(rounds)}",
        )
        if precision_curves:
            c2.plotly_chart(
                live_figure(
                    snap,
                    "precision",
                    lambda: viz.selection_curves(
                        precision_curves, title="Precision so far", y_title="precision", y_range=[0, 1.05]
                    ),
                ),
                key=f"live_prec_{snap.id}_{len(rounds)}",
            )


def reading(result: RFEResult) -> str:
    """A plain-language reading of the final round."""
    finals = [(s, r.final) for s, r in result.runs.items() if r.final is not None and not r.error_message]
    if not finals:
        return ""
    k = result.schedule[-1]
    best_err = min(finals, key=lambda t: t[1].error)
    text = (
        f"**Reading.** Down to {k} of {len(result.feature_names)} features, the lowest test {result.error_name} is "
        f"**{get_selector(best_err[0]).display_name}**'s ({best_err[1].error:.4g})."
    )
    if result.true_features is not None:
        best_prec = max(finals, key=lambda t: (t[1].precision or 0.0, -t[1].error))
        text += (
            f" The most precise selection is **{get_selector(best_prec[0]).display_name}**'s: "
            f"{best_prec[1].precision:.0%} of its {k} features are true ones (a random choice: "
            f"{len(result.true_features) / len(result.feature_names):.0%})."
        )
    return text


def deeplift_note(config: RFEConfig, n_features: int) -> str | None:
    """Captum's warning when DeepLift would silently compute Input x Gradient on this network."""
    if "deeplift" not in config.selectors:
        return None
    notes = preflight(build_mlp(n_features, config.model), "deeplift")
    return notes[0] if notes else None


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
