"""The Results page's tables and figures: a leaderboard, two runs side by side, metric agreement.

Pure functions of the results store's ``scores`` view (one row per run, method and metric; see
:mod:`chaosmining.results.store`) and of :func:`chaosmining.results.paper_reference`; no Streamlit.

* :func:`leaderboard` - methods x settings (modality, noise condition, model, metric): mean and spread
  over seeds, the number of runs, a rank per setting (1 = best, in the metric's direction), and the
  paper's published number as a reference row where one exists.
* :func:`compare_runs` - two run keys' scores side by side and their difference.
* :func:`metric_agreement` - Spearman and Kendall rank correlations between metrics over the methods
  each run scored with both, averaged over runs, with the number of runs behind each pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy import stats

from ..metrics import METRICS
from ..results import PaperValue
from .common import layout, method_color, method_label

__all__ = [
    "SETTING_COLUMNS",
    "higher_is_better",
    "leaderboard",
    "leaderboard_figure",
    "compare_runs",
    "compare_figure",
    "agreement_metrics",
    "headline_metrics",
    "metric_agreement",
    "agreement_figure",
]

#: What makes a leaderboard setting: methods are ranked within each combination of these.
SETTING_COLUMNS = ("modality", "task", "setting", "model", "metric")

# Metrics where lower is better, by pattern (the metric registry covers the symbolic ones). Removal curves
# (ROAR, ROAD's MoRF, deletion) fall faster for a better ranking; sanity checks want a low similarity to
# the randomised model's map; errors and costs are better low.
_LOWER_IS_BETTER = [
    re.compile(p)
    for p in (
        r"^roar(_no_retrain)?(_area|@)",
        r"^road_morf",
        r"deletion",
        r"error|mae|seconds|_std$|memory",
        r"^(ssim|spearman|pearson|hog|similarity|rank)",
    )
]
_HIGHER_IS_BETTER = [re.compile(p) for p in (r"^kar", r"lerf", r"insertion")]

# Scores that describe cost or spread, not quality: left out of the agreement by default.
_NOT_QUALITY = re.compile(r"seconds|_std$|memory|time_share|^accuracy|chance|@")


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (the metric registry first, then name patterns)."""
    if metric in METRICS:
        return METRICS.get(metric).higher_is_better
    if any(p.search(metric) for p in _HIGHER_IS_BETTER):
        return True
    return not any(p.search(metric) for p in _LOWER_IS_BETTER)


def _paper_rows(paper: Iterable[PaperValue]) -> pd.DataFrame:
    """The paper's numbers in the store's vocabulary (accuracy as a fraction, like the runs record it)."""
    rows = []
    for v in paper:
        percent = v.metric == "accuracy_percent"
        rows.append(
            {
                "modality": v.modality,
                "setting": v.setting if v.modality != "feature_selection" else "",
                "task_hint": v.setting if v.modality == "feature_selection" else "",
                "model": v.model,
                "metric": "accuracy" if percent else v.metric,
                "method": v.method,
                "mean": v.value / 100 if percent else v.value,
                "std": None if v.std is None else (v.std / 100 if percent else v.std),
                "source": f"paper: {v.source}" if v.document == "paper" else f"{v.document}: {v.source}",
            }
        )
    return pd.DataFrame(rows)


