"""The Results page's Streamlit parts: the store read once per change, URL filters, the three views, export.

Filters live in the URL (``?modality=vision&metric=iou,accuracy&run_a=...``) so a view can be shared:
they are read once per session, validated against what the store holds (a value it does not hold gets
an ``st.warning`` naming it and is ignored), and written back whenever a filter changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from chaosmining.export import csv_bytes
from chaosmining.results import ResultsStore, paper_reference
from chaosmining.viz import results as vr
from ui.common import export_section

__all__ = [
    "FILTERS",
    "load_scores",
    "load_runs",
    "url_filters",
    "sync_url",
    "filtered",
    "show_leaderboard",
    "show_compare",
    "show_agreement",
    "show_export",
    "EMPTY_STORE",
]

P = "res_"
#: URL filters and the score columns they select on.
FILTERS: dict[str, str] = {
    "modality": "Modality",
    "setting": "Setting / noise condition",
    "model": "Model",
    "metric": "Metric",
    "method": "Method",
}
_RUN_PARAMS = ("run_a", "run_b")

EMPTY_STORE = (
    "The results store at `{root}` has no runs yet. Fill it by running any page (every finished run is "
    "recorded), by backfilling it from the cache with `python -m chaosmining results rebuild`, or by "
    "regenerating one of the paper's tables: `python -m chaosmining reproduce table2 --scale quick`."
)


def _stamp(store: ResultsStore) -> tuple[str, ...]:
    """Changes whenever a record is added or the store is compacted (part files are immutable)."""
    return tuple(p.name for p in store.parts("runs"))


@st.cache_data(show_spinner=False, max_entries=8)
def _scores(root: str, stamp: tuple[str, ...]) -> pd.DataFrame:
    return ResultsStore(root).scores()


@st.cache_data(show_spinner=False, max_entries=8)
def _runs(root: str, stamp: tuple[str, ...]) -> pd.DataFrame:
    return ResultsStore(root).runs()


def load_scores(store: ResultsStore) -> pd.DataFrame:
    """The store's latest scores (read again only when a record was added)."""
    return _scores(str(store.root), _stamp(store))


def load_runs(store: ResultsStore) -> pd.DataFrame:
    return _runs(str(store.root), _stamp(store))


def _options(scores: pd.DataFrame, column: str) -> list[str]:
    return sorted(str(v) for v in scores[column].dropna().unique() if str(v) != "")


def url_filters(scores: pd.DataFrame, run_keys: Sequence[str]) -> None:
    """Set the filter widgets from the URL, once per session; warn about each value the store does not hold."""
    if st.session_state.get(P + "url_read"):
        return
    st.session_state[P + "url_read"] = True
    params = st.query_params
    for name in FILTERS:
        if name not in params:
            continue
        raw = params.get(name, "")
        wanted = [v.strip() for v in str(raw).split(",") if v.strip()]
        options = _options(scores, name)
        bad = [v for v in wanted if v not in options]
        if bad:
            st.warning(
                f"The '{name}' filter in the URL must be among the values the store holds ({', '.join(options[:12])}"
                f"{', ...' if len(options) > 12 else ''}). Got {', '.join(repr(b) for b in bad)} instead; ignored."
            )
        st.session_state[P + name] = [v for v in wanted if v in options]
    for name in _RUN_PARAMS:
        if name in params:
            value = str(params.get(name, ""))
            if value in run_keys:
                st.session_state[P + name] = value
            else:
                st.warning(f"The '{name}' run key in the URL is not in the store. Got {value!r} instead; ignored.")


def sync_url() -> None:
    """Write the current filters and compared runs into the URL (empty ones removed)."""
    for name in FILTERS:
        values = st.session_state.get(P + name) or []
        if values:
            st.query_params[name] = ",".join(values)
        elif name in st.query_params:
            del st.query_params[name]
    for name in _RUN_PARAMS:
        value = st.session_state.get(P + name)
        if value:
            st.query_params[name] = value


def filter_widgets(scores: pd.DataFrame) -> dict[str, list[str]]:
    """The sidebar's multiselects (empty = everything); each narrows the options of the next."""
    chosen: dict[str, list[str]] = {}
    view = scores
    with st.sidebar:
        st.subheader("Filters")
        for name, label in FILTERS.items():
            options = _options(view, name)
            current = [v for v in st.session_state.get(P + name, []) if v in options]
            st.session_state[P + name] = current
            chosen[name] = st.multiselect(label, options, key=P + name, placeholder="all")
            if chosen[name]:
                view = view[view[name].astype(str).isin(chosen[name])]
    return chosen


