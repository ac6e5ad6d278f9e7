"""Figures of feature selection (RFEwNA against classic RFE, the paper's Figures 6 and 7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from ..selection import get_selector
from .common import RELEVANT_COLOR, method_color, reference_line
from .common import layout as _layout

if TYPE_CHECKING:  # pragma: no cover
    from ..experiments.rfe import RFEResult

__all__ = [
    "selector_color",
    "selector_label",
    "selection_curves",
    "rfe_error_curves",
    "rfe_precision_curves",
    "rfe_time_bars",
    "rfe_kept_features",
    "rfe_figures",
]

# Classic baselines get colours outside the method palette and dashed lines (the paper draws them dotted).
_CLASSIC_COLORS = {"linear": "#4d4d4d", "svm": "#b8860b", "tree": "#006d5b"}


def selector_color(name: str) -> str:
    spec = get_selector(name)
    if spec.family == "attribution":
        return method_color(spec.method or name)
    return _CLASSIC_COLORS.get(name, "#333333")


def selector_label(name: str) -> str:
    return get_selector(name).display_name


def _dash(name: str) -> str:
    return "solid" if get_selector(name).family == "attribution" else "dash"


def selection_curves(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float | None]]],
    *,
    title: str,
    y_title: str,
    floor: float | None = None,
    floor_label: str = "",
    y_range: Sequence[float] | None = None,
    log_y: bool = False,
) -> go.Figure:
    """One line per selector of a value against the number of kept features (many -> few, log axis)."""
    fig = go.Figure()
    for name, (xs, ys) in curves.items():
        fig.add_trace(
            go.Scatter(
                x=list(xs),
                y=list(ys),
                mode="lines+markers",
                name=selector_label(name),
                line=dict(color=selector_color(name), dash=_dash(name)),
            )
        )
    if floor is not None:
        reference_line(fig, floor, floor_label, dash="dot")
    return _layout(
        fig,
        title,
        xaxis=dict(title="number of kept features", type="log", autorange="reversed"),
        yaxis=dict(title=y_title, range=y_range, type="log" if log_y else "linear"),
        legend=dict(font=dict(size=11)),
    )


def _curve(result: RFEResult, attr: str) -> dict[str, tuple[list[int], list[float | None]]]:
    return {
        s: ([r.n_features for r in run.rounds], [getattr(r, attr) for r in run.rounds])
        for s, run in result.runs.items()
        if run.rounds
    }


def rfe_error_curves(result: RFEResult) -> go.Figure:
    """Test error of each selector's predictor against the number of kept features (Figure 7a / 6a)."""
    strategy = "selector's own model" if result.config.strategy == "uni" else "MLP on the selected features"
    return selection_curves(
        _curve(result, "error"),
        title=f"Test {result.error_name} vs number of features ({strategy})",
        y_title=f"test {result.error_name}",
        log_y=result.task_type == "regression",
    )


def rfe_precision_curves(result: RFEResult) -> go.Figure:
    """Share of kept features that are true, against the number kept (Figure 7b)."""
    floor = None
    if result.true_features is not None:
        floor = len(result.true_features) / len(result.feature_names)
    return selection_curves(
        _curve(result, "precision"),
        title="Precision of the kept features vs number of features",
        y_title="precision (true among kept)",
        floor=floor,
        floor_label=f"all features: {floor:.3f}" if floor is not None else "",
        y_range=[0, 1.05],
    )


def rfe_time_bars(result: RFEResult) -> go.Figure:
    """Compute time of each selector over all rounds, log scale (Figure 7c)."""
    names = list(result.runs)
    secs = [max(result.runs[s].seconds, 1e-3) for s in names]
    fig = go.Figure(
        go.Bar(
            x=[selector_label(s) for s in names],
            y=secs,
            marker_color=[selector_color(s) for s in names],
            text=[f"{v:.1f} s" for v in secs],
            textposition="outside",
            name="seconds",
        )
    )
    return _layout(
        fig,
        "Time per selector, all rounds (s, log scale)",
        yaxis=dict(title="seconds", type="log"),
        xaxis=dict(tickangle=-20),
    )


def rfe_kept_features(result: RFEResult) -> go.Figure:
    """Which features each selector kept at the end; true features boxed in red.

    Columns are the true features and every feature some selector kept, in index order.
    """
    names = [s for s, run in result.runs.items() if run.rounds]
    true = set(result.true_features or ())
    cols = sorted(true | {i for s in names for i in result.runs[s].kept})
    z = np.array([[1.0 if i in set(result.runs[s].kept) else 0.0 for i in cols] for s in names]).reshape(len(names), -1)
    labels = [result.feature_names[i] + (" *" if i in true else "") for i in cols]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=[selector_label(s) for s in names],
            colorscale=[[0, "#f4f6f8"], [1, "#1f3b73"]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=1,
            ygap=1,
            hovertemplate="%{y}<br>%{x}: %{z}<extra></extra>",
            name="kept",
        )
    )
    for j, i in enumerate(cols):
        if i in true:
            fig.add_vrect(x0=j - 0.5, x1=j + 0.5, line_color=RELEVANT_COLOR, line_width=2, fillcolor="rgba(0,0,0,0)")
    title = "Features kept at the end (dark = kept"
    title += "; true features boxed in red and starred)" if true else ")"
    return _layout(
        fig,
        title,
        xaxis=dict(title="feature", tickangle=-60, showticklabels=len(cols) <= 80),
        height=max(300, 60 + 34 * len(names)),
        margin=dict(l=190, r=20, t=60, b=110),
    )


def rfe_figures(result: RFEResult) -> dict[str, go.Figure]:
    """Every figure of a feature-selection result, keyed by a file-friendly name (used by exports)."""
    figs = {
        "error_vs_features": rfe_error_curves(result),
        "time_per_selector": rfe_time_bars(result),
        "kept_features": rfe_kept_features(result),
    }
    if result.true_features is not None:
        figs["precision_vs_features"] = rfe_precision_curves(result)
    return figs