def leaderboard(scores: pd.DataFrame, paper: Sequence[PaperValue] = ()) -> pd.DataFrame:
    """Methods ranked within each setting, with the paper's numbers as reference rows.

    Parameters
    ----------
    scores : rows of the store's ``scores`` view (``modality, task, setting, model, method, metric,
        value, seed, run_key``); run-level scores (``method == ""``) are left out.
    paper : published numbers; those whose (modality, setting, model, metric) appear in ``scores`` are
        added as rows with ``source`` naming the table they come from and no rank.

    Returns
    -------
    One row per setting and method: ``mean``, ``std`` (over seeds), ``seeds``, ``runs``, ``rank``
    (1 = best in the metric's direction; ties share the lower rank) and ``source``.
    """
    cols = [*SETTING_COLUMNS, "method", "mean", "std", "seeds", "runs", "rank", "source"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    df = scores[(scores["method"] != "") & scores["value"].notna()]
    if df.empty:
        return pd.DataFrame(columns=cols)
    keys = [*SETTING_COLUMNS, "method"]
    board = (
        df.groupby(keys, dropna=False, sort=True)
        .agg(mean=("value", "mean"), std=("value", "std"), seeds=("seed", "nunique"), runs=("run_key", "nunique"))
        .reset_index()
    )
    board["std"] = board["std"].where(board["seeds"] > 1)
    direction = board["metric"].map(lambda m: 1.0 if higher_is_better(m) else -1.0)
    board["rank"] = (
        (board["mean"] * direction)
        .groupby([board[c] for c in SETTING_COLUMNS], dropna=False)
        .rank(ascending=False, method="min")
    )
    board["source"] = "this store"
    ref = _paper_rows(paper)
    if not ref.empty:
        have = board[["modality", "setting", "model", "metric", "task"]].drop_duplicates()
        ref = ref.merge(have, on=["modality", "setting", "model", "metric"], how="inner")
        ref = ref[(ref["task_hint"] == "") | (ref["task_hint"] == ref["task"])].drop(columns="task_hint")
        ref = ref.assign(seeds=5, runs=np.nan, rank=np.nan)  # the paper averages 5 seeds
        board = pd.concat([board, ref[cols]], ignore_index=True)
    ours_first = (board["source"] != "this store").astype(int)
    board = board.assign(_paper=ours_first).sort_values(
        [*SETTING_COLUMNS, "_paper", "rank", "method"], na_position="last", kind="stable"
    )
    return board[cols].reset_index(drop=True)


def method_bars(rows: pd.DataFrame, x: str) -> go.Figure:
    """One bar trace per method (``rows``: ``method``, ``mean``, ``std`` and the ``x`` column), grouped by ``x``,
    with the spread as error bars."""
    fig = go.Figure()
    for method, g in rows.groupby("method", sort=False):
        fig.add_trace(
            go.Bar(
                x=g[x],
                y=g["mean"],
                error_y={"type": "data", "array": g["std"].fillna(0)},
                name=method_label(method),
                marker_color=method_color(method),
                offsetgroup=method,
            )
        )
    return fig


def paper_marks(
    fig: go.Figure,
    rows: pd.DataFrame,
    x: str,
    y: str,
    *,
    color: str | None = None,
    size: int = 9,
    line: dict | None = None,
    showlegend: bool = True,
) -> None:
    """An x per method over its bar of :func:`method_bars` at the paper's value (``rows[y]``); ``color`` None:
    the method's own colour."""
    for method, g in rows.groupby("method", sort=False):
        marker = {"symbol": "x", "color": color or method_color(method), "size": size}
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g[y],
                mode="markers",
                name=f"{method_label(method)} (paper)",
                marker={**marker, "line": line} if line else marker,
                offsetgroup=method,
                showlegend=showlegend,
            )
        )


def leaderboard_figure(board: pd.DataFrame, metric: str) -> go.Figure:
    """Bars of each method's mean ``metric`` (error bars: std over seeds) per setting; x marks the paper."""
    sub = board[board["metric"] == metric]
    sub = sub.assign(where=sub["modality"] + " " + sub["setting"].astype(str) + " " + sub["model"].astype(str))
    fig = method_bars(sub[sub["source"] == "this store"], "where")
    paper_marks(fig, sub[sub["source"] != "this store"], "where", "mean", size=10, line={"width": 1})
    fig.update_layout(barmode="group", scattermode="group", height=440)
    arrow = "higher is better" if higher_is_better(metric) else "lower is better"
    return layout(fig, f"Leaderboard: {metric} ({arrow}); x = the paper's number")


def compare_runs(scores: pd.DataFrame, run_a: str, run_b: str) -> pd.DataFrame:
    """The scores of ``run_a`` and ``run_b`` side by side: ``method, metric, a, b, difference`` (b - a)."""
    a = scores[scores["run_key"] == run_a][["method", "metric", "value"]].rename(columns={"value": "a"})
    b = scores[scores["run_key"] == run_b][["method", "metric", "value"]].rename(columns={"value": "b"})
    out = a.merge(b, on=["method", "metric"], how="outer")
    out["difference"] = out["b"] - out["a"]
    return out.sort_values(["metric", "method"], kind="stable").reset_index(drop=True)


def compare_figure(comparison: pd.DataFrame, metric: str, label_a: str = "run A", label_b: str = "run B") -> go.Figure:
    """The same bar chart of ``metric`` per method for both runs, one beside the other."""
    sub = comparison[(comparison["metric"] == metric) & (comparison["method"] != "")]
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label_a, label_b], shared_yaxes=True)
    for i, col in enumerate(("a", "b")):
        fig.add_trace(
            go.Bar(
                x=[method_label(m) for m in sub["method"]],
                y=sub[col],
                marker_color=[method_color(m) for m in sub["method"]],
                showlegend=False,
            ),
            row=1,
            col=i + 1,
        )
    fig.update_layout(height=400)
    return layout(fig, f"{metric}: the two runs side by side")