def filtered(scores: pd.DataFrame, chosen: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    out = scores
    for name, values in chosen.items():
        if values:
            out = out[out[name].astype(str).isin(values)]
    return out


def show_leaderboard(scores: pd.DataFrame) -> tuple[pd.DataFrame, go.Figure | None]:
    board = vr.leaderboard(scores, paper_reference())
    if board.empty:
        st.info("No per-method scores match these filters.")
        return board, None
    ours = board[board["source"] == "this store"]
    st.caption(
        f"{ours['method'].nunique()} methods in {len(ours.groupby(list(vr.SETTING_COLUMNS)))} settings, from "
        f"{scores['run_key'].nunique()} runs. Mean and standard deviation over seeds; rank 1 is the best in the "
        "metric's direction; rows whose source names a table are the paper's published numbers."
    )
    st.dataframe(
        board,
        hide_index=True,
        key=P + "board",
        column_config={
            "mean": st.column_config.NumberColumn(format="%.3f"),
            "std": st.column_config.NumberColumn(format="%.3f"),
            "rank": st.column_config.NumberColumn(format="%d"),
        },
    )
    metrics = list(dict.fromkeys(ours["metric"]))
    metric = st.selectbox("Chart of metric", metrics, key=P + "chart_metric")
    fig = vr.leaderboard_figure(board, metric) if metric else None
    if fig is not None:
        st.plotly_chart(fig, key=P + "board_chart")
    return board, fig


def _run_label(runs: pd.DataFrame) -> dict[str, str]:
    return {
        r.run_key: f"{r.kind} · {r.task} · {r.setting or '-'} · {r.model or '-'} · seed {r.seed} · {r.run_key[-8:]}"
        for r in runs.itertuples()
    }


def show_compare(scores: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, go.Figure | None]:
    keys = list(runs["run_key"])
    if len(keys) < 2:
        st.info("Comparing needs at least two recorded runs.")
        return pd.DataFrame(), None
    labels = _run_label(runs)
    for name, default in zip(_RUN_PARAMS, keys[-2:]):
        if st.session_state.get(P + name) not in keys:
            st.session_state[P + name] = default
    left, right = st.columns(2)
    a = left.selectbox("Run A", keys, format_func=labels.get, key=P + "run_a")
    b = right.selectbox("Run B", keys, format_func=labels.get, key=P + "run_b")
    comp = vr.compare_runs(scores, a, b)
    if comp.empty:
        st.info("These two runs have no scores.")
        return comp, None
    metrics = list(dict.fromkeys(comp.loc[comp["method"] != "", "metric"]))
    fig = None
    if metrics:
        metric = st.selectbox("Figure of metric", metrics, key=P + "compare_metric")
        fig = vr.compare_figure(comp, metric, f"A: {labels[a]}", f"B: {labels[b]}")
        st.plotly_chart(fig, key=P + "compare_chart")
    st.dataframe(comp, hide_index=True, key=P + "compare_table")
    with st.expander("The two configurations"):
        c1, c2 = st.columns(2)
        for col, key in ((c1, a), (c2, b)):
            cfg = runs.loc[runs["run_key"] == key, "config"].iloc[0]
            col.json(json.loads(cfg) if isinstance(cfg, str) else cfg, expanded=False)
    return comp, fig


_UNITS = {
    "one run": ("run_key",),
    "one trained model across tests (task, model, seed)": ("task", "model", "seed"),
    "task and seed": ("task", "seed"),
}


def show_agreement(scores: pd.DataFrame) -> tuple[pd.DataFrame, go.Figure | None]:
    available = vr.agreement_metrics(scores)
    if len(available) < 2:
        st.info("Metric agreement needs at least two per-method metrics among the filtered runs.")
        return pd.DataFrame(), None
    default = vr.headline_metrics(available) or available[:8]
    metrics = st.multiselect("Metrics", available, default=default, key=P + "agree_metrics")
    unit = st.radio("Compare rankings within", list(_UNITS), key=P + "agree_unit", horizontal=True)
    agreement = vr.metric_agreement(scores, metrics, _UNITS[unit])
    st.caption(
        "Each metric is oriented so that higher is better; within each unit the methods scored by both metrics "
        "(at least three) are ranked by each, and Spearman's rho and Kendall's tau are averaged over units. "
        "'runs' is how many units stand behind each number. Within one run, FPrec is compared with UScore or "
        "IoU with the pointing game; across tests (ROAR, ROAD, sanity checks of the same task, model and seed) "
        "the evaluation tests are compared with each other."
    )
    if agreement.empty:
        st.info("No two of these metrics scored three or more common methods in the same unit.")
        return agreement, None
    fig = vr.agreement_figure(agreement)
    st.plotly_chart(fig, key=P + "agree_chart")
    st.dataframe(agreement, hide_index=True, key=P + "agree_table")
    return agreement, fig


def latex_table(board: pd.DataFrame) -> str:
    """The leaderboard as a LaTeX tabular (three decimals)."""
    return board.to_latex(index=False, float_format="%.3f", na_rep="", escape=True)


def show_export(tables: Mapping[str, pd.DataFrame], figures: Mapping[str, go.Figure], filters: dict[str, Any]) -> None:
    board = tables.get("leaderboard", pd.DataFrame())
    c1, c2 = st.columns(2)
    c1.download_button(
        "Leaderboard CSV", csv_bytes(board), file_name="leaderboard.csv", mime="text/csv", key=P + "csv_dl"
    )
    c2.download_button(
        "Leaderboard LaTeX",
        latex_table(board).encode(),
        file_name="leaderboard.tex",
        mime="text/x-tex",
        key=P + "tex_dl",
    )
    export_section(
        "results",
        lambda: dict(figures),
        lambda: {"task": "results", "config": {"filters": filters}, "results": {}},
        lambda: dict(tables),
        key=P + "export",
        extra_files=lambda: {"leaderboard.tex": latex_table(board).encode()},
    )