def agreement_metrics(scores: pd.DataFrame) -> list[str]:
    """Per-method quality metrics of ``scores`` (costs, spreads, run-level scores and curve points left out)."""
    if scores.empty:
        return []
    per_method = scores[scores["method"] != ""]
    return sorted(m for m in per_method["metric"].unique() if not _NOT_QUALITY.search(m))


# The scores each modality and test is judged by, in the order the agreement view offers them first.
_HEADLINE = re.compile(r"^(fprec|uscore|iou|pointing_game|channel_fprec|top1_hit|precision|consistency)$|_area$")


def headline_metrics(metrics: Iterable[str]) -> list[str]:
    """The headline quality metrics among ``metrics`` (FPrec, UScore, IoU, channel FPrec, curve areas, ...)."""
    return [m for m in metrics if _HEADLINE.search(m)]


def metric_agreement(
    scores: pd.DataFrame, metrics: Sequence[str] | None = None, unit: Sequence[str] = ("run_key",)
) -> pd.DataFrame:
    """Do two metrics rank the methods the same way? Rank correlations per pair of metrics.

    Each metric's values are oriented so that higher is better (:func:`higher_is_better`). For every
    ``unit`` (by default one run; ``("task", "model", "seed")`` joins the evaluation tests of one trained
    model, whatever test scored it) where both metrics scored at least three common methods, Spearman's rho and Kendall's tau over those
    methods are computed; the table gives their means over units and ``runs``, the number of units.

    Returns
    -------
    ``metric_a, metric_b, spearman, kendall, runs, methods`` (mean methods per unit), one row per pair.
    """
    metrics = list(metrics) if metrics is not None else agreement_metrics(scores)
    cols = ["metric_a", "metric_b", "spearman", "kendall", "runs", "methods"]
    df = scores[(scores["method"] != "") & scores["metric"].isin(metrics) & scores["value"].notna()]
    if df.empty or len(metrics) < 2:
        return pd.DataFrame(columns=cols)
    df = df.assign(oriented=df["value"] * df["metric"].map(lambda m: 1.0 if higher_is_better(m) else -1.0))
    unit = list(unit)
    wide = df.pivot_table(index=[*unit, "method"], columns="metric", values="oriented", aggfunc="mean", dropna=False)
    rows = []
    for i, ma in enumerate(metrics):
        for mb in metrics[i + 1 :]:
            if ma not in wide or mb not in wide:
                continue
            rhos, taus, sizes = [], [], []
            for _, g in wide[[ma, mb]].dropna().groupby(level=unit, dropna=False):
                if len(g) < 3 or g[ma].nunique() < 2 or g[mb].nunique() < 2:
                    continue
                rhos.append(stats.spearmanr(g[ma], g[mb]).statistic)
                taus.append(stats.kendalltau(g[ma], g[mb]).statistic)
                sizes.append(len(g))
            if rhos:
                rows.append([ma, mb, float(np.mean(rhos)), float(np.mean(taus)), len(rhos), float(np.mean(sizes))])
    return pd.DataFrame(rows, columns=cols)


def agreement_figure(agreement: pd.DataFrame, statistic: str = "spearman") -> go.Figure:
    """A symmetric heatmap of the mean rank correlation between metrics (hover: runs behind each)."""
    names = sorted(set(agreement["metric_a"]) | set(agreement["metric_b"]))
    mat = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    runs = pd.DataFrame(0, index=names, columns=names)
    for r in agreement.itertuples():
        for x, y in ((r.metric_a, r.metric_b), (r.metric_b, r.metric_a)):
            mat.loc[x, y] = getattr(r, statistic)
            runs.loc[x, y] = r.runs
    z = mat.where(runs > 0, np.nan).to_numpy(copy=True)
    np.fill_diagonal(z, 1.0)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            customdata=runs.values,
            hovertemplate="%{y} vs %{x}: %{z:.2f} over %{customdata} runs<extra></extra>",
        )
    )
    fig.update_layout(height=max(360, 40 * len(names) + 160))
    return layout(fig, f"Metric agreement: mean {statistic.capitalize()} rank correlation over runs")
